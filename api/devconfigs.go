package api

//go:generate go run gen_timezones.go

import (
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/amrd/amrd/store"
)

// defaultConfigTimezone is the time zone of a config that names none: the contract gives
// no default, and UTC is the one zone without daylight saving surprises.
const defaultConfigTimezone = "UTC"

// meterDeviceConfigs serves meter device configs. series_info is read only.
func (s *Server) meterDeviceConfigs() resource[store.MeterDeviceConfig, uuid.UUID] {
	return resource[store.MeterDeviceConfig, uuid.UUID]{
		rows: s.tables.MeterDeviceConfigs,
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
