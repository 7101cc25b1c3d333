package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
)

// Run statuses. A run is pending until claimed, running while its claim's lease lasts,
// then succeeded, failed or cancelled (its task was deactivated or unlinked first).
const (
	RunPending   = "pending"
	RunRunning   = "running"
	RunSucceeded = "succeeded"
	RunFailed    = "failed"
	RunCancelled = "cancelled"
)

// Run triggers.
const (
	TriggerSchedule = "schedule"
	TriggerInvoke   = "invoke"
)

// DefaultRunMaxAttempts is how many times a run may be claimed unless configured
// (AMRD_AMR_RUN_MAX_ATTEMPTS), scheduled (jobs.Config.MaxAttempts) and invoked
// (api.Config.RunMaxAttempts) alike. Only a claim whose lease expired (its replica or
// worker died) is retried; an executor's failure is final.
const DefaultRunMaxAttempts = 3

// TaskRun is one execution of an AMR task call on one meter device: a slot of a
// scheduled task, or an invoked call.
type TaskRun struct {
	ID                 int64           `json:"id"`
	TaskID             *uuid.UUID      `json:"task"`
	MeterDeviceID      uuid.UUID       `json:"meter_device"`
	MeterDeviceName    string          `json:"meter_device_name"`
	OrganizationID     *uuid.UUID      `json:"organization"`
	Trigger            string          `json:"trigger"`
	Slot               *time.Time      `json:"slot"`
	RunAt              time.Time       `json:"run_at"`
	MeterExecutionType string          `json:"meter_execution_type"`
	TaskCall           string          `json:"task_call"`
	TaskKwargs         json.RawMessage `json:"task_kwargs"`
	Status             string          `json:"status"`
	Attempts           int             `json:"attempts"`
	MaxAttempts        int             `json:"max_attempts"`
	Worker             *string         `json:"worker"`
	LeaseUntil         *time.Time      `json:"lease_until"`
	StartedAt          *time.Time      `json:"started_at"`
	FinishedAt         *time.Time      `json:"finished_at"`
	Error              *string         `json:"error"`
	Result             json.RawMessage `json:"result"`
	CreatedAt          time.Time       `json:"created_at"`
	UpdatedAt          time.Time       `json:"updated_at"`
	// ClaimToken is set only on a run just claimed: the claimer proves with it that a
	// report or lease extension comes from the current claim. Never listed.
	ClaimToken *uuid.UUID `json:"-"`
}

const runCols = `x.id, x.task_id, x.meter_device_id, d.name, d.organization_id, x.trigger, x.slot, x.run_at,
	x.meter_execution_type, x.task_call, x.task_kwargs::text, x.status, x.attempts, x.max_attempts, x.worker,
	x.lease_until, x.started_at, x.finished_at, x.error, x.result::text, x.created_at, x.updated_at`

func scanRun(row pgx.CollectableRow) (TaskRun, error) {
	var v TaskRun
	var kwargs, result *string
	err := row.Scan(&v.ID, &v.TaskID, &v.MeterDeviceID, &v.MeterDeviceName, &v.OrganizationID, &v.Trigger, &v.Slot, &v.RunAt,
		&v.MeterExecutionType, &v.TaskCall, &kwargs, &v.Status, &v.Attempts, &v.MaxAttempts, &v.Worker,
		&v.LeaseUntil, &v.StartedAt, &v.FinishedAt, &v.Error, &result, &v.CreatedAt, &v.UpdatedAt)
	if kwargs != nil {
		v.TaskKwargs = json.RawMessage(*kwargs)
	}
	if result != nil {
		v.Result = json.RawMessage(*result)
	}
	return v, err
}

var taskRuns = entity[TaskRun]{
	what:  "an AMR task run",
	from:  "amr_task_runs x JOIN meter_devices d ON d.id = x.meter_device_id",
	cols:  runCols,
	scan:  scanRun,
	org:   "d.organization_id",
	order: "x.run_at DESC, x.id DESC",
	filters: map[string]string{
		"task":                 "x.task_id = %s",
		"meter_device":         "x.meter_device_id = %s",
		"status":               "x.status = %s",
		"trigger":              "x.trigger = %s",
		"meter_execution_type": "x.meter_execution_type = %s",
		"start_time":           "x.run_at >= %s",
		"end_time":             "x.run_at <= %s",
	},
}

