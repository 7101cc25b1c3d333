package ingest

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/amrd/amrd/store"
)

// nameCache maps device names to what ingestion needs of them, at one catalog version.
// Names that are not devices are cached too (as absent), so that a stream of readings
// for a device not yet created does not query the database every batch. Device types'
// configs are cached apart: a fleet has thousands of devices for a few types, so a
// device not cached yet costs one small lookup of its own row.
type nameCache struct {
	mu      sync.Mutex
	version int64
	devices map[string]*store.DeviceInfo // nil value: no such device
	types   map[uuid.UUID]store.TypeConfig
	zones   map[string]*time.Location
}

func newNameCache() *nameCache {
	return &nameCache{version: -1, devices: map[string]*store.DeviceInfo{}, types: map[uuid.UUID]store.TypeConfig{},
		zones: map[string]*time.Location{}}
}

// resolve returns the devices of the names and the catalog version they were resolved
// at: from the cache, reloading what it lacks. The cache trusts its version until a write
// finds the database's moved on (stale, with the version it found), or knows none yet;
// the writes check the version in their own transaction, so no batch reads it first.
func (p *Pipeline) resolve(ctx context.Context, names map[string]struct{}, stale *staleAt) (int64, map[string]*store.DeviceInfo, error) {
	c := p.cache
	c.mu.Lock()
	known := c.version >= 0
	c.mu.Unlock()
	fresh := int64(-1) // the database's version, when this batch learnt it
	if stale != nil {
		fresh = stale.found
	} else if !known {
		var err error
		if fresh, err = p.w.CatalogVersion(ctx); err != nil {
			return 0, nil, err
		}
	}
	c.mu.Lock()
	// Reset only a cache still at the version that failed (or at none): another flusher
	// may have moved it on meanwhile, from what it learnt later.
	if fresh >= 0 && fresh != c.version && (c.version < 0 || stale != nil && c.version == stale.wrote) {
		if c.version >= 0 {
			p.m.cacheResets.Inc()
			select {
			case p.warmKick <- struct{}{}:
			default:
			}
		}
		c.version = fresh
		c.devices = map[string]*store.DeviceInfo{}
		c.types = map[uuid.UUID]store.TypeConfig{}
	}
	v := c.version
	out := make(map[string]*store.DeviceInfo, len(names))
	var missing []string
	for n := range names {
		d, ok := c.devices[n]
		if ok {
			out[n] = d
		} else {
			missing = append(missing, n)
		}
	}
	c.mu.Unlock()
	if len(missing) == 0 {
		return v, out, nil
	}
	refs, err := p.w.DeviceRefs(ctx, missing)
	if err != nil {
		return 0, nil, err
	}
	types, newTypes, err := p.typeConfigs(ctx, v, typeIDs(refs))
	if err != nil {
		return 0, nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	keep := c.version == v // not reset meanwhile by another flusher at a newer version
	if keep {
		for _, id := range newTypes {
			c.types[id] = types[id]
		}
	}
	for _, n := range missing {
		var d *store.DeviceInfo
		if r, ok := refs[n]; ok {
			info := r.Info(types)
			d = &info
		}
		out[n] = d
		if keep {
			c.devices[n] = d
		}
	}
	return v, out, nil
}

// resolveKeys returns the devices of keys (readings whose caller resolved them by id,
// AddResolved), with their types' configs at version. Such readings are the by-id
// route's, one a request: their devices are looked up at each batch that has any, not
// cached, and the write checks version for them as for the names.
func (p *Pipeline) resolveKeys(ctx context.Context, version int64, keys map[int32]struct{}) (map[int32]*store.DeviceInfo, error) {
	if len(keys) == 0 {
		return nil, nil
	}
	refs, err := p.w.DeviceRefsByKey(ctx, slices.Collect(maps.Keys(keys)))
	if err != nil {
		return nil, err
	}
	types, _, err := p.typeConfigs(ctx, version, typeIDs(refs))
	if err != nil {
		return nil, err
	}
	out := make(map[int32]*store.DeviceInfo, len(refs))
	for k, r := range refs {
		info := r.Info(types)
		out[k] = &info
	}
	return out, nil
}

// typeIDs are the types of devices (nil: a device without type).
func typeIDs[K comparable](devices map[K]store.DeviceRef) []*uuid.UUID {
	ids := make([]*uuid.UUID, 0, len(devices))
	for _, r := range devices {
		ids = append(ids, r.TypeID)
	}
	return ids
}

// typeConfigs returns the configs of the types ids (nil: a device without type): from
// the cache when it is at version, else from the database; fetched lists the latter.
func (p *Pipeline) typeConfigs(ctx context.Context, version int64, ids []*uuid.UUID) (types map[uuid.UUID]store.TypeConfig, fetched []uuid.UUID, err error) {
	types = map[uuid.UUID]store.TypeConfig{}
	c := p.cache
	c.mu.Lock()
	for _, id := range ids {
		if id == nil {
			continue
		}
		if tc, ok := c.types[*id]; ok && c.version == version {
			types[*id] = tc
		} else if !slices.Contains(fetched, *id) {
			fetched = append(fetched, *id)
		}
	}
	c.mu.Unlock()
	if len(fetched) > 0 {
		found, err := p.w.TypeConfigs(ctx, fetched)
		if err != nil {
			return nil, nil, err
		}
		// A type missing here was deleted since its device was read: the device reads
		// as without config, and the write finds the catalog version moved.
		for _, id := range fetched {
			types[id] = found[id]
		}
	}
	return types, fetched, nil
}

func (p *Pipeline) zone(name string) (*time.Location, error) {
	c := p.cache
	c.mu.Lock()
	defer c.mu.Unlock()
	if loc, ok := c.zones[name]; ok {
		return loc, nil
	}
	loc, err := time.LoadLocation(name)
	if err != nil {
		return nil, err
	}
	c.zones[name] = loc
	return loc, nil
}

// ref points from a row of the write back to its job and reading.
type ref struct {
	job *job
	i   int
}

// staleAt is a write refused because the catalog moved: the version it was made at and
// the one the database had.
type staleAt struct{ wrote, found int64 }

// staleAttempts bounds how often one batch is resolved again after a catalog change
// (each change is a person or a provisioning script editing devices; three in the few
// milliseconds of one batch's write means changes are streaming in). The last attempt
// writes without the check, with names resolved moments before, as a batch that read the
// version first and then wrote would have.
const staleAttempts = 3

// write resolves, validates and stores one batch, filling each job's report.
func (p *Pipeline) write(ctx context.Context, batch []*job) error {
	names := map[string]struct{}{}
	var keys map[int32]struct{}
	for _, j := range batch {
		for i := range j.req.readings {
			if k := j.req.key(i); k.device != 0 {
				if keys == nil {
					keys = map[int32]struct{}{}
				}
				keys[k.device] = struct{}{}
			} else {
				names[j.req.readings[i].Device] = struct{}{}
			}
		}
	}
	var stale *staleAt
	for attempt := 1; ; attempt++ {
		version, devices, err := p.resolve(ctx, names, stale)
		if err != nil {
			return err
		}
		byKey, err := p.resolveKeys(ctx, version, keys)
		if err != nil {
			return err
		}
		w := p.prepare(batch, devices, byKey)
		check := version
		if attempt == staleAttempts {
			check = store.AnyCatalog
		}
		outcomes, err := p.w.WriteReadings(ctx, check, w.rows, w.staged)
		var se *store.StaleCatalogError
		if errors.As(err, &se) {
			p.m.staleWrites.Inc()
			stale = &staleAt{wrote: version, found: se.Version}
			continue
		}
		if err != nil {
			return err
		}
		p.settleBatch(batch, w, outcomes)
		return nil
	}
}

// prepared is a batch resolved and validated, ready to write: the rows and staged rows,
// where each came from, and what was rejected.
type prepared struct {
	rows       []store.ReadingRow
	refs       []ref
	staged     []store.StagedRow
	stagedRefs []ref
	repeats    []repeat
	rejected   []rejection
}

// repeat is a reading whose key an earlier reading of the batch has (rows[row]).
type repeat struct {
	ref
	row int
}

type rejection struct {
	ref
	field, msg, reason string
}

// prepare validates the batch's readings against the resolved devices: by name, and
// by key for the readings whose caller resolved them. It changes nothing outside what
// it returns, so that a stale batch can be prepared again.
func (p *Pipeline) prepare(batch []*job, devices map[string]*store.DeviceInfo, byKey map[int32]*store.DeviceInfo) *prepared {
	n := 0
	for _, j := range batch {
		n += len(j.req.readings)
	}
	// Sized for the usual batch, where every reading becomes a row: growing these by
	// append would reallocate and copy them many times a batch.
	w := &prepared{rows: make([]store.ReadingRow, 0, n), refs: make([]ref, 0, n)}
	first := make(map[store.ReadingKey]int, n) // key -> index in rows, to settle repeats inside the batch
	reject := func(j *job, i int, field, msg, reason string) {
		w.rejected = append(w.rejected, rejection{ref{j, i}, field, msg, reason})
	}
	for _, j := range batch {
		for i := range j.req.readings {
			r := &j.req.readings[i]
			k := j.req.key(i)
			var d *store.DeviceInfo
			if k.device != 0 {
				d = byKey[k.device]
			} else {
				d = devices[r.Device]
			}
			if d != nil && !j.scope.All && (d.OrganizationID == nil || !j.scope.Allows(*d.OrganizationID)) {
				d = nil // another organization's device is unknown to this submitter
			}
			// Only staff stage, and only readings named by their device: a key that is
			// no device's is a device deleted since its caller found it.
			if d == nil && (!j.scope.All || k.device != 0) {
				reject(j, i, "meter_device_name", fmt.Sprintf("Unknown meter device %q.", r.Device), "unknown_device")
				continue
			}
			if d == nil {
				t, err := r.Time.In(p.cfg.DefaultTimeZone)
				if err != nil {
					reject(j, i, "timestamp", err.Error(), "local_time")
					continue
				}
				sr := store.StagedRow{Device: r.Device, Series: r.Series, Time: t, Value: r.Value}
				if !r.Time.HasOffset {
					sr.Civil = r.Time.T // promotion reads it in the device config's zone
				}
				w.staged = append(w.staged, sr)
				w.stagedRefs = append(w.stagedRefs, ref{j, i})
				continue
			}
			row, field, msg, reason := p.validate(d, r, k.series)
			if msg != "" {
				reject(j, i, field, msg, reason)
				continue
			}
			rk := row.Key()
			if at, dup := first[rk]; dup {
				w.repeats = append(w.repeats, repeat{ref{j, i}, at})
				continue
			}
			first[rk] = len(w.rows)
			w.rows = append(w.rows, row)
			w.refs = append(w.refs, ref{j, i})
		}
	}
	return w
}

// settleBatch fills the jobs' reports from a committed write.
func (p *Pipeline) settleBatch(batch []*job, w *prepared, outcomes []store.Outcome) {
	for _, j := range batch {
		j.report = Report{Rejected: []ItemError{}}
	}
	for _, r := range w.rejected {
		p.reject(r.job, r.i, r.field, r.msg, r.reason)
	}
	// The writer answers the rows, then the staged rows (store.WriteReadings).
	for n := range w.refs {
		p.settle(w.refs[n], outcomes[n], false)
	}
	for _, rp := range w.repeats {
		// A key sent twice in one batch: the same value is a duplicate of the first,
		// another value conflicts with it (whatever became of the first).
		o := store.Duplicate
		if w.rows[rp.row].Value.Cmp(&rp.job.req.readings[rp.i].Value) != 0 {
			o = store.Conflict
		}
		p.settle(rp.ref, o, false)
	}
	staged := outcomes[len(w.refs):]
	for n, sr := range w.stagedRefs {
		o := store.Inserted
		if n < len(staged) {
			o = staged[n]
		}
		p.settle(sr, o, true)
	}
	for _, j := range batch {
		sort.Slice(j.report.Rejected, func(a, b int) bool { return j.report.Rejected[a].Index < j.report.Rejected[b].Index })
	}
}

// ReasonConflict is the Reason of a reading refused because another value is stored for
// its key (counted in Report.Conflicts, listed in Report.Rejected).
const ReasonConflict = "conflict"

// settle counts what became of a reading: written, a duplicate of what is stored, or a
// conflict with another value stored for its key. A staged reading (its device is
// unknown) is counted as staged when written, and compared with what is staged.
func (p *Pipeline) settle(r ref, o store.Outcome, staged bool) {
	switch o {
	case store.Inserted:
		if staged {
			r.job.report.Staged++
			p.m.staged.Inc()
		} else {
			r.job.report.Accepted++
			p.m.written.Inc()
		}
	case store.Duplicate:
		r.job.report.Duplicates++
		p.m.duplicates.Inc()
	case store.Conflict:
		r.job.report.Conflicts++
		p.m.conflicts.Inc()
		msg := "A different value is already stored for this meter device, series and timestamp; it was not overwritten."
		if staged {
			msg = "A different value is already staged for this meter device name, series and timestamp; it was not overwritten."
		}
		r.job.report.Rejected = append(r.job.report.Rejected, ItemError{Index: r.job.req.index[r.i],
			Errors: map[string][]string{"value": {msg}}, Reason: ReasonConflict})
	}
}

func (p *Pipeline) reject(j *job, i int, field, msg, reason string) {
	j.report.Rejected = append(j.report.Rejected, ItemError{Index: j.req.index[i], Errors: map[string][]string{field: {msg}}, Reason: reason})
	p.m.rejected.WithLabelValues(reason).Inc()
}

// validate turns a reading of a known device into a row, or says why it is rejected
// (field, message and a metric reason). The series is found by seriesKey when the caller
// resolved it, else by name; messages quote the reading's names either way.
func (p *Pipeline) validate(d *store.DeviceInfo, r *Reading, seriesKey int32) (row store.ReadingRow, field, msg, reason string) {
	if !d.HasConfig {
		return row, "meter_device_name", fmt.Sprintf("Meter device %q has no config (device type with a config): "+
			"its allowed series are unknown, so its readings cannot be validated.", r.Device), "no_config"
	}
	s, ok := d.Series[r.Series]
	if seriesKey != 0 {
		s, ok = seriesByKey(d, seriesKey)
	}
	if !ok {
		return row, "series_name", fmt.Sprintf("Series %q is not allowed for meter device %q: its config allows %s.",
			r.Series, r.Device, allowed(d)), "series_not_allowed"
	}
	loc := p.cfg.DefaultTimeZone
	if d.TimeZone != "" {
		var err error
		if loc, err = p.zone(d.TimeZone); err != nil {
			return row, "timestamp", fmt.Sprintf("The time zone %q of the device's config is not known to amrd.", d.TimeZone), "unknown_time_zone"
		}
	}
	t, err := r.Time.In(loc)
	if err != nil {
		// A civil time skipped or repeated by a DST change in the device's zone.
		return row, "timestamp", err.Error(), "local_time"
	}
	factor := int64(1)
	if s.CT {
		factor *= d.CTRatio
	}
	if s.VT {
		factor *= d.VTRatio
	}
	return store.ReadingRow{DeviceKey: d.Key, SeriesKey: s.Key, Time: t, Value: r.Value, Factor: factor}, "", "", ""
}

// seriesByKey finds an allowed series of a device by its key (a config allows a few:
// a scan of them costs less than keeping a second map for every config).
func seriesByKey(d *store.DeviceInfo, key int32) (store.SeriesInfo, bool) {
	for _, s := range d.Series {
		if s.Key == key {
			return s, true
		}
	}
	return store.SeriesInfo{}, false
}

func allowed(d *store.DeviceInfo) string {
	if len(d.Series) == 0 {
		return "no series"
	}
	names := make([]string, 0, len(d.Series))
	for n := range d.Series {
		names = append(names, fmt.Sprintf("%q", n))
	}
	sort.Strings(names)
	if len(names) > 10 {
		names = append(names[:10], fmt.Sprintf("and %d more", len(d.Series)-10))
	}
	return strings.Join(names, ", ")
}
