package meterproto

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"
)

// Control characters of IEC 62056-21 (ISO/IEC 646).
const (
	SOH = 0x01
	STX = 0x02
	ETX = 0x03
	ACK = 0x06
	NAK = 0x15
)

// Errors of the codec and the client. Each error returned wraps exactly one of them (the
// client's may also wrap the network or context error behind it), so that a caller can
// tell with errors.Is what went wrong and count it.
var (
	// ErrBCC means the data message arrived whole but its block check character is
	// wrong.
	ErrBCC = errors.New("bad block check character")
	// ErrTruncated means the connection ended (or broke) before the message was
	// complete.
	ErrTruncated = errors.New("message truncated")
	// ErrNoETX means the data block grew past its limit without an ETX.
	ErrNoETX = errors.New("no ETX")
	// ErrGarbage means bytes the protocol does not allow at that point: no STX where
	// the data message should start, a NAK, binary junk, a malformed identification.
	ErrGarbage = errors.New("unexpected bytes from the meter")
	// ErrSyntax means a line of the data block breaks the data set syntax.
	ErrSyntax = errors.New("bad data block")
)

// DefaultMaxBlock bounds a data block when the caller gives no limit: 64 KiB holds a
// large readout (a few hundred data sets of under 100 bytes each are 30 KiB) with room
// to spare, and still stops a meter that never sends ETX.
const DefaultMaxBlock = 64 << 10

// maxAddress is the longest device address a request may carry (IEC 62056-21: 32
// characters).
const maxAddress = 32

// ValidAddress checks a device address for a request message: at most 32 printable
// ASCII characters, none of them '/', '?' or '!' (they delimit the request). The empty
// address asks whichever meter is listening.
func ValidAddress(address string) error {
	if len(address) > maxAddress {
		return fmt.Errorf("device address %q: longer than %d characters", address, maxAddress)
	}
	for i := 0; i < len(address); i++ {
		c := address[i]
		if c < 0x20 || c > 0x7e || c == '/' || c == '?' || c == '!' {
			return fmt.Errorf("device address %q: character %q not allowed (printable ASCII other than / ? !)", address, c)
		}
	}
	return nil
}

// RequestMessage returns the request message "/?" address "!" CR LF that opens a
// session. The address should pass ValidAddress.
func RequestMessage(address string) []byte {
	return []byte("/?" + address + "!\r\n")
}

// OptionSelect returns the acknowledgement/option select message ACK '0' baud mode CR
// LF: baud is the baud character accepted (the identification's), mode '0' for a data
// readout or '1' for programming mode.
func OptionSelect(baud, mode byte) []byte {
	return []byte{ACK, '0', baud, mode, '\r', '\n'}
}

// Ident is a meter's identification message "/XXXZ" ident CR LF.
type Ident struct {
	// Manufacturer is the three-letter FLAG code as sent ("ISk", "LGZ").
	Manufacturer string
	// BaudChar is Z: '0' to '6' in mode C (300 to 19200 Bd), 'A' to 'I' in mode B.
	BaudChar byte
	// Enhanced holds the enhanced identification markers after Z ("\2", "\@"), if any.
	Enhanced string
	// Ident is the rest of the line: the meter's type and version.
	Ident string
	// Reaction20ms is set when the manufacturer's third letter is lower case: the meter
	// answers within 20 ms instead of the standard 200 ms.
	Reaction20ms bool
}

// maxIdent bounds the identification after "/XXXZ" and its markers: IEC 62056-21
// allows 16 characters; meters that exceed them are accepted up to 64.
const maxIdent = 64

