package store_test

import (
	"context"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/cockroachdb/apd/v3"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/amrd/amrd/store"
	"github.com/amrd/amrd/store/storetest"
)

// fleet makes an organization with a config allowing series "1.8.0" (CT) and "2.8.0"
// (CT and VT), a type with that config, and a device "m1" with CT 100 and VT 20.
func fleet(t *testing.T, ctx context.Context, url string) {
	t.Helper()
	conn, err := pgx.Connect(ctx, url)
	require.NoError(t, err)
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, `
		WITH o AS (INSERT INTO organizations (name) VALUES ('o') RETURNING id),
		s1 AS (INSERT INTO meter_reading_series (organization_id, name, unit, affected_by_ct_ratio) SELECT id, '1.8.0', 'kWh', true FROM o RETURNING id),
		s2 AS (INSERT INTO meter_reading_series (organization_id, name, unit, affected_by_ct_ratio, affected_by_vt_ratio) SELECT id, '2.8.0', 'kWh', true, true FROM o RETURNING id),
		s3 AS (INSERT INTO meter_reading_series (organization_id, name, unit) SELECT id, 'other', 'x' FROM o RETURNING id),
		c AS (INSERT INTO meter_device_configs (organization_id, name, timezone) SELECT id, 'c', 'Europe/Stockholm' FROM o RETURNING id),
		cs AS (INSERT INTO meter_device_config_series (config_id, series_id) SELECT c.id, s.id FROM c, (SELECT id FROM s1 UNION ALL SELECT id FROM s2) s),
		ty AS (INSERT INTO meter_device_types (organization_id, name, manufacturer, manufacturer_model, config_id) SELECT o.id, 't', 'm', 'mm', c.id FROM o, c RETURNING id)
		INSERT INTO meter_devices (organization_id, name, protocol, type_id, has_current_transformer, current_transformer_ratio, has_voltage_transformer, voltage_transformer_ratio)
		SELECT o.id, 'm1', 'iec62056-21', ty.id, true, 100, true, 20 FROM o, ty`)
	require.NoError(t, err)
}

func apdDec(t *testing.T, s string) apd.Decimal {
	var d apd.Decimal
	_, _, err := d.SetString(s)
	require.NoError(t, err)
	return d
}

// deviceInfo is what ingestion knows of the device named name, found as it finds it:
// the device (DeviceRefs), then its type's config (TypeConfigs).
func deviceInfo(t *testing.T, ctx context.Context, st *store.Store, name string) store.DeviceInfo {
	t.Helper()
	refs, err := st.DeviceRefs(ctx, []string{name})
	require.NoError(t, err)
	ref, ok := refs[name]
	require.True(t, ok, "no device %q", name)
	require.NotNil(t, ref.TypeID)
	types, err := st.TypeConfigs(ctx, []uuid.UUID{*ref.TypeID})
	require.NoError(t, err)
	return ref.Info(types)
}

