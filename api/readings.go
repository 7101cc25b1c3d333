package api

import (
	"context"
	"errors"
	"strconv"

	"github.com/gofiber/fiber/v2"

	"github.com/amrd/amrd/ingest"
	"github.com/amrd/amrd/store"
)

// Ingester takes readings into the write pipeline; *ingest.Pipeline satisfies it.
type Ingester interface {
	Submit(ctx context.Context, sc store.Scope, req *ingest.Request) (ingest.Report, error)
}

// newMeterReadings answers POST /v1/metering/new-meter-readings: one reading object or
// an array of them, found by device and series name. The answer comes after the
// readings are committed: 201 with the report when anything was taken (written, staged
// or absorbed as a duplicate), 400 with the same report when nothing was.
func (s *Server) newMeterReadings(c *fiber.Ctx) error {
	if s.ingest == nil {
		return errStatus(fiber.StatusServiceUnavailable, "Reading ingestion is not running.")
	}
	p := current(c)
	if !p.editsAny() {
		return errForbidden
	}
	if err := checkJSON(c); err != nil {
		return err
	}
	req, err := ingest.Decode(c.Body(), s.cfg.MaxReadingsPerRequest)
	var re *ingest.RequestError
	if errors.As(err, &re) {
		return errStatus(fiber.StatusBadRequest, re.Msg)
	}
	rep, err := s.ingest.Submit(c.UserContext(), writeScope(p), req)
	if err != nil {
		return ingestError(err)
	}
	status := fiber.StatusCreated
	if rep.Accepted+rep.Staged+rep.Duplicates == 0 {
		status = fiber.StatusBadRequest
	}
	if len(rep.Rejected) == 0 {
		// The usual answer, written directly: encoding/json's reflection is a sizable part
		// of a single-reading request's time. The same bytes (tested).
		var buf [128]byte
		c.Status(status).Set(fiber.HeaderContentType, fiber.MIMEApplicationJSON)
		c.Response().SetBody(appendCleanReport(buf[:0], rep)) // copies
		return nil
	}
	return c.Status(status).JSON(rep)
}

// appendCleanReport appends the JSON of a report without rejections.
func appendCleanReport(b []byte, r ingest.Report) []byte {
	b = append(b, `{"accepted":`...)
	b = strconv.AppendInt(b, int64(r.Accepted), 10)
	b = append(b, `,"staged":`...)
	b = strconv.AppendInt(b, int64(r.Staged), 10)
	b = append(b, `,"duplicates":`...)
	b = strconv.AppendInt(b, int64(r.Duplicates), 10)
	b = append(b, `,"conflicts":`...)
	b = strconv.AppendInt(b, int64(r.Conflicts), 10)
	return append(b, `,"rejected":[]}`...)
}

// writeScope is where a principal may write: everything for staff, the organizations it
// edits otherwise.
func writeScope(p *principal) store.Scope {
	if p.staff {
		return store.AllOrgs
	}
	sc := store.Scope{}
	for org, role := range p.roles {
		if role == "editor" {
			sc.Orgs = append(sc.Orgs, org)
		}
	}
	return sc
}
