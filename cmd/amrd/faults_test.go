package main

// The faults amrd must survive: a kill -9 during sustained ingest, and its database
// stopped and restarted during ingest. Both tests run the real binary as a subprocess on
// loopback against a real TimescaleDB, post readings from concurrent clients while
// recording what each client was told, and then hold the database to it: a reading
// acknowledged with a 2xx is stored exactly once with its exact value, and a re-send of
// everything is absorbed as duplicates, never a conflict.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/amrd/amrd/store"
	"github.com/amrd/amrd/store/storetest"
)

// The fixture every fault test posts readings for: reading n is for device n%8 and
// series (n/8)%2, at faultBase + n seconds, so that every reading has its own key and a
// stored row says which reading it is.
const faultDevices = 8

var (
	faultSeries = []string{"1.8.0", "2.8.0"}
	faultBase   = time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
)

func faultDevice(n int) string     { return fmt.Sprintf("fault-m%d", n%faultDevices) }
func faultSeriesName(n int) string { return faultSeries[(n/faultDevices)%len(faultSeries)] }

// faultValue is reading n's value. Every fifth has more digits than a float64 holds
// (2^53 + 1): only an exact decimal path stores it unchanged.
func faultValue(n int) string {
	if n%5 == 0 {
		return fmt.Sprintf("9007199254740993.%06d", n)
	}
	return fmt.Sprintf("%d.%03d", n*7, n%1000)
}

// faultItem is reading n as a client sends it, in the shapes clients use: values as
// strings and numbers, UTC and +02:00 timestamps, and the message bus's field names.
func faultItem(n int) string {
	ts := faultBase.Add(time.Duration(n) * time.Second)
	stamp := ts.Format(time.RFC3339)
	if n%2 == 1 {
		stamp = ts.In(time.FixedZone("", 2*3600)).Format(time.RFC3339) // the same instant
	}
	value := faultValue(n)
	if n%3 == 0 {
		value = strconv.Quote(value)
	}
	devField, seriesField := "meter_device_name", "series_name"
	if n%4 == 3 {
		devField, seriesField = "meter", "series"
	}
	return fmt.Sprintf(`{%q:%q,%q:%q,"timestamp":%q,"value":%s}`, devField, faultDevice(n), seriesField, faultSeriesName(n), stamp, value)
}

// faultBody is a new-meter-readings body of the readings ns: an array, or a lone object
// for some single readings.
func faultBody(ns []int) []byte {
	if len(ns) == 1 && ns[0]%2 == 0 {
		return []byte(faultItem(ns[0]))
	}
	items := make([]string, len(ns))
	for i, n := range ns {
		items[i] = faultItem(n)
	}
	return []byte("[" + strings.Join(items, ",") + "]")
}

// moduleRoot is the folder of go.mod, where the binary is built and deploy/ is found.
func moduleRoot(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		t.Fatalf("finding the module root with 'go env GOMOD' (the go command must be on PATH): %v", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		t.Fatalf("finding the module root: 'go env GOMOD' names no go.mod (%q)", gomod)
	}
	return filepath.Dir(gomod)
}

// buildAmrd builds the amrd binary into the test's temporary folder.
func buildAmrd(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "amrd")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/amrd")
	cmd.Dir = moduleRoot(t)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building amrd: %v\n%s", err, out)
	}
	return bin
}