func TestDeviceRefsAndCatalogVersion(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st, url := storetest.New(t)
	v0, err := st.CatalogVersion(ctx)
	require.NoError(t, err)
	fleet(t, ctx, url)
	v1, err := st.CatalogVersion(ctx)
	require.NoError(t, err)
	require.Greater(t, v1, v0, "creating devices and series bumps the catalog version")

	d := deviceInfo(t, ctx, st, "m1")
	require.True(t, d.HasConfig)
	require.Equal(t, "Europe/Stockholm", d.TimeZone)
	require.Equal(t, int64(100), d.CTRatio)
	require.Equal(t, int64(20), d.VTRatio)
	require.Len(t, d.Series, 2, "only the config's series")
	require.True(t, d.Series["2.8.0"].VT)
	require.False(t, d.Series["1.8.0"].VT)

	// Types: one without a config, two sharing one (and its series).
	storetest.Exec(t, url, `INSERT INTO meter_device_types (organization_id, name, manufacturer, manufacturer_model, config_id)
		SELECT organization_id, 't2', 'm', 'mm', config_id FROM meter_device_types WHERE name = 't'
		UNION ALL SELECT organization_id, 'bare', 'm', 'mm', NULL FROM meter_device_types WHERE name = 't'`)
	var t1, t2, bare uuid.UUID
	storetest.QueryRow(t, url, `SELECT id FROM meter_device_types WHERE name = 't'`, &t1)
	storetest.QueryRow(t, url, `SELECT id FROM meter_device_types WHERE name = 't2'`, &t2)
	storetest.QueryRow(t, url, `SELECT id FROM meter_device_types WHERE name = 'bare'`, &bare)
	refs, err := st.DeviceRefs(ctx, []string{"m1", "nope"})
	require.NoError(t, err)
	require.Equal(t, []string{"m1"}, slices.Collect(maps.Keys(refs)), "a name that is no device's is absent")
	require.Equal(t, t1, *refs["m1"].TypeID)
	byKey, err := st.DeviceRefsByKey(ctx, []int32{d.Key, -1})
	require.NoError(t, err)
	require.Equal(t, map[int32]store.DeviceRef{d.Key: refs["m1"]}, byKey, "the same device by its key; a key that is no device's is absent")
	tcs, err := st.TypeConfigs(ctx, []uuid.UUID{t1, t2, bare, uuid.New()})
	require.NoError(t, err)
	require.Len(t, tcs, 3, "a missing type is absent")
	require.False(t, tcs[bare].HasConfig)
	require.True(t, tcs[t2].HasConfig)
	require.Equal(t, "Europe/Stockholm", tcs[t2].TimeZone)
	require.Equal(t, reflect.ValueOf(tcs[t1].Series).Pointer(), reflect.ValueOf(tcs[t2].Series).Pointer(), "one config, one series map")
}

