package jobs_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/amrd/amrd/jobs"
	"github.com/amrd/amrd/store"
	"github.com/amrd/amrd/store/storetest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func discard() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func utc(s string) time.Time {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return t.UTC()
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// fleet is an organization with a config allowing series 1.8.0, a type, and devices with a
// network interface each, as SQL rows.
type fleet struct {
	url     string
	org     uuid.UUID
	typ     uuid.UUID
	devices []uuid.UUID
	netifs  []uuid.UUID
}

func newFleet(t *testing.T, url string, devices int) *fleet {
	t.Helper()
	f := &fleet{url: url}
	storetest.QueryRow(t, url, "INSERT INTO organizations (name) VALUES ('A') RETURNING id", &f.org)
	var series, config uuid.UUID
	storetest.Query(t, url, "INSERT INTO meter_reading_series (organization_id, name, unit) VALUES ($1, '1.8.0', 'kWh') RETURNING id",
		[]any{f.org}, &series)
	storetest.Query(t, url, "INSERT INTO meter_device_configs (organization_id, name) VALUES ($1, 'c') RETURNING id",
		[]any{f.org}, &config)
	storetest.Exec(t, url, "INSERT INTO meter_device_config_series (config_id, series_id) VALUES ($1, $2)", config, series)
	storetest.Query(t, url, `INSERT INTO meter_device_types (organization_id, name, manufacturer, manufacturer_model, config_id)
		VALUES ($1, 't', 'm', 'mm', $2) RETURNING id`, []any{f.org, config}, &f.typ)
	for range devices {
		f.addDevice(t)
	}
	return f
}

func (f *fleet) addDevice(t *testing.T) uuid.UUID {
	t.Helper()
	var netif, dev uuid.UUID
	storetest.Query(t, f.url, `INSERT INTO network_interfaces (organization_id, static_ip_address, port, can_block)
		VALUES ($1, '127.0.0.1', 9, true) RETURNING id`, []any{f.org}, &netif)
	storetest.Query(t, f.url, `INSERT INTO meter_devices (organization_id, name, protocol, type_id, network_interface_id)
		VALUES ($1, 'm-' || gen_random_uuid(), 'iec62056-21', $2, $3) RETURNING id`, []any{f.org, f.typ, netif}, &dev)
	f.devices = append(f.devices, dev)
	f.netifs = append(f.netifs, netif)
	return dev
}

// task adds an active task created at 2026-01-01, linked to the devices directly.
func (f *fleet) task(t *testing.T, schedule string, offset int, execType string, devices ...uuid.UUID) uuid.UUID {
	t.Helper()
	var id uuid.UUID
	storetest.Query(t, f.url, `INSERT INTO amr_tasks (organization_id, name, schedule, run_offset_seconds, meter_execution_type,
		task_call, task_kwargs, created_at) VALUES ($1, 'read', $2, $3, $4, 'readout', '{"k": 1}', '2026-01-01T00:00:00Z') RETURNING id`,
		[]any{f.org, schedule, offset, execType}, &id)
	for _, d := range devices {
		storetest.Exec(t, f.url, "INSERT INTO meter_device_tasks (device_id, task_id) VALUES ($1, $2)", d, id)
	}
	return id
}

func countRuns(t *testing.T, url, where string, args ...any) int {
	t.Helper()
	var n int
	storetest.Query(t, url, "SELECT count(*) FROM amr_task_runs WHERE "+where, args, &n)
	return n
}

// fakeExec counts executions per run and answers with err.
type fakeExec struct {
	mu    sync.Mutex
	calls map[int64]int
	err   error
	// during is called inside each execution.
	during func(store.TaskRun, store.RunTarget)
}

func (e *fakeExec) Execute(_ context.Context, run store.TaskRun, target store.RunTarget) ([]byte, error) {
	if e.during != nil {
		e.during(run, target)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.calls == nil {
		e.calls = map[int64]int{}
	}
	e.calls[run.ID]++
	if e.err != nil {
		return nil, e.err
	}
	return []byte(`{"read": true}`), nil
}

func (e *fakeExec) count() (runs, calls int) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, n := range e.calls {
		runs++
		calls += n
	}
	return runs, calls
}

