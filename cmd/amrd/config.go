package main

import (
	"errors"
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/amrd/amrd/api"
	"github.com/amrd/amrd/ingest"
	"github.com/amrd/amrd/jobs"
	"github.com/amrd/amrd/store"
)

// settings are amrd's settings, read from the environment with Utilitarian's names where
// one exists. Every one is listed, with its default, in the README (TestREADMEDefaults
// holds the two together).
//
// The packages' configurations start from their DefaultConfig and take what the
// environment sets (envSettings), so that a default is written once, in its package;
// serve adds what is not a setting (keys, clock, metrics handler).
type settings struct {
	DatabaseURL        string
	SecretKey          string
	SecretKeyFallbacks []string // old SECRET_KEYs: they still decrypt and verify, never encrypt or sign
	JWTSigningKey      string
	DefaultMeterTZ     string
	Listen             string
	LogLevel           string
	CPUProfile         string
	Store              store.Config // MaxConns; URL and secrets are set where a command opens it
	API                api.Config
	Ingest             ingest.Config
	Jobs               jobs.Config
	RunJobs            bool // AMRD_JOBS: run the scheduler on this replica
	// GCPercent and MemoryLimit are serve's garbage collector settings; 0 leaves the Go
	// runtime's (GOGC, GOMEMLIMIT) as they are.
	GCPercent   int
	MemoryLimit int64
}

// defaultSettings are the settings of an empty environment: the packages' defaults and
// amrd's own.
func defaultSettings() settings {
	ing := ingest.DefaultConfig()
	return settings{
		DefaultMeterTZ: ing.DefaultTimeZone.String(),
		Listen:         "127.0.0.1:8000",
		LogLevel:       "info",
		Store:          store.DefaultConfig(),
		API:            api.DefaultConfig(),
		Ingest:         ing,
		Jobs:           jobs.DefaultConfig(),
		RunJobs:        true,
		// serve collects garbage at 400 % heap growth instead of Go's 100 %: ingestion
		// allocates per reading (decoding, batches, COPY buffers) and keeps little, so the
		// collector's work scales with how often it runs. At 400 a cycle starts after
		// allocating four times the live heap instead of once, so the collector runs a
		// quarter as often, for a peak heap of about five times the live heap instead of
		// two (make bench case b shows the CPU a reading; docs/decisions.md, "Garbage
		// collector"). The soft limit of 192 MiB bounds the heap that a full intake queue
		// (100,000 readings, about 25 MB) and 10 MB bodies could otherwise grow to at
		// 400 %, below the 256 MB budget. GOGC or GOMEMLIMIT in the environment keep the
		// Go runtime's own handling.
		GCPercent:   400,
		MemoryLimit: 192 << 20,
	}
}

// envSetting is an environment variable read into a field of settings, which holds its
// default until the variable is set.
type envSetting struct {
	name string
	// field points into s: *string, *bool, *int, *int32, *time.Duration, or not (a bool
	// stored negated).
	field func(s *settings) any
	min   int           // numbers and durations: the least value taken
	unit  time.Duration // durations: what 1 of the variable is (time.Second for _SECONDS)
}

// not is a bool setting stored negated (AMRD_ROLLUPS in jobs.Config.NoRollups,
// AMRD_CLUSTER_READINGS in NoCluster).
type not struct{ b *bool }

const day = 24 * time.Hour