// ListTaskRuns returns one page of runs in scope, newest first. Filters: task,
// meter_device (uuid.UUID), status, trigger, meter_execution_type (string), start_time
// and end_time (time.Time, on run_at, both inclusive).
func (s *Store) ListTaskRuns(ctx context.Context, sc Scope, f Filter, p Page) ([]TaskRun, int, error) {
	return taskRuns.list(ctx, s.pool, sc, f, p)
}

// GetTaskRun returns one run in scope.
func (s *Store) GetTaskRun(ctx context.Context, sc Scope, id int64) (TaskRun, error) {
	return getRun(ctx, s.pool, sc, id)
}

func getRun(ctx context.Context, q querier, sc Scope, id int64) (TaskRun, error) {
	all, orgs := sc.args()
	rows, err := q.Query(ctx, "SELECT "+runCols+" FROM "+taskRuns.from+
		" WHERE x.id = $1 AND ($2 OR d.organization_id = ANY($3))", id, all, orgs)
	if err != nil {
		return TaskRun{}, mapErr("reading an AMR task run", err)
	}
	v, err := pgx.CollectExactlyOneRow(rows, scanRun)
	return v, mapErr("reading an AMR task run", err)
}

// RunInput is an invoked call: POST /v1/metering/amr-tasks/invoke.
type RunInput struct {
	MeterDeviceID      uuid.UUID
	RunAt              time.Time
	MeterExecutionType string
	TaskCall           string
	TaskKwargs         json.RawMessage
	MaxAttempts        int
}

// InvokeRun queues an invoked run on a meter device in scope. A device out of scope is
// a *FieldError on meter_device, as every reference is.
func (s *Store) InvokeRun(ctx context.Context, sc Scope, in RunInput) (TaskRun, error) {
	if in.MaxAttempts < 1 {
		in.MaxAttempts = 1
	}
	var out TaskRun
	err := s.inTx(ctx, "invoking an AMR task", func(tx pgx.Tx) error {
		all, orgs := sc.args()
		var id int64
		err := tx.QueryRow(ctx, `INSERT INTO amr_task_runs (meter_device_id, trigger, run_at, meter_execution_type,
				task_call, task_kwargs, max_attempts)
			SELECT d.id, 'invoke', $4, $5, $6, $7::text::jsonb, $8 FROM meter_devices d
			WHERE d.id = $1 AND ($2 OR d.organization_id = ANY($3))
			RETURNING id`, in.MeterDeviceID, all, orgs, in.RunAt, in.MeterExecutionType, in.TaskCall,
			kwargsArg(in.TaskKwargs), in.MaxAttempts).Scan(&id)
		if errors.Is(err, pgx.ErrNoRows) {
			return &FieldError{Field: "meter_device", Msg: fmt.Sprintf("Invalid pk %q - object does not exist.", in.MeterDeviceID)}
		}
		if err != nil {
			return err
		}
		out, err = getRun(ctx, tx, AllOrgs, id)
		return err
	})
	return out, err
}

// Claim asks for due runs.
type Claim struct {
	// Types are the execution types the claimer can run.
	Types []string
	// Worker names the claimer in the run (a replica's executor or an external worker).
	Worker string
	// Limit is how many runs at most.
	Limit int
	// Lease is how long the claim holds: a run still running after it is claimable again
	// (or failed when out of attempts), as its claimer is presumed dead.
	Lease time.Duration
	// Now is the claimer's clock: runs due at or before it are taken.
	Now time.Time
}

