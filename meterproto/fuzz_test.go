package meterproto

import (
	"bufio"
	"bytes"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// The seed corpora under testdata/fuzz hold realistic telegrams (a Landis+Gyr style
// readout, a full-OBIS one, a load profile), identifications of several makers, and the
// inputs the fuzzers found interesting.

func FuzzReadDataMessage(f *testing.F) {
	f.Add(DataMessage([]byte("1.8.0(0012345.678*kWh)\r\n!\r\n")))
	f.Add([]byte("\x00\x00\r\n\x15"))
	f.Fuzz(func(t *testing.T, data []byte) {
		const max = 512
		block, err := ReadDataMessage(bufio.NewReader(bytes.NewReader(data)), max)
		if err != nil {
			n := 0
			for _, s := range []error{ErrBCC, ErrTruncated, ErrNoETX, ErrGarbage} {
				if errors.Is(err, s) {
					n++
				}
			}
			require.Equal(t, 1, n, "error %v wraps %d sentinels", err, n)
			return
		}
		require.LessOrEqual(t, len(block), max)
		require.NotContains(t, block, byte(ETX))
		i := bytes.IndexByte(data, STX)
		require.GreaterOrEqual(t, i, 0)
		for _, c := range data[:i] {
			require.Contains(t, []byte{0, '\r', '\n'}, c)
		}
		require.Equal(t, block, data[i+1:i+1+len(block)])
		require.Equal(t, byte(ETX), data[i+1+len(block)])
		require.Equal(t, BCC(block), data[i+2+len(block)]&0x7f)
	})
}

func FuzzParseDataBlock(f *testing.F) {
	f.Add([]byte("1.8.1(1*kWh)1.8.2(2*kWh)\r\n1.6.0(0012.345*kW)(25-11-14 10:15)\r\n!\r\n"))
	f.Fuzz(func(t *testing.T, block []byte) {
		sets, err := ParseDataBlock(block)
		if err != nil {
			require.ErrorIs(t, err, ErrSyntax)
			require.Contains(t, err.Error(), "line ")
			require.Nil(t, sets)
			return
		}
		require.LessOrEqual(t, len(sets), maxDataSets)
		// Written out one data set a line, the sets read back the same. Plain checks in
		// the loops: testify's reflection would dominate the fuzzer's time on big blocks.
		var b bytes.Buffer
		for _, ds := range sets {
			if len(ds.Values) == 0 {
				t.Fatalf("data set %q without values", ds.Address)
			}
			if _, err := ParseOBIS(ds.Address); (err == nil) != (ds.OBISErr == nil) {
				t.Fatalf("OBISErr %v for %q", ds.OBISErr, ds.Address)
			}
			b.WriteString(ds.Address)
			for _, v := range ds.Values {
				val, unit, _ := strings.Cut(v.Raw, "*")
				if strings.ContainsAny(v.Raw, "()") || strings.TrimSpace(val) != v.Value || strings.TrimSpace(unit) != v.Unit {
					t.Fatalf("value %+v", v)
				}
				b.WriteString("(" + v.Raw + ")")
			}
			b.WriteString("\r\n")
		}
		b.WriteString("!\r\n")
		again, err := ParseDataBlock(b.Bytes())
		require.NoError(t, err, "%q", b.Bytes())
		require.Equal(t, len(sets), len(again))
		for i := range sets {
			if sets[i].Address != again[i].Address || sets[i].OBIS != again[i].OBIS || !slices.Equal(sets[i].Values, again[i].Values) {
				t.Fatalf("data set %d: %+v read back as %+v", i, sets[i], again[i])
			}
		}
	})
}

func FuzzParseOBIS(f *testing.F) {
	for _, s := range []string{"1-0:1.8.0*255", "1.8.0", "32.7", "C.1.0", "F.F", "1.8.0*02"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		o, err := ParseOBIS(s)
		if err != nil {
			require.ErrorIs(t, err, ErrOBIS)
			return
		}
		for _, g := range []int{o.C, o.D, o.F} {
			require.True(t, 0 <= g && g <= 255, "%+v", o)
		}
		for _, g := range []int{o.A, o.B, o.E} {
			require.True(t, g == Absent || 0 <= g && g <= 255, "%+v", o)
		}
		if o.Reduced {
			require.Equal(t, Absent, o.A)
			require.Equal(t, Absent, o.B)
		} else {
			require.NotEqual(t, Absent, o.E)
		}
		back, err := ParseOBIS(o.String())
		require.NoError(t, err, o.String())
		require.Equal(t, o, back)
		require.True(t, o.Matches(o))
	})
}

func FuzzParseIdent(f *testing.F) {
	for _, s := range []string{"/ISk5\\2MT382-1000\r\n", "/LGZ4ZMD410CT.M26", "/ABCEmodeB"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, line []byte) {
		id, err := ParseIdent(line)
		if err != nil {
			require.ErrorIs(t, err, ErrGarbage)
			return
		}
		require.Len(t, id.Manufacturer, 3)
		require.NotZero(t, id.BaudChar)
		require.Equal(t, id.BaudChar <= '9', id.ModeC())
		again, err := ParseIdent([]byte("/" + id.Manufacturer + string(id.BaudChar) + id.Enhanced + id.Ident + "\r\n"))
		require.NoError(t, err)
		require.Equal(t, id, again)
	})
}
