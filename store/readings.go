package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/cockroachdb/apd/v3"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
)

// DeviceInfo is what reading ingestion needs to know of a meter device: its keys, its
// config's time zone, the CT/VT ratios in effect and the series its config allows.
type DeviceInfo struct {
	Key            int32
	ID             uuid.UUID
	OrganizationID *uuid.UUID
	HasConfig      bool
	TimeZone       string // the config's; "" without a config
	CTRatio        int64  // 1 unless the device has a current transformer
	VTRatio        int64  // 1 unless the device has a voltage transformer
	Series         map[string]SeriesInfo
}

// SeriesInfo is an allowed series of a device.
type SeriesInfo struct {
	Key int32
	CT  bool // affected by the CT ratio
	VT  bool // affected by the VT ratio
}

// CatalogVersion returns the number that every change to devices, types, configs or
// series bumps (schema trigger): a name cache filled at another version is stale.
// WriteReadings checks it too, in the transaction that writes.
func (s *Store) CatalogVersion(ctx context.Context) (int64, error) {
	var v int64
	err := s.pool.QueryRow(ctx, `SELECT version FROM catalog_version`).Scan(&v)
	return v, mapErr("reading the catalog version", err)
}

// DeviceRef is a meter device as ingestion finds it (by name, or by key for a reading
// given by ids): its keys, organization, type and the CT/VT ratios in effect.
type DeviceRef struct {
	Key            int32
	ID             uuid.UUID
	OrganizationID *uuid.UUID
	TypeID         *uuid.UUID
	CTRatio        int64 // 1 unless the device has a current transformer
	VTRatio        int64 // 1 unless the device has a voltage transformer
}

// Info is the device with its type's config, taken from types (the configs of its type
// and others'); a device without type, or whose type is missing from types, has none.
func (r DeviceRef) Info(types map[uuid.UUID]TypeConfig) DeviceInfo {
	var c TypeConfig
	if r.TypeID != nil {
		c = types[*r.TypeID]
	}
	d := DeviceInfo{Key: r.Key, ID: r.ID, OrganizationID: r.OrganizationID, CTRatio: r.CTRatio, VTRatio: r.VTRatio,
		HasConfig: c.HasConfig, TimeZone: c.TimeZone, Series: c.Series}
	if d.Series == nil {
		d.Series = map[string]SeriesInfo{}
	}
	return d
}

// TypeConfig is what a device type's config says to ingestion: whether there is one, its
// time zone and the series it allows.
type TypeConfig struct {
	HasConfig bool
	TimeZone  string
	Series    map[string]SeriesInfo
}

// DeviceRefs finds the named devices; names that are not devices are absent from the
// map. It reads one table by its unique name index, so that a batch of readings for
// devices not cached yet costs one small query (the series of their configs, the same
// for thousands of devices, are TypeConfigs', cached apart).
func (s *Store) DeviceRefs(ctx context.Context, names []string) (map[string]DeviceRef, error) {
	out := make(map[string]DeviceRef, len(names))
	err := s.deviceRefs(ctx, `name = ANY($1)`, names, func(d *NamedDeviceRef) { out[d.Name] = d.DeviceRef })
	return out, err
}

// DeviceRefsByKey finds the devices of keys; keys that are not devices' are absent from
// the map. It serves readings whose caller resolved their device by id (AddResolved of
// ingest).
func (s *Store) DeviceRefsByKey(ctx context.Context, keys []int32) (map[int32]DeviceRef, error) {
	out := make(map[int32]DeviceRef, len(keys))
	err := s.deviceRefs(ctx, `key = ANY($1)`, keys, func(d *NamedDeviceRef) { out[d.Key] = d.DeviceRef })
	return out, err
}

// deviceRefs calls found with each device that where (a condition on meter_devices with
// one parameter, arg) selects.
func (s *Store) deviceRefs(ctx context.Context, where string, arg any, found func(*NamedDeviceRef)) error {
	rows, err := s.pool.Query(ctx, `SELECT `+deviceRefCols+` FROM meter_devices WHERE `+where, arg)
	if err != nil {
		return mapErr("resolving meter devices", err)
	}
	defer rows.Close()
	for rows.Next() {
		var d NamedDeviceRef
		if err := rows.Scan(d.dest()...); err != nil {
			return mapErr("resolving meter devices", err)
		}
		found(&d)
	}
	return mapErr("resolving meter devices", rows.Err())
}

