// Package jobs runs amrd's background work on a gocron scheduler: planning AMR task runs
// into the durable queue (one row a slot, task and device), executing the runs whose
// execution type has a built-in executor, expiring readings, system events, staged
// readings and old runs with drop_chunks, promoting staged readings, and releasing stale
// network interface blocks. Every job takes a PostgreSQL advisory lock first, so that with
// several replicas on one database each job runs on one replica at a time; runs are
// claimed row by row (FOR UPDATE SKIP LOCKED), so that replicas share them, never twice.
package jobs

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/go-co-op/gocron/v2"
	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/amrd/amrd/store"
)

// Store is what the jobs need of the database; *store.Store satisfies it.
type Store interface {
	WithJobLock(ctx context.Context, job string, fn func(context.Context) error) (bool, error)

	ActiveTasks(ctx context.Context) ([]store.ScheduledTask, error)
	PlanTaskRuns(ctx context.Context, due []store.DueSlot, maxAttempts int) (int64, error)
	CancelStaleTaskRuns(ctx context.Context, now time.Time) (int64, error)
	ExpireTaskRunLeases(ctx context.Context, now time.Time) (requeued, failed int64, err error)
	ClaimTaskRuns(ctx context.Context, sc store.Scope, c store.Claim) ([]store.TaskRun, error)
	FinishTaskRun(ctx context.Context, sc store.Scope, id int64, token uuid.UUID, o store.RunOutcome) (store.TaskRun, error)
	ReleaseTaskRun(ctx context.Context, id int64, token uuid.UUID, runAt time.Time) error
	DeleteOldTaskRuns(ctx context.Context, before time.Time, batch int) (int64, error)

	TaskRunTarget(ctx context.Context, deviceID uuid.UUID) (store.RunTarget, error)
	BlockInterface(ctx context.Context, id uuid.UUID, now, staleBefore time.Time) (bool, error)
	UnblockInterface(ctx context.Context, id uuid.UUID, since time.Time) error
	ReleaseStaleBlocks(ctx context.Context, before time.Time) (int64, error)

	DropChunks(ctx context.Context, table string, olderThan time.Time) (int, error)
	PromoteAllStaged(ctx context.Context) (written, cleared int64, err error)

	RollupState(ctx context.Context) (store.RollupState, error)
	MoveRollupThreshold(ctx context.Context, to time.Time) error
	MaterializeRollups(ctx context.Context, slice time.Duration) (store.RollupResult, error)
	RecomputeMarked(ctx context.Context, limit int) (store.RollupResult, error)
	ReadingsRetentionCutoff(ctx context.Context, want time.Time) (time.Time, error)

	ClusterReadingChunks(ctx context.Context, before time.Time, max int, seen map[string]int64) ([]store.ChunkReorder, error)
}

// Executor performs one run of its execution type. The context carries the run's
// deadline. It returns the result to store with the run (a JSON object, or nil) and an
// error when the run failed; the error's text is what operators see, so it says what
// went wrong in their words (which step, which address).
type Executor interface {
	Execute(ctx context.Context, run store.TaskRun, target store.RunTarget) (result []byte, err error)
}

