package importer

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/amrd/amrd/ingest"
	"github.com/amrd/amrd/store"
	"github.com/amrd/amrd/store/storetest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// fleet returns a store on a migrated database with a fleet, and the database's URL: an
// organization with series "1.8.0" (CT) and "2.8.0" (CT and VT), a config in
// Europe/Stockholm allowing both, a type with it, and devices "m1" and "g0" to "g9" with
// CT 100 and VT 20.
func fleet(t *testing.T) (*store.Store, string) {
	t.Helper()
	st, dbURL := storetest.New(t)
	storetest.Exec(t, dbURL, `
		WITH o AS (INSERT INTO organizations (name) VALUES ('o') RETURNING id),
		s1 AS (INSERT INTO meter_reading_series (organization_id, name, unit, affected_by_ct_ratio) SELECT id, '1.8.0', 'kWh', true FROM o RETURNING id),
		s2 AS (INSERT INTO meter_reading_series (organization_id, name, unit, affected_by_ct_ratio, affected_by_vt_ratio) SELECT id, '2.8.0', 'kWh', true, true FROM o RETURNING id),
		c AS (INSERT INTO meter_device_configs (organization_id, name, timezone) SELECT id, 'c', 'Europe/Stockholm' FROM o RETURNING id),
		cs AS (INSERT INTO meter_device_config_series (config_id, series_id) SELECT c.id, s.id FROM c, (SELECT id FROM s1 UNION ALL SELECT id FROM s2) s),
		ty AS (INSERT INTO meter_device_types (organization_id, name, manufacturer, manufacturer_model, config_id) SELECT o.id, 't', 'm', 'mm', c.id FROM o, c RETURNING id)
		INSERT INTO meter_devices (organization_id, name, protocol, type_id, has_current_transformer, current_transformer_ratio, has_voltage_transformer, voltage_transformer_ratio)
		SELECT o.id, n, 'iec62056-21', ty.id, true, 100, true, 20 FROM o, ty, (SELECT 'm1' AS n UNION ALL SELECT 'g' || i FROM generate_series(0, 9) i) names`)
	return st, dbURL
}

// importFile imports path ("-": stdin) into st as `amrd import readings` does, through a
// pipeline of the default configuration, and returns the report and the outcome.
func importFile(ctx context.Context, t *testing.T, st *store.Store, path string, stdin io.Reader, opt Options) (string, error) {
	t.Helper()
	im, err := Open(path, stdin, opt)
	if err != nil {
		return "", err
	}
	defer im.Close()
	cfg := ingest.DefaultConfig()
	pipe, err := ingest.New(cfg, st, slog.New(slog.NewTextHandler(io.Discard, nil)), prometheus.NewRegistry())
	require.NoError(t, err)
	pctx, stop := context.WithCancel(context.Background())
	stopped := make(chan struct{})
	go func() { _ = pipe.Run(pctx); close(stopped) }()
	im.Run(ctx, pipe, cfg, io.Discard)
	stop()
	<-stopped
	var out bytes.Buffer
	err = im.Finish(&out)
	return out.String(), err
}

// importCSV has one row of each kind; the comment after each row is its line's outcome.
var importCSV = strings.Join([]string{
	"Timestamp, meter ,series,value",                // 1 header: aliases, any case and order, spaces
	"2026-01-01T00:00:00Z,m1,1.8.0,1.5",             // 2 accepted (factor 100)
	"2026-01-01T00:00:00,m1,2.8.0,2",                // 3 accepted: Stockholm time, 23:00 UTC the day before (factor 2000)
	"2026-01-01T00:15:00Z,m1,1.8.0,abc",             // 4 bad value
	"yesterday,m1,1.8.0,1",                          // 5 bad timestamp
	"2026-01-01T00:00:00Z,m1,9.9.9,1",               // 6 series not allowed for m1
	"2026-01-01T00:30:00Z,m1,1.8.0,",                // 7 value missing
	"2026-01-01T00:00:00Z,newmeter,1.8.0,7",         // 8 staged: no such device yet
	"2026-01-01T00:00:00Z,m1,1.8.0,1.50",            // 9 duplicate of line 2
	"2026-01-01T00:00:00Z,m1,1.8.0,9",               // 10 conflicts with line 2
	"2026-01-01T00:45:00Z,m1,1.8.0,1,extra",         // 11 a field too many
	"2026-01-01T01:00:00Z,m1",                       // 12 series and value missing
	"2026-03-29T02:30:00,m1,1.8.0,3",                // 13 no such time in Stockholm (DST)
	`"2026-01-01T01:15:00Z","m1","1.8.0","0012.50"`, // 14 accepted, quoted
	`2026-01-01T01:30:00Z,m1,1.8.0,1"5`,             // 15 not CSV: a stray quote
	"",                                              // 16 blank: no row
	"2026-01-01T01:45:00Z,m1,2.8.0,0.5",             // 17 accepted: reading goes on after lines 15 and 16
}, "\n") + "\n"