func TestWriteReadings(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st, url := storetest.New(t)
	fleet(t, ctx, url)
	d := deviceInfo(t, ctx, st, "m1")
	s := d.Series["1.8.0"]
	t0 := time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)
	row := func(minutes int, v string) store.ReadingRow {
		return store.ReadingRow{DeviceKey: d.Key, SeriesKey: s.Key, Time: t0.Add(time.Duration(minutes) * time.Minute), Value: apdDec(t, v), Factor: 100}
	}

	out, err := st.WriteReadings(ctx, store.AnyCatalog, []store.ReadingRow{row(0, "1.50"), row(15, "2")},
		[]store.StagedRow{{Device: "future", Series: "1.8.0", Time: t0, Value: apdDec(t, "7")}})
	require.NoError(t, err)
	require.Equal(t, []store.Outcome{store.Inserted, store.Inserted, store.Inserted}, out, "the rows', then the staged row's")

	// A re-send of the same value is a duplicate, a different value a conflict, a new key
	// is inserted: in one batch.
	out, err = st.WriteReadings(ctx, store.AnyCatalog, []store.ReadingRow{row(0, "1.5"), row(15, "3"), row(30, "4")}, nil)
	require.NoError(t, err)
	require.Equal(t, []store.Outcome{store.Duplicate, store.Conflict, store.Inserted}, out, "1.5 equals the stored 1.50 numerically")

	conn, err := pgx.Connect(ctx, url)
	require.NoError(t, err)
	defer conn.Close(ctx)
	var n int
	var v15 string
	var factor int64
	require.NoError(t, conn.QueryRow(ctx, `SELECT count(*) FROM meter_readings`).Scan(&n))
	require.Equal(t, 3, n)
	require.NoError(t, conn.QueryRow(ctx, `SELECT value::text, factor FROM meter_readings WHERE ts = $1`, t0.Add(15*time.Minute)).Scan(&v15, &factor))
	require.Equal(t, "2", v15, "a conflict never overwrites")
	require.Equal(t, int64(100), factor)
	require.NoError(t, conn.QueryRow(ctx, `SELECT count(*) FROM staged_meter_readings WHERE meter_device_name = 'future'`).Scan(&n))
	require.Equal(t, 1, n)

	t.Run("a stale catalog version writes nothing", func(t *testing.T) {
		v, err := st.CatalogVersion(ctx)
		require.NoError(t, err)
		for _, n := range []int{1, 1500} { // the one-statement path and the COPY path
			rows := make([]store.ReadingRow, n)
			for i := range rows {
				rows[i] = row(-100_000+i, "8")
			}
			staged := []store.StagedRow{{Device: "stale", Series: "1.8.0", Time: t0, Value: apdDec(t, "1")}}
			_, err = st.WriteReadings(ctx, v-1, rows, staged)
			var stale *store.StaleCatalogError
			require.ErrorAs(t, err, &stale)
			require.ErrorIs(t, err, store.ErrStaleCatalog)
			require.Equal(t, v, stale.Version, "the error names the version found")
			var got int
			require.NoError(t, conn.QueryRow(ctx, `SELECT count(*) FROM meter_readings WHERE ts < $1`, t0.Add(-50_000*time.Minute)).Scan(&got))
			require.Zero(t, got)
			require.NoError(t, conn.QueryRow(ctx, `SELECT count(*) FROM staged_meter_readings WHERE meter_device_name = 'stale'`).Scan(&got))
			require.Zero(t, got)

			out, err := st.WriteReadings(ctx, v, rows, staged)
			require.NoError(t, err, "the current version writes")
			require.Len(t, out, n+1)
			require.NoError(t, conn.QueryRow(ctx, `SELECT count(*) FROM meter_readings WHERE ts < $1`, t0.Add(-50_000*time.Minute)).Scan(&got))
			require.Equal(t, n, got)
			storetest.Exec(t, url, `DELETE FROM meter_readings WHERE ts < $1`, t0.Add(-50_000*time.Minute))
			storetest.Exec(t, url, `DELETE FROM staged_meter_readings WHERE meter_device_name = 'stale'`)
		}
	})

	t.Run("large batches sort duplicates and conflicts too", func(t *testing.T) {
		rows := make([]store.ReadingRow, 1200) // above the COPY threshold
		for i := range rows {
			rows[i] = row(-200_000+i, "6")
		}
		out, err := st.WriteReadings(ctx, store.AnyCatalog, rows[:1100], nil)
		require.NoError(t, err)
		require.Equal(t, store.Inserted, out[1099])
		rows[0].Value = apdDec(t, "7")
		out, err = st.WriteReadings(ctx, store.AnyCatalog, rows, nil)
		require.NoError(t, err, "a COPY that meets stored keys falls back to the INSERT")
		require.Equal(t, store.Conflict, out[0])
		require.Equal(t, store.Duplicate, out[1])
		require.Equal(t, store.Duplicate, out[1099])
		require.Equal(t, store.Inserted, out[1100])
		require.Equal(t, store.Inserted, out[1199])
		var got int
		require.NoError(t, conn.QueryRow(ctx, `SELECT count(*) FROM meter_readings WHERE ts >= $1 AND ts < $2`,
			t0.Add(-200_000*time.Minute), t0.Add(-150_000*time.Minute)).Scan(&got))
		require.Equal(t, 1200, got)
	})

	t.Run("exact values survive", func(t *testing.T) {
		big := "123456789012345678901234567890.000000000000000000000000000001"
		out, err := st.WriteReadings(ctx, store.AnyCatalog, []store.ReadingRow{row(45, big), row(60, "-0.000000001")}, nil)
		require.NoError(t, err)
		require.Equal(t, []store.Outcome{store.Inserted, store.Inserted}, out)
		var got string
		require.NoError(t, conn.QueryRow(ctx, `SELECT value::text FROM meter_readings WHERE ts = $1`, t0.Add(45*time.Minute)).Scan(&got))
		require.Equal(t, big, got)
		require.NoError(t, conn.QueryRow(ctx, `SELECT value::text FROM meter_readings WHERE ts = $1`, t0.Add(60*time.Minute)).Scan(&got))
		require.Equal(t, "-0.000000001", got)
	})

	t.Run("concurrent writers of the same keys store each once", func(t *testing.T) {
		rows := make([]store.ReadingRow, 200)
		for i := range rows {
			rows[i] = row(10_000+i, "5")
		}
		var wg sync.WaitGroup
		results := make([][]store.Outcome, 4)
		errs := make([]error, 4)
		for w := 0; w < 4; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				results[w], errs[w] = st.WriteReadings(ctx, store.AnyCatalog, rows, nil)
			}()
		}
		wg.Wait()
		inserted := 0
		for w := 0; w < 4; w++ {
			require.NoError(t, errs[w])
			for _, o := range results[w] {
				require.NotEqual(t, store.Conflict, o)
				if o == store.Inserted {
					inserted++
				}
			}
		}
		require.Equal(t, 200, inserted, "each key inserted by exactly one writer")
		require.NoError(t, conn.QueryRow(ctx, `SELECT count(*) FROM meter_readings WHERE ts >= $1`, t0.Add(10_000*time.Minute)).Scan(&n))
		require.Equal(t, 200, n)
	})
}

