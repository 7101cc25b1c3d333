package store

import (
	"context"
	"net"
	"strconv"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
)

// MeterDevice is a meter: its name (unique across the installation, since readings
// arrive by name), how to talk to it, its transformers and the AMR tasks that read it.
type MeterDevice struct {
	ID                      uuid.UUID   `json:"id"`
	OrganizationID          *uuid.UUID  `json:"organization"`
	Name                    string      `json:"name"`
	ExternalSystemReference *string     `json:"external_system_reference"`
	ManufacturerSerial      *string     `json:"manufacturer_serial"`
	Protocol                string      `json:"protocol"`
	IEC62056Address         *string     `json:"iec62056_21_address"`
	DLMSLogicalDeviceName   *string     `json:"dlms_logical_device_name"`
	DLMSSystemTitle         *string     `json:"dlms_system_title"`
	TypeID                  *uuid.UUID  `json:"type"`
	TaskGroups              []uuid.UUID `json:"task_groups"`
	MeterTasks              []uuid.UUID `json:"meter_tasks"`
	NetworkInterfaceID      *uuid.UUID  `json:"network_interface"`
	// NetworkInterfaceInfo is where the device is reached: the interface's host (FQDN,
	// else static IP, else its SIM card's IP) and port as "host:port" ("[v6]:port"), the
	// host alone without a port, and empty without an interface or a host. Read only.
	NetworkInterfaceInfo    string    `json:"network_interface_info"`
	HasCurrentTransformer   bool      `json:"has_current_transformer"`
	CurrentTransformerRatio int64     `json:"current_transformer_ratio"`
	HasVoltageTransformer   bool      `json:"has_voltage_transformer"`
	VoltageTransformerRatio int64     `json:"voltage_transformer_ratio"`
	HasDisconnector         bool      `json:"has_disconnector"`
	DisconnectorStatus      *int64    `json:"disconnector_status"`
	CreatedAt               time.Time `json:"created_at"`
	UpdatedAt               time.Time `json:"updated_at"`
}

var meterDevices = entity[MeterDevice]{
	what:  "a meter device",
	from:  "meter_devices x" + deviceJoins("x"),
	cols:  deviceCols("x"),
	order: "x.created_at, x.id",
	scan: func(row pgx.CollectableRow) (MeterDevice, error) {
		var v MeterDevice
		dest, finish := deviceDest(&v)
		err := row.Scan(dest...)
		finish()
		return v, err
	},
	filters: map[string]string{
		"name":                      "x.name = %s",
		"external_system_reference": "x.external_system_reference = %s",
		"manufacturer_serial":       "x.manufacturer_serial = %s",
		"dlms_logical_device_name":  "x.dlms_logical_device_name = %s",
		"dlms_system_title":         "x.dlms_system_title = %s",
	},
}

// deviceJoins joins the network interface (n) of the meter device d (a table alias) and
// its SIM card (s), where deviceCols reads the device's address.
func deviceJoins(d string) string {
	return " LEFT JOIN network_interfaces n ON n.id = " + d + ".network_interface_id LEFT JOIN sim_cards s ON s.id = n.sim_id"
}

// deviceCols is the select list of the meter device d (a table alias, joined by
// deviceJoins), in the order of deviceDest.
func deviceCols(d string) string {
	return d + ".id, " + d + ".organization_id, " + d + ".name, " + d + ".external_system_reference, " + d + ".manufacturer_serial, " +
		d + ".protocol, " + d + ".iec62056_21_address, " + d + ".dlms_logical_device_name, " + d + ".dlms_system_title, " + d + ".type_id, " +
		idListOf(d+".id", "meter_device_task_groups", "device_id", "group_id") + ", " +
		idListOf(d+".id", "meter_device_tasks", "device_id", "task_id") + ", " +
		d + ".network_interface_id, coalesce(nullif(n.fqdn, ''), nullif(n.static_ip_address, ''), nullif(s.ip_address, '')), n.port, " +
		d + ".has_current_transformer, " + d + ".current_transformer_ratio, " + d + ".has_voltage_transformer, " +
		d + ".voltage_transformer_ratio, " + d + ".has_disconnector, " + d + ".disconnector_status, " + d + ".created_at, " + d + ".updated_at"
}

