package bench

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
	"golang.org/x/crypto/bcrypt"

	"github.com/amrd/amrd/store"
)

// Config is one benchmark run. DefaultConfig holds the defaults; Run gives a number or
// duration left at zero its default (Read is taken as given).
type Config struct {
	AdminURL string        // a superuser URL of the TimescaleDB to create databases on
	Binary   string        // the amrd binary to start for the HTTP cases
	Meters   int           // meters in the fleet (at least 10,000 for the README's figures)
	Duration time.Duration // how long each case writes (at least 10 s)
	JSONPath string        // where the results go as JSON ("" for none)
	// Only runs only these cases (for tuning): ingestion cases by name, r1-r5 the read
	// cases, r6 the two b cases. A ratio needs both of its cases.
	Only   []string
	Rounds int // times each case runs, interleaved; the median counts (default 5)

	Read       bool // run the read benchmark (r1-r5) after the ingestion cases
	ReadMeters int  // meters of the read load (default 1,000)
	ReadDays   int  // days of the read load (default 30)
	ReadRuns   int  // timed runs of each read query (default 30)
}

// DefaultConfig is the benchmark run of the README's figures (`amrd bench` without
// flags): 10,000 meters, 12 s a case, 5 rounds, and the read benchmark.
func DefaultConfig() Config {
	return Config{Meters: 10_000, Duration: 12 * time.Second, JSONPath: "bench-results.json", Rounds: 5,
		Read: true, ReadMeters: 1_000, ReadDays: 30, ReadRuns: 30}
}

// ingestCases are the ingestion cases, as -only names them.
var ingestCases = []string{"a_copy", "b_batches", "b_norollups", "c_single", "d_naive"}

// Case is one measured way of writing readings.
type Case struct {
	Name        string  `json:"name"`
	Description string  `json:"description"`
	Rows        int64   `json:"rows"`
	Seconds     float64 `json:"seconds"`
	RowsPerSec  float64 `json:"rows_per_s"`
	Requests    int64   `json:"requests,omitempty"`
	P50ms       float64 `json:"p50_ms,omitempty"`
	P99ms       float64 `json:"p99_ms,omitempty"`
	PeakRSSMB   float64 `json:"amrd_peak_rss_mb,omitempty"`
	CPU         *CPU    `json:"cpu,omitempty"`
	// Rollups is what amrd's rollup job had done when the case ended (case b).
	Rollups *RollupWork `json:"rollups,omitempty"`
}

// RollupWork is the rollup bookkeeping of a case that ran with rollups on.
type RollupWork struct {
	Threshold    time.Time `json:"threshold"`
	Materialized time.Time `json:"materialized"`        // where the job got to
	Aggregated   int64     `json:"readings_in_rollups"` // readings in the hourly buckets
	Marked       int64     `json:"readings_marked"`     // readings the case wrote at or below the threshold
	MarksLeft    int64     `json:"marks_left"`          // marks the job had not recomputed yet
}

// Results is what a run prints and writes.
type Results struct {
	When    time.Time          `json:"when"`
	Machine string             `json:"machine"`
	Meters  int                `json:"meters"`
	Series  int                `json:"series_per_meter"`
	Rounds  int                `json:"rounds"`
	Cases   []Case             `json:"cases"` // each case's median round (for its figures)
	All     [][]Case           `json:"rounds_of_cases"`
	Ratios  map[string]float64 `json:"ratios"` // each ratio's median over the rounds
	// The ratios of each round alone: how far one run could have strayed.
	RoundRatios []map[string]float64 `json:"ratios_by_round,omitempty"`
	Targets     map[string]bool      `json:"targets_met"`
	PeakRSS     float64              `json:"amrd_peak_rss_mb"`
	Read        *ReadResults         `json:"read,omitempty"`
}

// ratioKeys are the ratios of the ingestion cases: key, numerator, denominator, target.
var ratioKeys = []struct {
	key, num, den string
	target        float64
	decimals      int // printed
}{
	{"b/a", "b_batches", "a_copy", 0.5, 2},
	{"b/d", "b_batches", "d_naive", 100, 0},
	{"c/d", "c_single", "d_naive", 10, 1},
	{"b_on/b_off", "b_batches", "b_norollups", 0.9, 2}, // r6
}