// reportNumbers reads the counts of an import's report ("  accepted     3") and its
// reasons ("    bad_value    1").
func reportNumbers(t *testing.T, out string) (counts, reasons map[string]int) {
	t.Helper()
	counts, reasons = map[string]int{}, map[string]int{}
	for _, m := range regexp.MustCompile(`(?m)^  ([a-z][a-z ]*[a-z]) +(\d+)$`).FindAllStringSubmatch(out, -1) {
		counts[m[1]], _ = strconv.Atoi(m[2])
	}
	for _, m := range regexp.MustCompile(`(?m)^    (\S+) +(\d+)$`).FindAllStringSubmatch(out, -1) {
		reasons[m[1]], _ = strconv.Atoi(m[2])
	}
	require.NotEmpty(t, counts, "no report in %q", out)
	return counts, reasons
}

// rejected is the outcome of an import with rows rejected or conflicting, else nil.
func rejected(err error) *RejectedError {
	var re *RejectedError
	if errors.As(err, &re) {
		return re
	}
	return nil
}

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	require.NoError(t, os.WriteFile(path, []byte(content), 0o600))
	return path
}

func gzipped(t testing.TB, s string) string {
	t.Helper()
	var b bytes.Buffer
	zw := gzip.NewWriter(&b)
	_, err := zw.Write([]byte(s))
	require.NoError(t, err)
	require.NoError(t, zw.Close())
	return b.String()
}

