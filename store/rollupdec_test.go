package store

import (
	"bytes"
	"math"
	"testing"

	"github.com/cockroachdb/apd/v3"
)

// decSeeds are values on every side of int64's range and of the base-10,000 groups, with
// scales kept (1.50 is not 1.5) and beyond what fits an int64 (more than 18 places).
var decSeeds = []string{
	"0", "0.000", "-0.00", "1", "-1", "1.5", "1.50", "1.500", "9999", "10000", "0.0001", "12345.678",
	"-987654321.123456789", "9223372036854775807", "-9223372036854775808", "9223372036854775808",
	"92233720368547758.07", "0.00000000000000000001", "1E+20", "1.8E+3", "123456789012345678901234567890.12345",
	"0.1234567890123456", "0.12345678901234567", "-0.000000000000000001",
}

// numericOf is d in numeric's binary format, by the encoder the ingestion uses.
func numericOf(t testing.TB, d *apd.Decimal) []byte {
	b, err := appendNumeric(nil, d)
	if err != nil {
		t.Fatalf("encoding %s: %v", d, err)
	}
	return b
}

// parseDec reads s as the ingestion would and decodes its binary form; ok is false for
// text that is not a finite decimal the ingestion stores (fuzz input: nothing to check).
func parseDec(t testing.TB, s string) (a *apd.Decimal, d dec, ok bool) {
	a, _, err := apd.NewFromString(s)
	if err != nil || a.Form != apd.Finite {
		return nil, dec{}, false
	}
	b, err := appendNumeric(nil, a)
	if err != nil {
		return nil, dec{}, false
	}
	d, err = decodeNumeric(b)
	if err != nil {
		t.Fatalf("decoding %s: %v", s, err)
	}
	return a, d, true
}

// Every seed of the fuzz tests is a value they check, not one they pass over.
func TestDecSeedsAreStoredValues(t *testing.T) {
	for _, s := range decSeeds {
		if _, _, ok := parseDec(t, s); !ok {
			t.Errorf("seed %q is not a finite decimal the ingestion stores", s)
		}
	}
}

// sameDec says whether d is want, scale included (numeric's display scale is -exponent,
// and at least 0).
func sameDec(d dec, want *apd.Decimal) bool {
	return d.apd().Cmp(want) == 0 && -d.apd().Exponent == max(0, -want.Exponent)
}

// FuzzDecodeNumeric reads numeric's binary format, as the rollup job does, and writes it
// back: the value and its scale survive, and the bytes are those of the encoder that
// wrote them.
func FuzzDecodeNumeric(f *testing.F) {
	for _, s := range decSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		a, d, ok := parseDec(t, s)
		if !ok {
			return
		}
		if !sameDec(d, a) {
			t.Fatalf("%s decoded as %s", s, d)
		}
		got, err := appendDec(nil, d)
		if err != nil {
			t.Fatal(err)
		}
		if want := numericOf(t, d.apd()); !bytes.Equal(got, want) {
			t.Fatalf("%s: encoded %x, want %x", s, got, want)
		}
	})
}

// FuzzDecArithmetic checks dec's arithmetic against apd's exact one, scales included: a
// sum and a difference have the larger scale, a product by an integer its decimal's.
func FuzzDecArithmetic(f *testing.F) {
	for i, a := range decSeeds {
		f.Add(a, decSeeds[(i+3)%len(decSeeds)], int64(i*7-3))
	}
	f.Add("9223372036854775807", "1", int64(math.MaxInt64))
	f.Add("-9223372036854775808", "-1", int64(-1))
	f.Add("-9223372036854775808", "0.1", int64(math.MinInt64))
	f.Fuzz(func(t *testing.T, x, y string, k int64) {
		ax, dx, okx := parseDec(t, x)
		ay, dy, oky := parseDec(t, y)
		if !okx || !oky {
			return
		}
		ax, ay = dx.apd(), dy.apd() // numeric's scale: no positive exponent
		var want apd.Decimal
		_, _ = decCtx.Add(&want, ax, ay)
		if got := dx.add(dy); !sameDec(got, &want) {
			t.Fatalf("%s + %s = %s, want %s", x, y, got, want.Text('f'))
		}
		_, _ = decCtx.Sub(&want, ax, ay)
		if got := dx.sub(dy); !sameDec(got, &want) {
			t.Fatalf("%s - %s = %s, want %s", x, y, got, want.Text('f'))
		}
		_, _ = decCtx.Mul(&want, ax, apd.New(k, 0))
		if got := dx.mulInt(k); !sameDec(got, &want) {
			t.Fatalf("%s × %d = %s, want %s", x, k, got, want.Text('f'))
		}
		if got, want := dx.cmp(dy), ax.Cmp(ay); got != want {
			t.Fatalf("cmp(%s, %s) = %d, want %d", x, y, got, want)
		}
		if got, want := dx.sign(), ax.Sign(); got != want {
			t.Fatalf("sign(%s) = %d, want %d", x, got, want)
		}
	})
}

func TestDecodeNumericRefusesNonFinite(t *testing.T) {
	for _, sign := range []byte{0xC0, 0xD0, 0xF0} {
		if _, err := decodeNumeric([]byte{0, 0, 0, 0, sign, 0, 0, 0}); err != errNonFinite {
			t.Errorf("sign %x: %v, want errNonFinite", sign, err)
		}
	}
	for _, b := range [][]byte{nil, {0, 1, 0, 0, 0, 0, 0, 0}, {0, 1, 0, 0, 0, 0, 0, 0, 0x27, 0x10}} {
		if _, err := decodeNumeric(b); err == nil {
			t.Errorf("%x decoded", b)
		}
	}
}