// Case b's readings begin with bPreload of the stream (one hour of the fleet), copied
// before amrd starts, and the rollup threshold is set at their end. amrd's rollup job,
// running every 2 s, materializes that hour when amrd starts, and the case writes once it
// has (materializing is r5's work; docs/decisions.md, "make bench"): the case's first
// quarter-hour, on the materialized point, arrives late: it is marked, and the job
// recomputes its buckets while the case writes. The rest of the case's readings lie above
// the threshold, as readings that arrive on time do.
const bPreloadSlots = 4

var bThreshold = epoch.Add(bPreloadSlots * interval)

// Run measures the ingestion cases (a)-(d) (and r6: case b with rollups on and off)
// in fresh databases and prints the ratios, then, with cfg.Read, the read cases r1-r5
// (read.go); it prints the targets met and missed and writes the results as JSON.
func Run(ctx context.Context, cfg Config, out io.Writer) (*Results, error) {
	for _, name := range cfg.Only {
		if !slices.Contains(ingestCases, name) && !slices.Contains(readCases, name) && name != "r6" {
			return nil, fmt.Errorf("bench: no case %q (cases: %s, %s, r6)", name, strings.Join(ingestCases, ", "), strings.Join(readCases, ", "))
		}
	}
	want := func(name string) bool { return len(cfg.Only) == 0 || slices.Contains(cfg.Only, name) }
	def := DefaultConfig()
	if cfg.Meters <= 0 {
		cfg.Meters = def.Meters
	}
	if cfg.ReadMeters <= 0 {
		cfg.ReadMeters = def.ReadMeters
	}
	if cfg.ReadDays <= 0 {
		cfg.ReadDays = def.ReadDays
	}
	if cfg.ReadRuns <= 0 {
		cfg.ReadRuns = def.ReadRuns
	}
	if cfg.Duration <= 0 {
		cfg.Duration = def.Duration
	}
	if cfg.Rounds <= 0 {
		cfg.Rounds = def.Rounds
	}
	if cfg.Rounds%2 == 0 {
		cfg.Rounds++ // an odd count has one median, favouring no case
	}
	res := &Results{When: time.Now().UTC(), Machine: fmt.Sprintf("%s/%s, %d CPUs, %s", runtime.GOOS, runtime.GOARCH, runtime.NumCPU(), runtime.Version()),
		Meters: cfg.Meters, Series: len(seriesNames), Rounds: cfg.Rounds}
	var steps []step
	for _, st := range []step{
		{name: "a_copy", desc: "raw pgx COPY, 10,000-row batches, one connection (the ceiling)", run: func(ctx context.Context, db string, f *fleet, _ int64) (Case, error) {
			return copyCase(ctx, db, f, cfg.Duration)
		}},
		{name: "b_batches", desc: "amrd new-meter-readings, 1,000 readings a request, 8 concurrent clients (rollups on)", preload: bPreloadSlots, rollups: true,
			run: func(ctx context.Context, db string, f *fleet, first int64) (Case, error) {
				// The job every 2 s instead of every minute: it runs during the case.
				env, err := rollupEnv(bThreshold, "AMRD_ROLLUPS=true", "AMRD_ROLLUP_EVERY_SECONDS=2")
				if err != nil {
					return Case{}, err
				}
				return httpCase(ctx, cfg, db, f, 1000, 8, first, env, bThreshold)
			}},
		{name: "b_norollups", desc: "case b with rollups off (AMRD_ROLLUPS=false): no threshold, no marks, no rollup job", preload: bPreloadSlots,
			run: func(ctx context.Context, db string, f *fleet, first int64) (Case, error) {
				return httpCase(ctx, cfg, db, f, 1000, 8, first, []string{"AMRD_ROLLUPS=false"}, time.Time{})
			}},
		{name: "c_single", desc: "amrd new-meter-readings, 1 reading a request, 100 requests in flight", run: func(ctx context.Context, db string, f *fleet, first int64) (Case, error) {
			// Rollups on as by default, the threshold an hour before the case's readings:
			// they arrive on time.
			env, err := rollupEnv(epoch.Add(-time.Hour), "AMRD_ROLLUPS=true")
			if err != nil {
				return Case{}, err
			}
			return httpCase(ctx, cfg, db, f, 1, 100, first, env, time.Time{})
		}},
		{name: "d_naive", desc: "one transaction per reading with its three lookups, 4 connections", run: func(ctx context.Context, db string, f *fleet, _ int64) (Case, error) {
			return naiveCase(ctx, db, f, cfg.Duration, 4)
		}},
	} {
		if want(st.name) || want("r6") && (st.name == "b_batches" || st.name == "b_norollups") {
			steps = append(steps, st)
		}
	}
	// The cases take turns, round after round: a spell of load from elsewhere on the
	// machine then slows one round of each case instead of all rounds of one, and the
	// median of each case leaves it out.
	// Every other round runs them in the opposite order, so that no case always follows
	// the same one (the previous case's database dropped, its WAL being written out) or
	// always comes first, on a machine just woken up.
	for round := 1; round <= cfg.Rounds && len(steps) > 0; round++ {
		cases := make([]Case, len(steps))
		for n := range steps {
			i := n
			if round%2 == 0 {
				i = len(steps) - 1 - n
			}
			st := steps[i]
			fmt.Fprintf(out, "bench: round %d of %d: %s: %s ...\n", round, cfg.Rounds, st.name, st.desc)
			c, err := runCase(ctx, cfg, st)
			if err != nil {
				return nil, err
			}
			c.Name, c.Description = st.name, st.desc
			cases[i] = c // in the steps' order, whatever order they ran in
			res.PeakRSS = max(res.PeakRSS, c.PeakRSSMB)
			fmt.Fprintf(out, "bench: %s: %d rows in %.1f s = %.0f readings/s", st.name, c.Rows, c.Seconds, c.RowsPerSec)
			if c.CPU != nil {
				fmt.Fprintf(out, "; CPU a reading: amrd %.1f us, client %.1f us, PostgreSQL %.1f us; machine %.0f%% busy",
					c.CPU.AmrdUS, c.CPU.ClientUS, c.CPU.PostgresUS, 100*c.CPU.Busy)
			}
			fmt.Fprintln(out)
			if w := c.Rollups; w != nil {
				mat := "nothing materialized"
				if !w.Materialized.IsZero() {
					mat = "materialized up to " + w.Materialized.Format(time.RFC3339)
				}
				fmt.Fprintf(out, "bench: %s: rollup job: threshold %s, %s, %d readings in hourly rollups; %d readings written at or below the threshold (marked), %d marks left\n",
					st.name, w.Threshold.UTC().Format(time.RFC3339), mat, w.Aggregated, w.Marked, w.MarksLeft)
			}
		}
		res.All = append(res.All, cases)
		if r := ratios(cases); len(r) > 0 {
			res.RoundRatios = append(res.RoundRatios, r)
		}
	}
	for i := range steps {
		runs := make([]Case, len(res.All))
		for r := range res.All {
			runs[r] = res.All[r][i]
		}
		slices.SortFunc(runs, func(x, y Case) int { return cmp.Compare(x.RowsPerSec, y.RowsPerSec) })
		res.Cases = append(res.Cases, runs[len(runs)/2])
	}
	// Each round compares the cases measured minutes apart, under the same load from
	// elsewhere; the ratios are each ratio's median over the rounds. (The ratio of the
	// median cases would pair a case's quiet round with another's busy one.)
	res.Ratios, res.Targets = map[string]float64{}, map[string]bool{}
	for _, k := range ratioKeys {
		var v []float64
		for _, rr := range res.RoundRatios {
			if x, ok := rr[k.key]; ok {
				v = append(v, x)
			}
		}
		if len(v) == 0 {
			continue
		}
		slices.Sort(v)
		res.Ratios[k.key] = v[len(v)/2]
		res.Targets[fmt.Sprintf("%s >= %g", k.key, k.target)] = res.Ratios[k.key] >= k.target
	}
	if res.PeakRSS > 0 {
		res.Targets["peak RSS <= 256 MB"] = res.PeakRSS <= 256
	}
	if len(res.Cases) > 0 {
		report(out, res)
	}
	if cfg.Read && slices.ContainsFunc(readCases, want) {
		rr, targets, err := runRead(ctx, cfg, out, want)
		if err != nil {
			return nil, fmt.Errorf("read benchmark: %w", err)
		}
		res.Read = rr
		for k, v := range targets {
			res.Targets[k] = v
		}
		reportRead(out, rr)
	}
	reportTargets(out, res.Targets)
	if cfg.JSONPath != "" {
		raw, _ := json.MarshalIndent(res, "", "  ")
		if err := os.WriteFile(cfg.JSONPath, append(raw, '\n'), 0o644); err != nil {
			return nil, err
		}
		fmt.Fprintf(out, "bench: results written to %s\n", cfg.JSONPath)
	}
	return res, nil
}

