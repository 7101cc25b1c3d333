package ingest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/cockroachdb/apd/v3"
	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/amrd/amrd/store"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// fakeWriter is the database at the pipeline's interface: it keeps readings in a map and
// can be told to fail or block.
type fakeWriter struct {
	mu          sync.Mutex
	version     int64
	devices     map[string]store.DeviceInfo
	stored      map[[3]int64]string
	staged      []store.StagedRow
	batches     []int             // rows per WriteReadings call
	lookups     int               // DeviceRefs calls
	keyLookups  int               // DeviceRefsByKey calls
	typeLookups int               // TypeConfigs calls
	sharedType  map[string]string // device name -> type name, for devices sharing a type
	versions    int               // CatalogVersion calls
	stale       int               // writes refused for a stale catalog version
	failures    []error
	block       chan struct{} // when set, writes wait for it to close
	writing     int           // writes started (blocked ones included)

	stagedAs map[string]store.Outcome // device name -> outcome of its staged readings (default Inserted)
}

func (f *fakeWriter) CatalogVersion(context.Context) (int64, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.versions++
	return f.version, nil
}

// DeviceRefs gives each device a type of its own, named after it.
func (f *fakeWriter) DeviceRefs(_ context.Context, names []string) (map[string]store.DeviceRef, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.lookups++
	out := map[string]store.DeviceRef{}
	for _, n := range names {
		if d, ok := f.devices[n]; ok {
			out[n] = f.ref(n, d)
		}
	}
	return out, nil
}

func (f *fakeWriter) ref(name string, d store.DeviceInfo) store.DeviceRef {
	typ := fakeType(f.typeOf(name))
	return store.DeviceRef{Key: d.Key, ID: d.ID, OrganizationID: d.OrganizationID, TypeID: &typ, CTRatio: d.CTRatio, VTRatio: d.VTRatio}
}

// DeviceRefsByKey finds devices by key as DeviceRefs does by name.
func (f *fakeWriter) DeviceRefsByKey(_ context.Context, keys []int32) (map[int32]store.DeviceRef, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.keyLookups++
	out := map[int32]store.DeviceRef{}
	for n, d := range f.devices {
		if slices.Contains(keys, d.Key) {
			out[d.Key] = f.ref(n, d)
		}
	}
	return out, nil
}

func (f *fakeWriter) TypeConfigs(_ context.Context, ids []uuid.UUID) (map[uuid.UUID]store.TypeConfig, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.typeLookups++
	out := map[uuid.UUID]store.TypeConfig{}
	for n, d := range f.devices {
		if typ := fakeType(f.typeOf(n)); slices.Contains(ids, typ) {
			out[typ] = store.TypeConfig{HasConfig: d.HasConfig, TimeZone: d.TimeZone, Series: d.Series}
		}
	}
	return out, nil
}

func fakeType(name string) uuid.UUID { return uuid.NewSHA1(uuid.Nil, []byte(name)) }

// typeOf names a device's type: sharedType for those listed in it, else its own.
func (f *fakeWriter) typeOf(device string) string {
	if t, ok := f.sharedType[device]; ok {
		return t
	}
	return device
}