// TestStagingKey: a staged reading is staged once, whatever sends it again: in one
// batch, in two, through the one-statement path and the large path, concurrently, and
// through the staged-readings routes; another value for it is a conflict.
func TestStagingKey(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st, url := storetest.New(t)
	fleet(t, ctx, url)
	t0 := time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)
	stage := func(dev string, minutes int, v string) store.StagedRow {
		return store.StagedRow{Device: dev, Series: "1.8.0", Time: t0.Add(time.Duration(minutes) * time.Minute), Value: apdDec(t, v)}
	}
	count := func(dev string) int {
		var n int
		storetest.Query(t, url, `SELECT count(*)::int FROM staged_meter_readings WHERE meter_device_name = $1`, []any{dev}, &n)
		return n
	}
	all := func(n int, o store.Outcome) []store.Outcome {
		out := make([]store.Outcome, n)
		for i := range out {
			out[i] = o
		}
		return out
	}
	const I, D, C = store.Inserted, store.Duplicate, store.Conflict

	t.Run("small batches", func(t *testing.T) {
		civil := stage("s1", 0, "1")
		civil.Civil = civil.Time // sent without an offset: another reading than one with it
		out, err := st.WriteReadings(ctx, store.AnyCatalog, nil, []store.StagedRow{
			stage("s1", 0, "1"), stage("s1", 0, "1.00"), stage("s1", 0, "2"), stage("s1", 15, "3"), civil, civil})
		require.NoError(t, err)
		require.Equal(t, []store.Outcome{I, D, C, I, I, D}, out, "repeats in one batch: 1.00 is 1, 2 is another value")
		require.Equal(t, 3, count("s1"))
		out, err = st.WriteReadings(ctx, store.AnyCatalog, nil, []store.StagedRow{
			stage("s1", 15, "3"), stage("s1", 0, "1"), stage("s1", 0, "5"), stage("s1", 30, "4"), civil})
		require.NoError(t, err)
		require.Equal(t, []store.Outcome{D, D, C, I, D}, out, "a second batch")
		require.Equal(t, 4, count("s1"))
		var v string
		storetest.Query(t, url, `SELECT value::text FROM staged_meter_readings WHERE meter_device_name = 's1' AND ts = $1 AND local_time IS NULL`,
			[]any{t0}, &v)
		require.Equal(t, "1", v, "the first value stays")
	})

	t.Run("large batches", func(t *testing.T) {
		rows := make([]store.StagedRow, 1200) // above the COPY threshold: the transaction path
		for i := range rows {
			rows[i] = stage(fmt.Sprintf("l%d", i%50), i, "7")
		}
		out, err := st.WriteReadings(ctx, store.AnyCatalog, nil, append(rows, rows[0], rows[1]))
		require.NoError(t, err)
		require.Equal(t, append(all(1200, I), D, D), out)
		rows[5].Value = apdDec(t, "8")
		out, err = st.WriteReadings(ctx, store.AnyCatalog, nil, rows)
		require.NoError(t, err)
		want := all(1200, D)
		want[5] = C
		require.Equal(t, want, out, "the whole batch again")
		var n int
		storetest.QueryRow(t, url, `SELECT count(*)::int FROM staged_meter_readings WHERE meter_device_name LIKE 'l%'`, &n)
		require.Equal(t, 1200, n)
		// Readings and staged readings in one large batch: the readings' outcomes first.
		m1 := deviceInfo(t, ctx, st, "m1")
		readings := make([]store.ReadingRow, 1000)
		for i := range readings {
			readings[i] = store.ReadingRow{DeviceKey: m1.Key, SeriesKey: m1.Series["1.8.0"].Key,
				Time: t0.Add(time.Duration(i) * time.Minute), Value: apdDec(t, "1"), Factor: 1}
		}
		out, err = st.WriteReadings(ctx, store.AnyCatalog, readings, rows[:2])
		require.NoError(t, err)
		require.Equal(t, append(all(1000, I), D, D), out)
	})

	t.Run("concurrent writers stage each reading once", func(t *testing.T) {
		// Four writers send the same readings at once, two through each path; with the
		// staging lock, the one that stages a reading commits before another looks it up.
		small := make([]store.StagedRow, 300)
		for i := range small {
			small[i] = stage(fmt.Sprintf("c%d", i%7), i, "5")
		}
		large := append(append([]store.StagedRow(nil), small...), make([]store.StagedRow, 900)...)
		for i := 300; i < len(large); i++ {
			large[i] = stage(fmt.Sprintf("c%d", i%7), 10_000+i, "5") // more rows, above the threshold
		}
		var wg sync.WaitGroup
		results := make([][]store.Outcome, 4)
		errs := make([]error, 4)
		for w := 0; w < 4; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				rows := small
				if w%2 == 1 {
					rows = large
				}
				results[w], errs[w] = st.WriteReadings(ctx, store.AnyCatalog, nil, rows)
			}()
		}
		wg.Wait()
		staged := map[int]int{}
		for w := 0; w < 4; w++ {
			require.NoError(t, errs[w])
			for i, o := range results[w] {
				require.NotEqual(t, C, o)
				if o == I {
					staged[i]++
				}
			}
		}
		for i := 0; i < len(large); i++ {
			require.Equal(t, 1, staged[i], "reading %d staged by exactly one writer", i)
		}
		var n int
		storetest.QueryRow(t, url, `SELECT count(*)::int FROM staged_meter_readings WHERE meter_device_name LIKE 'c%'`, &n)
		require.Equal(t, len(large), n)
	})

	t.Run("the staged-readings routes", func(t *testing.T) {
		in := store.StagedReading{DeviceName: "r1", SeriesName: "1.8.0", Time: t0}
		in.Value = store.DecimalOf(15)
		first, err := st.CreateStaged(ctx, in)
		require.NoError(t, err)
		again, err := st.CreateStaged(ctx, in)
		require.NoError(t, err, "a re-send answers the staged row")
		require.Equal(t, first.ID, again.ID)
		require.Equal(t, 1, count("r1"))
		in.Value = store.DecimalOf(2)
		_, err = st.CreateStaged(ctx, in)
		require.ErrorIs(t, err, store.ErrConflict, "another value for a staged reading")
		in.Time = t0.Add(time.Hour)
		second, err := st.CreateStaged(ctx, in)
		require.NoError(t, err)
		require.Equal(t, 2, count("r1"))
		in.Time = t0
		_, err = st.UpdateStaged(ctx, second.ID, in)
		require.ErrorIs(t, err, store.ErrConflict, "moving a staged reading onto another one's key")
		in.Time = t0.Add(2 * time.Hour)
		moved, err := st.UpdateStaged(ctx, second.ID, in)
		require.NoError(t, err)
		require.Equal(t, "2", moved.Value.String())
		require.Equal(t, "15", first.Value.String())
		_, err = st.UpdateStaged(ctx, second.ID, in)
		require.NoError(t, err, "a staged reading keeps its own key")
	})
}

