package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"mime"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/gofiber/fiber/v2"
	"github.com/google/uuid"
)

// body is a decoded JSON object: field name to raw value, so that handlers can tell a
// missing field from a null one and name the field in every error.
type body map[string]json.RawMessage

// readBody decodes the request body as one JSON object. A content type other than JSON
// answers 415, malformed JSON 400.
func readBody(c *fiber.Ctx) (body, error) {
	ct := c.Get(fiber.HeaderContentType)
	if ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || (mt != fiber.MIMEApplicationJSON && !strings.HasSuffix(mt, "+json")) {
			return nil, errStatus(fiber.StatusUnsupportedMediaType, "Unsupported media type \""+ct+"\" in request.")
		}
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
	return b, nil
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
	case strings.ContainsRune(v, 0):
		errs.add(f, "Null characters are not allowed.")
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
