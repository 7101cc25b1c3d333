// Package api is amrd's HTTP surface: a Fiber app compatible with Utilitarian API v1.3,
// its auth (Token, Basic, JWT), pagination and DRF-style errors.
package api

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/middleware/cors"
	"github.com/gofiber/fiber/v2/middleware/recover"
	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/valyala/fasthttp"

	"github.com/amrd/amrd/store"
)

// Store is what the API calls on the database, beside the administered resources'
// Tables; store.Store satisfies it, handler tests may fake it.
type Store interface {
	Ping(ctx context.Context) error

	UserByToken(ctx context.Context, key string) (store.User, error)
	GetUser(ctx context.Context, id uuid.UUID) (store.User, error)
	GetUserByUsername(ctx context.Context, username string) (store.User, error)
	UserMemberships(ctx context.Context, user uuid.UUID) ([]store.Membership, error)
	TouchLogin(ctx context.Context, id uuid.UUID) error
	loginFailureStore

	// GetMeterDevice reads the device of an AMR task invocation.
	GetMeterDevice(ctx context.Context, sc store.Scope, id uuid.UUID) (store.MeterDevice, error)
	// CreateSecurityKeys stores a security key collection from its keys in clear.
	CreateSecurityKeys(ctx context.Context, sc store.Scope, in store.SecurityKeysInput) (store.SecurityKeys, error)

	readingStore
	rollupStore
	taskRunStore
}

// Tables are the administered resources, one crudStore each, served by the generic
// handlers of resource.go. StoreTables gives amrd's database's; handler tests fake them.
type Tables struct {
	Organizations      crudStore[store.Organization, uuid.UUID]
	Memberships        crudStore[store.Membership, int64]
	Users              crudStore[store.User, uuid.UUID]
	SimCards           crudStore[store.SimCard, uuid.UUID]
	NetworkInterfaces  crudStore[store.NetworkInterface, uuid.UUID]
	MeterReadingSeries crudStore[store.MeterReadingSeries, uuid.UUID]
	MeterDeviceConfigs crudStore[store.MeterDeviceConfig, uuid.UUID]
	MeterDeviceTypes   crudStore[store.MeterDeviceType, uuid.UUID]
	MeterSystemEvents  crudStore[store.MeterSystemEvent, int64]
	SecurityKeys       crudStore[store.SecurityKeys, uuid.UUID]
	AmrTaskGroups      crudStore[store.AmrTaskGroup, uuid.UUID]
	AmrTasks           crudStore[store.AmrTask, uuid.UUID]
	MeterDevices       crudStore[store.MeterDevice, uuid.UUID]
	StagedReadings     crudStore[store.StagedReading, int64]
}

// StoreTables returns the Tables of amrd's database.
func StoreTables(st *store.Store) Tables {
	return Tables{
		Organizations: st.Organizations(), Memberships: st.Memberships(), Users: st.Users(),
		SimCards: st.SimCards(), NetworkInterfaces: st.NetworkInterfaces(), MeterReadingSeries: st.MeterReadingSeries(),
		MeterDeviceConfigs: st.MeterDeviceConfigs(), MeterDeviceTypes: st.MeterDeviceTypes(),
		MeterSystemEvents: st.MeterSystemEvents(), SecurityKeys: st.SecurityKeys(), AmrTaskGroups: st.AmrTaskGroups(),
		AmrTasks: st.AmrTasks(), MeterDevices: st.MeterDevices(), StagedReadings: st.StagedReadings(),
	}
}

