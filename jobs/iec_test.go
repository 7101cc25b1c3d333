package jobs_test

import (
	"context"
	"encoding/json"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/amrd/amrd/ingest"
	"github.com/amrd/amrd/jobs"
	"github.com/amrd/amrd/meterproto"
	"github.com/amrd/amrd/store"
	"github.com/amrd/amrd/store/storetest"
)

// iecRig is a database with one IEC 62056-21 device (address 12345678, config in
// Europe/Berlin allowing 1.8.0 and 1-0:2.8.0*255, CT 10 on 1.8.0), a simulator on
// loopback behind its network interface, a running pipeline, and jobs with the IEC
// executor.
type iecRig struct {
	url    string
	st     *store.Store
	sim    *meterproto.Simulator
	jobs   *jobs.Jobs
	device uuid.UUID
	netif  uuid.UUID
	task   uuid.UUID
}

func newIECRig(t *testing.T) *iecRig {
	t.Helper()
	ctx := testCtx(t)
	st, url := storetest.New(t)
	r := &iecRig{url: url, st: st}

	sim, err := meterproto.NewSimulator(meterproto.SimConfig{Address: "12345678", Lines: []string{
		"F.F(00000000)",
		"1.8.0(0012345.678*kWh)",
		"1-0:2.8.0*255(0000321.5*kWh)",
		"32.7(230.1*V)",
	}})
	require.NoError(t, err)
	t.Cleanup(func() { sim.Close() })
	addr, err := sim.Listen(ctx, "127.0.0.1:0")
	require.NoError(t, err)
	r.sim = sim
	host, port, err := net.SplitHostPort(addr)
	require.NoError(t, err)
	p, _ := strconv.Atoi(port)

	var org, s1, s2, config, typ uuid.UUID
	storetest.QueryRow(t, url, "INSERT INTO organizations (name) VALUES ('A') RETURNING id", &org)
	storetest.Query(t, url, `INSERT INTO meter_reading_series (organization_id, name, unit, affected_by_ct_ratio)
		VALUES ($1, '1.8.0', 'kWh', true) RETURNING id`, []any{org}, &s1)
	storetest.Query(t, url, "INSERT INTO meter_reading_series (organization_id, name, unit) VALUES ($1, '1-0:2.8.0*255', 'kWh') RETURNING id",
		[]any{org}, &s2)
	storetest.Query(t, url, "INSERT INTO meter_device_configs (organization_id, name, timezone) VALUES ($1, 'c', 'Europe/Berlin') RETURNING id",
		[]any{org}, &config)
	storetest.Exec(t, url, "INSERT INTO meter_device_config_series (config_id, series_id) VALUES ($1, $2), ($1, $3)", config, s1, s2)
	storetest.Query(t, url, `INSERT INTO meter_device_types (organization_id, name, manufacturer, manufacturer_model, config_id)
		VALUES ($1, 't', 'm', 'mm', $2) RETURNING id`, []any{org, config}, &typ)
	storetest.Query(t, url, `INSERT INTO network_interfaces (organization_id, static_ip_address, port, can_block)
		VALUES ($1, $2, $3, true) RETURNING id`, []any{org, host, p}, &r.netif)
	storetest.Query(t, url, `INSERT INTO meter_devices (organization_id, name, protocol, iec62056_21_address, type_id,
		network_interface_id, has_current_transformer, current_transformer_ratio)
		VALUES ($1, 'meter-1', 'iec62056-21', '12345678', $2, $3, true, 10) RETURNING id`, []any{org, typ, r.netif}, &r.device)
	storetest.Query(t, url, `INSERT INTO amr_tasks (organization_id, name, schedule, meter_execution_type, task_call, task_kwargs, created_at)
		VALUES ($1, 'hourly readout', 'hourly', 'generic_iec6205621', 'readout', '{"idle_timeout_seconds": 0.5}', '2026-01-01T00:00:00Z')
		RETURNING id`, []any{org}, &r.task)
	storetest.Exec(t, url, "INSERT INTO meter_device_tasks (device_id, task_id) VALUES ($1, $2)", r.device, r.task)

	pipe, err := ingest.New(ingest.Config{}, st, discard(), prometheus.NewRegistry())
	require.NoError(t, err)
	pctx, stop := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = pipe.Run(pctx); close(done) }()
	t.Cleanup(func() { stop(); <-done })

	r.jobs, err = jobs.New(jobs.Config{RunTimeout: 10 * time.Second}, st,
		map[string]jobs.Executor{"generic_iec6205621": jobs.IEC{Ingest: pipe}}, discard(), prometheus.NewRegistry())
	require.NoError(t, err)
	return r
}

// runSlot plans the slot due at now and executes it, and returns the settled run.
func (r *iecRig) runSlot(t *testing.T, now time.Time) store.TaskRun {
	t.Helper()
	ctx := testCtx(t)
	require.NoError(t, r.jobs.Plan(ctx, now))
	n, err := r.jobs.Dispatch(ctx, now)
	require.NoError(t, err)
	require.Equal(t, 1, n)
	waitIdle(t, r.url)
	runs, _, err := r.st.ListTaskRuns(ctx, store.AllOrgs, store.Filter{"task": r.task}, store.Page{Limit: 1})
	require.NoError(t, err)
	require.Len(t, runs, 1)
	return runs[0]
}

type storedReading struct {
	Series string
	TS     time.Time
	Value  string
	Factor int64
}