func TestImportReadings(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st, dbURL := fleet(t)
	file := writeFile(t, "readings.csv", importCSV)
	rejects := filepath.Join(t.TempDir(), "rejects.csv")
	opt := DefaultOptions()

	withRejects := opt
	withRejects.RejectsPath = rejects
	out, err := importFile(ctx, t, st, file, nil, withRejects)
	require.Equal(t, &RejectedError{File: file, Rejected: 8, Conflicts: 1}, rejected(err), "rows were rejected: %v", err)
	require.EqualError(t, err, "import readings from "+file+": 8 rows rejected and 1 conflicting")
	counts, reasons := reportNumbers(t, out)
	require.Equal(t, map[string]int{"rows read": 15, "accepted": 4, "staged": 1, "duplicates": 1, "conflicts": 1, "rejected": 8}, counts, out)
	require.Equal(t, map[string]int{"bad_timestamp": 1, "bad_value": 1, "missing_value": 1, "missing_series_name+missing_value": 1,
		"series_not_allowed": 1, "local_time": 1, "too_many_fields": 1, "bad_csv": 1}, reasons, out)
	require.Contains(t, out, "first 9 of 9 rejected or conflicting rows:")
	require.Contains(t, out, "  line 4: value: A valid number is required")
	require.Contains(t, out, "  line 10: value: A different value is already stored")
	require.Contains(t, out, "  line 12: series_name: This field is required.; value: This field is required.")
	require.Less(t, strings.Index(out, "line 4:"), strings.Index(out, "line 13:"), "rows are listed in file order")
	require.Contains(t, out, `  line 15: non_field_errors: Not a CSV row: bare " in non-quoted-field.`)
	require.Contains(t, out, "all of them are in "+rejects)

	t.Run("rejects file", func(t *testing.T) {
		f, err := os.Open(rejects)
		require.NoError(t, err)
		defer f.Close()
		recs, err := csv.NewReader(f).ReadAll()
		require.NoError(t, err)
		require.Equal(t, []string{"line", "meter_device_name", "series_name", "timestamp", "value", "reason", "errors"}, recs[0])
		var lines []string
		for _, r := range recs[1:] {
			lines = append(lines, r[0])
		}
		require.Equal(t, []string{"4", "5", "6", "7", "10", "11", "12", "13", "15"}, lines, "every rejected or conflicting row, in file order")
		require.Equal(t, []string{"4", "m1", "1.8.0", "2026-01-01T00:15:00Z", "abc", "bad_value",
			"value: A valid number is required (a finite decimal; NaN and Infinity are not numbers)."}, recs[1])
		require.Equal(t, "conflict", recs[5][5])
		require.Contains(t, recs[8][6], "does not exist in time zone Europe/Stockholm")
	})

	t.Run("database contents", func(t *testing.T) {
		var n int
		var got string
		storetest.QueryRow(t, dbURL, `SELECT count(*) FROM meter_readings`, &n)
		require.Equal(t, 4, n)
		storetest.QueryRow(t, dbURL, `SELECT string_agg(s.name || ' ' || to_char(r.ts AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI') || ' ' || r.value || ' x' || r.factor, ', ' ORDER BY r.ts, s.name)
			FROM meter_readings r JOIN meter_reading_series s ON s.key = r.series_key`, &got)
		require.Equal(t, "2.8.0 2025-12-31T23:00 2 x2000, 1.8.0 2026-01-01T00:00 1.5 x100, 1.8.0 2026-01-01T01:15 12.50 x100, 2.8.0 2026-01-01T01:45 0.5 x2000", got,
			"exact values, CT/VT factors, local time read in the config's zone; the conflict did not overwrite")
		storetest.QueryRow(t, dbURL, `SELECT count(*) FROM staged_meter_readings WHERE meter_device_name = 'newmeter'`, &n)
		require.Equal(t, 1, n)
	})

	t.Run("a re-run is absorbed", func(t *testing.T) {
		out, err := importFile(ctx, t, st, file, nil, opt)
		require.NotNil(t, rejected(err), "%v", err)
		counts, _ := reportNumbers(t, out)
		require.Equal(t, map[string]int{"rows read": 15, "accepted": 0, "staged": 0, "duplicates": 6, "conflicts": 1, "rejected": 8}, counts, out)
		var n int
		storetest.QueryRow(t, dbURL, `SELECT count(*) FROM meter_readings`, &n)
		require.Equal(t, 4, n)
		storetest.QueryRow(t, dbURL, `SELECT count(*) FROM staged_meter_readings`, &n)
		require.Equal(t, 1, n, "the staged reading is staged once")
	})

	t.Run("Skip and Show", func(t *testing.T) {
		out, err := importFile(ctx, t, st, file, nil, Options{Skip: 10, Show: 1})
		require.NotNil(t, rejected(err), "%v", err)
		counts, _ := reportNumbers(t, out)
		require.Equal(t, map[string]int{"rows read": 6, "skipped": 9, "accepted": 0, "staged": 0, "duplicates": 2, "conflicts": 0, "rejected": 4}, counts, out)
		require.Contains(t, out, "first 1 of 4 rejected or conflicting rows:\n  line 11: ")
	})

	t.Run("a broken gzip stream stops the import", func(t *testing.T) {
		z := gzipped(t, "meter,series,timestamp,value\n"+strings.Repeat("m1,1.8.0,2026-01-03T00:00:00Z,1\n", 1000))
		out, err := importFile(ctx, t, st, "-", strings.NewReader(z[:len(z)-20]), opt)
		require.Nil(t, rejected(err))
		require.ErrorContains(t, err, "unexpected EOF")
		require.ErrorContains(t, err, "(resume with -skip ")
		require.Contains(t, out, "import readings from standard input: stopped")
	})

	t.Run("gzip from standard input", func(t *testing.T) {
		good := "meter_device_name,series_name,timestamp,value\n" +
			"m1,1.8.0,2026-01-02T00:00:00Z,5\n" +
			"m1,1.8.0,2026-01-01T00:00:00Z,1.5\n"
		out, err := importFile(ctx, t, st, "-", strings.NewReader(gzipped(t, good)), opt)
		require.NoError(t, err, "nothing rejected")
		require.Contains(t, out, "import readings from standard input: finished")
		counts, reasons := reportNumbers(t, out)
		require.Equal(t, map[string]int{"rows read": 2, "accepted": 1, "staged": 0, "duplicates": 1, "conflicts": 0, "rejected": 0}, counts, out)
		require.Empty(t, reasons)
	})
}