// replica is one amrd's jobs on its own store (its own pool) over the shared database.
func replica(t *testing.T, url string, cfg jobs.Config, execs map[string]jobs.Executor) *jobs.Jobs {
	t.Helper()
	st, err := store.Open(testCtx(t), store.Config{URL: url, MaxConns: 6}, discard())
	require.NoError(t, err)
	t.Cleanup(st.Close)
	j, err := jobs.New(cfg, st, execs, discard(), prometheus.NewRegistry())
	require.NoError(t, err)
	return j
}

// waitIdle waits until no run is executing on these replicas (runs execute in goroutines).
func waitIdle(t *testing.T, url string) {
	t.Helper()
	require.Eventually(t, func() bool { return countRuns(t, url, "status = 'running'") == 0 }, 30*time.Second, 20*time.Millisecond)
}

func TestPlanOneRunPerSlotAcrossReplicas(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	_, url := storetest.New(t)
	f := newFleet(t, url, 3)
	task := f.task(t, "hourly", 30, "generic_lis200", f.devices[0], f.devices[1])
	// The third device gets the task through a task group.
	var group uuid.UUID
	storetest.Query(t, url, "INSERT INTO amr_task_groups (organization_id, name) VALUES ($1, 'g') RETURNING id", []any{f.org}, &group)
	storetest.Exec(t, url, "INSERT INTO amr_task_group_tasks (group_id, task_id) VALUES ($1, $2)", group, task)
	storetest.Exec(t, url, "INSERT INTO meter_device_task_groups (device_id, group_id) VALUES ($1, $2)", f.devices[2], group)

	a, b := replica(t, url, jobs.Config{}, nil), replica(t, url, jobs.Config{}, nil)

	t.Run("two replicas planning the same slot many times make one run a device", func(t *testing.T) {
		var wg sync.WaitGroup
		for _, r := range []*jobs.Jobs{a, b} {
			wg.Go(func() {
				for i := range 20 {
					// 10:00:30 is the slot's run time (offset 30 s); every call is inside the slot.
					require.NoError(t, r.Plan(ctx, utc("2026-11-26T10:00:30Z").Add(time.Duration(i)*time.Minute)))
				}
			})
		}
		wg.Wait()
		require.Equal(t, 3, countRuns(t, url, "slot = $1 AND run_at = $2 AND status = 'pending' AND trigger = 'schedule'",
			utc("2026-11-26T10:00:00Z"), utc("2026-11-26T10:00:30Z")))
		require.Equal(t, 3, countRuns(t, url, "true"))
	})

	t.Run("never before its time: at 11:00:10 the 11:00 slot (offset 30 s) is not due", func(t *testing.T) {
		require.NoError(t, a.Plan(ctx, utc("2026-11-26T11:00:10Z")))
		require.Equal(t, 0, countRuns(t, url, "slot = $1", utc("2026-11-26T11:00:00Z")))
	})

	t.Run("slots missed while no amrd ran: only the latest runs, late, once", func(t *testing.T) {
		require.NoError(t, a.Plan(ctx, utc("2026-11-26T13:20:00Z")))
		require.Equal(t, 0, countRuns(t, url, "slot = $1", utc("2026-11-26T11:00:00Z")))
		require.Equal(t, 3, countRuns(t, url, "slot = $1", utc("2026-11-26T13:00:00Z")))
		// A replica whose clock lags plans an older slot: a later one exists, so nothing.
		require.NoError(t, b.Plan(ctx, utc("2026-11-26T12:10:00Z")))
		require.Equal(t, 0, countRuns(t, url, "slot = $1", utc("2026-11-26T12:00:00Z")))
		require.Equal(t, 6, countRuns(t, url, "true"))
	})

	t.Run("a deactivated task's pending runs are cancelled and it plans no more", func(t *testing.T) {
		storetest.Exec(t, url, "UPDATE amr_tasks SET is_active = false WHERE id = $1", task)
		require.NoError(t, a.Plan(ctx, utc("2026-11-26T14:00:30Z")))
		require.Equal(t, 0, countRuns(t, url, "status = 'pending'"))
		require.Equal(t, 6, countRuns(t, url, "status = 'cancelled'"))
		require.Equal(t, 0, countRuns(t, url, "slot = $1", utc("2026-11-26T14:00:00Z")))
	})

	t.Run("a device unlinked from the task: its pending run is cancelled", func(t *testing.T) {
		storetest.Exec(t, url, "UPDATE amr_tasks SET is_active = true WHERE id = $1", task)
		require.NoError(t, a.Plan(ctx, utc("2026-11-26T15:00:30Z")))
		require.Equal(t, 3, countRuns(t, url, "slot = $1 AND status = 'pending'", utc("2026-11-26T15:00:00Z")))
		storetest.Exec(t, url, "DELETE FROM meter_device_task_groups WHERE device_id = $1", f.devices[2])
		require.NoError(t, a.Plan(ctx, utc("2026-11-26T15:00:40Z")))
		require.Equal(t, 1, countRuns(t, url, "slot = $1 AND status = 'cancelled' AND meter_device_id = $2",
			utc("2026-11-26T15:00:00Z"), f.devices[2]))
	})
}

