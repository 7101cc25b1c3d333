package store

import (
	"context"
	"crypto/cipher"
	"errors"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
)

// SecurityKeySet is what a meter security key collection shows of itself: its keys in
// clear, except the write-only DLMS master key, which no type of this package carries
// out of the store.
type SecurityKeySet struct {
	ID                 uuid.UUID `json:"id"`
	IEC6205621Password *string   `json:"iec62056_21_password"`
	DLMSUnicastKey     *string   `json:"dlms_global_unicast_encryption_key"`
	DLMSBroadcastKey   *string   `json:"dlms_global_broadcast_encryption_key"`
	DLMSAuthKey        *string   `json:"dlms_global_authentication_key"`
	CreatedAt          time.Time `json:"created_at"`
	UpdatedAt          time.Time `json:"updated_at"`
}

// SecurityKeys is a meter security key collection as read: its keys and its meter
// device, embedded (the contract's MeterSecurityKeyCollectionOut).
type SecurityKeys struct {
	SecurityKeySet
	Meter KeyMeter `json:"meter"`
}

// KeyMeter is the meter device embedded in a security key collection, with the fields of
// the contract's MeterDevice.
type KeyMeter struct {
	ID                      uuid.UUID   `json:"id"`
	CreatedAt               time.Time   `json:"created_at"`
	UpdatedAt               time.Time   `json:"updated_at"`
	Name                    string      `json:"name"`
	ExternalSystemReference *string     `json:"external_system_reference"`
	ManufacturerSerial      *string     `json:"manufacturer_serial"`
	Protocol                string      `json:"protocol"`
	IEC6205621Address       *string     `json:"iec62056_21_address"`
	DLMSLogicalDeviceName   *string     `json:"dlms_logical_device_name"`
	DLMSSystemTitle         *string     `json:"dlms_system_title"`
	HasCurrentTransformer   bool        `json:"has_current_transformer"`
	CurrentTransformerRatio int64       `json:"current_transformer_ratio"`
	HasVoltageTransformer   bool        `json:"has_voltage_transformer"`
	VoltageTransformerRatio int64       `json:"voltage_transformer_ratio"`
	HasDisconnector         bool        `json:"has_disconnector"`
	DisconnectorStatus      *int64      `json:"disconnector_status"`
	OrganizationID          *uuid.UUID  `json:"organization"`
	TypeID                  *uuid.UUID  `json:"type"`
	NetworkInterfaceID      *uuid.UUID  `json:"network_interface"`
	TaskGroups              []uuid.UUID `json:"task_groups"`
	MeterTasks              []uuid.UUID `json:"meter_tasks"`
}

// SecurityKeysInput is a new security key collection: the meter device's id and its keys
// in clear (nil: unset), the master key included.
type SecurityKeysInput struct {
	Meter              uuid.UUID
	IEC6205621Password *string
	DLMSUnicastKey     *string
	DLMSBroadcastKey   *string
	DLMSMasterKey      *string
	DLMSAuthKey        *string
}

// The encrypted columns; each name is also part of its values' additional data.
const (
	colIECPassword  = "iec62056_21_password_enc"
	colUnicastKey   = "dlms_global_unicast_encryption_key_enc"
	colBroadcastKey = "dlms_global_broadcast_encryption_key_enc"
	colMasterKey    = "dlms_master_key_enc"
	colAuthKey      = "dlms_global_authentication_key_enc"
)

// keyOrg scopes security keys, which have no organization of their own, by their
// device's.
const keyOrg = "(SELECT d.organization_id FROM meter_devices d WHERE d.id = x.meter_device_id)"

