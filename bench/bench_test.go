package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/amrd/amrd/store/storetest"
)

func TestStream(t *testing.T) {
	f := &fleet{devices: 3}
	d, s, ts := f.at(0)
	require.Equal(t, [2]int{0, 0}, [2]int{d, s})
	require.Equal(t, epoch, ts)
	d, s, ts = f.at(int64(3*len(seriesNames)) + 9)
	require.Equal(t, [2]int{1, 1}, [2]int{d, s}, "the second quarter-hour, meter 1, series 1")
	require.Equal(t, epoch.Add(interval), ts)
	require.Equal(t, "12.345", value(12345))
	require.Equal(t, "0.007", value(7))

	var buf bytes.Buffer
	body(&buf, f, 0, 5)
	var items []map[string]string
	require.NoError(t, json.Unmarshal(buf.Bytes(), &items))
	require.Len(t, items, 5)
	require.Equal(t, map[string]string{"meter_device_name": "bench-100000", "series_name": "1.8.0", "timestamp": "2026-01-01T00:00:00Z", "value": "0.000"}, items[0])
}

// TestRunSmall runs the whole benchmark on a tiny fleet for a moment, so that `make bench`
// keeps working: it checks that every case wrote readings, that what amrd acknowledged is
// what is stored (Run checks each case), that the read cases ran on a tiny load (Run
// checks that the rollups hold every reading and give the raw readings' averages), and
// that the results file is complete. It asserts no speed: speed is what `make bench`
// reports.
func TestRunSmall(t *testing.T) {
	admin := storetest.AdminURL(t)
	bin := filepath.Join(t.TempDir(), "amrd")
	build := exec.Command("go", "build", "-o", bin, "./cmd/amrd")
	build.Dir = ".."
	out, err := build.CombinedOutput()
	require.NoError(t, err, "building amrd: %s", out)
	jsonPath := filepath.Join(t.TempDir(), "results.json")
	var log bytes.Buffer
	res, err := Run(context.Background(), Config{AdminURL: admin, Binary: bin, Meters: 50, Duration: time.Second, JSONPath: jsonPath, Rounds: 2,
		Read: true, ReadMeters: 20, ReadDays: 2, ReadRuns: 3}, &log)
	require.NoError(t, err, "log: %s", log.String())
	require.Len(t, res.Cases, 5)
	require.Equal(t, 3, res.Rounds, "an even count of rounds gets one more")
	require.Len(t, res.All, 3)
	require.Len(t, res.RoundRatios, 3)
	for i, c := range res.Cases {
		// The median round of each case: as many of its rounds are faster as are slower.
		var slower, faster int
		for _, r := range res.All {
			require.Equal(t, c.Name, r[i].Name)
			if r[i].RowsPerSec < c.RowsPerSec {
				slower++
			} else if r[i].RowsPerSec > c.RowsPerSec {
				faster++
			}
		}
		require.LessOrEqual(t, slower, 1, c.Name)
		require.LessOrEqual(t, faster, 1, c.Name)
		require.NotNil(t, c.CPU, c.Name)
		require.Positive(t, c.CPU.ClientUS, c.Name)
		require.Positive(t, c.Rows, c.Name)
		require.Positive(t, c.RowsPerSec, c.Name)
	}
	require.Positive(t, res.Cases[1].P99ms)
	require.Positive(t, res.PeakRSS)
	// Case b with rollups on: the case's first quarter-hour lies at the threshold set
	// before amrd started, so it was marked; b_norollups has no rollup figures.
	require.Equal(t, "b_batches", res.Cases[1].Name)
	require.NotNil(t, res.Cases[1].Rollups)
	require.Equal(t, bThreshold, res.Cases[1].Rollups.Threshold.UTC())
	require.Equal(t, int64(50*len(seriesNames)), res.Cases[1].Rollups.Marked, "one quarter-hour of the fleet")
	require.Equal(t, "b_norollups", res.Cases[2].Name)
	require.Nil(t, res.Cases[2].Rollups)
	keys := []string{"b/a", "b/d", "c/d", "b_on/b_off"}
	for _, k := range keys {
		require.Positive(t, res.Ratios[k], k)
	}
	require.Contains(t, log.String(), "ratios, each the median of its rounds: b/a =")
	for _, k := range keys {
		// The reported ratio is one of the rounds', the middle one.
		var below, above int
		for _, rr := range res.RoundRatios {
			if rr[k] < res.Ratios[k] {
				below++
			} else if rr[k] > res.Ratios[k] {
				above++
			}
		}
		require.LessOrEqual(t, below, 1, k)
		require.LessOrEqual(t, above, 1, k)
	}
	raw, err := os.ReadFile(jsonPath)
	require.NoError(t, err)
	var back Results
	require.NoError(t, json.Unmarshal(raw, &back))
	require.Len(t, back.Cases, 5)

	// The read cases, each timed, on 20 + 1 meters x 4 series x 2 days.
	rr := back.Read
	require.NotNil(t, rr)
	require.Equal(t, int64(21*4*2*96), rr.Readings)
	var names []string
	for _, q := range rr.Queries {
		names = append(names, q.Name)
		require.Positive(t, q.Rows, q.Name)
		require.Positive(t, q.P50ms, q.Name)
		require.GreaterOrEqual(t, q.P99ms, q.P50ms, q.Name)
		require.NotEmpty(t, q.SQL, q.Name)
	}
	require.Equal(t, []string{"r1", "r2_rollups", "r2_raw", "r3", "r4"}, names)
	require.Equal(t, 3, rr.Queries[0].Runs)
	require.Equal(t, int64(2*96), rr.Queries[0].Rows, "r1: one meter's series, every reading of the load")
	require.Equal(t, int64(20), rr.Queries[3].Rows, "r3: every meter of the organization, none of the other")
	require.NotNil(t, rr.Rollups)
	require.Equal(t, rr.Readings, rr.Rollups.Readings)
	require.Equal(t, rr.Readings, rr.Rollups.AsLoaded.Readings+rr.Rollups.Backlog.Readings)
	require.Equal(t, 1, rr.Rollups.Backlog.Days)
	require.Positive(t, rr.Rollups.AsLoaded.Readings)
	require.Positive(t, rr.Ratios["r2 raw/rollups"])
	for _, k := range []string{"r1 p50 < 10 ms", "r2_rollups p50 < 100 ms", "r2 raw/rollups >= 20", "r3 p50 < 50 ms",
		"r4 p50 < 200 ms", "r5 >= 500000 readings/s", "b_on/b_off >= 0.9"} {
		require.Contains(t, back.Targets, k)
	}
	require.Contains(t, log.String(), "amrd read benchmark")
}

// TestRunOnly runs read cases alone, as -only does for tuning: no ingestion case runs,
// and r1 alone needs no rollups.
func TestRunOnly(t *testing.T) {
	admin := storetest.AdminURL(t)
	var log bytes.Buffer
	res, err := Run(context.Background(), Config{AdminURL: admin, Only: []string{"r1", "r3"}, Read: true, ReadMeters: 10, ReadDays: 1, ReadRuns: 2}, &log)
	require.NoError(t, err, "log: %s", log.String())
	require.Empty(t, res.Cases)
	require.NotNil(t, res.Read)
	require.Nil(t, res.Read.Rollups)
	require.Len(t, res.Read.Queries, 2)
	require.Equal(t, map[string]bool{"r1 p50 < 10 ms": res.Read.Queries[0].P50ms < 10, "r3 p50 < 50 ms": res.Read.Queries[1].P50ms < 50}, res.Targets)

	_, err = Run(context.Background(), Config{AdminURL: admin, Only: []string{"r7"}}, &log)
	require.ErrorContains(t, err, `no case "r7"`)
}