func TestDispatchExecutesEachRunOnce(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	_, url := storetest.New(t)
	f := newFleet(t, url, 24)
	f.task(t, "quarterly", 0, "generic_iec6205621", f.devices...)
	exec := &fakeExec{}
	execs := map[string]jobs.Executor{"generic_iec6205621": exec}
	cfg := jobs.Config{Workers: 4}
	a, b := replica(t, url, cfg, execs), replica(t, url, cfg, execs)
	now := utc("2026-11-26T10:15:00Z")
	require.NoError(t, a.Plan(ctx, now))
	require.Equal(t, 24, countRuns(t, url, "status = 'pending'"))

	var wg sync.WaitGroup
	for _, r := range []*jobs.Jobs{a, b} {
		wg.Go(func() {
			for countRuns(t, url, "status IN ('pending', 'running')") > 0 {
				_, err := r.Dispatch(ctx, now)
				require.NoError(t, err)
				time.Sleep(5 * time.Millisecond)
			}
		})
	}
	wg.Wait()
	waitIdle(t, url)
	runs, calls := exec.count()
	require.Equal(t, 24, runs)
	require.Equal(t, 24, calls, "no run executed twice")
	require.Equal(t, 24, countRuns(t, url, `status = 'succeeded' AND attempts = 1 AND result = '{"read": true}'
		AND finished_at IS NOT NULL AND worker LIKE 'amrd@%' AND claim_token IS NULL`))
	// Every can_block interface was blocked during its run and is free again.
	var blocked int
	storetest.Query(t, url, "SELECT count(*) FROM network_interfaces WHERE is_blocked", nil, &blocked)
	require.Zero(t, blocked)
}

func TestRunFailureIsFinalAndSaysWhy(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	_, url := storetest.New(t)
	f := newFleet(t, url, 1)
	f.task(t, "daily", 0, "generic_iec6205621", f.devices...)
	exec := &fakeExec{err: errors.New("connecting to 127.0.0.1:9: connection refused")}
	j := replica(t, url, jobs.Config{}, map[string]jobs.Executor{"generic_iec6205621": exec})
	now := utc("2026-11-26T00:00:00Z")
	require.NoError(t, j.Plan(ctx, now))
	n, err := j.Dispatch(ctx, now)
	require.NoError(t, err)
	require.Equal(t, 1, n)
	waitIdle(t, url)
	require.Equal(t, 1, countRuns(t, url, "status = 'failed' AND error = 'connecting to 127.0.0.1:9: connection refused' AND attempts = 1"))
	// Not retried: nothing is due any more.
	n, err = j.Dispatch(ctx, now.Add(time.Hour))
	require.NoError(t, err)
	require.Zero(t, n)
}