// step is one ingestion case.
type step struct {
	name, desc string
	// preload: quarter-hours of the fleet's readings copied before the case; the case's
	// stream starts after them.
	preload int
	// rollups: the rollup threshold is set at the end of the preload before the case,
	// and what the rollup job did is read after it.
	rollups bool
	run     func(ctx context.Context, db string, f *fleet, first int64) (Case, error)
}

// runCase runs one case in a fresh database and checks that what amrd acknowledged is
// what is stored.
func runCase(ctx context.Context, cfg Config, st step) (Case, error) {
	db, drop, err := freshDatabase(ctx, cfg.AdminURL, st.name)
	if err != nil {
		return Case{}, err
	}
	defer drop()
	f, err := prepare(ctx, db, cfg.Meters)
	if err != nil {
		return Case{}, fmt.Errorf("preparing %s: %w", st.name, err)
	}
	first := int64(st.preload) * int64(f.devices*len(seriesNames))
	if err := preload(ctx, db, f, first, st.rollups); err != nil {
		return Case{}, fmt.Errorf("preparing %s: %w", st.name, err)
	}
	if err := checkpoint(ctx, cfg.AdminURL); err != nil {
		return Case{}, fmt.Errorf("preparing %s: %w", st.name, err)
	}
	c, err := st.run(ctx, db, f, first)
	if err != nil {
		return Case{}, fmt.Errorf("%s: %w", st.name, err)
	}
	n, err := countReadings(ctx, db)
	if err != nil {
		return Case{}, err
	}
	if n-first != c.Rows {
		return Case{}, fmt.Errorf("%s: %d rows acknowledged but %d stored", st.name, c.Rows, n-first)
	}
	c.RowsPerSec = float64(c.Rows) / c.Seconds
	if st.rollups {
		if c.Rollups, err = rollupWork(ctx, db, first); err != nil {
			return Case{}, err
		}
	}
	return c, nil
}

