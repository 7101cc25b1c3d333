// Package ingest is amrd's batched write pipeline for meter readings: a bounded intake
// queue, name resolution through a cache that the database's catalog version keeps
// correct, validation against each device's configured series, the CT/VT factor,
// staging of readings for unknown devices, and group commit: requests that arrive
// together share one transaction, and each is answered only after it committed.
package ingest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/semaphore"

	"github.com/amrd/amrd/store"
)

// Writer is what the pipeline needs of the database; *store.Store satisfies it.
type Writer interface {
	CatalogVersion(ctx context.Context) (int64, error)
	DeviceRefs(ctx context.Context, names []string) (map[string]store.DeviceRef, error)
	DeviceRefsByKey(ctx context.Context, keys []int32) (map[int32]store.DeviceRef, error)
	TypeConfigs(ctx context.Context, typeIDs []uuid.UUID) (map[uuid.UUID]store.TypeConfig, error)
	// WriteReadings writes a batch whose names were resolved at catalog version catalog
	// (store.AnyCatalog: unchecked); a *store.StaleCatalogError means nothing was written.
	WriteReadings(ctx context.Context, catalog int64, rows []store.ReadingRow, staged []store.StagedRow) ([]store.Outcome, error)
}

// Errors a submitter may get. Both mean nothing of the request was acknowledged; a
// re-send is safe (readings are idempotent).
var (
	ErrOverloaded = errors.New("ingest: the intake queue is full")
	ErrClosed     = errors.New("ingest: the pipeline is shutting down")
)

// Config sizes the pipeline. DefaultConfig holds the defaults; New gives a field left at
// zero its default, except the two whose zero means off (FlushEvery, WarmDevices).
type Config struct {
	// QueueReadings bounds readings accepted but not yet committed. Default 100,000:
	// about 25 MB at ~250 bytes a queued reading, a tenth of the 256 MB memory budget,
	// and about half a second of COPY at the ~0.2 M rows/s a hypertable takes (make
	// bench case a).
	QueueReadings int
	// BatchReadings flushes a batch at this many readings. Default 10,000: COPY
	// throughput flattens out from a few thousand rows a transaction.
	BatchReadings int
	// FlushEvery, when above 0, makes a batch that is not full wait this long after its
	// first reading for more. Default 0: a batch starts as soon as a flusher is free,
	// and readings that arrive meanwhile wait for the next (group commit, see dispatch).
	// A window only adds latency: readings gather while the previous batch commits, so
	// batches are as large without one (make bench case c; docs/decisions.md, "Group
	// commit without a window").
	FlushEvery time.Duration
	// Flushers run batches concurrently (one connection each), so that one batch is
	// resolved and encoded while another commits; a second batch starts only when
	// ParallelReadings wait. Default 2: one batch is resolved and encoded while the
	// other commits.
	Flushers int
	// ParallelReadings: a batch starts while another is being written only when this
	// many readings are waiting. Default 4,000: a batch costs about 3 ms besides its rows
	// (six round trips of a COPY transaction and a commit's fsync) and its rows about
	// 5 µs each in PostgreSQL, so from 4,000 rows (20 ms) the fixed cost is near a tenth
	// and a second connection pays; below it, readings wait for the next batch of the
	// flusher in progress. Much lower makes batches too small to pay their fixed cost;
	// much higher leaves the second connection idle under 1,000-reading requests (make
	// bench case b).
	ParallelReadings int
	// EnqueueWait is how long a request waits for room in a full queue before
	// ErrOverloaded. Default 2 s.
	EnqueueWait time.Duration
	// DefaultTimeZone reads timestamps without offset for devices without a config and
	// for staged readings (DEFAULT_METER_TIMEZONE). Default UTC.
	DefaultTimeZone *time.Location
	// Retries of a batch whose database was unavailable, with doubling backoff from
	// 100 ms. Default 3 (0.1 + 0.2 + 0.4 s).
	Retries int
	// WarmDevices: when the Writer is also a DevicePager, this many devices (in key
	// order) are loaded into the name cache at start and after each catalog change, so
	// that their readings find their names cached. 0: none, names are looked up as
	// readings arrive. A cached device takes about 200 bytes: the default, 100,000, holds
	// about 20 MB.
	WarmDevices int
	warmPage    int // devices a query of the warm-up reads (default warmPage; tests set less)
}

// DefaultConfig is the pipeline's configuration as documented on each field, and amrd
// serve's unless the environment says otherwise (AMRD_INGEST_*).
func DefaultConfig() Config {
	return Config{
		QueueReadings:    100_000,
		BatchReadings:    10_000,
		Flushers:         2,
		ParallelReadings: 4_000,
		EnqueueWait:      2 * time.Second,
		DefaultTimeZone:  time.UTC,
		Retries:          3,
		WarmDevices:      100_000,
	}
}

