package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"mime"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/gofiber/fiber/v2"
	"github.com/google/uuid"

	"github.com/amrd/amrd/ingest"
)

// body is a decoded JSON object: field name to raw value, so that handlers can tell a
// missing field from a null one and name the field in every error.
type body map[string]json.RawMessage

// writerBody is the prologue of a write that is not a resource's: the caller must be
// allowed to write in some organization (else 403), then the body is read as readBody.
func writerBody(c *fiber.Ctx) (*principal, body, error) {
	p := current(c)
	if !p.editsAny() {
		return nil, nil, errForbidden
	}
	b, err := readBody(c)
	return p, b, err
}

// readBody decodes the request body as one JSON object. A content type other than JSON
// answers 415, malformed JSON 400.
func readBody(c *fiber.Ctx) (body, error) {
	if err := checkJSON(c); err != nil {
		return nil, err
	}
	raw := bytes.TrimSpace(c.Body())
	if len(raw) == 0 {
		return body{}, nil
	}
	var b body
	if err := json.Unmarshal(raw, &b); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			return nil, FieldErrors{"non_field_errors": {"Invalid data. Expected a dictionary, but got " + te.Value + "."}}
		}
		return nil, errStatus(fiber.StatusBadRequest, errBadJSONMsg)
	}
	if b == nil { // the body was JSON null
		return nil, FieldErrors{"non_field_errors": {"Invalid data. Expected a dictionary, but got null."}}
	}
	if !utf8.Valid(raw) {
		// JSON is UTF-8 (RFC 8259); encoding/json would quietly replace what is not
		// with U+FFFD, and store a value the client never sent. The field whose value
		// holds such bytes is named (its raw value is kept as sent).
		errs := FieldErrors{}
		for f, v := range b {
			if !utf8.Valid(v) {
				errs.add(f, msgBadUTF8)
			}
		}
		if len(errs) == 0 { // in a key
			return nil, errStatus(fiber.StatusBadRequest, "JSON parse error: the request body is not valid UTF-8.")
		}
		return nil, errs
	}
	return b, nil
}

// checkJSON answers 415 for a content type other than JSON (none at all is taken as JSON,
// as curl users expect).
func checkJSON(c *fiber.Ctx) error {
	ct := c.Get(fiber.HeaderContentType)
	if ct == "" {
		return nil
	}
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil || (mt != fiber.MIMEApplicationJSON && !strings.HasSuffix(mt, "+json")) {
		return errStatus(fiber.StatusUnsupportedMediaType, "Unsupported media type \""+ct+"\" in request.")
	}
	return nil
}

// has reports whether the field is present (null counts as present).
func (b body) has(f string) bool { _, ok := b[f]; return ok }

func (b body) isNull(f string) bool { return string(b[f]) == "null" }

// str reads a string field into dst when present. required says whether a missing field
// is an error (create and full update); minLen/maxLen bound its length in characters
// (maxLen 0: unbounded).
func (b body) str(errs FieldErrors, f string, dst *string, required bool, minLen, maxLen int) {
	raw, ok := b[f]
	if !ok {
		if required {
			errs.add(f, "This field is required.")
		}
		return
	}
	var v string
	if string(raw) == "null" {
		errs.add(f, "This field may not be null.")
		return
	}
	if err := json.Unmarshal(raw, &v); err != nil {
		errs.add(f, "Not a valid string.")
		return
	}
	n := utf8.RuneCountInString(v)
	switch {
	case n == 0 && minLen > 0:
		errs.add(f, "This field may not be blank.")
	case n < minLen:
		errs.add(f, "Ensure this field has at least "+strconv.Itoa(minLen)+" characters.")
	case maxLen > 0 && n > maxLen:
		errs.add(f, "Ensure this field has no more than "+strconv.Itoa(maxLen)+" characters.")
	case badText(v) != "":
		errs.add(f, badText(v))
	default:
		*dst = v
	}
}

