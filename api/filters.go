package api

import (
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/google/uuid"

	"github.com/amrd/amrd/store"
)

// filterKind says how a list filter's value is parsed.
type filterKind int

const (
	filterText filterKind = iota // exact match on a string
	filterUUID                   // exact match on an id; not a UUID: 400
	filterTime                   // ISO 8601 date-time; start_time/end_time are inclusive
)

// parseFilters reads the declared filters from the query string; other parameters are
// ignored, as DRF's filter backends do.
func parseFilters(c *fiber.Ctx, kinds map[string]filterKind) (store.Filter, error) {
	f := store.Filter{}
	errs := FieldErrors{}
	for name, kind := range kinds {
		v := c.Query(name)
		if v == "" {
			continue
		}
		switch kind {
		case filterText:
			f[name] = strings.Clone(v)
		case filterUUID:
			u, err := uuid.Parse(v)
			if err != nil || len(v) < 32 {
				errs.add(name, "Enter a valid UUID.")
				continue
			}
			f[name] = u
		case filterTime:
			t, err := parseTime(v)
			if err != nil {
				errs.add(name, "Enter a valid date/time (ISO 8601, e.g. 2026-01-31T23:45:00Z).")
				continue
			}
			f[name] = t
		}
	}
	return f, errs.orNil()
}

// parseTime reads an ISO 8601 date-time; one without an offset is UTC. A '+' that a
// query string turned into a space is read back as '+'.
func parseTime(v string) (time.Time, error) {
	v = strings.Replace(strings.TrimSpace(v), " ", "+", 1)
	if i := strings.IndexByte(v, 'T'); i < 0 && len(v) > 10 {
		v = v[:10] + "T" + v[11:] // "2026-01-01 00:00" style
	}
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05.999999999", "2006-01-02T15:04", "2006-01-02"} {
		if t, err := time.Parse(layout, v); err == nil {
			return t.UTC(), nil
		}
	}
	return time.Time{}, &time.ParseError{Value: v}
}