// TestImportStagesOnce: re-running an import of readings for devices that do not exist
// yet stages each reading once, in small batches and in large ones; the repeats are
// duplicates, another value for a staged reading a conflict.
func TestImportStagesOnce(t *testing.T) {
	t.Parallel()
	st, dbURL := fleet(t)
	var b strings.Builder
	b.WriteString("meter_device_name,series_name,timestamp,value\n")
	const rows = 1500 // one chunk: above the 1,000 rows from which a batch takes the large path
	for i := 0; i < rows; i++ {
		fmt.Fprintf(&b, "future%d,1.8.0,%s,%d\n", i%10, time.Date(2026, 1, 1, 0, i, 0, 0, time.UTC).Format(time.RFC3339), i)
	}
	big := writeFile(t, "big.csv", b.String())
	small := writeFile(t, "small.csv", "meter,series,timestamp,value\n"+
		"later,1.8.0,2026-01-01T00:00:00Z,1\n"+
		"later,1.8.0,2026-01-01T00:00:00Z,1.0\n"+ // the same reading again in the file
		"later,1.8.0,2026-01-01T00:15:00Z,2\n"+
		"later,1.8.0,2026-01-01T00:00:00,1\n"+ // without an offset: another reading (a wall-clock time)
		"later,1.8.0,2026-01-01T00:15:00Z,3\n") // another value for a staged reading

	tests := []struct {
		name string
		file string
		runs []map[string]int
		want int
	}{
		{"small", small, []map[string]int{
			{"rows read": 5, "accepted": 0, "staged": 3, "duplicates": 1, "conflicts": 1, "rejected": 0},
			{"rows read": 5, "accepted": 0, "staged": 0, "duplicates": 4, "conflicts": 1, "rejected": 0},
		}, 3},
		{"large", big, []map[string]int{
			{"rows read": rows, "accepted": 0, "staged": rows, "duplicates": 0, "conflicts": 0, "rejected": 0},
			{"rows read": rows, "accepted": 0, "staged": 0, "duplicates": rows, "conflicts": 0, "rejected": 0},
		}, rows},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for i, want := range tc.runs {
				out, err := importFile(context.Background(), t, st, tc.file, nil, DefaultOptions())
				if want["conflicts"] > 0 {
					require.NotNil(t, rejected(err), "a conflict: %v", err)
				} else {
					require.NoError(t, err)
				}
				counts, _ := reportNumbers(t, out)
				require.Equal(t, want, counts, "run %d: %s", i+1, out)
			}
			var n int
			storetest.Query(t, dbURL, `SELECT count(*)::int FROM staged_meter_readings WHERE meter_device_name LIKE $1`,
				[]any{map[string]string{"small": "later", "large": "future%"}[tc.name]}, &n)
			require.Equal(t, tc.want, n)
		})
	}
}

// TestOpenRefusals: a bad file or header is refused by Open, before a database is
// needed; every problem with a header is reported at once.
func TestOpenRefusals(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	same := writeFile(t, "same.csv", "meter,series,timestamp,value\n")
	tests := []struct {
		name    string
		csv     string // the file's content, unless path names the file
		path    string
		opt     Options
		wantErr []string
	}{
		{name: "unknown columns are named", csv: "meter,series,timestamp,value,unit,Note\n",
			wantErr: []string{`unknown columns in the header: "unit", "Note"`, "meter_device_name (or meter)"}},
		{name: "missing columns", csv: "meter,timestamp\nm1,2026-01-01T00:00:00Z\n",
			wantErr: []string{"missing columns in the header: series_name, value"}},
		{name: "a column and its alias", csv: "meter,meter_device_name,series,timestamp,value\n",
			wantErr: []string{`columns given twice in the header: meter_device_name (as "meter" and "meter_device_name")`}},
		{name: "every problem at once", csv: "meter,meter,extra\n",
			wantErr: []string{"unknown columns", "given twice", "missing columns in the header: series_name, timestamp, value"}},
		{name: "empty file", csv: "", wantErr: []string{"the file is empty: its first line must be a header"}},
		{name: "no header line, data only", csv: "m1,1.8.0,2026-01-01T00:00:00Z,1\n", wantErr: []string{`unknown columns in the header: "m1"`}},
		{name: "no such file", path: filepath.Join(dir, "nope.csv"), wantErr: []string{"nope.csv", "no such file"}},
		{name: "negative Skip", csv: "meter,series,timestamp,value\n", opt: Options{Skip: -1}, wantErr: []string{"at least 0"}},
		{name: "negative Show", csv: "meter,series,timestamp,value\n", opt: Options{Show: -1}, wantErr: []string{"at least 0"}},
		{name: "rejects into the input", path: same, opt: Options{RejectsPath: same}, wantErr: []string{"is the file being imported"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := tc.path
			if path == "" {
				path = writeFile(t, "in.csv", tc.csv)
			}
			im, err := Open(path, nil, tc.opt)
			require.Nil(t, im)
			require.Error(t, err)
			for _, w := range tc.wantErr {
				require.ErrorContains(t, err, w)
			}
		})
	}
	raw, err := os.ReadFile(same)
	require.NoError(t, err)
	require.Equal(t, "meter,series,timestamp,value\n", string(raw), "the file refused as its own rejects file is left as it was")
}