func TestPromoteStaged(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st, url := storetest.New(t)
	fleet(t, ctx, url)
	t0 := time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)
	stage := func(series string, minutes int, v string) store.StagedRow {
		return store.StagedRow{Device: "m9", Series: series, Time: t0.Add(time.Duration(minutes) * time.Minute), Value: apdDec(t, v)}
	}
	out, err := st.WriteReadings(ctx, store.AnyCatalog, nil, []store.StagedRow{
		stage("1.8.0", 0, "1"), stage("1.8.0", 15, "2"), stage("2.8.0", 0, "3"),
		stage("other", 0, "4"),   // not in the config: stays
		stage("1.8.0", 0, "1.0"), // repeat, same value: a duplicate, not staged again
		stage("1.8.0", 15, "9"),  // repeat, another value: a conflict, not staged
		// sent without offset: wall clock 12:00, staged at the default zone (UTC here)
		{Device: "m9", Series: "1.8.0", Time: t0.Add(2 * time.Hour), Civil: t0.Add(2 * time.Hour), Value: apdDec(t, "5")},
		// a wall clock that Stockholm skips (spring forward): stays staged
		{Device: "m9", Series: "1.8.0", Time: time.Date(2026, 3, 29, 2, 30, 0, 0, time.UTC), Civil: time.Date(2026, 3, 29, 2, 30, 0, 0, time.UTC), Value: apdDec(t, "6")},
	})
	require.NoError(t, err)
	require.Equal(t, []store.Outcome{store.Inserted, store.Inserted, store.Inserted, store.Inserted, store.Duplicate, store.Conflict,
		store.Inserted, store.Inserted}, out)
	// A staged row whose key (with value 9) was staged before this key existed: migration
	// 0005 keeps such rows, and promotion takes the oldest.
	storetest.Exec(t, url, `INSERT INTO staged_meter_readings (meter_device_name, series_name, ts, value) VALUES ('m9', '1.8.0', $1, 9)`,
		t0.Add(15*time.Minute))
	storetest.Exec(t, url, `INSERT INTO meter_devices (organization_id, name, protocol, type_id, has_current_transformer, current_transformer_ratio)
		SELECT organization_id, 'm9', 'mbus', type_id, true, 10 FROM meter_devices WHERE name = 'm1'`)

	// Two promotions race: between them every staged reading is handled once.
	var wg sync.WaitGroup
	var written, cleared [2]int64
	for i := 0; i < 2; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var err error
			written[i], cleared[i], err = st.PromoteStaged(ctx, "m9")
			require.NoError(t, err)
		}()
	}
	wg.Wait()
	require.Equal(t, int64(4), written[0]+written[1], "written %v cleared %v", written, cleared)
	require.Equal(t, int64(4), cleared[0]+cleared[1])

	var n int
	var factor int64
	storetest.QueryRow(t, url, `SELECT count(*)::int FROM meter_readings r JOIN meter_devices d ON d.key = r.device_key WHERE d.name = 'm9'`, &n)
	require.Equal(t, 4, n)
	storetest.QueryRow(t, url, fmt.Sprintf(`SELECT count(*)::int FROM meter_readings WHERE ts = '%s'`, t0.Add(time.Hour).Format(time.RFC3339)), &n)
	require.Equal(t, 1, n, "12:00 Stockholm wall clock is 11:00Z, read in the config's zone at promotion")
	storetest.QueryRow(t, url, `SELECT r.factor FROM meter_readings r JOIN meter_devices d ON d.key = r.device_key
		JOIN meter_reading_series s ON s.key = r.series_key WHERE d.name = 'm9' AND s.name = '2.8.0'`, &factor)
	require.Equal(t, int64(10), factor, "CT 10; the device has no VT")
	storetest.QueryRow(t, url, `SELECT count(*)::int FROM staged_meter_readings`, &n)
	require.Equal(t, 3, n, "the series not allowed, the older row of another value and the skipped wall clock stay staged")
}

