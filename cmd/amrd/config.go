package main

import (
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// settings are amrd's settings, read from the environment with Utilitarian's names where
// one exists. Every one is listed, with its default, in the README.
type settings struct {
	DatabaseURL         string
	SecretKey           string
	SecretKeyFallbacks  []string // old SECRET_KEYs: they still decrypt and verify, never encrypt or sign
	JWTSigningKey       string
	JWTExpiration       time.Duration
	AllowTokenAuth      bool
	DataRetentionDays   int // 0: keep forever
	StagedRetentionDays int
	DefaultMeterTZ      string
	CORSWhitelist       []string
	CORSAllowAll        bool
	AllowedHosts        []string // Django's ALLOWED_HOSTS; empty: any well-formed host
	UseXForwardedHost   bool
	Listen              string
	LogLevel            string
	BodyLimit           int
	RequestTimeout      time.Duration
	DBMaxConns          int
	IngestQueue         int
	IngestBatch         int
	IngestFlush         time.Duration
	IngestMaxItems      int
	IngestFlushers      int
	IngestParallel      int
	IngestWarmDevices   int
	CPUProfile          string
	Jobs                bool
	AMRWorkers          int
	AMRRunTimeout       time.Duration
	AMRRunMaxAttempts   int
	AMRRunRetentionDays int
	NetifBlockTimeout   time.Duration
	Rollups             bool
	RollupEvery         time.Duration
	RollupDelay         time.Duration
	RollupHourlyDays    int // 0: keep
	RollupDailyDays     int // 0: keep
	// GCPercent and MemoryLimit are serve's garbage collector settings; 0 leaves the Go
	// runtime's (GOGC, GOMEMLIMIT) as they are.
	GCPercent   int
	MemoryLimit int64
	defaultZone *time.Location
}

// hostName is an ALLOWED_HOSTS entry other than "*": a host name or IP address, with a
// leading dot for a domain and its subdomains, or a bracketed IPv6 address.
var hostName = regexp.MustCompile(`^(\.?[a-z0-9-]+(\.[a-z0-9-]+)*\.?|\[[a-f0-9]*:[a-f0-9.:]+\])$`)

// minSecretLen: 32 characters of a random secret carry well over the 128 bits an HS256
// key and an AES key derivation need.
const minSecretLen = 32

func loadSettings(getenv func(string) string) (settings, error) {
	s := settings{
		DatabaseURL:    getenv("DATABASE_URL"),
		SecretKey:      getenv("SECRET_KEY"),
		JWTSigningKey:  getenv("JWT_SIGNING_KEY"),
		DefaultMeterTZ: or(getenv("DEFAULT_METER_TIMEZONE"), "UTC"),
		Listen:         or(getenv("AMRD_LISTEN"), "127.0.0.1:8000"),
		LogLevel:       or(getenv("AMRD_LOG_LEVEL"), "info"),
		CPUProfile:     getenv("AMRD_CPUPROFILE"),
	}
	var errs []error
	num := func(name string, def int, min int) int {
		v := getenv(name)
		if v == "" {
			return def
		}
		n, err := strconv.Atoi(strings.TrimSpace(v))
		if err != nil || n < min {
			errs = append(errs, fmt.Errorf("%s=%q: must be a whole number of at least %d", name, v, min))
			return def
		}
		return n
	}
	boolean := func(name string, def bool) bool {
		v := getenv(name)
		if v == "" {
			return def
		}
		b, err := strconv.ParseBool(strings.TrimSpace(v))
		if err != nil {
			errs = append(errs, fmt.Errorf("%s=%q: must be true or false", name, v))
			return def
		}
		return b
	}
	// Django's SECRET_KEY_FALLBACKS, as a comma-separated list (a secret with a comma
	// cannot be listed).
	for _, k := range strings.Split(getenv("SECRET_KEY_FALLBACKS"), ",") {
		if k = strings.TrimSpace(k); k != "" {
			s.SecretKeyFallbacks = append(s.SecretKeyFallbacks, k)
		}
	}
	s.JWTExpiration = time.Duration(num("JWT_EXPIRATION_TIME_SECONDS", 1200, 1)) * time.Second
	s.AllowTokenAuth = boolean("ALLOW_TOKEN_AUTH", true)
	s.DataRetentionDays = num("DATA_RETENTION_DAYS", 0, 1)
	s.StagedRetentionDays = num("STAGED_DATA_RETENTION_DAYS", 30, 1)
	s.CORSAllowAll = boolean("CORS_ALLOW_ALL", false)
	for _, o := range strings.Split(getenv("CORS_WHITELIST"), ",") {
		if o = strings.TrimSpace(o); o != "" {
			s.CORSWhitelist = append(s.CORSWhitelist, o)
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
		s.AllowedHosts = append(s.AllowedHosts, h)
	}
	s.UseXForwardedHost = boolean("USE_X_FORWARDED_HOST", false)
	s.BodyLimit = num("AMRD_BODY_LIMIT_BYTES", 10<<20, 1024)
	s.RequestTimeout = time.Duration(num("AMRD_REQUEST_TIMEOUT_SECONDS", 30, 1)) * time.Second
	s.DBMaxConns = num("AMRD_DB_MAX_CONNS", 20, 2)
	s.IngestQueue = num("AMRD_INGEST_QUEUE_READINGS", 100_000, 1_000)
	s.IngestBatch = num("AMRD_INGEST_BATCH_READINGS", 10_000, 1)
	s.IngestFlush = time.Duration(num("AMRD_INGEST_FLUSH_MS", 0, 0)) * time.Millisecond
	s.IngestMaxItems = num("AMRD_INGEST_MAX_ITEMS", 10_000, 1)
	s.IngestFlushers = num("AMRD_INGEST_FLUSHERS", 0, 1)
	s.IngestParallel = num("AMRD_INGEST_PARALLEL_READINGS", 0, 1)
	s.IngestWarmDevices = num("AMRD_INGEST_WARM_DEVICES", 100_000, 0)
	s.Jobs = boolean("AMRD_JOBS", true)
	s.AMRWorkers = num("AMRD_AMR_WORKERS", 16, 1)
	s.AMRRunTimeout = time.Duration(num("AMRD_AMR_RUN_TIMEOUT_SECONDS", 60, 1)) * time.Second
	s.AMRRunMaxAttempts = num("AMRD_AMR_RUN_MAX_ATTEMPTS", 3, 1)
	s.AMRRunRetentionDays = num("AMRD_AMR_RUN_RETENTION_DAYS", 30, 1)
	s.NetifBlockTimeout = time.Duration(num("AMRD_NETIF_BLOCK_TIMEOUT_SECONDS", 300, 1)) * time.Second
	s.Rollups = boolean("AMRD_ROLLUPS", true)
	s.RollupEvery = time.Duration(num("AMRD_ROLLUP_EVERY_SECONDS", 60, 1)) * time.Second
	s.RollupDelay = time.Duration(num("AMRD_ROLLUP_DELAY_MINUTES", 15, 1)) * time.Minute
	s.RollupHourlyDays = num("AMRD_ROLLUP_HOURLY_RETENTION_DAYS", 0, 1)
	s.RollupDailyDays = num("AMRD_ROLLUP_DAILY_RETENTION_DAYS", 0, 1)
	// serve collects garbage at 400 % heap growth instead of Go's 100 %: ingestion
	// allocates per reading (decoding, batches, COPY buffers) and keeps little, so the
	// collector's work scales with how often it runs. Measured (make bench, 1,000-reading
	// requests): the collector's share of amrd's CPU fell from 13 % to 5 %, CPU a reading
	// from 3.3 to 2.2 us, peak RSS rose from 35 to 65 MB. The soft limit of 192 MiB
	// bounds the heap that a full intake queue (100,000 readings, about 25 MB) and
	// 10 MB bodies could otherwise grow to at 400 %, below the 256 MB budget. GOGC or
	// GOMEMLIMIT in the environment keep the Go runtime's own handling.
	if getenv("GOGC") == "" {
		s.GCPercent = 400
	}
	if getenv("GOMEMLIMIT") == "" {
		s.MemoryLimit = 192 << 20
	}
	if s.IngestMaxItems > s.IngestQueue {
		errs = append(errs, fmt.Errorf("AMRD_INGEST_MAX_ITEMS (%d) must not exceed AMRD_INGEST_QUEUE_READINGS (%d)", s.IngestMaxItems, s.IngestQueue))
	}
	if loc, err := time.LoadLocation(s.DefaultMeterTZ); err == nil {
		s.defaultZone = loc
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
