package api

import (
	"github.com/google/uuid"

	"github.com/amrd/amrd/store"
)

// meterDeviceTypes serves meter device types.
func (s *Server) meterDeviceTypes() resource[store.MeterDeviceType, uuid.UUID] {
	return resource[store.MeterDeviceType, uuid.UUID]{
		rows:        s.tables.MeterDeviceTypes,
		blank:       func() store.MeterDeviceType { return store.MeterDeviceType{} },
		org:         func(v *store.MeterDeviceType) **uuid.UUID { return &v.OrganizationID },
		orgRequired: true,
		decode: func(b body, v *store.MeterDeviceType, full bool, errs FieldErrors) {
			b.str(errs, "name", &v.Name, full, 1, 50)
			b.str(errs, "description", &v.Description, false, 0, 500)
			b.str(errs, "manufacturer", &v.Manufacturer, full, 1, 100)
			b.str(errs, "manufacturer_model", &v.ManufacturerModel, full, 1, 50)
			b.nid(errs, "config", &v.ConfigID)
		},
	}
}