// ClaimTaskRuns marks up to c.Limit due pending runs in scope as running for the claimer
// and returns them with a fresh ClaimToken each. Concurrent claimers never get the same
// run (FOR UPDATE SKIP LOCKED); the oldest due runs go first.
func (s *Store) ClaimTaskRuns(ctx context.Context, sc Scope, c Claim) ([]TaskRun, error) {
	if c.Limit <= 0 || len(c.Types) == 0 {
		return nil, nil
	}
	all, orgs := sc.args()
	var out []TaskRun
	err := s.inTx(ctx, "claiming AMR task runs", func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `
			WITH c AS (
				SELECT x.id FROM amr_task_runs x JOIN meter_devices d ON d.id = x.meter_device_id
				WHERE x.status = 'pending' AND x.meter_execution_type = ANY($1) AND x.run_at <= $2
					AND ($3 OR d.organization_id = ANY($4))
				ORDER BY x.run_at, x.id
				LIMIT $5
				FOR UPDATE OF x SKIP LOCKED
			)
			UPDATE amr_task_runs x SET status = 'running', attempts = x.attempts + 1, worker = $6,
				claim_token = gen_random_uuid(), started_at = $2, lease_until = $2 + $7::interval,
				finished_at = NULL, error = NULL, updated_at = now()
			FROM c WHERE x.id = c.id
			RETURNING x.id, x.claim_token`, c.Types, c.Now, all, orgs, c.Limit, c.Worker, c.Lease)
		if err != nil {
			return err
		}
		type claimed struct {
			id    int64
			token uuid.UUID
		}
		got, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (claimed, error) {
			var v claimed
			return v, r.Scan(&v.id, &v.token)
		})
		if err != nil {
			return err
		}
		runs := make([]TaskRun, 0, len(got))
		for _, g := range got {
			r, err := getRun(ctx, tx, AllOrgs, g.id)
			if err != nil {
				return err
			}
			tok := g.token
			r.ClaimToken = &tok
			runs = append(runs, r)
		}
		out = runs
		return nil
	})
	return out, err
}

// errLostClaim is what a report on a run no longer held by that claim gets.
var errLostClaim = &ConflictError{Msg: "This run is not running under this claim: its lease ran out, or it was reported already."}

// RunOutcome is a claimer's report of a run.
type RunOutcome struct {
	// Status is RunSucceeded or RunFailed.
	Status string
	Error  string
	// Result is a JSON object (what was read, counts), or nil.
	Result json.RawMessage
	Now    time.Time
}

// FinishTaskRun records the outcome of a run held by the claim token, in scope. A run
// no longer held by that claim (lease expired and re-claimed, or reported already) is a
// *ConflictError; a run out of scope is ErrNotFound.
func (s *Store) FinishTaskRun(ctx context.Context, sc Scope, id int64, token uuid.UUID, o RunOutcome) (TaskRun, error) {
	if o.Status != RunSucceeded && o.Status != RunFailed {
		return TaskRun{}, &FieldError{Field: "status", Msg: fmt.Sprintf("%q is not a valid choice: succeeded or failed.", o.Status)}
	}
	var errText *string
	if o.Error != "" {
		errText = &o.Error
	}
	return s.updateClaimed(ctx, sc, id, token, "reporting an AMR task run",
		`status = $2, error = $3, result = $4::text::jsonb, finished_at = $5, lease_until = NULL, claim_token = NULL`,
		o.Status, errText, kwargsArg(o.Result), o.Now)
}

// ExtendTaskRun moves the lease of a run held by the claim token to now + lease.
func (s *Store) ExtendTaskRun(ctx context.Context, sc Scope, id int64, token uuid.UUID, now time.Time, lease time.Duration) (TaskRun, error) {
	return s.updateClaimed(ctx, sc, id, token, "extending an AMR task run's lease",
		`lease_until = $2::timestamptz + $3::interval`, now, lease)
}

// ReleaseTaskRun gives a claimed run back to the queue, due at runAt, without counting
// the attempt: the claimer could not start it (its network interface was blocked).
func (s *Store) ReleaseTaskRun(ctx context.Context, id int64, token uuid.UUID, runAt time.Time) error {
	_, err := s.updateClaimed(ctx, AllOrgs, id, token, "releasing an AMR task run",
		`status = 'pending', attempts = greatest(x.attempts - 1, 0), run_at = $2, lease_until = NULL,
		claim_token = NULL, started_at = NULL`, runAt)
	return err
}