func (f *fakeWriter) WriteReadings(_ context.Context, catalog int64, rows []store.ReadingRow, staged []store.StagedRow) ([]store.Outcome, error) {
	f.mu.Lock()
	f.writing++
	f.mu.Unlock()
	if f.block != nil {
		<-f.block
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if catalog != store.AnyCatalog && catalog != f.version {
		f.stale++
		return nil, &store.StaleCatalogError{Version: f.version}
	}
	if len(f.failures) > 0 {
		err := f.failures[0]
		f.failures = f.failures[1:]
		if err != nil {
			return nil, err
		}
	}
	f.batches = append(f.batches, len(rows)+len(staged))
	out := make([]store.Outcome, len(rows), len(rows)+len(staged))
	for i, r := range rows {
		k := [3]int64{int64(r.DeviceKey), int64(r.SeriesKey), r.Time.UnixMicro()}
		v := r.Value.String() + "x" + time.Duration(r.Factor).String()
		switch old, ok := f.stored[k]; {
		case !ok:
			f.stored[k] = v
		case old == v:
			out[i] = store.Duplicate
		default:
			out[i] = store.Conflict
		}
	}
	for _, r := range staged {
		o := f.stagedAs[r.Device]
		if o == store.Inserted {
			f.staged = append(f.staged, r)
		}
		out = append(out, o)
	}
	return out, nil
}

func newFake() *fakeWriter {
	return &fakeWriter{version: 1, stored: map[[3]int64]string{}, devices: map[string]store.DeviceInfo{
		"m1": {Key: 1, HasConfig: true, TimeZone: "Europe/Stockholm", CTRatio: 100, VTRatio: 20, Series: map[string]store.SeriesInfo{
			"1.8.0": {Key: 10, CT: true}, "2.8.0": {Key: 11, CT: true, VT: true}, "raw": {Key: 12}}},
		"bare": {Key: 2, HasConfig: false},
	}}
}

func newPipeline(t *testing.T, w Writer, cfg Config) (*Pipeline, func()) {
	t.Helper()
	p, err := New(cfg, w, slog.New(slog.NewTextHandler(io.Discard, nil)), prometheus.NewRegistry())
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = p.Run(ctx); close(done) }()
	return p, func() { cancel(); <-done }
}

// request makes a request of readings, at positions 0, 1, ...
func request(rs ...Reading) *Request {
	var q Request
	for _, r := range rs {
		q.Add(r)
	}
	return &q
}

func reading(t *testing.T, dev, series, ts, value string) Reading {
	t.Helper()
	st, err := ParseStamp(ts)
	require.NoError(t, err)
	var d apd.Decimal
	_, _, err = d.SetString(value)
	require.NoError(t, err)
	return Reading{Device: dev, Series: series, Time: st, Value: d}
}

func TestValidationAndOutcomes(t *testing.T) {
	w := newFake()
	p, stop := newPipeline(t, w, Config{})
	defer stop()
	rs := []Reading{
		reading(t, "m1", "1.8.0", "2026-11-26T10:00:00Z", "1.5"),  // 0 accepted, CT only
		reading(t, "m1", "2.8.0", "2026-11-26T10:00:00Z", "2"),    // 1 accepted, CT x VT
		reading(t, "m1", "raw", "2026-11-26T10:00:00", "3"),       // 2 accepted, local time
		reading(t, "m1", "3.8.0", "2026-11-26T10:00:00Z", "4"),    // 3 series not allowed
		reading(t, "bare", "1.8.0", "2026-11-26T10:00:00Z", "5"),  // 4 device without config
		reading(t, "new", "1.8.0", "2026-11-26T10:00:00Z", "6"),   // 5 staged
		reading(t, "m1", "raw", "2026-03-29T02:30:00", "7"),       // 6 no such local time
		reading(t, "m1", "1.8.0", "2026-11-26T10:00:00Z", "1.50"), // 7 same key again, same value
		reading(t, "m1", "1.8.0", "2026-11-26T10:00:00Z", "9"),    // 8 same key again, other value
	}
	rep, err := p.Submit(context.Background(), store.AllOrgs, request(rs...))
	require.NoError(t, err)
	require.Equal(t, 3, rep.Accepted)
	require.Equal(t, 1, rep.Staged)
	require.Equal(t, 1, rep.Duplicates)
	require.Equal(t, 1, rep.Conflicts)
	got := map[int]string{}
	reasons := map[int]string{}
	for _, r := range rep.Rejected {
		for f := range r.Errors {
			got[r.Index] = f
		}
		reasons[r.Index] = r.Reason
	}
	require.Equal(t, map[int]string{3: "series_name", 4: "meter_device_name", 6: "timestamp", 8: "value"}, got)
	require.Equal(t, map[int]string{3: "series_not_allowed", 4: "no_config", 6: "local_time", 8: ReasonConflict}, reasons)

	w.mu.Lock()
	require.Equal(t, "1.5x100ns", w.stored[[3]int64{1, 10, time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC).UnixMicro()}])
	require.Equal(t, "2x2µs", w.stored[[3]int64{1, 11, time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC).UnixMicro()}], "factor 100 x 20")
	require.Contains(t, w.stored, [3]int64{1, 12, time.Date(2026, 11, 26, 9, 0, 0, 0, time.UTC).UnixMicro()}, "10:00 Stockholm is 09:00 UTC")
	require.Len(t, w.staged, 1)
	require.Equal(t, "new", w.staged[0].Device)
	w.mu.Unlock()

	// A re-send is absorbed.
	rep, err = p.Submit(context.Background(), store.AllOrgs, request(rs[:1]...))
	require.NoError(t, err)
	require.Equal(t, Report{Duplicates: 1, Rejected: []ItemError{}}, rep)
}

