package bench

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math"
	"math/big"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
	"golang.org/x/sync/errgroup"

	"github.com/amrd/amrd/jobs"
	"github.com/amrd/amrd/store"
)

// The read benchmark: what dashboards read over SQL (schema 0004), on a month of one
// fleet's quarter-hour readings, each query written as a Grafana panel sends it (the
// time range as literals, the way $__timeFilter expands it, over the simple protocol, so
// that every run is planned anew). The queries run as the database owner: the views
// still call amrd_read.visible_orgs for every query (it answers "every organization"
// for the owner), and the series and devices the queries name belong to one of two
// organizations.
//
// r1-r4 are timed a run at a time after warm-up runs, each run with other parameters
// (another meter, another series), so that a run does not find the rows the previous
// one left in PostgreSQL's buffers; p50 and p99 are over the runs. r2 times the same
// chart from the rollups and from the raw readings in the same run; r5 times the
// materialization of the whole load.

// readCases are the read benchmark's cases, as -only names them.
var readCases = []string{"r1", "r2", "r3", "r4", "r5"}

// readSeries are the series of every meter of the read load.
var readSeries = seriesNames[:4]

// readZone is the zone of the read fleet's configs: its local days are the daily rollups'.
const readZone = "Europe/Stockholm"

// Query is one read query's timings, in milliseconds of wall time at the client, from
// sending the query to its last row.
type Query struct {
	Name        string  `json:"name"`
	Description string  `json:"description"`
	SQL         string  `json:"sql"` // the first timed run's text
	Runs        int     `json:"runs"`
	Rows        int64   `json:"rows"` // of the first timed run
	P50ms       float64 `json:"p50_ms"`
	P99ms       float64 `json:"p99_ms"`
	TargetMs    float64 `json:"target_p50_ms,omitempty"`
}

// Materialization is r5: MaterializeRollups over the whole load, first a day at a time
// as the load arrives (what the rollup job does behind ingestion), then the last days in
// one call (what it does after it was off, or behind, for that long).
type Materialization struct {
	Readings       int64   `json:"readings"`
	Seconds        float64 `json:"seconds"`
	ReadingsPerSec float64 `json:"readings_per_s"`
	Hourly         int64   `json:"hourly_buckets"`
	Daily          int64   `json:"daily_buckets"`
	SeriesHourly   int64   `json:"series_hourly_buckets"`
	AsLoaded       Part    `json:"as_loaded"`
	Backlog        Part    `json:"backlog"`
	// Unfinished: the materialization took longer than r5Limit and was cancelled; the
	// figures are those of the calls that finished, and the time of all.
	Unfinished bool `json:"unfinished,omitempty"`
	// LoadBefore and LoadAfter are the machine's 1-minute load average before the first
	// call and after the last (on a shared machine the figures depend on it); PeakRSSMiB
	// is this process's peak resident memory after the last (loader included). Zero
	// where /proc does not tell.
	LoadBefore float64 `json:"load_average_before,omitempty"`
	LoadAfter  float64 `json:"load_average_after,omitempty"`
	PeakRSSMiB float64 `json:"peak_rss_mib,omitempty"`
}

// loadAverage is the 1-minute load average (/proc/loadavg), 0 if unknown.
func loadAverage() float64 {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return 0
	}
	v, _ := strconv.ParseFloat(f[0], 64)
	return v
}

// peakRSSMiB is this process's peak resident memory (VmHWM in /proc/self/status), 0 if
// unknown.
func peakRSSMiB() float64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, _ := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 64)
			return kb / 1024
		}
	}
	return 0
}

// Part is a part of the materialization: how many days, readings and seconds.
type Part struct {
	Days           int     `json:"days"`
	Calls          int     `json:"calls"`
	Readings       int64   `json:"readings"`
	Seconds        float64 `json:"seconds"`
	ReadingsPerSec float64 `json:"readings_per_s"`
}

// backlogDays are the days of the load materialized in one call after they were loaded
// (a slice a day, each reading back the hours of its first local day that the one
// before it wrote).
const backlogDays = 3

