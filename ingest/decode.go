package ingest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/cockroachdb/apd/v3"
)

// Reading is one reading as a client sent it, decoded and checked for shape, not yet
// resolved against devices and series.
type Reading struct {
	Device string // meter device name
	Series string // series name
	Time   Stamp
	Value  apd.Decimal
}

// Stamp is a reading's timestamp. With an offset it is an instant (UTC); without one it
// is a civil (wall-clock) time, read later in the device config's time zone.
type Stamp struct {
	T         time.Time // UTC instant, or the civil fields in UTC's location when !HasOffset
	HasOffset bool
}

// ItemError says why one item of a request was not taken: field name to messages.
type ItemError struct {
	Index  int                 `json:"index"`
	Errors map[string][]string `json:"errors"`
}

// RequestError rejects a whole request (not JSON, wrong shape, too many items).
type RequestError struct{ Msg string }

func (e *RequestError) Error() string { return e.Msg }

// Limits on single values, from PostgreSQL's numeric type: up to 131,072 digits before
// the decimal point and 16,383 after it.
const (
	maxIntDigits  = 131072
	maxFracDigits = 16383
	// maxNameLen is the contract's maxLength of device and series names.
	maxNameLen = 50
)

type wireReading struct {
	MeterDeviceName *string         `json:"meter_device_name"`
	Meter           *string         `json:"meter"`
	SeriesName      *string         `json:"series_name"`
	Series          *string         `json:"series"`
	Timestamp       *string         `json:"timestamp"`
	Value           json.RawMessage `json:"value"`
}

// Decode reads a new-meter-readings body: one object or an array of objects with
// meter_device_name (or meter), series_name (or series), timestamp and value. It returns
// the good readings with their positions in the request, and an ItemError for each bad
// one. A body that is not JSON, not an object or array of objects' shape, empty, or
// longer than maxItems is a *RequestError.
func Decode(body []byte, maxItems int) (good []Reading, index []int, bad []ItemError, err error) {
	body = bytes.TrimSpace(body)
	if len(body) == 0 {
		return nil, nil, nil, &RequestError{"The request body is empty: send one reading object or an array of them."}
	}
	var items []json.RawMessage
	switch body[0] {
	case '[':
		if err := json.Unmarshal(body, &items); err != nil {
			return nil, nil, nil, &RequestError{"JSON parse error: the request body is not a valid JSON array."}
		}
	case '{':
		if !json.Valid(body) {
			return nil, nil, nil, &RequestError{"JSON parse error: the request body is not a valid JSON object."}
		}
		items = []json.RawMessage{body}
	default:
		if !json.Valid(body) {
			return nil, nil, nil, &RequestError{"JSON parse error: the request body is not valid JSON."}
		}
		return nil, nil, nil, &RequestError{"Expected a reading object or an array of reading objects."}
	}
	if len(items) == 0 {
		return nil, nil, nil, &RequestError{"The array is empty: send at least one reading."}
	}
	if len(items) > maxItems {
		return nil, nil, nil, &RequestError{fmt.Sprintf("Too many readings in one request: %d, at most %d.", len(items), maxItems)}
	}
	good = make([]Reading, 0, len(items))
	index = make([]int, 0, len(items))
	for i, raw := range items {
		r, errs := decodeItem(raw)
		if len(errs) > 0 {
			bad = append(bad, ItemError{Index: i, Errors: errs})
			continue
		}
		good = append(good, r)
		index = append(index, i)
	}
	return good, index, bad, nil
}

func decodeItem(raw json.RawMessage) (Reading, map[string][]string) {
	errs := map[string][]string{}
	var w wireReading
	if t := bytes.TrimSpace(raw); len(t) == 0 || t[0] != '{' {
		errs["non_field_errors"] = []string{"Invalid data. Expected a dictionary."}
		return Reading{}, errs
	}
	if err := json.Unmarshal(raw, &w); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) && te.Field != "" {
			errs[te.Field] = []string{"Not a valid string."}
		} else {
			errs["non_field_errors"] = []string{"Invalid data."}
		}
		return Reading{}, errs
	}
	var r Reading
	r.Device = name(errs, "meter_device_name", w.MeterDeviceName, w.Meter)
	r.Series = name(errs, "series_name", w.SeriesName, w.Series)
	if w.Timestamp == nil {
		errs["timestamp"] = []string{"This field is required."}
	} else if st, err := ParseStamp(*w.Timestamp); err != nil {
		errs["timestamp"] = []string{err.Error()}
	} else {
		r.Time = st
	}
	if msg := ParseValue(w.Value, &r.Value); msg != "" {
		errs["value"] = []string{msg}
	}
	if len(errs) > 0 {
		return Reading{}, errs
	}
	return r, nil
}