// faultFixtures creates the devices and series the readings are for (in an organization,
// with a config that allows both series) and a staff user, and returns its API token.
func faultFixtures(t *testing.T, st *store.Store, dbURL string) string {
	t.Helper()
	devices := make([]string, faultDevices)
	for i := range devices {
		devices[i] = faultDevice(i)
	}
	storetest.Exec(t, dbURL, `
		WITH o AS (INSERT INTO organizations (name) VALUES ('fault') RETURNING id),
		s AS (INSERT INTO meter_reading_series (organization_id, name, unit) SELECT o.id, n, 'kWh' FROM o, unnest($1::text[]) n RETURNING id),
		c AS (INSERT INTO meter_device_configs (organization_id, name, timezone) SELECT id, 'fault', 'UTC' FROM o RETURNING id),
		cs AS (INSERT INTO meter_device_config_series (config_id, series_id) SELECT c.id, s.id FROM c, s),
		ty AS (INSERT INTO meter_device_types (organization_id, name, manufacturer, manufacturer_model, config_id)
			SELECT o.id, 'fault', 'm', 'mm', c.id FROM o, c RETURNING id)
		INSERT INTO meter_devices (organization_id, name, protocol, type_id)
		SELECT o.id, d, 'iec62056-21', ty.id FROM o, ty, unnest($2::text[]) d`, faultSeries, devices)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// The password hash is no bcrypt hash: this user signs in with its token only.
	u, err := st.CreateUser(ctx, store.UserInput{Username: "fault-poster", PasswordHash: "!", IsStaff: true, IsActive: true})
	require.NoError(t, err)
	token, err := st.CreateToken(ctx, u.ID)
	require.NoError(t, err)
	return token
}

// amrdProc is an `amrd serve` subprocess.
type amrdProc struct {
	cmd    *exec.Cmd
	addr   string
	stderr *syncBuffer
	exited chan struct{} // closed when the process has ended
}

var listeningRe = regexp.MustCompile(`amrd listening on http://(\S+)\n`)

// startAmrd starts `amrd serve` on the database and a free loopback port, and waits for
// it to listen; env adds settings (NAME=value). The process is killed when the test
// ends, if it still runs.
func startAmrd(t *testing.T, bin, dbURL string, env ...string) *amrdProc {
	t.Helper()
	cmd := exec.Command(bin, "serve")
	// Only these variables: a DATABASE_URL or AMRD_* of the test's environment must not
	// leak in.
	cmd.Env = append([]string{"DATABASE_URL=" + dbURL, "SECRET_KEY=" + testSecret, "AMRD_LISTEN=127.0.0.1:0",
		"AMRD_LOG_LEVEL=warn"}, env...)
	// If go test's own timeout kills the test binary, cleanups do not run: the kernel
	// then kills amrd with it rather than leave it serving.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	stdout := newSyncBuffer()
	p := &amrdProc{cmd: cmd, stderr: newSyncBuffer(), exited: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = stdout, p.stderr
	require.NoError(t, cmd.Start(), "starting amrd serve")
	go func() { _ = cmd.Wait(); close(p.exited) }()
	t.Cleanup(p.kill)
	deadline := time.After(30 * time.Second)
	for p.addr == "" {
		select {
		case <-stdout.written:
			if m := listeningRe.FindStringSubmatch(stdout.String()); m != nil {
				p.addr = m[1]
			}
		case <-p.exited:
			t.Fatalf("amrd serve ended before listening (%v); stderr:\n%s", cmd.ProcessState, p.stderr.String())
		case <-deadline:
			t.Fatalf("amrd serve did not print its address within 30 s; stdout %q, stderr:\n%s", stdout.String(), p.stderr.String())
		}
	}
	return p
}

func (p *amrdProc) alive() bool {
	select {
	case <-p.exited:
		return false
	default:
		return true
	}
}

// kill ends the process with SIGKILL (no shutdown of any kind) and waits for it.
func (p *amrdProc) kill() {
	if p.alive() {
		_ = p.cmd.Process.Kill()
	}
	<-p.exited
}

// ingestReport is the body of a 2xx answer to new-meter-readings.
type ingestReport struct {
	Accepted, Staged, Duplicates, Conflicts int
	Rejected                                []json.RawMessage
}

// answer is what a client got for one request.
type answer struct {
	status     int // 0: no answer
	retryAfter string
	report     *ingestReport
	err        error // no answer, or an unreadable one
}

// load posts readings from concurrent clients and records what each was told.
type load struct {
	client   *http.Client
	url      string
	token    string
	max      int          // readings it may hand out
	next     atomic.Int64 // readings 0..next-1 have been handed to clients
	inflight atomic.Int64
	stop     atomic.Bool
	// judge says what is wrong with an answer during the load ("" for nothing).
	judge func(a answer) string

	mu       sync.Mutex
	acked    []bool // by reading
	nAcked   int
	statuses map[int]int // answers by status (0: no answer)
	wrong    []string    // the first few answers judge refused
	nWrong   int
}

func newLoad(addr, token string, max int) *load {
	return &load{
		// Generous: amrd answers within its request deadline (30 s by default).
		client: &http.Client{Timeout: 60 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 64}},
		url:    "http://" + addr, token: token, max: max,
		acked: make([]bool, max), statuses: map[int]int{},
	}
}

