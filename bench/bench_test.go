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
// what is stored (Run checks each case), and that the results file is complete. It
// asserts no speed: speed is what `make bench` reports.
func TestRunSmall(t *testing.T) {
	admin := storetest.AdminURL(t)
	bin := filepath.Join(t.TempDir(), "amrd")
	build := exec.Command("go", "build", "-o", bin, "./cmd/amrd")
	build.Dir = ".."
	out, err := build.CombinedOutput()
	require.NoError(t, err, "building amrd: %s", out)
	jsonPath := filepath.Join(t.TempDir(), "results.json")
	var log bytes.Buffer
	res, err := Run(context.Background(), Config{AdminURL: admin, Binary: bin, Meters: 50, Duration: time.Second, JSONPath: jsonPath, Rounds: 2}, &log)
	require.NoError(t, err, "log: %s", log.String())
	require.Len(t, res.Cases, 4)
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
	for _, k := range []string{"b/a", "b/d", "c/d"} {
		require.Positive(t, res.Ratios[k], k)
	}
	require.Contains(t, log.String(), "ratios, each the median of its rounds: b/a =")
	for _, k := range []string{"b/a", "b/d", "c/d"} {
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
	require.Len(t, back.Cases, 4)
}