// name reads a name given under its contract field or its message-bus alias.
func name(errs map[string][]string, field string, v, alias *string) string {
	if v == nil {
		v = alias
	}
	switch {
	case v == nil:
		errs[field] = []string{"This field is required."}
	case strings.TrimSpace(*v) == "":
		errs[field] = []string{"This field may not be blank."}
	case len([]rune(*v)) > maxNameLen:
		errs[field] = []string{"Ensure this field has no more than 50 characters."}
	case strings.ContainsRune(*v, 0):
		errs[field] = []string{"Null characters are not allowed."}
	default:
		return strings.Clone(*v)
	}
	return ""
}

// ParseValue reads an exact decimal from a JSON number or string into d; it returns a
// client-facing message when the value is missing, not a finite decimal, or beyond what
// PostgreSQL's numeric holds. No float64 is involved at any point.
func ParseValue(raw json.RawMessage, d *apd.Decimal) string {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 {
		return "This field is required."
	}
	text := string(raw)
	switch raw[0] {
	case 'n':
		return "This field may not be null."
	case '"':
		s, err := strconv.Unquote(text)
		if err != nil {
			var js string
			if json.Unmarshal(raw, &js) != nil {
				return "A valid number is required."
			}
			s = js
		}
		text = strings.TrimSpace(s)
	case 't', 'f', '[', '{':
		return "A valid number is required."
	}
	if text == "" {
		return "A valid number is required."
	}
	_, _, err := d.SetString(text)
	if err != nil && strings.Contains(err.Error(), "exponent") {
		return "The value is out of range for a decimal."
	}
	if err != nil || d.Form != apd.Finite {
		return "A valid number is required (a finite decimal; NaN and Infinity are not numbers)."
	}
	// apd's own limits are narrower than numeric's today; the checks below keep the
	// rule if they widen.
	digits := d.NumDigits()
	if int64(d.Exponent)+digits > maxIntDigits {
		return "The value is too large for a decimal (at most 131072 digits before the point)."
	}
	if d.Exponent < -maxFracDigits {
		if d.IsZero() {
			d.Exponent = 0
		} else {
			return "The value has too many decimal places (at most 16383)."
		}
	}
	return ""
}

// ParseStamp reads an ISO 8601 date-time: "2026-11-26T10:15:00Z", with an offset
// ("+01:00", "+0100"), or without one (a civil time), with ' ' or 'T' between date and
// time and optional fractional seconds. Digits below a microsecond are dropped:
// PostgreSQL keeps microseconds, and two readings that differ only below it are one key.
func ParseStamp(s string) (Stamp, error) {
	s = strings.TrimSpace(s)
	if len(s) < 16 {
		return Stamp{}, errBadStamp
	}
	b := []byte(s)
	if b[10] == ' ' || b[10] == 't' {
		b[10] = 'T'
	}
	s = string(b)
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05.999999999Z0700", "2006-01-02T15:04Z07:00"} {
		if t, err := time.Parse(layout, s); err == nil {
			return Stamp{T: t.UTC().Truncate(time.Microsecond), HasOffset: true}, nil
		}
	}
	for _, layout := range []string{"2006-01-02T15:04:05.999999999", "2006-01-02T15:04"} {
		if t, err := time.Parse(layout, s); err == nil {
			return Stamp{T: t.Truncate(time.Microsecond)}, nil
		}
	}
	return Stamp{}, errBadStamp
}

var errBadStamp = errors.New("Datetime has wrong format. Use ISO 8601: YYYY-MM-DDThh:mm[:ss[.uuuuuu]][+HH:MM|-HH:MM|Z].")

// In returns the instant of a stamp for a device in loc. A civil time that does not exist
// in loc (skipped by a DST change) or exists twice (repeated by one) is an error.
func (s Stamp) In(loc *time.Location) (time.Time, error) {
	if s.HasOffset {
		return s.T, nil
	}
	c := s.T
	// Every instant whose wall clock in loc equals c is c minus one of the offsets in
	// force around it; DST moves offsets by hours, so the offsets a day either side cover
	// every candidate.
	seen := map[int]bool{}
	var found []time.Time
	for _, probe := range []time.Time{c.Add(-26 * time.Hour), c, c.Add(26 * time.Hour)} {
		_, off := probe.In(loc).Zone()
		if seen[off] {
			continue
		}
		seen[off] = true
		cand := c.Add(-time.Duration(off) * time.Second)
		if sameWall(cand.In(loc), c) {
			found = append(found, cand)
		}
	}
	switch len(found) {
	case 1:
		return found[0].UTC(), nil
	case 0:
		return time.Time{}, fmt.Errorf("%s does not exist in time zone %s (skipped by a daylight saving change); send the time with its UTC offset", c.Format("2006-01-02T15:04:05"), loc)
	default:
		return time.Time{}, fmt.Errorf("%s is ambiguous in time zone %s (repeated by a daylight saving change); send the time with its UTC offset", c.Format("2006-01-02T15:04:05"), loc)
	}
}

func sameWall(t, c time.Time) bool {
	y1, m1, d1 := t.Date()
	y2, m2, d2 := c.Date()
	return y1 == y2 && m1 == m2 && d1 == d2 && t.Hour() == c.Hour() && t.Minute() == c.Minute() && t.Second() == c.Second() && t.Nanosecond() == c.Nanosecond()
}