// deviceDest returns where the columns of deviceCols are scanned into v, and finish,
// which sets the fields computed from them once scanned.
func deviceDest(v *MeterDevice) (dest []any, finish func()) {
	var host *string
	var port *int32
	return []any{&v.ID, &v.OrganizationID, &v.Name, &v.ExternalSystemReference, &v.ManufacturerSerial, &v.Protocol,
			&v.IEC62056Address, &v.DLMSLogicalDeviceName, &v.DLMSSystemTitle, &v.TypeID, &v.TaskGroups, &v.MeterTasks,
			&v.NetworkInterfaceID, &host, &port,
			&v.HasCurrentTransformer, &v.CurrentTransformerRatio, &v.HasVoltageTransformer, &v.VoltageTransformerRatio,
			&v.HasDisconnector, &v.DisconnectorStatus, &v.CreatedAt, &v.UpdatedAt},
		func() { v.NetworkInterfaceInfo = hostPort(host, port) }
}

// hostPort formats a network interface's address for network_interface_info.
func hostPort(host *string, port *int32) string {
	switch {
	case host == nil:
		return ""
	case port == nil:
		return *host
	default:
		return net.JoinHostPort(*host, strconv.Itoa(int(*port)))
	}
}

// ListMeterDevices returns one page of meter devices in scope.
func (s *Store) ListMeterDevices(ctx context.Context, sc Scope, f Filter, p Page) ([]MeterDevice, int, error) {
	return meterDevices.list(ctx, s.pool, sc, f, p)
}

// GetMeterDevice returns one meter device in scope.
func (s *Store) GetMeterDevice(ctx context.Context, sc Scope, id uuid.UUID) (MeterDevice, error) {
	return meterDevices.get(ctx, s.pool, sc, id)
}

// CreateMeterDevice adds a meter device. Its type, network interface, task groups and
// tasks must belong to its organization; a taken name is a 400 naming "name".
func (s *Store) CreateMeterDevice(ctx context.Context, in MeterDevice) (MeterDevice, error) {
	var out MeterDevice
	err := s.inTx(ctx, "creating a meter device", func(tx pgx.Tx) error {
		if err := checkDeviceRefs(ctx, tx, in); err != nil {
			return err
		}
		var id uuid.UUID
		if err := tx.QueryRow(ctx, `INSERT INTO meter_devices (organization_id, name, external_system_reference,
			manufacturer_serial, protocol, iec62056_21_address, dlms_logical_device_name, dlms_system_title, type_id,
			network_interface_id, has_current_transformer, current_transformer_ratio, has_voltage_transformer,
			voltage_transformer_ratio, has_disconnector, disconnector_status)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16) RETURNING id`,
			deviceArgs(in)...).Scan(&id); err != nil {
			return err
		}
		var err error
		out, err = writeDevice(ctx, tx, id, in)
		return err
	})
	return out, err
}

// UpdateMeterDevice replaces a meter device's fields and task links, and promotes the
// staged readings of its name, in the same transaction.
func (s *Store) UpdateMeterDevice(ctx context.Context, sc Scope, id uuid.UUID, in MeterDevice) (MeterDevice, error) {
	var out MeterDevice
	err := s.inTx(ctx, "updating a meter device", func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SELECT 1 FROM meter_devices WHERE id = $1 FOR UPDATE", id); err != nil {
			return err
		}
		if err := checkDeviceRefs(ctx, tx, in); err != nil {
			return err
		}
		if err := updateScoped(ctx, tx, sc, `UPDATE meter_devices x SET organization_id = $2, name = $3,
			external_system_reference = $4, manufacturer_serial = $5, protocol = $6, iec62056_21_address = $7,
			dlms_logical_device_name = $8, dlms_system_title = $9, type_id = $10, network_interface_id = $11,
			has_current_transformer = $12, current_transformer_ratio = $13, has_voltage_transformer = $14,
			voltage_transformer_ratio = $15, has_disconnector = $16, disconnector_status = $17, updated_at = now()`,
			id, deviceArgs(in)...); err != nil {
			return err
		}
		// A device that moves to another organization takes its system events along: they
		// are its history, and the event's organization must be its device's.
		if in.OrganizationID != nil {
			if _, err := tx.Exec(ctx, `UPDATE meter_system_events SET organization_id = $2, updated_at = now()
				WHERE meter_device_id = $1 AND organization_id <> $2`, id, *in.OrganizationID); err != nil {
				return err
			}
		}
		var err error
		out, err = writeDevice(ctx, tx, id, in)
		return err
	})
	return out, err
}