// r5Limit bounds the time the benchmark waits for the materialization (a limit of the
// benchmark, not a target: at 500,000 readings/s the default load takes 23 s). Past it
// the call in progress is cancelled, the rest of the load is copied without rollups, and
// r2, which needs them, is not measured.
const r5Limit = 3 * time.Minute

// ReadResults are the read benchmark's figures.
type ReadResults struct {
	Meters        int       `json:"meters"`
	OtherMeters   int       `json:"other_organization_meters"`
	Series        int       `json:"series_per_meter"`
	Days          int       `json:"days"`
	Readings      int64     `json:"readings"`
	From          time.Time `json:"from"`
	To            time.Time `json:"to"`
	LoadSeconds   float64   `json:"load_seconds"`
	VacuumSeconds float64   `json:"vacuum_analyze_seconds"`
	// Clustered chunks of settled days, as the cluster_readings job leaves a live
	// database, and the time that took.
	ClusteredChunks int                `json:"clustered_chunks"`
	ClusterSeconds  float64            `json:"cluster_seconds"`
	Rollups         *Materialization   `json:"r5_materialization,omitempty"`
	Queries         []Query            `json:"queries"`
	Ratios          map[string]float64 `json:"ratios,omitempty"`
	// R2Skipped: r2 was asked for but not measured, the rollups being unfinished (r5).
	R2Skipped bool `json:"r2_skipped,omitempty"`
}

// Read targets (the issue's): p50 of each query in milliseconds, and the ratios.
const (
	targetR1ms           = 10
	targetR2ms           = 100
	targetR3ms           = 50
	targetR4ms           = 200
	targetR2Ratio        = 20
	targetR5ReadingsPerS = 500_000
)

// readFleet is the read load's meters: those of the measured organization, then a few of
// another organization, whose readings the first one's queries must leave out.
type readFleet struct {
	meters, others int
	deviceKeys     []int32  // by device number
	deviceIDs      []string // by device number
	seriesKeys     [2][]int32
	seriesIDs      [2][]string
}

func (f *readFleet) org(device int) int {
	if device < f.meters {
		return 0
	}
	return 1
}

