package api

import (
	"errors"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/gofiber/fiber/v2"
	"github.com/google/uuid"

	"github.com/amrd/amrd/ingest"
	"github.com/amrd/amrd/store"
)

// filterKind says how a list filter's value is parsed: it returns the value to filter
// on, or a message for a value it refuses (a 400 naming the filter).
type filterKind func(v string) (any, string)

var (
	// filterText is an exact match on a string.
	filterText filterKind = func(v string) (any, string) { return strings.Clone(v), "" }
	// filterUUID is an exact match on an id; not a UUID: 400.
	filterUUID filterKind = func(v string) (any, string) {
		u, err := uuid.Parse(v)
		if err != nil || len(v) < 32 {
			return nil, "Enter a valid UUID."
		}
		return u, ""
	}
	// filterTime is an ISO 8601 date-time; start_time/end_time are inclusive.
	filterTime filterKind = func(v string) (any, string) {
		t, err := parseTime(v)
		switch {
		case errors.Is(err, ingest.ErrTimeRange):
			return nil, ingest.ErrTimeRange.Error()
		case err != nil:
			return nil, "Enter a valid date/time (ISO 8601, e.g. 2026-01-31T23:45:00Z)."
		}
		return t, ""
	}
)

// filterChoice is an exact match on one of a fixed set of strings; another value is a
// 400, as DRF's ChoiceFilter answers.
func filterChoice(choices ...string) filterKind {
	return func(v string) (any, string) {
		if slices.Contains(choices, v) {
			return strings.Clone(v), ""
		}
		return nil, "Select a valid choice. " + v + " is not one of the available choices."
	}
}

// parseFilters reads the declared filters from the query string; other parameters are
// ignored, as DRF's filter backends do.
func parseFilters(c *fiber.Ctx, kinds map[string]filterKind) (store.Filter, error) {
	f := store.Filter{}
	errs := FieldErrors{}
	for name, parse := range kinds {
		v := c.Query(name)
		if v == "" {
			continue
		}
		// Checked for every filter, whatever its kind: a text filter's value goes to
		// PostgreSQL, whose text holds neither (error 22021, which answered 500).
		if msg := badText(v); msg != "" {
			errs.add(name, msg)
			continue
		}
		val, msg := parse(v)
		if msg != "" {
			errs.add(name, msg)
			continue
		}
		f[name] = val
	}
	return f, errs.orNil()
}

// Messages for text that PostgreSQL cannot store; the first is DRF's.
const (
	msgNullChars = "Null characters are not allowed."
	msgBadUTF8   = "Not valid text: the value is not UTF-8."
)

// badText says why a value cannot be text in PostgreSQL ("" when it can): a NUL
// character, or bytes that are not UTF-8. Query strings and Basic credentials are bytes;
// strings decoded from JSON are UTF-8 (readBody refuses a body that is not) but may hold
// NUL (\u0000).
func badText(v string) string {
	switch {
	case strings.IndexByte(v, 0) >= 0:
		return msgNullChars
	case !utf8.ValidString(v):
		return msgBadUTF8
	}
	return ""
}

// parseTime reads an ISO 8601 date-time; one without an offset is UTC. A '+' that a
// query string turned into a space is read back as '+'. One outside the years 1 to 9999
// (UTC) is ingest.ErrTimeRange.
func parseTime(v string) (time.Time, error) {
	v = strings.Replace(strings.TrimSpace(v), " ", "+", 1)
	if i := strings.IndexByte(v, 'T'); i < 0 && len(v) > 10 {
		v = v[:10] + "T" + v[11:] // "2026-01-01 00:00" style
	}
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05.999999999", "2006-01-02T15:04", "2006-01-02"} {
		if t, err := time.Parse(layout, v); err == nil {
			if !ingest.InTimeRange(t) {
				return time.Time{}, ingest.ErrTimeRange
			}
			return t.UTC(), nil
		}
	}
	return time.Time{}, &time.ParseError{Value: v}
}
