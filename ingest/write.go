package ingest

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/amrd/amrd/store"
)

// nameCache maps device names to what ingestion needs of them, at one catalog version.
// Names that are not devices are cached too (as absent), so that a stream of readings
// for a device not yet created does not query the database every batch.
type nameCache struct {
	mu      sync.Mutex
	version int64
	devices map[string]*store.DeviceInfo // nil value: no such device
	zones   map[string]*time.Location
}

func newNameCache() *nameCache {
	return &nameCache{version: -1, devices: map[string]*store.DeviceInfo{}, zones: map[string]*time.Location{}}
}

// resolve returns the devices of the names, from the cache when it is at the database's
// current catalog version, else reloading what it lacks.
func (p *Pipeline) resolve(ctx context.Context, names map[string]struct{}) (map[string]*store.DeviceInfo, error) {
	v, err := p.w.CatalogVersion(ctx)
	if err != nil {
		return nil, err
	}
	c := p.cache
	c.mu.Lock()
	if v != c.version {
		if c.version >= 0 {
			p.m.cacheResets.Inc()
		}
		c.version = v
		c.devices = map[string]*store.DeviceInfo{}
	}
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
		return out, nil
	}
	found, err := p.w.DeviceInfos(ctx, missing)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, n := range missing {
		var d *store.DeviceInfo
		if info, ok := found[n]; ok {
			d = &info
		}
		out[n] = d
		if c.version == v { // not reset meanwhile by another flusher at a newer version
			c.devices[n] = d
		}
	}
	return out, nil
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

type rowKey struct {
	device, series int32
	ts             int64
}

// ref points from a row of the write back to its job and reading.
type ref struct {
	job *job
	i   int
}

// write resolves, validates and stores one batch, filling each job's report.
func (p *Pipeline) write(ctx context.Context, batch []*job) error {
	names := map[string]struct{}{}
	for _, j := range batch {
		j.report = Report{Rejected: []ItemError{}}
		for i := range j.readings {
			names[j.readings[i].Device] = struct{}{}
		}
	}
	devices, err := p.resolve(ctx, names)
	if err != nil {
		return err
	}
	var rows []store.ReadingRow
	var refs []ref
	var staged []store.StagedRow
	var stagedRefs []ref
	first := map[rowKey]int{} // key -> index in rows, to settle repeats inside the batch
	type repeat struct {
		ref
		row int
	}
	var repeats []repeat
	for _, j := range batch {
		for i := range j.readings {
			r := &j.readings[i]
			d := devices[r.Device]
			if d != nil && !j.scope.All && (d.OrganizationID == nil || !j.scope.Allows(*d.OrganizationID)) {
				d = nil // another organization's device is unknown to this submitter
			}
			if d == nil && !j.scope.All {
				p.reject(j, i, "meter_device_name", fmt.Sprintf("Unknown meter device %q.", r.Device), "unknown_device")
				continue
			}
			if d == nil {
				t, err := r.Time.In(p.cfg.DefaultTimeZone)
				if err != nil {
					p.reject(j, i, "timestamp", err.Error(), "local_time")
					continue
				}
				sr := store.StagedRow{Device: r.Device, Series: r.Series, Time: t, Value: r.Value}
				if !r.Time.HasOffset {
					sr.Civil = r.Time.T // promotion reads it in the device config's zone
				}
				staged = append(staged, sr)
				stagedRefs = append(stagedRefs, ref{j, i})
				continue
			}
			row, field, msg, reason := p.validate(d, r)
			if msg != "" {
				p.reject(j, i, field, msg, reason)
				continue
			}
			k := rowKey{row.DeviceKey, row.SeriesKey, row.Time.UnixNano()}
			if at, dup := first[k]; dup {
				repeats = append(repeats, repeat{ref{j, i}, at})
				continue
			}
			first[k] = len(rows)
			rows = append(rows, row)
			refs = append(refs, ref{j, i})
		}
	}
	outcomes, err := p.w.WriteReadings(ctx, rows, staged)
	if err != nil {
		return err
	}
	for n, o := range outcomes {
		p.settle(refs[n], o)
	}
	for _, rp := range repeats {
		// A key sent twice in one batch: the same value is a duplicate of the first,
		// another value conflicts with it (whatever became of the first).
		o := store.Duplicate
		if rows[rp.row].Value.Cmp(&rp.job.readings[rp.i].Value) != 0 {
			o = store.Conflict
		}
		p.settle(rp.ref, o)
	}
	for _, sr := range stagedRefs {
		sr.job.report.Staged++
	}
	p.m.staged.Add(float64(len(staged)))
	for _, j := range batch {
		sort.Slice(j.report.Rejected, func(a, b int) bool { return j.report.Rejected[a].Index < j.report.Rejected[b].Index })
	}
	return nil
}

// ReasonConflict is the Reason of a reading refused because another value is stored for
// its key (counted in Report.Conflicts, listed in Report.Rejected).
const ReasonConflict = "conflict"

func (p *Pipeline) settle(r ref, o store.Outcome) {
	switch o {
	case store.Inserted:
		r.job.report.Accepted++
		p.m.written.Inc()
	case store.Duplicate:
		r.job.report.Duplicates++
		p.m.duplicates.Inc()
	case store.Conflict:
		r.job.report.Conflicts++
		p.m.conflicts.Inc()
		r.job.report.Rejected = append(r.job.report.Rejected, ItemError{Index: r.job.index[r.i], Errors: map[string][]string{
			"value": {"A different value is already stored for this meter device, series and timestamp; it was not overwritten."}},
			Reason: ReasonConflict})
	}
}

func (p *Pipeline) reject(j *job, i int, field, msg, reason string) {
	j.report.Rejected = append(j.report.Rejected, ItemError{Index: j.index[i], Errors: map[string][]string{field: {msg}}, Reason: reason})
	p.m.rejected.WithLabelValues(reason).Inc()
}

// validate turns a reading of a known device into a row, or says why it is rejected
// (field, message and a metric reason).
func (p *Pipeline) validate(d *store.DeviceInfo, r *Reading) (row store.ReadingRow, field, msg, reason string) {
	if !d.HasConfig {
		return row, "meter_device_name", fmt.Sprintf("Meter device %q has no config (device type with a config): "+
			"its allowed series are unknown, so its readings cannot be validated.", r.Device), "no_config"
	}
	s, ok := d.Series[r.Series]
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
