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

// Config sizes the pipeline.
type Config struct {
	// QueueReadings bounds readings accepted but not yet committed. Default 100,000:
	// about 25 MB at ~250 bytes a queued reading, a tenth of the 256 MB memory budget,
	// and about half a second of COPY at the 0.2 M rows/s a hypertable takes here.
	QueueReadings int
	// BatchReadings flushes a batch at this many readings. Default 10,000: COPY
	// throughput flattens out from a few thousand rows a transaction.
	BatchReadings int
	// FlushEvery flushes a smaller batch this long after its first reading. Default 3 ms,
	// measured (make bench, 100 single-reading requests in flight): 1 ms makes batches too
	// small to share commits, 10 ms makes every request wait the whole window; 3 ms gave
	// the most readings/s for single readings without slowing 1,000-reading batches.
	FlushEvery time.Duration
	// Flushers run batches concurrently (one connection each), so that one batch is
	// resolved and encoded while another commits. Default 2, one per core here.
	Flushers int
	// EnqueueWait is how long a request waits for room in a full queue before
	// ErrOverloaded. Default 2 s.
	EnqueueWait time.Duration
	// DefaultTimeZone reads timestamps without offset for devices without a config and
	// for staged readings (DEFAULT_METER_TIMEZONE). Default UTC.
	DefaultTimeZone *time.Location
	// Retries of a batch whose database was unavailable, with doubling backoff from
	// 100 ms. Default 3 (0.1 + 0.2 + 0.4 s).
	Retries int
}

func (c *Config) defaults() {
	if c.QueueReadings <= 0 {
		c.QueueReadings = 100_000
	}
	if c.BatchReadings <= 0 {
		c.BatchReadings = 10_000
	}
	if c.FlushEvery < 0 {
		c.FlushEvery = 0
	}
	if c.Flushers <= 0 {
		c.Flushers = 2
	}
	if c.EnqueueWait <= 0 {
		c.EnqueueWait = 2 * time.Second
	}
	if c.DefaultTimeZone == nil {
		c.DefaultTimeZone = time.UTC
	}
	if c.Retries <= 0 {
		c.Retries = 3
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
	scope    store.Scope // whose devices the submitter may write; staging needs all
	readings []Reading
	index    []int // each reading's position in the request
	report   Report
	err      error
	done     chan struct{}
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
		jobs:  make(chan *job, 4096),
		cache: newNameCache(),
	}, nil
}

// Submit queues readings (already decoded; index gives each one's position in the
// request) and waits until they are committed, or rejected. The report's Rejected holds
// only the readings that validation or conflicts turned away; the caller adds decoding
// rejections. It fails with ErrOverloaded when no room frees up within EnqueueWait,
// ErrClosed during shutdown, store.ErrUnavailable when the database stays down, or the
// context's error; in each case nothing was acknowledged.
//
// scope limits the devices the submitter may write readings for: a device outside it is
// rejected exactly as an unknown one, and only a submitter with every organization in
// scope (staff) may stage readings for devices that do not exist yet, since staged
// readings belong to no organization.
func (p *Pipeline) Submit(ctx context.Context, scope store.Scope, readings []Reading, index []int) (Report, error) {
	if len(readings) == 0 {
		return Report{Rejected: []ItemError{}}, nil
	}
	n := int64(len(readings))
	if n > int64(p.cfg.QueueReadings) {
		return Report{}, fmt.Errorf("ingest: %d readings exceed the queue of %d: %w", n, p.cfg.QueueReadings, ErrOverloaded)
	}
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
	p.mu.RLock()
	if p.closed {
		p.mu.RUnlock()
		p.room.Release(n)
		return Report{}, ErrClosed
	}
	j := &job{scope: scope, readings: readings, index: index, done: make(chan struct{})}
	p.m.queued.Add(float64(n))
	p.jobs <- j
	p.mu.RUnlock()
	select {
	case <-j.done:
		return j.report, j.err
	case <-ctx.Done():
		// The batch may still commit; the caller was not told so, and a re-send is
		// absorbed as duplicates.
		return Report{}, ctx.Err()
	}
}

// Run flushes batches until ctx ends, then stops intake, flushes everything accepted and
// returns.
func (p *Pipeline) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	for i := 0; i < p.cfg.Flushers; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p.flusher()
		}()
	}
	<-ctx.Done()
	p.mu.Lock()
	p.closed = true
	close(p.jobs) // no Submit sends after closed is set under the lock
	p.mu.Unlock()
	wg.Wait()
	return nil
}

// flusher takes jobs until the channel closes. A free flusher takes the first job that
// arrives and everything queued behind it, up to BatchReadings; with FlushEvery > 0 it
// then also waits that long after the first for more. Readings accumulate only while
// every flusher is busy committing, so batches grow with the load by themselves, as in
// PostgreSQL's own group commit, and a lone request waits for one commit, not a window.
func (p *Pipeline) flusher() {
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	for {
		first, ok := <-p.jobs
		if !ok {
			return
		}
		batch := []*job{first}
		n := len(first.readings)
	queued:
		for n < p.cfg.BatchReadings {
			select {
			case j, ok := <-p.jobs:
				if !ok {
					break queued
				}
				batch = append(batch, j)
				n += len(j.readings)
			default:
				break queued
			}
		}
		if p.cfg.FlushEvery > 0 && n < p.cfg.BatchReadings {
			timer.Reset(p.cfg.FlushEvery)
		collect:
			for n < p.cfg.BatchReadings {
				select {
				case j, ok := <-p.jobs:
					if !ok {
						break collect
					}
					batch = append(batch, j)
					n += len(j.readings)
				case <-timer.C:
					break collect
				}
			}
			if !timer.Stop() {
				select {
				case <-timer.C:
				default:
				}
			}
		}
		p.flush(batch, n)
	}
}

// flush writes one batch and answers its jobs. Database work gets its own deadline: a
// batch is finished (or failed) even when its requests gave up waiting, so that what
// was accepted is never half-written.
func (p *Pipeline) flush(batch []*job, n int) {
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
			p.m.failed.Add(float64(len(j.readings)))
			p.log.Error("readings not written", "readings", len(j.readings), "err", j.err)
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
