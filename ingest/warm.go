package ingest

import (
	"context"
	"errors"
	"time"

	"github.com/google/uuid"

	"github.com/amrd/amrd/store"
)

// DevicePager lists devices page by page; *store.Store satisfies it. A Writer that is
// also a DevicePager gets its name cache loaded ahead of the readings (Config.WarmDevices).
type DevicePager interface {
	DevicePage(ctx context.Context, after int32, limit int) (version int64, devices []store.NamedDeviceRef, err error)
}

// warmPage is how many devices one query of the warm-up reads: a few milliseconds of the
// database's time, so that writes are never queued behind a long read.
const warmPage = 5_000

// warmQuiet is how long the catalog must stay unchanged before the cache is loaded again
// after a change: provisioning scripts create devices one by one, and each bumps the
// version that empties the cache.
const warmQuiet = 2 * time.Second

// warmLoop loads the name cache when the pipeline starts and again after each change of
// the catalog (which empties it), until ctx ends. Without it every device's first
// readings after a start or a change wait for a lookup of their batch's new names, a
// round trip on the single commit path: with a cold cache, new devices' first batches
// spend most of their time in that lookup.
func (p *Pipeline) warmLoop(ctx context.Context) {
	pager, ok := p.w.(DevicePager)
	if !ok || p.cfg.WarmDevices <= 0 {
		return
	}
	for {
		p.warm(ctx, pager)
		select {
		case <-ctx.Done():
			return
		case <-p.warmKick:
		}
		for quiet := false; !quiet; { // wait for the changes to settle
			select {
			case <-ctx.Done():
				return
			case <-p.warmKick:
			case <-time.After(warmQuiet):
				quiet = true
			}
		}
	}
}

// errOutrun: the cache moved to a newer catalog version than the page being loaded.
var errOutrun = errors.New("the cache is at a newer catalog version")

// warm loads the cache (warmPages) and says how it went.
func (p *Pipeline) warm(ctx context.Context, pager DevicePager) {
	start := time.Now()
	loaded, err := p.warmPages(ctx, pager)
	switch {
	case errors.Is(err, errOutrun):
		// A newer catalog change emptied the cache; its kick loads it again.
	case err != nil && ctx.Err() == nil:
		p.log.Warn("loading the name cache failed; names are looked up as readings arrive", "err", err)
	case loaded > 0:
		p.log.Info("name cache loaded", "devices", loaded, "ms", time.Since(start).Milliseconds())
	}
}

// warmPages loads up to WarmDevices devices, in key order, into the cache, page by page.
// When the catalog moves on meanwhile, a page at the new version moves the cache to it
// (and empties it), so the loading starts over, a few times at most; a cache already at
// a newer version than a page ends it.
func (p *Pipeline) warmPages(ctx context.Context, pager DevicePager) (loaded int, err error) {
	var after int32
	restarts := 0
	first := int64(-1) // the version of the first page
	for loaded < p.cfg.WarmDevices {
		version, devs, err := pager.DevicePage(ctx, after, min(p.cfg.warmPage, p.cfg.WarmDevices-loaded))
		if err != nil {
			return loaded, err
		}
		if first >= 0 && version != first && restarts < 3 {
			restarts++
			after, loaded, first = 0, 0, -1
			continue
		}
		if first < 0 {
			first = version
		}
		if len(devs) == 0 {
			break
		}
		ids := make([]*uuid.UUID, len(devs))
		for i := range devs {
			ids[i] = devs[i].TypeID
		}
		types, _, err := p.typeConfigs(ctx, version, ids)
		if err != nil {
			return loaded, err
		}
		if !p.cache.fill(version, devs, types) {
			return loaded, errOutrun
		}
		p.m.warmed.Add(float64(len(devs)))
		loaded += len(devs)
		after = devs[len(devs)-1].Key
		if len(devs) < p.cfg.warmPage {
			break
		}
	}
	return loaded, nil
}

// fill adds devices read at version to the cache, without replacing what it holds. A
// cache at an older version (or none) is reset to this one first: the database has moved
// on, as a stale write would have told. It reports false when the cache is at a newer
// version than the devices: they are stale.
func (c *nameCache) fill(version int64, devs []store.NamedDeviceRef, types map[uuid.UUID]store.TypeConfig) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if version < c.version {
		return false
	}
	if version > c.version {
		c.version = version
		c.devices = map[string]*store.DeviceInfo{}
		c.types = map[uuid.UUID]store.TypeConfig{}
	}
	for id, tc := range types {
		if _, ok := c.types[id]; !ok {
			c.types[id] = tc
		}
	}
	for i := range devs {
		d := &devs[i]
		if _, ok := c.devices[d.Name]; ok {
			continue
		}
		info := d.Info(types)
		c.devices[d.Name] = &info
	}
	return true
}
