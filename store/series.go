package store

import (
	"context"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
)

// MeterReadingSeries is a kind of reading (active energy import in kWh, ...) of one
// organization; its name is unique there.
type MeterReadingSeries struct {
	ID uuid.UUID `json:"id"`
	// Key is the compact number readings carry (meter_readings.series_key).
	Key             int32      `json:"-"`
	OrganizationID  *uuid.UUID `json:"organization"`
	Name            string     `json:"name"`
	Description     string     `json:"description"`
	Unit            string     `json:"unit"`
	UnitDescription *string    `json:"unit_description"`
	// SIMultiplier turns a value in Unit into the SI unit (1 kPa = 1000 Pa: 1000).
	SIMultiplier      Decimal   `json:"si_multiplier"`
	AffectedByCTRatio bool      `json:"affected_by_ct_ratio"`
	AffectedByVTRatio bool      `json:"affected_by_vt_ratio"`
	CreatedAt         time.Time `json:"created_at"`
	UpdatedAt         time.Time `json:"updated_at"`
}

var readingSeries = entity[MeterReadingSeries]{
	what: "a meter reading series",
	from: "meter_reading_series x",
	cols: `x.id, x.key, x.organization_id, x.name, x.description, x.unit, x.unit_description, x.si_multiplier::text,
		x.affected_by_ct_ratio, x.affected_by_vt_ratio, x.created_at, x.updated_at`,
	order: "x.created_at, x.id",
	scan: func(row pgx.CollectableRow) (MeterReadingSeries, error) {
		var v MeterReadingSeries
		var mult string
		if err := row.Scan(&v.ID, &v.Key, &v.OrganizationID, &v.Name, &v.Description, &v.Unit, &v.UnitDescription, &mult,
			&v.AffectedByCTRatio, &v.AffectedByVTRatio, &v.CreatedAt, &v.UpdatedAt); err != nil {
			return v, err
		}
		return v, v.SIMultiplier.setText(mult)
	},
	filters: map[string]string{"name": "x.name = %s", "unit": "x.unit = %s"},
}

// ListMeterReadingSeries returns one page of reading series in scope.
func (s *Store) ListMeterReadingSeries(ctx context.Context, sc Scope, f Filter, p Page) ([]MeterReadingSeries, int, error) {
	return readingSeries.list(ctx, s.pool, sc, f, p)
}

// GetMeterReadingSeries returns one reading series in scope.
func (s *Store) GetMeterReadingSeries(ctx context.Context, sc Scope, id uuid.UUID) (MeterReadingSeries, error) {
	return readingSeries.get(ctx, s.pool, sc, id)
}

// CreateMeterReadingSeries adds a reading series. A name already used in the organization
// is a conflict (409).
func (s *Store) CreateMeterReadingSeries(ctx context.Context, in MeterReadingSeries) (MeterReadingSeries, error) {
	var out MeterReadingSeries
	err := s.inTx(ctx, "creating a meter reading series", func(tx pgx.Tx) error {
		var id uuid.UUID
		if err := tx.QueryRow(ctx, `INSERT INTO meter_reading_series (organization_id, name, description, unit, unit_description,
			si_multiplier, affected_by_ct_ratio, affected_by_vt_ratio) VALUES ($1, $2, $3, $4, $5, $6::numeric, $7, $8) RETURNING id`,
			orgOf(in.OrganizationID), in.Name, in.Description, in.Unit, in.UnitDescription, in.SIMultiplier.String(),
			in.AffectedByCTRatio, in.AffectedByVTRatio).Scan(&id); err != nil {
			return err
		}
		var err error
		out, err = readingSeries.get(ctx, tx, AllOrgs, id)
		return err
	})
	return out, err
}

