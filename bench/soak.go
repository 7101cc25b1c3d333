package bench

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"math"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/amrd/amrd/jobs"
	"github.com/amrd/amrd/store"
)

// The soak test (make soak): amrd serve, the real binary over real HTTP on a durable
// TimescaleDB, under a steady mix of the traffic a deployment sees, for a bounded time
// (10 minutes by default), then checks that nothing failed, nothing acknowledged was
// lost and nothing grew. Every kind of traffic is one goroutine on a ticker at a fixed
// rate, one request in flight: a slow answer lowers that kind's rate (the report gives
// the rate reached) instead of piling requests up, so the load stays bounded in count
// and in time, and only 127.0.0.1 is ever called.

// SoakConfig is one soak run. DefaultSoakConfig holds the defaults; Soak gives a field
// left at zero its default.
type SoakConfig struct {
	AdminURL string        // a superuser URL of the TimescaleDB to create the soak's database on
	Binary   string        // the amrd binary: serve, and simulate for the meters
	Duration time.Duration // how long the traffic runs (default 10 min)
	Scale    float64       // multiplies every traffic rate (default 1)
	Sample   time.Duration // how often RSS, goroutines and connections are sampled (default 5 s)
	Progress time.Duration // how often a progress line is printed (default 1 min)
	// JobsEvery is how often the soak's own jobs replica runs retention and promotion
	// (default 30 s, at most a quarter of Duration).
	JobsEvery time.Duration
	Keep      bool // leave the soak's database on the server, for inspection
}

// DefaultSoakConfig is the soak of `make soak`: 10 minutes of traffic at the rates below.
func DefaultSoakConfig() SoakConfig {
	return SoakConfig{Duration: 10 * time.Minute, Scale: 1, Sample: 5 * time.Second, Progress: time.Minute,
		JobsEvery: 30 * time.Second}
}

// SoakCheck is one pass/fail line of the report.
type SoakCheck struct {
	Name   string `json:"name"`
	Pass   bool   `json:"pass"`
	Detail string `json:"detail"`
}

// SoakRoute is the traffic of one route (method, pattern and what the request carried).
type SoakRoute struct {
	Route      string      `json:"route"`
	Requests   int         `json:"requests"`
	PerSecond  float64     `json:"per_second"`
	Status     map[int]int `json:"status"`
	Errors     int         `json:"transport_errors"`
	Unexpected int         `json:"unexpected"` // answers other than the one the step expects (5xx included)
	P50ms      float64     `json:"p50_ms"`
	P99ms      float64     `json:"p99_ms"`
	MaxMs      float64     `json:"max_ms"`
	MaxAt      float64     `json:"max_at_s"`          // when the slowest request started, in seconds into the run (negative: during setup)
	Samples    []string    `json:"samples,omitempty"` // the first unexpected answers or errors
}

// SoakResult is what a soak run found.
type SoakResult struct {
	Duration    time.Duration `json:"duration"`
	Interrupted bool          `json:"interrupted"`
	Routes      []SoakRoute   `json:"routes"`
	Checks      []SoakCheck   `json:"checks"`
	Acked       int64         `json:"acknowledged_readings"`
	Missing     int64         `json:"missing_readings"`
	WrongValue  int64         `json:"readings_with_another_value"`
	Samples     []soakSample  `json:"-"`
}

// Failed counts the checks that failed.
func (r *SoakResult) Failed() int {
	n := 0
	for _, c := range r.Checks {
		if !c.Pass {
			n++
		}
	}
	return n
}

// Check returns the check of that name.
func (r *SoakResult) Check(name string) (SoakCheck, bool) {
	for _, c := range r.Checks {
		if c.Name == name {
			return c, true
		}
	}
	return SoakCheck{}, false
}

// The checks, by name.
const (
	CheckNo5xx        = "no 5xx"
	CheckNoMissing    = "no acknowledged reading missing"
	CheckRSS          = "RSS flat after warm-up"
	CheckGoroutines   = "goroutines flat after warm-up"
	CheckConnections  = "database connections within the pool"
	CheckCollections  = "collections"
	CheckJobs         = "jobs keep up"
	CheckNoUnexpected = "no other failure"
)

// soakSeries are the series of the soak's organization: the registers the simulated
// meters report (the names are their OBIS codes), so that collections store them too.
var soakSeries = []string{"1.8.0", "1.8.1", "1.8.2", "2.8.0"}

// soakLines are the simulated meters' data lines. There is no clock (0.9.1, 0.9.2): a
// run's readings take the run's time, so every collection writes new readings.
var soakLines = []string{"F.F(00000000)", "1.8.0(0012345.678*kWh)", "1.8.1(0008234.111*kWh)",
	"1.8.2(0004111.567*kWh)", "2.8.0(0000321.000*kWh)", "32.7(230.1*V)"}

// The traffic, per second before SoakConfig.Scale. In ten minutes at scale 1: 600
// thousand readings in batches (2 x 500 a second), 8,400 single readings (10 + 4 a
// second), 150 devices that first send readings while unknown (one every 4 s: three
// requests of 10 readings, then the device is created), 60 batches of 500 readings past
// the retention horizon, 200 admin CRUD cycles of 13 requests, 3,000 list requests, 150
// JWT logins with a renewal each, 200 invoked collections: about 28 requests a second
// (2 + 10 + 4 + 1 + 0.1 + 13/3 + 5 + 3/4 + 1/3, and the polls), a steady load well below
// what the machine can take (far below make bench's case b), so that anything that grows
// or fails is amrd's doing.
const (
	rateBatch  = 2.0     // new-meter-readings requests of batchSize readings
	batchSize  = 500     // readings a batch request
	rateSingle = 10.0    // new-meter-readings requests of one reading
	rateByID   = 4.0     // POST meter-readings (one reading, by device and series ids)
	rateStaged = 1.0     // steps of the unknown-device episodes (3 posts, then the device)
	stagedSize = 10      // readings a post for an unknown device
	rateOld    = 0.1     // batches past the retention horizon
	rateCRUD   = 1.0 / 3 // admin CRUD cycles
	rateReads  = 5.0     // list requests (readings, rollups, devices, staged, runs, organizations)
	rateJWT    = 1.0 / 4 // JWT logins, each renewed and used once
	rateInvoke = 1.0 / 3 // invoked collections
	ratePoll   = 1.0     // polls of the invoked runs not finished yet
	iecDevices = 8       // collected meters: two on each of four simulated meters
	iecFaulty  = 2       // of them, those on the fourth meter (3 and 7), which sends a bad BCC
	minSingle  = 50      // meters of the single-reading traffic, at least
	retainDays = 7       // DATA_RETENTION_DAYS and STAGED_DATA_RETENTION_DAYS of the soak
	harnessMax = 2       // connections of the soak's own jobs replica
	drainWait  = 90 * time.Second
)

// poolMax is AMRD_DB_MAX_CONNS of the soak: the default.
var poolMax = int(store.DefaultConfig().MaxConns)

