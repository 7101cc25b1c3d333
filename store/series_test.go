package store_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/amrd/amrd/schema"
	"github.com/amrd/amrd/store"
	"github.com/amrd/amrd/store/storetest"
)

// TestSeriesHasReadings follows the series deletion check through the rollups' life:
// before any materialization, for materialized hours, the unmaterialized tail, late
// readings (marked, then recomputed), deleted devices and readings (marked: stale rollups
// until the job runs), hourly rollup retention and raw retention. At every step its
// answer must equal that of probing every device in every chunk.
func TestSeriesHasReadings(t *testing.T) {
	ctx := testCtx(t)
	st, url := storetest.New(t)
	org := mkOrg(t, st, "o", true)
	series := map[string]uuid.UUID{}
	skey := map[string]int32{}
	for _, n := range []string{"used", "late", "deleted", "shared", "gone", "unused", "tail", "expired", "old"} {
		var id uuid.UUID
		var key int32
		storetest.Query(t, url, `INSERT INTO meter_reading_series (organization_id, name, unit) VALUES ($1, $2, 'kWh') RETURNING id, key`,
			[]any{org.ID, n}, &id, &key)
		series[n], skey[n] = id, key
	}
	dev := map[string]uuid.UUID{}
	dkey := map[string]int32{}
	for _, n := range []string{"d1", "d2", "d3", "d4"} {
		var key int32
		id := sqlDevice(t, url, org.ID, n)
		storetest.Query(t, url, `SELECT key FROM meter_devices WHERE id = $1`, []any{id}, &key)
		dev[n], dkey[n] = id, key
	}
	// write stores hourly readings of a device and series over [from, from + hours).
	write := func(d, s string, from time.Time, hours int) {
		t.Helper()
		rows := make([]store.ReadingRow, hours)
		for i := range rows {
			rows[i] = store.ReadingRow{DeviceKey: dkey[d], SeriesKey: skey[s], Time: from.Add(time.Duration(i) * time.Hour),
				Value: apdDec(t, fmt.Sprint(i)), Factor: 1}
		}
		_, err := st.WriteReadings(ctx, store.AnyCatalog, rows, nil)
		require.NoError(t, err)
	}
	check := func(t *testing.T, step string, want map[string]bool) {
		t.Helper()
		for n, w := range want {
			got, err := st.SeriesHasReadings(ctx, series[n])
			require.NoError(t, err)
			ref, err := st.SeriesHasReadingsProbeAll(ctx, series[n])
			require.NoError(t, err)
			require.Equal(t, ref, w, "%s: series %q: the test's expectation against probing everything", step, n)
			require.Equal(t, w, got, "%s: series %q", step, n)
		}
	}
	job := func() {
		t.Helper()
		_, err := st.RecomputeMarked(ctx, 10_000)
		require.NoError(t, err)
	}

	t0 := time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC)
	old := time.Date(2023, 6, 1, 0, 0, 0, 0, time.UTC) // in an older 365-day rollup chunk than t0
	write("d1", "used", t0, 72)
	write("d2", "deleted", t0.Add(24*time.Hour), 24)
	write("d1", "shared", t0, 48)
	write("d3", "gone", t0.Add(48*time.Hour), 24)
	write("d3", "expired", t0.Add(-20*24*time.Hour), 24)
	write("d3", "old", old, 24)
	check(t, "no rollups yet", map[string]bool{"used": true, "deleted": true, "unused": false, "old": true})

	threshold := t0.Add(5 * 24 * time.Hour)
	require.NoError(t, st.MoveRollupThreshold(ctx, threshold))
	_, err := st.MaterializeRollups(ctx, 30*24*time.Hour)
	require.NoError(t, err)
	write("d1", "tail", threshold.Add(24*time.Hour), 3)
	check(t, "materialized", map[string]bool{"used": true, "deleted": true, "shared": true, "gone": true, "unused": false,
		"tail": true, "late": false, "expired": true, "old": true})

	write("d4", "late", t0.Add(24*time.Hour), 2) // below the threshold: marked
	check(t, "a late reading, marked", map[string]bool{"late": true, "unused": false})
	job()
	check(t, "a late reading, recomputed", map[string]bool{"late": true, "unused": false})

	// d2 holds every reading of "deleted"; d4 shares "shared" with d1, which is deleted.
	write("d4", "shared", t0.Add(30*time.Hour), 1)
	job()
	require.NoError(t, st.DeleteMeterDevice(ctx, store.AllOrgs, dev["d2"]))
	require.NoError(t, st.DeleteMeterDevice(ctx, store.AllOrgs, dev["d1"]))
	var ids []int64
	for _, r := range storetest.Rows(t, url, `SELECT id FROM meter_readings WHERE series_key = $1`, skey["gone"]) {
		ids = append(ids, r[0].(int64))
	}
	require.Len(t, ids, 24)
	for _, id := range ids {
		require.NoError(t, st.DeleteReading(ctx, store.AllOrgs, id))
	}
	var marks int
	storetest.QueryRow(t, url, `SELECT count(*)::int FROM rollup_marks`, &marks)
	require.Positive(t, marks, "the deletes marked their rollups")
	want := map[string]bool{"deleted": false, "shared": true, "gone": false, "used": false, "late": true, "unused": false}
	check(t, "readings deleted, rollups stale", want)
	job()
	check(t, "readings deleted, recomputed", want)

	// Hourly rollups expire before the raw readings: the series rows of "old" are dropped,
	// its readings are not. The chunks dropped must end before t0's, which holds the rest.
	const slot = 365 * 24 * time.Hour
	cut := time.Unix(0, 0).Add(t0.Add(-20*24*time.Hour).Sub(time.Unix(0, 0)) / slot * slot).UTC()
	require.True(t, cut.After(old.Add(24*time.Hour)), "cut %s", cut)
	n, err := st.DropChunks(ctx, store.TableRollupSeriesHourly, cut)
	require.NoError(t, err)
	require.Positive(t, n)
	var horizon time.Time
	storetest.QueryRow(t, url, `SELECT hourly_horizon FROM rollup_state`, &horizon)
	require.False(t, horizon.After(cut), "the horizon is the end of the chunks dropped")
	require.True(t, horizon.After(old), "horizon %s", horizon)
	check(t, "hourly rollups expired", map[string]bool{"old": true, "expired": true, "unused": false})
	t.Run("an installation that expired hourly rollups before 0005", func(t *testing.T) {
		// The migration's guess from the rollups left: at least the horizon recorded.
		storetest.Exec(t, url, `UPDATE rollup_state SET hourly_horizon = '-infinity'`)
		storetest.Exec(t, url, migrationHorizonBlock(t))
		var guessed time.Time
		storetest.QueryRow(t, url, `SELECT hourly_horizon FROM rollup_state`, &guessed)
		require.False(t, guessed.Before(horizon), "guessed %s, recorded %s", guessed, horizon)
		check(t, "the horizon guessed", map[string]bool{"old": true, "expired": true, "unused": false})
		storetest.Exec(t, url, `UPDATE rollup_state SET hourly_horizon = $1`, horizon)
	})

	// Raw retention: "expired" (20 days before t0) and "old" lose their readings, though
	// "expired" keeps its rollups; a late reading below the frozen line is not recomputed.
	cutoff, err := st.ReadingsRetentionCutoff(ctx, t0.Add(-10*24*time.Hour))
	require.NoError(t, err)
	_, err = st.DropChunks(ctx, store.TableReadings, cutoff)
	require.NoError(t, err)
	check(t, "raw readings expired", map[string]bool{"expired": false, "old": false, "used": false, "late": true})
	write("d3", "expired", t0.Add(-15*24*time.Hour), 1)
	job()
	check(t, "a late reading below the frozen line", map[string]bool{"expired": true, "unused": false})

	t.Run("a series with readings cannot be deleted; once they are gone, it can", func(t *testing.T) {
		err := st.DeleteMeterReadingSeries(ctx, store.AllOrgs, series["late"])
		require.ErrorIs(t, err, store.ErrConflict)
		require.NoError(t, st.DeleteMeterReadingSeries(ctx, store.AllOrgs, series["deleted"]))
		require.NoError(t, st.DeleteMeterReadingSeries(ctx, store.AllOrgs, series["unused"]))
	})
}

// migrationHorizonBlock is the DO block of schema 0005 that sets hourly_horizon on an
// installation that expired hourly rollups before it.
func migrationHorizonBlock(t *testing.T) string {
	t.Helper()
	migs, err := schema.Migrations()
	require.NoError(t, err)
	for _, m := range migs {
		if m.Version == 5 {
			i := strings.Index(m.SQL, "DO $$")
			j := strings.Index(m.SQL[i:], "END $$;")
			require.True(t, i >= 0 && j > 0, "the DO block of %s", m.Name)
			return m.SQL[i : i+j+len("END $$;")]
		}
	}
	t.Fatal("no migration 5")
	return ""
}