// ReadingTarget is the device and the series of a reading given by ids (POST
// meter-readings): their keys, which the readings table holds, and their names, which
// ingestion's messages quote.
type ReadingTarget struct {
	DeviceKey, SeriesKey   int32
	DeviceName, SeriesName string
}

// ReadingTarget finds a device in scope and a series of the device's organization, for
// writing a reading given by their ids. A device out of scope (or none) is a FieldError
// on meter_device; a series of another organization (or none), one on series.
func (s *Store) ReadingTarget(ctx context.Context, sc Scope, device, series uuid.UUID) (ReadingTarget, error) {
	all, orgs := sc.args()
	var t ReadingTarget
	var seriesKey *int32
	var seriesName *string
	err := s.pool.QueryRow(ctx, `SELECT d.key, d.name, s.key, s.name FROM meter_devices d
		LEFT JOIN meter_reading_series s ON s.id = $2 AND s.organization_id IS NOT DISTINCT FROM d.organization_id
		WHERE d.id = $1 AND ($3 OR d.organization_id = ANY($4))`, device, series, all, orgs).
		Scan(&t.DeviceKey, &t.DeviceName, &seriesKey, &seriesName)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return t, &FieldError{Field: "meter_device", Msg: fmt.Sprintf("Invalid pk \"%s\" - object does not exist.", device)}
	case err != nil:
		return t, mapErr("resolving a meter device and a series", err)
	case seriesKey == nil:
		return t, &FieldError{Field: "series", Msg: fmt.Sprintf("Invalid pk \"%s\" - object does not exist.", series)}
	}
	t.SeriesKey, t.SeriesName = *seriesKey, *seriesName
	return t, nil
}

// deviceRefCols are the columns of meter_devices that a NamedDeviceRef scans (dest).
const deviceRefCols = `name, key, id, organization_id, type_id,
	CASE WHEN has_current_transformer THEN current_transformer_ratio ELSE 1 END,
	CASE WHEN has_voltage_transformer THEN voltage_transformer_ratio ELSE 1 END`

// NamedDeviceRef is a device with its name, as DevicePage lists them.
type NamedDeviceRef struct {
	Name string
	DeviceRef
}

func (d *NamedDeviceRef) dest() []any {
	return []any{&d.Name, &d.Key, &d.ID, &d.OrganizationID, &d.TypeID, &d.CTRatio, &d.VTRatio}
}

// DevicePage returns up to limit devices whose keys follow after, in key order, and the
// catalog version they were read at (the same statement, so the same snapshot): what
// ingestion loads its name cache with ahead of the readings.
func (s *Store) DevicePage(ctx context.Context, after int32, limit int) (int64, []NamedDeviceRef, error) {
	rows, err := s.pool.Query(ctx, `SELECT (SELECT version FROM catalog_version), `+deviceRefCols+`
		FROM meter_devices WHERE key > $1 ORDER BY key LIMIT $2`, after, limit)
	if err != nil {
		return 0, nil, mapErr("listing meter devices", err)
	}
	defer rows.Close()
	var version int64
	out := make([]NamedDeviceRef, 0, limit)
	for rows.Next() {
		var d NamedDeviceRef
		if err := rows.Scan(append([]any{&version}, d.dest()...)...); err != nil {
			return 0, nil, mapErr("listing meter devices", err)
		}
		out = append(out, d)
	}
	return version, out, mapErr("listing meter devices", rows.Err())
}