// SoakMain is `amrd soak`: its flags, and the exit status from the checks.
func SoakMain(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	fs := flag.NewFlagSet("soak", flag.ContinueOnError)
	def := DefaultSoakConfig()
	minutes := fs.Float64("minutes", def.Duration.Minutes(), "how long the traffic runs, in minutes")
	scale := fs.Float64("scale", def.Scale, "multiplies every traffic rate")
	jsonPath := fs.String("json", "", "also write the results as JSON to this file")
	keep := fs.Bool("keep", false, "leave the soak's database on the server, for inspection (with AMRD_SOAK_DATABASE_URL set: make soak removes its server)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *minutes <= 0 || *scale <= 0 {
		return errors.New("soak: -minutes and -scale must be positive")
	}
	admin := getenv("AMRD_SOAK_DATABASE_URL")
	if admin == "" {
		return errors.New("soak: AMRD_SOAK_DATABASE_URL is not set: run 'make soak', which starts a throw-away TimescaleDB")
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	res, err := Soak(ctx, SoakConfig{AdminURL: admin, Binary: self, Duration: time.Duration(*minutes * float64(time.Minute)), Scale: *scale, Keep: *keep}, stdout)
	if err != nil {
		return err
	}
	if *jsonPath != "" {
		raw, _ := json.MarshalIndent(res, "", "  ")
		if err := os.WriteFile(*jsonPath, append(raw, '\n'), 0o644); err != nil {
			return err
		}
	}
	if n := res.Failed(); n > 0 {
		return fmt.Errorf("soak: %d of %d checks failed", n, len(res.Checks))
	}
	return nil
}

// soak is one run's state.
type soak struct {
	cfg   SoakConfig
	out   io.Writer
	ctx   context.Context // requests: ends only when the run is interrupted
	db    string
	base  string // http://127.0.0.1:port of amrd serve
	token string // "Token ..." of the staff user
	http  *http.Client
	srv   *amrdProcess
	start time.Time

	org        string
	seriesIDs  []string
	typeID     string
	userName   string
	userPass   string
	iecIDs     []string
	iecNames   []string
	faultyIDs  map[string]bool
	simulators []*simProcess

	mu    sync.Mutex
	names []string // every device the readings traffic writes to, by index
	ids   []string // their ids ("" for the ones not created through the API)

	batch, single, old, staged *soakStream
	acks                       soakAcks
	traffic                    soakTraffic

	runsMu      sync.Mutex
	outstanding map[string]time.Time // invoked runs not finished yet, by id, with the invoke time
	invoked     atomic.Int64

	// episodes of the unknown-device traffic whose device does not exist yet
	unknownMu sync.Mutex
	unknown   map[int]bool

	sampleMu sync.Mutex
	samples  []soakSample

	jobsMu     sync.Mutex
	jobRuns    int
	jobErrs    []string
	jobTimes   []soakTime // the jobs replica's runs
	jobsReg    *prometheus.Registry
	jobsLine   string // what the jobs did, for the report
	sampleConn *pgx.Conn
	sqlConn    *pgx.Conn
}

// soakSample is one sample of the serve process and its database sessions.
type soakSample struct {
	At         time.Duration
	RSSMB      float64
	Goroutines float64
	PoolConns  float64
	PoolMax    float64
	Sessions   int64 // pg_stat_activity rows of application "amrd" on the soak's database
	Marks      int64 // late readings' marks waiting for the rollup job (rows of rollup_marks)
}

// Soak runs the soak test and returns what it found; an error means it could not run.
func Soak(ctx context.Context, cfg SoakConfig, out io.Writer) (*SoakResult, error) {
	def := DefaultSoakConfig()
	if cfg.Duration <= 0 {
		cfg.Duration = def.Duration
	}
	if cfg.Scale <= 0 {
		cfg.Scale = def.Scale
	}
	if cfg.Sample <= 0 {
		cfg.Sample = def.Sample
	}
	if cfg.Progress <= 0 {
		cfg.Progress = def.Progress
	}
	if cfg.JobsEvery <= 0 {
		cfg.JobsEvery = def.JobsEvery
	}
	cfg.JobsEvery = min(cfg.JobsEvery, max(cfg.Duration/4, time.Second))
	s := &soak{cfg: cfg, out: out, ctx: ctx, outstanding: map[string]time.Time{}, unknown: map[int]bool{}, faultyIDs: map[string]bool{},
		traffic: soakTraffic{routes: map[string]*routeStat{}}}
	fmt.Fprintf(out, "soak: %s of mixed traffic (rates x %g) against amrd serve; %s/%s, %d CPUs, %s\n",
		cfg.Duration, cfg.Scale, runtime.GOOS, runtime.GOARCH, runtime.NumCPU(), runtime.Version())

	db, drop, err := freshDatabase(ctx, cfg.AdminURL, "soak")
	if err != nil {
		return nil, err
	}
	if !cfg.Keep {
		defer drop()
	}
	s.db = db
	st, err := store.Open(ctx, store.Config{URL: db, MaxConns: harnessMax}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		return nil, err
	}
	defer st.Close()
	if _, err := st.Migrate(ctx); err != nil {
		return nil, err
	}
	tok, err := staffToken(ctx, db)
	if err != nil {
		return nil, err
	}
	s.token = "Token " + tok
	if s.sampleConn, err = soakConn(ctx, db); err != nil {
		return nil, err
	}
	defer s.sampleConn.Close(context.Background())
	if s.sqlConn, err = soakConn(ctx, db); err != nil {
		return nil, err
	}
	defer s.sqlConn.Close(context.Background())

	// The children live until this function stops them, also when ctx ends (Ctrl-C): the
	// soak then stops its traffic and still reports.
	procCtx, cancelProcs := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelProcs()
	dir, err := os.MkdirTemp("", "amrd-soak-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	lines := filepath.Join(dir, "lines.txt")
	if err := os.WriteFile(lines, []byte(strings.Join(soakLines, "\n")+"\n"), 0o644); err != nil {
		return nil, err
	}
	for i := range iecDevices / iecFaulty {
		fault := "none"
		if i == iecDevices/iecFaulty-1 {
			fault = "bad-bcc"
		}
		sim, err := startSimulator(procCtx, cfg.Binary, lines, fault)
		if err != nil {
			return nil, err
		}
		defer sim.stop()
		s.simulators = append(s.simulators, sim)
	}

	// make run's settings, with the jobs' intervals short where a setting exists: the
	// rollup job every 10 s instead of every minute, retention of 7 days, so that the
	// readings sent past it have to go.
	srv, err := startAmrd(procCtx, cfg.Binary, db, []string{"AMRD_LOG_LEVEL=error", "AMRD_JOBS=true", "AMRD_ROLLUPS=true",
		"AMRD_ROLLUP_EVERY_SECONDS=10", "DATA_RETENTION_DAYS=" + strconv.Itoa(retainDays),
		"STAGED_DATA_RETENTION_DAYS=" + strconv.Itoa(retainDays), "AMRD_DB_MAX_CONNS=" + strconv.Itoa(poolMax),
		"AMRD_AMR_RUN_TIMEOUT_SECONDS=20"})
	if err != nil {
		return nil, err
	}
	stopped := false
	defer func() {
		if !stopped {
			srv.stop()
		}
	}()
	s.srv, s.base = srv, srv.base
	// Idle connections are dropped after 90 s, before amrd closes them (its IdleTimeout
	// is 120 s): a POST sent on a connection the server is closing at that instant gets a
	// reset, and Go's client does not send a POST again.
	s.http = &http.Client{Timeout: time.Minute, Transport: &http.Transport{MaxIdleConnsPerHost: 32, MaxConnsPerHost: 32,
		IdleConnTimeout: 90 * time.Second}}
	defer s.http.CloseIdleConnections()
	fmt.Fprintf(out, "soak: amrd serve (pid %d) on %s, %d simulated meters (amrd simulate), database %s\n",
		srv.pid(), srv.base, len(s.simulators), dbName(db))

	t0 := time.Now()
	if err := s.setup(); err != nil {
		return nil, fmt.Errorf("soak: setting up through the API: %w", err)
	}
	fmt.Fprintf(out, "soak: set up in %.1f s: %d meters for batches, %d for single readings, %d collected (%d on a faulty meter), a quarterly IEC task, an editor for JWT\n",
		time.Since(t0).Seconds(), s.batch.devices, s.single.devices, iecDevices, iecFaulty)

	// A second replica's jobs: amrd has no setting for the retention (hourly) and
	// promotion (10 min) intervals, and serve runs each once at start, so the soak runs
	// them itself every JobsEvery, under the same advisory locks as serve's.
	s.jobsReg = prometheus.NewRegistry()
	j, err := jobs.New(jobs.Config{DataRetention: retainDays * 24 * time.Hour, StagedRetention: retainDays * 24 * time.Hour},
		st, nil, slog.New(slog.NewTextHandler(io.Discard, nil)), s.jobsReg)
	if err != nil {
		return nil, err
	}

	res := &SoakResult{}
	s.start = time.Now()
	runCtx, cancelRun := context.WithTimeout(ctx, cfg.Duration)
	defer cancelRun()
	var wg sync.WaitGroup
	sc := cfg.Scale
	s.every(&wg, runCtx, rateBatch*sc, s.batchStep)
	s.every(&wg, runCtx, rateSingle*sc, s.singleStep)
	s.every(&wg, runCtx, rateByID*sc, s.byIDStep)
	s.every(&wg, runCtx, rateStaged*sc, s.stagedStep)
	s.every(&wg, runCtx, rateOld*sc, s.oldStep)
	s.every(&wg, runCtx, rateCRUD*sc, s.crudStep)
	s.every(&wg, runCtx, rateReads*sc, s.readStep)
	s.every(&wg, runCtx, rateJWT*sc, s.jwtStep)
	s.every(&wg, runCtx, rateInvoke*sc, s.invokeStep)
	s.every(&wg, runCtx, ratePoll, func(int) { s.pollRuns() })
	s.every(&wg, runCtx, 1/cfg.Sample.Seconds(), func(int) { s.sampleOnce() })
	s.every(&wg, runCtx, 1/cfg.JobsEvery.Seconds(), func(int) { s.runJobs(j) })
	s.every(&wg, runCtx, 1/cfg.Progress.Seconds(), func(int) { s.progress() })
	s.sampleOnce()
	s.runJobs(j)
	<-runCtx.Done()
	wg.Wait()
	res.Duration = time.Since(s.start)
	res.Interrupted = ctx.Err() != nil
	s.progress()

	// The end: the invoked runs finish, the unknown devices still waiting are created,
	// serve stops (SIGTERM: it commits what it accepted), a last promotion runs, and the
	// database is checked against what was acknowledged.
	fctx, cancelFinal := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Minute)
	defer cancelFinal()
	s.ctx = fctx
	unfinished := s.drainRuns(fctx)
	s.finishUnknown()
	metrics, _ := s.scrape()
	s.sampleOnce()
	// A client's connections that are idle, some never used (Go's transport keeps a
	// connection it dialed for a request that another one then served), go first: the
	// server's graceful stop waits for every connection that is not idle after a request,
	// so one that never sent a byte would hold it for its read timeout.
	s.http.CloseIdleConnections()
	srv.stop()
	stopped = true
	exitCode := srv.cmd.ProcessState.ExitCode()
	for _, sim := range s.simulators {
		sim.stop()
	}
	s.runJobs(j)

	res.Samples = s.samples
	res.Routes = s.traffic.summary(res.Duration)
	if err := s.verify(fctx, res, metrics, unfinished, exitCode); err != nil {
		return nil, err
	}
	s.report(res)
	return res, nil
}

// soakConn is a connection of the soak itself, named so that the session count leaves
// it out.
func soakConn(ctx context.Context, db string) (*pgx.Conn, error) {
	cc, err := pgx.ParseConfig(db)
	if err != nil {
		return nil, err
	}
	cc.RuntimeParams["application_name"] = "amrd-soak"
	return pgx.ConnectConfig(ctx, cc)
}

func dbName(db string) string {
	u, err := url.Parse(db)
	if err != nil {
		return "?"
	}
	return strings.TrimPrefix(u.Path, "/")
}

// every calls fn at rate a second, one call at a time, until ctx ends. A call that takes
// longer than the period makes the ticker drop ticks: the rate falls, the load does not
// pile up.
func (s *soak) every(wg *sync.WaitGroup, ctx context.Context, rate float64, fn func(i int)) {
	if rate <= 0 {
		return
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(time.Duration(float64(time.Second) / rate))
		defer tick.Stop()
		for i := 0; ; i++ {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			fn(i)
		}
	}()
}

// ---- the readings traffic ----

// soakStream is a sequence of readings over devices x soakSeries x quarter-hours in a
// window: all devices and series of one quarter-hour, then the next, as a live feed
// sends them; or, byDevice, every quarter-hour and series of one device, then the next
// device, as a collector delivers the load profiles it read out of the meters.
type soakStream struct {
	first, devices int // device indexes first .. first+devices-1
	start          time.Time
	slots          int64
	byDevice       bool
	next           atomic.Int64
}

// take reserves up to k readings of the stream; n is 0 once the window is full.
func (st *soakStream) take(k int) (first int64, n int) {
	limit := st.slots * int64(st.devices*len(soakSeries))
	first = st.next.Add(int64(k)) - int64(k)
	if first >= limit {
		return first, 0
	}
	return first, int(min(int64(k), limit-first))
}

func (st *soakStream) at(i int64) soakKey {
	ns := int64(len(soakSeries))
	if st.byDevice {
		per := st.slots * ns
		rem := i % per
		return soakKey{dev: int32(st.first + int(i/per)), ser: int8(rem % ns), ts: st.start.Add(time.Duration(rem/ns) * interval).Unix()}
	}
	per := int64(st.devices) * ns
	rem := i % per
	return soakKey{dev: int32(st.first + int(rem/ns)), ser: int8(rem % ns), ts: st.start.Add(time.Duration(i/per) * interval).Unix()}
}

// soakKey is one reading: device index, series index, Unix time (quarter-hours only).
type soakKey struct {
	dev int32
	ser int8
	ts  int64
}

// value of a reading, from its key: a register that grows with time.
func (k soakKey) value() string {
	return value(int64(k.dev)*1_000_003 + k.ts/900*int64(len(soakSeries)) + int64(k.ser))
}

// soakAcks are the readings amrd acknowledged (201: accepted, staged or duplicate).
type soakAcks struct {
	mu   sync.Mutex
	keys []soakKey // must be stored at the end
	old  []soakKey // past the retention horizon: retention may drop them
}

// windows sizes the streams so that none runs out in cfg.Duration: the batches are
// three days of load profile a meter, [now-5d, now-2d) (288 quarter-hours x 4 series =
// 1,152 readings, two requests and a bit), the single readings a live feed over
// [now-2d, now-1h) (188 quarter-hours), the unknown devices start at now-2d, the
// readings past retention are a day of load profile a meter, [now-10d, now-9d). The
// devices of a stream are as many as its readings need, with 10 % to spare, at least
// least: at scale 1 for 10 minutes, 600,000 x 1.1 / 1,152 = 573 meters for batches.
func (s *soak) windows() (batchDevs, singleDevs int) {
	secs := s.cfg.Duration.Seconds() * s.cfg.Scale
	need := func(readings float64, slots int64, least int) int {
		return max(least, int(math.Ceil(readings*1.1/float64(slots*int64(len(soakSeries))))))
	}
	return need(secs*rateBatch*batchSize, 288, 100), need(secs*(rateSingle+rateByID), 188, minSingle)
}

func (s *soak) name(i int32) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.names[i]
}