func TestExpiredClaimIsRetriedThenFailed(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	st, url := storetest.New(t)
	f := newFleet(t, url, 1)
	f.task(t, "hourly", 0, "generic_lis200", f.devices...)
	j := replica(t, url, jobs.Config{MaxAttempts: 2}, nil)
	now := utc("2026-11-26T10:00:00Z")
	require.NoError(t, j.Plan(ctx, now))
	claim := store.Claim{Types: []string{"generic_lis200"}, Worker: "w", Limit: 5, Lease: time.Minute, Now: now}
	for attempt := 1; attempt <= 2; attempt++ {
		got, err := st.ClaimTaskRuns(ctx, store.AllOrgs, claim)
		require.NoError(t, err)
		require.Len(t, got, 1, "attempt %d", attempt)
		require.Equal(t, attempt, got[0].Attempts)
		// The claimer dies: no report. Before the lease ends, nothing changes.
		require.NoError(t, j.Plan(ctx, claim.Now.Add(59*time.Second)))
		require.Equal(t, 1, countRuns(t, url, "status = 'running'"))
		claim.Now = claim.Now.Add(2 * time.Minute)
		require.NoError(t, j.Plan(ctx, claim.Now))
	}
	require.Equal(t, 1, countRuns(t, url, "status = 'failed' AND attempts = 2 AND error LIKE 'the claim on this run expired%'"))
	// A late report of a lost claim is refused.
	runs, _, err := st.ListTaskRuns(ctx, store.AllOrgs, store.Filter{}, store.Page{Limit: 10})
	require.NoError(t, err)
	_, err = st.FinishTaskRun(ctx, store.AllOrgs, runs[0].ID, uuid.New(), store.RunOutcome{Status: store.RunSucceeded, Now: claim.Now})
	require.ErrorIs(t, err, store.ErrConflict)
}

func TestBlockedInterfaceMakesRunsWait(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	_, url := storetest.New(t)
	f := newFleet(t, url, 1)
	f.task(t, "hourly", 0, "generic_iec6205621", f.devices...)
	var sawBlocked bool
	exec := &fakeExec{during: func(_ store.TaskRun, tg store.RunTarget) {
		storetest.Query(t, url, "SELECT is_blocked FROM network_interfaces WHERE id = $1", []any{*tg.InterfaceID}, &sawBlocked)
	}}
	var clock struct {
		sync.Mutex
		t time.Time
	}
	clock.t = utc("2026-11-26T10:00:00Z")
	now := func() time.Time { clock.Lock(); defer clock.Unlock(); return clock.t }
	j := replica(t, url, jobs.Config{Now: now}, map[string]jobs.Executor{"generic_iec6205621": exec})
	require.NoError(t, j.Plan(ctx, now()))

	// Another run (another replica) holds the interface since 09:58.
	storetest.Exec(t, url, "UPDATE network_interfaces SET is_blocked = true, block_time = $2 WHERE id = $1",
		f.netifs[0], utc("2026-11-26T09:58:00Z"))
	n, err := j.Dispatch(ctx, now())
	require.NoError(t, err)
	require.Equal(t, 1, n)
	require.Eventually(t, func() bool {
		return countRuns(t, url, "status = 'pending' AND attempts = 0 AND run_at = $1", utc("2026-11-26T10:00:05Z")) == 1
	}, 10*time.Second, 10*time.Millisecond, "the run waits, its attempt not counted")
	_, calls := exec.count()
	require.Zero(t, calls)

	// The block is older than the 5 min block timeout at 10:04: released.
	clock.Lock()
	clock.t = utc("2026-11-26T10:04:00Z")
	clock.Unlock()
	require.NoError(t, j.ReleaseBlocks(ctx, now()))
	n, err = j.Dispatch(ctx, now())
	require.NoError(t, err)
	require.Equal(t, 1, n)
	waitIdle(t, url)
	_, calls = exec.count()
	require.Equal(t, 1, calls)
	require.True(t, sawBlocked, "the interface is blocked during the run")
	var blocked bool
	storetest.Query(t, url, "SELECT is_blocked FROM network_interfaces WHERE id = $1", []any{f.netifs[0]}, &blocked)
	require.False(t, blocked, "and free after it")
}

