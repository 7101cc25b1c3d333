package bench

import (
	"bytes"
	"context"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/amrd/amrd/store/storetest"
)

func TestSoakStream(t *testing.T) {
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	live := &soakStream{first: 10, devices: 3, start: start, slots: 2}
	require.Equal(t, soakKey{dev: 10, ser: 0, ts: start.Unix()}, live.at(0))
	require.Equal(t, soakKey{dev: 11, ser: 1, ts: start.Unix()}, live.at(5), "every device and series of a quarter-hour first")
	require.Equal(t, soakKey{dev: 10, ser: 0, ts: start.Add(interval).Unix()}, live.at(12))
	profiles := &soakStream{first: 10, devices: 3, start: start, slots: 2, byDevice: true}
	require.Equal(t, soakKey{dev: 10, ser: 1, ts: start.Add(interval).Unix()}, profiles.at(5), "a device's whole load profile first")
	require.Equal(t, soakKey{dev: 11, ser: 0, ts: start.Unix()}, profiles.at(8))

	first, n := live.take(20)
	require.Equal(t, [2]int64{0, 20}, [2]int64{first, int64(n)})
	first, n = live.take(20)
	require.Equal(t, [2]int64{20, 4}, [2]int64{first, int64(n)}, "the window holds 3 x 4 x 2 = 24 readings")
	_, n = live.take(1)
	require.Zero(t, n)

	require.NotEqual(t, live.at(0).value(), live.at(1).value())
	require.Equal(t, live.at(3).value(), live.at(3).value())
}

// TestSoakShort runs the soak for 25 seconds, so that `make soak` keeps working: every
// kind of traffic ran, and the checks that do not depend on time held (no 5xx, nothing
// acknowledged missing, connections within the pool, collections, nothing else
// unexpected). RSS, goroutines and the jobs' pace are reported, not asserted: 25
// seconds are all warm-up, and `make soak` is where they count.
func TestSoakShort(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	admin := storetest.AdminURL(t)
	bin := filepath.Join(t.TempDir(), "amrd")
	build := exec.Command("go", "build", "-o", bin, "./cmd/amrd")
	build.Dir = ".."
	out, err := build.CombinedOutput()
	require.NoError(t, err, "building amrd: %s", out)

	var log bytes.Buffer
	res, err := Soak(context.Background(), SoakConfig{AdminURL: admin, Binary: bin, Duration: 25 * time.Second,
		Sample: time.Second, Progress: 10 * time.Second, JobsEvery: 5 * time.Second}, &log)
	require.NoError(t, err, "log: %s", log.String())
	t.Log(log.String())
	for _, name := range []string{CheckNo5xx, CheckNoMissing, CheckConnections, CheckCollections, CheckNoUnexpected} {
		c, ok := res.Check(name)
		require.True(t, ok, name)
		require.True(t, c.Pass, "%s: %s", name, c.Detail)
	}
	for _, name := range []string{CheckRSS, CheckGoroutines, CheckJobs} {
		_, ok := res.Check(name)
		require.True(t, ok, name)
	}
	require.Positive(t, res.Acked)
	require.Zero(t, res.Missing)

	// Every kind of traffic ran, and answered as expected.
	requests := map[string]int{}
	for _, r := range res.Routes {
		requests[r.Route] = r.Requests
		require.Zero(t, r.Unexpected+r.Errors, "%s: %v", r.Route, r.Samples)
	}
	for _, route := range []string{
		"POST /v1/metering/new-meter-readings (500 readings)",
		"POST /v1/metering/new-meter-readings (1 reading)",
		"POST /v1/metering/new-meter-readings (10 for an unknown device)",
		"POST /v1/metering/new-meter-readings (500 past retention)",
		"POST /v1/metering/meter-readings",
		"POST /v1/metering/meter-devices (promotes staged readings)",
		"POST /v1/metering/sim-cards", "PATCH /v1/metering/network-interfaces/:id", "DELETE /v1/metering/meter-reading-series/:id",
		"GET /v1/metering/meter-readings", "GET /v1/metering/meter-reading-rollups (hour)", "GET /v1/metering/meter-reading-rollups (day)",
		"GET /v1/metering/staged-meter-readings", "GET /v1/metering/amr-task-runs",
		"POST /v1/auth/jwt/token", "GET /v1/auth/jwt/renew", "GET /v1/metering/meter-devices (JWT)",
		"POST /v1/metering/amr-tasks/invoke", "GET /v1/metering/amr-task-runs/:id", "GET /metrics",
	} {
		require.Positive(t, requests[route], route)
	}
	require.Contains(t, log.String(), "soak: ")
	require.True(t, strings.Contains(log.String(), "PASS "+CheckNoMissing), log.String())
}