// preload copies the first n readings of the stream and, with threshold, moves the
// rollup threshold to the time of reading n: what the rollup job does on its first run,
// done before amrd starts, so that every reading of the case at or below it is marked
// (whether the case or the job comes first).
func preload(ctx context.Context, db string, f *fleet, n int64, threshold bool) error {
	conn, err := pgx.Connect(ctx, db)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	if n > 0 {
		_, err = conn.CopyFrom(ctx, pgx.Identifier{"meter_readings"}, []string{"device_key", "series_key", "ts", "value", "factor"},
			pgx.CopyFromSlice(int(n), func(i int) ([]any, error) {
				d, s, ts := f.at(int64(i))
				return []any{f.deviceKeys[d], f.seriesKeys[s], ts, value(int64(i)), int64(1)}, nil
			}))
		if err != nil {
			return err
		}
	}
	if !threshold {
		return nil
	}
	st, err := store.Open(ctx, store.Config{URL: db, MaxConns: 2}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		return err
	}
	defer st.Close()
	_, _, ts := f.at(n)
	return st.MoveRollupThreshold(ctx, ts)
}

// rollupWork reads what the rollup job had done; first is the count of preloaded readings.
func rollupWork(ctx context.Context, db string, first int64) (*RollupWork, error) {
	conn, err := pgx.Connect(ctx, db)
	if err != nil {
		return nil, err
	}
	defer conn.Close(ctx)
	var w RollupWork
	var mat pgtype.Timestamptz
	err = conn.QueryRow(ctx, `SELECT threshold, materialized, (SELECT coalesce(sum(count), 0) FROM rollup_hourly),
			(SELECT count(*) FROM meter_readings WHERE ts <= s.threshold), (SELECT count(*) FROM rollup_marks)
		FROM rollup_state s`).Scan(&w.Threshold, &mat, &w.Aggregated, &w.Marked, &w.MarksLeft)
	if err != nil {
		return nil, fmt.Errorf("reading the rollup state: %w", err)
	}
	if mat.Valid && mat.InfinityModifier == pgtype.Finite {
		w.Materialized = mat.Time
	}
	w.Marked -= first
	return &w, nil
}

