package ingest

import (
	"context"
	"maps"
	"slices"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/amrd/amrd/store"
)

// pagedFake is the fake database with devices to list page by page.
type pagedFake struct {
	*fakeWriter
	pages  []int32 // the key each DevicePage call started after
	moveAt int     // the catalog version moves after this many pages (0: never)
}

func (f *pagedFake) DevicePage(_ context.Context, after int32, limit int) (int64, []store.NamedDeviceRef, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.pages = append(f.pages, after)
	if len(f.pages) == f.moveAt+1 && f.moveAt > 0 {
		f.version++ // another replica changed a device while the pages were read
	}
	names := slices.SortedFunc(maps.Keys(f.devices), func(a, b string) int { return int(f.devices[a].Key - f.devices[b].Key) })
	var out []store.NamedDeviceRef
	for _, n := range names {
		d := f.devices[n]
		if d.Key <= after || len(out) == limit {
			continue
		}
		typ := fakeType(f.typeOf(n))
		out = append(out, store.NamedDeviceRef{Name: n, DeviceRef: store.DeviceRef{Key: d.Key, ID: d.ID,
			OrganizationID: d.OrganizationID, TypeID: &typ, CTRatio: d.CTRatio, VTRatio: d.VTRatio}})
	}
	return f.version, out, nil
}

func (f *pagedFake) counts() (lookups int, pages []int32) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.lookups, slices.Clone(f.pages)
}

func TestWarmCache(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := &pagedFake{fakeWriter: newFake()}
		for i := int32(3); i <= 7; i++ {
			name := "w" + string(rune('0'+i))
			w.devices[name] = w.devices["m1"]
			d := w.devices[name]
			d.Key = i
			w.devices[name] = d
		}
		p, stop := newPipeline(t, w, Config{WarmDevices: 4})
		defer stop()
		synctest.Wait()
		lookups, pages := w.counts()
		require.Zero(t, lookups)
		require.Equal(t, []int32{0}, pages, "one page: WarmDevices bounds what is loaded")

		// The four devices of lowest keys are cached: their readings need no lookup, and
		// the CT factor comes from the cached device.
		rep, err := p.Submit(context.Background(), store.AllOrgs, request(
			reading(t, "m1", "1.8.0", "2026-11-26T10:00:00Z", "1"),
			reading(t, "w3", "1.8.0", "2026-11-26T10:00:00Z", "2"),
			reading(t, "w4", "1.8.0", "2026-11-26T10:00:00Z", "3"),
		))
		require.NoError(t, err)
		require.Equal(t, 3, rep.Accepted)
		lookups, _ = w.counts()
		require.Zero(t, lookups, "all three were loaded ahead")
		w.mu.Lock()
		require.Equal(t, "2x100ns", w.stored[[3]int64{3, 10, time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC).UnixMicro()}])
		w.mu.Unlock()

		// Beyond WarmDevices a device is looked up when its readings arrive.
		_, err = p.Submit(context.Background(), store.AllOrgs, request(reading(t, "w7", "1.8.0", "2026-11-26T10:00:00Z", "4")))
		require.NoError(t, err)
		lookups, _ = w.counts()
		require.Equal(t, 1, lookups)

		// A catalog change empties the cache (the write finds it stale); once the catalog
		// is quiet for warmQuiet, the cache is loaded again at the new version.
		w.mu.Lock()
		w.version++
		d := w.devices["w3"]
		d.CTRatio = 7
		w.devices["w3"] = d
		w.mu.Unlock()
		_, err = p.Submit(context.Background(), store.AllOrgs, request(reading(t, "m1", "1.8.0", "2026-11-26T11:00:00Z", "5")))
		require.NoError(t, err)
		time.Sleep(warmQuiet / 2)
		synctest.Wait()
		_, pages = w.counts()
		require.Len(t, pages, 1, "not before the catalog has been quiet for warmQuiet")
		time.Sleep(warmQuiet)
		synctest.Wait()
		_, pages = w.counts()
		require.Equal(t, []int32{0, 0}, pages)
		lookups, _ = w.counts()
		_, err = p.Submit(context.Background(), store.AllOrgs, request(reading(t, "w3", "1.8.0", "2026-11-26T11:00:00Z", "6")))
		require.NoError(t, err)
		after, _ := w.counts()
		require.Equal(t, lookups, after, "w3 was loaded again")
		w.mu.Lock()
		require.Equal(t, "6x7ns", w.stored[[3]int64{3, 10, time.Date(2026, 11, 26, 11, 0, 0, 0, time.UTC).UnixMicro()}], "with its new CT ratio")
		w.mu.Unlock()
	})
}

// fill keeps what the cache holds, refuses devices older than the cache, and moves a
// cache at an older version to the newer one.
func TestCacheFill(t *testing.T) {
	c := newNameCache()
	dev := func(name string, key int32) store.NamedDeviceRef {
		return store.NamedDeviceRef{Name: name, DeviceRef: store.DeviceRef{Key: key, CTRatio: 1, VTRatio: 1}}
	}
	require.True(t, c.fill(5, []store.NamedDeviceRef{dev("a", 1)}, nil))
	require.Equal(t, int64(5), c.version)
	require.True(t, c.fill(5, []store.NamedDeviceRef{dev("a", 9), dev("b", 2)}, nil))
	require.Equal(t, int32(1), c.devices["a"].Key, "an entry is not replaced")
	require.False(t, c.fill(4, []store.NamedDeviceRef{dev("c", 3)}, nil))
	require.NotContains(t, c.devices, "c")
	require.True(t, c.fill(6, []store.NamedDeviceRef{dev("c", 3)}, nil))
	require.Equal(t, []string{"c"}, slices.Collect(maps.Keys(c.devices)), "reset to the newer version")
}

// A catalog change between two pages starts the loading over at the new version, so that
// the cache ends up with every device, all read at the version it holds.
func TestWarmCacheStartsOverOnChange(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := &pagedFake{fakeWriter: newFake(), moveAt: 1}
		for i := int32(3); i <= 6; i++ {
			name := "w" + string(rune('0'+i))
			d := w.devices["m1"]
			d.Key = i
			w.devices[name] = d
		}
		p, stop := newPipeline(t, w, Config{WarmDevices: 100, warmPage: 2})
		defer stop()
		synctest.Wait()
		_, pages := w.counts()
		require.Equal(t, []int32{0, 2, 0, 2, 4, 6}, pages, "pages of two; the second saw a new version, so it starts over")
		p.cache.mu.Lock()
		require.Equal(t, int64(2), p.cache.version)
		require.Len(t, p.cache.devices, 6)
		p.cache.mu.Unlock()
	})
}