// Config sets the jobs' intervals and limits. DefaultConfig holds the defaults; New gives
// a field left at zero its default, except those whose zero means "keep" (the rollups'
// and DataRetention) or "on" (NoRollups).
type Config struct {
	// PlanEvery is how often due slots are planned. Default 5 s: a run starts at most
	// about 5 s (plus DispatchEvery) after its time, never before it.
	PlanEvery time.Duration
	// DispatchEvery is how often this replica claims due runs for its executors. Default 1 s.
	DispatchEvery time.Duration
	// Workers is how many runs this replica executes at once. Default 16: runs wait on
	// meters (a mode C readout over TCP takes 1–10 s), not on the CPU, so 16 in flight
	// read about 100–1,000 meters a minute on one replica.
	Workers int
	// RunTimeout is every run's deadline (AMR_RUN_TIMEOUT). Default 60 s: a slow meter
	// with a 5 s silence limit per step and a long data block fits well inside it.
	RunTimeout time.Duration
	// MaxAttempts is how many times a scheduled run may be claimed (AMR_RUN_MAX_ATTEMPTS).
	// Only an expired claim (its replica died) is retried; an executor's failure is
	// final: the next slot is the natural retry. Default store.DefaultRunMaxAttempts (3),
	// as for invoked runs.
	MaxAttempts int
	// BlockTimeout releases a network interface block older than this
	// (AMR_BLOCK_TIMEOUT). Default 5 min: longer than any run (RunTimeout + a minute).
	BlockTimeout time.Duration
	// BlockedRetry is how long a run waits when its interface is blocked by another run.
	// Default 5 s.
	BlockedRetry time.Duration
	// RetentionEvery is how often retention runs. Default 1 h: chunks are a day (readings,
	// staged) or a week (events) long, so an hour drops each within an hour of its time.
	RetentionEvery time.Duration
	// DataRetention expires readings and system events (DATA_RETENTION_DAYS); 0 keeps them.
	DataRetention time.Duration
	// StagedRetention expires staged readings (STAGED_DATA_RETENTION_DAYS, default 30 days).
	StagedRetention time.Duration
	// RunRetention deletes finished runs older than this (AMR_RUN_RETENTION_DAYS, default
	// 30 days), keeping the latest scheduled run of each task and device.
	RunRetention time.Duration
	// PromoteEvery is how often staged readings of existing devices are promoted. Default
	// 10 min.
	PromoteEvery time.Duration
	// RollupEvery is how often the rollups are brought up to date. Default 1 min.
	RollupEvery time.Duration
	// NoRollups leaves the rollups alone on this replica (AMRD_ROLLUPS=false): the
	// real-time views then aggregate everything above the last materialized point live.
	NoRollups bool
	// RollupDelay is how far behind real time the hourly buckets are materialized: the
	// threshold is the start of the hour at least this long ago, so that the readings of
	// an hour (and the one on its end, which closes its consumption) have arrived before
	// it is materialized; later ones are marked and recomputed. Default 15 min.
	RollupDelay time.Duration
	// RollupSlice is how much time one materialization transaction covers (default 1 day:
	// 10,000 meters x 8 series x 96 readings = 7.7 M readings at the most).
	RollupSlice time.Duration
	// HourlyRetention and DailyRetention expire rollups (0 keeps them, the default).
	HourlyRetention, DailyRetention time.Duration
	// ClusterEvery is how often the cluster job looks for settled readings chunks to
	// rewrite in key order (ClusterReadings). Default 10 min.
	ClusterEvery time.Duration
	// ClusterAfter is how long after its day ended a readings chunk counts as settled
	// (AMRD_CLUSTER_AFTER_HOURS), if no reading came into it since the previous run: late
	// readings into it are rare by then, and CLUSTER locks the chunk while it runs.
	// Default 48 h.
	ClusterAfter time.Duration
	// NoCluster leaves the readings chunks as written (AMRD_CLUSTER_READINGS=false).
	NoCluster bool
	// Worker names this replica in the runs it claims. Default host name and process id.
	Worker string
	// Now is the clock of slots, due times, leases and blocks. serve passes the
	// database's (store.Clock), so that every replica computes them by one clock and a
	// replica whose own clock is off cannot expire another's live claim; tests drive
	// their own. nil means time.Now.
	Now func() time.Time
}

// DefaultConfig is the jobs' configuration as documented on each field, and amrd
// serve's unless the environment says otherwise. Worker and Now are left empty: they
// are this process's (defaults fills them in).
func DefaultConfig() Config {
	day := 24 * time.Hour
	return Config{
		PlanEvery:       5 * time.Second,
		DispatchEvery:   time.Second,
		Workers:         16,
		RunTimeout:      60 * time.Second,
		MaxAttempts:     store.DefaultRunMaxAttempts,
		BlockTimeout:    5 * time.Minute,
		BlockedRetry:    5 * time.Second,
		RetentionEvery:  time.Hour,
		StagedRetention: 30 * day,
		RunRetention:    30 * day,
		PromoteEvery:    10 * time.Minute,
		RollupEvery:     time.Minute,
		RollupDelay:     15 * time.Minute,
		RollupSlice:     day,
		ClusterEvery:    10 * time.Minute,
		ClusterAfter:    2 * day,
	}
}