func TestRetentionDropsOldChunksKeepsNew(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	_, url := storetest.New(t)
	f := newFleet(t, url, 1)
	now := time.Now().UTC()
	var devKey, seriesKey int
	storetest.Query(t, url, "SELECT key FROM meter_devices WHERE id = $1", []any{f.devices[0]}, &devKey)
	storetest.Query(t, url, "SELECT key FROM meter_reading_series LIMIT 1", nil, &seriesKey)
	for _, age := range []int{400, 366, 2, 0} {
		storetest.Exec(t, url, "INSERT INTO meter_readings (device_key, series_key, ts, value) VALUES ($1, $2, $3, 1)",
			devKey, seriesKey, now.AddDate(0, 0, -age))
	}
	// Event chunks are 7 days long: one 366 days back may straddle the cutoff, 380 never does.
	for _, age := range []int{400, 380, 2, 0} {
		storetest.Exec(t, url, `INSERT INTO meter_system_events (organization_id, meter_device_id, ts, title, content)
			VALUES ($1, $2, $3, 't', 'c')`, f.org, f.devices[0], now.AddDate(0, 0, -age))
	}
	for _, age := range []int{45, 31, 1} {
		storetest.Exec(t, url, `INSERT INTO staged_meter_readings (meter_device_name, series_name, ts, value, created_at)
			VALUES ('unknown', '1.8.0', $1, 1, $1)`, now.AddDate(0, 0, -age))
	}
	// Runs: an old finished invoked run goes, the latest scheduled run of a pair stays.
	storetest.Exec(t, url, `INSERT INTO amr_task_runs (meter_device_id, trigger, run_at, meter_execution_type, task_call,
		status, finished_at) VALUES ($1, 'invoke', $2, 'generic_lis200', 'x', 'succeeded', $2)`, f.devices[0], now.AddDate(0, 0, -40))
	task := f.task(t, "yearly", 0, "generic_lis200", f.devices[0])
	storetest.Exec(t, url, `INSERT INTO amr_task_runs (task_id, meter_device_id, trigger, slot, run_at, meter_execution_type,
		task_call, status, finished_at) VALUES ($1, $2, 'schedule', $3, $3, 'generic_lis200', 'x', 'succeeded', $3)`,
		task, f.devices[0], now.AddDate(0, 0, -200))

	chunks := func(table string) int {
		var n int
		storetest.Query(t, url, "SELECT count(*) FROM timescaledb_information.chunks WHERE hypertable_name = $1", []any{table}, &n)
		return n
	}
	rows := func(table string) int {
		var n int
		storetest.Query(t, url, "SELECT count(*) FROM "+table, nil, &n)
		return n
	}
	require.Equal(t, 4, chunks("meter_readings"))
	reg := prometheus.NewRegistry()
	st, err := store.Open(ctx, store.Config{URL: url}, discard())
	require.NoError(t, err)
	defer st.Close()
	j, err := jobs.New(jobs.Config{DataRetention: 365 * 24 * time.Hour}, st, nil, discard(), reg)
	require.NoError(t, err)
	require.NoError(t, j.Retention(ctx, now))
	require.Equal(t, 4, chunks("meter_readings"), "raw readings stay until their rollups are materialized")
	require.NoError(t, j.Rollups(ctx, now))
	require.NoError(t, j.Retention(ctx, now))

	require.Equal(t, 2, chunks("meter_readings"), "the chunks of 400 and 366 days ago are dropped")
	require.Equal(t, 2, rows("meter_readings"))
	require.Equal(t, 2, rows("meter_system_events"))
	require.Equal(t, 1, rows("staged_meter_readings"), "staged readings kept 30 days by default")
	require.Equal(t, 1, countRuns(t, url, "trigger = 'schedule'"), "the latest run of a task on a device is kept")
	require.Equal(t, 0, countRuns(t, url, "trigger = 'invoke'"))

	// Without DATA_RETENTION_DAYS readings are kept.
	j2, err := jobs.New(jobs.Config{}, st, nil, discard(), prometheus.NewRegistry())
	require.NoError(t, err)
	require.NoError(t, j2.Retention(ctx, now.AddDate(10, 0, 0)))
	require.Equal(t, 2, rows("meter_readings"))
	require.Equal(t, 0, rows("staged_meter_readings"))
}

// unavailableDrops is a store whose DropChunks answers ErrUnavailable (what a deadlock
// with a writer becomes) its first fails times.
type unavailableDrops struct {
	jobs.Store
	fails, calls int
}

func (u *unavailableDrops) DropChunks(ctx context.Context, table string, olderThan time.Time) (int, error) {
	u.calls++
	if u.calls <= u.fails {
		return 0, fmt.Errorf("dropping chunks of %s: %w", table, store.ErrUnavailable)
	}
	return u.Store.DropChunks(ctx, table, olderThan)
}