// TestStagedOutcomes: a reading staged already (a re-run import) counts as a duplicate,
// not as staged again, and another value staged for it as a conflict, reported.
func TestStagedOutcomes(t *testing.T) {
	w := newFake()
	w.stagedAs = map[string]store.Outcome{"again": store.Duplicate, "other": store.Conflict}
	p, stop := newPipeline(t, w, Config{})
	defer stop()
	rep, err := p.Submit(context.Background(), store.AllOrgs, request(
		reading(t, "new", "1.8.0", "2026-11-26T10:00:00Z", "1"),
		reading(t, "again", "1.8.0", "2026-11-26T10:00:00Z", "2"),
		reading(t, "other", "1.8.0", "2026-11-26T10:00:00Z", "3"),
		reading(t, "m1", "1.8.0", "2026-11-26T10:00:00Z", "4"),
	))
	require.NoError(t, err)
	require.Equal(t, 1, rep.Staged)
	require.Equal(t, 1, rep.Duplicates)
	require.Equal(t, 1, rep.Conflicts)
	require.Equal(t, 1, rep.Accepted)
	require.Len(t, rep.Rejected, 1)
	require.Equal(t, 2, rep.Rejected[0].Index)
	require.Equal(t, ReasonConflict, rep.Rejected[0].Reason)
	require.Contains(t, rep.Rejected[0].Errors["value"][0], "staged")
}

func TestNameCacheFollowsCatalogVersion(t *testing.T) {
	w := newFake()
	p, stop := newPipeline(t, w, Config{})
	defer stop()
	send := func() Report {
		rep, err := p.Submit(context.Background(), store.AllOrgs, request(reading(t, "m2", "1.8.0", "2026-11-26T10:00:00Z", "1")))
		require.NoError(t, err)
		return rep
	}
	require.Equal(t, 1, send().Staged)
	require.Equal(t, 1, send().Staged)
	w.mu.Lock()
	require.Equal(t, 1, w.lookups, "an unknown name is cached too")
	// The device is created: the catalog version moves.
	w.devices["m2"] = store.DeviceInfo{Key: 3, HasConfig: true, CTRatio: 1, VTRatio: 1, Series: map[string]store.SeriesInfo{"1.8.0": {Key: 10}}}
	w.version++
	w.mu.Unlock()
	require.Equal(t, 1, send().Accepted, "the write found the version stale: resolved again, not staged")
	w.mu.Lock()
	require.Equal(t, 2, w.lookups)
	require.Equal(t, 1, w.stale)
	require.Equal(t, 1, w.versions, "batches do not read the version: the write checks it")
	w.mu.Unlock()

	// A change that leaves the device alone resolves it again all the same; the cache
	// follows changes that come in while a batch is being written, one after another.
	w.mu.Lock()
	w.version += 2
	w.mu.Unlock()
	require.Equal(t, 1, send().Duplicates)
	w.mu.Lock()
	require.Equal(t, 3, w.lookups)
	require.Equal(t, 2, w.stale)
	require.Equal(t, 2, w.typeLookups, "the type is looked up again after a catalog change")
	w.mu.Unlock()
}