// defaults gives every field left at zero (or below) its DefaultConfig value, except
// those whose zero means "keep" or "on" (DataRetention, HourlyRetention,
// DailyRetention, NoRollups), which are kept.
func (c *Config) defaults() {
	d := DefaultConfig()
	for _, f := range []struct{ v, def *time.Duration }{
		{&c.PlanEvery, &d.PlanEvery}, {&c.DispatchEvery, &d.DispatchEvery}, {&c.RunTimeout, &d.RunTimeout},
		{&c.BlockTimeout, &d.BlockTimeout}, {&c.BlockedRetry, &d.BlockedRetry}, {&c.RetentionEvery, &d.RetentionEvery},
		{&c.StagedRetention, &d.StagedRetention}, {&c.RunRetention, &d.RunRetention}, {&c.PromoteEvery, &d.PromoteEvery},
		{&c.RollupEvery, &d.RollupEvery}, {&c.RollupDelay, &d.RollupDelay}, {&c.RollupSlice, &d.RollupSlice},
		{&c.ClusterEvery, &d.ClusterEvery}, {&c.ClusterAfter, &d.ClusterAfter},
	} {
		if *f.v <= 0 {
			*f.v = *f.def
		}
	}
	if c.Workers <= 0 {
		c.Workers = d.Workers
	}
	if c.MaxAttempts <= 0 {
		c.MaxAttempts = d.MaxAttempts
	}
	if c.Worker == "" {
		host, _ := os.Hostname()
		c.Worker = "amrd@" + host + ":" + strconv.Itoa(os.Getpid())
	}
	if c.Now == nil {
		c.Now = time.Now
	}
}

// Jobs owns the scheduler, the executors and the runs in flight.
type Jobs struct {
	cfg   Config
	st    Store
	execs map[string]Executor
	// types are the execution types of execs, as claims name them.
	types []string
	log   *slog.Logger
	m     *metrics
	// chunkWrites are the written-row counts of the readings chunks that wait to be
	// clustered, as the last cluster_readings run saw them (only that job uses it, one
	// run at a time).
	chunkWrites map[string]int64

	mu       sync.Mutex
	inFlight int
	runs     sync.WaitGroup
	// runCtx is the parent of every executing run; Run cancels it on shutdown.
	runCtx    context.Context
	cancelRun context.CancelFunc
}