// boolean reads a boolean field into dst when present.
func (b body) boolean(errs FieldErrors, f string, dst *bool) {
	raw, ok := b[f]
	if !ok {
		return
	}
	if err := json.Unmarshal(raw, dst); err != nil || string(raw) == "null" {
		errs.add(f, "Must be a valid boolean.")
	}
}

// timestamp reads an ISO 8601 date-time field into dst when present; one without an
// offset is UTC.
func (b body) timestamp(errs FieldErrors, f string, dst *time.Time, required bool) {
	var v string
	before := len(errs[f])
	b.str(errs, f, &v, required, 1, 0)
	if len(errs[f]) > before || !b.has(f) {
		return
	}
	t, err := parseTime(v)
	switch {
	case errors.Is(err, ingest.ErrTimeRange):
		errs.add(f, err.Error())
		return
	case err != nil:
		errs.add(f, "Datetime has wrong format. Use one of these formats instead: YYYY-MM-DDThh:mm[:ss[.uuuuuu]][+HH:MM|-HH:MM|Z].")
		return
	}
	*dst = t
}

// id reads a UUID field into dst when present.
func (b body) id(errs FieldErrors, f string, dst *uuid.UUID, required bool) {
	raw, ok := b[f]
	if !ok {
		if required {
			errs.add(f, "This field is required.")
		}
		return
	}
	if string(raw) == "null" {
		errs.add(f, "This field may not be null.")
		return
	}
	var v string
	if err := json.Unmarshal(raw, &v); err != nil {
		errs.add(f, "Must be a valid UUID.")
		return
	}
	u, err := uuid.Parse(v)
	if err != nil || len(v) < 32 {
		errs.add(f, "Must be a valid UUID.")
		return
	}
	*dst = u
}

// oneOf reads a string field that must be one of a fixed set of choices.
func (b body) oneOf(errs FieldErrors, f string, dst *string, required bool, choices ...string) {
	var v string
	before := len(errs[f])
	b.str(errs, f, &v, required, 0, 0)
	if len(errs[f]) > before || !b.has(f) {
		return
	}
	for _, ch := range choices {
		if v == ch {
			*dst = v
			return
		}
	}
	errs.add(f, "\""+v+"\" is not a valid choice.")
}

// pathUUID reads the :id parameter; anything that is not a UUID is a 404, as Django's
// URL patterns answer.
func pathUUID(c *fiber.Ctx) (uuid.UUID, error) {
	id, err := uuid.Parse(c.Params("id"))
	if err != nil || len(c.Params("id")) < 32 {
		return uuid.Nil, errNotFound
	}
	return id, nil
}