// Config holds the API's settings. DefaultConfig holds the defaults; New gives a number
// or duration left at zero its default. A bool is taken as given (AllowTokenAuth's zero
// is off): start from DefaultConfig to get its default.
type Config struct {
	// JWTKey signs and checks JWTs (HS256): JWT_SIGNING_KEY, else SECRET_KEY.
	JWTKey []byte
	// JWTKeyFallbacks still check JWTs, never sign them: SECRET_KEY_FALLBACKS when JWTKey
	// is SECRET_KEY, so that JWTs issued before a rotation stay valid until they expire.
	JWTKeyFallbacks [][]byte
	// JWTTTL is JWT_EXPIRATION_TIME_SECONDS (default 1200 s).
	JWTTTL time.Duration
	// AllowTokenAuth is ALLOW_TOKEN_AUTH (default true).
	AllowTokenAuth bool
	// CORSWhitelist (CORS_WHITELIST) lists the origins allowed to call from a browser;
	// CORSAllowAll (CORS_ALLOW_ALL) allows any.
	CORSWhitelist []string
	CORSAllowAll  bool
	// BodyLimit is the largest request body in bytes (default 10 MiB).
	BodyLimit int
	// RequestTimeout is each request's deadline for database work (default 30 s).
	RequestTimeout time.Duration
	// AllowedHosts (ALLOWED_HOSTS, Django's name and rules) lists the host names the API
	// answers to: "example.org", ".example.org" for it and its subdomains, "*" for any.
	// Empty: any well-formed Host. The host is what the absolute links of lists are made
	// of (next, previous).
	AllowedHosts []string
	// UseXForwardedHost (USE_X_FORWARDED_HOST, Django's) takes the host of links from a
	// proxy's X-Forwarded-Host instead of Host. Off by default: a client can send any
	// header, and only a proxy that sets (not forwards) it makes it trustworthy.
	UseXForwardedHost bool
	// Metrics serves /metrics when set (a promhttp handler of amrd's registry).
	Metrics http.Handler
	// MaxReadingsPerRequest bounds the items of one new-meter-readings request
	// (AMRD_INGEST_MAX_ITEMS, default 10,000: about 1.5 MB of JSON).
	MaxReadingsPerRequest int
	// RunMaxAttempts bounds the claims of an invoked AMR task run (default
	// store.DefaultRunMaxAttempts, 3). Only a claim whose lease expired unreported is
	// retried: a run its executor reports failed is final, whatever attempts remain.
	RunMaxAttempts int
	// Now is the clock of run times, leases, JWTs and the login throttle's window: serve
	// passes the database's (store.Clock), so that replicas agree on them; tests set
	// their own. nil means time.Now.
	Now func() time.Time
}

// DefaultConfig is the API's configuration as documented on each field (no keys), and
// amrd serve's unless the environment says otherwise.
func DefaultConfig() Config {
	return Config{
		JWTTTL:                1200 * time.Second,
		AllowTokenAuth:        true,
		BodyLimit:             10 << 20,
		RequestTimeout:        30 * time.Second,
		MaxReadingsPerRequest: 10_000,
		RunMaxAttempts:        store.DefaultRunMaxAttempts,
	}
}

func (c Config) now() time.Time {
	if c.Now != nil {
		return c.Now()
	}
	return time.Now()
}

// Server is the HTTP API.
type Server struct {
	cfg       Config
	st        Store
	tables    Tables
	log       *slog.Logger
	app       *fiber.App
	throttle  *throttle
	passwords *passwordCache
	tokens    *tokenCache
	metrics   *httpMetrics
	ingest    Ingester // nil: reading ingestion is off
	// routeNames maps the path of every registered route (middleware and endpoint) to
	// its label: the route label of the metrics is looked up here, so that it is always
	// a string of amrd's own and never one that points into a request buffer.
	routeNames map[string]routeName
}