func TestDeviceTypesCachedApart(t *testing.T) {
	w := newFake()
	w.sharedType = map[string]string{}
	for i := range 3 {
		name := fmt.Sprintf("s%d", i)
		w.devices[name] = store.DeviceInfo{Key: int32(100 + i), HasConfig: true, CTRatio: 1, VTRatio: 1, Series: map[string]store.SeriesInfo{"1.8.0": {Key: 10}}}
		w.sharedType[name] = "shared"
	}
	p, stop := newPipeline(t, w, Config{})
	defer stop()
	for i := range 3 {
		rep, err := p.Submit(context.Background(), store.AllOrgs, request(reading(t, fmt.Sprintf("s%d", i), "1.8.0", "2026-11-26T10:00:00Z", "1")))
		require.NoError(t, err)
		require.Equal(t, 1, rep.Accepted)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	require.Equal(t, 3, w.lookups, "each new device is looked up")
	require.Equal(t, 1, w.typeLookups, "their type once")
}

func TestStaleCatalogBoundedAttempts(t *testing.T) {
	// Every device lookup moves the catalog on, as if changes streamed in: the batch is
	// resolved again a bounded number of times, the last write unchecked.
	w := newFake()
	p, stop := newPipeline(t, &movingCatalog{fakeWriter: w}, Config{})
	defer stop()
	rep, err := p.Submit(context.Background(), store.AllOrgs, request(reading(t, "m1", "raw", "2026-11-26T10:00:00Z", "1")))
	require.NoError(t, err)
	require.Equal(t, 1, rep.Accepted)
	w.mu.Lock()
	defer w.mu.Unlock()
	require.Equal(t, staleAttempts-1, w.stale)
	require.Len(t, w.batches, 1)
}

// movingCatalog bumps the catalog version at every lookup.
type movingCatalog struct{ *fakeWriter }

func (m *movingCatalog) DeviceRefs(ctx context.Context, names []string) (map[string]store.DeviceRef, error) {
	out, err := m.fakeWriter.DeviceRefs(ctx, names)
	m.mu.Lock()
	m.version++
	m.mu.Unlock()
	return out, err
}

func TestGroupCommitAndFlushDeadline(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newFake()
		p, stop := newPipeline(t, w, Config{BatchReadings: 100, FlushEvery: 50 * time.Millisecond, Flushers: 1})
		defer stop()
		var wg sync.WaitGroup
		start := time.Now()
		elapsed := make([]time.Duration, 10)
		for i := 0; i < 10; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				ts := time.Date(2026, 1, 1, 0, i, 0, 0, time.UTC).Format(time.RFC3339)
				_, err := p.Submit(context.Background(), store.AllOrgs, request(reading(t, "m1", "raw", ts, "1")))
				require.NoError(t, err)
				elapsed[i] = time.Since(start)
			}()
		}
		wg.Wait()
		for _, e := range elapsed {
			require.Equal(t, 50*time.Millisecond, e, "a small batch waits for the deadline, in fake time")
		}
		w.mu.Lock()
		require.Equal(t, []int{10}, w.batches, "ten requests shared one commit")
		w.mu.Unlock()

		// A full batch goes at once.
		start = time.Now()
		rs := make([]Reading, 100)
		for i := range rs {
			rs[i] = reading(t, "m1", "raw", time.Date(2026, 2, 1, 0, i, 0, 0, time.UTC).Format(time.RFC3339), "1")
		}
		rep, err := p.Submit(context.Background(), store.AllOrgs, request(rs...))
		require.NoError(t, err)
		require.Equal(t, 100, rep.Accepted)
		require.Zero(t, time.Since(start))
	})
}