// pathInt reads an integer :id parameter; anything else is a 404.
func pathInt(c *fiber.Ctx) (int64, error) {
	v := c.Params("id")
	if !isDigits(v) || len(v) > 18 {
		return 0, errNotFound
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n <= 0 {
		return 0, errNotFound
	}
	return n, nil
}

// nstr reads a nullable string field: null stores nil.
func (b body) nstr(errs FieldErrors, f string, dst **string, minLen, maxLen int) {
	if !b.has(f) {
		return
	}
	if b.isNull(f) {
		*dst = nil
		return
	}
	v := ""
	before := len(errs[f])
	b.str(errs, f, &v, false, minLen, maxLen)
	if len(errs[f]) == before {
		*dst = &v
	}
}

// intv reads an integer field within [min, max] (the contract's int32 bounds unless
// narrower). nullable allows null, stored as nil.
func (b body) intv(errs FieldErrors, f string, dst **int64, nullable bool, min, max int64) {
	raw, ok := b[f]
	if !ok {
		return
	}
	if string(raw) == "null" {
		if nullable {
			*dst = nil
		} else {
			errs.add(f, "This field may not be null.")
		}
		return
	}
	var n json.Number
	if err := json.Unmarshal(raw, &n); err != nil {
		var s string
		if json.Unmarshal(raw, &s) != nil {
			errs.add(f, "A valid integer is required.")
			return
		}
		n = json.Number(strings.TrimSpace(s)) // DRF accepts "12" for an integer
	}
	v, err := strconv.ParseInt(string(n), 10, 64)
	if err != nil {
		if fl, ferr := strconv.ParseFloat(string(n), 64); ferr == nil && fl == float64(int64(fl)) && fl >= -1<<53 && fl <= 1<<53 {
			v, err = int64(fl), nil // 12.0 is 12
		}
	}
	switch {
	case err != nil && isDigits(strings.TrimPrefix(string(n), "-")):
		errs.add(f, "Ensure this value is "+bound(string(n), min, max)+".")
	case err != nil:
		errs.add(f, "A valid integer is required.")
	case v < min:
		errs.add(f, "Ensure this value is greater than or equal to "+strconv.FormatInt(min, 10)+".")
	case v > max:
		errs.add(f, "Ensure this value is less than or equal to "+strconv.FormatInt(max, 10)+".")
	default:
		*dst = &v
	}
}

// integer reads a non-nullable integer field within [min, max] into dst when present.
func (b body) integer(errs FieldErrors, f string, dst *int64, min, max int64) {
	var v *int64
	b.intv(errs, f, &v, false, min, max)
	if v != nil {
		*dst = *v
	}
}

func bound(n string, min, max int64) string {
	if strings.HasPrefix(n, "-") {
		return "greater than or equal to " + strconv.FormatInt(min, 10)
	}
	return "less than or equal to " + strconv.FormatInt(max, 10)
}

// Int32 bounds of the contract's integer fields.
const (
	minInt32 = -1 << 31
	maxInt32 = 1<<31 - 1
)

// nid reads a nullable UUID reference.
func (b body) nid(errs FieldErrors, f string, dst **uuid.UUID) {
	if !b.has(f) {
		return
	}
	if b.isNull(f) {
		*dst = nil
		return
	}
	var v uuid.UUID
	before := len(errs[f])
	b.id(errs, f, &v, false)
	if len(errs[f]) == before {
		*dst = &v
	}
}

// idSet reads an array of UUIDs without repeats (the contract's uniqueItems).
func (b body) idSet(errs FieldErrors, f string, dst *[]uuid.UUID) {
	raw, ok := b[f]
	if !ok {
		return
	}
	var list []json.RawMessage
	if err := json.Unmarshal(raw, &list); err != nil || string(raw) == "null" {
		errs.add(f, "Expected a list of items but got type \""+jsonType(raw)+"\".")
		return
	}
	out := make([]uuid.UUID, 0, len(list))
	seen := map[uuid.UUID]bool{}
	for _, item := range list {
		var s string
		u, err := uuid.Nil, json.Unmarshal(item, &s)
		if err == nil {
			u, err = uuid.Parse(s)
		}
		if err != nil || len(s) < 32 {
			errs.add(f, "Must be a valid UUID.")
			return
		}
		if seen[u] {
			errs.add(f, "Items must be unique.")
			return
		}
		seen[u] = true
		out = append(out, u)
	}
	*dst = out
}

func jsonType(raw json.RawMessage) string {
	switch t := bytes.TrimSpace(raw); {
	case len(t) == 0 || string(t) == "null":
		return "null"
	case t[0] == '"':
		return "str"
	case t[0] == '{':
		return "dict"
	case t[0] == '[':
		return "list"
	case t[0] == 't' || t[0] == 'f':
		return "bool"
	default:
		return "int"
	}
}

// matches adds msg to f's errors when a present, valid string value breaks the rule.
func matches(errs FieldErrors, f string, v *string, ok func(string) bool, msg string) {
	if v != nil && len(errs[f]) == 0 && !ok(*v) {
		errs.add(f, msg)
	}
}

// isDigitString is the contract's ^[0123456789]*$.
func isDigitString(s string) bool { return s == "" || isDigits(s) }

// isHex is the contract's ^[abcdefABCDEF1234567890]*$.
func isHex(s string) bool {
	for _, r := range s {
		if !('0' <= r && r <= '9' || 'a' <= r && r <= 'f' || 'A' <= r && r <= 'F') {
			return false
		}
	}
	return true
}