// send posts readings ns once.
func (l *load) send(ns []int) answer {
	req, err := http.NewRequest(http.MethodPost, l.url+"/v1/metering/new-meter-readings", bytes.NewReader(faultBody(ns)))
	if err != nil {
		return answer{err: err}
	}
	req.Header.Set("Authorization", "Token "+l.token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := l.client.Do(req)
	if err != nil {
		return answer{err: err}
	}
	defer resp.Body.Close()
	a := answer{status: resp.StatusCode, retryAfter: resp.Header.Get("Retry-After")}
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		a.err = fmt.Errorf("reading the answer: %w", err)
		return a
	}
	if a.status/100 == 2 {
		if err := json.Unmarshal(body, &a.report); err != nil || a.report == nil {
			a.err = fmt.Errorf("a %d without a report: %q", a.status, body)
		}
	}
	return a
}

// post sends readings ns and records the answer. A 2xx status acknowledges them: amrd
// answers only after they are committed, so they count as acknowledged even if the body
// is cut off afterwards.
func (l *load) post(ns []int) answer {
	l.inflight.Add(1)
	a := l.send(ns)
	l.inflight.Add(-1)
	l.mu.Lock()
	defer l.mu.Unlock()
	l.statuses[a.status]++
	if a.status/100 == 2 {
		for _, n := range ns {
			l.acked[n] = true
		}
		l.nAcked += len(ns)
	}
	complaint := l.judge(a)
	if complaint == "" && a.report != nil {
		if r := a.report; r.Accepted+r.Duplicates != len(ns) || r.Conflicts != 0 || r.Staged != 0 || len(r.Rejected) != 0 {
			complaint = fmt.Sprintf("%d readings answered %+v", len(ns), *r)
		}
	}
	if complaint != "" {
		l.nWrong++
		if len(l.wrong) < 10 {
			l.wrong = append(l.wrong, complaint)
		}
	}
	return a
}

// batchSizes are the requests' sizes, in turn: single readings as Utilitarian's poster
// sends them, and batches.
var batchSizes = []int{1, 200, 1, 1, 50, 200, 1, 10}

// start runs clients that post until stopped or until max readings are handed out; the
// returned function stops them and waits until they are done (once or more).
func (l *load) start(clients int) (stop func()) {
	l.stop.Store(false)
	var wg sync.WaitGroup
	for c := range clients {
		wg.Go(func() {
			for i := c; !l.stop.Load(); i++ {
				size := batchSizes[i%len(batchSizes)]
				to := int(l.next.Add(int64(size)))
				if to > l.max {
					return
				}
				ns := make([]int, size)
				for k := range ns {
					ns[k] = to - size + k
				}
				if a := l.post(ns); a.status == http.StatusServiceUnavailable || a.err != nil {
					time.Sleep(20 * time.Millisecond) // not a tight loop against a down service
				}
			}
		})
	}
	return func() { l.stop.Store(true); wg.Wait() }
}

func (l *load) counts() (acked, status201 int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.nAcked, l.statuses[http.StatusCreated]
}

// requireNoWrongAnswers fails the test with the first answers judge refused.
func (l *load) requireNoWrongAnswers(t *testing.T) {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.nWrong > 0 {
		t.Fatalf("%d answers broke the rule; the first ones:\n%s", l.nWrong, strings.Join(l.wrong, "\n"))
	}
}

