package api

import (
	"context"

	"github.com/google/uuid"

	"github.com/amrd/amrd/store"
)

// meterDeviceTypeStore is what the meter device type routes call.
type meterDeviceTypeStore interface {
	ListMeterDeviceTypes(context.Context, store.Scope, store.Filter, store.Page) ([]store.MeterDeviceType, int, error)
	GetMeterDeviceType(context.Context, store.Scope, uuid.UUID) (store.MeterDeviceType, error)
	CreateMeterDeviceType(context.Context, store.MeterDeviceType) (store.MeterDeviceType, error)
	UpdateMeterDeviceType(context.Context, store.Scope, uuid.UUID, store.MeterDeviceType) (store.MeterDeviceType, error)
	DeleteMeterDeviceType(context.Context, store.Scope, uuid.UUID) error
}

// meterDeviceTypes serves meter device types.
func (s *Server) meterDeviceTypes() resource[store.MeterDeviceType] {
	return resource[store.MeterDeviceType]{
		list: s.st.ListMeterDeviceTypes, get: s.st.GetMeterDeviceType, create: s.st.CreateMeterDeviceType,
		update: s.st.UpdateMeterDeviceType, del: s.st.DeleteMeterDeviceType,
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