// TypeConfigs returns the config of each device type (HasConfig false for a type without
// one); ids that are not types are absent from the map. Types of one config share its
// Series map: read it, never write it.
func (s *Store) TypeConfigs(ctx context.Context, typeIDs []uuid.UUID) (map[uuid.UUID]TypeConfig, error) {
	out := make(map[uuid.UUID]TypeConfig, len(typeIDs))
	if len(typeIDs) == 0 {
		return out, nil
	}
	rows, err := s.pool.Query(ctx, `
		SELECT t.id, c.id, coalesce(c.timezone, ''),
			coalesce(array_agg(s.name) FILTER (WHERE s.id IS NOT NULL), '{}'),
			coalesce(array_agg(s.key) FILTER (WHERE s.id IS NOT NULL), '{}'),
			coalesce(array_agg(s.affected_by_ct_ratio) FILTER (WHERE s.id IS NOT NULL), '{}'),
			coalesce(array_agg(s.affected_by_vt_ratio) FILTER (WHERE s.id IS NOT NULL), '{}')
		FROM meter_device_types t
		LEFT JOIN meter_device_configs c ON c.id = t.config_id
		LEFT JOIN meter_device_config_series cs ON cs.config_id = c.id
		LEFT JOIN meter_reading_series s ON s.id = cs.series_id
		WHERE t.id = ANY($1)
		GROUP BY t.id, c.id`, typeIDs)
	if err != nil {
		return nil, mapErr("resolving meter device types", err)
	}
	defer rows.Close()
	byConfig := map[uuid.UUID]TypeConfig{}
	for rows.Next() {
		var (
			typ      uuid.UUID
			cfg      *uuid.UUID
			c        TypeConfig
			sn       []string
			sk       []int32
			sct, svt []bool
		)
		if err := rows.Scan(&typ, &cfg, &c.TimeZone, &sn, &sk, &sct, &svt); err != nil {
			return nil, mapErr("resolving meter device types", err)
		}
		if cfg == nil {
			out[typ] = TypeConfig{}
			continue
		}
		if shared, ok := byConfig[*cfg]; ok {
			out[typ] = shared
			continue
		}
		c.HasConfig = true
		c.Series = make(map[string]SeriesInfo, len(sn))
		for i := range sn {
			c.Series[sn[i]] = SeriesInfo{Key: sk[i], CT: sct[i], VT: svt[i]}
		}
		byConfig[*cfg] = c
		out[typ] = c
	}
	return out, mapErr("resolving meter device types", rows.Err())
}

// ReadingRow is one validated reading for the readings hypertable. Rows of one write
// must have distinct (DeviceKey, SeriesKey, Time).
type ReadingRow struct {
	DeviceKey int32
	SeriesKey int32
	Time      time.Time
	Value     apd.Decimal
	Factor    int64
}

// ReadingKey is what makes a reading unique in the readings table: its device, series
// and time, in microseconds (what PostgreSQL keeps). Ingestion keys a batch's rows by it
// to settle readings sent twice, and the writer to match the keys an INSERT returned.
type ReadingKey struct {
	Device, Series int32
	Micros         int64
}

// Key is the row's ReadingKey.
func (r *ReadingRow) Key() ReadingKey {
	return ReadingKey{r.DeviceKey, r.SeriesKey, r.Time.UnixMicro()}
}

// StagedRow is a reading for a device name that does not exist yet.
type StagedRow struct {
	Device string
	Series string
	Time   time.Time
	Value  apd.Decimal
	// Civil is the wall-clock time of a reading sent without a UTC offset (its fields, in
	// UTC's location), which promotion reads in the device config's zone; zero otherwise.
	Civil time.Time
}

// Outcome is what became of one ReadingRow.
type Outcome uint8

// Outcomes of a written reading.
const (
	Inserted  Outcome = iota
	Duplicate         // the same value was stored already: absorbed
	Conflict          // a different value is stored for the key: not written
)

// ErrStaleCatalog is the error of a write whose names were resolved at a catalog version
// that is no longer the database's: nothing was written, and the caller resolves again.
var ErrStaleCatalog = errors.New("the catalog changed since the names were resolved")

// StaleCatalogError is an ErrStaleCatalog that carries the version the write found.
type StaleCatalogError struct{ Version int64 }

func (e *StaleCatalogError) Error() string {
	return fmt.Sprintf("writing readings: catalog version %d: %v", e.Version, ErrStaleCatalog)
}

// Unwrap makes errors.Is(err, ErrStaleCatalog) true.
func (e *StaleCatalogError) Unwrap() error { return ErrStaleCatalog }

// AnyCatalog tells WriteReadings not to check the catalog version.
const AnyCatalog int64 = -1