// makeReadFleet creates two organizations, each with the four series, a config in
// readZone allowing them, a type with that config, and its meters (CT 1: the factor is
// stored but neutral).
func makeReadFleet(ctx context.Context, conn *pgx.Conn, meters, others int) (*readFleet, error) {
	f := &readFleet{meters: meters, others: others}
	for o, n := range []int{meters, others} {
		var org, cfg, typ string
		if err := conn.QueryRow(ctx, `INSERT INTO organizations (name) VALUES ($1) RETURNING id`, fmt.Sprintf("bench read %d", o)).Scan(&org); err != nil {
			return nil, err
		}
		if err := conn.QueryRow(ctx, `INSERT INTO meter_device_configs (organization_id, name, timezone) VALUES ($1, 'bench', $2) RETURNING id`,
			org, readZone).Scan(&cfg); err != nil {
			return nil, err
		}
		for _, s := range readSeries {
			id, key, err := addSeries(ctx, conn, org, cfg, s)
			if err != nil {
				return nil, err
			}
			f.seriesKeys[o], f.seriesIDs[o] = append(f.seriesKeys[o], key), append(f.seriesIDs[o], id)
		}
		if err := conn.QueryRow(ctx, `INSERT INTO meter_device_types (organization_id, name, manufacturer, manufacturer_model, config_id)
			VALUES ($1, 'bench', 'bench', 'bench', $2) RETURNING id`, org, cfg).Scan(&typ); err != nil {
			return nil, err
		}
		// Names sort by organization, then number: the order of the device numbers.
		if _, err := conn.Exec(ctx, `INSERT INTO meter_devices (organization_id, name, protocol, type_id, has_current_transformer, current_transformer_ratio)
			SELECT $1, 'read-' || $2::int || '-' || (100000 + g), 'dlms-cosem', $3, true, 1 FROM generate_series(0, $4 - 1) g`, org, o, typ, n); err != nil {
			return nil, err
		}
	}
	rows, err := conn.Query(ctx, `SELECT key, id::text FROM meter_devices ORDER BY name`)
	if err != nil {
		return nil, err
	}
	for rows.Next() {
		var k int32
		var id string
		if err := rows.Scan(&k, &id); err != nil {
			rows.Close()
			return nil, err
		}
		f.deviceKeys, f.deviceIDs = append(f.deviceKeys, k), append(f.deviceIDs, id)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	if len(f.deviceKeys) != meters+others {
		return nil, fmt.Errorf("made %d meters, found %d", meters+others, len(f.deviceKeys))
	}
	return f, nil
}

// slotsADay are the quarter-hours of a (UTC) day.
const slotsADay = int(24 * time.Hour / interval)

// profile is a day's consumption by quarter-hour, in thousandths of a kWh, on top of each
// register's own base rate: more by day than by night. profileBefore[j] is the sum of
// profile[:j], profileDay the whole day's.
var profile, profileBefore = func() (p, before [slotsADay]int64) {
	var sum int64
	for j := range p {
		p[j] = 30 + int64(j*7)%50
		if j >= 28 && j < 88 { // 07:00 to 22:00
			p[j] += 60
		}
		before[j] = sum
		sum += p[j]
	}
	return p, before
}()

var profileDay = profileBefore[slotsADay-1] + profile[slotsADay-1]

// register is the value of device d's series s at quarter-hour k of the load, in
// thousandths: a cumulative register that grows by the device's base rate and the daily
// profile (no closed form is needed by the loaders, which work on different days at once).
func register(d, s, k int) int64 {
	start := int64((d*7919+s*104729)%90_000)*1000 + 123
	base := int64(10 + (d*13+s*29)%90)
	return start + int64(k)*base + int64(k/slotsADay)*profileDay + profileBefore[k%slotsADay]
}

// loader copies the read load into meter_readings a day at a time, on two connections
// at once, each for half of the meters: both write the same quarter-hours at the same
// time, in time order, as collectors deliver them, so that the rows of a chunk lie in
// time order (what the BRIN indexes on ts and created_at rely on). created_at is a
// minute after each reading's time.
type loader struct {
	f     *readFleet
	from  time.Time
	conns [2]*pgx.Conn
}

func newLoader(ctx context.Context, db string, f *readFleet, from time.Time) (*loader, error) {
	l := &loader{f: f, from: from}
	for i := range l.conns {
		c, err := pgx.Connect(ctx, db)
		if err != nil {
			l.close()
			return nil, err
		}
		l.conns[i] = c
	}
	return l, nil
}

func (l *loader) close() {
	for _, c := range l.conns {
		if c != nil {
			c.Close(context.Background())
		}
	}
}

// day copies day d of the load (the 24 hours from l.from + d days) and returns the
// readings copied.
func (l *loader) day(ctx context.Context, d int) (int64, error) {
	devices := l.f.meters + l.f.others
	g, ctx := errgroup.WithContext(ctx)
	var rows [2]int64
	for w, conn := range l.conns {
		lo, hi := w*devices/2, (w+1)*devices/2
		per := (hi - lo) * len(readSeries)
		g.Go(func() error {
			// The value is encoded as soon as the row is returned (CopyFrom encodes each
			// row before asking for the next), so one big.Int serves every row.
			var v big.Int
			i := 0
			n, err := conn.CopyFrom(ctx, pgx.Identifier{"meter_readings"}, []string{"device_key", "series_key", "ts", "value", "factor", "created_at"},
				pgx.CopyFromFunc(func() ([]any, error) {
					if i == per*slotsADay {
						return nil, nil
					}
					k := d*slotsADay + i/per
					dev, s := lo+i%per/len(readSeries), i%len(readSeries)
					i++
					ts := l.from.Add(time.Duration(k) * interval)
					v.SetInt64(register(dev, s, k))
					return []any{l.f.deviceKeys[dev], l.f.seriesKeys[l.f.org(dev)][s], ts,
						pgtype.Numeric{Int: &v, Exp: -3, Valid: true}, int64(1), ts.Add(time.Minute)}, nil
				}))
			rows[w] = n
			if err != nil {
				return fmt.Errorf("loading day %d: %w", d, err)
			}
			return nil
		})
	}
	err := g.Wait()
	return rows[0] + rows[1], err
}

// loadAndMaterialize copies the load a day at a time and, with rollups, times
// MaterializeRollups (r5): after each day, up to the hour of its last reading (the step
// into that reading belongs to the hour before it), except for the last backlogDays,
// materialized in one call up to the load's end.
func loadAndMaterialize(ctx context.Context, db string, st *store.Store, f *readFleet, rr *ReadResults, rollups bool, out io.Writer) error {
	l, err := newLoader(ctx, db, f, rr.From)
	if err != nil {
		return err
	}
	defer l.close()
	backlog := min(backlogDays, max(1, rr.Days/2))
	m := &Materialization{}
	var spent time.Duration
	materialize := func(to time.Time, p *Part) error {
		if m.Unfinished {
			return nil
		}
		if m.LoadBefore == 0 {
			m.LoadBefore = loadAverage()
		}
		if err := st.MoveRollupThreshold(ctx, to); err != nil {
			return err
		}
		lctx, cancel := context.WithTimeout(ctx, r5Limit-spent)
		defer cancel()
		t0 := time.Now()
		res, err := st.MaterializeRollups(lctx, 24*time.Hour)
		took := time.Since(t0)
		spent += took
		p.Seconds += took.Seconds()
		if err != nil && lctx.Err() != nil && ctx.Err() == nil {
			m.Unfinished = true
			fmt.Fprintf(out, "bench: read: r5: materialization cancelled after %.0f s (the benchmark's limit), up to %s\n", spent.Seconds(), to.Format(time.RFC3339))
			return nil
		}
		if err != nil {
			return fmt.Errorf("r5: %w", err)
		}
		p.Readings += res.Readings
		p.Calls++
		m.Hourly, m.Daily, m.SeriesHourly = m.Hourly+res.Hourly, m.Daily+res.Daily, m.SeriesHourly+res.SeriesHourly
		return nil
	}
	fmt.Fprintf(out, "bench: read: loading %d + %d meters x %d series x %d days of 15-minute readings, a day at a time",
		f.meters, f.others, len(readSeries), rr.Days)
	if rollups {
		fmt.Fprintf(out, "; r5: materializing the rollups after each day, the last %s at once", days(backlog))
	}
	fmt.Fprintln(out, " ...")
	for d := 0; d < rr.Days; d++ {
		t0 := time.Now()
		n, err := l.day(ctx, d)
		if err != nil {
			return err
		}
		rr.LoadSeconds += time.Since(t0).Seconds()
		rr.Readings += n
		if rollups && d < rr.Days-backlog {
			m.AsLoaded.Days++
			if err := materialize(rr.From.Add(time.Duration(d+1)*24*time.Hour-time.Hour), &m.AsLoaded); err != nil {
				return err
			}
		}
	}
	fmt.Fprintf(out, "bench: read: %d readings copied in %.1f s = %.0f readings/s\n", rr.Readings, rr.LoadSeconds, float64(rr.Readings)/rr.LoadSeconds)
	if !rollups {
		return nil
	}
	m.Backlog.Days = backlog
	if err := materialize(rr.To, &m.Backlog); err != nil {
		return err
	}
	for _, p := range []*Part{&m.AsLoaded, &m.Backlog} {
		if p.Seconds > 0 {
			p.ReadingsPerSec = float64(p.Readings) / p.Seconds
		}
	}
	m.LoadAfter, m.PeakRSSMiB = loadAverage(), peakRSSMiB()
	m.Readings, m.Seconds = m.AsLoaded.Readings+m.Backlog.Readings, m.AsLoaded.Seconds+m.Backlog.Seconds
	if m.Seconds > 0 {
		m.ReadingsPerSec = float64(m.Readings) / m.Seconds
	}
	rr.Rollups = m
	if m.Unfinished {
		return nil
	}
	if m.Readings != rr.Readings {
		return fmt.Errorf("r5: %d readings loaded but %d materialized", rr.Readings, m.Readings)
	}
	fmt.Fprintf(out, "bench: read: r5: %d readings in %.1f s = %.0f readings/s; a day at a time: %.0f readings/s, the last %s at once: %.0f readings/s\n",
		m.Readings, m.Seconds, m.ReadingsPerSec, m.AsLoaded.ReadingsPerSec, days(m.Backlog.Days), m.Backlog.ReadingsPerSec)
	return nil
}

// readQuery is a query to time: its SQL for run i (each run names other parameters).
type readQuery struct {
	name, desc string
	target     float64 // p50 in ms; 0: none
	runs       int
	sql        func(i int) string
}

// runRead loads the read benchmark's database and runs the read cases that want names
// (r2 and r5 need the rollups, which r5 times); it returns the figures and the targets.
func runRead(ctx context.Context, cfg Config, out io.Writer, want func(string) bool) (*ReadResults, map[string]bool, error) {
	others := max(1, cfg.ReadMeters/100)
	rr := &ReadResults{Meters: cfg.ReadMeters, OtherMeters: others, Series: len(readSeries), Days: cfg.ReadDays}
	targets := map[string]bool{}
	db, drop, err := freshDatabase(ctx, cfg.AdminURL, "read")
	if err != nil {
		return nil, nil, err
	}
	defer drop()
	st, err := store.Open(ctx, store.Config{URL: db, MaxConns: 4}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		return nil, nil, err
	}
	defer st.Close()
	if _, err := st.Migrate(ctx); err != nil {
		return nil, nil, err
	}
	conn, err := pgx.Connect(ctx, db)
	if err != nil {
		return nil, nil, err
	}
	defer conn.Close(context.Background())
	f, err := makeReadFleet(ctx, conn, cfg.ReadMeters, others)
	if err != nil {
		return nil, nil, fmt.Errorf("read fleet: %w", err)
	}
	// The load ends at the start of this hour: "the last 6 hours" of r4 fall on its
	// newest readings, and the rollups can be materialized up to its end.
	rr.To = time.Now().UTC().Truncate(time.Hour)
	rr.From = rr.To.Add(-time.Duration(cfg.ReadDays) * 24 * time.Hour)
	rollups := want("r2") || want("r5")
	if err := loadAndMaterialize(ctx, db, st, f, rr, rollups, out); err != nil {
		return nil, nil, err
	}
	if m := rr.Rollups; m != nil {
		targets[fmt.Sprintf("r5 >= %d readings/s", targetR5ReadingsPerS)] = !m.Unfinished && m.ReadingsPerSec >= targetR5ReadingsPerS
	}
	// r2's rollup side needs every bucket materialized: otherwise it would time the live
	// aggregation of the rest.
	r2 := want("r2") && !rr.Rollups.Unfinished
	if want("r2") && !r2 {
		rr.R2Skipped = true
		targets[fmt.Sprintf("r2_rollups p50 < %d ms", targetR2ms)] = false
		targets[fmt.Sprintf("r2 raw/rollups >= %d", targetR2Ratio)] = false
	}
	// Older chunks of a live database have been vacuumed and analyzed by autovacuum (it
	// starts on inserts alone): the visibility map, the BRIN summaries and the planner's
	// statistics are there. Here they are made at once, before the queries.
	t0 := time.Now()
	if _, err := conn.Exec(ctx, `VACUUM (ANALYZE)`); err != nil {
		return nil, nil, fmt.Errorf("vacuum: %w", err)
	}
	rr.VacuumSeconds = time.Since(t0).Seconds()
	fmt.Fprintf(out, "bench: read: VACUUM (ANALYZE) in %.1f s\n", rr.VacuumSeconds)
	// The days that ended 48 h ago are stored in key order on a live database
	// (cluster_readings, with its default AMRD_CLUSTER_AFTER_HOURS).
	t0 = time.Now()
	// (nil: nothing writes this database meanwhile, so every settled day is quiet.)
	done, err := st.ClusterReadingChunks(ctx, rr.To.Add(-jobs.DefaultConfig().ClusterAfter), 1<<20, nil)
	if err != nil {
		return nil, nil, fmt.Errorf("clustering: %w", err)
	}
	rr.ClusteredChunks, rr.ClusterSeconds = len(done), time.Since(t0).Seconds()
	if _, err := conn.Exec(ctx, `VACUUM (ANALYZE) meter_readings`); err != nil {
		return nil, nil, fmt.Errorf("vacuum: %w", err)
	}
	fmt.Fprintf(out, "bench: read: %d settled day chunks clustered in %.1f s\n", rr.ClusteredChunks, rr.ClusterSeconds)

	// Grafana's $__timeFilter expands to literals in UTC with milliseconds.
	lit := func(t time.Time) string { return "'" + t.UTC().Format("2006-01-02T15:04:05.000Z") + "'" }
	span := lit(rr.From) + " AND " + lit(rr.To)
	// Run i's meter and series: consecutive runs take meters far apart, and every series.
	meter := func(i int) int { return (i*7919 + 13) % f.meters }
	series := func(i int) int { return i % len(readSeries) }
	raw := max(3, cfg.ReadRuns/6)
	queries := []readQuery{
		{"r1", fmt.Sprintf("one meter's series, %d days of raw readings, through public.metering_meterreading", cfg.ReadDays), targetR1ms, cfg.ReadRuns, func(i int) string {
			return `SELECT "timestamp" AS "time", value FROM metering_meterreading WHERE meter_device_id = '` + f.deviceIDs[meter(i)] +
				`' AND series_id = '` + f.seriesIDs[0][series(i)] + `' AND "timestamp" BETWEEN ` + span + ` ORDER BY 1`
		}},
		{"r2_rollups", "one series' hourly average over the fleet, from amrd_read.series_rollups_hourly", targetR2ms, cfg.ReadRuns, func(i int) string {
			return `SELECT bucket AS "time", avg_value FROM amrd_read.series_rollups_hourly WHERE series_id = '` + f.seriesIDs[0][series(i)] +
				`' AND bucket BETWEEN ` + span + ` ORDER BY 1`
		}},
		{"r2_raw", fmt.Sprintf("the same chart from the raw readings, time_bucket over meter_readings (%d runs)", raw), 0, raw, func(i int) string {
			return fmt.Sprintf(`SELECT time_bucket('1 hour', ts) AS "time", avg(value * factor) FROM meter_readings WHERE series_key = %d AND ts BETWEEN %s GROUP BY 1 ORDER BY 1`,
				f.seriesKeys[0][series(i)], span)
		}},
		{"r3", "the latest reading of every meter for one series, amrd_read.latest_readings", targetR3ms, cfg.ReadRuns, func(i int) string {
			return `SELECT meter_device_name, "timestamp", value FROM amrd_read.latest_readings WHERE series_id = '` + f.seriesIDs[0][series(i)] + `'`
		}},
		{"r4", "readings per 5 minutes by created_at over the last 6 hours, amrd_read.meter_readings", targetR4ms, cfg.ReadRuns, func(i int) string {
			return `SELECT time_bucket('5 minutes', created_at) AS "time", count(*) FROM amrd_read.meter_readings WHERE created_at > now() - interval '6 hours' GROUP BY 1 ORDER BY 1`
		}},
	}
	if r2 {
		// What is timed must be right: the rollups give the raw readings' averages.
		if err := sameAverages(ctx, conn, queries[1].sql(0), queries[2].sql(0)); err != nil {
			return nil, nil, fmt.Errorf("r2: %w", err)
		}
	}
	for _, q := range queries {
		if c := strings.SplitN(q.name, "_", 2)[0]; !want(c) || c == "r2" && !r2 {
			continue
		}
		fmt.Fprintf(out, "bench: read: %s: %s ...\n", q.name, q.desc)
		res, err := timeQuery(ctx, conn, q)
		if err != nil {
			return nil, nil, fmt.Errorf("%s: %w", q.name, err)
		}
		rr.Queries = append(rr.Queries, res)
		if q.target > 0 {
			targets[fmt.Sprintf("%s p50 < %.0f ms", q.name, q.target)] = res.P50ms < q.target
		}
		fmt.Fprintf(out, "bench: read: %s: %d runs, %d rows, p50 %.1f ms, p99 %.1f ms\n", q.name, res.Runs, res.Rows, res.P50ms, res.P99ms)
	}
	if ro, ra := rr.query("r2_rollups"), rr.query("r2_raw"); ro != nil && ra != nil {
		rr.Ratios = map[string]float64{"r2 raw/rollups": ra.P50ms / ro.P50ms}
		targets[fmt.Sprintf("r2 raw/rollups >= %d", targetR2Ratio)] = rr.Ratios["r2 raw/rollups"] >= targetR2Ratio
	}
	return rr, targets, nil
}

func (rr *ReadResults) query(name string) *Query {
	for i := range rr.Queries {
		if rr.Queries[i].Name == name {
			return &rr.Queries[i]
		}
	}
	return nil
}

// timeQuery runs q's warm-up runs, then times q.runs runs, each with its own parameters.
// The warm-up runs take parameters of their own, after the timed runs'.
func timeQuery(ctx context.Context, conn *pgx.Conn, q readQuery) (Query, error) {
	const warm = 3
	res := Query{Name: q.name, Description: q.desc, Runs: q.runs, TargetMs: q.target, SQL: q.sql(0)}
	for i := 0; i < warm; i++ {
		if _, err := runQuery(ctx, conn, q.sql(q.runs+i)); err != nil {
			return res, err
		}
	}
	took := make([]float64, q.runs)
	for i := range took {
		t0 := time.Now()
		n, err := runQuery(ctx, conn, q.sql(i))
		if err != nil {
			return res, err
		}
		took[i] = float64(time.Since(t0).Microseconds()) / 1000
		if i == 0 {
			res.Rows = n
		}
	}
	slices.Sort(took)
	res.P50ms, res.P99ms = rank(took, 0.50), rank(took, 0.99)
	return res, nil
}

// rank is the nearest-rank percentile p of sorted values: of 30 runs, p50 is the 15th
// and p99 the 30th (the slowest).
func rank(sorted []float64, p float64) float64 {
	i := int(math.Ceil(p*float64(len(sorted)))) - 1
	return sorted[max(0, min(i, len(sorted)-1))]
}

// runQuery runs sql as Grafana sends it (the simple protocol: parsed and planned every
// time) and reads every row; it returns the count.
func runQuery(ctx context.Context, conn *pgx.Conn, sql string) (int64, error) {
	rows, err := conn.Query(ctx, sql, pgx.QueryExecModeSimpleProtocol)
	if err != nil {
		return 0, err
	}
	var n int64
	for rows.Next() {
		n++
	}
	rows.Close()
	return n, rows.Err()
}

// sameAverages checks that two (time, average) queries give the same hours and values.
func sameAverages(ctx context.Context, conn *pgx.Conn, a, b string) error {
	read := func(sql string) (map[time.Time]float64, error) {
		rows, err := conn.Query(ctx, `SELECT "time", avg::float8 FROM (`+sql+`) q("time", avg)`)
		if err != nil {
			return nil, err
		}
		m := map[time.Time]float64{}
		for rows.Next() {
			var t time.Time
			var v float64
			if err := rows.Scan(&t, &v); err != nil {
				rows.Close()
				return nil, err
			}
			m[t.UTC()] = v
		}
		rows.Close()
		return m, rows.Err()
	}
	x, err := read(a)
	if err != nil {
		return err
	}
	y, err := read(b)
	if err != nil {
		return err
	}
	if len(x) != len(y) || len(x) == 0 {
		return fmt.Errorf("the rollups give %d hours, the raw readings %d", len(x), len(y))
	}
	for t, v := range x {
		if w, ok := y[t]; !ok || math.Abs(v-w) > 1e-9*math.Abs(w) {
			return fmt.Errorf("hour %s: the rollups give %v, the raw readings %v", t.Format(time.RFC3339), v, w)
		}
	}
	return nil
}

// reportRead prints the read benchmark's table.
func reportRead(out io.Writer, rr *ReadResults) {
	fmt.Fprintf(out, "\namrd read benchmark: %d meters (and %d of another organization) x %d series x %d days of 15-minute readings = %d readings, %s to %s\n",
		rr.Meters, rr.OtherMeters, rr.Series, rr.Days, rr.Readings, rr.From.Format("2006-01-02 15:04"), rr.To.Format("2006-01-02 15:04 MST"))
	fmt.Fprintf(out, "loaded in %.1f s (%.0f readings/s, 2 COPY connections); VACUUM (ANALYZE) %.1f s; %d settled days clustered (cluster_readings) in %.1f s\n",
		rr.LoadSeconds, float64(rr.Readings)/rr.LoadSeconds, rr.VacuumSeconds, rr.ClusteredChunks, rr.ClusterSeconds)
	if len(rr.Queries) > 0 {
		fmt.Fprintf(out, "queries as Grafana sends them, as the database owner, each run with other parameters after 3 warm-up runs:\n")
		fmt.Fprintf(out, "%-11s %5s %7s %9s %9s  %-19s %s\n", "query", "runs", "rows", "p50 ms", "p99 ms", "target", "what")
		for _, q := range rr.Queries {
			t := "-"
			if q.TargetMs > 0 {
				t = fmt.Sprintf("p50 < %.0f ms %s", q.TargetMs, metStr(q.P50ms < q.TargetMs))
			}
			fmt.Fprintf(out, "%-11s %5d %7d %9.1f %9.1f  %-19s %s\n", q.Name, q.Runs, q.Rows, q.P50ms, q.P99ms, t, q.Description)
		}
	}
	if r, ok := rr.Ratios["r2 raw/rollups"]; ok {
		fmt.Fprintf(out, "r2: raw/rollups = %.0f (p50 over p50; target >= %d): %s\n", r, targetR2Ratio, metStr(r >= targetR2Ratio))
	}
	if rr.R2Skipped {
		fmt.Fprintf(out, "r2: not measured: the rollups were not all materialized (r5): MISSED\n")
	}
	if m := rr.Rollups; m != nil {
		if m.Unfinished {
			fmt.Fprintf(out, "r5: materializing the whole load: cancelled at the benchmark's limit of %.0f s, %d of %d readings materialized by the calls that finished: MISSED\n",
				r5Limit.Seconds(), m.Readings, rr.Readings)
			return
		}
		fmt.Fprintf(out, "r5: materializing the whole load: %d readings in %.1f s = %.0f readings/s (target >= %d): %s\n",
			m.Readings, m.Seconds, m.ReadingsPerSec, targetR5ReadingsPerS, metStr(m.ReadingsPerSec >= targetR5ReadingsPerS))
		fmt.Fprintf(out, "    a day at a time as loaded (%d calls): %d readings in %.1f s = %.0f readings/s\n",
			m.AsLoaded.Calls, m.AsLoaded.Readings, m.AsLoaded.Seconds, m.AsLoaded.ReadingsPerSec)
		fmt.Fprintf(out, "    the last %s in one call:   %d readings in %.1f s = %.0f readings/s\n",
			days(m.Backlog.Days), m.Backlog.Readings, m.Backlog.Seconds, m.Backlog.ReadingsPerSec)
		if m.LoadBefore > 0 || m.PeakRSSMiB > 0 {
			fmt.Fprintf(out, "    machine load average %.2f before, %.2f after (%d CPUs); amrd's peak RSS %.0f MiB\n",
				m.LoadBefore, m.LoadAfter, runtime.NumCPU(), m.PeakRSSMiB)
		}
	}
}

func days(n int) string {
	if n == 1 {
		return "day"
	}
	return strconv.Itoa(n) + " days"
}

func metStr(ok bool) string {
	if ok {
		return "met"
	}
	return "MISSED"
}