// New builds the API. ing may be nil when readings are not taken in (tests of other routes).
func New(cfg Config, st Store, tables Tables, ing Ingester, log *slog.Logger, reg prometheus.Registerer) (*Server, error) {
	def := DefaultConfig()
	if cfg.JWTTTL <= 0 {
		cfg.JWTTTL = def.JWTTTL
	}
	if cfg.BodyLimit <= 0 {
		cfg.BodyLimit = def.BodyLimit
	}
	if cfg.MaxReadingsPerRequest <= 0 {
		cfg.MaxReadingsPerRequest = def.MaxReadingsPerRequest
	}
	if cfg.RunMaxAttempts <= 0 {
		cfg.RunMaxAttempts = def.RunMaxAttempts
	}
	if cfg.RequestTimeout <= 0 {
		cfg.RequestTimeout = def.RequestTimeout
	}
	m, err := newHTTPMetrics(reg)
	if err != nil {
		return nil, err
	}
	// The caches' lifetimes are durations on this process's monotonic clock; the
	// throttle's window is a time of the database's clock (Config.Now), which every
	// replica shares.
	s := &Server{cfg: cfg, st: st, tables: tables, log: log.With("component", "api"), throttle: newThrottle(st, cfg.now),
		passwords: &passwordCache{ok: map[[32]byte]time.Time{}, now: time.Now}, metrics: m, ingest: ing,
		tokens: &tokenCache{m: map[[32]byte]tokenEntry{}, now: time.Now}}
	s.app = fiber.New(fiber.Config{
		AppName:      "amrd",
		ErrorHandler: s.errorHandler,
		// fasthttp refuses a body over its limit before reading it. Up to 1 MiB over
		// what amrd takes, it reads the body and amrd answers 413 itself (limitBody) on a
		// connection that stays usable; beyond that, malformed answers 413 and closes.
		BodyLimit: cfg.BodyLimit + 1<<20,
		// A body declared multipart/form-data is not parsed ahead of the handler
		// (fasthttp's default), which answered a malformed one 400 with Go's multipart
		// error: amrd takes JSON only, and the handler answers 415.
		DisablePreParseMultipartForm: true,
		DisableStartupMessage:        true,
		StrictRouting:                false, // every route answers with or without a trailing slash
		CaseSensitive:                true,
		ReadTimeout:                  60 * time.Second,
		WriteTimeout:                 60 * time.Second,
		IdleTimeout:                  120 * time.Second,
	})
	// fasthttp answers what it cannot parse itself, before any handler: with amrd's own
	// short bodies (malformed), and with errors that do not quote the request.
	s.app.Server().ErrorHandler = s.malformed
	s.app.Server().SecureErrorLogMessage = true
	// Fiber answers a method it does not know with a text/plain 400 before any
	// middleware; amrd answers it as DRF does (405), in JSON, and counts it.
	route := s.app.Server().Handler
	s.app.Server().Handler = func(fctx *fasthttp.RequestCtx) {
		switch string(fctx.Method()) {
		case fiber.MethodGet, fiber.MethodHead, fiber.MethodPost, fiber.MethodPut, fiber.MethodPatch,
			fiber.MethodDelete, fiber.MethodOptions, fiber.MethodConnect, fiber.MethodTrace:
			route(fctx)
			return
		}
		fctx.SetStatusCode(fiber.StatusMethodNotAllowed)
		fctx.SetContentType(fiber.MIMEApplicationJSON)
		fctx.SetBodyString(`{"detail":"Method not allowed."}`)
		s.metrics.requests.WithLabelValues("OTHER", "unmatched", "405").Inc()
	}
	s.app.Use(s.observe)
	// A panic is a bug: answer it as any internal error (500, generic text, logged with
	// its stack) instead of dropping the connection.
	s.app.Use(recover.New(recover.Config{EnableStackTrace: true, StackTraceHandler: func(c *fiber.Ctx, e any) {
		s.log.Error("panic in a handler", "method", c.Method(), "path", c.Path(), "panic", fmt.Sprint(e), "stack", string(debug.Stack()))
	}}))
	s.app.Use(s.limitBody)
	s.app.Use(cors.New(s.corsConfig()))
	s.routes()
	s.routeNames = map[string]routeName{}
	for _, r := range s.app.GetRoutes() {
		s.routeNames[r.Path] = routeName{label: r.Path}
	}
	for _, r := range s.app.GetRoutes(true) { // endpoints only
		s.routeNames[r.Path] = routeName{label: r.Path, endpoint: true}
	}
	return s, nil
}

// App returns the Fiber app (for tests with app.Test).
func (s *Server) App() *fiber.App { return s.app }

// Serve answers requests on the listener until Shutdown.
func (s *Server) Serve(ln net.Listener) error { return s.app.Listener(ln) }