// WriteReadings stores readings and staged readings in one transaction, and says for
// each reading whether it was inserted, a duplicate of what is stored, or a conflict with
// it: one Outcome per row of rows, then one per row of staged. Nothing is overwritten. It
// returns only after the transaction committed.
//
// A staged reading is staged once: Inserted when it was staged, Duplicate when the same
// device name, series, time (and wall-clock time) is staged already with the same value,
// or earlier in the batch, Conflict when another value is staged for it (the first one
// stays, as for stored readings). See amrd_stage_readings (schema 0005).
//
// catalog is the catalog version the rows were resolved at (device and series keys,
// factors, which names are unknown and staged): the transaction checks it and, if the
// catalog has moved since, writes nothing and returns a *StaleCatalogError. So a name
// cache needs no read of its own before each batch, and a batch never commits names that
// another replica changed before it.
//
// A small batch is one statement in an implicit transaction (one round trip, its commit
// included): it checks the version, inserts readings with ON CONFLICT DO NOTHING and
// stages the rest. A large batch of new readings goes into the hypertable with one COPY
// in an explicit transaction. When that meets an existing key, the COPY is rolled back to
// a savepoint and the rows take the INSERT. Rows the INSERT skipped are then sorted into
// duplicates and conflicts by one more query.
func (s *Store) WriteReadings(ctx context.Context, catalog int64, rows []ReadingRow, staged []StagedRow) ([]Outcome, error) {
	out := make([]Outcome, len(rows)+len(staged))
	var err error
	if len(rows) < copyThreshold && len(staged) < copyThreshold {
		// One statement, its own implicit transaction.
		if err = s.writeSmall(ctx, catalog, rows, staged, out[:len(rows)], out[len(rows):]); fromDatabase(err) {
			err = mapErr("writing readings", err)
		}
	} else {
		err = s.inTx(ctx, "writing readings", func(tx pgx.Tx) error {
			return writeLarge(ctx, tx, catalog, rows, staged, out[:len(rows)], out[len(rows):])
		})
	}
	if err != nil {
		return nil, err // a *StaleCatalogError as it is: nothing was written
	}
	return out, nil
}

var readingCols = []string{"device_key", "series_key", "ts", "value", "factor"}

func readingSource(rows []ReadingRow) pgx.CopyFromSource {
	return pgx.CopyFromSlice(len(rows), func(i int) ([]any, error) {
		r := &rows[i]
		return []any{r.DeviceKey, r.SeriesKey, r.Time, numeric{&r.Value}, r.Factor}, nil
	})
}

// copyThreshold: from this many rows a write tries one COPY first (the fastest path for
// new readings); smaller batches, as single-reading requests make, take the one INSERT
// statement, which costs one round trip where a COPY in a transaction costs five (BEGIN,
// SAVEPOINT, COPY, RELEASE, COMMIT).
const copyThreshold = 1000

// stagedArrays are a batch's staged readings as the parameters of amrd_stage_readings.
type stagedArrays struct {
	name, series []string
	ts           []time.Time
	local        []pgtype.Timestamp // NULL unless sent without an offset
	val          []string
}

func stageArrays(staged []StagedRow) stagedArrays {
	a := stagedArrays{name: make([]string, len(staged)), series: make([]string, len(staged)), ts: make([]time.Time, len(staged)),
		local: make([]pgtype.Timestamp, len(staged)), val: make([]string, len(staged))}
	for i := range staged {
		r := &staged[i]
		a.name[i], a.series[i], a.ts[i], a.val[i] = r.Device, r.Series, r.Time, r.Value.String()
		if !r.Civil.IsZero() {
			a.local[i] = pgtype.Timestamp{Time: r.Civil, Valid: true}
		}
	}
	return a
}