func TestGroupCommitWithoutWindow(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newFake()
		w.block = make(chan struct{})
		p, stop := newPipeline(t, w, Config{Flushers: 2, ParallelReadings: 10, BatchReadings: 100})
		defer stop()
		submit := func(n, from int) <-chan error {
			res := make(chan error, 1)
			go func() {
				rs := make([]Reading, n)
				for i := range rs {
					rs[i] = reading(t, "m1", "raw", time.Date(2026, 1, 1, 0, from+i, 0, 0, time.UTC).Format(time.RFC3339), "1")
				}
				_, err := p.Submit(context.Background(), store.AllOrgs, request(rs...))
				res <- err
			}()
			return res
		}
		writing := func() int {
			w.mu.Lock()
			defer w.mu.Unlock()
			return w.writing
		}
		first := submit(1, 0)
		synctest.Wait()
		require.Equal(t, 1, writing(), "a lone reading is written at once, without a window")
		var singles []<-chan error
		for i := range 5 {
			singles = append(singles, submit(1, 10+i))
		}
		synctest.Wait()
		require.Equal(t, 1, writing(), "small requests wait behind the commit in progress, not on the free flusher")
		large := submit(10, 100)
		synctest.Wait()
		require.Equal(t, 2, writing(), "enough waiting readings start the second flusher")
		select {
		case <-first:
			t.Fatal("answered before its write committed")
		default:
		}
		close(w.block)
		for _, c := range append(singles, first, large) {
			require.NoError(t, <-c)
		}
		w.mu.Lock()
		defer w.mu.Unlock()
		require.ElementsMatch(t, []int{1, 15}, w.batches, "the five waiting singles shared the large request's batch")
	})
}

func TestOverloaded(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newFake()
		w.block = make(chan struct{})
		p, stop := newPipeline(t, w, Config{QueueReadings: 2, EnqueueWait: time.Second, Flushers: 1, FlushEvery: time.Millisecond})
		defer stop()
		results := make(chan error, 2)
		go func() {
			_, err := p.Submit(context.Background(), store.AllOrgs, request(reading(t, "m1", "raw", "2026-01-01T00:00:00Z", "1"), reading(t, "m1", "raw", "2026-01-01T00:15:00Z", "1")))
			results <- err
		}()
		synctest.Wait() // the first request holds the whole queue, its write blocked
		start := time.Now()
		_, err := p.Submit(context.Background(), store.AllOrgs, request(reading(t, "m1", "raw", "2026-01-01T00:30:00Z", "1")))
		require.ErrorIs(t, err, ErrOverloaded)
		require.Equal(t, time.Second, time.Since(start), "waited EnqueueWait for room")
		close(w.block)
		require.NoError(t, <-results)
	})
}

func TestRetriesWhileTheDatabaseIsDown(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newFake()
		w.failures = []error{store.ErrUnavailable, store.ErrUnavailable}
		p, stop := newPipeline(t, w, Config{FlushEvery: time.Millisecond})
		defer stop()
		rep, err := p.Submit(context.Background(), store.AllOrgs, request(reading(t, "m1", "raw", "2026-01-01T00:00:00Z", "1")))
		require.NoError(t, err)
		require.Equal(t, 1, rep.Accepted)

		w.mu.Lock()
		w.failures = []error{store.ErrUnavailable, store.ErrUnavailable, store.ErrUnavailable, store.ErrUnavailable}
		w.mu.Unlock()
		_, err = p.Submit(context.Background(), store.AllOrgs, request(reading(t, "m1", "raw", "2026-01-01T00:15:00Z", "1")))
		require.ErrorIs(t, err, store.ErrUnavailable, "bounded retries, then the error")
	})
}

