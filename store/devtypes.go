package store

import (
	"context"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
)

// MeterDeviceType is a meter model; its config says what its meters may report.
type MeterDeviceType struct {
	ID                uuid.UUID  `json:"id"`
	OrganizationID    *uuid.UUID `json:"organization"`
	Name              string     `json:"name"`
	Description       string     `json:"description"`
	Manufacturer      string     `json:"manufacturer"`
	ManufacturerModel string     `json:"manufacturer_model"`
	ConfigID          *uuid.UUID `json:"config"`
	CreatedAt         time.Time  `json:"created_at"`
	UpdatedAt         time.Time  `json:"updated_at"`
}

var deviceTypes = entity[MeterDeviceType]{
	what:  "a meter device type",
	from:  "meter_device_types x",
	cols:  "x.id, x.organization_id, x.name, x.description, x.manufacturer, x.manufacturer_model, x.config_id, x.created_at, x.updated_at",
	order: "x.created_at, x.id",
	scan: func(row pgx.CollectableRow) (MeterDeviceType, error) {
		var v MeterDeviceType
		err := row.Scan(&v.ID, &v.OrganizationID, &v.Name, &v.Description, &v.Manufacturer, &v.ManufacturerModel, &v.ConfigID, &v.CreatedAt, &v.UpdatedAt)
		return v, err
	},
}

// ListMeterDeviceTypes returns one page of meter device types in scope.
func (s *Store) ListMeterDeviceTypes(ctx context.Context, sc Scope, f Filter, p Page) ([]MeterDeviceType, int, error) {
	return deviceTypes.list(ctx, s.pool, sc, f, p)
}

// GetMeterDeviceType returns one meter device type in scope.
func (s *Store) GetMeterDeviceType(ctx context.Context, sc Scope, id uuid.UUID) (MeterDeviceType, error) {
	return deviceTypes.get(ctx, s.pool, sc, id)
}

// CreateMeterDeviceType adds a meter device type; its config must belong to the same
// organization.
func (s *Store) CreateMeterDeviceType(ctx context.Context, in MeterDeviceType) (MeterDeviceType, error) {
	var out MeterDeviceType
	err := s.inTx(ctx, "creating a meter device type", func(tx pgx.Tx) error {
		if err := checkRefs(ctx, tx, in.OrganizationID, deviceTypeRefs(in)...); err != nil {
			return err
		}
		var id uuid.UUID
		if err := tx.QueryRow(ctx, `INSERT INTO meter_device_types (organization_id, name, description, manufacturer, manufacturer_model, config_id)
			VALUES ($1, $2, $3, $4, $5, $6) RETURNING id`,
			orgOf(in.OrganizationID), in.Name, in.Description, in.Manufacturer, in.ManufacturerModel, in.ConfigID).Scan(&id); err != nil {
			return err
		}
		var err error
		out, err = deviceTypes.get(ctx, tx, AllOrgs, id)
		return err
	})
	return out, err
}

// UpdateMeterDeviceType replaces a meter device type's fields. One used by meter devices
// cannot move to another organization.
func (s *Store) UpdateMeterDeviceType(ctx context.Context, sc Scope, id uuid.UUID, in MeterDeviceType) (MeterDeviceType, error) {
	var out MeterDeviceType
	err := s.inTx(ctx, "updating a meter device type", func(tx pgx.Tx) error {
		old, err := lockOrg(ctx, tx, "meter_device_types", sc, id)
		if err != nil {
			return err
		}
		if err := checkRefs(ctx, tx, in.OrganizationID, deviceTypeRefs(in)...); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `UPDATE meter_device_types SET organization_id = $2, name = $3, description = $4, manufacturer = $5,
			manufacturer_model = $6, config_id = $7, updated_at = now() WHERE id = $1`,
			id, orgOf(in.OrganizationID), in.Name, in.Description, in.Manufacturer, in.ManufacturerModel, in.ConfigID); err != nil {
			return err
		}
		if !sameOrg(old, in.OrganizationID) {
			if err := refusedIfUsedElsewhere(ctx, tx, "meter_devices", "type_id", id, in.OrganizationID,
				"meter devices of another organization use this meter device type"); err != nil {
				return err
			}
		}
		out, err = deviceTypes.get(ctx, tx, AllOrgs, id)
		return err
	})
	return out, err
}

// DeleteMeterDeviceType removes a meter device type; meter devices that use it must let
// go first (409).
func (s *Store) DeleteMeterDeviceType(ctx context.Context, sc Scope, id uuid.UUID) error {
	return remove(ctx, s.pool, "meter_device_types", "a meter device type", sc, id)
}

func deviceTypeRefs(in MeterDeviceType) []ref {
	if in.ConfigID == nil {
		return nil
	}
	return []ref{{field: "config", table: "meter_device_configs", ids: []uuid.UUID{*in.ConfigID}}}
}
