// Command amrd is the AMR back end: its server, migrations, and user and token admin.
package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"runtime/debug"
	"runtime/pprof"
	"strings"
	"syscall"
	"time"
	// The tz database, embedded: meter configs' time zones and DEFAULT_METER_TIMEZONE load
	// on every host, also one without /usr/share/zoneinfo (time.LoadLocation reads the
	// host's copy first, then this one).
	_ "time/tzdata"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/amrd/amrd/api"
	"github.com/amrd/amrd/bench"
	"github.com/amrd/amrd/deploy"
	"github.com/amrd/amrd/ingest"
	"github.com/amrd/amrd/jobs"
	"github.com/amrd/amrd/meterproto"
	"github.com/amrd/amrd/store"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	// The first signal asks for a clean stop; a second one ends the process at once.
	go func() { <-ctx.Done(); stop() }()
	err := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr, os.Getenv)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "amrd:", err)
		code := 1
		var ee *exitError
		if errors.As(err, &ee) {
			code = ee.code
		}
		os.Exit(code)
	}
}

// exitError asks main for an exit status other than 1.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

const usage = `amrd: an open back end for Automatic Meter Reading.

Commands:
  amrd serve                        start the HTTP API (settings from the environment)
  amrd migrate                      apply pending database migrations
  amrd bootstrap                    create a first staff user and token, if no user exists
  amrd user create -username NAME [-staff] [-email E] [-password-stdin]
                                    create a user (a random password is printed unless
                                    -password-stdin reads one from standard input)
  amrd token create -username NAME  create an API token for a staff user (shown once)
  amrd sql-role create -organization ID [-name N] [-connection-limit N] [-statement-timeout D]
                                    a PostgreSQL login role for Grafana that reads only one
                                    organization's rows of the read views (password shown once)
  amrd sql-role list|revoke -name N list the SQL roles, or drop one
  amrd bench [-meters N] [-seconds S] [-json FILE]
                                    the ingestion benchmark against AMRD_BENCH_DATABASE_URL
                                    (use 'make bench', which starts a database for it)
  amrd soak [-minutes N] [-scale F] [-json FILE]
                                    the soak test: serve under steady mixed traffic for N
                                    minutes (default 10), then its checks, against
                                    AMRD_SOAK_DATABASE_URL (use 'make soak')
  amrd keys rotate [-batch N]       re-encrypt every stored meter security key under SECRET_KEY
                                    (after a change of SECRET_KEY, with the old one in
                                    SECRET_KEY_FALLBACKS); resumable; exit status 2 when rows
                                    could not be decrypted
  amrd import readings [-skip N] [-rejects FILE] [-show N] FILE.csv[.gz]
                                    import readings from CSV (FILE - reads standard input)
                                    through the ingest pipeline; exit status 2 when rows
                                    were rejected or conflicted
  amrd simulate [-listen ADDR] [-address A] [-lines-file F] [-fault F]
                                    a simulated IEC 62056-21 meter on TCP, for demos and tests
  amrd tsdb provision|start NAME PORT|url NAME|stop NAME|destroy NAME|status NAME
                                    a local TimescaleDB in a Debian trixie chroot (root only)

Settings are environment variables; see the README.`