// defaults gives every field left at zero (or below) its DefaultConfig value, except
// FlushEvery and WarmDevices, whose zero means off and is kept.
func (c *Config) defaults() {
	d := DefaultConfig()
	if c.QueueReadings <= 0 {
		c.QueueReadings = d.QueueReadings
	}
	if c.BatchReadings <= 0 {
		c.BatchReadings = d.BatchReadings
	}
	if c.FlushEvery < 0 {
		c.FlushEvery = 0
	}
	if c.Flushers <= 0 {
		c.Flushers = d.Flushers
	}
	if c.ParallelReadings <= 0 {
		c.ParallelReadings = d.ParallelReadings
	}
	if c.EnqueueWait <= 0 {
		c.EnqueueWait = d.EnqueueWait
	}
	if c.DefaultTimeZone == nil {
		c.DefaultTimeZone = d.DefaultTimeZone
	}
	if c.Retries <= 0 {
		c.Retries = d.Retries
	}
	if c.warmPage <= 0 {
		c.warmPage = warmPage
	}
}

// Report is what became of one request's readings.
type Report struct {
	Accepted   int         `json:"accepted"`
	Staged     int         `json:"staged"`
	Duplicates int         `json:"duplicates"`
	Conflicts  int         `json:"conflicts"`
	Rejected   []ItemError `json:"rejected"`
}

// job is one request waiting for its batch to commit.
type job struct {
	scope  store.Scope // whose devices the submitter may write; staging needs all
	req    *Request
	report Report // Rejected: the pipeline's rejections only, until Submit merges
	err    error
	done   chan struct{}
}

// Pipeline is the write pipeline. Submit hands it readings; Run flushes them.
type Pipeline struct {
	cfg   Config
	w     Writer
	log   *slog.Logger
	m     *metrics
	room  *semaphore.Weighted
	jobs  chan *job
	cache *nameCache
	// warmKick wakes the cache warm-up after a catalog change emptied the cache.
	warmKick chan struct{}

	mu     sync.RWMutex
	closed bool
}

// New builds a pipeline; call Run to start it.
func New(cfg Config, w Writer, log *slog.Logger, reg prometheus.Registerer) (*Pipeline, error) {
	cfg.defaults()
	m, err := newMetrics(reg, cfg)
	if err != nil {
		return nil, err
	}
	return &Pipeline{
		cfg: cfg, w: w, log: log.With("component", "ingest"), m: m,
		room: semaphore.NewWeighted(int64(cfg.QueueReadings)),
		// The channel holds job pointers; its size only bounds how many requests queue
		// up, the semaphore bounds readings.
		jobs:     make(chan *job, 4096),
		cache:    newNameCache(),
		warmKick: make(chan struct{}, 1),
	}, nil
}

// Submit queues a request's readings and waits until they are committed, or rejected.
// The report's Rejected lists every item of the request that was not taken, in position
// order: those the request refused already (decoding) and those that validation or
// conflicts turned away. It fails with ErrOverloaded when no room frees up within
// EnqueueWait, ErrClosed during shutdown, store.ErrUnavailable when the database stays
// down, or the context's error; in each case nothing was acknowledged. The request is
// the pipeline's until Submit returns (and, when ctx ends first, until its batch is
// written): do not change it.
//
// scope limits the devices the submitter may write readings for: a device outside it is
// rejected exactly as an unknown one, and only a submitter with every organization in
// scope (staff) may stage readings for devices that do not exist yet, since staged
// readings belong to no organization.
func (p *Pipeline) Submit(ctx context.Context, scope store.Scope, req *Request) (Report, error) {
	if len(req.readings) == 0 {
		return Report{Rejected: req.Merge(nil)}, nil
	}
	n := int64(len(req.readings))
	if n > int64(p.cfg.QueueReadings) {
		return Report{}, fmt.Errorf("ingest: %d readings exceed the queue of %d: %w", n, p.cfg.QueueReadings, ErrOverloaded)
	}
	if !p.room.TryAcquire(n) { // the usual case has room: no timer for it
		wctx, cancel := context.WithTimeout(ctx, p.cfg.EnqueueWait)
		err := p.room.Acquire(wctx, n)
		cancel()
		if err != nil {
			if ctx.Err() != nil {
				return Report{}, ctx.Err()
			}
			p.m.overloaded.Inc()
			return Report{}, ErrOverloaded
		}
	}
	p.mu.RLock()
	if p.closed {
		p.mu.RUnlock()
		p.room.Release(n)
		return Report{}, ErrClosed
	}
	j := &job{scope: scope, req: req, done: make(chan struct{})}
	p.m.queued.Add(float64(n))
	p.jobs <- j
	p.mu.RUnlock()
	select {
	case <-j.done:
		if j.err != nil {
			return Report{}, j.err
		}
		rep := j.report
		rep.Rejected = req.Merge(rep.Rejected)
		return rep, nil
	case <-ctx.Done():
		// The batch may still commit; the caller was not told so, and a re-send is
		// absorbed as duplicates.
		return Report{}, ctx.Err()
	}
}