// TestReadingIndexes: the readings' indexes after every migration, on the hypertable and
// on a chunk made by a write: the unique key, the id, and time as BRIN (no B-tree on ts,
// the hot spot of concurrent writers, see schema/0003_readings_ts_brin.sql).
func TestReadingIndexes(t *testing.T) {
	_, url := storetest.New(t)
	fleet(t, context.Background(), url)
	storetest.Exec(t, url, `INSERT INTO meter_readings (device_key, series_key, ts, value) VALUES (1, 1, '2026-03-01T00:00:00Z', 1)`)
	methods := func(table string) map[string]string {
		got := map[string]string{}
		for _, r := range storetest.Rows(t, url, `SELECT i.relname::text, am.amname::text FROM pg_index x
			JOIN pg_class i ON i.oid = x.indexrelid JOIN pg_am am ON am.oid = i.relam
			WHERE x.indrelid = $1::regclass`, table) {
			got[r[0].(string)] = r[1].(string)
		}
		return got
	}
	require.Equal(t, map[string]string{"meter_readings_key_idx": "btree", "meter_readings_id_idx": "btree", "meter_readings_ts_brin": "brin",
		"meter_readings_created_brin": "brin"}, methods("meter_readings"))
	var chunk string
	storetest.QueryRow(t, url, `SELECT format('%I.%I', chunk_schema, chunk_name) FROM timescaledb_information.chunks WHERE hypertable_name = 'meter_readings'`, &chunk)
	am := slices.Sorted(maps.Values(methods(chunk)))
	require.Equal(t, []string{"brin", "brin", "btree", "btree"}, am, "the chunk has the same four indexes")
}

