package meterproto

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// OBIS is an OBIS code (IEC 62056-61): the six value groups A-B:C.D.E*F that name a
// quantity, such as 1-0:1.8.0*255 (active energy import, total).
//
// A code read in the reduced form C.D.E (or C.D) that meters send in readouts has
// Reduced set: its A and B are unknown and hold Absent. A group a code did not carry
// holds Absent too: E of "32.7". F of a code without a "*NN" suffix is 255 ("not used"),
// the value the full form implies.
type OBIS struct {
	A, B, C, D, E, F int
	Reduced          bool
}

// Absent is the value of a group that a code did not carry (A and B of a reduced code,
// E of "32.7").
const Absent = -1

// ErrOBIS marks an address that is not an OBIS code.
var ErrOBIS = errors.New("not an OBIS code")

// Letters that stand for numbers in groups C and D (IEC 62056-61): C for
// country-specific and general service entries, F for errors, L for lists, P for
// profiles.
var obisLetters = map[byte]int{'C': 96, 'F': 97, 'L': 98, 'P': 99}

// ParseOBIS reads an OBIS code in full form ("1-0:1.8.0*255", "1-0:1.8.0", "0-0:C.1.0")
// or reduced form ("1.8.0", "32.7", "C.1.0", "F.F", "1.8.0*02" with billing period 2).
// Groups are decimal numbers 0 to 255 (up to three digits); groups C and D also take the
// letters C, F, L and P (96 to 99). "&" is read like "*" before F, as some meters
// write the billing period that way.
//
// A reduced code may leave out E ("32.7"): E is then Absent and Matches ignores it. The
// full form needs C, D and E.
func ParseOBIS(s string) (OBIS, error) {
	o := OBIS{A: Absent, B: Absent, E: Absent, F: 255}
	rest := s
	if i := strings.IndexAny(rest, "*&"); i >= 0 {
		f, err := obisGroup(rest[i+1:], "F", false)
		if err != nil {
			return OBIS{}, fmt.Errorf("parsing OBIS code %q: %w", s, err)
		}
		o.F, rest = f, rest[:i]
	}
	if i := strings.IndexByte(rest, ':'); i >= 0 {
		ab, cde := rest[:i], rest[i+1:]
		a, b, ok := strings.Cut(ab, "-")
		if !ok {
			return OBIS{}, fmt.Errorf("parsing OBIS code %q: %w: groups A and B must be written A-B:", s, ErrOBIS)
		}
		var err error
		if o.A, err = obisGroup(a, "A", false); err != nil {
			return OBIS{}, fmt.Errorf("parsing OBIS code %q: %w", s, err)
		}
		if o.B, err = obisGroup(b, "B", false); err != nil {
			return OBIS{}, fmt.Errorf("parsing OBIS code %q: %w", s, err)
		}
		rest = cde
	} else {
		o.Reduced = true
	}
	parts := strings.Split(rest, ".")
	if len(parts) < 2 || len(parts) > 3 || (!o.Reduced && len(parts) != 3) {
		want := "C.D.E or C.D"
		if !o.Reduced {
			want = "C.D.E after A-B:"
		}
		return OBIS{}, fmt.Errorf("parsing OBIS code %q: %w: want %s", s, ErrOBIS, want)
	}
	var err error
	if o.C, err = obisGroup(parts[0], "C", true); err != nil {
		return OBIS{}, fmt.Errorf("parsing OBIS code %q: %w", s, err)
	}
	if o.D, err = obisGroup(parts[1], "D", true); err != nil {
		return OBIS{}, fmt.Errorf("parsing OBIS code %q: %w", s, err)
	}
	if len(parts) == 3 {
		if o.E, err = obisGroup(parts[2], "E", false); err != nil {
			return OBIS{}, fmt.Errorf("parsing OBIS code %q: %w", s, err)
		}
	}
	return o, nil
}

// obisGroup reads one value group: 1 to 3 decimal digits up to 255, or with letters
// allowed one of C, F, L, P.
func obisGroup(s, name string, letters bool) (int, error) {
	if letters && len(s) == 1 {
		if v, ok := obisLetters[s[0]]; ok {
			return v, nil
		}
	}
	if s == "" {
		return 0, fmt.Errorf("%w: group %s is empty", ErrOBIS, name)
	}
	if len(s) > 3 {
		return 0, fmt.Errorf("%w: group %s %q is longer than 3 digits", ErrOBIS, name, s)
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, fmt.Errorf("%w: group %s %q is not a number", ErrOBIS, name, s)
		}
	}
	v, _ := strconv.Atoi(s) // at most 3 digits, all checked above
	if v > 255 {
		return 0, fmt.Errorf("%w: group %s is %d, above 255", ErrOBIS, name, v)
	}
	return v, nil
}

// Matches reports whether o and p name the same quantity. When either is reduced only
// C, D, E and F are compared, since a reduced code does not say A and B: "1.8.0"
// matches "1-0:1.8.0*255" and "0-0:1.8.0". E is compared only when both codes carry
// it, so "32.7" matches "32.7.0". Otherwise all six groups must be equal.
func (o OBIS) Matches(p OBIS) bool {
	if o.C != p.C || o.D != p.D || o.F != p.F {
		return false
	}
	if o.E != Absent && p.E != Absent && o.E != p.E {
		return false
	}
	if o.Reduced || p.Reduced {
		return true
	}
	return o.A == p.A && o.B == p.B && o.E == p.E
}

// String gives the full form "A-B:C.D.E*F", or for a reduced code the reduced form
// ("1.8.0", "32.7", "C.1.0", "F.F", "1.8.0*2") with letters for 96 to 99 in groups C and
// D and "*F" only when F is not 255. ParseOBIS reads either back to the same code.
func (o OBIS) String() string {
	var b strings.Builder
	if !o.Reduced {
		fmt.Fprintf(&b, "%d-%d:%d.%d.%d*%d", o.A, o.B, o.C, o.D, o.E, o.F)
		return b.String()
	}
	b.WriteString(letterGroup(o.C))
	b.WriteByte('.')
	b.WriteString(letterGroup(o.D))
	if o.E != Absent {
		b.WriteByte('.')
		b.WriteString(strconv.Itoa(o.E))
	}
	if o.F != 255 {
		b.WriteByte('*')
		b.WriteString(strconv.Itoa(o.F))
	}
	return b.String()
}

func letterGroup(v int) string {
	switch v {
	case 96:
		return "C"
	case 97:
		return "F"
	case 98:
		return "L"
	case 99:
		return "P"
	}
	return strconv.Itoa(v)
}
