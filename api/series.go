package api

import (
	"encoding/json"
	"strconv"
	"strings"

	"github.com/cockroachdb/apd/v3"
	"github.com/google/uuid"

	"github.com/amrd/amrd/store"
)

// meterReadingSeries serves reading series. A name already used in the organization is a
// 400 naming the field, as every unique rule of amrd is (DRF answers so).
func (s *Server) meterReadingSeries() resource[store.MeterReadingSeries, uuid.UUID] {
	return resource[store.MeterReadingSeries, uuid.UUID]{
		rows:        s.tables.MeterReadingSeries,
		blank:       func() store.MeterReadingSeries { return store.MeterReadingSeries{SIMultiplier: store.DecimalOf(1)} },
		org:         func(v *store.MeterReadingSeries) **uuid.UUID { return &v.OrganizationID },
		orgRequired: true,
		filters:     map[string]filterKind{"name": filterText, "unit": filterText},
		decode: func(b body, v *store.MeterReadingSeries, full bool, errs FieldErrors) {
			b.str(errs, "name", &v.Name, full, 1, 50)
			b.str(errs, "description", &v.Description, false, 0, 250)
			b.str(errs, "unit", &v.Unit, full, 1, 10)
			b.nstr(errs, "unit_description", &v.UnitDescription, 1, 250)
			b.multiplier(errs, "si_multiplier", &v.SIMultiplier)
			b.boolean(errs, "affected_by_ct_ratio", &v.AffectedByCTRatio)
			b.boolean(errs, "affected_by_vt_ratio", &v.AffectedByVTRatio)
		},
	}
}

// Bounds of a multiplier: SI prefixes run from 1e-30 (quecto) to 1e30 (quetta); 30 digits
// on each side of the point hold all of them with room for factors like 3.6e-27.
const (
	maxWholeDigits   = 30
	maxDecimalPlaces = 30
	// maxDecimalText bounds the text read at all, so that a huge number in a body costs
	// nothing to refuse: 30 + 30 digits, a sign, a point and an exponent fit in 80.
	maxDecimalText = 80
)

// multiplier reads a positive exact decimal, sent as a JSON string ("0.001") or number
// (0.001; read from its text, never through a float64), as DRF's DecimalField accepts
// both. NaN, infinities, blanks and anything else that is not a number are refused. The
// value is kept reduced (1.000 is 1, 1E+3 is 1000), so that equal multipliers read back
// the same.
func (b body) multiplier(errs FieldErrors, f string, dst *store.Decimal) {
	raw, ok := b[f]
	if !ok {
		return
	}
	if string(raw) == "null" {
		errs.add(f, "This field may not be null.")
		return
	}
	text := string(raw)
	var s string
	if err := json.Unmarshal(raw, &s); err == nil {
		text = strings.TrimSpace(s)
	} else if len(raw) == 0 || !(raw[0] == '-' || '0' <= raw[0] && raw[0] <= '9') {
		errs.add(f, "A valid number is required.") // true, false, arrays, objects
		return
	}
	if len(text) > maxDecimalText {
		errs.add(f, "Ensure that there are no more than "+strconv.Itoa(maxWholeDigits+maxDecimalPlaces)+" digits in total.")
		return
	}
	d, _, err := apd.NewFromString(text)
	if err != nil || d.Form != apd.Finite {
		errs.add(f, "A valid number is required.")
		return
	}
	var r store.Decimal
	r.Reduce(d)
	whole, places := int64(r.NumDigits())+int64(r.Exponent), int64(0)
	if r.Exponent < 0 {
		places = -int64(r.Exponent)
	}
	switch {
	case r.Sign() <= 0:
		errs.add(f, "Ensure this value is greater than 0.")
	case whole > maxWholeDigits:
		errs.add(f, "Ensure that there are no more than "+strconv.Itoa(maxWholeDigits)+" digits before the decimal point.")
	case places > maxDecimalPlaces:
		errs.add(f, "Ensure that there are no more than "+strconv.Itoa(maxDecimalPlaces)+" decimal places.")
	default:
		*dst = r
	}
}
