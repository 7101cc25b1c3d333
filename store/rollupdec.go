package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/big"

	"github.com/cockroachdb/apd/v3"
)

// dec is an exact decimal as a numeric column holds it, for the rollup job's aggregation
// in Go: the value is c × 10^-s, s being numeric's display scale, which PostgreSQL keeps
// through arithmetic (a sum has the largest scale of its terms, a difference too, a
// product by an integer its decimal's), so it is kept here, never normalized: 1.50 stays
// 1.50. A value whose coefficient does not fit an int64 at its scale lives in big
// instead (s is then -big.Exponent); every operation on it goes through apd, exactly
// (apd.BaseContext does not round). Never a float64.
type dec struct {
	c   int64
	s   int32
	big *apd.Decimal
}

// pow10 are the powers of ten that fit an int64.
var pow10 = [19]int64{1, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18}

// decCtx is exact: BaseContext has no precision, so Add, Sub and Mul never round.
var decCtx = apd.BaseContext

func (d dec) apd() *apd.Decimal {
	if d.big != nil {
		return d.big
	}
	return apd.New(d.c, -d.s)
}

func bigDec(x *apd.Decimal) dec { return dec{big: x, s: -x.Exponent} }

// scaleUp returns c × 10^k, and false if that does not fit an int64.
func scaleUp(c int64, k int32) (int64, bool) {
	if k == 0 || c == 0 {
		return c, true
	}
	if k > 18 {
		return 0, false
	}
	p := pow10[k]
	r := c * p
	if r/p != c {
		return 0, false
	}
	return r, true
}

// align returns a's and b's coefficients at the larger of their scales, and false if one
// does not fit an int64 (or is big).
func align(a, b dec) (int64, int64, int32, bool) {
	if a.big != nil || b.big != nil {
		return 0, 0, 0, false
	}
	s := max(a.s, b.s)
	ac, ok1 := scaleUp(a.c, s-a.s)
	bc, ok2 := scaleUp(b.c, s-b.s)
	return ac, bc, s, ok1 && ok2
}

// add is a + b, at the larger of their scales (as numeric's).
func (a dec) add(b dec) dec {
	if ac, bc, s, ok := align(a, b); ok {
		r := ac + bc
		if (ac >= 0) != (bc >= 0) || (r >= 0) == (ac >= 0) {
			return dec{c: r, s: s}
		}
	}
	var r apd.Decimal
	_, _ = decCtx.Add(&r, a.apd(), b.apd()) // exact: no rounding, no error
	return bigDec(&r)
}

// sub is a - b, at the larger of their scales.
func (a dec) sub(b dec) dec {
	if ac, bc, s, ok := align(a, b); ok {
		r := ac - bc
		if (ac >= 0) == (bc >= 0) || (r >= 0) == (ac >= 0) {
			return dec{c: r, s: s}
		}
	}
	var r apd.Decimal
	_, _ = decCtx.Sub(&r, a.apd(), b.apd())
	return bigDec(&r)
}

// mulInt is a × f, at a's scale (numeric × bigint: the integer has scale 0).
func (a dec) mulInt(f int64) dec {
	if a.big == nil {
		r := a.c * f
		if a.c == 0 || f == 0 || (r/f == a.c && !(a.c == -1 && f == math.MinInt64) && !(f == -1 && a.c == math.MinInt64)) {
			return dec{c: r, s: a.s}
		}
	}
	var r apd.Decimal
	_, _ = decCtx.Mul(&r, a.apd(), apd.New(f, 0))
	return bigDec(&r)
}

// cmp compares a and b by value (1.5 = 1.50).
func (a dec) cmp(b dec) int {
	if ac, bc, _, ok := align(a, b); ok {
		switch {
		case ac < bc:
			return -1
		case ac > bc:
			return 1
		}
		return 0
	}
	return a.apd().Cmp(b.apd())
}

// sign is -1, 0 or 1.
func (a dec) sign() int {
	if a.big != nil {
		return a.big.Sign()
	}
	switch {
	case a.c < 0:
		return -1
	case a.c > 0:
		return 1
	}
	return 0
}

// String is the value in plain notation, with its scale (for tests and errors).
func (a dec) String() string { return a.apd().Text('f') }

// errNonFinite: a NaN or infinite numeric, which amrd never writes (its ingestion refuses
// them) but SQL could: the job leaves such a slice to the SQL functions.
var errNonFinite = errors.New("a numeric value is not finite")

// Numeric's binary format (PostgreSQL's numeric_send): ndigits, weight, sign and display
// scale as int16 each, then ndigits base-10,000 digits, most significant first; the value
// is the digits × 10,000^(weight - i).
const (
	numericPos  = 0x0000
	numericNaN  = 0xC000
	numericPInf = 0xD000
	numericNInf = 0xF000
)

