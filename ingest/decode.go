package ingest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

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
// Reason is a short key for counting rejections by cause, not sent to clients: the
// pipeline's rows_rejected label ("series_not_allowed", "local_time", ...), "conflict",
// or for a bad record "bad_" or "missing_" and its fields ("bad_value").
type ItemError struct {
	Index  int                 `json:"index"`
	Errors map[string][]string `json:"errors"`
	Reason string              `json:"-"`
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
// the request: the good readings, and an ItemError for each bad item, at their
// positions. A body that is not JSON, not an object or array of objects' shape, empty,
// or longer than maxItems is a *RequestError.
func Decode(body []byte, maxItems int) (*Request, error) {
	body = bytes.TrimSpace(body)
	if q, ok := decodeFast(body, maxItems); ok {
		return q, nil
	}
	return decodeGeneral(body, maxItems)
}

// decodeGeneral is Decode for any body, with encoding/json: the whole body, then each
// item again.
func decodeGeneral(body []byte, maxItems int) (*Request, error) {
	if len(body) == 0 {
		return nil, &RequestError{"The request body is empty: send one reading object or an array of them."}
	}
	var items []json.RawMessage
	switch body[0] {
	case '[':
		if err := json.Unmarshal(body, &items); err != nil {
			return nil, &RequestError{"JSON parse error: the request body is not a valid JSON array."}
		}
	case '{':
		if !json.Valid(body) {
			return nil, &RequestError{"JSON parse error: the request body is not a valid JSON object."}
		}
		items = []json.RawMessage{body}
	default:
		if !json.Valid(body) {
			return nil, &RequestError{"JSON parse error: the request body is not valid JSON."}
		}
		return nil, &RequestError{"Expected a reading object or an array of reading objects."}
	}
	if len(items) == 0 {
		return nil, &RequestError{"The array is empty: send at least one reading."}
	}
	if len(items) > maxItems {
		return nil, &RequestError{fmt.Sprintf("Too many readings in one request: %d, at most %d.", len(items), maxItems)}
	}
	q := newRequest(len(items))
	for _, raw := range items {
		if !utf8.Valid(raw) {
			// encoding/json would replace the bytes that are not UTF-8 with U+FFFD, and
			// a device or series name would then be one the client never sent (and be
			// staged under it). decodeFast takes no such item.
			q.Reject(ItemError{Errors: map[string][]string{"non_field_errors": {"Invalid data: the item is not valid UTF-8."}}, Reason: "bad_utf8"})
			continue
		}
		q.take(decodeItem(raw))
	}
	return q, nil
}

// newRequest makes a request sized for n readings.
func newRequest(n int) *Request {
	return &Request{readings: make([]Reading, 0, n), index: make([]int, 0, n)}
}

// take takes the next position with a decoded item: the reading, or its rejection.
func (q *Request) take(r Reading, e *ItemError) {
	if e != nil {
		q.Reject(*e)
		return
	}
	q.Add(r)
}

// decodeFast decodes, in one pass over the body, the shape collectors send: one object or
// a non-empty array of at most maxItems objects whose members are the reading's known
// names, each at most once, with strings free of escapes and control characters and a
// value that is such a string or a JSON number. It reports false for anything else (a
// syntax error, an escape, another key or type, an empty or too long array), and Decode
// then takes the general path, which says what is wrong; for what it accepts, it returns
// exactly what decodeGeneral does (FuzzDecode checks this).
func decodeFast(body []byte, maxItems int) (*Request, bool) {
	d := fastDecoder{b: body}
	one := len(body) > 0 && body[0] == '{'
	if !one && !d.byte('[') {
		return nil, false
	}
	// Items are about 100 bytes: size the slices once for a typical request.
	q := newRequest(max(min(len(body)/100, maxItems), 1))
	for i := 0; ; i++ {
		if i >= maxItems {
			return nil, false
		}
		f, ok := d.object()
		if !ok {
			return nil, false
		}
		q.take(f.Parse())
		if one {
			break
		}
		d.space()
		if d.byte(']') {
			break
		}
		if !d.byte(',') {
			return nil, false
		}
	}
	d.space()
	if d.i != len(d.b) {
		return nil, false
	}
	return q, true
}

// fastDecoder is decodeFast's position in the body.
type fastDecoder struct {
	b []byte
	i int
}

func (d *fastDecoder) space() {
	for d.i < len(d.b) && (d.b[d.i] == ' ' || d.b[d.i] == '\n' || d.b[d.i] == '\t' || d.b[d.i] == '\r') {
		d.i++
	}
}

// byte skips white space and c, and reports whether c was there.
func (d *fastDecoder) byte(c byte) bool {
	d.space()
	if d.i < len(d.b) && d.b[d.i] == c {
		d.i++
		return true
	}
	return false
}

// object reads one reading object into Fields.
func (d *fastDecoder) object() (Fields, bool) {
	var f Fields
	var device, meter, series, seriesAlias *string
	if !d.byte('{') {
		return f, false
	}
	if d.byte('}') {
		return f, true
	}
	for {
		d.space()
		key, ok := d.str()
		if !ok || !d.byte(':') {
			return f, false
		}
		d.space()
		var slot **string
		switch string(key) {
		case "meter_device_name":
			slot = &device
		case "meter":
			slot = &meter
		case "series_name":
			slot = &series
		case "series":
			slot = &seriesAlias
		case "timestamp":
			slot = &f.Timestamp
		case "value":
			slot = &f.Value
		default:
			return f, false
		}
		if *slot != nil {
			return f, false // a repeated key: the general path keeps the last one
		}
		var v []byte
		if slot == &f.Value && d.i < len(d.b) && d.b[d.i] != '"' {
			v, ok = d.number()
		} else {
			v, ok = d.str()
		}
		if !ok {
			return f, false
		}
		s := string(v)
		*slot = &s
		if d.byte('}') {
			break
		}
		if !d.byte(',') {
			return f, false
		}
	}
	f.Device, f.Series = either(device, meter), either(series, seriesAlias)
	return f, true
}

// str reads a string without escapes or control characters, in valid UTF-8, and returns
// its content.
func (d *fastDecoder) str() ([]byte, bool) {
	if d.i >= len(d.b) || d.b[d.i] != '"' {
		return nil, false
	}
	start := d.i + 1
	ascii := true
	for j := start; j < len(d.b); j++ {
		switch c := d.b[j]; {
		case c == '"':
			d.i = j + 1
			if !ascii && !utf8.Valid(d.b[start:j]) {
				return nil, false
			}
			return d.b[start:j], true
		case c == '\\' || c < 0x20:
			return nil, false
		case c >= 0x80:
			ascii = false
		}
	}
	return nil, false
}

// number reads a JSON number as written.
func (d *fastDecoder) number() ([]byte, bool) {
	b, j := d.b, d.i
	digits := func() bool {
		k := j
		for j < len(b) && b[j] >= '0' && b[j] <= '9' {
			j++
		}
		return j > k
	}
	if j < len(b) && b[j] == '-' {
		j++
	}
	if j < len(b) && b[j] == '0' {
		j++
	} else if !digits() {
		return nil, false
	}
	if j < len(b) && b[j] == '.' {
		j++
		if !digits() {
			return nil, false
		}
	}
	if j < len(b) && (b[j] == 'e' || b[j] == 'E') {
		j++
		if j < len(b) && (b[j] == '+' || b[j] == '-') {
			j++
		}
		if !digits() {
			return nil, false
		}
	}
	v := b[d.i:j]
	d.i = j
	return v, true
}

func decodeItem(raw json.RawMessage) (Reading, *ItemError) {
	if t := bytes.TrimSpace(raw); len(t) == 0 || t[0] != '{' {
		return Reading{}, &ItemError{Errors: map[string][]string{"non_field_errors": {"Invalid data. Expected a dictionary."}}, Reason: "bad_item"}
	}
	var w wireReading
	if err := json.Unmarshal(raw, &w); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) && te.Field != "" {
			return Reading{}, &ItemError{Errors: map[string][]string{te.Field: {"Not a valid string."}}, Reason: "bad_" + te.Field}
		}
		return Reading{}, &ItemError{Errors: map[string][]string{"non_field_errors": {"Invalid data."}}, Reason: "bad_item"}
	}
	value, msg := jsonValue(w.Value)
	r, e := Fields{Device: either(w.MeterDeviceName, w.Meter), Series: either(w.SeriesName, w.Series),
		Timestamp: w.Timestamp, Value: value}.Parse()
	if msg != "" {
		// value is nil, so Parse said "required": say what was wrong with it instead.
		e.Errors["value"] = []string{msg}
		e.Reason = reason(e.Errors)
	}
	return r, e
}