// writeSmallSQL is writeSmall's statement. Staging adds the stg CTE and a fifth column,
// NULL but in one more row, which carries the staged readings' outcomes (in their order)
// as an array.
func writeSmallSQL(staging bool) string {
	stg, outcomes, stagedRow := "", "", ""
	if staging {
		// amrd_stage_readings runs only when the version is right (its first argument).
		stg = `,
		stg AS (SELECT * FROM amrd_stage_readings((SELECT EXISTS (SELECT FROM ok)), $7::text[], $8::text[], $9::timestamptz[],
			$10::timestamp[], $11::text[]::numeric[]))`
		outcomes = ", NULL::int2[]"
		stagedRow = `
		UNION ALL SELECT cv.version, NULL, NULL, NULL, (SELECT array_agg(stg.outcome ORDER BY stg.i) FROM stg) FROM cv`
	}
	return `
		WITH cv AS (SELECT version FROM catalog_version),
		ok AS (SELECT FROM cv WHERE $1::int8 < 0 OR version = $1::int8),
		ins AS (
			INSERT INTO meter_readings (device_key, series_key, ts, value, factor)
			SELECT * FROM unnest($2::int4[], $3::int4[], $4::timestamptz[], $5::text[]::numeric[], $6::int8[])
			WHERE EXISTS (SELECT FROM ok)
			ON CONFLICT (device_key, series_key, ts) DO NOTHING
			RETURNING device_key, series_key, ts, value, factor),
		mk AS (` + markSQL("ins", false) + `)` + stg + `
		SELECT cv.version, ins.device_key, ins.series_key, ins.ts` + outcomes + ` FROM cv LEFT JOIN ins ON true` + stagedRow
}

var (
	writeSmallReadings = writeSmallSQL(false)
	writeSmallStaging  = writeSmallSQL(true)
)

// writeSmall writes a small batch in one statement: one round trip, in an implicit
// transaction that commits when the statement ends. out and stagedOut take the outcomes
// of rows and staged.
func (s *Store) writeSmall(ctx context.Context, catalog int64, rows []ReadingRow, staged []StagedRow, out, stagedOut []Outcome) error {
	a := readingArrays(rows)
	// One statement, so one snapshot: the version it checks is the one its inserts are
	// made under, and a stale version inserts nothing. Inserted readings at or below the
	// rollup threshold mark their rollup buckets in the same statement (mk). Values travel as text and become
	// numeric in SQL: exact, no float64. Every output row carries the version, and one
	// inserted key (or NULLs when none was); with staged readings, one more row their
	// outcomes. Without staged readings the statement has no staging part at all.
	args := []any{catalog, a.dev, a.ser, a.ts, a.val, a.fac}
	sql := writeSmallReadings
	if len(staged) > 0 {
		sa := stageArrays(staged)
		args = append(args, sa.name, sa.series, sa.ts, sa.local, sa.val)
		sql = writeSmallStaging
	}
	res, err := s.pool.Query(ctx, sql, args...)
	if err != nil {
		return fmt.Errorf("inserting readings: %w", err)
	}
	inserted := make(map[ReadingKey]bool, len(rows))
	version := AnyCatalog
	var stagedOutcomes []int16
	for res.Next() {
		var d, sk *int32
		var t *time.Time
		dest := []any{&version, &d, &sk, &t}
		var so []int16
		if len(staged) > 0 {
			dest = append(dest, &so)
		}
		if err := res.Scan(dest...); err != nil {
			res.Close()
			return err
		}
		if so != nil {
			stagedOutcomes = so
		}
		if d != nil {
			inserted[ReadingKey{*d, *sk, t.UnixMicro()}] = true
		}
	}
	res.Close()
	if err := res.Err(); err != nil {
		return fmt.Errorf("inserting readings: %w", err)
	}
	if catalog >= 0 && version != catalog {
		return &StaleCatalogError{Version: version}
	}
	if err := setStaged(stagedOut, stagedOutcomes); err != nil {
		return err
	}
	if !markInserted(rows, inserted, out) {
		// What the INSERT skipped is stored: the check runs after the commit, in a
		// statement of its own, as it would inside a transaction at read committed.
		return sortSkipped(ctx, s.pool, a, out)
	}
	return nil
}

// setStaged copies the outcomes amrd_stage_readings returned (0 staged, 1 duplicate, 2
// conflict: Outcome's values) into out.
func setStaged(out []Outcome, got []int16) error {
	if len(got) != len(out) {
		return fmt.Errorf("staging readings: %d outcomes for %d readings", len(got), len(out))
	}
	for i, o := range got {
		out[i] = Outcome(o)
	}
	return nil
}