// envSettings are the settings of one value each, in the README's order. The lists
// (SECRET_KEY_FALLBACKS, CORS_WHITELIST, ALLOWED_HOSTS) and secrets are read by
// loadSettings itself.
var envSettings = []envSetting{
	{name: "JWT_EXPIRATION_TIME_SECONDS", field: func(s *settings) any { return &s.API.JWTTTL }, min: 1, unit: time.Second},
	{name: "ALLOW_TOKEN_AUTH", field: func(s *settings) any { return &s.API.AllowTokenAuth }},
	{name: "CORS_ALLOW_ALL", field: func(s *settings) any { return &s.API.CORSAllowAll }},
	{name: "USE_X_FORWARDED_HOST", field: func(s *settings) any { return &s.API.UseXForwardedHost }},
	{name: "DATA_RETENTION_DAYS", field: func(s *settings) any { return &s.Jobs.DataRetention }, min: 1, unit: day},
	{name: "STAGED_DATA_RETENTION_DAYS", field: func(s *settings) any { return &s.Jobs.StagedRetention }, min: 1, unit: day},
	{name: "DEFAULT_METER_TIMEZONE", field: func(s *settings) any { return &s.DefaultMeterTZ }},
	{name: "AMRD_LISTEN", field: func(s *settings) any { return &s.Listen }},
	{name: "AMRD_LOG_LEVEL", field: func(s *settings) any { return &s.LogLevel }},
	{name: "AMRD_BODY_LIMIT_BYTES", field: func(s *settings) any { return &s.API.BodyLimit }, min: 1024},
	{name: "AMRD_REQUEST_TIMEOUT_SECONDS", field: func(s *settings) any { return &s.API.RequestTimeout }, min: 1, unit: time.Second},
	{name: "AMRD_DB_MAX_CONNS", field: func(s *settings) any { return &s.Store.MaxConns }, min: 2},
	{name: "AMRD_INGEST_QUEUE_READINGS", field: func(s *settings) any { return &s.Ingest.QueueReadings }, min: 1_000},
	{name: "AMRD_INGEST_BATCH_READINGS", field: func(s *settings) any { return &s.Ingest.BatchReadings }, min: 1},
	{name: "AMRD_INGEST_FLUSH_MS", field: func(s *settings) any { return &s.Ingest.FlushEvery }, min: 0, unit: time.Millisecond},
	{name: "AMRD_INGEST_FLUSHERS", field: func(s *settings) any { return &s.Ingest.Flushers }, min: 1},
	{name: "AMRD_INGEST_PARALLEL_READINGS", field: func(s *settings) any { return &s.Ingest.ParallelReadings }, min: 1},
	{name: "AMRD_INGEST_WARM_DEVICES", field: func(s *settings) any { return &s.Ingest.WarmDevices }, min: 0},
	{name: "AMRD_INGEST_MAX_ITEMS", field: func(s *settings) any { return &s.API.MaxReadingsPerRequest }, min: 1},
	{name: "AMRD_JOBS", field: func(s *settings) any { return &s.RunJobs }},
	{name: "AMRD_AMR_WORKERS", field: func(s *settings) any { return &s.Jobs.Workers }, min: 1},
	{name: "AMRD_AMR_RUN_TIMEOUT_SECONDS", field: func(s *settings) any { return &s.Jobs.RunTimeout }, min: 1, unit: time.Second},
	{name: "AMRD_AMR_RUN_MAX_ATTEMPTS", field: func(s *settings) any { return &s.Jobs.MaxAttempts }, min: 1},
	{name: "AMRD_AMR_RUN_RETENTION_DAYS", field: func(s *settings) any { return &s.Jobs.RunRetention }, min: 1, unit: day},
	{name: "AMRD_NETIF_BLOCK_TIMEOUT_SECONDS", field: func(s *settings) any { return &s.Jobs.BlockTimeout }, min: 1, unit: time.Second},
	{name: "AMRD_ROLLUPS", field: func(s *settings) any { return not{&s.Jobs.NoRollups} }},
	{name: "AMRD_ROLLUP_EVERY_SECONDS", field: func(s *settings) any { return &s.Jobs.RollupEvery }, min: 1, unit: time.Second},
	{name: "AMRD_ROLLUP_DELAY_MINUTES", field: func(s *settings) any { return &s.Jobs.RollupDelay }, min: 1, unit: time.Minute},
	{name: "AMRD_ROLLUP_HOURLY_RETENTION_DAYS", field: func(s *settings) any { return &s.Jobs.HourlyRetention }, min: 1, unit: day},
	{name: "AMRD_ROLLUP_DAILY_RETENTION_DAYS", field: func(s *settings) any { return &s.Jobs.DailyRetention }, min: 1, unit: day},
	{name: "AMRD_CLUSTER_READINGS", field: func(s *settings) any { return not{&s.Jobs.NoCluster} }},
	{name: "AMRD_CLUSTER_AFTER_HOURS", field: func(s *settings) any { return &s.Jobs.ClusterAfter }, min: 1, unit: time.Hour},
}