func TestOneBadRequestDoesNotFailItsBatch(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newFake()
		w.failures = []error{errors.New("boom"), nil, errors.New("boom")}
		p, stop := newPipeline(t, w, Config{FlushEvery: 10 * time.Millisecond, Flushers: 1})
		defer stop()
		errs := make([]error, 2)
		var wg sync.WaitGroup
		for i := 0; i < 2; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, errs[i] = p.Submit(context.Background(), store.AllOrgs, request(reading(t, "m1", "raw", time.Date(2026, 1, 1, i, 0, 0, 0, time.UTC).Format(time.RFC3339), "1")))
			}()
			synctest.Wait()
		}
		wg.Wait()
		failed := 0
		for _, err := range errs {
			if err != nil {
				failed++
			}
		}
		require.Equal(t, 1, failed, "the batch failed, then each request was written alone: one of them fails")
	})
}

func TestShutdownFlushesWhatWasAccepted(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newFake()
		p, stop := newPipeline(t, w, Config{FlushEvery: time.Hour, BatchReadings: 1000})
		res := make(chan error, 1)
		go func() {
			_, err := p.Submit(context.Background(), store.AllOrgs, request(reading(t, "m1", "raw", "2026-01-01T00:00:00Z", "1")))
			res <- err
		}()
		synctest.Wait()
		stop() // long before the hour-long flush deadline
		require.NoError(t, <-res)
		w.mu.Lock()
		require.Len(t, w.stored, 1)
		w.mu.Unlock()
		_, err := p.Submit(context.Background(), store.AllOrgs, request(reading(t, "m1", "raw", "2026-01-01T00:15:00Z", "1")))
		require.ErrorIs(t, err, ErrClosed)
	})
}

func TestSubmitterScope(t *testing.T) {
	w := newFake()
	orgX, orgY := uuid.New(), uuid.New()
	d := w.devices["m1"]
	d.OrganizationID = &orgX
	w.devices["m1"] = d
	p, stop := newPipeline(t, w, Config{})
	defer stop()
	rs := []Reading{
		reading(t, "m1", "raw", "2026-01-01T00:00:00Z", "1"),
		reading(t, "nobody-yet", "raw", "2026-01-01T00:00:00Z", "1"),
	}
	rep, err := p.Submit(context.Background(), store.OrgScope(orgY), request(rs...))
	require.NoError(t, err)
	require.Zero(t, rep.Accepted+rep.Staged)
	require.Len(t, rep.Rejected, 2)
	require.Equal(t, []string{`Unknown meter device "m1".`}, rep.Rejected[0].Errors["meter_device_name"], "another organization's device reads as unknown")
	require.Equal(t, []string{`Unknown meter device "nobody-yet".`}, rep.Rejected[1].Errors["meter_device_name"], "only staff stage")

	rep, err = p.Submit(context.Background(), store.OrgScope(orgX), request(rs...))
	require.NoError(t, err)
	require.Equal(t, 1, rep.Accepted)
	require.Len(t, rep.Rejected, 1)
}

// TestSubmitMergesTheRequestsRejections: the report lists the items the request refused
// itself and those the pipeline turned away, in position order.
func TestSubmitMergesTheRequestsRejections(t *testing.T) {
	w := newFake()
	p, stop := newPipeline(t, w, Config{})
	defer stop()
	bad := ItemError{Errors: map[string][]string{"value": {"no"}}, Reason: "bad_value"}
	var q Request
	q.Add(reading(t, "m1", "raw", "2026-11-26T10:00:00Z", "1"))   // 0 accepted
	q.Reject(bad)                                                 // 1 refused by the request
	q.Add(reading(t, "m1", "9.9.9", "2026-11-26T10:00:00Z", "1")) // 2 series not allowed
	q.Reject(bad)                                                 // 3 refused by the request
	q.Add(reading(t, "m1", "raw", "2026-11-26T10:00:00Z", "2"))   // 4 conflicts with 0
	rep, err := p.Submit(context.Background(), store.AllOrgs, &q)
	require.NoError(t, err)
	require.Equal(t, 1, rep.Accepted)
	require.Equal(t, 1, rep.Conflicts)
	var got []string
	for _, e := range rep.Rejected {
		got = append(got, fmt.Sprintf("%d:%s", e.Index, e.Reason))
	}
	require.Equal(t, []string{"1:bad_value", "2:series_not_allowed", "3:bad_value", "4:" + ReasonConflict}, got)

	var none Request
	none.Reject(bad)
	rep, err = p.Submit(context.Background(), store.AllOrgs, &none)
	require.NoError(t, err)
	require.Equal(t, Report{Rejected: []ItemError{{Index: 0, Errors: bad.Errors, Reason: "bad_value"}}}, rep, "nothing to write: the request's own rejections")
	rep, err = p.Submit(context.Background(), store.AllOrgs, &Request{})
	require.NoError(t, err)
	require.Equal(t, Report{Rejected: []ItemError{}}, rep)
}

