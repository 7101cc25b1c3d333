package store_test

import (
	"context"
	"encoding/binary"
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"

	"github.com/cockroachdb/apd/v3"
	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/amrd/amrd/store"
	"github.com/amrd/amrd/store/storetest"
)

// numericCases are values whose digits fall on every side of the base-10,000 groups:
// zeros with scales, powers of ten, exponents above zero, long fractions and negatives.
var numericCases = []string{
	"0", "0.000", "-0", "-0.00", "1", "-1", "9999", "10000", "10001", "12345.678", "0.001", "0.0001",
	"0.00001", "-0.00012345", "1.8E+3", "123E+5", "1E+8", "99999999.99999999", "100000000", "0.1000",
	"12.3450", "-987654321.123456789", "3.14159265358979323846264338327950288419716939937510",
	"123456789012345678901234567890", "1E-20", "5E+20", "-0.5", "2500", "0.25",
}

// decodeNumeric reads numeric's binary format back into plain notation, as PostgreSQL's
// numeric_out prints it (the display scale decides the places after the point).
func decodeNumeric(t *testing.T, b []byte) string {
	t.Helper()
	require.GreaterOrEqual(t, len(b), 8)
	n := int(binary.BigEndian.Uint16(b))
	weight := int(int16(binary.BigEndian.Uint16(b[2:])))
	sign := binary.BigEndian.Uint16(b[4:])
	scale := int(binary.BigEndian.Uint16(b[6:]))
	require.Len(t, b, 8+2*n)
	var intPart, frac strings.Builder
	for g := weight; g >= 0; g-- {
		v := 0
		if i := weight - g; i < n {
			v = int(binary.BigEndian.Uint16(b[8+2*i:]))
		}
		require.Less(t, v, 10000)
		if intPart.Len() == 0 {
			intPart.WriteString(strconv.Itoa(v))
		} else {
			intPart.WriteString(padded(v))
		}
	}
	if intPart.Len() == 0 {
		intPart.WriteString("0")
	}
	for g := -1; frac.Len() < scale; g-- {
		v := 0
		if i := weight - g; i >= 0 && i < n {
			v = int(binary.BigEndian.Uint16(b[8+2*i:]))
		}
		frac.WriteString(padded(v))
	}
	s := intPart.String()
	if scale > 0 {
		s += "." + frac.String()[:scale]
	}
	if sign == 0x4000 {
		s = "-" + s
	}
	return s
}

// plain is d as numeric_out prints it: apd's plain notation, but zero without a sign
// and without digits before the point beyond one.
func plain(d *apd.Decimal) string {
	if !d.IsZero() {
		return d.Text('f')
	}
	if d.Exponent >= 0 {
		return "0"
	}
	return "0." + strings.Repeat("0", int(-d.Exponent))
}

func padded(v int) string {
	s := strconv.Itoa(v)
	return strings.Repeat("0", 4-len(s)) + s
}

func TestAppendNumeric(t *testing.T) {
	check := func(text string) {
		t.Helper()
		var d apd.Decimal
		_, _, err := d.SetString(text)
		require.NoError(t, err, text)
		b, err := store.AppendNumeric([]byte{0xAA}, &d) // appends, keeping what was there
		require.NoError(t, err, text)
		require.Equal(t, byte(0xAA), b[0])
		require.Equal(t, plain(&d), decodeNumeric(t, b[1:]), text)
	}
	for _, c := range numericCases {
		check(c)
	}
	r := rand.New(rand.NewPCG(1, 2))
	for range 5000 {
		digits := strconv.FormatUint(r.Uint64()>>r.IntN(64), 10)
		check(digits + "E" + strconv.Itoa(r.IntN(41)-30))
		check("-" + digits + "E" + strconv.Itoa(r.IntN(41)-30))
	}
	for _, bad := range []string{"NaN", "Infinity", "-Infinity"} {
		var d apd.Decimal
		_, _, err := d.SetString(bad)
		require.NoError(t, err)
		_, err = store.AppendNumeric(nil, &d)
		require.Error(t, err, bad)
	}
	var huge apd.Decimal
	huge.SetFinite(1, -20000)
	_, err := store.AppendNumeric(nil, &huge)
	require.ErrorContains(t, err, "decimal places")
}

// TestNumericCopyRoundTrip copies the values into PostgreSQL with the fast encoding and
// reads them back as numeric's text: exactly what was sent, display scale included.
func TestNumericCopyRoundTrip(t *testing.T) {
	url := storetest.NewDatabase(t)
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	require.NoError(t, err)
	defer conn.Close(ctx)
	store.RegisterNumeric(conn)
	_, err = conn.Exec(ctx, `CREATE TEMP TABLE n (i int, v numeric)`)
	require.NoError(t, err)
	values := make([]apd.Decimal, len(numericCases))
	for i, c := range numericCases {
		_, _, err := values[i].SetString(c)
		require.NoError(t, err)
	}
	_, err = conn.CopyFrom(ctx, pgx.Identifier{"n"}, []string{"i", "v"}, pgx.CopyFromSlice(len(values), func(i int) ([]any, error) {
		return []any{i, store.NumericArg(&values[i])}, nil
	}))
	require.NoError(t, err)
	rows, err := conn.Query(ctx, `SELECT v::text FROM n ORDER BY i`)
	require.NoError(t, err)
	got, err := pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	for i := range values {
		require.Equal(t, plain(&values[i]), got[i], numericCases[i])
	}
}

func BenchmarkNumericEncode(b *testing.B) {
	var d apd.Decimal
	_, _, _ = d.SetString("123456.789")
	buf := make([]byte, 0, 64)
	for b.Loop() {
		buf, _ = store.AppendNumeric(buf[:0], &d)
	}
}