func (s *soak) id(i int32) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ids[i]
}

// readingsBody is a new-meter-readings request body.
func (s *soak) readingsBody(keys []soakKey) []byte {
	var b bytes.Buffer
	b.Grow(len(keys) * 110)
	b.WriteByte('[')
	for i, k := range keys {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"meter_device_name":%q,"series_name":%q,"timestamp":%q,"value":%q}`,
			s.name(k.dev), soakSeries[k.ser], time.Unix(k.ts, 0).UTC().Format(time.RFC3339), k.value())
	}
	b.WriteByte(']')
	return b.Bytes()
}

// ingestReport is new-meter-readings' answer.
type ingestReport struct {
	Accepted   int `json:"accepted"`
	Staged     int `json:"staged"`
	Duplicates int `json:"duplicates"`
	Conflicts  int `json:"conflicts"`
	Rejected   []struct {
		Index int `json:"index"`
	} `json:"rejected"`
}

// postReadings sends keys to new-meter-readings and records what was acknowledged in
// *into: every reading of a 201 but the rejected ones. A report with rejections or
// conflicts is unexpected (the soak sends neither); a conflict leaves the request's
// readings out of the record (the report does not say which one it was).
func (s *soak) postReadings(route string, keys []soakKey, old bool) {
	status, raw, _ := s.call(route, "POST", "/v1/metering/new-meter-readings/", s.token, s.readingsBody(keys), http.StatusCreated)
	if status != http.StatusCreated {
		return
	}
	var rep ingestReport
	if err := json.Unmarshal(raw, &rep); err != nil {
		s.traffic.unexpected(route, "a report that does not decode: "+err.Error())
		return
	}
	if rep.Conflicts > 0 || len(rep.Rejected) > 0 || rep.Accepted+rep.Staged+rep.Duplicates != len(keys) {
		s.traffic.unexpected(route, fmt.Sprintf("report %.300s", raw))
		if rep.Conflicts > 0 {
			return
		}
	}
	rejected := map[int]bool{}
	for _, r := range rep.Rejected {
		rejected[r.Index] = true
	}
	s.acks.mu.Lock()
	defer s.acks.mu.Unlock()
	for i, k := range keys {
		if rejected[i] {
			continue
		}
		if old {
			s.acks.old = append(s.acks.old, k)
		} else {
			s.acks.keys = append(s.acks.keys, k)
		}
	}
}

func (s *soak) streamKeys(st *soakStream, k int) []soakKey {
	first, n := st.take(k)
	keys := make([]soakKey, n)
	for i := range keys {
		keys[i] = st.at(first + int64(i))
	}
	return keys
}

func (s *soak) batchStep(int) {
	if keys := s.streamKeys(s.batch, batchSize); len(keys) > 0 {
		s.postReadings("POST /v1/metering/new-meter-readings (500 readings)", keys, false)
	}
}

func (s *soak) singleStep(int) {
	if keys := s.streamKeys(s.single, 1); len(keys) > 0 {
		s.postReadings("POST /v1/metering/new-meter-readings (1 reading)", keys, false)
	}
}

func (s *soak) oldStep(int) {
	if keys := s.streamKeys(s.old, batchSize); len(keys) > 0 {
		s.postReadings("POST /v1/metering/new-meter-readings (500 past retention)", keys, true)
	}
}

// byIDStep sends one reading of the single stream to POST meter-readings, by ids.
func (s *soak) byIDStep(int) {
	keys := s.streamKeys(s.single, 1)
	if len(keys) == 0 {
		return
	}
	k := keys[0]
	body, _ := json.Marshal(map[string]string{"meter_device": s.id(k.dev), "series": s.seriesIDs[k.ser],
		"timestamp": time.Unix(k.ts, 0).UTC().Format(time.RFC3339), "value": k.value()})
	if _, _, ok := s.call("POST /v1/metering/meter-readings", "POST", "/v1/metering/meter-readings/", s.token, body, http.StatusCreated); ok {
		s.acks.mu.Lock()
		s.acks.keys = append(s.acks.keys, k)
		s.acks.mu.Unlock()
	}
}

// stagedStep is one step of an unknown-device episode: steps 0-2 send stagedSize
// readings for a device name that does not exist (they are staged), step 3 creates the
// device: through the API in even episodes (which promotes its staged readings in the
// same transaction), with SQL in odd ones, as a device made elsewhere would be, so that
// the promotion job has work.
func (s *soak) stagedStep(i int) {
	ep, step := i/4, i%4
	if step == 0 {
		s.mu.Lock()
		s.names = append(s.names, fmt.Sprintf("soak-u-%05d", ep))
		s.ids = append(s.ids, "")
		s.mu.Unlock()
		s.unknownMu.Lock()
		s.unknown[ep] = true
		s.unknownMu.Unlock()
	}
	dev := s.unknownIndex(ep)
	if step < 3 {
		keys := make([]soakKey, stagedSize)
		for j := range keys {
			n := int64(step*stagedSize + j)
			keys[j] = soakKey{dev: dev, ser: int8(n % int64(len(soakSeries))), ts: s.staged.start.Add(time.Duration(n/int64(len(soakSeries))) * interval).Unix()}
		}
		s.postReadings("POST /v1/metering/new-meter-readings (10 for an unknown device)", keys, false)
		return
	}
	s.createUnknown(ep, dev, ep%2 == 1)
}

// unknownIndex is the device index of an unknown-device episode.
func (s *soak) unknownIndex(ep int) int32 {
	name := fmt.Sprintf("soak-u-%05d", ep)
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := len(s.names) - 1; i >= 0; i-- {
		if s.names[i] == name {
			return int32(i)
		}
	}
	panic("soak: no device " + name)
}

func (s *soak) createUnknown(ep int, dev int32, bySQL bool) {
	name := s.name(dev)
	if bySQL {
		_, err := s.sqlConn.Exec(s.ctx, `INSERT INTO meter_devices (organization_id, name, protocol, type_id) VALUES ($1, $2, 'dlms-cosem', $3)`,
			s.org, name, s.typeID)
		if err != nil {
			s.traffic.unexpected("SQL: INSERT INTO meter_devices", err.Error())
			return
		}
	} else {
		body, _ := json.Marshal(map[string]any{"organization": s.org, "name": name, "protocol": "dlms-cosem", "type": s.typeID})
		if _, _, ok := s.call("POST /v1/metering/meter-devices (promotes staged readings)", "POST", "/v1/metering/meter-devices/", s.token, body, http.StatusCreated); !ok {
			return
		}
	}
	s.unknownMu.Lock()
	delete(s.unknown, ep)
	s.unknownMu.Unlock()
}

// finishUnknown creates the devices of the episodes the end cut short, through the API.
func (s *soak) finishUnknown() {
	s.unknownMu.Lock()
	eps := slices.Sorted(maps.Keys(s.unknown))
	s.unknownMu.Unlock()
	for _, ep := range eps {
		s.createUnknown(ep, s.unknownIndex(ep), false)
	}
}

// ---- admin, lists, JWT ----

// crudStep is one admin cycle: a SIM card, a network interface on it, a series and a
// device on the interface are created, read, changed and deleted.
func (s *soak) crudStep(i int) {
	const m = "/v1/metering/"
	sim := s.create("sim-cards", map[string]any{"organization": s.org, "iccid": fmt.Sprintf("894900%013d", i), "imsi": fmt.Sprintf("26201%010d", i)})
	if sim == "" {
		return
	}
	defer s.remove("sim-cards", sim)
	netif := s.create("network-interfaces", map[string]any{"organization": s.org, "static_ip_address": "127.0.0.1", "port": 1000 + i%1000, "sim": sim})
	if netif == "" {
		return
	}
	defer s.remove("network-interfaces", netif)
	series := s.create("meter-reading-series", map[string]any{"organization": s.org, "name": fmt.Sprintf("soak-crud-%06d", i), "unit": "kWh"})
	if series == "" {
		return
	}
	defer s.remove("meter-reading-series", series)
	dev := s.create("meter-devices", map[string]any{"organization": s.org, "name": fmt.Sprintf("soak-c-%06d", i), "protocol": "dlms-cosem",
		"type": s.typeID, "network_interface": netif})
	if dev == "" {
		return
	}
	defer s.remove("meter-devices", dev)
	s.call("GET /v1/metering/meter-devices/:id", "GET", m+"meter-devices/"+dev+"/", s.token, nil, http.StatusOK)
	for _, p := range []struct {
		res  string
		id   string
		body map[string]any
	}{
		{"meter-devices", dev, map[string]any{"manufacturer_serial": fmt.Sprintf("SN%08d", i)}},
		{"network-interfaces", netif, map[string]any{"port": 2000 + i%1000}},
		{"sim-cards", sim, map[string]any{"phone_number": fmt.Sprintf("+49301%07d", i)}},
		{"meter-reading-series", series, map[string]any{"description": fmt.Sprintf("soak cycle %d", i)}},
	} {
		body, _ := json.Marshal(p.body)
		s.call("PATCH /v1/metering/"+p.res+"/:id", "PATCH", m+p.res+"/"+p.id+"/", s.token, body, http.StatusOK)
	}
}

// create POSTs a metering object and returns its id ("" when it was not created).
func (s *soak) create(res string, obj map[string]any) string {
	body, _ := json.Marshal(obj)
	status, raw, ok := s.call("POST /v1/metering/"+res, "POST", "/v1/metering/"+res+"/", s.token, body, http.StatusCreated)
	if !ok || status != http.StatusCreated {
		return ""
	}
	var v struct {
		ID any `json:"id"`
	}
	if json.Unmarshal(raw, &v) != nil || v.ID == nil {
		return ""
	}
	return fmt.Sprint(v.ID)
}

func (s *soak) remove(res, id string) {
	s.call("DELETE /v1/metering/"+res+"/:id", "DELETE", "/v1/metering/"+res+"/"+id+"/", s.token, nil, http.StatusNoContent)
}

// readStep is one list request, taking turns through the lists operators and
// dashboards read.
func (s *soak) readStep(i int) {
	// A meter whose load profile has been sent (or the first, before any was).
	written := min(s.batch.devices, max(1, int(s.batch.next.Load()/(s.batch.slots*int64(len(soakSeries))))))
	dev := int32(s.batch.first + (i*7919)%written)
	ser := i % len(soakSeries)
	t := func(x time.Time) string { return x.UTC().Format(time.RFC3339) }
	from := s.batch.start.Add(time.Duration(i%200) * interval)
	switch i % 8 {
	case 0:
		q := url.Values{"meter_device": {s.id(dev)}, "series": {s.seriesIDs[ser]}, "start_time": {t(from)}, "end_time": {t(from.Add(24 * time.Hour))}, "limit": {"100"}}
		s.call("GET /v1/metering/meter-readings", "GET", "/v1/metering/meter-readings/?"+q.Encode(), s.token, nil, http.StatusOK)
	case 1:
		q := url.Values{"meter_device": {s.id(dev)}, "series": {s.seriesIDs[ser]}, "bucket": {"hour"}, "start_time": {t(s.batch.start)}, "end_time": {t(s.batch.start.Add(72 * time.Hour))}}
		s.call("GET /v1/metering/meter-reading-rollups (hour)", "GET", "/v1/metering/meter-reading-rollups/?"+q.Encode(), s.token, nil, http.StatusOK)
	case 2:
		q := url.Values{"meter_device": {s.id(dev)}, "series": {s.seriesIDs[ser]}, "bucket": {"day"}}
		s.call("GET /v1/metering/meter-reading-rollups (day)", "GET", "/v1/metering/meter-reading-rollups/?"+q.Encode(), s.token, nil, http.StatusOK)
	case 3:
		q := url.Values{"limit": {"100"}, "offset": {strconv.Itoa((i * 37) % s.batch.devices)}}
		s.call("GET /v1/metering/meter-devices", "GET", "/v1/metering/meter-devices/?"+q.Encode(), s.token, nil, http.StatusOK)
	case 4:
		s.call("GET /v1/metering/staged-meter-readings", "GET", "/v1/metering/staged-meter-readings/?limit=50", s.token, nil, http.StatusOK)
	case 5:
		s.call("GET /v1/metering/amr-task-runs", "GET", "/v1/metering/amr-task-runs/?limit=50", s.token, nil, http.StatusOK)
	case 6:
		s.call("GET /v1/organizations", "GET", "/v1/organizations/", s.token, nil, http.StatusOK)
	case 7:
		q := url.Values{"meter_device": {s.iecIDs[i/8%len(s.iecIDs)]}, "scaled": {"true"}, "limit": {"100"}}
		s.call("GET /v1/metering/meter-readings (collected, scaled)", "GET", "/v1/metering/meter-readings/?"+q.Encode(), s.token, nil, http.StatusOK)
	}
}

// jwtStep logs the editor in, renews the JWT and reads with the renewed one.
func (s *soak) jwtStep(int) {
	body, _ := json.Marshal(map[string]string{"username": s.userName, "password": s.userPass})
	_, raw, ok := s.call("POST /v1/auth/jwt/token", "POST", "/v1/auth/jwt/token/", "", body, http.StatusCreated)
	if !ok {
		return
	}
	var tok struct {
		Token string `json:"token"`
	}
	if json.Unmarshal(raw, &tok) != nil || tok.Token == "" {
		s.traffic.unexpected("POST /v1/auth/jwt/token", "no token in the answer")
		return
	}
	_, raw, ok = s.call("GET /v1/auth/jwt/renew", "GET", "/v1/auth/jwt/renew/", "JWT "+tok.Token, nil, http.StatusOK)
	if !ok {
		return
	}
	tok.Token = ""
	if json.Unmarshal(raw, &tok) != nil || tok.Token == "" {
		s.traffic.unexpected("GET /v1/auth/jwt/renew", "no token in the answer")
		return
	}
	s.call("GET /v1/metering/meter-devices (JWT)", "GET", "/v1/metering/meter-devices/?limit=10", "JWT "+tok.Token, nil, http.StatusOK)
}

// ---- collections ----

// invokeStep queues a readout of the next collected meter.
func (s *soak) invokeStep(i int) {
	dev := s.iecIDs[i%len(s.iecIDs)]
	body, _ := json.Marshal(map[string]any{"meter_device": dev, "task_call": "readout"})
	_, raw, ok := s.call("POST /v1/metering/amr-tasks/invoke", "POST", "/v1/metering/amr-tasks/invoke/", s.token, body, http.StatusCreated)
	if !ok {
		return
	}
	var run struct {
		ID any `json:"id"`
	}
	if json.Unmarshal(raw, &run) != nil || run.ID == nil {
		s.traffic.unexpected("POST /v1/metering/amr-tasks/invoke", "no run id in the answer")
		return
	}
	s.invoked.Add(1)
	s.runsMu.Lock()
	s.outstanding[fmt.Sprint(run.ID)] = time.Now()
	s.runsMu.Unlock()
}

// pollRuns asks for every invoked run not finished yet, as a client waiting for its
// readout does.
func (s *soak) pollRuns() {
	s.runsMu.Lock()
	ids := slices.Sorted(maps.Keys(s.outstanding))
	s.runsMu.Unlock()
	for _, id := range ids {
		_, raw, ok := s.call("GET /v1/metering/amr-task-runs/:id", "GET", "/v1/metering/amr-task-runs/"+id+"/", s.token, nil, http.StatusOK)
		if !ok {
			continue
		}
		var run struct {
			Status string `json:"status"`
		}
		_ = json.Unmarshal(raw, &run)
		if run.Status == "succeeded" || run.Status == "failed" || run.Status == "cancelled" {
			s.runsMu.Lock()
			delete(s.outstanding, id)
			s.runsMu.Unlock()
		}
	}
}

// drainRuns polls until every run is finished, at most drainWait; it returns the runs
// still pending or running then.
func (s *soak) drainRuns(ctx context.Context) int64 {
	deadline := time.Now().Add(drainWait)
	for {
		s.pollRuns()
		var open int64
		err := s.sqlConn.QueryRow(ctx, `SELECT count(*) FROM amr_task_runs WHERE status IN ('pending', 'running')`).Scan(&open)
		if err == nil && open == 0 || time.Now().After(deadline) || ctx.Err() != nil {
			return open
		}
		time.Sleep(time.Second)
	}
}

// ---- sampling and jobs ----

// sampleOnce takes the serve process's RSS, its goroutines and pool from /metrics, and
// the sessions of application "amrd" on the soak's database (serve's, and at most
// harnessMax of the soak's jobs replica).
func (s *soak) sampleOnce() {
	smp := soakSample{At: time.Since(s.start), RSSMB: rssMB(s.srv.pid())}
	if m, err := s.scrape(); err == nil {
		smp.Goroutines, smp.PoolConns, smp.PoolMax = m["go_goroutines"], m["amrd_db_pool_connections"], m["amrd_db_pool_max_connections"]
	}
	ctx, cancel := context.WithTimeout(s.ctx, 10*time.Second)
	defer cancel()
	s.sampleMu.Lock()
	defer s.sampleMu.Unlock()
	_ = s.sampleConn.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND application_name = 'amrd'`).Scan(&smp.Sessions)
	_ = s.sampleConn.QueryRow(ctx, `SELECT count(*) FROM rollup_marks`).Scan(&smp.Marks)
	s.samples = append(s.samples, smp)
}

