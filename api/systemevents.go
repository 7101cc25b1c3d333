package api

import (
	"github.com/google/uuid"

	"github.com/amrd/amrd/store"
)

// systemEvents serves meter system events, which have integer ids. The contract lists
// no update.
func (s *Server) systemEvents() resource[store.MeterSystemEvent, int64] {
	return resource[store.MeterSystemEvent, int64]{
		rows:        s.tables.MeterSystemEvents,
		blank:       func() store.MeterSystemEvent { return store.MeterSystemEvent{} },
		org:         func(v *store.MeterSystemEvent) **uuid.UUID { return &v.OrganizationID },
		orgRequired: true,
		filters:     map[string]filterKind{"meter_device": filterUUID, "start_time": filterTime, "end_time": filterTime},
		decode: func(b body, v *store.MeterSystemEvent, full bool, errs FieldErrors) {
			b.id(errs, "meter_device", &v.MeterDeviceID, full)
			b.timestamp(errs, "timestamp", &v.Timestamp, full)
			b.str(errs, "title", &v.Title, full, 1, 50)
			b.str(errs, "content", &v.Content, full, 1, 500)
		},
	}
}