// either returns a field given under its contract name, else under its message-bus alias.
func either(v, alias *string) *string {
	if v == nil {
		return alias
	}
	return v
}

// Fields are one reading's fields as text, before they are checked; nil is a field that
// was not sent. The value is the text of a decimal: a JSON number as written, a JSON
// string's content, a CSV cell.
type Fields struct {
	Device, Series, Timestamp, Value *string
}

// Parse checks the fields and returns the reading, or an ItemError (Index left 0 for the
// caller to set) with every bad field's message, exactly as new-meter-readings reports
// them: both the API and `amrd import readings` read records through it.
func (f Fields) Parse() (Reading, *ItemError) {
	var errs map[string][]string
	add := func(field, msg string) {
		if errs == nil {
			errs = map[string][]string{}
		}
		errs[field] = []string{msg}
	}
	var r Reading
	var msg string
	if r.Device, msg = name(f.Device); msg != "" {
		add("meter_device_name", msg)
	}
	if r.Series, msg = name(f.Series); msg != "" {
		add("series_name", msg)
	}
	if f.Timestamp == nil {
		add("timestamp", msgRequired)
	} else if st, err := ParseStamp(*f.Timestamp); err != nil {
		add("timestamp", err.Error())
	} else {
		r.Time = st
	}
	if f.Value == nil {
		add("value", msgRequired)
	} else if msg := ParseDecimal(*f.Value, &r.Value); msg != "" {
		add("value", msg)
	}
	if errs != nil {
		return Reading{}, &ItemError{Errors: errs, Reason: reason(errs)}
	}
	return r, nil
}