// rssMB is a process's resident set (VmRSS), in MB.
func rssMB(pid int) float64 {
	raw, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(raw), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.ParseFloat(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 64)
			return kb / 1024
		}
	}
	return 0
}

// scrape reads serve's /metrics: each series by its name and labels as written
// (`amrd_job_runs_total{job="plan"}`), and each name alone with the sum of its series.
func (s *soak) scrape() (map[string]float64, error) {
	status, raw, ok := s.call("GET /metrics", "GET", "/metrics", "", nil, http.StatusOK)
	if !ok {
		return nil, fmt.Errorf("GET /metrics: %d", status)
	}
	m := map[string]float64{}
	sc := bufio.NewScanner(bytes.NewReader(raw))
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			continue
		}
		series := line[:i]
		m[series] = v
		if name, _, ok := strings.Cut(series, "{"); ok {
			m[name] += v
		}
	}
	return m, nil
}

// runJobs runs retention and promotion as the soak's jobs replica.
func (s *soak) runJobs(j *jobs.Jobs) {
	ctx, cancel := context.WithTimeout(s.ctx, 5*time.Minute)
	defer cancel()
	start := time.Now()
	err := errors.Join(j.Retention(ctx, time.Now()), j.PromoteStaged(ctx))
	s.jobsMu.Lock()
	defer s.jobsMu.Unlock()
	s.jobRuns++
	s.jobTimes = append(s.jobTimes, soakTime{at: start.Sub(s.start), took: time.Since(start)})
	if err != nil && len(s.jobErrs) < 5 {
		s.jobErrs = append(s.jobErrs, err.Error())
	}
}