// writeLarge writes a large batch in the transaction tx; out and stagedOut take the
// outcomes of rows and staged.
func writeLarge(ctx context.Context, tx pgx.Tx, catalog int64, rows []ReadingRow, staged []StagedRow, out, stagedOut []Outcome) error {
	// The rollup threshold is read with the version, in the same round trip: it takes the
	// rollup lock for this transaction (see markSQL).
	var v int64
	var threshold pgtype.Timestamptz
	if err := tx.QueryRow(ctx, `SELECT version, amrd_rollup_threshold() FROM catalog_version`).Scan(&v, &threshold); err != nil {
		return fmt.Errorf("reading the catalog version: %w", err)
	}
	if catalog >= 0 && v != catalog {
		return &StaleCatalogError{Version: v}
	}
	if len(rows) > 0 {
		if err := copyOrInsert(ctx, tx, rows, out); err != nil {
			return err
		}
		if err := markRows(ctx, tx, rows, out, threshold); err != nil {
			return err
		}
	}
	if len(staged) > 0 {
		// Not a COPY: each staged reading is looked up first (staging is the rare path,
		// readings for devices that do not exist yet).
		sa := stageArrays(staged)
		var got []int16
		err := tx.QueryRow(ctx, `SELECT coalesce(array_agg(outcome ORDER BY i), '{}') FROM amrd_stage_readings(true, $1::text[], $2::text[],
			$3::timestamptz[], $4::timestamp[], $5::text[]::numeric[])`, sa.name, sa.series, sa.ts, sa.local, sa.val).Scan(&got)
		if err != nil {
			return fmt.Errorf("staging readings: %w", err)
		}
		return setStaged(stagedOut, got)
	}
	return nil
}

func copyOrInsert(ctx context.Context, tx pgx.Tx, rows []ReadingRow, out []Outcome) error {
	sp, err := tx.Begin(ctx) // a savepoint, so that a key conflict keeps the transaction
	if err != nil {
		return err
	}
	_, err = sp.CopyFrom(ctx, pgx.Identifier{"meter_readings"}, readingCols, readingSource(rows))
	if err == nil {
		return sp.Commit(ctx) // all inserted (out is all Inserted already)
	}
	var pe *pgconn.PgError
	if !errors.As(err, &pe) || pe.Code != "23505" {
		return fmt.Errorf("copying readings: %w", err)
	}
	if err := sp.Rollback(ctx); err != nil {
		return err
	}
	a := readingArrays(rows)
	ins, err := tx.Query(ctx, `INSERT INTO meter_readings (device_key, series_key, ts, value, factor)
		SELECT * FROM unnest($1::int4[], $2::int4[], $3::timestamptz[], $4::text[]::numeric[], $5::int8[])
		ON CONFLICT (device_key, series_key, ts) DO NOTHING RETURNING device_key, series_key, ts`, a.dev, a.ser, a.ts, a.val, a.fac)
	if err != nil {
		return fmt.Errorf("inserting readings: %w", err)
	}
	inserted := make(map[ReadingKey]bool, len(rows))
	for ins.Next() {
		var k ReadingKey
		var t time.Time
		if err := ins.Scan(&k.Device, &k.Series, &t); err != nil {
			ins.Close()
			return err
		}
		k.Micros = t.UnixMicro()
		inserted[k] = true
	}
	ins.Close()
	if err := ins.Err(); err != nil {
		return fmt.Errorf("inserting readings: %w", err)
	}
	if !markInserted(rows, inserted, out) {
		return sortSkipped(ctx, tx, a, out)
	}
	return nil
}