// read sets e's field from v, a value of the environment (not empty).
func (e envSetting) read(s *settings, v string) error {
	switch f := e.field(s).(type) {
	case *string:
		*f = v
		return nil
	case *bool, not:
		b, err := strconv.ParseBool(strings.TrimSpace(v))
		if err != nil {
			return fmt.Errorf("%s=%q: must be true or false", e.name, v)
		}
		if n, ok := f.(not); ok {
			*n.b = !b
		} else {
			*f.(*bool) = b
		}
		return nil
	}
	n, err := strconv.Atoi(strings.TrimSpace(v))
	if err != nil || n < e.min {
		return fmt.Errorf("%s=%q: must be a whole number of at least %d", e.name, v, e.min)
	}
	switch f := e.field(s).(type) {
	case *int:
		*f = n
	case *int32:
		*f = int32(min(n, math.MaxInt32))
	case *time.Duration:
		*f = time.Duration(n) * e.unit
	default:
		panic(fmt.Sprintf("setting %s: a field of type %T", e.name, f))
	}
	return nil
}

// text is e's value in s as the environment spells it: the README's default column.
func (e envSetting) text(s *settings) string {
	switch f := e.field(s).(type) {
	case *string:
		return *f
	case *bool:
		return strconv.FormatBool(*f)
	case not:
		return strconv.FormatBool(!*f.b)
	case *int:
		return strconv.Itoa(*f)
	case *int32:
		return strconv.Itoa(int(*f))
	case *time.Duration:
		return strconv.FormatInt(int64(*f/e.unit), 10)
	}
	panic(fmt.Sprintf("setting %s: a field of type %T", e.name, e.field(s)))
}

// hostName is an ALLOWED_HOSTS entry other than "*": a host name or IP address, with a
// leading dot for a domain and its subdomains, or a bracketed IPv6 address.
var hostName = regexp.MustCompile(`^(\.?[a-z0-9-]+(\.[a-z0-9-]+)*\.?|\[[a-f0-9]*:[a-f0-9.:]+\])$`)

// minSecretLen: 32 characters of a random secret carry well over the 128 bits an HS256
// key and an AES key derivation need.
const minSecretLen = 32

