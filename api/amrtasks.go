package api

import (
	"bytes"
	"encoding/json"
	"strconv"
	"strings"

	"github.com/google/uuid"

	"github.com/amrd/amrd/meterproto"
	"github.com/amrd/amrd/store"
)

// amrSchedules is the contract's enum of AMR task schedules (execution types are
// meterproto.ExecutionTypes).
var amrSchedules = []string{"quarterly", "hourly", "daily", "weekly", "monthly", "yearly"}

func (s *Server) amrTasks() resource[store.AmrTask, uuid.UUID] {
	return resource[store.AmrTask, uuid.UUID]{
		rows:        s.tables.AmrTasks,
		blank:       func() store.AmrTask { return store.AmrTask{IsActive: true} },
		org:         func(v *store.AmrTask) **uuid.UUID { return &v.OrganizationID },
		orgRequired: true,
		decode: func(b body, v *store.AmrTask, full bool, errs FieldErrors) {
			b.str(errs, "name", &v.Name, full, 1, 150)
			b.str(errs, "description", &v.Description, false, 0, 500)
			b.boolean(errs, "is_active", &v.IsActive)
			b.oneOf(errs, "schedule", &v.Schedule, full, amrSchedules...)
			b.integer(errs, "run_offset_seconds", &v.RunOffsetSeconds, minInt32, maxInt32)
			b.oneOf(errs, "meter_execution_type", &v.MeterExecutionType, full, meterproto.ExecutionTypes...)
			b.str(errs, "task_call", &v.TaskCall, full, 1, 50)
			b.jsonObject(errs, "task_kwargs", &v.TaskKwargs)
		},
	}
}

// maxJSONDepth bounds the nesting of a stored JSON object. Task arguments are flat in
// practice; 32 levels leave room for any real use, and keep far below both Go's decoder
// limit (10,000) and PostgreSQL's stack limit when it parses the jsonb.
const maxJSONDepth = 32

// jsonObject reads a nullable JSON object field (stored as jsonb) into dst when present:
// null stores nil, anything but an object is a field error. The object is re-encoded, so
// that what is stored is valid UTF-8 without NUL characters, which jsonb refuses.
func (b body) jsonObject(errs FieldErrors, f string, dst *json.RawMessage) {
	raw, ok := b[f]
	if !ok {
		return
	}
	if b.isNull(f) {
		*dst = nil
		return
	}
	if jsonType(raw) != "dict" {
		errs.add(f, "Expected a JSON object or null.")
		return
	}
	d := json.NewDecoder(bytes.NewReader(raw))
	d.UseNumber() // keep numbers exact
	var v any
	if err := d.Decode(&v); err != nil {
		errs.add(f, "Expected a JSON object or null.")
		return
	}
	if msg := jsonRule(v, 1); msg != "" {
		errs.add(f, msg)
		return
	}
	out, err := json.Marshal(v)
	if err != nil {
		errs.add(f, "Expected a JSON object or null.")
		return
	}
	*dst = out
}

// jsonRule returns why a decoded JSON value cannot be stored, or "".
func jsonRule(v any, depth int) string {
	if depth > maxJSONDepth {
		return "Nested too deeply (at most 32 levels)."
	}
	switch x := v.(type) {
	case json.Number:
		// jsonb keeps numbers as numeric, whose exponent is bounded; a double's range
		// holds every number a task argument needs.
		f, err := strconv.ParseFloat(string(x), 64)
		mantissa, _, _ := strings.Cut(strings.ToLower(string(x)), "e")
		if err != nil || f == 0 && strings.ContainsAny(mantissa, "123456789") {
			return "Numbers must be in the range of a double (about 1e-308 to 1e308 in magnitude)."
		}
	case string:
		if strings.ContainsRune(x, 0) {
			return "Null characters are not allowed."
		}
	case []any:
		for _, e := range x {
			if msg := jsonRule(e, depth+1); msg != "" {
				return msg
			}
		}
	case map[string]any:
		for k, e := range x {
			if msg := jsonRule(k, depth); msg != "" {
				return msg
			}
			if msg := jsonRule(e, depth+1); msg != "" {
				return msg
			}
		}
	}
	return ""
}