// rollupEnv is amrd's environment with the rollup threshold at threshold for the next
// half hour: AMRD_ROLLUP_DELAY_MINUTES such that the job's target, the start of the hour
// the delay ago, is threshold (an hour's start) from now for 30 minutes.
func rollupEnv(threshold time.Time, env ...string) ([]string, error) {
	delay := int((time.Since(threshold) - 30*time.Minute) / time.Minute)
	if delay < 1 {
		return nil, fmt.Errorf("the clock (%s) is before the benchmark's readings (%s)", time.Now().UTC().Format(time.RFC3339), threshold.Format(time.RFC3339))
	}
	return append(env, "AMRD_ROLLUP_DELAY_MINUTES="+strconv.Itoa(delay)), nil
}

// ratios are the ratios of one round's cases (those whose two cases ran).
func ratios(c []Case) map[string]float64 {
	by := map[string]float64{}
	for _, x := range c {
		by[x.Name] = x.RowsPerSec
	}
	r := map[string]float64{}
	for _, k := range ratioKeys {
		if x, ok := by[k.num]; ok {
			if y, ok := by[k.den]; ok {
				r[k.key] = x / y
			}
		}
	}
	return r
}

func report(out io.Writer, r *Results) {
	fmt.Fprintf(out, "\namrd ingestion benchmark, %s, %d meters x %d series, 15-minute readings; %d rounds\n", r.Machine, r.Meters, r.Series, r.Rounds)
	fmt.Fprintf(out, "each case's median round:\n%-10s %12s %8s %12s %9s %9s  %s\n", "case", "rows", "seconds", "readings/s", "p50 ms", "p99 ms", "what")
	for _, c := range r.Cases {
		p50, p99 := "-", "-"
		if c.Requests > 0 {
			p50, p99 = fmt.Sprintf("%.1f", c.P50ms), fmt.Sprintf("%.1f", c.P99ms)
		}
		fmt.Fprintf(out, "%-10s %12d %8.1f %12.0f %9s %9s  %s\n", c.Name, c.Rows, c.Seconds, c.RowsPerSec, p50, p99, c.Description)
	}
	fmt.Fprintf(out, "\nCPU a reading, in microseconds (the three share the machine's cores):\n%-10s %8s %8s %10s %8s\n", "case", "amrd", "client", "PostgreSQL", "busy")
	for _, c := range r.Cases {
		if c.CPU == nil {
			continue
		}
		a := "-"
		if c.Requests > 0 {
			a = fmt.Sprintf("%.1f", c.CPU.AmrdUS)
		}
		fmt.Fprintf(out, "%-10s %8s %8.1f %10.1f %7.0f%%\n", c.Name, a, c.CPU.ClientUS, c.CPU.PostgresUS, 100*c.CPU.Busy)
	}
	if len(r.Ratios) > 0 {
		fmt.Fprintf(out, "\nratios, each the median of its rounds: %s\n", ratioLine(r.Ratios, true))
		for i, rr := range r.RoundRatios {
			fmt.Fprintf(out, "  round %d alone: %s\n", i+1, ratioLine(rr, false))
		}
	}
	if r.PeakRSS > 0 {
		fmt.Fprintf(out, "amrd peak RSS: %.0f MB (target <= 256 MB)\n", r.PeakRSS)
	}
}

// ratioLine lists the ratios there are, in ratioKeys' order, with their targets.
func ratioLine(r map[string]float64, targets bool) string {
	var parts []string
	for _, k := range ratioKeys {
		v, ok := r[k.key]
		if !ok {
			continue
		}
		p := k.key + " = " + strconv.FormatFloat(v, 'f', k.decimals, 64)
		if targets {
			p += fmt.Sprintf(" (target >= %g)", k.target)
		}
		parts = append(parts, p)
	}
	return strings.Join(parts, ", ")
}

// reportTargets prints the targets missed, or that all were met.
func reportTargets(out io.Writer, targets map[string]bool) {
	var missed []string
	for k, ok := range targets {
		if !ok {
			missed = append(missed, k)
		}
	}
	slices.Sort(missed)
	switch {
	case len(targets) == 0:
	case len(missed) == 0:
		fmt.Fprintf(out, "\nall %d targets met\n", len(targets))
	default:
		fmt.Fprintf(out, "\ntargets missed (%d of %d): %s\n", len(missed), len(targets), strings.Join(missed, "; "))
	}
}