// jobsCounter sums a counter of the soak's jobs replica.
func (s *soak) jobsCounter(name string) float64 {
	mfs, err := s.jobsReg.Gather()
	if err != nil {
		return 0
	}
	var v float64
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			v += m.GetCounter().GetValue()
		}
	}
	return v
}

func (s *soak) progress() {
	s.sampleMu.Lock()
	var last soakSample
	if len(s.samples) > 0 {
		last = s.samples[len(s.samples)-1]
	}
	s.sampleMu.Unlock()
	req, fivexx, unexp := s.traffic.totals()
	s.acks.mu.Lock()
	acked := len(s.acks.keys) + len(s.acks.old)
	s.acks.mu.Unlock()
	fmt.Fprintf(s.out, "soak: %6s: %7d requests (%d 5xx, %d unexpected), %8d readings acknowledged, %d runs invoked; RSS %.0f MB, %.0f goroutines, pool %.0f of %.0f, %d sessions, %d rollup marks\n",
		time.Since(s.start).Round(time.Second), req, fivexx, unexp, acked, s.invoked.Load(), last.RSSMB, last.Goroutines, last.PoolConns, last.PoolMax, last.Sessions, last.Marks)
}

// ---- HTTP ----

// call sends one request and records it under route; ok is whether the answer was want.
func (s *soak) call(route, method, path, auth string, body []byte, want int) (status int, raw []byte, ok bool) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(s.ctx, method, s.base+path, rd)
	if err != nil {
		s.traffic.record(route, 0, 0, 0, err.Error())
		return 0, nil, false
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	start := time.Now()
	resp, err := s.http.Do(req)
	if err == nil {
		raw, err = io.ReadAll(resp.Body)
		resp.Body.Close()
	}
	took := time.Since(start)
	at := start.Sub(s.start) // during setup, s.start is not set yet
	if s.start.IsZero() {
		at = 0
	}
	if err != nil {
		if s.ctx.Err() != nil {
			return 0, nil, false // interrupted: not amrd's failure
		}
		s.traffic.record(route, 0, at, took, err.Error())
		return 0, nil, false
	}
	var bad string
	if resp.StatusCode != want {
		bad = fmt.Sprintf("%s %s: %d %.300s", method, path, resp.StatusCode, raw)
	}
	s.traffic.record(route, resp.StatusCode, at, took, bad)
	return resp.StatusCode, raw, resp.StatusCode == want
}

// soakTraffic counts answers and latencies by route.
type soakTraffic struct {
	mu     sync.Mutex
	routes map[string]*routeStat
}

// soakTime is when something started, in the run, and how long it took.
type soakTime struct {
	at, took time.Duration
}

type routeStat struct {
	lat        []float32 // ms
	status     map[int]int
	errs       int
	unexpected int
	samples    []string
	max        soakTime // the slowest request
}