// poll waits until cond holds, checking every 20 ms, and fails the test after timeout.
func poll(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	end := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(end) {
			t.Fatalf("%s: not within %s", what, timeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// storedReadings returns the readings in meter_readings by reading number, failing the
// test on a row that is no reading sent (wrong device, series or time) or a key with
// more than one row. Readings of devices other than the fixture's (a test's own, such
// as collected ones) are left out; rows of no known device are not.
func storedReadings(t *testing.T, dbURL string, sent int) map[int]string {
	t.Helper()
	var (
		total, distinct int64
		secs            []int64
		devs, series    []string
		values          []string
	)
	storetest.Query(t, dbURL, `SELECT count(*), count(DISTINCT (r.device_key, r.series_key, r.ts)),
			coalesce(array_agg(extract(epoch FROM r.ts - $1::timestamptz)::bigint), '{}'),
			coalesce(array_agg(coalesce(d.name, '?')), '{}'), coalesce(array_agg(coalesce(s.name, '?')), '{}'),
			coalesce(array_agg(r.value::text), '{}')
		FROM meter_readings r
		LEFT JOIN meter_devices d ON d.key = r.device_key
		LEFT JOIN meter_reading_series s ON s.key = r.series_key
		WHERE d.name IS NULL OR d.name LIKE 'fault-m%'`, []any{faultBase},
		&total, &distinct, &secs, &devs, &series, &values)
	require.Equal(t, total, distinct, "no (device, series, timestamp) has more than one row")
	out := make(map[int]string, len(secs))
	for i, s := range secs {
		n := int(s)
		require.True(t, n >= 0 && n < sent, "a stored reading at %s is none that was sent", faultBase.Add(time.Duration(s)*time.Second))
		require.Equal(t, faultDevice(n), devs[i], "device of reading %d", n)
		require.Equal(t, faultSeriesName(n), series[i], "series of reading %d", n)
		_, twice := out[n]
		require.False(t, twice, "reading %d is stored twice", n)
		out[n] = values[i]
	}
	return out
}

// verify holds the database to what the clients were told, on the amrd at addr: every
// acknowledged reading is stored exactly once with its exact value; re-sending the
// acknowledged readings is absorbed as duplicates; re-sending the others stores each
// exactly once (a duplicate when it was committed without an answer); nothing conflicts;
// and afterwards every reading handed out is stored once.
func (l *load) verify(t *testing.T, dbURL, addr string) {
	t.Helper()
	l.url = "http://" + addr
	sent := min(int(l.next.Load()), l.max)
	stored := storedReadings(t, dbURL, sent)
	var acked, unacked, lost []int
	for n := range sent {
		if l.acked[n] {
			acked = append(acked, n)
		} else {
			unacked = append(unacked, n)
		}
		if v, ok := stored[n]; ok {
			require.Equal(t, faultValue(n), v, "reading %d is stored with its exact value", n)
		} else if l.acked[n] {
			lost = append(lost, n)
		}
	}
	if len(lost) > 0 {
		t.Fatalf("%d readings were acknowledged with a 2xx but are not stored; the first: %v", len(lost), lost[:min(len(lost), 10)])
	}
	committedUnacked := len(stored) - len(acked)
	t.Logf("readings sent %d, acknowledged %d, stored %d (committed without an answer: %d)", sent, len(acked), len(stored), committedUnacked)

	resend := func(what string, ns []int) (accepted, duplicates int) {
		t.Helper()
		for len(ns) > 0 {
			k := min(len(ns), 500)
			a := l.send(ns[:k])
			require.NoError(t, a.err, "re-sending %s", what)
			require.Equal(t, http.StatusCreated, a.status, "re-sending %s", what)
			require.Zero(t, a.report.Conflicts, "re-sending %s never conflicts", what)
			require.Empty(t, a.report.Rejected, "re-sending %s", what)
			require.Equal(t, k, a.report.Accepted+a.report.Duplicates, "re-sending %s", what)
			accepted += a.report.Accepted
			duplicates += a.report.Duplicates
			ns = ns[k:]
		}
		return accepted, duplicates
	}
	accepted, duplicates := resend("acknowledged readings", acked)
	require.Zero(t, accepted, "every acknowledged reading was stored already")
	require.Equal(t, len(acked), duplicates)
	accepted, duplicates = resend("unacknowledged readings", unacked)
	require.Equal(t, committedUnacked, duplicates, "the unacknowledged readings stored already are duplicates")
	require.Equal(t, len(unacked)-committedUnacked, accepted, "the others are stored now")

	var total, distinct int64
	storetest.QueryRow(t, dbURL, `SELECT count(*), count(DISTINCT (device_key, series_key, ts)) FROM meter_readings`, &total, &distinct)
	require.EqualValues(t, sent, total, "after the re-send every reading sent is stored")
	require.Equal(t, total, distinct, "each once")
}

// requireNoPanic fails the test when amrd logged a panic.
func (p *amrdProc) requireNoPanic(t *testing.T) {
	t.Helper()
	require.NotContains(t, p.stderr.String(), "panic", "amrd logged a panic")
}

func TestKillDuringIngest(t *testing.T) {
	start := time.Now()
	bin := buildAmrd(t)
	st, dbURL := storetest.New(t)
	token := faultFixtures(t, st, dbURL)
	p := startAmrd(t, bin, dbURL)

	// 8 clients, at most 200,000 readings (about 50 MB of bodies in all). amrd is killed
	// three times, each after 4,000 more acknowledged readings and a varying moment
	// more, so that the kills land in different phases of batches.
	const rounds, perRound = 3, 4000
	l := newLoad(p.addr, token, 200_000)
	t.Cleanup(l.client.CloseIdleConnections)
	var killed atomic.Bool
	l.judge = func(a answer) string {
		switch {
		case killed.Load():
			return "" // anything goes once amrd is killed: nothing is acknowledged
		case a.err != nil:
			return fmt.Sprintf("no answer before the kill: %v", a.err)
		case a.status != http.StatusCreated:
			return fmt.Sprintf("status %d before the kill", a.status)
		}
		return ""
	}
	for round := 1; round <= rounds; round++ {
		stop := l.start(8)
		t.Cleanup(stop) // when the test fails before the kill
		poll(t, 45*time.Second, fmt.Sprintf("%d readings acknowledged", round*perRound), func() bool {
			require.True(t, p.alive(), "amrd ended during the load; stderr:\n%s", p.stderr.String())
			acked, _ := l.counts()
			return acked >= round*perRound
		})
		time.Sleep(time.Duration(round*37) * time.Millisecond)
		poll(t, 10*time.Second, "a request in flight", func() bool { return l.inflight.Load() > 0 })
		inflight := l.inflight.Load()
		killed.Store(true)
		require.NoError(t, p.cmd.Process.Kill())
		<-p.exited
		stop()
		l.requireNoWrongAnswers(t)
		p.requireNoPanic(t)
		acked, _ := l.counts()
		t.Logf("kill %d after %s, with %d requests in flight and %d readings acknowledged", round,
			time.Since(start).Round(time.Millisecond), inflight, acked)

		p = startAmrd(t, bin, dbURL)
		l.url = "http://" + p.addr // the clients are stopped
		killed.Store(false)
	}
	l.verify(t, dbURL, p.addr)
	p.requireNoPanic(t)
	t.Logf("done in %s", time.Since(start).Round(time.Millisecond))
}

// tsdb runs deploy/tsdb.sh and returns its standard output, trimmed.
func tsdb(t *testing.T, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command("bash", append([]string{filepath.Join(moduleRoot(t), "deploy", "tsdb.sh")}, args...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("tsdb.sh %s: %w\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return strings.TrimSpace(string(out)), nil
}

// health returns the status of GET /_health/ (0 when there is no answer).
func health(addr string) int {
	c := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{}}
	defer c.CloseIdleConnections()
	resp, err := c.Get("http://" + addr + "/_health/")
	if err != nil {
		return 0
	}
	_ = resp.Body.Close()
	return resp.StatusCode
}

func TestDatabaseOutageDuringIngest(t *testing.T) {
	start := time.Now()
	bin := buildAmrd(t)
	// A cluster of its own, which the test can stop; removed whatever happens. tsdb.sh
	// needs root and the root file system that `make test` provisions.
	name := fmt.Sprintf("test-fault-%d", os.Getpid())
	t.Cleanup(func() {
		if _, err := tsdb(t, "destroy", name); err != nil {
			t.Errorf("removing the cluster: %v", err)
		}
	})
	var port, dbURL string
	var err error
	for range 3 { // a port free a moment ago may be taken when the server binds it
		port = strconv.Itoa(storetest.FreePort(t))
		if dbURL, err = tsdb(t, "start", name, port); err == nil {
			break
		}
	}
	require.NoError(t, err, "starting a TimescaleDB cluster of the test's own (as root, after 'make test' provisioned the root file system)")

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	st, err := store.Open(ctx, store.Config{URL: dbURL, MaxConns: 4}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	require.NoError(t, err)
	_, err = st.Migrate(ctx)
	require.NoError(t, err)
	token := faultFixtures(t, st, dbURL)
	st.Close()

	p := startAmrd(t, bin, dbURL)
	l := newLoad(p.addr, token, 200_000)
	t.Cleanup(l.client.CloseIdleConnections)
	l.judge = func(a answer) string {
		switch {
		case a.err != nil:
			return fmt.Sprintf("no answer (status %d): %v", a.status, a.err)
		case a.status == http.StatusServiceUnavailable && a.retryAfter == "":
			return "a 503 without Retry-After"
		case a.status != http.StatusCreated && a.status != http.StatusServiceUnavailable:
			return fmt.Sprintf("status %d", a.status)
		}
		return ""
	}
	stop := l.start(4)
	t.Cleanup(stop)
	alive := func() { require.True(t, p.alive(), "amrd ended; stderr:\n%s", p.stderr.String()) }
	poll(t, 30*time.Second, "1,000 readings acknowledged before the outage", func() bool {
		alive()
		acked, _ := l.counts()
		return acked >= 1000
	})

	_, err = tsdb(t, "stop", name)
	require.NoError(t, err)
	down := time.Now()
	require.Equal(t, http.StatusServiceUnavailable, health(p.addr), "/_health/ while the database is down")
	l.mu.Lock()
	before503 := l.statuses[http.StatusServiceUnavailable]
	l.mu.Unlock()
	// The clients keep posting for a few seconds of outage.
	time.Sleep(4 * time.Second)
	alive()
	l.mu.Lock()
	during503 := l.statuses[http.StatusServiceUnavailable] - before503
	l.mu.Unlock()
	require.Positive(t, during503, "amrd answered 503 during the outage")
	require.Equal(t, http.StatusServiceUnavailable, health(p.addr), "/_health/ while the database is down")

	_, err = tsdb(t, "start", name, port)
	require.NoError(t, err)
	up := time.Now()
	_, created := l.counts()
	poll(t, 30*time.Second, "a 201 again after the database came back, without restarting amrd", func() bool {
		alive()
		_, c := l.counts()
		return c > created
	})
	recovered := time.Since(up)
	poll(t, 30*time.Second, "/_health/ 200 after the database came back", func() bool { return health(p.addr) == http.StatusOK })
	// A little more load on the recovered database, then stop.
	_, created = l.counts()
	poll(t, 30*time.Second, "100 more 201s", func() bool {
		_, c := l.counts()
		return c >= created+100
	})
	stop()
	alive()
	l.requireNoWrongAnswers(t)
	p.requireNoPanic(t)
	l.mu.Lock()
	t.Logf("outage %s; answers by status %v; posts succeeded again %s after the restart", up.Sub(down).Round(time.Millisecond),
		l.statuses, recovered.Round(time.Millisecond))
	l.mu.Unlock()

	l.verify(t, dbURL, p.addr)
	p.requireNoPanic(t)
	t.Logf("done in %s", time.Since(start).Round(time.Millisecond))
}