// freshDatabase creates an empty database and returns its URL and a function that drops it.
// checkpoint writes out what the preparation (and the cases before) left in the WAL and
// the shared buffers before a case begins, so that no case pays for another's writes: a
// checkpoint that max_wal_size or checkpoint_timeout starts during a case writes pages
// out beside it and makes the first change of every page after it log the whole page.
func checkpoint(ctx context.Context, admin string) error {
	conn, err := pgx.Connect(ctx, admin)
	if err != nil {
		return fmt.Errorf("connecting to the benchmark server: %w", err)
	}
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, "CHECKPOINT")
	return err
}

func freshDatabase(ctx context.Context, admin, name string) (string, func(), error) {
	var b [4]byte
	_, _ = rand.Read(b[:])
	db := "amrd_bench_" + name + "_" + hex.EncodeToString(b[:])
	conn, err := pgx.Connect(ctx, admin)
	if err != nil {
		return "", nil, fmt.Errorf("connecting to the benchmark server: %w", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+db); err != nil {
		return "", nil, err
	}
	u, err := url.Parse(admin)
	if err != nil {
		return "", nil, err
	}
	u.Path = "/" + db
	drop := func() {
		// AMRD_BENCH_KEEP_DB=1 keeps the database, to look at its plans afterwards.
		if os.Getenv("AMRD_BENCH_KEEP_DB") != "" {
			fmt.Fprintf(os.Stderr, "bench: kept database %s\n", db)
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if c, err := pgx.Connect(ctx, admin); err == nil {
			_, _ = c.Exec(ctx, "DROP DATABASE IF EXISTS "+db+" WITH (FORCE)")
			_ = c.Close(ctx)
		}
	}
	return u.String(), drop, nil
}

// prepare migrates a database and creates the fleet.
func prepare(ctx context.Context, db string, meters int) (*fleet, error) {
	st, err := store.Open(ctx, store.Config{URL: db, MaxConns: 2}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		return nil, err
	}
	defer st.Close()
	if _, err := st.Migrate(ctx); err != nil {
		return nil, err
	}
	conn, err := pgx.Connect(ctx, db)
	if err != nil {
		return nil, err
	}
	defer conn.Close(ctx)
	return makeFleet(ctx, conn, meters)
}

func countReadings(ctx context.Context, db string) (int64, error) {
	conn, err := pgx.Connect(ctx, db)
	if err != nil {
		return 0, err
	}
	defer conn.Close(ctx)
	var n int64
	err = conn.QueryRow(ctx, `SELECT count(*) FROM meter_readings`).Scan(&n)
	return n, err
}

// copyCase writes with plain COPY in 10,000-row transactions on one connection.
func copyCase(ctx context.Context, db string, f *fleet, dur time.Duration) (Case, error) {
	conn, err := pgx.Connect(ctx, db)
	if err != nil {
		return Case{}, err
	}
	defer conn.Close(ctx)
	const batch = 10_000
	var next int64
	cpu0 := takeCPU(0)
	start := time.Now()
	for time.Since(start) < dur {
		first := next
		_, err := conn.CopyFrom(ctx, pgx.Identifier{"meter_readings"}, []string{"device_key", "series_key", "ts", "value", "factor"},
			pgx.CopyFromSlice(batch, func(i int) ([]any, error) {
				n := first + int64(i)
				d, s, ts := f.at(n)
				return []any{f.deviceKeys[d], f.seriesKeys[s], ts, value(n), int64(1)}, nil
			}))
		if err != nil {
			return Case{}, err
		}
		next += batch
	}
	elapsed := time.Since(start).Seconds()
	return Case{Rows: next, Seconds: elapsed, CPU: perReading(cpu0, takeCPU(0), next)}, nil
}

// naiveCase writes each reading in its own transaction after looking up its device, its
// series in the device's organization, and that the device's config allows the series:
// what a straightforward per-reading handler does.
func naiveCase(ctx context.Context, db string, f *fleet, dur time.Duration, clients int) (Case, error) {
	conns := make([]*pgx.Conn, clients)
	defer func() {
		for _, c := range conns {
			if c != nil {
				c.Close(ctx)
			}
		}
	}()
	for i := range conns {
		c, err := pgx.Connect(ctx, db)
		if err != nil {
			return Case{}, err
		}
		conns[i] = c
	}
	var next atomic.Int64
	var firstErr error
	var once sync.Once
	cpu0 := takeCPU(0)
	start := time.Now()
	var wg sync.WaitGroup
	for _, conn := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Since(start) < dur {
				n := next.Add(1) - 1
				d, s, ts := f.at(n)
				err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
					// The three lookups of a per-reading handler: the device by name, its
					// config through its type, the series by name in the device's
					// organization and allowed by that config.
					var devKey int32
					var org, typ, cfg string
					if err := tx.QueryRow(ctx, `SELECT key, organization_id, type_id FROM meter_devices WHERE name = $1`, deviceName(d)).Scan(&devKey, &org, &typ); err != nil {
						return err
					}
					if err := tx.QueryRow(ctx, `SELECT config_id FROM meter_device_types WHERE id = $1`, typ).Scan(&cfg); err != nil {
						return err
					}
					var serKey int32
					if err := tx.QueryRow(ctx, `SELECT s.key FROM meter_reading_series s
						JOIN meter_device_config_series cs ON cs.series_id = s.id AND cs.config_id = $3
						WHERE s.name = $1 AND s.organization_id = $2`, seriesNames[s], org, cfg).Scan(&serKey); err != nil {
						return err
					}
					_, err := tx.Exec(ctx, `INSERT INTO meter_readings (device_key, series_key, ts, value, factor) VALUES ($1, $2, $3, $4, 1)
						ON CONFLICT DO NOTHING`, devKey, serKey, ts, value(n))
					return err
				})
				if err != nil {
					once.Do(func() { firstErr = err })
					return
				}
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start).Seconds()
	cpu1 := takeCPU(0) // before the deferred closes end the backends
	if firstErr != nil {
		return Case{}, firstErr
	}
	return Case{Rows: next.Load(), Seconds: elapsed, CPU: perReading(cpu0, cpu1, next.Load())}, nil
}