// cancelAfter reads r and cancels a context once n bytes are read: Ctrl-C in the middle
// of a file.
type cancelAfter struct {
	r      io.Reader
	n      int
	cancel context.CancelFunc
}

func (c *cancelAfter) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	if c.n -= n; c.n <= 0 {
		c.cancel()
	}
	return n, err
}

// generatedCSV has rows readings of series 1.8.0 for devices g0 to g9, 15 minutes apart;
// the row on line l is device g((l-2)%10), at (l-2)/10 quarter hours past 2026-01-01
// UTC, value l.
func generatedCSV(rows int) string {
	var b strings.Builder
	b.WriteString("meter_device_name,series_name,timestamp,value\n")
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := 0; i < rows; i++ {
		fmt.Fprintf(&b, "g%d,1.8.0,%s,%d\n", i%10, t0.Add(time.Duration(i/10)*15*time.Minute).Format(time.RFC3339), i+2)
	}
	return b.String()
}

func TestImportInterruptedAndResumed(t *testing.T) {
	t.Parallel()
	st, dbURL := fleet(t)
	const rows = 20_000
	data := generatedCSV(rows)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	in := &cancelAfter{r: strings.NewReader(data), n: len(data) / 3, cancel: cancel}
	out, err := importFile(ctx, t, st, "-", in, DefaultOptions())
	require.ErrorContains(t, err, "interrupted (resume with -skip ")
	require.Nil(t, rejected(err))
	m := regexp.MustCompile(`every row through line (\d+) is in \(written, staged or reported above\); resume with -skip (\d+)`).FindStringSubmatch(out)
	require.Len(t, m, 3, out)
	through, _ := strconv.Atoi(m[1])
	require.Greater(t, through, 1)
	require.Less(t, through, rows+1, "stopped before the end")
	counts, _ := reportNumbers(t, out)
	require.Equal(t, through-1, counts["rows read"], "every row read was taken in")
	require.Equal(t, through-1, counts["accepted"])
	var n int
	storetest.QueryRow(t, dbURL, `SELECT count(*) FROM meter_readings`, &n)
	require.Equal(t, through-1, n, "what was read is committed, nothing more")
	storetest.QueryRow(t, dbURL, `SELECT max(value)::int FROM meter_readings`, &n)
	require.Equal(t, through, n, "the last one is on line "+m[1])

	// The same file again, resumed.
	skip, _ := strconv.Atoi(m[2])
	o, err := importFile(context.Background(), t, st, "-", strings.NewReader(data), Options{Skip: skip, Show: DefaultOptions().Show})
	require.NoError(t, err)
	counts, _ = reportNumbers(t, o)
	require.Equal(t, through-1, counts["skipped"])
	require.Equal(t, rows-(through-1), counts["accepted"])
	storetest.QueryRow(t, dbURL, `SELECT count(*) FROM meter_readings`, &n)
	require.Equal(t, rows, n)
}