// decodeNumeric reads a numeric in binary format.
func decodeNumeric(src []byte) (dec, error) {
	if len(src) < 8 {
		return dec{}, fmt.Errorf("numeric: %d bytes, want at least 8", len(src))
	}
	n := int(binary.BigEndian.Uint16(src))
	weight := int32(int16(binary.BigEndian.Uint16(src[2:])))
	sign := binary.BigEndian.Uint16(src[4:])
	dscale := binary.BigEndian.Uint16(src[6:])
	switch sign {
	case numericPos, numericNeg:
	case numericNaN, numericPInf, numericNInf:
		return dec{}, errNonFinite
	default:
		return dec{}, fmt.Errorf("numeric: sign 0x%04x", sign)
	}
	if dscale > numericMaxScale {
		return dec{}, fmt.Errorf("numeric: display scale %d", dscale)
	}
	if len(src) != 8+2*n {
		return dec{}, fmt.Errorf("numeric: %d bytes for %d digits", len(src), n)
	}
	s := int32(dscale)
	// The digits as one integer c, of value c × 10^exp.
	exp := 4 * (weight - int32(n) + 1)
	var c uint64
	fits := n <= 4 // 10,000^4 = 10^16 < 2^63
	for i := range n {
		g := binary.BigEndian.Uint16(src[8+2*i:])
		if g > 9999 {
			return dec{}, fmt.Errorf("numeric: digit %d", g)
		}
		if fits {
			c = c*10000 + uint64(g)
		}
	}
	if fits {
		v, ok := int64(c), true
		switch k := exp + s; {
		case k > 0:
			v, ok = scaleUp(v, k)
		case k < 0:
			// The last digit holds decimal places beyond the scale: they are zeros.
			if -k > 18 {
				ok = v == 0
			} else {
				p := pow10[-k]
				if v%p != 0 {
					return dec{}, fmt.Errorf("numeric: digits beyond its scale %d", s)
				}
				v /= p
			}
		}
		if ok {
			if sign == numericNeg {
				v = -v
			}
			return dec{c: v, s: s}, nil
		}
	}
	// Many digits: the same in big integers.
	var bi, g big.Int
	for i := range n {
		bi.Mul(&bi, big.NewInt(10000))
		bi.Add(&bi, g.SetUint64(uint64(binary.BigEndian.Uint16(src[8+2*i:]))))
	}
	var p big.Int
	switch k := exp + s; {
	case k > 0:
		bi.Mul(&bi, p.Exp(big.NewInt(10), big.NewInt(int64(k)), nil))
	case k < 0:
		var r big.Int
		bi.QuoRem(&bi, p.Exp(big.NewInt(10), big.NewInt(int64(-k)), nil), &r)
		if r.Sign() != 0 {
			return dec{}, fmt.Errorf("numeric: digits beyond its scale %d", s)
		}
	}
	if sign == numericNeg {
		bi.Neg(&bi)
	}
	d := new(apd.Decimal)
	d.Coeff.SetMathBigInt(&bi)
	if d.Coeff.Sign() < 0 {
		d.Coeff.Neg(&d.Coeff)
		d.Negative = true
	}
	d.Exponent = -s
	return bigDec(d), nil
}

// appendDec appends d in numeric's binary format, with its scale.
func appendDec(buf []byte, d dec) ([]byte, error) {
	if d.big != nil || d.s > 16 {
		return appendNumeric(buf, d.apd())
	}
	neg := d.c < 0
	u := uint64(d.c)
	if neg {
		u = -u
	}
	// The integer part ip and the fractional part fp, padded with zeros to whole
	// base-10,000 digits: fp < 10^16 fits.
	fracGroups := (d.s + 3) / 4
	ip := u / uint64(pow10[d.s])
	fp := u % uint64(pow10[d.s]) * uint64(pow10[4*fracGroups-d.s])
	var groups [10]uint16 // at most 5 integer digits (2^64 < 10^20) and 4 fractional
	ni := 0
	for x := ip; x > 0; x /= 10000 {
		ni++
	}
	for i, x := ni-1, ip; i >= 0; i, x = i-1, x/10000 {
		groups[i] = uint16(x % 10000)
	}
	for i, x := int(fracGroups)-1, fp; i >= 0; i, x = i-1, x/10000 {
		groups[ni+i] = uint16(x % 10000)
	}
	digits := groups[:ni+int(fracGroups)]
	weight := ni - 1
	for len(digits) > 0 && digits[0] == 0 {
		digits = digits[1:]
		weight--
	}
	for len(digits) > 0 && digits[len(digits)-1] == 0 {
		digits = digits[:len(digits)-1]
	}
	sign := uint16(numericPos)
	if len(digits) == 0 {
		weight = 0
	} else if neg {
		sign = numericNeg
	}
	buf = binary.BigEndian.AppendUint16(buf, uint16(len(digits)))
	buf = binary.BigEndian.AppendUint16(buf, uint16(int16(weight)))
	buf = binary.BigEndian.AppendUint16(buf, sign)
	buf = binary.BigEndian.AppendUint16(buf, uint16(d.s))
	for _, g := range digits {
		buf = binary.BigEndian.AppendUint16(buf, g)
	}
	return buf, nil
}