// httpCase starts amrd on the database and posts readings for cfg.Duration: clients
// loops, each sending per readings a request and waiting for the answer.
//
// materialized, if not zero, is where amrd's rollup job, started with amrd, must have
// materialized the rollups to before the load begins.
func httpCase(ctx context.Context, cfg Config, db string, f *fleet, per, clients int, first int64, env []string, materialized time.Time) (Case, error) {
	token, err := staffToken(ctx, db)
	if err != nil {
		return Case{}, err
	}
	srv, err := startAmrd(ctx, cfg.Binary, db, env)
	if err != nil {
		return Case{}, err
	}
	defer srv.stop()
	if !materialized.IsZero() {
		if err := waitMaterialized(ctx, db, materialized); err != nil {
			return Case{}, err
		}
	}
	addr := strings.TrimPrefix(srv.base, "http://")
	head := "POST /v1/metering/new-meter-readings HTTP/1.1\r\nHost: " + addr + "\r\nAuthorization: Token " + token +
		"\r\nContent-Type: application/json\r\nContent-Length: "
	nextReading := first
	var acked, requests int64
	var lat []time.Duration
	var scratch bytes.Buffer
	next := func(buf []byte) ([]byte, int) {
		scratch.Reset()
		body(&scratch, f, nextReading, per)
		nextReading += int64(per)
		buf = append(buf, head...)
		buf = strconv.AppendInt(buf, int64(scratch.Len()), 10)
		buf = append(buf, "\r\n\r\n"...)
		return append(buf, scratch.Bytes()...), per
	}
	result := func(status int, raw []byte, readings int, latency time.Duration) error {
		requests++
		lat = append(lat, latency)
		if status != http.StatusCreated {
			return fmt.Errorf("status %d: %.300s", status, raw)
		}
		if n, ok := accepted(raw); !ok || n != int64(readings) {
			return fmt.Errorf("unexpected report: %.300s", raw)
		}
		acked += int64(readings)
		return nil
	}
	cpu0 := takeCPU(srv.pid())
	took, err := runLoad(addr, clients, cfg.Duration, next, result)
	cpu1 := takeCPU(srv.pid())
	rss := srv.peakRSS()
	if err != nil {
		return Case{}, err
	}
	elapsed := took.Seconds()
	all := lat
	slices.Sort(all)
	q := func(p float64) float64 { return float64(all[int(p*float64(len(all)-1))].Microseconds()) / 1000 }
	return Case{Rows: acked, Seconds: elapsed, Requests: requests, P50ms: q(0.50), P99ms: q(0.99),
		PeakRSSMB: rss, CPU: perReading(cpu0, cpu1, acked)}, nil
}