func TestImportLargeFile(t *testing.T) {
	t.Parallel()
	st, dbURL := fleet(t)
	const rows = 50_000
	file := writeFile(t, "large.csv", generatedCSV(rows))

	// Sample the heap while the import runs, for the log.
	var peak atomic.Uint64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		var ms runtime.MemStats
		for {
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
			runtime.ReadMemStats(&ms)
			if ms.HeapAlloc > peak.Load() {
				peak.Store(ms.HeapAlloc)
			}
		}
	})
	out, err := importFile(context.Background(), t, st, file, nil, DefaultOptions())
	close(stop)
	wg.Wait()
	require.NoError(t, err)
	counts, _ := reportNumbers(t, out)
	require.Equal(t, rows, counts["rows read"])
	require.Equal(t, rows, counts["accepted"])
	var n int
	storetest.QueryRow(t, dbURL, `SELECT count(*) FROM meter_readings`, &n)
	require.Equal(t, rows, n)
	rate := regexp.MustCompile(`\((\d+) rows/s\)`).FindStringSubmatch(out)
	require.Len(t, rate, 2)
	t.Logf("%d rows: %s; heap peak %.1f MB (the whole test process, under -race when run so)", rows, strings.SplitN(out, "\n", 2)[0], float64(peak.Load())/1e6)
}

// fakeSubmitter answers chunks in another order than they came (later ones first, in
// fake time), rejects the readings whose value is a multiple of 7, and records how many
// readings it held at most at once.
type fakeSubmitter struct {
	mu           sync.Mutex
	held, peak   int
	lines, calls int
}

func (f *fakeSubmitter) Submit(_ context.Context, _ store.Scope, req *ingest.Request) (ingest.Report, error) {
	readings := req.Readings()
	f.mu.Lock()
	f.held += len(readings)
	f.peak = max(f.peak, f.held)
	f.calls++
	call := f.calls
	f.mu.Unlock()
	time.Sleep(time.Duration(10-call%4) * time.Millisecond)
	var rep ingest.Report
	var rejected []ingest.ItemError
	for i, r := range readings {
		if v, _ := r.Value.Int64(); v%7 == 0 {
			rejected = append(rejected, ingest.ItemError{Index: req.Position(i), Errors: map[string][]string{"value": {"seven"}}, Reason: "seven"})
		} else {
			rep.Accepted++
		}
	}
	rep.Rejected = req.Merge(rejected)
	f.mu.Lock()
	f.held -= len(readings)
	f.lines += len(readings)
	f.mu.Unlock()
	return rep, nil
}

func TestImporterOrderAndBound(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const rows, chunkRows, submitters = 10_000, 100, 4
		fake := &fakeSubmitter{}
		var rejects bytes.Buffer
		r := csv.NewReader(strings.NewReader(generatedCSV(rows)))
		r.FieldsPerRecord, r.ReuseRecord = -1, true
		h, err := readHeader(r)
		require.NoError(t, err)
		im := &Readings{pipe: fake, chunkRows: chunkRows, submitters: submitters, show: 3, header: h, held: map[int]*chunk{},
			rejects: csv.NewWriter(&rejects), report: importReport{file: "f", byReason: map[string]int{}}}
		im.run(context.Background(), r, 0)
		var out bytes.Buffer
		err = im.Finish(&out)
		require.NotNil(t, rejected(err), "%v", err)

		require.LessOrEqual(t, fake.peak, submitters*chunkRows, "the pipeline never held more than a chunk per submitter")
		require.Equal(t, rows, fake.lines)
		sevens := 0
		for l := 2; l <= rows+1; l++ {
			if l%7 == 0 {
				sevens++
			}
		}
		counts, reasons := reportNumbers(t, out.String())
		require.Equal(t, rows, counts["rows read"])
		require.Equal(t, rows-sevens, counts["accepted"])
		require.Equal(t, map[string]int{"seven": sevens}, reasons)
		require.Contains(t, out.String(), "  line 7: value: seven\n  line 14: value: seven\n  line 21: value: seven\n")
		recs, err := csv.NewReader(&rejects).ReadAll()
		require.NoError(t, err)
		require.Len(t, recs, sevens)
		for i, rec := range recs {
			require.Equal(t, strconv.Itoa(7*(i+1)), rec[0], "the rejects file is in file order though chunks committed out of order")
		}
		require.Equal(t, rows+1, im.report.through)
	})
}

func TestImporterStopsAtAFailedChunk(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := csv.NewReader(strings.NewReader(generatedCSV(1000)))
		r.FieldsPerRecord, r.ReuseRecord = -1, true
		h, err := readHeader(r)
		require.NoError(t, err)
		im := &Readings{pipe: failingSubmitter{failFrom: 302}, chunkRows: 100, submitters: 2, header: h, held: map[int]*chunk{},
			report: importReport{file: "f", byReason: map[string]int{}}}
		im.run(context.Background(), r, 0)
		var out bytes.Buffer
		err = im.Finish(&out)
		require.ErrorIs(t, err, store.ErrUnavailable)
		require.ErrorContains(t, err, "writing the rows of lines 302 to 401")
		require.ErrorContains(t, err, "resume with -skip 301")
		require.Contains(t, out.String(), "stopped")
		require.Equal(t, 301, im.report.through, "the chunks before the failed one")
	})
}