// deviceArgs are the written columns of a device, in the order of the INSERT and UPDATE.
func deviceArgs(in MeterDevice) []any {
	return []any{orgOf(in.OrganizationID), in.Name, in.ExternalSystemReference, in.ManufacturerSerial, in.Protocol,
		in.IEC62056Address, in.DLMSLogicalDeviceName, in.DLMSSystemTitle, in.TypeID, in.NetworkInterfaceID,
		in.HasCurrentTransformer, in.CurrentTransformerRatio, in.HasVoltageTransformer, in.VoltageTransformerRatio,
		in.HasDisconnector, in.DisconnectorStatus}
}

// checkDeviceRefs checks that what the device refers to belongs to its organization.
func checkDeviceRefs(ctx context.Context, tx pgx.Tx, in MeterDevice) error {
	return checkRefs(ctx, tx, in.OrganizationID,
		ref{field: "type", table: "meter_device_types", ids: optID(in.TypeID)},
		ref{field: "network_interface", table: "network_interfaces", ids: optID(in.NetworkInterfaceID)},
		ref{field: "task_groups", table: "amr_task_groups", ids: in.TaskGroups},
		ref{field: "meter_tasks", table: "amr_tasks", ids: in.MeterTasks})
}

// writeDevice finishes writing device id: it sets its task groups and tasks, reads it
// back, and promotes the staged readings of its name.
func writeDevice(ctx context.Context, tx pgx.Tx, id uuid.UUID, in MeterDevice) (MeterDevice, error) {
	if err := setLinks(ctx, tx, "meter_device_task_groups", "device_id", "group_id", id, in.TaskGroups); err != nil {
		return MeterDevice{}, err
	}
	if err := setLinks(ctx, tx, "meter_device_tasks", "device_id", "task_id", id, in.MeterTasks); err != nil {
		return MeterDevice{}, err
	}
	out, err := meterDevices.get(ctx, tx, AllOrgs, id)
	if err != nil {
		return out, err
	}
	// Promote the staged readings of its name in this transaction, so promotion commits
	// or rolls back with the device (store/staged.go). On any write, not only a create or
	// rename: a device that just got a type with a config can take readings it could not
	// before. With nothing staged under the name this is one index probe.
	_, _, err = promoteStaged(ctx, tx, out.Name)
	return out, err
}

// DeleteMeterDevice removes a meter device and, in the same transaction, everything that
// is only about it: its security keys and task links (ON DELETE CASCADE in the schema),
// its readings (meter_readings by the device's key) and its system events. The
// hypertables have no foreign keys, so the store removes those rows itself; no orphan
// reading or event is left behind.
func (s *Store) DeleteMeterDevice(ctx context.Context, sc Scope, id uuid.UUID) error {
	return s.inTx(ctx, "deleting a meter device", func(tx pgx.Tx) error {
		all, orgs := sc.args()
		var key int32
		if err := tx.QueryRow(ctx, "DELETE FROM meter_devices x WHERE x.id = $1 AND ($2 OR x.organization_id = ANY($3)) RETURNING x.key",
			id, all, orgs).Scan(&key); err != nil {
			return err
		}
		// The deleted readings mark their rollup buckets, so that the rollup job removes
		// the device's buckets and recomputes its series' fleet buckets without them.
		if _, err := tx.Exec(ctx, `WITH del AS (DELETE FROM meter_readings WHERE device_key = $1
			RETURNING device_key, series_key, ts) `+markSQL("del", true), key); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, "DELETE FROM meter_system_events WHERE meter_device_id = $1", id)
		return err
	})
}

// optID is an optional reference as a list of zero or one id, for checkRefs.
func optID(id *uuid.UUID) []uuid.UUID {
	if id == nil {
		return nil
	}
	return []uuid.UUID{*id}
}