func (t *soakTraffic) stat(route string) *routeStat {
	r := t.routes[route]
	if r == nil {
		r = &routeStat{status: map[int]int{}}
		t.routes[route] = r
	}
	return r
}

// record counts one request: status 0 is a transport error; bad, when set, says what
// was unexpected.
func (t *soakTraffic) record(route string, status int, at, took time.Duration, bad string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	r := t.stat(route)
	if took > r.max.took {
		r.max = soakTime{at: at, took: took}
	}
	if status == 0 {
		r.errs++
	} else {
		r.status[status]++
		r.lat = append(r.lat, float32(took.Seconds()*1000))
	}
	if bad != "" {
		r.unexpected++
		if len(r.samples) < 3 {
			r.samples = append(r.samples, bad)
		}
	}
}

// unexpected counts an answer with the expected status but not the expected content.
func (t *soakTraffic) unexpected(route, what string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	r := t.stat(route)
	r.unexpected++
	if len(r.samples) < 3 {
		r.samples = append(r.samples, what)
	}
}

func (t *soakTraffic) totals() (requests, fivexx, unexpected int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, r := range t.routes {
		requests += r.errs
		unexpected += r.unexpected
		for st, n := range r.status {
			requests += n
			if st >= 500 {
				fivexx += n
			}
		}
	}
	return requests, fivexx, unexpected
}

func (t *soakTraffic) summary(d time.Duration) []SoakRoute {
	t.mu.Lock()
	defer t.mu.Unlock()
	var out []SoakRoute
	for name, r := range t.routes {
		sr := SoakRoute{Route: name, Status: map[int]int{}, Errors: r.errs, Unexpected: r.unexpected, Samples: r.samples,
			MaxMs: r.max.took.Seconds() * 1000, MaxAt: r.max.at.Seconds()}
		for st, n := range r.status {
			sr.Status[st] = n
			sr.Requests += n
		}
		sr.Requests += r.errs
		sr.PerSecond = float64(sr.Requests) / d.Seconds()
		if len(r.lat) > 0 {
			l := slices.Clone(r.lat)
			slices.Sort(l)
			q := func(p float64) float64 { return float64(l[int(math.Ceil(p*float64(len(l))))-1]) }
			sr.P50ms, sr.P99ms = q(0.50), q(0.99)
		}
		out = append(out, sr)
	}
	slices.SortFunc(out, func(a, b SoakRoute) int {
		pa, _, _ := strings.Cut(a.Route, " (")
		pb, _, _ := strings.Cut(b.Route, " (")
		pa, pb = pa[strings.IndexByte(pa, ' ')+1:], pb[strings.IndexByte(pb, ' ')+1:]
		if c := strings.Compare(pa, pb); c != 0 {
			return c
		}
		return strings.Compare(a.Route, b.Route)
	})
	return out
}

// ---- setup ----

// setup creates, through the API, what the traffic needs: an organization with the
// series, a config and a type; the meters of the batch and single-reading traffic; the
// collected meters, each on a network interface of its own to a simulated meter, linked
// to a quarterly IEC task; an editor for the JWT logins.
func (s *soak) setup() error {
	var firstErr error
	must := func(path string, obj map[string]any) string {
		if firstErr != nil {
			return ""
		}
		body, _ := json.Marshal(obj)
		status, raw, _ := s.call("POST "+strings.TrimSuffix(path, "/")+" (setup)", "POST", path, s.token, body, http.StatusCreated)
		var v struct {
			ID any `json:"id"`
		}
		if status != http.StatusCreated || json.Unmarshal(raw, &v) != nil || v.ID == nil {
			firstErr = fmt.Errorf("POST %s: %d %.300s", path, status, raw)
			return ""
		}
		return fmt.Sprint(v.ID)
	}
	const m = "/v1/metering/"
	s.org = must("/v1/organizations/", map[string]any{"name": "soak"})
	for _, name := range soakSeries {
		s.seriesIDs = append(s.seriesIDs, must(m+"meter-reading-series/", map[string]any{"organization": s.org, "name": name, "unit": "kWh"}))
	}
	cfg := must(m+"meter-device-configs/", map[string]any{"organization": s.org, "name": "soak", "series": s.seriesIDs, "timezone": "UTC"})
	s.typeID = must(m+"meter-device-types/", map[string]any{"organization": s.org, "name": "soak", "manufacturer": "amrd",
		"manufacturer_model": "soak", "config": cfg})
	if firstErr != nil {
		return firstErr
	}

	now := time.Now().UTC().Truncate(time.Hour)
	batchDevs, singleDevs := s.windows()
	devices := func(prefix string, n int) (first int, err error) {
		s.mu.Lock()
		first = len(s.names)
		for i := range n {
			s.names = append(s.names, fmt.Sprintf("%s-%05d", prefix, i))
			s.ids = append(s.ids, "")
		}
		s.mu.Unlock()
		// Four at a time: setup is not what the soak measures.
		var wg sync.WaitGroup
		var mu sync.Mutex
		for w := range 4 {
			wg.Go(func() {
				for i := first + w; i < first+n; i += 4 {
					body, _ := json.Marshal(map[string]any{"organization": s.org, "name": s.name(int32(i)), "protocol": "dlms-cosem", "type": s.typeID})
					status, raw, _ := s.call("POST /v1/metering/meter-devices (setup)", "POST", m+"meter-devices/", s.token, body, http.StatusCreated)
					var v struct {
						ID string `json:"id"`
					}
					if status != http.StatusCreated || json.Unmarshal(raw, &v) != nil || v.ID == "" {
						mu.Lock()
						err = cmpOr(err, fmt.Errorf("creating device %s: %d %.300s", s.name(int32(i)), status, raw))
						mu.Unlock()
						return
					}
					s.mu.Lock()
					s.ids[i] = v.ID
					s.mu.Unlock()
				}
			})
		}
		wg.Wait()
		return first, err
	}
	first, err := devices("soak-b", batchDevs)
	if err != nil {
		return err
	}
	s.batch = &soakStream{first: first, devices: batchDevs, start: now.Add(-5 * 24 * time.Hour), slots: 288, byDevice: true}
	s.old = &soakStream{first: first, devices: batchDevs, start: now.Add(-10 * 24 * time.Hour), slots: 96, byDevice: true}
	if first, err = devices("soak-s", singleDevs); err != nil {
		return err
	}
	s.single = &soakStream{first: first, devices: singleDevs, start: now.Add(-2 * 24 * time.Hour), slots: 188}
	s.staged = &soakStream{start: now.Add(-2 * 24 * time.Hour)}

	task := must(m+"amr-tasks/", map[string]any{"organization": s.org, "name": "soak quarterly", "schedule": "quarterly",
		"meter_execution_type": "generic_iec6205621", "task_call": "readout"})
	// A slot before a task existed is not due: the task is made 15 minutes older, as if
	// the soak had found it, so that its latest slot runs at the start (and the next one
	// on the next quarter-hour), not only when the run spans a quarter-hour.
	if firstErr == nil {
		if _, err := s.sqlConn.Exec(s.ctx, `UPDATE amr_tasks SET created_at = created_at - interval '15 minutes' WHERE id = $1`, task); err != nil {
			return err
		}
	}
	for i := range iecDevices {
		sim := s.simulators[i%len(s.simulators)]
		netif := must(m+"network-interfaces/", map[string]any{"organization": s.org, "static_ip_address": "127.0.0.1", "port": sim.port, "can_block": true})
		name := fmt.Sprintf("soak-iec-%d", i)
		id := must(m+"meter-devices/", map[string]any{"organization": s.org, "name": name, "protocol": "iec62056-21",
			"type": s.typeID, "network_interface": netif, "meter_tasks": []string{task}})
		s.iecIDs, s.iecNames = append(s.iecIDs, id), append(s.iecNames, name)
		if sim.fault != "none" {
			s.faultyIDs[id] = true
		}
	}
	s.userName, s.userPass = "soak-editor", randomPassword()
	user := must("/v1/users/", map[string]any{"username": s.userName, "password": s.userPass, "is_staff": false})
	must("/v1/organizations/memberships/", map[string]any{"organization": s.org, "user": user, "role": "editor"})
	return firstErr
}

func cmpOr(a, b error) error {
	if a != nil {
		return a
	}
	return b
}

func randomPassword() string {
	return strconv.FormatInt(time.Now().UnixNano(), 36) + "-soak-Pw"
}

// ---- simulated meters ----

type simProcess struct {
	cmd   *exec.Cmd
	port  int
	fault string
	done  chan struct{}
}

