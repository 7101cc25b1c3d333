package store

import (
	"context"
	"encoding/json"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
)

// AmrTask is a collection task: which function (task_call, with task_kwargs) to call on
// which meter execution interface, and how often. Task groups and meter devices use it.
type AmrTask struct {
	ID                 uuid.UUID  `json:"id"`
	OrganizationID     *uuid.UUID `json:"organization"`
	Name               string     `json:"name"`
	Description        string     `json:"description"`
	IsActive           bool       `json:"is_active"`
	Schedule           string     `json:"schedule"`
	RunOffsetSeconds   int64      `json:"run_offset_seconds"`
	MeterExecutionType string     `json:"meter_execution_type"`
	TaskCall           string     `json:"task_call"`
	// TaskKwargs is a JSON object or nil (JSON null), stored as jsonb.
	TaskKwargs json.RawMessage `json:"task_kwargs"`
	CreatedAt  time.Time       `json:"created_at"`
	UpdatedAt  time.Time       `json:"updated_at"`
}

var amrTasks = entity[AmrTask]{
	what: "an AMR task",
	from: "amr_tasks x",
	cols: "x.id, x.organization_id, x.name, x.description, x.is_active, x.schedule, x.run_offset_seconds, " +
		"x.meter_execution_type, x.task_call, x.task_kwargs::text, x.created_at, x.updated_at",
	order: "x.created_at, x.id",
	scan: func(row pgx.CollectableRow) (AmrTask, error) {
		var v AmrTask
		var kwargs *string
		err := row.Scan(&v.ID, &v.OrganizationID, &v.Name, &v.Description, &v.IsActive, &v.Schedule, &v.RunOffsetSeconds,
			&v.MeterExecutionType, &v.TaskCall, &kwargs, &v.CreatedAt, &v.UpdatedAt)
		if kwargs != nil {
			v.TaskKwargs = json.RawMessage(*kwargs)
		}
		return v, err
	},
}

// ListAmrTasks returns one page of AMR tasks in scope.
func (s *Store) ListAmrTasks(ctx context.Context, sc Scope, f Filter, p Page) ([]AmrTask, int, error) {
	return amrTasks.list(ctx, s.pool, sc, f, p)
}

// GetAmrTask returns one AMR task in scope.
func (s *Store) GetAmrTask(ctx context.Context, sc Scope, id uuid.UUID) (AmrTask, error) {
	return amrTasks.get(ctx, s.pool, sc, id)
}

// kwargsArg is task_kwargs as a query argument: JSON text for a jsonb parameter, or NULL.
func kwargsArg(k json.RawMessage) any {
	if k == nil {
		return nil
	}
	return string(k)
}

// CreateAmrTask adds an AMR task.
func (s *Store) CreateAmrTask(ctx context.Context, in AmrTask) (AmrTask, error) {
	var out AmrTask
	err := s.inTx(ctx, "creating an AMR task", func(tx pgx.Tx) error {
		var id uuid.UUID
		if err := tx.QueryRow(ctx, `INSERT INTO amr_tasks (organization_id, name, description, is_active, schedule,
			run_offset_seconds, meter_execution_type, task_call, task_kwargs)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9::text::jsonb) RETURNING id`,
			orgOf(in.OrganizationID), in.Name, in.Description, in.IsActive, in.Schedule, in.RunOffsetSeconds,
			in.MeterExecutionType, in.TaskCall, kwargsArg(in.TaskKwargs)).Scan(&id); err != nil {
			return err
		}
		var err error
		out, err = amrTasks.get(ctx, tx, AllOrgs, id)
		return err
	})
	return out, err
}

// UpdateAmrTask replaces an AMR task's fields. A task used by task groups or meter
// devices of its organization cannot move to another organization (409).
func (s *Store) UpdateAmrTask(ctx context.Context, sc Scope, id uuid.UUID, in AmrTask) (AmrTask, error) {
	var out AmrTask
	err := s.inTx(ctx, "updating an AMR task", func(tx pgx.Tx) error {
		if err := updateScoped(ctx, tx, sc, `UPDATE amr_tasks x SET organization_id = $2, name = $3, description = $4,
			is_active = $5, schedule = $6, run_offset_seconds = $7, meter_execution_type = $8, task_call = $9,
			task_kwargs = $10::text::jsonb, updated_at = now()`,
			id, orgOf(in.OrganizationID), in.Name, in.Description, in.IsActive, in.Schedule, in.RunOffsetSeconds,
			in.MeterExecutionType, in.TaskCall, kwargsArg(in.TaskKwargs)); err != nil {
			return err
		}
		// The link tables have no organization column: the join brings the user's.
		if err := refusedIfUsedElsewhere(ctx, tx, "amr_task_group_tasks l JOIN amr_task_groups g ON g.id = l.group_id", "l.task_id",
			id, in.OrganizationID, "AMR task groups of another organization use this AMR task"); err != nil {
			return err
		}
		if err := refusedIfUsedElsewhere(ctx, tx, "meter_device_tasks l JOIN meter_devices d ON d.id = l.device_id", "l.task_id",
			id, in.OrganizationID, "meter devices of another organization use this AMR task"); err != nil {
			return err
		}
		var err error
		out, err = amrTasks.get(ctx, tx, AllOrgs, id)
		return err
	})
	return out, err
}

// DeleteAmrTask removes an AMR task. It is refused (409) while a task group or a meter
// device uses it: they must let go of it first, so that no schedule changes silently.
func (s *Store) DeleteAmrTask(ctx context.Context, sc Scope, id uuid.UUID) error {
	return remove(ctx, s.pool, "amr_tasks", "an AMR task", sc, id)
}