// ParseIdent reads an identification line "/XXXZ<ident>", with or without its CR LF.
// Errors wrap ErrGarbage.
func ParseIdent(line []byte) (Ident, error) {
	s := string(line)
	if t, ok := strings.CutSuffix(s, "\n"); ok {
		s = strings.TrimSuffix(t, "\r")
	}
	if len(s) < 5 || s[0] != '/' {
		return Ident{}, fmt.Errorf("%w: identification %q: want /XXXZ followed by the identification", ErrGarbage, s)
	}
	id := Ident{Manufacturer: s[1:4], BaudChar: s[4]}
	for i := 0; i < 3; i++ {
		c := id.Manufacturer[i]
		if !('A' <= c && c <= 'Z' || 'a' <= c && c <= 'z') {
			return Ident{}, fmt.Errorf("%w: identification %q: manufacturer %q is not three letters", ErrGarbage, s, id.Manufacturer)
		}
	}
	id.Reaction20ms = 'a' <= id.Manufacturer[2] && id.Manufacturer[2] <= 'z'
	if !('0' <= id.BaudChar && id.BaudChar <= '6' || 'A' <= id.BaudChar && id.BaudChar <= 'I') {
		return Ident{}, fmt.Errorf("%w: identification %q: baud character %q is not 0-6 (mode C) or A-I (mode B)", ErrGarbage, s, id.BaudChar)
	}
	rest := s[5:]
	for len(rest) >= 2 && rest[0] == '\\' {
		id.Enhanced += rest[:2]
		rest = rest[2:]
	}
	if len(rest) > maxIdent {
		return Ident{}, fmt.Errorf("%w: identification %q: longer than %d characters", ErrGarbage, s, maxIdent)
	}
	for i := 0; i < len(rest); i++ {
		if c := rest[i]; c < 0x20 || c > 0x7e || c == '/' || c == '!' {
			return Ident{}, fmt.Errorf("%w: identification %q: character %q not allowed", ErrGarbage, s, c)
		}
	}
	if strings.ContainsFunc(id.Enhanced, func(r rune) bool { return r < 0x20 || r > 0x7e }) {
		return Ident{}, fmt.Errorf("%w: identification %q: control character in the enhanced marker", ErrGarbage, s)
	}
	id.Ident = rest
	return id, nil
}

// BaudRate is the rate the baud character announces (300 to 19200), or 0 for a
// reserved character.
func (id Ident) BaudRate() int {
	switch c := id.BaudChar; {
	case '0' <= c && c <= '6':
		return 300 << (c - '0')
	case 'A' <= c && c <= 'F':
		return 600 << (c - 'A')
	}
	return 0
}

// ModeC reports whether the identification is a mode C one (baud character a digit),
// which expects an option select before the data message.
func (id Ident) ModeC() bool { return '0' <= id.BaudChar && id.BaudChar <= '9' }

// ReadDataMessage reads a data message STX block ETX BCC and returns the block (without
// STX, ETX and BCC; it normally ends with "!" CR LF). NUL, CR and LF before STX are
// skipped (wake-up and line noise); any other byte there is an error. The BCC is read as
// one raw byte after ETX (it may be CR, LF, '!', anything) and checked: the XOR of every
// byte after STX up to and including ETX, both sides masked to 7 bits because some links
// deliver the parity bit as bit 7. A block longer than max bytes (max <= 0:
// DefaultMaxBlock) is refused.
//
// Errors wrap ErrGarbage, ErrTruncated (the reader ended first), ErrNoETX or ErrBCC; an
// error of the reader other than io.EOF is wrapped as it is, so that a caller can see a
// timeout.
func ReadDataMessage(r *bufio.Reader, max int) ([]byte, error) {
	if max <= 0 {
		max = DefaultMaxBlock
	}
	for skipped := 0; ; skipped++ {
		c, err := r.ReadByte()
		if err != nil {
			return nil, readErr(err, "waiting for STX")
		}
		if c == STX {
			break
		}
		if c == 0 || c == '\r' || c == '\n' {
			continue
		}
		what := fmt.Sprintf("byte 0x%02x", c)
		switch {
		case c == NAK:
			what = "NAK (0x15)"
		case c >= 0x20 && c < 0x7f:
			what += fmt.Sprintf(" (%q)", c)
		}
		return nil, fmt.Errorf("%w: %s where STX should start the data message (after %d skipped bytes)", ErrGarbage, what, skipped)
	}
	block := []byte{} // not nil: an empty block is a valid answer
	var bcc byte
	for {
		c, err := r.ReadByte()
		if err != nil {
			return nil, readErr(err, fmt.Sprintf("reading the data block after %d bytes, before ETX", len(block)))
		}
		bcc ^= c
		if c == ETX {
			break
		}
		if len(block) == max {
			return nil, fmt.Errorf("%w: the data block exceeds %d bytes without ETX", ErrNoETX, max)
		}
		block = append(block, c)
	}
	got, err := r.ReadByte()
	if err != nil {
		return nil, readErr(err, fmt.Sprintf("reading the BCC after a %d-byte block", len(block)))
	}
	if got&0x7f != bcc&0x7f {
		return nil, fmt.Errorf("%w: expected 0x%02x, got 0x%02x (%d-byte block)", ErrBCC, bcc&0x7f, got&0x7f, len(block))
	}
	return block, nil
}

