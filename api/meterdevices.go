package api

import (
	"strconv"

	"github.com/google/uuid"

	"github.com/amrd/amrd/meterproto"
	"github.com/amrd/amrd/store"
)

const hexOnly = "Enter hexadecimal digits only (0-9, a-f, A-F)."

func (s *Server) meterDevices() resource[store.MeterDevice, uuid.UUID] {
	return resource[store.MeterDevice, uuid.UUID]{
		rows: s.tables.MeterDevices,
		blank: func() store.MeterDevice {
			return store.MeterDevice{TaskGroups: []uuid.UUID{}, MeterTasks: []uuid.UUID{},
				CurrentTransformerRatio: 1, VoltageTransformerRatio: 1}
		},
		org: func(v *store.MeterDevice) **uuid.UUID { return &v.OrganizationID },
		filters: map[string]filterKind{"name": filterText, "external_system_reference": filterText,
			"manufacturer_serial": filterText, "dlms_logical_device_name": filterText, "dlms_system_title": filterText},
		decode: func(b body, v *store.MeterDevice, full bool, errs FieldErrors) {
			b.str(errs, "name", &v.Name, full, 1, 50)
			b.nstr(errs, "external_system_reference", &v.ExternalSystemReference, 0, 50)
			b.nstr(errs, "manufacturer_serial", &v.ManufacturerSerial, 0, 50)
			b.oneOf(errs, "protocol", &v.Protocol, full, meterproto.Protocols...)
			b.nstr(errs, "iec62056_21_address", &v.IEC62056Address, 0, 8)
			b.nstr(errs, "dlms_logical_device_name", &v.DLMSLogicalDeviceName, 0, 32)
			matches(errs, "dlms_logical_device_name", v.DLMSLogicalDeviceName, isHex, hexOnly)
			b.nstr(errs, "dlms_system_title", &v.DLMSSystemTitle, 0, 16)
			matches(errs, "dlms_system_title", v.DLMSSystemTitle, isHex, hexOnly)
			b.nid(errs, "type", &v.TypeID)
			b.idSet(errs, "task_groups", &v.TaskGroups)
			b.idSet(errs, "meter_tasks", &v.MeterTasks)
			b.nid(errs, "network_interface", &v.NetworkInterfaceID)
			// A transformer ratio divides a primary quantity into the meter's range
			// (150 A / 5 A = 30): below 1 it has no physical meaning, and 1 is "none".
			b.boolean(errs, "has_current_transformer", &v.HasCurrentTransformer)
			b.integer(errs, "current_transformer_ratio", &v.CurrentTransformerRatio, 1, maxInt32)
			b.boolean(errs, "has_voltage_transformer", &v.HasVoltageTransformer)
			b.integer(errs, "voltage_transformer_ratio", &v.VoltageTransformerRatio, 1, maxInt32)
			b.boolean(errs, "has_disconnector", &v.HasDisconnector)
			b.intv(errs, "disconnector_status", &v.DisconnectorStatus, true, minInt32, maxInt32)
			if d := v.DisconnectorStatus; d != nil && len(errs["disconnector_status"]) == 0 && (*d < 0 || *d > 2) {
				errs.add("disconnector_status", "\""+strconv.FormatInt(*d, 10)+"\" is not a valid choice.")
			}
		},
	}
}