// Shutdown stops taking connections and waits for requests in flight, until ctx ends.
func (s *Server) Shutdown(ctx context.Context) error { return s.app.ShutdownWithContext(ctx) }

func (s *Server) corsConfig() cors.Config {
	cfg := cors.Config{
		AllowMethods:  "GET,POST,PUT,PATCH,DELETE,OPTIONS",
		AllowHeaders:  "Authorization,Content-Type,Accept,Origin",
		ExposeHeaders: "Retry-After,WWW-Authenticate",
		MaxAge:        86400,
	}
	switch {
	case s.cfg.CORSAllowAll:
		cfg.AllowOrigins = "*"
	case len(s.cfg.CORSWhitelist) > 0:
		cfg.AllowOrigins = strings.Join(s.cfg.CORSWhitelist, ",")
	default:
		// No origin allowed: browsers get no CORS headers; other clients are unaffected.
		cfg.AllowOriginsFunc = func(string) bool { return false }
	}
	return cfg
}

// observe is the first middleware: it gives the request a deadline for database work,
// then records metrics and a log line once the handler has answered.
func (s *Server) observe(c *fiber.Ctx) error {
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.RequestTimeout)
	defer cancel()
	c.SetUserContext(ctx)
	err := c.Next()
	if err != nil {
		if herr := s.app.ErrorHandler(c, err); herr != nil {
			c.Status(fiber.StatusInternalServerError)
		}
	}
	status := c.Response().StatusCode()
	route := s.routeLabel(c, status)
	method := methodLabel(c.Method())
	dur := time.Since(start)
	s.metrics.requests.WithLabelValues(method, route, strconv.Itoa(status)).Inc()
	s.metrics.latency.WithLabelValues(method, route).Observe(dur.Seconds())
	// Successful requests log at debug: at ingest rates (thousands a second) an info
	// line each would cost more than the request. Client errors are info, server errors
	// error.
	lvl := slog.LevelDebug
	switch {
	case status >= 500:
		lvl = slog.LevelError
	case status >= 400:
		lvl = slog.LevelInfo
	}
	// Checked first: the arguments alone (the client address parsed into a string, the
	// values boxed) cost more than the rest of this function.
	if s.log.Enabled(ctx, lvl) {
		s.log.Log(ctx, lvl, "request", "method", c.Method(), "path", c.Path(), "route", route,
			"status", status, "duration_ms", float64(dur.Microseconds())/1000, "remote", c.IP())
	}
	return nil
}

// methodLabel is the method as a metrics label: one of amrd's constants. Fiber's
// c.Method() points into fasthttp's request buffer, which the next request on the
// connection overwrites; a label keeps its string for the life of the process, so a
// method used as is became "GETETE" or "POS" later (and an unknown method would make a
// series per value sent).
func methodLabel(m string) string {
	for _, k := range labelMethods {
		if m == k {
			return k
		}
	}
	return "OTHER"
}

var labelMethods = []string{fiber.MethodGet, fiber.MethodHead, fiber.MethodPost, fiber.MethodPut,
	fiber.MethodPatch, fiber.MethodDelete, fiber.MethodOptions}

type routeName struct {
	label    string
	endpoint bool // a handler's route, not a middleware's ("/", "/v1")
}

// routeLabel is the route as a metrics label: the pattern of the route that answered
// (amrd's own string, see routeNames): an endpoint's, or the middleware's that answered
// before one was reached ("/v1" for a 401), or "unmatched" for a request that no
// endpoint took (a 404 with only middleware matched).
func (s *Server) routeLabel(c *fiber.Ctx, status int) string {
	r, ok := s.routeNames[c.Route().Path]
	if !ok || !r.endpoint && status == fiber.StatusNotFound {
		return "unmatched"
	}
	return r.label
}

// limitBody answers 413 for a body larger than BodyLimit.
func (s *Server) limitBody(c *fiber.Ctx) error {
	if len(c.Request().Body()) > s.cfg.BodyLimit {
		return fiber.ErrRequestEntityTooLarge
	}
	return c.Next()
}

