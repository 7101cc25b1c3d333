package api

import (
	"context"
	"errors"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/google/uuid"

	"github.com/amrd/amrd/ingest"
	"github.com/amrd/amrd/store"
)

// readingStore is what the meter-readings routes call.
type readingStore interface {
	ListReadings(context.Context, store.Scope, store.ReadingFilter, store.Page) ([]store.ReadingPoint, int, error)
	GetReading(context.Context, store.Scope, int64) (store.MeterReading, error)
	ReadingAt(ctx context.Context, device, series uuid.UUID, ts time.Time) (store.MeterReading, error)
	DeleteReading(context.Context, store.Scope, int64) error
	ReadingTarget(ctx context.Context, sc store.Scope, device, series uuid.UUID) (store.ReadingTarget, error)
}

var readingFilters = map[string]filterKind{"meter_device": filterUUID, "series": filterUUID, "start_time": filterTime, "end_time": filterTime}

// listReadings answers GET /v1/metering/meter-readings: {timestamp, value} items in time
// order; scaled=true applies the CT/VT factor stored with each reading, si=true also the
// series' SI multiplier.
func (s *Server) listReadings(c *fiber.Ctx) error {
	p, err := pageParams(c)
	if err != nil {
		return err
	}
	f, err := parseFilters(c, readingFilters)
	if err != nil {
		return err
	}
	rf := store.ReadingFilter{}
	rf.Device, _ = f["meter_device"].(uuid.UUID)
	rf.Series, _ = f["series"].(uuid.UUID)
	rf.Start, _ = f["start_time"].(time.Time)
	rf.End, _ = f["end_time"].(time.Time)
	errs := FieldErrors{}
	rf.Scaled = queryBool(c, errs, "scaled")
	rf.SI = queryBool(c, errs, "si")
	if err := errs.orNil(); err != nil {
		return err
	}
	list, n, err := s.st.ListReadings(c.UserContext(), current(c).scope(), rf, p)
	if err != nil {
		return err
	}
	return c.JSON(newPage(c, p, n, list))
}

func queryBool(c *fiber.Ctx, errs FieldErrors, name string) bool {
	switch c.Query(name) {
	case "", "false", "False", "0":
		return false
	case "true", "True", "1":
		return true
	}
	errs.add(name, "Must be true or false.")
	return false
}

// createReading answers POST /v1/metering/meter-readings: one reading by device and
// series ids, through the same pipeline (validation, CT/VT, idempotency) as
// new-meter-readings, by the keys its ids resolve to (no names to look up again, no
// staging). Its timestamp must carry a UTC offset (RFC 3339). A re-send of a stored
// reading answers 201 with it; a different value for a stored key is a 409.
func (s *Server) createReading(c *fiber.Ctx) error {
	if s.ingest == nil {
		return errStatus(fiber.StatusServiceUnavailable, "Reading ingestion is not running.")
	}
	p, b, err := writerBody(c)
	if err != nil {
		return err
	}
	errs := FieldErrors{}
	var dev, series uuid.UUID
	var ts string
	b.id(errs, "meter_device", &dev, true)
	b.id(errs, "series", &series, true)
	b.str(errs, "timestamp", &ts, true, 1, 0)
	var r ingest.Reading
	if b.has("timestamp") && len(errs["timestamp"]) == 0 {
		st, err := ingest.ParseStamp(ts)
		switch {
		case err != nil:
			errs.add("timestamp", err.Error())
		case !st.HasOffset:
			errs.add("timestamp", "Include a UTC offset (Z or +HH:MM): this route takes RFC 3339 date-times.")
		default:
			r.Time = st
		}
	}
	if msg := ingest.ParseValue(b["value"], &r.Value); msg != "" {
		errs.add("value", msg)
	}
	if err := errs.orNil(); err != nil {
		return err
	}
	sc := writeScope(p)
	at, err := s.st.ReadingTarget(c.UserContext(), sc, dev, series)
	if err != nil {
		return err
	}
	r.Device, r.Series = at.DeviceName, at.SeriesName // for the messages
	var req ingest.Request
	req.AddResolved(r, at.DeviceKey, at.SeriesKey)
	rep, err := s.ingest.Submit(c.UserContext(), sc, &req)
	if err != nil {
		return ingestError(err)
	}
	switch {
	case rep.Conflicts > 0:
		return errStatus(fiber.StatusConflict, "A different value is already stored for this meter device, series and timestamp; it was not overwritten.")
	case len(rep.Rejected) > 0:
		out := FieldErrors{}
		for f, msgs := range rep.Rejected[0].Errors {
			switch f {
			case "meter_device_name":
				f = "meter_device"
			case "series_name":
				f = "series"
			}
			out[f] = append(out[f], msgs...)
		}
		return out
	}
	m, err := s.st.ReadingAt(c.UserContext(), dev, series, r.Time.T)
	if err != nil {
		return err
	}
	return c.Status(fiber.StatusCreated).JSON(m)
}

// ingestError maps the pipeline's refusals: busy and shutting down are 503 with
// Retry-After; anything else goes to the error handler.
func ingestError(err error) error {
	if errors.Is(err, ingest.ErrOverloaded) || errors.Is(err, ingest.ErrClosed) {
		return &apiError{status: fiber.StatusServiceUnavailable, detail: "amrd is busy taking in readings; nothing of this request was stored. Retry shortly.",
			headers: map[string]string{fiber.HeaderRetryAfter: "1"}}
	}
	return err
}

func (s *Server) getReading(c *fiber.Ctx) error {
	id, err := pathInt(c)
	if err != nil {
		return err
	}
	return getOne(c, id, s.st.GetReading)
}

func (s *Server) deleteReading(c *fiber.Ctx) error {
	id, err := pathInt(c)
	if err != nil {
		return err
	}
	return deleteOne(c, id, s.st.GetReading, s.st.DeleteReading, func(m *store.MeterReading) **uuid.UUID { return &m.OrganizationID })
}

// stagedReadings serves staged readings, which have integer ids. They belong to no
// organization (their device does not exist yet), so only staff see and change them.
func (s *Server) stagedReadings() resource[store.StagedReading, int64] {
	return resource[store.StagedReading, int64]{
		rows:    s.tables.StagedReadings,
		policy:  staffOnly,
		blank:   func() store.StagedReading { return store.StagedReading{} },
		filters: map[string]filterKind{"meter_device_name": filterText, "start_time": filterTime, "end_time": filterTime},
		decode: func(b body, v *store.StagedReading, full bool, errs FieldErrors) {
			b.str(errs, "meter_device_name", &v.DeviceName, full, 1, 50)
			b.str(errs, "series_name", &v.SeriesName, full, 1, 50)
			b.timestamp(errs, "timestamp", &v.Time, full)
			if b.has("value") || full {
				if msg := ingest.ParseValue(b["value"], &v.Value.Decimal); msg != "" {
					errs.add("value", msg)
				}
			}
		},
	}
}