// Run flushes batches until ctx ends, then stops intake, flushes everything accepted and
// returns.
func (p *Pipeline) Run(ctx context.Context) error {
	batches := make(chan []*job)
	done := make(chan struct{}, p.cfg.Flushers)
	var wg sync.WaitGroup
	for i := 0; i < p.cfg.Flushers; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for batch := range batches {
				p.flush(batch)
				done <- struct{}{}
			}
		}()
	}
	dispatched := make(chan struct{})
	go func() {
		p.dispatch(batches, done)
		close(dispatched)
	}()
	warmed := make(chan struct{})
	go func() {
		p.warmLoop(ctx)
		close(warmed)
	}()
	<-ctx.Done()
	<-warmed
	p.mu.Lock()
	p.closed = true
	close(p.jobs) // no Submit sends after closed is set under the lock
	p.mu.Unlock()
	<-dispatched
	close(batches)
	wg.Wait()
	return nil
}

// dispatch cuts the queued jobs into batches and hands them to the flushers, until the
// jobs channel closes and everything taken is flushed. This is group commit, as
// PostgreSQL's own: a batch starts as soon as a flusher is free and takes everything
// queued, so a lone request waits for one commit, not for a window, and while a batch
// commits the next one grows with the load by itself.
//
// A second batch starts while one is being written only when ParallelReadings readings
// are waiting: large batches then use several connections at once, and single readings
// queue up behind the commit in progress and share the next one, instead of each
// flusher committing a few at a time (more commits, more database CPU per reading).
//
// With FlushEvery > 0 a batch also waits that long after its first job for more, when
// it is not full.
func (p *Pipeline) dispatch(batches chan<- []*job, done <-chan struct{}) {
	var (
		queued  []*job
		n       int // readings in queued
		busy    int // batches being flushed
		open    = true
		window  *time.Timer
		waiting bool // the window of the oldest queued job is still open
	)
	for {
		for len(queued) > 0 && busy < p.cfg.Flushers && (!waiting || n >= p.cfg.BatchReadings || !open) &&
			(busy == 0 || n >= p.cfg.ParallelReadings || !open) {
			batch, m := queued, n
			if n > p.cfg.BatchReadings {
				// Whole jobs, at least one, up to BatchReadings readings.
				m = 0
				k := 0
				for k < len(queued) && (k == 0 || m+len(queued[k].req.readings) <= p.cfg.BatchReadings) {
					m += len(queued[k].req.readings)
					k++
				}
				batch = queued[:k:k]
				queued = slices.Clone(queued[k:])
			} else {
				queued = nil
			}
			n -= m
			busy++
			batches <- batch
			if waiting && len(queued) == 0 {
				window.Stop()
				waiting = false
			}
		}
		if !open && len(queued) == 0 && busy == 0 {
			return
		}
		var jobs <-chan *job
		if open {
			jobs = p.jobs
		}
		var expired <-chan time.Time
		if waiting {
			expired = window.C
		}
		select {
		case j, ok := <-jobs:
			if !ok {
				open = false
				continue
			}
			if len(queued) == 0 && p.cfg.FlushEvery > 0 {
				if window == nil {
					window = time.NewTimer(p.cfg.FlushEvery)
				} else {
					window.Reset(p.cfg.FlushEvery)
				}
				waiting = true
			}
			queued = append(queued, j)
			n += len(j.req.readings)
		case <-expired:
			waiting = false
		case <-done:
			busy--
		}
	}
}

// flush writes one batch and answers its jobs. Database work gets its own deadline: a
// batch is finished (or failed) even when its requests gave up waiting, so that what
// was accepted is never half-written.
func (p *Pipeline) flush(batch []*job) {
	n := 0
	for _, j := range batch {
		n += len(j.req.readings)
	}
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	err := p.retry(ctx, func() error { return p.write(ctx, batch) })
	if err != nil && !errors.Is(err, store.ErrUnavailable) && len(batch) > 1 {
		// Not an outage: find the job that breaks the batch instead of failing all.
		p.log.Warn("batch failed; writing its requests one by one", "requests", len(batch), "err", err)
		for _, j := range batch {
			j.err = p.retry(ctx, func() error { return p.write(ctx, []*job{j}) })
		}
		err = nil
	}
	p.m.flushSeconds.Observe(time.Since(start).Seconds())
	p.m.batchReadings.Observe(float64(n))
	for _, j := range batch {
		if err != nil {
			j.err = err
		}
		if j.err != nil {
			p.m.failed.Add(float64(len(j.req.readings)))
			p.log.Error("readings not written", "readings", len(j.req.readings), "err", j.err)
		}
		close(j.done)
	}
	p.room.Release(int64(n))
	p.m.queued.Sub(float64(n))
}

// retry runs fn again while the database is unavailable, a bounded number of times.
func (p *Pipeline) retry(ctx context.Context, fn func() error) error {
	backoff := 100 * time.Millisecond
	var err error
	for attempt := 0; ; attempt++ {
		err = fn()
		if err == nil || !errors.Is(err, store.ErrUnavailable) || attempt >= p.cfg.Retries {
			return err
		}
		p.m.retries.Inc()
		select {
		case <-time.After(backoff):
		case <-ctx.Done():
			return err
		}
		backoff *= 2
	}
}