// malformed is fasthttp's ErrorHandler: it answers a request that could not be read (a
// bad request line, header, Content-Length or chunk size, headers over the read buffer,
// a body over the limit, a read timeout) before any handler runs. The answer is one of
// amrd's short bodies and never quotes the request (Fiber's own handler made the parse
// error's text, request bytes included, the detail). fasthttp closes the connection
// after it.
func (s *Server) malformed(fctx *fasthttp.RequestCtx, err error) {
	status, detail := fiber.StatusBadRequest, "Malformed request."
	var small *fasthttp.ErrSmallBuffer
	var ne interface{ Timeout() bool }
	switch {
	case errors.As(err, &small):
		status, detail = fiber.StatusRequestHeaderFieldsTooLarge, "Request header fields too large."
	case errors.Is(err, fasthttp.ErrBodyTooLarge):
		status, detail = fiber.StatusRequestEntityTooLarge, "Request body too large."
	case errors.As(err, &ne) && ne.Timeout():
		status, detail = fiber.StatusRequestTimeout, "Request timed out."
	}
	fctx.Response.Reset()
	fctx.SetStatusCode(status)
	fctx.SetContentType(fiber.MIMEApplicationJSON)
	fctx.SetBodyString(`{"detail":"` + detail + `"}`)
	s.metrics.requests.WithLabelValues(methodLabel(string(fctx.Method())), "malformed", strconv.Itoa(status)).Inc()
	// Without the error's text: some of fasthttp's parse errors quote the request line
	// or a header, which may hold a credential.
	if s.log.Enabled(context.Background(), slog.LevelInfo) {
		s.log.Info("malformed request", "status", status, "remote", fctx.RemoteIP().String())
	}
	if status != fiber.StatusRequestTimeout { // a client that timed out sends nothing more
		s.answerBeforeClose(fctx)
	}
}

// Bounds of what answerBeforeClose reads and discards: 10 s covers 64 MiB at 55 Mbit/s;
// a client that sends more, or more slowly, sees the connection reset.
const (
	drainBytes = 64 << 20
	drainTime  = 10 * time.Second
)

// answerBeforeClose makes malformed's answer readable. fasthttp stops reading at what it
// refuses (a body over its limit is refused unread, a request line over the read buffer
// halfway) and closes the connection; closing a socket with unread data makes the kernel
// send a reset, which discards the answer at the client before it is read (a client that
// writes the whole body before reading would see "connection reset" instead of the 413).
// So the answer is written here, the sending side is shut (the client reads the answer,
// then end of stream), and the rest of the request is read and discarded until the client
// closes, within drainBytes and drainTime. fasthttp then writes its copy of the answer to
// the shut side, which fails harmlessly.
func (s *Server) answerBeforeClose(fctx *fasthttp.RequestCtx) {
	conn, ok := fctx.Conn().(interface {
		net.Conn
		CloseWrite() error
	})
	if !ok {
		return // not TCP: fasthttp answers and closes as usual
	}
	fctx.Response.SetConnectionClose()
	_ = conn.SetDeadline(time.Now().Add(drainTime))
	if _, err := fctx.Response.WriteTo(conn); err != nil {
		return
	}
	if conn.CloseWrite() != nil {
		return
	}
	_, _ = io.CopyN(io.Discard, conn, drainBytes)
}

type httpMetrics struct {
	requests *prometheus.CounterVec
	latency  *prometheus.HistogramVec
}

func newHTTPMetrics(reg prometheus.Registerer) (*httpMetrics, error) {
	m := &httpMetrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "amrd_http_requests_total", Help: "HTTP requests answered, by method, route and status.",
		}, []string{"method", "route", "status"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "amrd_http_request_duration_seconds", Help: "HTTP request latency, by method and route.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"method", "route"}),
	}
	for _, col := range []prometheus.Collector{m.requests, m.latency} {
		if err := reg.Register(col); err != nil {
			return nil, err
		}
	}
	return m, nil
}