// waitMaterialized waits until rollup_state says the rollups are materialized up to to.
func waitMaterialized(ctx context.Context, db string, to time.Time) error {
	conn, err := pgx.Connect(ctx, db)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	deadline := time.Now().Add(2 * time.Minute)
	for {
		var done bool
		if err := conn.QueryRow(ctx, `SELECT materialized >= $1 FROM rollup_state`, to).Scan(&done); err != nil {
			return err
		}
		if done {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("amrd's rollup job did not materialize up to %s within 2 minutes", to.Format(time.RFC3339))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// body writes per readings from the stream, starting at first, as a JSON array.
func body(buf *bytes.Buffer, f *fleet, first int64, per int) {
	buf.WriteByte('[')
	for i := 0; i < per; i++ {
		n := first + int64(i)
		d, s, ts := f.at(n)
		if i > 0 {
			buf.WriteByte(',')
		}
		buf.WriteString(`{"meter_device_name":"`)
		buf.WriteString(deviceName(d))
		buf.WriteString(`","series_name":"`)
		buf.WriteString(seriesNames[s])
		buf.WriteString(`","timestamp":"`)
		buf.WriteString(ts.Format(time.RFC3339))
		buf.WriteString(`","value":"`)
		buf.WriteString(value(n))
		buf.WriteString(`"}`)
	}
	buf.WriteByte(']')
}

// staffToken creates a staff user with an API token.
func staffToken(ctx context.Context, db string) (string, error) {
	st, err := store.Open(ctx, store.Config{URL: db, MaxConns: 2}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		return "", err
	}
	defer st.Close()
	hash, err := bcrypt.GenerateFromPassword([]byte(strconv.FormatInt(time.Now().UnixNano(), 36)), bcrypt.MinCost)
	if err != nil {
		return "", err
	}
	u, err := st.CreateUser(ctx, store.UserInput{Username: "bench", PasswordHash: string(hash), IsStaff: true, IsActive: true})
	if err != nil {
		return "", err
	}
	return st.CreateToken(ctx, u.ID)
}

type amrdProcess struct {
	cmd  *exec.Cmd
	base string
	done chan error
}

// startAmrd runs `amrd serve` on a loopback port of its choosing, with env added to its
// environment, and waits until it listens.
func startAmrd(ctx context.Context, bin, db string, env []string) (*amrdProcess, error) {
	var b [24]byte
	_, _ = rand.Read(b[:])
	cmd := exec.CommandContext(ctx, bin, "serve")
	cmd.Env = append(os.Environ(), "DATABASE_URL="+db, "SECRET_KEY="+hex.EncodeToString(b[:]), "AMRD_LISTEN=127.0.0.1:0", "AMRD_LOG_LEVEL=warn")
	cmd.Env = append(cmd.Env, env...) // the last of a name counts
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s: %w", bin, err)
	}
	p := &amrdProcess{cmd: cmd, done: make(chan error, 1)}
	lines := bufio.NewScanner(stdout)
	addr := make(chan string, 1)
	go func() {
		for lines.Scan() {
			if a, ok := strings.CutPrefix(lines.Text(), "amrd listening on "); ok {
				addr <- a
			}
		}
	}()
	go func() { p.done <- cmd.Wait() }()
	select {
	case a := <-addr:
		p.base = a
		return p, nil
	case err := <-p.done:
		return nil, fmt.Errorf("amrd exited before listening: %v", err)
	case <-time.After(30 * time.Second):
		_ = cmd.Process.Kill()
		return nil, errors.New("amrd did not listen within 30 s")
	}
}

func (p *amrdProcess) pid() int { return p.cmd.Process.Pid }

// peakRSS is the process's high-water resident set (VmHWM), in MB.
func (p *amrdProcess) peakRSS() float64 {
	raw, err := os.ReadFile("/proc/" + strconv.Itoa(p.cmd.Process.Pid) + "/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(raw), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, _ := strconv.ParseFloat(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 64)
			return kb / 1024
		}
	}
	return 0
}

func (p *amrdProcess) stop() {
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(30 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}