// run is main without the exit: everything it needs is passed in.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer, getenv func(string) string) error {
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		fmt.Fprintln(stdout, usage)
		return nil
	}
	if args[0] == "tsdb" {
		// The embedded deploy/tsdb.sh, so that a machine with only the binary can get a
		// local TimescaleDB too.
		cmd := exec.CommandContext(ctx, "bash", append([]string{"-c", deploy.TSDBScript, "tsdb.sh"}, args[1:]...)...)
		cmd.Stdin, cmd.Stdout, cmd.Stderr = stdin, stdout, stderr
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("tsdb %s: %w", strings.Join(args[1:], " "), err)
		}
		return nil
	}
	cfg, err := loadSettings(getenv)
	if err != nil {
		return fmt.Errorf("reading settings: %w", err)
	}
	log := newLogger(stderr, cfg.LogLevel)
	switch args[0] {
	case "serve":
		return serve(ctx, cfg, stdout, log)
	case "migrate":
		return withStore(ctx, cfg, log, func(st *store.Store) error {
			applied, err := st.Migrate(ctx)
			if err != nil {
				return err
			}
			if len(applied) == 0 {
				fmt.Fprintln(stdout, "migrate: the schema is up to date")
			} else {
				fmt.Fprintf(stdout, "migrate: applied %v\n", applied)
			}
			return nil
		})
	case "bootstrap":
		return withStore(ctx, cfg, log, func(st *store.Store) error { return bootstrap(ctx, st, stdout) })
	case "bench":
		return benchCmd(ctx, args[1:], getenv, stdout)
	case "soak":
		return bench.SoakMain(ctx, args[1:], getenv, stdout)
	case "user":
		return userCmd(ctx, cfg, log, args[1:], stdin, stdout)
	case "token":
		return tokenCmd(ctx, cfg, log, args[1:], stdout)
	case "sql-role":
		return sqlRoleCmd(ctx, cfg, log, args[1:], stdout)
	case "import":
		return importCmd(ctx, cfg, log, args[1:], stdin, stdout, stderr)
	case "keys":
		return keysCmd(ctx, cfg, log, args[1:], stdout, stderr)
	case "simulate":
		return simulateCmd(ctx, args[1:], stdout)
	}
	return fmt.Errorf("unknown command %q\n\n%s", args[0], usage)
}

func newLogger(w io.Writer, level string) *slog.Logger {
	var l slog.Level
	_ = l.UnmarshalText([]byte(level))
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: l}))
}

func withStore(ctx context.Context, cfg settings, log *slog.Logger, fn func(*store.Store) error) error {
	if err := cfg.needDB(); err != nil {
		return err
	}
	st, err := store.Open(ctx, store.Config{URL: cfg.DatabaseURL, MaxConns: 4}, log)
	if err != nil {
		return err
	}
	defer st.Close()
	return fn(st)
}

func serve(ctx context.Context, cfg settings, stdout io.Writer, log *slog.Logger) error {
	if err := errors.Join(cfg.needDB(), cfg.needSecrets()); err != nil {
		return err
	}
	if cfg.GCPercent > 0 {
		debug.SetGCPercent(cfg.GCPercent)
	}
	if cfg.MemoryLimit > 0 {
		debug.SetMemoryLimit(cfg.MemoryLimit)
	}
	sc := cfg.Store
	sc.URL, sc.Secret, sc.SecretFallbacks = cfg.DatabaseURL, cfg.SecretKey, cfg.SecretKeyFallbacks
	st, err := store.Open(ctx, sc, log)
	if err != nil {
		return err
	}
	defer st.Close()
	if err := checkSchema(ctx, st); err != nil {
		return err
	}
	// Run times, leases, slots, JWTs and the login throttle's window are read on the
	// database's clock, so that replicas agree on them whatever their own clocks say.
	clock, err := st.NewClock(ctx)
	if err != nil {
		return err
	}
	defer startClock(clock)()

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}), st.PoolCollector())
	pipe, err := newPipeline(cfg, st, log, reg)
	if err != nil {
		return err
	}
	ac := cfg.API
	ac.JWTKey, ac.JWTKeyFallbacks = cfg.jwtKey(), cfg.jwtKeyFallbacks()
	ac.Metrics = promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg})
	ac.Now = clock.Now
	srv, err := api.New(ac, st, api.StoreTables(st), pipe, log, reg)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("listening on %s (AMRD_LISTEN): %w", cfg.Listen, err)
	}
	fmt.Fprintf(stdout, "amrd listening on http://%s\n", ln.Addr())
	log.Info("listening", "component", "server", "addr", ln.Addr().String())
	if path := cfg.CPUProfile; path != "" {
		// A CPU profile of the whole run, for performance work (go tool pprof).
		if f, err := os.Create(path); err == nil {
			if pprof.StartCPUProfile(f) == nil {
				defer func() { pprof.StopCPUProfile(); f.Close() }()
			}
		}
	}

	// The pipeline outlives the HTTP server: on shutdown the server stops taking
	// requests and waits for those in flight, whose readings the pipeline then commits;
	// only then does the pool close (deferred above).
	defer startPipeline(pipe)()
	if cfg.RunJobs {
		j, err := newJobs(cfg, st, clock.Now, pipe, log, reg)
		if err != nil {
			return err
		}
		// Deferred after the pipeline's stop, so run first: runs in flight are cancelled
		// and returned to the queue before the pipeline drains.
		defer startJobs(j)()
	}

	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	select {
	case err := <-done:
		return fmt.Errorf("serving: %w", err)
	case <-ctx.Done():
	}
	log.Info("shutting down", "component", "server")
	sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		return fmt.Errorf("shutting down: %w", err)
	}
	<-done
	log.Info("stopped", "component", "server")
	return nil
}

