package api

import (
	"context"

	"github.com/gofiber/fiber/v2"
	"github.com/google/uuid"

	"github.com/amrd/amrd/store"
)

// systemEventStore is what the meter system event routes call.
type systemEventStore interface {
	ListMeterSystemEvents(context.Context, store.Scope, store.Filter, store.Page) ([]store.MeterSystemEvent, int, error)
	GetMeterSystemEvent(context.Context, store.Scope, int64) (store.MeterSystemEvent, error)
	CreateMeterSystemEvent(context.Context, store.MeterSystemEvent) (store.MeterSystemEvent, error)
	DeleteMeterSystemEvent(context.Context, store.Scope, int64) error
}

// systemEvents serves list and create; events have integer ids, so get and delete are
// getSystemEvent and deleteSystemEvent. The contract lists no update.
func (s *Server) systemEvents() resource[store.MeterSystemEvent] {
	return resource[store.MeterSystemEvent]{
		list: s.st.ListMeterSystemEvents, create: s.st.CreateMeterSystemEvent,
		blank:       func() store.MeterSystemEvent { return store.MeterSystemEvent{} },
		org:         systemEventOrg,
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

func systemEventOrg(v *store.MeterSystemEvent) **uuid.UUID { return &v.OrganizationID }

func (s *Server) getSystemEvent(c *fiber.Ctx) error {
	id, err := pathInt(c)
	if err != nil {
		return err
	}
	return getOne(c, id, s.st.GetMeterSystemEvent)
}

func (s *Server) deleteSystemEvent(c *fiber.Ctx) error {
	id, err := pathInt(c)
	if err != nil {
		return err
	}
	return deleteOne(c, id, s.st.GetMeterSystemEvent, s.st.DeleteMeterSystemEvent, systemEventOrg)
}