// startSimulator runs `amrd simulate` on a free loopback port.
func startSimulator(ctx context.Context, bin, lines, fault string) (*simProcess, error) {
	cmd := exec.CommandContext(ctx, bin, "simulate", "-listen", "127.0.0.1:0", "-lines-file", lines, "-fault", fault)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s simulate: %w", bin, err)
	}
	p := &simProcess{cmd: cmd, fault: fault, done: make(chan struct{})}
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			// "amrd simulate: IEC 62056-21 meter on 127.0.0.1:PORT (address ..."
			if _, rest, ok := strings.Cut(sc.Text(), " meter on "); ok {
				a, _, _ := strings.Cut(rest, " ")
				addr <- a
			}
		}
		_ = cmd.Wait()
		close(p.done)
	}()
	select {
	case a := <-addr:
		_, port, _ := strings.Cut(a, ":")
		p.port, _ = strconv.Atoi(port)
		if p.port == 0 {
			p.stop()
			return nil, fmt.Errorf("amrd simulate: no port in %q", a)
		}
		return p, nil
	case <-p.done:
		return nil, errors.New("amrd simulate exited before listening")
	case <-time.After(30 * time.Second):
		p.stop()
		return nil, errors.New("amrd simulate did not listen within 30 s")
	}
}

func (p *simProcess) stop() {
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// ---- the checks ----

// verify checks the database against the record and the samples against the limits.
func (s *soak) verify(ctx context.Context, res *SoakResult, metrics map[string]float64, unfinished int64, exitCode int) error {
	check := func(name string, pass bool, format string, args ...any) {
		res.Checks = append(res.Checks, SoakCheck{Name: name, Pass: pass, Detail: fmt.Sprintf(format, args...)})
	}

	// 5xx, by route.
	var requests, fivexx int
	var by []string
	for _, r := range res.Routes {
		requests += r.Requests
		n := 0
		for st, c := range r.Status {
			if st >= 500 {
				n += c
			}
		}
		if n > 0 {
			fivexx += n
			by = append(by, fmt.Sprintf("%s: %d", r.Route, n))
		}
	}
	check(CheckNo5xx, fivexx == 0, "%d of %d requests%s", fivexx, requests, listOrEmpty(by))

	// Every acknowledged reading, by its key, with its value.
	devKeys, serKeys, err := s.keys(ctx)
	if err != nil {
		return err
	}
	missing, wrong, firstMissing, err := s.compare(ctx, s.acks.keys, devKeys, serKeys)
	if err != nil {
		return err
	}
	res.Acked, res.Missing, res.WrongValue = int64(len(s.acks.keys)), missing, wrong
	check(CheckNoMissing, missing == 0 && wrong == 0 && len(s.acks.keys) > 0, "%d missing and %d with another value of %d acknowledged (the %d past retention left out)%s",
		missing, wrong, len(s.acks.keys), len(s.acks.old), listOrEmpty(firstMissing))
	oldMissing, _, _, err := s.compare(ctx, s.acks.old, devKeys, serKeys)
	if err != nil {
		return err
	}

	// RSS and goroutines: the mean of the last quarter against the second's (the first
	// is the warm-up).
	flat := func(name, unit string, get func(soakSample) float64) {
		var q2, q4 []float64
		for _, smp := range res.Samples {
			switch f := smp.At.Seconds() / res.Duration.Seconds(); {
			case f >= 0.25 && f < 0.5:
				q2 = append(q2, get(smp))
			case f >= 0.75 && f <= 1:
				q4 = append(q4, get(smp))
			}
		}
		if len(q2) == 0 || len(q4) == 0 {
			check(name, false, "too few samples (%d in the second quarter, %d in the last)", len(q2), len(q4))
			return
		}
		a, b := mean(q2), mean(q4)
		growth := (b - a) / a * 100
		check(name, growth < 10, "%+.1f %% (mean of the second quarter %.1f %s, of the last %.1f %s, %d and %d samples; limit +10 %%)",
			growth, a, unit, b, unit, len(q2), len(q4))
	}
	flat(CheckRSS, "MB", func(x soakSample) float64 { return x.RSSMB })
	flat(CheckGoroutines, "", func(x soakSample) float64 { return x.Goroutines })

	// Connections: serve's pool never above its maximum, the database's sessions of
	// application "amrd" never above that and the soak's own jobs replica.
	var peakPool, pmax float64
	var peakSess int64
	for _, smp := range res.Samples {
		peakPool, pmax, peakSess = max(peakPool, smp.PoolConns), max(pmax, smp.PoolMax), max(peakSess, smp.Sessions)
	}
	check(CheckConnections, pmax == float64(poolMax) && peakPool <= pmax && peakSess <= int64(poolMax+harnessMax) && len(res.Samples) > 0,
		"pool peak %.0f of %.0f (AMRD_DB_MAX_CONNS=%d); database sessions peak %d (limit %d: the pool and the soak's jobs replica's %d)",
		peakPool, pmax, poolMax, peakSess, poolMax+harnessMax, harnessMax)

	// Collections: the healthy meters' runs succeed, the faulty meter's fail, none is
	// left behind, and every successful run's readings are stored at its time.
	type tally struct{ ok, failed, other int64 }
	byTrigger := map[string]*[2]tally{} // trigger -> healthy, faulty
	rows, err := s.sqlConn.Query(ctx, `SELECT r.trigger, r.meter_device_id::text, r.status, count(*) FROM amr_task_runs r GROUP BY 1, 2, 3`)
	if err != nil {
		return err
	}
	for rows.Next() {
		var trig, dev, status string
		var n int64
		if err := rows.Scan(&trig, &dev, &status, &n); err != nil {
			return err
		}
		if byTrigger[trig] == nil {
			byTrigger[trig] = &[2]tally{}
		}
		t := &byTrigger[trig][0]
		if s.faultyIDs[dev] {
			t = &byTrigger[trig][1]
		}
		switch status {
		case "succeeded":
			t.ok += n
		case "failed":
			t.failed += n
		default:
			t.other += n
		}
	}
	if err := rows.Err(); err != nil {
		return err
	}
	var lost int64
	err = s.sqlConn.QueryRow(ctx, `SELECT count(*) FROM amr_task_runs r JOIN meter_devices d ON d.id = r.meter_device_id
		WHERE r.status = 'succeeded' AND (SELECT count(*) FROM meter_readings m WHERE m.device_key = d.key AND m.ts = r.run_at) <> $1`,
		len(soakSeries)).Scan(&lost)
	if err != nil {
		return err
	}
	inv, sch := byTrigger["invoke"], byTrigger["schedule"]
	if inv == nil {
		inv = &[2]tally{}
	}
	if sch == nil {
		sch = &[2]tally{}
	}
	pass := inv[0].ok > 0 && inv[1].failed > 0 && sch[0].ok > 0 && sch[1].failed > 0 &&
		inv[0].failed+inv[1].ok+sch[0].failed+sch[1].ok+inv[0].other+inv[1].other+sch[0].other+sch[1].other == 0 && unfinished == 0 && lost == 0
	check(CheckCollections, pass, "invoked: healthy meters %d succeeded / %d failed, faulty meter %d failed / %d succeeded; scheduled (quarterly): healthy %d / %d, faulty %d / %d; "+
		"%d in other states, %d of them unfinished %s after the traffic; %d successful runs without their %d readings",
		inv[0].ok, inv[0].failed, inv[1].failed, inv[1].ok, sch[0].ok, sch[0].failed, sch[1].failed, sch[1].ok,
		inv[0].other+inv[1].other+sch[0].other+sch[1].other, unfinished, drainWait, lost, len(soakSeries))

	// The rollup job (every 10 s) ran at least a quarter of its schedule: gocron starts
	// no run beside a running one, so fewer runs mean runs that took over 40 s, and the
	// late readings' marks and retention (which waits for them) fall behind.
	rollupRuns, want := metrics[`amrd_job_runs_total{job="rollups"}`], math.Floor(res.Duration.Seconds()/10/4)
	var peakMarks, lastMarks int64
	for _, smp := range res.Samples {
		peakMarks, lastMarks = max(peakMarks, smp.Marks), smp.Marks
	}
	check(CheckJobs, rollupRuns >= want, "serve's rollup job (every 10 s) finished %.0f runs in %s (at least %.0f); marks of late readings waiting for it: peak %d, %d at the end",
		rollupRuns, res.Duration.Round(time.Second), want, peakMarks, lastMarks)

	// Everything else that should not happen: answers other than expected, transport
	// errors, failed jobs (serve's and the soak's replica), serve's exit.
	var unexp, terrs int
	var samples []string
	for _, r := range res.Routes {
		st5 := 0
		for st, c := range r.Status {
			if st >= 500 {
				st5 += c
			}
		}
		unexp += r.Unexpected - st5
		terrs += r.Errors
		if r.Unexpected > 0 || r.Errors > 0 {
			for _, smp := range r.Samples {
				samples = append(samples, r.Route+": "+smp)
			}
		}
	}
	jobFailures := metrics["amrd_job_failures_total"]
	s.jobsMu.Lock()
	jobErrs := slices.Clone(s.jobErrs)
	s.jobsMu.Unlock()
	samples = append(samples, jobErrs...)
	check(CheckNoUnexpected, unexp == 0 && terrs == 0 && jobFailures == 0 && len(jobErrs) == 0 && exitCode == 0,
		"%d unexpected answers (besides 5xx), %d transport errors, %.0f failed job runs in serve, %d in the soak's jobs replica, serve's exit status %d after SIGTERM%s",
		unexp, terrs, jobFailures, len(jobErrs), exitCode, listOrEmpty(samples))

	// What the jobs did, for the report.
	var staged int64
	_ = s.sqlConn.QueryRow(ctx, `SELECT count(*) FROM staged_meter_readings`).Scan(&staged)
	s.jobsLine = fmt.Sprintf("jobs: serve ran %s; rollups: %.0f readings materialized, %.0f marked ranges recomputed; "+
		"the soak's replica ran retention and promotion %d times: %.0f chunks dropped (serve: %.0f), %.0f staged readings promoted (serve: %.0f); "+
		"%d staged readings left; %d of the %d readings sent past retention are gone",
		jobCounts(metrics), metrics["amrd_rollup_readings_materialized_total"], metrics["amrd_rollup_ranges_recomputed_total"],
		s.jobRuns, s.jobsCounter("amrd_retention_chunks_dropped_total"), metrics["amrd_retention_chunks_dropped_total"],
		s.jobsCounter("amrd_staged_promoted_total"), metrics["amrd_staged_promoted_total"], staged, oldMissing, len(s.acks.old))
	return nil
}

func jobCounts(m map[string]float64) string {
	var parts []string
	for _, job := range []string{"plan", "dispatch", "rollups", "retention", "promote_staged", "release_blocks", "cluster_readings"} {
		parts = append(parts, fmt.Sprintf("%s %.0f", job, m[`amrd_job_runs_total{job="`+job+`"}`]))
	}
	return strings.Join(parts, ", ")
}

func listOrEmpty(l []string) string {
	if len(l) == 0 {
		return ""
	}
	return "\n      " + strings.Join(l, "\n      ")
}

func mean(v []float64) float64 {
	var t float64
	for _, x := range v {
		t += x
	}
	return t / float64(len(v))
}

// keys maps the soak's device indexes and series indexes to the database's keys (-1: no
// such device).
func (s *soak) keys(ctx context.Context) ([]int32, []int32, error) {
	s.mu.Lock()
	names := slices.Clone(s.names)
	s.mu.Unlock()
	byName := map[string]int32{}
	rows, err := s.sqlConn.Query(ctx, `SELECT name, key FROM meter_devices WHERE name = ANY($1)`, names)
	if err != nil {
		return nil, nil, err
	}
	for rows.Next() {
		var n string
		var k int32
		if err := rows.Scan(&n, &k); err != nil {
			return nil, nil, err
		}
		byName[n] = k
	}
	if err := rows.Err(); err != nil {
		return nil, nil, err
	}
	dev := make([]int32, len(names))
	for i, n := range names {
		k, ok := byName[n]
		if !ok {
			k = -1
		}
		dev[i] = k
	}
	ser := make([]int32, len(soakSeries))
	for i, n := range soakSeries {
		if err := s.sqlConn.QueryRow(ctx, `SELECT key FROM meter_reading_series WHERE organization_id = $1 AND name = $2`, s.org, n).Scan(&ser[i]); err != nil {
			return nil, nil, err
		}
	}
	return dev, ser, nil
}

// compare looks every key up in meter_readings, 20,000 a query (one index probe each):
// missing are not there, wrong are there with another value; first lists a few.
func (s *soak) compare(ctx context.Context, keys []soakKey, devKeys, serKeys []int32) (missing, wrong int64, first []string, err error) {
	const chunk = 20_000
	for lo := 0; lo < len(keys); lo += chunk {
		part := keys[lo:min(lo+chunk, len(keys))]
		d, sr, ts, vs := make([]int32, len(part)), make([]int32, len(part)), make([]time.Time, len(part)), make([]string, len(part))
		for i, k := range part {
			d[i], sr[i], ts[i], vs[i] = devKeys[k.dev], serKeys[k.ser], time.Unix(k.ts, 0).UTC(), k.value()
		}
		rows, err := s.sqlConn.Query(ctx, `SELECT k.i, r.value IS NULL, coalesce(r.value::text, '') FROM unnest($1::int4[], $2::int4[], $3::timestamptz[], $4::text[]) WITH ORDINALITY AS k(d, s, t, v, i)
			LEFT JOIN meter_readings r ON r.device_key = k.d AND r.series_key = k.s AND r.ts = k.t
			WHERE r.value IS DISTINCT FROM k.v::numeric`, d, sr, ts, vs)
		if err != nil {
			return 0, 0, nil, fmt.Errorf("checking the acknowledged readings: %w", err)
		}
		for rows.Next() {
			var i int64
			var gone bool
			var got string
			if err := rows.Scan(&i, &gone, &got); err != nil {
				return 0, 0, nil, err
			}
			k := part[i-1]
			what := "missing"
			if gone {
				missing++
			} else {
				wrong++
				what = "stored as " + got
			}
			if len(first) < 10 {
				first = append(first, fmt.Sprintf("%s %s %s = %s: %s", s.name(k.dev), soakSeries[k.ser], time.Unix(k.ts, 0).UTC().Format(time.RFC3339), k.value(), what))
			}
		}
		if err := rows.Err(); err != nil {
			return 0, 0, nil, err
		}
	}
	return missing, wrong, first, nil
}

// ---- the report ----

func (s *soak) report(res *SoakResult) {
	out := s.out
	fmt.Fprintf(out, "\namrd soak: %s of traffic%s, %s/%s, %d CPUs, %s\n", res.Duration.Round(time.Second), map[bool]string{true: " (interrupted)"}[res.Interrupted],
		runtime.GOOS, runtime.GOARCH, runtime.NumCPU(), runtime.Version())
	fmt.Fprintf(out, "%-62s %8s %6s %6s %4s %4s %5s %7s %7s %7s %6s\n", "route", "requests", "per s", "2xx", "4xx", "5xx", "other", "p50 ms", "p99 ms", "max ms", "max at")
	for _, r := range res.Routes {
		var c2, c4, c5 int
		for st, n := range r.Status {
			switch {
			case st >= 500:
				c5 += n
			case st >= 400:
				c4 += n
			case st >= 200 && st < 300:
				c2 += n
			}
		}
		at := "setup"
		if !strings.HasSuffix(r.Route, "(setup)") {
			at = (time.Duration(r.MaxAt) * time.Second).String()
		}
		fmt.Fprintf(out, "%-62s %8d %6.2f %6d %4d %4d %5d %7.1f %7.1f %7.0f %6s\n", r.Route, r.Requests, r.PerSecond, c2, c4, c5,
			r.Errors+r.Unexpected-c5-c4, r.P50ms, r.P99ms, r.MaxMs, at)
	}
	fmt.Fprint(out, "the soak's jobs replica (retention, then promotion), start and seconds:")
	for i, x := range s.jobTimes {
		if i%8 == 0 {
			fmt.Fprint(out, "\n ")
		}
		fmt.Fprintf(out, " %s %.2f;", x.at.Round(time.Second), x.took.Seconds())
	}
	fmt.Fprintln(out)
	s.acks.mu.Lock()
	fmt.Fprintf(out, "readings acknowledged: %d (and %d past the retention horizon)\n", len(s.acks.keys), len(s.acks.old))
	s.acks.mu.Unlock()
	fmt.Fprintln(out, s.jobsLine)
	if n := len(res.Samples); n > 0 {
		var rss, gr []float64
		for _, smp := range res.Samples {
			rss, gr = append(rss, smp.RSSMB), append(gr, smp.Goroutines)
		}
		fmt.Fprintf(out, "serve, sampled every %s (%d samples): RSS %.0f MB at start, %.0f MB peak, %.0f MB at the end; goroutines %.0f, %.0f, %.0f\n",
			s.cfg.Sample, n, rss[0], slices.Max(rss), rss[n-1], gr[0], slices.Max(gr), gr[n-1])
		fmt.Fprint(out, "RSS MB by tenth of the run:")
		for i := range 10 {
			var v []float64
			for _, smp := range res.Samples {
				if f := smp.At.Seconds() / res.Duration.Seconds(); f >= float64(i)/10 && f < float64(i+1)/10 {
					v = append(v, smp.RSSMB)
				}
			}
			if len(v) > 0 {
				fmt.Fprintf(out, " %.0f", mean(v))
			} else {
				fmt.Fprint(out, " -")
			}
		}
		fmt.Fprintln(out)
	}
	for _, c := range res.Checks {
		word := "PASS"
		if !c.Pass {
			word = "FAIL"
		}
		fmt.Fprintf(out, "%s %s: %s\n", word, c.Name, c.Detail)
	}
	if n := res.Failed(); n > 0 {
		fmt.Fprintf(out, "soak: FAIL (%d of %d checks)\n", n, len(res.Checks))
	} else {
		fmt.Fprintf(out, "soak: PASS (all %d checks)\n", len(res.Checks))
	}
}