// updateClaimed sets columns of a run in scope that is running under the token; set
// uses $2 onwards for args ($1 is the run's id).
func (s *Store) updateClaimed(ctx context.Context, sc Scope, id int64, token uuid.UUID, op, set string, args ...any) (TaskRun, error) {
	all, orgs := sc.args()
	var out TaskRun
	err := s.inTx(ctx, op, func(tx pgx.Tx) error {
		var status string
		var held bool
		err := tx.QueryRow(ctx, `SELECT x.status, x.claim_token IS NOT DISTINCT FROM $2 FROM amr_task_runs x
			JOIN meter_devices d ON d.id = x.meter_device_id
			WHERE x.id = $1 AND ($3 OR d.organization_id = ANY($4)) FOR UPDATE OF x`, id, token, all, orgs).Scan(&status, &held)
		if err != nil {
			return err
		}
		if status != RunRunning || !held {
			return errLostClaim
		}
		if _, err := tx.Exec(ctx, "UPDATE amr_task_runs x SET "+set+", updated_at = now() WHERE x.id = $1",
			append([]any{id}, args...)...); err != nil {
			return err
		}
		out, err = getRun(ctx, tx, AllOrgs, id)
		return err
	})
	return out, err
}

// ScheduledTask is an active AMR task as the planner needs it.
type ScheduledTask struct {
	ID               uuid.UUID
	Schedule         string
	RunOffsetSeconds int64
	CreatedAt        time.Time
}