// New makes the jobs; executors maps execution types to their built-in executors (runs
// of other types wait for an external worker).
func New(cfg Config, st Store, executors map[string]Executor, log *slog.Logger, reg prometheus.Registerer) (*Jobs, error) {
	cfg.defaults()
	m, err := newMetrics(reg)
	if err != nil {
		return nil, err
	}
	types := make([]string, 0, len(executors))
	for t := range executors {
		types = append(types, t)
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Jobs{cfg: cfg, st: st, execs: executors, types: types, log: log.With("component", "jobs"), m: m,
		runCtx: ctx, cancelRun: cancel, chunkWrites: map[string]int64{}}, nil
}

// Run schedules the jobs until ctx ends, then stops the scheduler, cancels the runs in
// flight (each goes back to the queue, its attempt not counted) and waits for them.
func (j *Jobs) Run(ctx context.Context) error {
	s, err := gocron.NewScheduler(gocron.WithLocation(time.UTC))
	if err != nil {
		return fmt.Errorf("starting the job scheduler: %w", err)
	}
	every := []struct {
		name string
		d    time.Duration
		fn   func(context.Context, time.Time) error
	}{
		{"plan", j.cfg.PlanEvery, j.Plan},
		{"dispatch", j.cfg.DispatchEvery, j.dispatchJob},
		{"retention", j.cfg.RetentionEvery, j.Retention},
		{"promote_staged", j.cfg.PromoteEvery, j.promoteJob},
		{"rollups", j.cfg.RollupEvery, j.Rollups},
		{"cluster_readings", j.cfg.ClusterEvery, j.ClusterReadings},
		{"release_blocks", time.Minute, j.ReleaseBlocks},
	}
	for _, e := range every {
		if e.name == "rollups" && j.cfg.NoRollups || e.name == "cluster_readings" && j.cfg.NoCluster {
			continue
		}
		_, err := s.NewJob(gocron.DurationJob(e.d),
			gocron.NewTask(func(ctx context.Context) { j.observe(ctx, e.name, e.fn) }),
			gocron.WithName(e.name),
			gocron.WithContext(ctx),
			// A job that overruns its interval is not started again beside itself.
			gocron.WithSingletonMode(gocron.LimitModeReschedule),
			gocron.WithStartAt(gocron.WithStartImmediately()))
		if err != nil {
			return fmt.Errorf("scheduling job %s: %w", e.name, err)
		}
	}
	s.Start()
	j.log.Info("jobs started", "worker", j.cfg.Worker, "workers", j.cfg.Workers, "executors", len(j.execs))
	<-ctx.Done()
	err = s.Shutdown()
	j.cancelRun()
	j.runs.Wait()
	j.log.Info("jobs stopped")
	return err
}

// observe runs one job with its metrics and log line. Jobs that lock run under the lock
// themselves; a failure is logged and counted, and the job runs again next time.
func (j *Jobs) observe(ctx context.Context, name string, fn func(context.Context, time.Time) error) {
	start := time.Now()
	err := fn(ctx, j.cfg.Now())
	j.m.duration.WithLabelValues(name).Observe(time.Since(start).Seconds())
	j.m.runs.WithLabelValues(name).Inc()
	if err != nil && ctx.Err() == nil {
		j.m.failures.WithLabelValues(name).Inc()
		j.log.Error("job failed", "job", name, "err", err)
	}
}

// locked runs fn under the job's advisory lock; another replica holding it is not an
// error (it does the work).
func (j *Jobs) locked(ctx context.Context, name string, fn func(context.Context) error) error {
	ran, err := j.st.WithJobLock(ctx, name, fn)
	if err == nil && !ran {
		j.m.skipped.WithLabelValues(name).Inc()
	}
	return err
}

// Plan expires lost claims, cancels pending runs whose task no longer applies, and
// queues the latest due slot of every active task on every device it reaches. A slot is
// planned once however often this runs, on however many replicas.
func (j *Jobs) Plan(ctx context.Context, now time.Time) error {
	return j.locked(ctx, "plan", func(ctx context.Context) error {
		requeued, failed, err := j.st.ExpireTaskRunLeases(ctx, now)
		if err != nil {
			return err
		}
		if requeued+failed > 0 {
			j.m.expired.Add(float64(requeued + failed))
			j.log.Warn("claims on AMR task runs expired", "requeued", requeued, "failed", failed)
		}
		cancelled, err := j.st.CancelStaleTaskRuns(ctx, now)
		if err != nil {
			return err
		}
		if cancelled > 0 {
			j.m.cancelled.Add(float64(cancelled))
			j.log.Info("pending AMR task runs cancelled: their task no longer applies", "runs", cancelled)
		}
		tasks, err := j.st.ActiveTasks(ctx)
		if err != nil {
			return err
		}
		due := make([]store.DueSlot, 0, len(tasks))
		for _, t := range tasks {
			slot, runAt, ok, err := Due(t.Schedule, t.RunOffsetSeconds, t.CreatedAt, now)
			if err != nil {
				j.log.Error("AMR task not planned", "task", t.ID, "err", err)
				continue
			}
			if ok && !runAt.After(now) {
				due = append(due, store.DueSlot{TaskID: t.ID, Slot: slot, RunAt: runAt})
			}
		}
		n, err := j.st.PlanTaskRuns(ctx, due, j.cfg.MaxAttempts)
		if err != nil {
			return err
		}
		if n > 0 {
			j.m.planned.Add(float64(n))
			j.log.Info("AMR task runs planned", "runs", n, "tasks", len(due))
		}
		return nil
	})
}

func (j *Jobs) dispatchJob(ctx context.Context, now time.Time) error {
	_, err := j.Dispatch(ctx, now)
	return err
}

// Dispatch claims as many due runs as this replica has free workers, for the execution
// types it has executors for, and starts them. It returns how many it started.
func (j *Jobs) Dispatch(ctx context.Context, now time.Time) (int, error) {
	if len(j.execs) == 0 {
		return 0, nil
	}
	j.mu.Lock()
	free := j.cfg.Workers - j.inFlight
	j.mu.Unlock()
	if free <= 0 {
		return 0, nil
	}
	runs, err := j.st.ClaimTaskRuns(ctx, store.AllOrgs, store.Claim{Types: j.types, Worker: j.cfg.Worker, Limit: free,
		Lease: j.cfg.RunTimeout + 30*time.Second, Now: now})
	if err != nil {
		return 0, err
	}
	j.mu.Lock()
	j.inFlight += len(runs)
	j.m.inFlight.Set(float64(j.inFlight))
	j.mu.Unlock()
	for _, r := range runs {
		j.runs.Add(1)
		go func() {
			defer j.runs.Done()
			defer func() {
				j.mu.Lock()
				j.inFlight--
				j.m.inFlight.Set(float64(j.inFlight))
				j.mu.Unlock()
			}()
			j.execute(r)
		}()
	}
	return len(runs), nil
}

// settleTimeout bounds the database writes that settle a run after it ended, even on
// shutdown, so that a run is not left to its lease when it could be settled at once.
const settleTimeout = 10 * time.Second

// execute performs one claimed run and records its outcome.
func (j *Jobs) execute(run store.TaskRun) {
	log := j.log.With("run", run.ID, "device", run.MeterDeviceName, "execution_type", run.MeterExecutionType)
	token := *run.ClaimToken
	settle, cancelSettle := context.WithTimeout(context.WithoutCancel(j.runCtx), settleTimeout)
	defer cancelSettle()
	ctx, cancel := context.WithTimeout(j.runCtx, j.cfg.RunTimeout)
	defer cancel()

	start := time.Now()
	target, err := j.st.TaskRunTarget(ctx, run.MeterDeviceID)
	if err == nil && target.CanBlock && target.InterfaceID != nil {
		blockedAt := j.cfg.Now().UTC().Truncate(time.Microsecond)
		var got bool
		got, err = j.st.BlockInterface(ctx, *target.InterfaceID, blockedAt, blockedAt.Add(-j.cfg.BlockTimeout))
		if err == nil && !got {
			// Another run holds the interface: wait for it, without spending an attempt.
			j.m.blocked.Inc()
			if err := j.st.ReleaseTaskRun(settle, run.ID, token, j.cfg.Now().Add(j.cfg.BlockedRetry)); err != nil {
				log.Error("releasing a run whose network interface is blocked", "err", err)
			}
			return
		}
		if err == nil {
			defer func() {
				if err := j.st.UnblockInterface(settle, *target.InterfaceID, blockedAt); err != nil {
					log.Error("unblocking a network interface", "interface", *target.InterfaceID, "err", err)
				}
			}()
		}
	}
	var result []byte
	if err == nil {
		result, err = j.execs[run.MeterExecutionType].Execute(ctx, run, target)
	}
	if err != nil && j.runCtx.Err() != nil {
		// amrd is stopping: the run goes back to the queue to run again, attempt not counted.
		if err := j.st.ReleaseTaskRun(settle, run.ID, token, j.cfg.Now()); err != nil {
			log.Error("returning a run to the queue on shutdown", "err", err)
		}
		return
	}
	out := store.RunOutcome{Status: store.RunSucceeded, Result: result, Now: j.cfg.Now()}
	if err != nil {
		out.Status, out.Error = store.RunFailed, runError(err, ctx)
	}
	j.m.finished.WithLabelValues(run.MeterExecutionType, out.Status).Inc()
	j.m.runSeconds.WithLabelValues(run.MeterExecutionType).Observe(time.Since(start).Seconds())
	if _, err := j.st.FinishTaskRun(settle, store.AllOrgs, run.ID, token, out); err != nil {
		log.Error("recording a run's outcome", "err", err)
		return
	}
	if out.Status == store.RunFailed {
		log.Warn("AMR task run failed", "err", out.Error)
	} else {
		log.Info("AMR task run succeeded")
	}
}

// runError is the text operators see for a failed run.
func runError(err error, ctx context.Context) string {
	if errors.Is(ctx.Err(), context.DeadlineExceeded) && !errors.Is(err, context.DeadlineExceeded) {
		return "the run passed its deadline: " + err.Error()
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return "the run passed its deadline"
	}
	return err.Error()
}

// Retention drops the chunks that are past their retention, and deletes finished runs
// past theirs in batches.
func (j *Jobs) Retention(ctx context.Context, now time.Time) error {
	return j.locked(ctx, "retention", func(ctx context.Context) error {
		drop := func(table string, keep time.Duration) error {
			n, err := j.dropChunks(ctx, table, now.Add(-keep))
			if err != nil {
				return err
			}
			j.m.chunks.WithLabelValues(table).Add(float64(n))
			j.log.Info("retention", "table", table, "older_than", now.Add(-keep).UTC().Format(time.RFC3339), "chunks_dropped", n)
			return nil
		}
		if j.cfg.DataRetention > 0 {
			// Raw readings stay while rollup buckets still need them.
			cut, err := j.st.ReadingsRetentionCutoff(ctx, now.Add(-j.cfg.DataRetention))
			if err != nil {
				return err
			}
			if !cut.IsZero() {
				if err := drop(store.TableReadings, now.Sub(cut)); err != nil {
					return err
				}
			}
			if err := drop(store.TableSystemEvents, j.cfg.DataRetention); err != nil {
				return err
			}
		}
		if j.cfg.HourlyRetention > 0 {
			if err := drop(store.TableRollupHourly, j.cfg.HourlyRetention); err != nil {
				return err
			}
			if err := drop(store.TableRollupSeriesHourly, j.cfg.HourlyRetention); err != nil {
				return err
			}
		}
		if j.cfg.DailyRetention > 0 {
			if err := drop(store.TableRollupDaily, j.cfg.DailyRetention); err != nil {
				return err
			}
		}
		if err := drop(store.TableStaged, j.cfg.StagedRetention); err != nil {
			return err
		}
		// Deletes of 10,000 rows a statement keep each transaction short (a few tens of ms).
		const batch = 10_000
		var total int64
		for {
			n, err := j.st.DeleteOldTaskRuns(ctx, now.Add(-j.cfg.RunRetention), batch)
			if err != nil {
				return err
			}
			total += n
			if n < batch {
				break
			}
		}
		j.m.runsDeleted.Add(float64(total))
		j.log.Info("retention", "table", "amr_task_runs", "rows_deleted", total)
		return nil
	})
}

func (j *Jobs) promoteJob(ctx context.Context, _ time.Time) error { return j.PromoteStaged(ctx) }

// markBatch is how many marks one recomputation takes: a bulk import of late readings
// marks one row a device and series a batch, so 10,000 marks are a few thousand
// ranges, one transaction of a few seconds.
const markBatch = 10_000

// Rollups brings the rollups up to date: it moves the threshold to the start of the hour
// RollupDelay ago, materializes every bucket below it, then recomputes marked buckets
// until no mark is left.
func (j *Jobs) Rollups(ctx context.Context, now time.Time) error {
	return j.locked(ctx, "rollups", func(ctx context.Context) error {
		target := now.Add(-j.cfg.RollupDelay).UTC().Truncate(time.Hour)
		if err := j.st.MoveRollupThreshold(ctx, target); err != nil {
			if !errors.Is(err, store.ErrRollupBusy) {
				return err
			}
			j.log.Warn("rollups: the threshold did not move this time", "err", err)
		}
		var total store.RollupResult
		r, err := j.st.MaterializeRollups(ctx, j.cfg.RollupSlice)
		j.m.rollupRows(r)
		total.Add(r)
		if err != nil {
			return err
		}
		for {
			r, err := j.st.RecomputeMarked(ctx, markBatch)
			j.m.rollupRows(r)
			total.Add(r)
			if err != nil {
				return err
			}
			if r.Marks < markBatch {
				break
			}
		}
		st, err := j.st.RollupState(ctx)
		if err != nil {
			return err
		}
		if !st.Materialized.IsZero() {
			j.m.rollupLag.Set(now.Sub(st.Materialized).Seconds())
		}
		j.m.rollupMarks.Set(float64(st.Marks))
		if total != (store.RollupResult{}) {
			j.log.Info("rollups", "materialized", st.Materialized.Format(time.RFC3339), "readings", total.Readings,
				"hourly", total.Hourly, "daily", total.Daily, "series_hourly", total.SeriesHourly,
				"recomputed", total.Recomputed, "marks_discarded", total.MarksDiscarded)
		}
		if total.MarksDiscarded > 0 {
			j.log.Warn("rollups: late readings below the raw retention horizon did not change their frozen buckets",
				"marks", total.MarksDiscarded)
		}
		return nil
	})
}

// dropAttempts is how many times retention tries a table's drop_chunks in one run.
const dropAttempts = 3

// dropChunks drops a table's chunks older than the cutoff, again after a moment when the
// database answers that it is unavailable: drop_chunks deadlocks with a write into a
// chunk it drops (a reading past retention; make soak sends them), PostgreSQL aborts one
// of the two after deadlock_timeout, and when that is the drop, the writer has its locks
// a moment later. The writer re-sends on its side; retention tries again at once rather
// than fail the run (a failed run is counted and logged as an error) and wait for the
// next one.
func (j *Jobs) dropChunks(ctx context.Context, table string, olderThan time.Time) (int, error) {
	var n int
	var err error
	for attempt := 1; ; attempt++ {
		n, err = j.st.DropChunks(ctx, table, olderThan)
		if !errors.Is(err, store.ErrUnavailable) || attempt == dropAttempts {
			return n, err
		}
		j.log.Warn("retention: dropping chunks again", "table", table, "attempt", attempt+1, "err", err)
		select {
		case <-ctx.Done():
			return n, err
		case <-time.After(time.Duration(attempt) * 200 * time.Millisecond):
		}
	}
}

// PromoteStaged promotes the staged readings of devices that exist.
func (j *Jobs) PromoteStaged(ctx context.Context) error {
	return j.locked(ctx, "promote_staged", func(ctx context.Context) error {
		written, cleared, err := j.st.PromoteAllStaged(ctx)
		if err != nil {
			return err
		}
		j.m.promoted.Add(float64(written))
		if cleared > 0 {
			j.log.Info("staged readings promoted", "written", written, "cleared", cleared)
		}
		return nil
	})
}

// ReleaseBlocks ends network interface blocks older than the block timeout.
func (j *Jobs) ReleaseBlocks(ctx context.Context, now time.Time) error {
	return j.locked(ctx, "release_blocks", func(ctx context.Context) error {
		n, err := j.st.ReleaseStaleBlocks(ctx, now.Add(-j.cfg.BlockTimeout))
		if err != nil {
			return err
		}
		if n > 0 {
			j.m.blocksReleased.Add(float64(n))
			j.log.Warn("stale network interface blocks released", "interfaces", n)
		}
		return nil
	})
}