// TestRetentionTriesADeadlockedDropAgain: a drop_chunks that the database aborted (a
// deadlock with a writer into the chunk) is tried again in the same run; after three
// answers of the kind the run fails, for the next one.
func TestRetentionTriesADeadlockedDropAgain(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st, _ := storetest.New(t)
	flaky := &unavailableDrops{Store: st, fails: 2}
	j, err := jobs.New(jobs.Config{}, flaky, nil, discard(), prometheus.NewRegistry())
	require.NoError(t, err)
	require.NoError(t, j.Retention(ctx, time.Now()))
	require.Equal(t, 3, flaky.calls, "two answers of unavailable, then the drop")

	down := &unavailableDrops{Store: st, fails: 100}
	j, err = jobs.New(jobs.Config{}, down, nil, discard(), prometheus.NewRegistry())
	require.NoError(t, err)
	require.ErrorIs(t, j.Retention(ctx, time.Now()), store.ErrUnavailable)
	require.Equal(t, 3, down.calls)
}

func TestSchedulerRunsJobsUntilStopped(t *testing.T) {
	t.Parallel()
	_, url := storetest.New(t)
	f := newFleet(t, url, 2)
	f.task(t, "quarterly", 0, "generic_iec6205621", f.devices...)
	exec := &fakeExec{}
	j := replica(t, url, jobs.Config{PlanEvery: 50 * time.Millisecond, DispatchEvery: 20 * time.Millisecond},
		map[string]jobs.Executor{"generic_iec6205621": exec})
	ctx, cancel := context.WithCancel(testCtx(t))
	done := make(chan error, 1)
	go func() { done <- j.Run(ctx) }()
	require.Eventually(t, func() bool { return countRuns(t, url, "status = 'succeeded'") == 2 }, 30*time.Second, 20*time.Millisecond)
	cancel()
	require.NoError(t, <-done)
	runs, calls := exec.count()
	require.Equal(t, 2, runs)
	require.Equal(t, 2, calls)
}

func TestClusterReadingsRewritesSettledChunksOnce(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	_, url := storetest.New(t)
	now := time.Now().UTC()
	// Readings of 4 pairs written in time order over the last 4 days: 5 day chunks, of
	// which those whose day ended 48 h ago or more are settled.
	storetest.ExecCounted(t, url, `INSERT INTO meter_readings (device_key, series_key, ts, value)
		SELECT d, 1, t, 1 FROM generate_series($1::timestamptz - interval '4 days', $1, interval '1 hour') t,
			generate_series(1, 4) d ORDER BY t, d`, now)
	clustered := func() int {
		var n int
		storetest.Query(t, url, `SELECT count(*) FROM timescaledb_information.chunks c
			JOIN pg_index i ON i.indrelid = format('%I.%I', c.chunk_schema, c.chunk_name)::regclass
			WHERE c.hypertable_name = 'meter_readings' AND i.indisclustered`, nil, &n)
		return n
	}
	var settled int
	storetest.Query(t, url, `SELECT count(*) FROM timescaledb_information.chunks
		WHERE hypertable_name = 'meter_readings' AND range_end <= $1::timestamptz - interval '48 hours'`, []any{now}, &settled)
	require.GreaterOrEqual(t, settled, 2)

	st, err := store.Open(ctx, store.Config{URL: url}, discard())
	require.NoError(t, err)
	defer st.Close()
	reg := prometheus.NewRegistry()
	j, err := jobs.New(jobs.Config{}, st, nil, discard(), reg)
	require.NoError(t, err)
	require.NoError(t, j.ClusterReadings(ctx, now))
	require.Equal(t, 0, clustered(), "a chunk is rewritten once a run saw it quiet")
	require.NoError(t, j.ClusterReadings(ctx, now))
	require.Equal(t, min(settled, 2), clustered(), "two chunks a run")
	for range 3 {
		require.NoError(t, j.ClusterReadings(ctx, now))
	}
	require.Equal(t, settled, clustered(), "every settled chunk, once; none of the last two days")
	families, err := reg.Gather()
	require.NoError(t, err)
	var counted float64
	for _, f := range families {
		if f.GetName() == "amrd_readings_chunks_clustered_total" {
			counted = f.GetMetric()[0].GetCounter().GetValue()
		}
	}
	require.Equal(t, float64(settled), counted)
}