// markRows marks the rollup buckets of the inserted rows at or below the threshold (late
// data: usually none, and then no statement is sent).
func markRows(ctx context.Context, tx pgx.Tx, rows []ReadingRow, out []Outcome, threshold pgtype.Timestamptz) error {
	if !threshold.Valid || threshold.InfinityModifier == pgtype.NegativeInfinity {
		return nil
	}
	// A span of one reading keeps that reading (its value and factor go into the mark).
	type span struct {
		lo, hi time.Time
		one    *ReadingRow
	}
	late := map[[2]int32]span{}
	for i := range rows {
		r := &rows[i]
		if out[i] != Inserted || (threshold.InfinityModifier == pgtype.Finite && r.Time.After(threshold.Time)) {
			continue
		}
		k := [2]int32{r.DeviceKey, r.SeriesKey}
		sp, ok := late[k]
		if !ok {
			late[k] = span{r.Time, r.Time, r}
			continue
		}
		sp.one = nil
		if r.Time.Before(sp.lo) {
			sp.lo = r.Time
		}
		if r.Time.After(sp.hi) {
			sp.hi = r.Time
		}
		late[k] = sp
	}
	if len(late) == 0 {
		return nil
	}
	n := len(late)
	d, s := make([]int32, 0, n), make([]int32, 0, n)
	lo, hi := make([]time.Time, 0, n), make([]time.Time, 0, n)
	val, fac := make([]*string, 0, n), make([]*int64, 0, n)
	for k, sp := range late {
		d, s, lo, hi = append(d, k[0]), append(s, k[1]), append(lo, sp.lo), append(hi, sp.hi)
		if sp.one != nil {
			v := sp.one.Value.String()
			val, fac = append(val, &v), append(fac, &sp.one.Factor)
		} else {
			val, fac = append(val, nil), append(fac, nil)
		}
	}
	_, err := tx.Exec(ctx, `INSERT INTO rollup_marks (device_key, series_key, ts_min, ts_max, value, factor)
		SELECT * FROM unnest($1::int4[], $2::int4[], $3::timestamptz[], $4::timestamptz[], $5::text[]::numeric[], $6::int8[])`,
		d, s, lo, hi, val, fac)
	if err != nil {
		return fmt.Errorf("marking rollups: %w", err)
	}
	return nil
}

// arrays are a batch's readings as the parameters of one INSERT of unnest.
type arrays struct {
	dev, ser []int32
	ts       []time.Time
	val      []string
	fac      []int64
}

func readingArrays(rows []ReadingRow) arrays {
	a := arrays{dev: make([]int32, len(rows)), ser: make([]int32, len(rows)), ts: make([]time.Time, len(rows)),
		val: make([]string, len(rows)), fac: make([]int64, len(rows))}
	for i := range rows {
		a.dev[i], a.ser[i], a.ts[i], a.val[i], a.fac[i] = rows[i].DeviceKey, rows[i].SeriesKey, rows[i].Time, rows[i].Value.String(), rows[i].Factor
	}
	return a
}

// markInserted sets out from the keys an INSERT returned; the others are duplicates
// until sortSkipped says otherwise. It reports whether every row was inserted.
func markInserted(rows []ReadingRow, inserted map[ReadingKey]bool, out []Outcome) bool {
	for i := range rows {
		if inserted[rows[i].Key()] {
			out[i] = Inserted
		} else {
			out[i] = Duplicate
		}
	}
	return len(inserted) == len(rows)
}

// sortSkipped finds, among the rows an INSERT skipped, those whose stored value differs:
// conflicts. A new statement sees what the INSERT skipped, including rows that a
// concurrent transaction committed while the INSERT waited for it.
func sortSkipped(ctx context.Context, q querier, a arrays, out []Outcome) error {
	// The batch's time range, as constants, lets TimescaleDB skip the chunks outside it;
	// without it the join probes every chunk's index for every row, which grows with the
	// number of chunks.
	lo, hi := a.ts[0], a.ts[0]
	for _, t := range a.ts {
		if t.Before(lo) {
			lo = t
		}
		if t.After(hi) {
			hi = t
		}
	}
	res, err := q.Query(ctx, `SELECT u.i FROM unnest($1::int4[], $2::int4[], $3::timestamptz[], $4::text[]::numeric[])
		WITH ORDINALITY AS u(d, s, ts, v, i)
		JOIN meter_readings m ON m.device_key = u.d AND m.series_key = u.s AND m.ts = u.ts
		WHERE m.value <> u.v AND m.ts >= $5 AND m.ts <= $6`, a.dev, a.ser, a.ts, a.val, lo, hi)
	if err != nil {
		return err
	}
	for res.Next() {
		var i int64
		if err := res.Scan(&i); err != nil {
			res.Close()
			return err
		}
		if out[i-1] != Inserted {
			out[i-1] = Conflict
		}
	}
	res.Close()
	return res.Err()
}