// readErr turns a reader error into ErrTruncated when the stream ended, and keeps any
// other error (a timeout, a reset) for the caller to classify.
func readErr(err error, doing string) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("%w: the connection closed while %s", ErrTruncated, doing)
	}
	return fmt.Errorf("%s: %w", doing, err)
}

// BCC computes the block check character of a data block: the 7-bit XOR of the block
// and the ETX that follows it.
func BCC(block []byte) byte {
	var x byte = ETX
	for _, c := range block {
		x ^= c
	}
	return x & 0x7f
}

// DataMessage frames a data block as STX block ETX BCC.
func DataMessage(block []byte) []byte {
	msg := make([]byte, 0, len(block)+3)
	msg = append(msg, STX)
	msg = append(msg, block...)
	return append(msg, ETX, BCC(block))
}

// DataSet is one data set of a readout: address(value*unit), with one or more value
// groups.
type DataSet struct {
	// Address is the address as sent ("1.8.0", "1-0:1.8.0*255", "C.1.0"; empty for a
	// continuation line of bare groups).
	Address string
	// OBIS is Address read as an OBIS code, when OBISErr is nil. Manufacturer-specific
	// addresses are not OBIS codes: the data set is kept and OBISErr says why.
	OBIS    OBIS
	OBISErr error
	Values  []Value
}

// Value is one "(...)" group of a data set.
type Value struct {
	Raw   string // between the parentheses, as sent
	Value string // before '*', without padding spaces ("0012.345")
	Unit  string // after '*', without padding spaces; empty when there is none
}

// Limits of ParseDataBlock. IEC 62056-21 lines are at most 78 characters; 1 KiB leaves
// room for meters that put many data sets on one line. 10,000 data sets are a large
// load profile's worth (96 quarter-hours x 100 days) and bound the memory a block can
// make us allocate.
const (
	maxLine     = 1024
	maxDataSets = 10000
)

// ParseDataBlock splits a data block into its data sets. Lines end in CR LF (a bare LF
// is accepted); a line may hold several data sets ("1.8.1(1*kWh)1.8.2(2*kWh)") and a
// data set several groups ("1.6.0(0012.345*kW)(25-11-14 10:15)"). A line "!" ends the
// block (it may be missing); only empty lines may follow it. Unbalanced parentheses,
// control characters, non-ASCII bytes, a line over 1 KiB or over 10,000 data sets are
// errors naming the line; they wrap ErrSyntax.
func ParseDataBlock(block []byte) ([]DataSet, error) {
	var sets []DataSet
	ended := false
	for n := 1; len(block) > 0; n++ {
		var line []byte
		if i := bytes.IndexByte(block, '\n'); i >= 0 {
			line, block = block[:i], block[i+1:]
		} else {
			line, block = block, nil
		}
		line = bytes.TrimSuffix(line, []byte{'\r'})
		if len(line) > maxLine {
			return nil, fmt.Errorf("%w: line %d: %d bytes, more than %d", ErrSyntax, n, len(line), maxLine)
		}
		if len(line) == 0 {
			continue
		}
		if ended {
			return nil, fmt.Errorf("%w: line %d: data after the end line \"!\"", ErrSyntax, n)
		}
		if string(line) == "!" {
			ended = true
			continue
		}
		var err error
		if sets, err = parseLine(sets, line); err != nil {
			return nil, fmt.Errorf("%w: line %d: %w", ErrSyntax, n, err)
		}
	}
	return sets, nil
}

