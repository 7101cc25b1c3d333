package store

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/cockroachdb/apd/v3"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
)

// numeric is an apd.Decimal on its way into a numeric column by COPY (binary format),
// exact, without a float64.
type numeric struct{ d *apd.Decimal }

// NumericValue lets pgx's own numeric codec encode it, where the fast one below is not
// registered (it is on every connection of a Store).
func (n numeric) NumericValue() (pgtype.Numeric, error) {
	i := n.d.Coeff.MathBigInt()
	if n.d.Negative {
		i.Neg(i)
	}
	return pgtype.Numeric{Int: i, Exp: n.d.Exponent, Valid: true}, nil
}

// numericCodec is pgx's numeric codec with a faster binary encoding of numeric values.
// pgx's goes through math/big (a division and a power of ten a value), which makes it a
// large part of amrd's CPU on 1,000-reading requests. This one reads the decimal digits
// of the coefficient once and groups them into numeric's base-10,000 digits.
type numericCodec struct{ pgtype.NumericCodec }

func (c numericCodec) PlanEncode(m *pgtype.Map, oid uint32, format int16, value any) pgtype.EncodePlan {
	if _, ok := value.(numeric); ok && format == pgtype.BinaryFormatCode {
		return numericPlan{}
	}
	return c.NumericCodec.PlanEncode(m, oid, format, value)
}

type numericPlan struct{}

func (numericPlan) Encode(value any, buf []byte) ([]byte, error) {
	return appendNumeric(buf, value.(numeric).d)
}

// registerNumeric installs numericCodec on a connection.
func registerNumeric(conn *pgx.Conn) {
	conn.TypeMap().RegisterType(&pgtype.Type{Name: "numeric", OID: pgtype.NumericOID, Codec: numericCodec{}})
}

// Limits of numeric's binary format (PostgreSQL's numeric.c): the display scale and the
// weight of the first base-10,000 digit.
const (
	numericMaxScale  = 0x3FFF
	numericMaxWeight = 0x7FFF
	numericNeg       = 0x4000
)

var errNumericForm = errors.New("only finite decimals are stored")

// appendNumeric appends d in numeric's binary format: ndigits, weight, sign and display
// scale (int16 each), then the base-10,000 digits, most significant first. The value is
// digits × 10^exponent; the digits are grouped in fours around the decimal point.
func appendNumeric(buf []byte, d *apd.Decimal) ([]byte, error) {
	if d.Form != apd.Finite {
		return nil, errNumericForm
	}
	var scratch [40]byte
	digits := d.Coeff.Append(scratch[:0], 10) // the coefficient's decimal digits; never negative
	exp := int(d.Exponent)
	scale := 0
	if exp < 0 {
		scale = -exp
	}
	if scale > numericMaxScale {
		return nil, fmt.Errorf("numeric: %d decimal places exceed numeric's %d", scale, numericMaxScale)
	}
	// Positions: digit i of digits has the power of ten p(i) = exp + len(digits)-1-i. A
	// base-10,000 digit g holds powers 4g..4g+3. Walk from the most significant power.
	top := exp + len(digits) - 1 // power of the first digit
	// Skip leading zeros (a coefficient of 0 is all zeros).
	for len(digits) > 0 && digits[0] == '0' {
		digits = digits[1:]
		top--
	}
	start := len(buf)
	buf = append(buf, 0, 0, 0, 0, 0, 0, 0, 0) // header, filled in below
	if len(digits) == 0 {
		binary.BigEndian.PutUint16(buf[start+6:], uint16(scale))
		return buf, nil
	}
	low := top - len(digits) + 1 // power of the last digit
	gTop, gLow := floorDiv4(top), floorDiv4(low)
	if gTop > numericMaxWeight || gTop < -numericMaxWeight {
		return nil, fmt.Errorf("numeric: the value %s is beyond numeric's range", d.Text('f'))
	}
	n := 0
	for g := gTop; g >= gLow; g-- {
		v := 0
		for p := 4*g + 3; p >= 4*g; p-- {
			v *= 10
			if i := top - p; i >= 0 && i < len(digits) {
				v += int(digits[i] - '0')
			}
		}
		buf = binary.BigEndian.AppendUint16(buf, uint16(v))
		n++
	}
	// Trailing zero groups are left out, as PostgreSQL does.
	for n > 0 && buf[len(buf)-2] == 0 && buf[len(buf)-1] == 0 {
		buf = buf[:len(buf)-2]
		n--
	}
	binary.BigEndian.PutUint16(buf[start:], uint16(n))
	binary.BigEndian.PutUint16(buf[start+2:], uint16(int16(gTop)))
	if d.Negative {
		binary.BigEndian.PutUint16(buf[start+4:], numericNeg)
	}
	binary.BigEndian.PutUint16(buf[start+6:], uint16(scale))
	return buf, nil
}

// floorDiv4 is x/4 rounded towards minus infinity.
func floorDiv4(x int) int {
	if x >= 0 {
		return x / 4
	}
	return -((-x + 3) / 4)
}
