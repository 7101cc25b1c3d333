package store

import (
	"context"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
)

// MeterDeviceConfig says which reading series the meters of a device type may report, and
// the time zone their clocks run in.
type MeterDeviceConfig struct {
	ID             uuid.UUID  `json:"id"`
	OrganizationID *uuid.UUID `json:"organization"`
	Name           string     `json:"name"`
	// Series are the allowed reading series, ordered by id.
	Series []uuid.UUID `json:"series"`
	// SeriesInfo is a summary for people: "name (unit)" of each series, ordered by name,
	// joined by ", " ("active-energy-import (kWh), active-power-import (kW)"); "" when
	// there is none. Read only.
	SeriesInfo string `json:"series_info"`
	// Timezone is the tz database name that readings without an offset are read in.
	Timezone  string    `json:"timezone"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

var deviceConfigs = entity[MeterDeviceConfig]{
	what: "a meter device config",
	from: "meter_device_configs x",
	cols: "x.id, x.organization_id, x.name, " + idList("meter_device_config_series", "config_id", "series_id") + `,
		coalesce((SELECT string_agg(s.name || ' (' || s.unit || ')', ', ' ORDER BY s.name, s.id)
			FROM meter_device_config_series l JOIN meter_reading_series s ON s.id = l.series_id WHERE l.config_id = x.id), ''),
		x.timezone, x.created_at, x.updated_at`,
	order: "x.created_at, x.id",
	scan: func(row pgx.CollectableRow) (MeterDeviceConfig, error) {
		var v MeterDeviceConfig
		err := row.Scan(&v.ID, &v.OrganizationID, &v.Name, &v.Series, &v.SeriesInfo, &v.Timezone, &v.CreatedAt, &v.UpdatedAt)
		return v, err
	},
}

// ListMeterDeviceConfigs returns one page of meter device configs in scope.
func (s *Store) ListMeterDeviceConfigs(ctx context.Context, sc Scope, f Filter, p Page) ([]MeterDeviceConfig, int, error) {
	return deviceConfigs.list(ctx, s.pool, sc, f, p)
}

// GetMeterDeviceConfig returns one meter device config in scope.
func (s *Store) GetMeterDeviceConfig(ctx context.Context, sc Scope, id uuid.UUID) (MeterDeviceConfig, error) {
	return deviceConfigs.get(ctx, s.pool, sc, id)
}

// CreateMeterDeviceConfig adds a meter device config; its series must belong to the same
// organization.
func (s *Store) CreateMeterDeviceConfig(ctx context.Context, in MeterDeviceConfig) (MeterDeviceConfig, error) {
	var out MeterDeviceConfig
	err := s.inTx(ctx, "creating a meter device config", func(tx pgx.Tx) error {
		if err := checkRefs(ctx, tx, in.OrganizationID, ref{field: "series", table: "meter_reading_series", ids: in.Series}); err != nil {
			return err
		}
		var id uuid.UUID
		if err := tx.QueryRow(ctx, "INSERT INTO meter_device_configs (organization_id, name, timezone) VALUES ($1, $2, $3) RETURNING id",
			orgOf(in.OrganizationID), in.Name, in.Timezone).Scan(&id); err != nil {
			return err
		}
		if err := setLinks(ctx, tx, "meter_device_config_series", "config_id", "series_id", id, in.Series); err != nil {
			return err
		}
		var err error
		out, err = deviceConfigs.get(ctx, tx, AllOrgs, id)
		return err
	})
	return out, err
}

// UpdateMeterDeviceConfig replaces a meter device config's fields and series. One used by
// device types cannot move to another organization.
func (s *Store) UpdateMeterDeviceConfig(ctx context.Context, sc Scope, id uuid.UUID, in MeterDeviceConfig) (MeterDeviceConfig, error) {
	var out MeterDeviceConfig
	err := s.inTx(ctx, "updating a meter device config", func(tx pgx.Tx) error {
		old, err := lockOrg(ctx, tx, "meter_device_configs", sc, id)
		if err != nil {
			return err
		}
		if err := checkRefs(ctx, tx, in.OrganizationID, ref{field: "series", table: "meter_reading_series", ids: in.Series}); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, "UPDATE meter_device_configs SET organization_id = $2, name = $3, timezone = $4, updated_at = now() WHERE id = $1",
			id, orgOf(in.OrganizationID), in.Name, in.Timezone); err != nil {
			return err
		}
		if err := setLinks(ctx, tx, "meter_device_config_series", "config_id", "series_id", id, in.Series); err != nil {
			return err
		}
		if !sameOrg(old, in.OrganizationID) {
			if err := refusedIfUsedElsewhere(ctx, tx, "meter_device_types", "config_id", id, in.OrganizationID,
				"meter device types of another organization use this meter device config"); err != nil {
				return err
			}
		}
		out, err = deviceConfigs.get(ctx, tx, AllOrgs, id)
		return err
	})
	return out, err
}

// DeleteMeterDeviceConfig removes a meter device config and its series list (not the
// series); device types that use it must let go first (409).
func (s *Store) DeleteMeterDeviceConfig(ctx context.Context, sc Scope, id uuid.UUID) error {
	return remove(ctx, s.pool, "meter_device_configs", "a meter device config", sc, id)
}