var errNoAddress = fmt.Errorf("%w: the data set has no address", ErrOBIS)

// parseLine appends the data sets of one line (without its line end) to sets.
func parseLine(sets []DataSet, line []byte) ([]DataSet, error) {
	for i := 0; i < len(line); i++ {
		if c := line[i]; c < 0x20 || c > 0x7e {
			return sets, fmt.Errorf("byte 0x%02x at column %d: control characters and non-ASCII bytes are not allowed", c, i+1)
		}
	}
	for len(line) > 0 {
		if line[0] == ')' {
			return sets, fmt.Errorf("')' without '(' at %q", line)
		}
		open := bytes.IndexByte(line, '(')
		if open < 0 {
			return sets, fmt.Errorf("%q: an address without a value", line)
		}
		addr := line[:open]
		if i := bytes.IndexAny(addr, ")!/"); i >= 0 {
			return sets, fmt.Errorf("address %q: %q not allowed (unbalanced parentheses?)", addr, addr[i])
		}
		if len(sets) == maxDataSets {
			return sets, fmt.Errorf("more than %d data sets", maxDataSets)
		}
		ds := DataSet{Address: string(addr)}
		if len(addr) == 0 {
			// A continuation line of a profile: one shared error, not one per line.
			ds.OBISErr = errNoAddress
		} else {
			ds.OBIS, ds.OBISErr = ParseOBIS(ds.Address)
		}
		line = line[open:]
		for len(line) > 0 && line[0] == '(' {
			end := bytes.IndexAny(line[1:], "()")
			if end < 0 || line[1+end] == '(' {
				return sets, fmt.Errorf("data set %q: '(' without ')'", ds.Address)
			}
			raw := string(line[1 : 1+end])
			v := Value{Raw: raw}
			val, unit, _ := strings.Cut(raw, "*")
			v.Value, v.Unit = strings.TrimSpace(val), strings.TrimSpace(unit)
			ds.Values = append(ds.Values, v)
			line = line[2+end:]
		}
		sets = append(sets, ds)
	}
	return sets, nil
}

// IsNumeric reports whether v, without surrounding spaces, is a decimal number: an
// optional sign, digits and at most one '.', with at least one digit.
func IsNumeric(v string) bool {
	v = strings.TrimSpace(v)
	if v != "" && (v[0] == '+' || v[0] == '-') {
		v = v[1:]
	}
	digits, dots := 0, 0
	for i := 0; i < len(v); i++ {
		switch c := v[i]; {
		case '0' <= c && c <= '9':
			digits++
		case c == '.':
			dots++
		default:
			return false
		}
	}
	return digits > 0 && dots <= 1
}

var (
	obisTime = OBIS{A: Absent, B: Absent, C: 0, D: 9, E: 1, F: 255, Reduced: true}
	obisDate = OBIS{A: Absent, B: Absent, C: 0, D: 9, E: 2, F: 255, Reduced: true}
)