const msgRequired = "This field is required."

// reason names the cause of a record's rejection for counting: "missing_" or "bad_" and
// the field, several joined with "+" in field order ("bad_timestamp+missing_value").
func reason(errs map[string][]string) string {
	fields := slices.Sorted(maps.Keys(errs))
	for i, field := range fields {
		if msgs := errs[field]; len(msgs) == 1 && msgs[0] == msgRequired {
			fields[i] = "missing_" + field
		} else {
			fields[i] = "bad_" + field
		}
	}
	return strings.Join(fields, "+")
}

// name checks a device or series name; it returns the name, or a message saying why it
// is not one.
func name(v *string) (string, string) {
	switch {
	case v == nil:
		return "", msgRequired
	case strings.TrimSpace(*v) == "":
		return "", "This field may not be blank."
	case len([]rune(*v)) > maxNameLen:
		return "", "Ensure this field has no more than 50 characters."
	case strings.ContainsRune(*v, 0):
		return "", "Null characters are not allowed."
	case !utf8.ValidString(*v): // a CSV cell of amrd import; JSON strings are UTF-8 already
		return "", "Not valid text: the value is not UTF-8."
	}
	return strings.Clone(*v), ""
}

// ParseValue reads an exact decimal from a JSON number or string into d; it returns a
// client-facing message when the value is missing, not a finite decimal, or beyond what
// PostgreSQL's numeric holds. No float64 is involved at any point.
func ParseValue(raw json.RawMessage, d *apd.Decimal) string {
	text, msg := jsonValue(raw)
	switch {
	case msg != "":
		return msg
	case text == nil:
		return msgRequired
	}
	return ParseDecimal(*text, d)
}

// jsonValue returns the text of a JSON value that may hold a decimal (a number as
// written, a string's content), nil for a value not sent, or a message saying why the
// value cannot be one.
func jsonValue(raw json.RawMessage) (*string, string) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 {
		return nil, ""
	}
	text := string(raw)
	switch raw[0] {
	case 'n':
		return nil, "This field may not be null."
	case '"':
		s, err := strconv.Unquote(text)
		if err != nil {
			if json.Unmarshal(raw, &s) != nil {
				return nil, msgNotNumber
			}
		}
		text = s
	case 't', 'f', '[', '{':
		return nil, msgNotNumber
	}
	return &text, ""
}

const msgNotNumber = "A valid number is required."

// ParseDecimal reads an exact decimal from text (spaces around it ignored) into d; it
// returns a client-facing message when the text is not a finite decimal or is beyond
// what PostgreSQL's numeric holds.
func ParseDecimal(text string, d *apd.Decimal) string {
	text = strings.TrimSpace(text)
	if text == "" {
		return msgNotNumber
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
	if s[10] == ' ' || s[10] == 't' {
		s = s[:10] + "T" + s[11:]
	}
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05.999999999Z0700", "2006-01-02T15:04Z07:00"} {
		if t, err := time.Parse(layout, s); err == nil {
			if !InTimeRange(t) {
				return Stamp{}, ErrTimeRange
			}
			return Stamp{T: t.UTC().Truncate(time.Microsecond), HasOffset: true}, nil
		}
	}
	for _, layout := range []string{"2006-01-02T15:04:05.999999999", "2006-01-02T15:04"} {
		if t, err := time.Parse(layout, s); err == nil {
			// A day inside the range: the device's zone moves it by less.
			if !InTimeRange(t.Add(-24*time.Hour)) || !InTimeRange(t.Add(24*time.Hour)) {
				return Stamp{}, ErrTimeRange
			}
			return Stamp{T: t.Truncate(time.Microsecond)}, nil
		}
	}
	return Stamp{}, errBadStamp
}

var errBadStamp = errors.New("Datetime has wrong format. Use ISO 8601: YYYY-MM-DDThh:mm[:ss[.uuuuuu]][+HH:MM|-HH:MM|Z].")

// ErrTimeRange refuses a date-time outside the years 1 to 9999 (UTC): what PostgreSQL
// holds, amrd answers in JSON (encoding/json refuses a time.Time of year 10000, and a
// reading of 9999-12-31T23:59:59-14:00, stored, made every list that reached it answer
// 500) and Utilitarian's Python reads.
var ErrTimeRange = errors.New("The date-time is out of range: it must lie between the years 1 and 9999 (UTC).")

// InTimeRange reports whether t lies in the years 1 to 9999 once in UTC.
func InTimeRange(t time.Time) bool {
	y := t.UTC().Year()
	return y >= 1 && y <= 9999
}

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