// securityKeys reads security key collections with their device (m), decrypting with a.
// The master key column is never selected.
func securityKeys(a cipher.AEAD) entity[SecurityKeys] {
	return entity[SecurityKeys]{
		what: "a meter security key collection",
		from: "meter_security_keys x JOIN meter_devices m ON m.id = x.meter_device_id",
		org:  "m.organization_id",
		cols: "x.id, x.created_at, x.updated_at, x." + colIECPassword + ", x." + colUnicastKey + ", x." + colBroadcastKey + ", x." + colAuthKey + `,
			m.id, m.created_at, m.updated_at, m.name, m.external_system_reference, m.manufacturer_serial, m.protocol,
			m.iec62056_21_address, m.dlms_logical_device_name, m.dlms_system_title, m.has_current_transformer,
			m.current_transformer_ratio, m.has_voltage_transformer, m.voltage_transformer_ratio, m.has_disconnector,
			m.disconnector_status, m.organization_id, m.type_id, m.network_interface_id, ` +
			idListOf("m.id", "meter_device_task_groups", "device_id", "group_id") + ", " +
			idListOf("m.id", "meter_device_tasks", "device_id", "task_id"),
		order: "x.created_at, x.id",
		scan: func(row pgx.CollectableRow) (SecurityKeys, error) {
			var v SecurityKeys
			var pw, uni, bc, auth []byte
			m := &v.Meter
			err := row.Scan(&v.ID, &v.CreatedAt, &v.UpdatedAt, &pw, &uni, &bc, &auth,
				&m.ID, &m.CreatedAt, &m.UpdatedAt, &m.Name, &m.ExternalSystemReference, &m.ManufacturerSerial, &m.Protocol,
				&m.IEC6205621Address, &m.DLMSLogicalDeviceName, &m.DLMSSystemTitle, &m.HasCurrentTransformer,
				&m.CurrentTransformerRatio, &m.HasVoltageTransformer, &m.VoltageTransformerRatio, &m.HasDisconnector,
				&m.DisconnectorStatus, &m.OrganizationID, &m.TypeID, &m.NetworkInterfaceID, &m.TaskGroups, &m.MeterTasks)
			if err != nil {
				return v, err
			}
			for _, k := range []struct {
				col string
				enc []byte
				dst **string
			}{{colIECPassword, pw, &v.IEC6205621Password}, {colUnicastKey, uni, &v.DLMSUnicastKey},
				{colBroadcastKey, bc, &v.DLMSBroadcastKey}, {colAuthKey, auth, &v.DLMSAuthKey}} {
				if *k.dst, err = openKey(a, v.ID, k.col, k.enc); err != nil {
					return v, err
				}
			}
			return v, nil
		},
		filters: map[string]string{
			"meter":                           "x.meter_device_id = %s",
			"meter_name":                      "m.name = %s",
			"meter_external_system_reference": "m.external_system_reference = %s",
			"meter_manufacturer_serial":       "m.manufacturer_serial = %s",
			"meter_dlms_system_title":         "m.dlms_system_title = %s",
			"meter_dlms_logical_device_name":  "m.dlms_logical_device_name = %s",
		},
	}
}

// ListSecurityKeys returns one page of the security key collections whose device is in
// scope.
func (s *Store) ListSecurityKeys(ctx context.Context, sc Scope, f Filter, p Page) ([]SecurityKeys, int, error) {
	if s.keys == nil {
		return nil, 0, ErrNoSecret
	}
	return securityKeys(s.keys).list(ctx, s.pool, sc, f, p)
}

// GetSecurityKeys returns one security key collection whose device is in scope.
func (s *Store) GetSecurityKeys(ctx context.Context, sc Scope, id uuid.UUID) (SecurityKeys, error) {
	if s.keys == nil {
		return SecurityKeys{}, ErrNoSecret
	}
	return securityKeys(s.keys).get(ctx, s.pool, sc, id)
}

// CreateSecurityKeys stores a security key collection, encrypted, for a meter device in
// sc (the organizations the caller may write in); any other device is reported as a
// missing one, on the field "meter".
func (s *Store) CreateSecurityKeys(ctx context.Context, sc Scope, in SecurityKeysInput) (SecurityKeys, error) {
	if s.keys == nil {
		return SecurityKeys{}, ErrNoSecret
	}
	// The id is made here because it is part of each ciphertext's additional data.
	id := uuid.New()
	var out SecurityKeys
	err := s.inTx(ctx, "creating a meter security key collection", func(tx pgx.Tx) error {
		all, orgs := sc.args()
		// The device is locked against deletion until the keys are in.
		var dev uuid.UUID
		err := tx.QueryRow(ctx, `SELECT id FROM meter_devices WHERE id = $1 AND ($2 OR organization_id = ANY($3)) FOR KEY SHARE`,
			in.Meter, all, orgs).Scan(&dev)
		if errors.Is(err, pgx.ErrNoRows) {
			return noSuchRow("meter", in.Meter)
		}
		if err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `INSERT INTO meter_security_keys (id, meter_device_id, `+colIECPassword+`, `+colUnicastKey+`,
			`+colBroadcastKey+`, `+colMasterKey+`, `+colAuthKey+`) VALUES ($1, $2, $3, $4, $5, $6, $7)`,
			id, in.Meter, sealKey(s.keys, id, colIECPassword, in.IEC6205621Password), sealKey(s.keys, id, colUnicastKey, in.DLMSUnicastKey),
			sealKey(s.keys, id, colBroadcastKey, in.DLMSBroadcastKey), sealKey(s.keys, id, colMasterKey, in.DLMSMasterKey),
			sealKey(s.keys, id, colAuthKey, in.DLMSAuthKey)); err != nil {
			return err
		}
		out, err = securityKeys(s.keys).get(ctx, tx, AllOrgs, id)
		return err
	})
	return out, err
}

// DeleteSecurityKeys removes a security key collection whose device is in scope. Keys
// also go with their device (ON DELETE CASCADE).
func (s *Store) DeleteSecurityKeys(ctx context.Context, sc Scope, id uuid.UUID) error {
	return removeBy(ctx, s.pool, "meter_security_keys", keyOrg, "a meter security key collection", sc, id)
}