// failingSubmitter fails every chunk whose first reading's value (its line) is failFrom
// or more.
type failingSubmitter struct{ failFrom int64 }

func (f failingSubmitter) Submit(_ context.Context, _ store.Scope, req *ingest.Request) (ingest.Report, error) {
	if v, _ := req.Readings()[0].Value.Int64(); v >= f.failFrom {
		return ingest.Report{}, store.ErrUnavailable
	}
	return ingest.Report{Accepted: len(req.Readings()), Rejected: req.Merge(nil)}, nil
}

func TestProgress(t *testing.T) {
	t.Parallel()
	tests := []struct {
		rows, read, size int64
		elapsed          time.Duration
		want             string
	}{
		{0, 0, 1000, 0, "[>                             ]   0.0%  0 rows, 0 rows/s"},
		{5000, 250, 1000, 2 * time.Second, "[=======>                      ]  25.0%  5000 rows, 2500 rows/s, ETA 6s"},
		{10000, 1000, 1000, 4 * time.Second, "[==============================] 100.0%  10000 rows, 2500 rows/s"},
		{3000, 2_500_000, 0, time.Second, "3000 rows, 3000 rows/s, 2.5 MB read"},
	}
	for _, tc := range tests {
		require.Equal(t, tc.want, progressText(tc.rows, tc.read, tc.size, tc.elapsed))
	}

	t.Run("a line every few seconds when stderr is not a terminal", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			var rows, read atomic.Int64
			var buf bytes.Buffer
			p := newProgress(&buf, &rows, &read, 100)
			go p.run()
			rows.Store(10)
			read.Store(50)
			time.Sleep(11 * time.Second)
			p.finish()
			require.Equal(t, "import readings: [===============>              ]  50.0%  10 rows, 2 rows/s, ETA 5s\n"+
				"import readings: [===============>              ]  50.0%  10 rows, 1 rows/s, ETA 10s\n", buf.String())
		})
	})
}

// acceptAll takes every reading.
type acceptAll struct{}

func (acceptAll) Submit(_ context.Context, _ store.Scope, req *ingest.Request) (ingest.Report, error) {
	return ingest.Report{Accepted: len(req.Readings()), Rejected: req.Merge(nil)}, nil
}

// FuzzImportCSV feeds arbitrary files to the import's reader: it must never panic, and
// every row must come out accepted or rejected, with a reason.
func FuzzImportCSV(f *testing.F) {
	f.Add([]byte(importCSV))
	f.Add([]byte(generatedCSV(20)))
	f.Add([]byte("meter,series,timestamp,value\n\"m\n1\",s,2026-01-01T00:00:00Z,1\n\"unterminated,s,x,1\n"))
	f.Add([]byte("\ufeffvalue,timestamp,series,meter\r\n1e5,2026-01-01 00:00,s,m\r\n,,,\r\n"))
	f.Add([]byte(gzipped(f, "meter,series,timestamp,value\nm,s,2026-01-01T00:00:00+01:00,-0.5\n")))
	f.Fuzz(func(t *testing.T, data []byte) {
		in, err := openInput("-", bytes.NewReader(data))
		if err != nil {
			return
		}
		r := csv.NewReader(in.r)
		r.FieldsPerRecord, r.ReuseRecord = -1, true
		h, err := readHeader(r)
		if err != nil {
			return
		}
		im := &Readings{pipe: acceptAll{}, chunkRows: 3, submitters: 2, show: 2, header: h, held: map[int]*chunk{},
			report: importReport{file: "f", byReason: map[string]int{}}}
		im.run(context.Background(), r, 0)
		_ = im.Finish(io.Discard)
		rep := im.report
		require.Equal(t, rep.rows, rep.accepted+rep.rejected)
		n := 0
		for reason, c := range rep.byReason {
			require.NotEmpty(t, reason)
			n += c
		}
		require.Equal(t, rep.rejected, n)
		require.LessOrEqual(t, len(rep.first), 2)
	})
}