// MeterClock reads the meter's clock from a readout: 0.9.1, the time ("hhmmss" or
// "hh:mm:ss"), and 0.9.2, the date ("YYMMDD", "YY-MM-DD", or "cYYMMDD" with a century
// digit c: 0 for 19YY, 1 for 20YY). Full codes (0-0:0.9.1*255) count too. The result is
// the meter's wall-clock time in loc (nil: UTC); meters send no offset. ok is false when
// either data set is missing. A time that does not exist in loc or occurs twice there
// (a daylight saving change) is an error: there is no telling which instant was meant.
func MeterClock(sets []DataSet, loc *time.Location) (time.Time, bool, error) {
	if loc == nil {
		loc = time.UTC
	}
	var tv, dv string
	var haveT, haveD bool
	for _, ds := range sets {
		if ds.OBISErr != nil || len(ds.Values) == 0 {
			continue
		}
		switch {
		case !haveT && ds.OBIS.Matches(obisTime):
			tv, haveT = ds.Values[0].Value, true
		case !haveD && ds.OBIS.Matches(obisDate):
			dv, haveD = ds.Values[0].Value, true
		}
	}
	if !haveT || !haveD {
		return time.Time{}, false, nil
	}
	hh, mi, ss, err := clockFields(tv, ':', 6, "time (0.9.1)")
	if err != nil {
		return time.Time{}, true, err
	}
	century := 2000
	if len(dv) == 7 && dv[0] >= '0' && dv[0] <= '9' {
		century = 1900 + 100*int(dv[0]-'0')
		dv = dv[1:]
	}
	yy, mo, dd, err := clockFields(dv, '-', 6, "date (0.9.2)")
	if err != nil {
		return time.Time{}, true, err
	}
	if hh > 23 || mi > 59 || ss > 59 {
		return time.Time{}, true, fmt.Errorf("reading the meter clock: time %q out of range", tv)
	}
	// The calendar is checked in UTC, which has no gaps, before loc's daylight saving
	// rules can move the fields.
	civil := time.Date(century+yy, time.Month(mo), dd, hh, mi, ss, 0, time.UTC)
	if civil.Month() != time.Month(mo) || civil.Day() != dd {
		return time.Time{}, true, fmt.Errorf("reading the meter clock: date %q is not a calendar date", dv)
	}
	t := time.Date(civil.Year(), civil.Month(), dd, hh, mi, ss, 0, loc)
	if t.Day() != dd || t.Hour() != hh || t.Minute() != mi {
		return time.Time{}, true, fmt.Errorf("reading the meter clock: %s does not exist in %s (skipped by daylight saving time)", civil.Format(time.DateTime), loc)
	}
	if ambiguous(t) {
		return time.Time{}, true, fmt.Errorf("reading the meter clock: %s occurs twice in %s (daylight saving time ends)", civil.Format(time.DateTime), loc)
	}
	return t, true, nil
}

// clockFields reads "aabbcc" or "aa<sep>bb<sep>cc" as three two-digit numbers.
func clockFields(s string, sep byte, n int, what string) (int, int, int, error) {
	if len(s) == n+2 && s[2] == sep && s[5] == sep {
		s = s[:2] + s[3:5] + s[6:]
	}
	if len(s) != n {
		return 0, 0, 0, fmt.Errorf("reading the meter clock: %s %q: want %d digits", what, s, n)
	}
	var f [3]int
	for i := 0; i < n; i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, 0, 0, fmt.Errorf("reading the meter clock: %s %q: not digits", what, s)
		}
		f[i/2] = f[i/2]*10 + int(c-'0')
	}
	return f[0], f[1], f[2], nil
}

// ambiguous reports whether t's wall clock also names another instant in its location:
// the hour repeated when daylight saving time ends. Zone changes are at least hours
// apart, so the offsets in force 12 hours before and after cover both candidates.
func ambiguous(t time.Time) bool {
	_, off := t.Zone()
	for _, probe := range []time.Time{t.Add(-12 * time.Hour), t.Add(12 * time.Hour)} {
		_, o := probe.Zone()
		if o == off {
			continue
		}
		// The instant that has t's wall clock under offset o.
		u := t.Add(time.Duration(off-o) * time.Second)
		if _, uo := u.Zone(); uo == o && u.Hour() == t.Hour() && u.Minute() == t.Minute() && u.Day() == t.Day() {
			return true
		}
	}
	return false
}