func loadSettings(getenv func(string) string) (settings, error) {
	s := defaultSettings()
	s.DatabaseURL = getenv("DATABASE_URL")
	s.SecretKey = getenv("SECRET_KEY")
	s.JWTSigningKey = getenv("JWT_SIGNING_KEY")
	s.CPUProfile = getenv("AMRD_CPUPROFILE")
	var errs []error
	for _, e := range envSettings {
		if v := getenv(e.name); v != "" {
			if err := e.read(&s, v); err != nil {
				errs = append(errs, err)
			}
		}
	}
	// One setting for both kinds of run: scheduled (jobs) and invoked (api).
	s.API.RunMaxAttempts = s.Jobs.MaxAttempts
	// Django's SECRET_KEY_FALLBACKS, as a comma-separated list (a secret with a comma
	// cannot be listed).
	for _, k := range strings.Split(getenv("SECRET_KEY_FALLBACKS"), ",") {
		if k = strings.TrimSpace(k); k != "" {
			s.SecretKeyFallbacks = append(s.SecretKeyFallbacks, k)
		}
	}
	for _, o := range strings.Split(getenv("CORS_WHITELIST"), ",") {
		if o = strings.TrimSpace(o); o != "" {
			s.API.CORSWhitelist = append(s.API.CORSWhitelist, o)
		}
	}
	// Django's ALLOWED_HOSTS, comma-separated: "example.org", ".example.org" (it and its
	// subdomains), "*"; names without port, as Django's.
	for _, h := range strings.Split(getenv("ALLOWED_HOSTS"), ",") {
		if h = strings.ToLower(strings.TrimSpace(h)); h == "" {
			continue
		}
		if h != "*" && !hostName.MatchString(h) {
			errs = append(errs, fmt.Errorf("ALLOWED_HOSTS: %q is not a host name, .domain, [IPv6 address] or *", h))
			continue
		}
		s.API.AllowedHosts = append(s.API.AllowedHosts, h)
	}
	if getenv("GOGC") != "" {
		s.GCPercent = 0
	}
	if getenv("GOMEMLIMIT") != "" {
		s.MemoryLimit = 0
	}
	if s.API.MaxReadingsPerRequest > s.Ingest.QueueReadings {
		errs = append(errs, fmt.Errorf("AMRD_INGEST_MAX_ITEMS (%d) must not exceed AMRD_INGEST_QUEUE_READINGS (%d)", s.API.MaxReadingsPerRequest, s.Ingest.QueueReadings))
	}
	if loc, err := time.LoadLocation(s.DefaultMeterTZ); err == nil {
		s.Ingest.DefaultTimeZone = loc
	} else {
		errs = append(errs, fmt.Errorf("DEFAULT_METER_TIMEZONE=%q: not a time zone of the tz database", s.DefaultMeterTZ))
	}
	switch s.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		errs = append(errs, fmt.Errorf("AMRD_LOG_LEVEL=%q: must be debug, info, warn or error", s.LogLevel))
	}
	return s, errors.Join(errs...)
}

// needDB checks the settings every database command needs.
func (s settings) needDB() error {
	if s.DatabaseURL == "" {
		return errors.New("DATABASE_URL is not set: point it at a TimescaleDB 2.x " +
			"(postgres://user:password@host:5432/db), or use 'make run', which provisions a local one")
	}
	return nil
}

// needSecrets checks the settings the server needs to sign JWTs and to encrypt meter
// security keys.
func (s settings) needSecrets() error {
	if len(s.SecretKey) < minSecretLen {
		return fmt.Errorf("SECRET_KEY must be set to a random string of at least %d characters "+
			"(for example: head -c 32 /dev/urandom | base64)", minSecretLen)
	}
	if s.JWTSigningKey != "" && len(s.JWTSigningKey) < minSecretLen {
		return fmt.Errorf("JWT_SIGNING_KEY, when set, must be at least %d characters", minSecretLen)
	}
	return s.checkFallbacks()
}

// checkFallbacks checks SECRET_KEY_FALLBACKS as SECRET_KEY is checked (each was one), and
// names a bad key by its position only: the message never quotes a secret.
func (s settings) checkFallbacks() error {
	for i, k := range s.SecretKeyFallbacks {
		if len(k) < minSecretLen {
			return fmt.Errorf("SECRET_KEY_FALLBACKS: key %d of %d is shorter than %d characters (each is a former SECRET_KEY)",
				i+1, len(s.SecretKeyFallbacks), minSecretLen)
		}
	}
	return nil
}

func (s settings) jwtKey() []byte {
	if s.JWTSigningKey != "" {
		return []byte(s.JWTSigningKey)
	}
	return []byte(s.SecretKey)
}

// jwtKeyFallbacks are the keys that still verify JWTs: the SECRET_KEY_FALLBACKS when
// JWTs are signed with SECRET_KEY; none when JWT_SIGNING_KEY is set (a new
// JWT_SIGNING_KEY ends every JWT signed with the old one).
func (s settings) jwtKeyFallbacks() [][]byte {
	if s.JWTSigningKey != "" {
		return nil
	}
	var keys [][]byte
	for _, k := range s.SecretKeyFallbacks {
		keys = append(keys, []byte(k))
	}
	return keys
}

func or(v, def string) string {
	if v == "" {
		return def
	}
	return v
}