// ActiveTasks returns every active AMR task that reaches at least one device.
func (s *Store) ActiveTasks(ctx context.Context) ([]ScheduledTask, error) {
	rows, err := s.pool.Query(ctx, `SELECT t.id, t.schedule, t.run_offset_seconds, t.created_at FROM amr_tasks t
		WHERE t.is_active AND (EXISTS (SELECT 1 FROM meter_device_tasks l WHERE l.task_id = t.id)
			OR EXISTS (SELECT 1 FROM amr_task_group_tasks g JOIN meter_device_task_groups l ON l.group_id = g.group_id
				WHERE g.task_id = t.id))
		ORDER BY t.id`)
	if err != nil {
		return nil, mapErr("listing active AMR tasks", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (ScheduledTask, error) {
		var v ScheduledTask
		return v, r.Scan(&v.ID, &v.Schedule, &v.RunOffsetSeconds, &v.CreatedAt)
	})
	return out, mapErr("listing active AMR tasks", err)
}

// DueSlot is the latest slot of a task that is due: planned for every device the task
// reaches (directly or through a task group).
type DueSlot struct {
	TaskID uuid.UUID
	Slot   time.Time
	RunAt  time.Time
}

// taskPairs is every (task, device) an active task reaches, directly or through groups.
const taskPairs = `
	SELECT l.task_id, l.device_id FROM meter_device_tasks l
	UNION
	SELECT g.task_id, l.device_id FROM amr_task_group_tasks g JOIN meter_device_task_groups l ON l.group_id = g.group_id`

// PlanTaskRuns queues one run for each due slot on each device its task reaches, unless
// that slot, or a later one, was planned before: a slot runs once however often and by
// however many replicas it is planned, and slots missed while no amrd ran are not all
// made up for, only the latest. maxAttempts bounds each run's claims.
func (s *Store) PlanTaskRuns(ctx context.Context, due []DueSlot, maxAttempts int) (int64, error) {
	if len(due) == 0 {
		return 0, nil
	}
	ids := make([]uuid.UUID, len(due))
	slots := make([]time.Time, len(due))
	runAts := make([]time.Time, len(due))
	for i, d := range due {
		ids[i], slots[i], runAts[i] = d.TaskID, d.Slot, d.RunAt
	}
	tag, err := s.pool.Exec(ctx, `
		INSERT INTO amr_task_runs (task_id, meter_device_id, trigger, slot, run_at, meter_execution_type, task_call,
			task_kwargs, max_attempts)
		SELECT t.id, p.device_id, 'schedule', u.slot, u.run_at, t.meter_execution_type, t.task_call, t.task_kwargs, $4
		FROM unnest($1::uuid[], $2::timestamptz[], $3::timestamptz[]) AS u (task_id, slot, run_at)
		JOIN amr_tasks t ON t.id = u.task_id AND t.is_active
		JOIN (`+taskPairs+`) p ON p.task_id = t.id
		WHERE NOT EXISTS (SELECT 1 FROM amr_task_runs r
			WHERE r.task_id = t.id AND r.meter_device_id = p.device_id AND r.slot >= u.slot)
		ON CONFLICT (task_id, meter_device_id, slot) WHERE slot IS NOT NULL DO NOTHING`, ids, slots, runAts, maxAttempts)
	if err != nil {
		return 0, mapErr("planning AMR task runs", err)
	}
	return tag.RowsAffected(), nil
}

// CancelStaleTaskRuns cancels pending scheduled runs whose task was deactivated or no
// longer reaches the device: a change to tasks, groups or devices takes effect at once.
func (s *Store) CancelStaleTaskRuns(ctx context.Context, now time.Time) (int64, error) {
	tag, err := s.pool.Exec(ctx, `
		UPDATE amr_task_runs x SET status = 'cancelled', finished_at = $1, updated_at = now(),
			error = 'cancelled: the task was deactivated or no longer applies to this meter device'
		WHERE x.status = 'pending' AND x.trigger = 'schedule' AND (x.task_id IS NULL
			OR NOT EXISTS (SELECT 1 FROM amr_tasks t WHERE t.id = x.task_id AND t.is_active)
			OR NOT EXISTS (SELECT 1 FROM (`+taskPairs+`) p WHERE p.task_id = x.task_id AND p.device_id = x.meter_device_id))`, now)
	if err != nil {
		return 0, mapErr("cancelling stale AMR task runs", err)
	}
	return tag.RowsAffected(), nil
}

// ExpireTaskRunLeases settles runs whose claim's lease ran out (their claimer died or
// hung): back to pending while attempts remain, else failed. It returns both counts.
func (s *Store) ExpireTaskRunLeases(ctx context.Context, now time.Time) (requeued, failed int64, err error) {
	err = s.pool.QueryRow(ctx, `
		WITH x AS (
			UPDATE amr_task_runs x SET
				status = CASE WHEN x.attempts < x.max_attempts THEN 'pending' ELSE 'failed' END,
				finished_at = CASE WHEN x.attempts < x.max_attempts THEN NULL ELSE $1 END,
				error = 'the claim on this run expired before it was reported (attempt ' || x.attempts || ' of ' || x.max_attempts || ')',
				lease_until = NULL, claim_token = NULL, updated_at = now()
			WHERE x.status = 'running' AND x.lease_until < $1
			RETURNING x.status)
		SELECT count(*) FILTER (WHERE status = 'pending'), count(*) FILTER (WHERE status = 'failed') FROM x`, now).
		Scan(&requeued, &failed)
	return requeued, failed, mapErr("expiring AMR task run leases", err)
}

// DeleteOldTaskRuns deletes up to batch finished runs that finished before the cutoff,
// keeping the latest scheduled run of each task on each device (the planner's memory of
// which slot ran last). Callers repeat it until it returns fewer than batch.
func (s *Store) DeleteOldTaskRuns(ctx context.Context, before time.Time, batch int) (int64, error) {
	tag, err := s.pool.Exec(ctx, `
		DELETE FROM amr_task_runs WHERE id IN (
			SELECT x.id FROM amr_task_runs x
			WHERE x.finished_at < $1 AND (x.slot IS NULL OR EXISTS (SELECT 1 FROM amr_task_runs n
				WHERE n.task_id = x.task_id AND n.meter_device_id = x.meter_device_id AND n.slot > x.slot))
			LIMIT $2)`, before, batch)
	if err != nil {
		return 0, mapErr("deleting old AMR task runs", err)
	}
	return tag.RowsAffected(), nil
}