// UpdateMeterReadingSeries replaces a reading series' fields. A series cannot move to
// another organization while device configs of its organization list it or readings of
// it are stored: they belong to its organization's meters.
func (s *Store) UpdateMeterReadingSeries(ctx context.Context, sc Scope, id uuid.UUID, in MeterReadingSeries) (MeterReadingSeries, error) {
	var out MeterReadingSeries
	err := s.inTx(ctx, "updating a meter reading series", func(tx pgx.Tx) error {
		old, err := lockOrg(ctx, tx, "meter_reading_series", sc, id)
		if err != nil {
			return err
		}
		if !sameOrg(old, in.OrganizationID) {
			var used bool
			if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM meter_device_config_series l
				JOIN meter_device_configs c ON c.id = l.config_id WHERE l.series_id = $1 AND c.organization_id IS DISTINCT FROM $2)`,
				id, orgOf(in.OrganizationID)).Scan(&used); err != nil {
				return err
			}
			if used {
				return &ConflictError{Msg: "meter device configs of another organization use this meter reading series"}
			}
			if err := refuseIfReadings(ctx, tx, id, "cannot move to another organization: readings of this series are stored"); err != nil {
				return err
			}
		}
		if _, err := tx.Exec(ctx, `UPDATE meter_reading_series SET organization_id = $2, name = $3, description = $4, unit = $5,
			unit_description = $6, si_multiplier = $7::numeric, affected_by_ct_ratio = $8, affected_by_vt_ratio = $9,
			updated_at = now() WHERE id = $1`,
			id, orgOf(in.OrganizationID), in.Name, in.Description, in.Unit, in.UnitDescription, in.SIMultiplier.String(),
			in.AffectedByCTRatio, in.AffectedByVTRatio); err != nil {
			return err
		}
		out, err = readingSeries.get(ctx, tx, AllOrgs, id)
		return err
	})
	return out, err
}

// DeleteMeterReadingSeries removes a reading series. It is refused (409) while a device
// config lists it or while readings of it are stored: deleting a series never makes
// meter data disappear or lose its meaning. The row is locked first, so that no config
// can take the series up between the checks and the delete.
func (s *Store) DeleteMeterReadingSeries(ctx context.Context, sc Scope, id uuid.UUID) error {
	return s.inTx(ctx, "deleting a meter reading series", func(tx pgx.Tx) error {
		if _, err := lockOrg(ctx, tx, "meter_reading_series", sc, id); err != nil {
			return err
		}
		var used bool
		if err := tx.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM meter_device_config_series WHERE series_id = $1)", id).Scan(&used); err != nil {
			return err
		}
		if used {
			return &ConflictError{Msg: "cannot delete: meter device configs still refer to it"}
		}
		if err := refuseIfReadings(ctx, tx, id, "cannot delete: readings of this series are stored"); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, "DELETE FROM meter_reading_series WHERE id = $1", id)
		return err
	})
}

// refuseIfReadings answers a ConflictError with msg when readings of the series are
// stored.
//
// meter_readings is indexed on (device_key, series_key, ts) only, and a second index led
// by series_key would cost every insert for the sake of this rare check (each index costs
// a large share of the insert rate: timescaledb-local.md). amrd_series_has_readings
// (schema 0005) answers from the rollups for the hours they cover and probes the key
// index once per device and chunk only outside them (the unmaterialized tail, the chunks
// below the rollups' horizon) or, right after readings of the series were deleted and
// before the rollup job ran, over the hours whose rollups may be stale. Probing every
// device in every chunk (the reference in export_test.go) takes seconds on a year of a
// large fleet (one probe per device and chunk: 10,000 devices × 365 daily chunks);
// BenchmarkSeriesHasReadings compares the two.
func refuseIfReadings(ctx context.Context, q querier, series uuid.UUID, msg string) error {
	var found bool
	if err := q.QueryRow(ctx, `SELECT amrd_series_has_readings((SELECT key FROM meter_reading_series WHERE id = $1))`,
		series).Scan(&found); err != nil {
		return err
	}
	if found {
		return &ConflictError{Msg: msg}
	}
	return nil
}