func TestDevicePage(t *testing.T) {
	st, url := storetest.New(t)
	ctx := context.Background()
	fleet(t, ctx, url)
	storetest.Exec(t, url, `INSERT INTO meter_devices (organization_id, name, protocol, type_id)
		SELECT organization_id, 'm' || g, protocol, type_id FROM meter_devices, generate_series(2, 5) g WHERE name = 'm1'`)
	want, err := st.CatalogVersion(ctx)
	require.NoError(t, err)
	var names []string
	var after int32
	for {
		v, page, err := st.DevicePage(ctx, after, 2)
		require.NoError(t, err)
		if len(page) == 0 {
			break
		}
		require.Equal(t, want, v, "the version of the same snapshot")
		require.LessOrEqual(t, len(page), 2)
		for _, d := range page {
			require.Greater(t, d.Key, after, "key order")
			after = d.Key
			names = append(names, d.Name)
		}
	}
	require.Equal(t, []string{"m1", "m2", "m3", "m4", "m5"}, names)
	_, page, err := st.DevicePage(ctx, 0, 1)
	require.NoError(t, err)
	require.Equal(t, int64(100), page[0].CTRatio, "what a lookup by name returns")
	require.Equal(t, int64(20), page[0].VTRatio)
	require.NotNil(t, page[0].TypeID)
}

func TestReadingTarget(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st, url := storetest.New(t)
	fleet(t, ctx, url)
	var org, dev, s1, foreign uuid.UUID
	storetest.QueryRow(t, url, `SELECT organization_id, id FROM meter_devices WHERE name = 'm1'`, &org, &dev)
	storetest.QueryRow(t, url, `SELECT id FROM meter_reading_series WHERE name = '1.8.0'`, &s1)
	storetest.QueryRow(t, url, `WITH o AS (INSERT INTO organizations (name) VALUES ('o2') RETURNING id)
		INSERT INTO meter_reading_series (organization_id, name, unit) SELECT id, '1.8.0', 'kWh' FROM o RETURNING id`, &foreign)
	m1 := deviceInfo(t, ctx, st, "m1")

	for _, sc := range []store.Scope{store.AllOrgs, store.OrgScope(org)} {
		got, err := st.ReadingTarget(ctx, sc, dev, s1)
		require.NoError(t, err)
		require.Equal(t, store.ReadingTarget{DeviceKey: m1.Key, SeriesKey: m1.Series["1.8.0"].Key, DeviceName: "m1", SeriesName: "1.8.0"}, got)
	}
	for name, tc := range map[string]struct {
		sc             store.Scope
		device, series uuid.UUID
		field          string
	}{
		"device out of scope":            {store.OrgScope(uuid.New()), dev, s1, "meter_device"},
		"no such device":                 {store.AllOrgs, uuid.New(), s1, "meter_device"},
		"series of another organization": {store.AllOrgs, dev, foreign, "series"},
		"no such series":                 {store.AllOrgs, dev, uuid.New(), "series"},
	} {
		_, err := st.ReadingTarget(ctx, tc.sc, tc.device, tc.series)
		var fe *store.FieldError
		require.ErrorAs(t, err, &fe, name)
		require.Equal(t, tc.field, fe.Field, name)
		require.Contains(t, fe.Msg, "object does not exist", name)
	}
}