// checkSchema refuses a database whose schema is behind this binary.
func checkSchema(ctx context.Context, st *store.Store) error {
	pending, err := st.PendingMigrations(ctx)
	if err != nil {
		return err
	}
	if len(pending) > 0 {
		return fmt.Errorf("the database schema is behind this binary (pending migrations %v): run 'amrd migrate' first", pending)
	}
	return nil
}

// newPipeline builds the ingest pipeline from the settings (serve and import share it).
func newPipeline(cfg settings, st *store.Store, log *slog.Logger, reg prometheus.Registerer) (*ingest.Pipeline, error) {
	return ingest.New(cfg.Ingest, st, log, reg)
}

// newJobs builds the scheduler of AMR task runs, retention and staging jobs, with the
// built-in executors; now is the database's clock.
func newJobs(cfg settings, st *store.Store, now func() time.Time, pipe *ingest.Pipeline, log *slog.Logger, reg prometheus.Registerer) (*jobs.Jobs, error) {
	jc := cfg.Jobs
	jc.Now = now
	return jobs.New(jc, st, builtinExecutors(pipe, cfg.Ingest.DefaultTimeZone), log, reg)
}

// builtinExecutors are the execution types amrd runs itself; runs of the others
// (meterproto.ExecutionTypes) wait for an external worker (README).
func builtinExecutors(pipe *ingest.Pipeline, zone *time.Location) map[string]jobs.Executor {
	return map[string]jobs.Executor{
		meterproto.ExecGenericIEC6205621: jobs.IEC{Ingest: pipe, DefaultZone: zone},
	}
}

// startJobs runs the jobs until the returned stop is called.
func startJobs(j *jobs.Jobs) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = j.Run(ctx); close(done) }()
	return func() { cancel(); <-done }
}

// clockSync is how often serve reads the database's clock again: the local oscillator
// drifts by at most about 100 ppm, 1 ms in 10 s, against a lease grace of 30 s.
const clockSync = 10 * time.Second

// startClock keeps the clock in step with the database's until the returned stop is
// called.
func startClock(c *store.Clock) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { c.Run(ctx, clockSync); close(done) }()
	return func() { cancel(); <-done }
}

// startPipeline runs the pipeline until the returned stop is called; stop returns once
// everything the pipeline accepted is committed.
func startPipeline(pipe *ingest.Pipeline) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = pipe.Run(ctx); close(done) }()
	return func() { cancel(); <-done }
}

// bootstrap creates the first staff user, "admin", with a random password and a token,
// and prints both once. It does nothing when a user exists.
func bootstrap(ctx context.Context, st *store.Store, stdout io.Writer) error {
	password := randomSecret()
	hash, err := api.HashPassword(password)
	if err != nil {
		return err
	}
	u, token, created, err := st.Bootstrap(ctx, "admin", hash)
	if err != nil {
		return err
	}
	if !created {
		fmt.Fprintln(stdout, "bootstrap: users exist already; nothing to do")
		return nil
	}
	fmt.Fprintf(stdout, `bootstrap: created the first staff user (shown once; keep them safe)
  username: %s
  password: %s
  token:    %s
  try:      curl -H 'Authorization: Token %s' http://127.0.0.1:8000/v1/organizations/
`, u.Username, password, token, token)
	return nil
}