func (r *iecRig) readings(t *testing.T) []storedReading {
	t.Helper()
	var out []storedReading
	rows := storetest.Rows(t, r.url, `SELECT s.name, m.ts, m.value::text, m.factor FROM meter_readings m
		JOIN meter_reading_series s ON s.key = m.series_key ORDER BY m.ts, s.name`)
	for _, row := range rows {
		out = append(out, storedReading{Series: row[0].(string), TS: row[1].(time.Time).UTC(), Value: row[2].(string), Factor: row[3].(int64)})
	}
	return out
}

func TestIECReadoutOnSchedule(t *testing.T) {
	t.Parallel()
	r := newIECRig(t)

	run := r.runSlot(t, utc("2026-11-26T10:00:00Z"))
	require.Equal(t, store.RunSucceeded, run.Status, "error: %v", run.Error)
	// No meter clock in the telegram: the readings take the run's time.
	want := []storedReading{
		{"1-0:2.8.0*255", utc("2026-11-26T10:00:00Z"), "321.5", 1},
		{"1.8.0", utc("2026-11-26T10:00:00Z"), "12345.678", 10},
	}
	require.Equal(t, want, r.readings(t), "values exact, matched in both OBIS forms, the CT factor kept")
	var res struct {
		MeterIdent string        `json:"meter_ident"`
		Source     string        `json:"timestamp_source"`
		Readings   ingest.Report `json:"readings"`
		Unmatched  []string      `json:"unmatched"`
	}
	require.NoError(t, json.Unmarshal(run.Result, &res))
	require.Equal(t, "/AMR5amrd-sim", res.MeterIdent)
	require.Equal(t, "run", res.Source)
	require.Equal(t, 2, res.Readings.Accepted)
	require.Equal(t, []string{"F.F", "32.7"}, res.Unmatched)
	require.Equal(t, 1, r.sim.Sessions())

	t.Run("the meter's clock, read in the config's zone, dates the readings", func(t *testing.T) {
		require.NoError(t, r.sim.SetLines([]string{"0.9.1(101500)", "0.9.2(261126)", "1.8.0(0012346.000*kWh)"}))
		run := r.runSlot(t, utc("2026-11-26T11:00:00Z"))
		require.Equal(t, store.RunSucceeded, run.Status, "error: %v", run.Error)
		got := r.readings(t)
		// 10:15 in Berlin (UTC+1 in November) is 09:15 UTC.
		require.Equal(t, storedReading{"1.8.0", utc("2026-11-26T09:15:00Z"), "12346.000", 10}, got[0])
	})

	t.Run("a clock that cannot be read costs nothing: the run's time, and the result says why", func(t *testing.T) {
		require.NoError(t, r.sim.SetLines([]string{"0.9.1(251500)", "0.9.2(261126)", "1.8.0(0012347.000*kWh)"}))
		run := r.runSlot(t, utc("2026-11-26T12:00:00Z"))
		require.Equal(t, store.RunSucceeded, run.Status, "error: %v", run.Error)
		got := r.readings(t)
		require.Equal(t, storedReading{"1.8.0", utc("2026-11-26T12:00:00Z"), "12347.000", 10}, got[len(got)-1])
		var res map[string]any
		require.NoError(t, json.Unmarshal(run.Result, &res))
		require.Equal(t, "run", res["timestamp_source"])
		require.Contains(t, res["meter_clock_error"], "the meter's clock (0.9.1, 0.9.2) was not used")
	})
}

func TestIECFaultsFailTheRunAndStoreNothing(t *testing.T) {
	t.Parallel()
	tests := []struct {
		fault meterproto.Fault
		want  string
	}{
		{meterproto.FaultBadBCC, "bad block check character"},
		{meterproto.FaultTruncated, "truncated"},
		{meterproto.FaultGarbage, "unexpected bytes"},
		{meterproto.FaultNoETX, "no ETX"},
		{meterproto.FaultSilent, "meter silent"},
	}
	r := newIECRig(t)
	slot := utc("2026-11-26T10:00:00Z")
	for _, tc := range tests {
		t.Run(tc.fault.String(), func(t *testing.T) {
			r.sim.SetFault(tc.fault)
			run := r.runSlot(t, slot)
			slot = slot.Add(time.Hour)
			require.Equal(t, store.RunFailed, run.Status)
			require.NotNil(t, run.Error)
			require.Contains(t, *run.Error, tc.want)
			require.Contains(t, *run.Error, "IEC 62056-21 readout of 127.0.0.1:")
			require.Empty(t, r.readings(t), "nothing from a bad telegram is stored")
		})
	}
	t.Run("refused connection", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		_, port, _ := net.SplitHostPort(ln.Addr().String())
		ln.Close()
		storetest.Exec(t, r.url, "UPDATE network_interfaces SET port = $2 WHERE id = $1", r.netif, port)
		run := r.runSlot(t, slot)
		require.Equal(t, store.RunFailed, run.Status)
		require.Contains(t, *run.Error, "cannot connect to the meter")
	})
	t.Run("no network interface", func(t *testing.T) {
		storetest.Exec(t, r.url, "UPDATE meter_devices SET network_interface_id = NULL WHERE id = $1", r.device)
		run := r.runSlot(t, slot.Add(time.Hour))
		require.Equal(t, store.RunFailed, run.Status)
		require.Equal(t, "the meter device has no network interface to reach it through", *run.Error)
	})
}