// TestResolvedKeys: readings whose caller found their device and series by id are
// validated by key as the others by name (config, CT/VT, organization), never staged,
// and share the batch's row keys with readings sent by name.
func TestResolvedKeys(t *testing.T) {
	w := newFake()
	org := uuid.New()
	d := w.devices["m1"]
	d.OrganizationID = &org
	w.devices["m1"] = d
	p, stop := newPipeline(t, w, Config{})
	defer stop()
	var q Request
	q.AddResolved(reading(t, "m1", "2.8.0", "2026-11-26T10:00:00Z", "2"), 1, 11)    // 0 accepted, CT x VT
	q.AddResolved(reading(t, "m1", "9.9.9", "2026-11-26T10:00:00Z", "2"), 1, 99)    // 1 series not in the config
	q.AddResolved(reading(t, "gone", "2.8.0", "2026-11-26T10:00:00Z", "2"), 42, 11) // 2 no such device: not staged
	q.AddResolved(reading(t, "bare", "2.8.0", "2026-11-26T10:00:00Z", "2"), 2, 11)  // 3 device without config
	q.Add(reading(t, "m1", "2.8.0", "2026-11-26T10:00:00Z", "2"))                   // 4 the key of 0, by name: a duplicate
	rep, err := p.Submit(context.Background(), store.AllOrgs, &q)
	require.NoError(t, err)
	require.Equal(t, 1, rep.Accepted)
	require.Equal(t, 1, rep.Duplicates)
	require.Zero(t, rep.Staged)
	require.Len(t, rep.Rejected, 3)
	require.Equal(t, map[string][]string{"series_name": {`Series "9.9.9" is not allowed for meter device "m1": its config allows "1.8.0", "2.8.0", "raw".`}}, rep.Rejected[0].Errors)
	require.Equal(t, map[string][]string{"meter_device_name": {`Unknown meter device "gone".`}}, rep.Rejected[1].Errors)
	require.Equal(t, "no_config", rep.Rejected[2].Reason)
	w.mu.Lock()
	require.Equal(t, "2x2µs", w.stored[[3]int64{1, 11, time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC).UnixMicro()}], "factor 100 x 20")
	require.Empty(t, w.staged)
	require.Equal(t, 1, w.keyLookups)
	require.Equal(t, 1, w.lookups, "the name of reading 4 only")
	w.mu.Unlock()

	// Another organization's device, by key, is unknown to its submitter.
	q = Request{}
	q.AddResolved(reading(t, "m1", "1.8.0", "2026-11-26T10:00:00Z", "2"), 1, 10)
	rep, err = p.Submit(context.Background(), store.OrgScope(uuid.New()), &q)
	require.NoError(t, err)
	require.Equal(t, []ItemError{{Index: 0, Errors: map[string][]string{"meter_device_name": {`Unknown meter device "m1".`}}, Reason: "unknown_device"}}, rep.Rejected)
	rep, err = p.Submit(context.Background(), store.OrgScope(org), &q)
	require.NoError(t, err)
	require.Equal(t, 1, rep.Accepted, "its own organization's")
}