func randomSecret() string {
	var b [18]byte
	_, _ = rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

func userCmd(ctx context.Context, cfg settings, log *slog.Logger, args []string, stdin io.Reader, stdout io.Writer) error {
	if len(args) == 0 || args[0] != "create" {
		return errors.New("usage: amrd user create -username NAME [-staff] [-email E] [-password-stdin]")
	}
	fs := flag.NewFlagSet("user create", flag.ContinueOnError)
	username := fs.String("username", "", "the new user's name")
	staff := fs.Bool("staff", false, "make the user staff (full access, may hold API tokens)")
	email := fs.String("email", "", "the user's e-mail address")
	fromStdin := fs.Bool("password-stdin", false, "read the password from the first line of standard input")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	if *username == "" {
		return errors.New("user create: -username is required")
	}
	password := ""
	if *fromStdin {
		line, err := bufio.NewReader(stdin).ReadString('\n')
		if err != nil && !errors.Is(err, io.EOF) {
			return fmt.Errorf("reading the password: %w", err)
		}
		password = strings.TrimRight(line, "\r\n")
		if len(password) < 8 {
			return errors.New("user create: the password must be at least 8 characters")
		}
	}
	generated := password == ""
	if generated {
		password = randomSecret()
	}
	hash, err := api.HashPassword(password)
	if err != nil {
		return err
	}
	return withStore(ctx, cfg, log, func(st *store.Store) error {
		u, err := st.CreateUser(ctx, store.UserInput{Username: *username, Email: *email, PasswordHash: hash, IsStaff: *staff, IsActive: true})
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "created user %s (id %s, staff %t)\n", u.Username, u.ID, u.IsStaff)
		if generated {
			fmt.Fprintf(stdout, "password (shown once): %s\n", password)
		}
		return nil
	})
}

func tokenCmd(ctx context.Context, cfg settings, log *slog.Logger, args []string, stdout io.Writer) error {
	if len(args) == 0 || args[0] != "create" {
		return errors.New("usage: amrd token create -username NAME")
	}
	fs := flag.NewFlagSet("token create", flag.ContinueOnError)
	username := fs.String("username", "", "the staff user who will own the token")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	if *username == "" {
		return errors.New("token create: -username is required")
	}
	return withStore(ctx, cfg, log, func(st *store.Store) error {
		u, err := st.GetUserByUsername(ctx, *username)
		if errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("token create: no user named %q", *username)
		}
		if err != nil {
			return err
		}
		if !u.IsStaff {
			return fmt.Errorf("token create: %s is not staff; API tokens are for staff users (use JWT for others)", u.Username)
		}
		key, err := st.CreateToken(ctx, u.ID)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "token for %s (shown once; stored hashed): %s\n", u.Username, key)
		return nil
	})
}

func benchCmd(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	def := bench.DefaultConfig()
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	meters := fs.Int("meters", def.Meters, "meters in the fleet (8 series each)")
	seconds := fs.Int("seconds", int(def.Duration/time.Second), "seconds each case writes (at least 10)")
	jsonPath := fs.String("json", def.JSONPath, "where to write the results as JSON")
	only := fs.String("only", "", "comma-separated cases to run alone, for tuning: a_copy,b_batches,b_norollups,c_single,d_naive; r1..r5 (read); r6 (b_batches,b_norollups)")
	rounds := fs.Int("rounds", def.Rounds, "times each case runs, taking turns; each case's median counts (an even count gets one more)")
	read := fs.Bool("read", def.Read, "run the read benchmark (r1-r5) after the ingestion cases")
	readMeters := fs.Int("read-meters", def.ReadMeters, "meters of the read load (4 series each)")
	readDays := fs.Int("read-days", def.ReadDays, "days of 15-minute readings in the read load")
	readRuns := fs.Int("read-runs", def.ReadRuns, "timed runs of each read query")
	if err := fs.Parse(args); err != nil {
		return err
	}
	admin := getenv("AMRD_BENCH_DATABASE_URL")
	if admin == "" {
		return errors.New("bench: AMRD_BENCH_DATABASE_URL is not set: run 'make bench', which starts a throw-away TimescaleDB")
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	_, err = bench.Run(ctx, bench.Config{AdminURL: admin, Binary: self, Meters: *meters,
		Duration: time.Duration(*seconds) * time.Second, JSONPath: *jsonPath, Only: splitList(*only), Rounds: *rounds,
		Read: *read, ReadMeters: *readMeters, ReadDays: *readDays, ReadRuns: *readRuns}, stdout)
	return err
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}
