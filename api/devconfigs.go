package api

//go:generate go run gen_timezones.go

import (
	"context"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/amrd/amrd/store"
)

// meterDeviceConfigStore is what the meter device config routes call.
type meterDeviceConfigStore interface {
	ListMeterDeviceConfigs(context.Context, store.Scope, store.Filter, store.Page) ([]store.MeterDeviceConfig, int, error)
	GetMeterDeviceConfig(context.Context, store.Scope, uuid.UUID) (store.MeterDeviceConfig, error)
	CreateMeterDeviceConfig(context.Context, store.MeterDeviceConfig) (store.MeterDeviceConfig, error)
	UpdateMeterDeviceConfig(context.Context, store.Scope, uuid.UUID, store.MeterDeviceConfig) (store.MeterDeviceConfig, error)
	DeleteMeterDeviceConfig(context.Context, store.Scope, uuid.UUID) error
}

// defaultConfigTimezone is the time zone of a config that names none: the contract gives
// no default, and UTC is the one zone without daylight saving surprises.
const defaultConfigTimezone = "UTC"

// meterDeviceConfigs serves meter device configs. series_info is read only.
func (s *Server) meterDeviceConfigs() resource[store.MeterDeviceConfig] {
	return resource[store.MeterDeviceConfig]{
		list: s.st.ListMeterDeviceConfigs, get: s.st.GetMeterDeviceConfig, create: s.st.CreateMeterDeviceConfig,
		update: s.st.UpdateMeterDeviceConfig, del: s.st.DeleteMeterDeviceConfig,
		blank: func() store.MeterDeviceConfig {
			return store.MeterDeviceConfig{Series: []uuid.UUID{}, Timezone: defaultConfigTimezone}
		},
		org:         func(v *store.MeterDeviceConfig) **uuid.UUID { return &v.OrganizationID },
		orgRequired: true,
		decode: func(b body, v *store.MeterDeviceConfig, full bool, errs FieldErrors) {
			b.str(errs, "name", &v.Name, full, 1, 50)
			if full && !b.has("series") {
				errs.add("series", "This field is required.")
			}
			b.idSet(errs, "series", &v.Series)
			b.timezone(errs, "timezone", &v.Timezone)
		},
	}
}

// meterTimezones is the set of contractTimezones.
var meterTimezones = sync.OnceValue(func() map[string]bool {
	m := make(map[string]bool, len(contractTimezones))
	for _, z := range contractTimezones {
		m[z] = true
	}
	return m
})

// timezone reads a meter time zone: one of the contract's names that time.LoadLocation
// also loads (from the host's tz database, else the copy embedded in amrd by cmd/amrd).
// Two of the contract's names are in no current tz database (Asia/Hanoi, and
// US/Pacific-New, removed in 2020b) and are refused: readings could not be placed in time
// with them.
func (b body) timezone(errs FieldErrors, f string, dst *string) {
	var v string
	before := len(errs[f])
	b.str(errs, f, &v, false, 1, 0)
	if len(errs[f]) > before || !b.has(f) {
		return
	}
	if !meterTimezones()[v] {
		errs.add(f, "\""+v+"\" is not a valid choice.")
		return
	}
	if _, err := time.LoadLocation(v); err != nil {
		errs.add(f, "\""+v+"\" is not a valid choice: the time zone database has no such zone.")
		return
	}
	*dst = v
}
