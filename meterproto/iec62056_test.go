package meterproto

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"github.com/stretchr/testify/require"
)

func TestValidAddressAndRequest(t *testing.T) {
	t.Parallel()
	for _, ok := range []string{"", "12345678", "A B-1", strings.Repeat("9", 32)} {
		require.NoError(t, ValidAddress(ok), ok)
	}
	for _, bad := range []string{"1/2", "a?", "x!", "\r", "é", strings.Repeat("9", 33)} {
		require.Error(t, ValidAddress(bad), bad)
	}
	require.Equal(t, "/?!\r\n", string(RequestMessage("")))
	require.Equal(t, "/?12345678!\r\n", string(RequestMessage("12345678")))
	require.Equal(t, []byte{0x06, '0', '5', '0', '\r', '\n'}, OptionSelect('5', '0'))
}

func TestParseIdent(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in      string
		want    Ident
		baud    int
		wantErr string
	}{
		{in: "/ISk5\\2MT382-1000\r\n", want: Ident{Manufacturer: "ISk", BaudChar: '5', Enhanced: `\2`, Ident: "MT382-1000", Reaction20ms: true}, baud: 9600},
		{in: "/LGZ4ZMD410CT.M26", want: Ident{Manufacturer: "LGZ", BaudChar: '4', Ident: "ZMD410CT.M26"}, baud: 4800},
		{in: "/ESY5Q3DA1024 V3.03\n", want: Ident{Manufacturer: "ESY", BaudChar: '5', Ident: "Q3DA1024 V3.03"}, baud: 9600},
		{in: "/AMR0\\@\\2x\r\n", want: Ident{Manufacturer: "AMR", BaudChar: '0', Enhanced: `\@\2`, Ident: "x"}, baud: 300},
		{in: "/KFM6KAIFA-METER\r\n", want: Ident{Manufacturer: "KFM", BaudChar: '6', Ident: "KAIFA-METER"}, baud: 19200},
		{in: "/ABCEmodeB", want: Ident{Manufacturer: "ABC", BaudChar: 'E', Ident: "modeB"}, baud: 9600},
		{in: "/ABCI", want: Ident{Manufacturer: "ABC", BaudChar: 'I'}, baud: 0},

		{in: "", wantErr: "want /XXXZ"},
		{in: "ISk5MT", wantErr: "want /XXXZ"},
		{in: "/IS5", wantErr: "want /XXXZ"},
		{in: "/I1k5MT", wantErr: "not three letters"},
		{in: "/ISk7MT", wantErr: "baud character '7'"},
		{in: "/ISkZMT", wantErr: "baud character 'Z'"},
		{in: "/ISk5M\x00T", wantErr: "not allowed"},
		{in: "/ISk5M/T", wantErr: "not allowed"},
		{in: "/ISk5\\\x01x", wantErr: "control character"},
		{in: "/ISk5" + strings.Repeat("x", 65), wantErr: "longer than 64"},
		{in: "/ISk5MT\r\n\r\n", wantErr: "not allowed"},
	}
	for _, tc := range tests {
		t.Run(fmt.Sprintf("%q", tc.in), func(t *testing.T) {
			got, err := ParseIdent([]byte(tc.in))
			if tc.wantErr != "" {
				require.ErrorIs(t, err, ErrGarbage)
				require.ErrorContains(t, err, tc.wantErr)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.want, got)
			require.Equal(t, tc.baud, got.BaudRate())
		})
	}
}

// blockWithBCC returns a valid data block whose BCC is target: a filler character in
// a value is chosen to make the XOR come out right.
func blockWithBCC(t *testing.T, target byte) []byte {
	t.Helper()
	for _, base := range []string{"0", "1", "2", "3", "12"} {
		head, tail := "1.8.0("+base, "*kWh)\r\n!\r\n"
		x := BCC([]byte(head+tail)) ^ target
		if x >= 0x20 && x < 0x7f && x != '(' && x != ')' && x != '*' {
			b := []byte(head + string(rune(x)) + tail)
			require.Equal(t, target, BCC(b))
			return b
		}
	}
	t.Fatalf("no filler gives BCC 0x%02x", target)
	return nil
}

func TestReadDataMessage(t *testing.T) {
	t.Parallel()
	msg := func(block []byte) string { return string(DataMessage(block)) }
	good := []byte("1.8.0(0012345.678*kWh)\r\n!\r\n")
	tests := []struct {
		name    string
		in      string
		max     int
		want    []byte
		wantErr error
		errText string
	}{
		{name: "plain", in: msg(good), want: good},
		{name: "NUL CR LF before STX", in: "\x00\x00\r\n" + msg(good), want: good},
		{name: "BCC is CR", in: msg(blockWithBCC(t, '\r')), want: blockWithBCC(t, '\r')},
		{name: "BCC is LF", in: msg(blockWithBCC(t, '\n')), want: blockWithBCC(t, '\n')},
		{name: "BCC is !", in: msg(blockWithBCC(t, '!')), want: blockWithBCC(t, '!')},
		{name: "BCC is /", in: msg(blockWithBCC(t, '/')), want: blockWithBCC(t, '/')},
		{name: "BCC is NUL", in: msg(blockWithBCC(t, 0)), want: blockWithBCC(t, 0)},
		{name: "BCC with bit 7 set", in: msg(good)[:len(msg(good))-1] + string([]byte{BCC(good) | 0x80}), want: good},
		{name: "block bytes with bit 7 set", in: msg([]byte("\xb1\r\n")), want: []byte("\xb1\r\n")},
		{name: "empty block", in: msg(nil), want: []byte{}},
		{name: "bytes after the BCC stay unread", in: msg(good) + "/ISk5", want: good},
		{name: "block of exactly max bytes", in: msg(good), max: len(good), want: good},

		{name: "bad BCC", in: msg(good)[:len(msg(good))-1] + string([]byte{BCC(good) ^ 1}), wantErr: ErrBCC,
			errText: fmt.Sprintf("expected 0x%02x, got 0x%02x", BCC(good), BCC(good)^1)},
		{name: "empty input", in: "", wantErr: ErrTruncated, errText: "waiting for STX"},
		{name: "only NULs", in: "\x00\x00", wantErr: ErrTruncated},
		{name: "EOF in the block", in: msg(good)[:10], wantErr: ErrTruncated, errText: "after 9 bytes, before ETX"},
		{name: "EOF before BCC", in: msg(good)[:len(msg(good))-1], wantErr: ErrTruncated, errText: "reading the BCC"},
		{name: "NAK", in: "\x15", wantErr: ErrGarbage, errText: "NAK (0x15)"},
		{name: "identification again", in: "/ISk5MT\r\n", wantErr: ErrGarbage, errText: `byte 0x2f ('/')`},
		{name: "junk after NULs", in: "\x00\x00\xfe", wantErr: ErrGarbage, errText: "byte 0xfe where STX should start the data message (after 2 skipped bytes)"},
		{name: "SOH", in: "\x01P0\x02(1)\x03\x60", wantErr: ErrGarbage},
		{name: "no ETX within max", in: msg(good), max: len(good) - 1, wantErr: ErrNoETX, errText: fmt.Sprintf("exceeds %d bytes", len(good)-1)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ReadDataMessage(bufio.NewReader(strings.NewReader(tc.in)), tc.max)
			if tc.wantErr != nil {
				require.ErrorIs(t, err, tc.wantErr)
				for _, other := range []error{ErrBCC, ErrTruncated, ErrNoETX, ErrGarbage} {
					if other != tc.wantErr {
						require.NotErrorIs(t, err, other)
					}
				}
				require.ErrorContains(t, err, tc.errText)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.want, got)
		})
	}

	t.Run("a reader's own error passes through", func(t *testing.T) {
		boom := errors.New("boom")
		_, err := ReadDataMessage(bufio.NewReader(iotest.ErrReader(boom)), 0)
		require.ErrorIs(t, err, boom)
		require.NotErrorIs(t, err, ErrTruncated)
	})
	t.Run("one byte at a time", func(t *testing.T) {
		b := blockWithBCC(t, '\n')
		got, err := ReadDataMessage(bufio.NewReader(iotest.OneByteReader(bytes.NewReader(DataMessage(b)))), 0)
		require.NoError(t, err)
		require.Equal(t, b, got)
	})
	t.Run("the default bound", func(t *testing.T) {
		big := bytes.Repeat([]byte("x"), DefaultMaxBlock+1)
		_, err := ReadDataMessage(bufio.NewReader(bytes.NewReader(DataMessage(big))), 0)
		require.ErrorIs(t, err, ErrNoETX)
	})
}

func TestParseDataBlock(t *testing.T) {
	t.Parallel()
	v := func(raw, val, unit string) Value { return Value{Raw: raw, Value: val, Unit: unit} }
	tests := []struct {
		name    string
		in      string
		want    []DataSet // OBIS filled in by the test from Address
		wantErr string
	}{
		{name: "one set a line", in: "1.8.0(0012345.678*kWh)\r\nF.F(00000000)\r\n!\r\n", want: []DataSet{
			{Address: "1.8.0", Values: []Value{v("0012345.678*kWh", "0012345.678", "kWh")}},
			{Address: "F.F", Values: []Value{v("00000000", "00000000", "")}},
		}},
		{name: "several sets a line", in: "1.8.1(1.0*kWh)1.8.2(2.0*kWh)2.8.0( 3 *kWh)\r\n!\r\n", want: []DataSet{
			{Address: "1.8.1", Values: []Value{v("1.0*kWh", "1.0", "kWh")}},
			{Address: "1.8.2", Values: []Value{v("2.0*kWh", "2.0", "kWh")}},
			{Address: "2.8.0", Values: []Value{v(" 3 *kWh", "3", "kWh")}},
		}},
		{name: "several groups", in: "1.6.0(0012.345*kW)(25-11-14 10:15)\r\n!", want: []DataSet{
			{Address: "1.6.0", Values: []Value{v("0012.345*kW", "0012.345", "kW"), v("25-11-14 10:15", "25-11-14 10:15", "")}},
		}},
		{name: "open inside a group", in: "32.7(1*V)\r\n0.0.0()\r\nC.1.0(()\r\n", wantErr: `line 3: data set "C.1.0": '(' without ')'`},
		{name: "empty group", in: "0.0.0()\r\n", want: []DataSet{{Address: "0.0.0", Values: []Value{v("", "", "")}}}},
		{name: "padding", in: "32.7(  230.1 * V )", want: []DataSet{{Address: "32.7", Values: []Value{v("  230.1 * V ", "230.1", "V")}}}},
		{name: "full OBIS and bare LF", in: "1-0:1.8.0*255(000123.456*kWh)\n0-0:96.1.0(ABC)\n!\n", want: []DataSet{
			{Address: "1-0:1.8.0*255", Values: []Value{v("000123.456*kWh", "000123.456", "kWh")}},
			{Address: "0-0:96.1.0", Values: []Value{v("ABC", "ABC", "")}},
		}},
		{name: "continuation line without address", in: "P.01(2511140000)(00)(15)\r\n(0.123)(0.456)\r\n", want: []DataSet{
			{Address: "P.01", Values: []Value{v("2511140000", "2511140000", ""), v("00", "00", ""), v("15", "15", "")}},
			{Address: "", Values: []Value{v("0.123", "0.123", ""), v("0.456", "0.456", "")}},
		}},
		{name: "manufacturer-specific address", in: "SERIAL(123)\r\n", want: []DataSet{{Address: "SERIAL", Values: []Value{v("123", "123", "")}}}},
		{name: "blank lines and no end line", in: "\r\n1.8.0(1)\r\n\r\n", want: []DataSet{{Address: "1.8.0", Values: []Value{v("1", "1", "")}}}},
		{name: "only the end line", in: "!\r\n", want: nil},
		{name: "empty", in: "", want: nil},

		{name: "unclosed group", in: "1.8.0(1)\r\n1.8.1(12\r\n", wantErr: `line 2: data set "1.8.1": '(' without ')'`},
		{name: "nested group", in: "1.8.1(1(2))\r\n", wantErr: `line 1: data set "1.8.1": '(' without ')'`},
		{name: "stray close", in: "1.8.1(1))\r\n", wantErr: `line 1: ')' without '('`},
		{name: "close in the address", in: "1.8)1(2)\r\n", wantErr: `line 1: address "1.8)1"`},
		{name: "address without value", in: "1.8.0(1)2.8.0\r\n", wantErr: `line 1: "2.8.0": an address without a value`},
		{name: "control character", in: "1.8.0(1)\r\n1.8.0(1\x02)\r\n", wantErr: "line 2: byte 0x02 at column 8"},
		{name: "bare CR", in: "1.8.0(1)\r1.8.1(2)\r\n", wantErr: "line 1: byte 0x0d"},
		{name: "non-ASCII", in: "1.8.0(1\xc3\xa9)\r\n", wantErr: "line 1: byte 0xc3"},
		{name: "data after the end", in: "!\r\n1.8.0(1)\r\n", wantErr: "line 2: data after the end line"},
		{name: "long line", in: "0.0.0(" + strings.Repeat("1", 1020) + ")\r\n", wantErr: "line 1: 1027 bytes, more than 1024"},
		{name: "too many data sets", in: strings.Repeat(strings.Repeat("1.8.0(1)", 100)+"\r\n", 101), wantErr: "line 101: more than 10000 data sets"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseDataBlock([]byte(tc.in))
			if tc.wantErr != "" {
				require.ErrorIs(t, err, ErrSyntax)
				require.ErrorContains(t, err, tc.wantErr)
				require.Nil(t, got)
				return
			}
			require.NoError(t, err)
			for i := range tc.want {
				if tc.want[i].Address == "" {
					tc.want[i].OBISErr = errNoAddress
					continue
				}
				tc.want[i].OBIS, tc.want[i].OBISErr = ParseOBIS(tc.want[i].Address)
			}
			require.Equal(t, tc.want, got)
		})
	}
	t.Run("exactly 10000 data sets", func(t *testing.T) {
		sets, err := ParseDataBlock([]byte(strings.Repeat(strings.Repeat("1.8.0(1)", 100)+"\r\n", 100)))
		require.NoError(t, err)
		require.Len(t, sets, 10000)
	})
	t.Run("OBIS of the data sets", func(t *testing.T) {
		sets, err := ParseDataBlock([]byte("1-0:1.8.0*255(1)\r\nSERIAL(2)\r\n"))
		require.NoError(t, err)
		want, _ := ParseOBIS("1.8.0")
		require.NoError(t, sets[0].OBISErr)
		require.True(t, sets[0].OBIS.Matches(want))
		require.ErrorIs(t, sets[1].OBISErr, ErrOBIS)
	})
}

func TestMeterClock(t *testing.T) {
	t.Parallel()
	sthlm, err := time.LoadLocation("Europe/Stockholm")
	require.NoError(t, err)
	tests := []struct {
		name    string
		block   string
		loc     *time.Location
		want    time.Time
		ok      bool
		wantErr string
	}{
		{name: "reduced codes", block: "0.9.1(101500)\r\n0.9.2(251114)\r\n", loc: sthlm, ok: true,
			want: time.Date(2025, 11, 14, 10, 15, 0, 0, sthlm)},
		{name: "full codes, separators", block: "0-0:0.9.2*255(25-11-14)\r\n1-0:0.9.1(10:15:30)\r\n", ok: true,
			want: time.Date(2025, 11, 14, 10, 15, 30, 0, time.UTC)},
		{name: "century digit 1", block: "0.9.1(235959)0.9.2(1251231)", loc: sthlm, ok: true,
			want: time.Date(2025, 12, 31, 23, 59, 59, 0, sthlm)},
		{name: "century digit 0", block: "0.9.1(000000)0.9.2(0991231)", ok: true,
			want: time.Date(1999, 12, 31, 0, 0, 0, 0, time.UTC)},
		{name: "leap day", block: "0.9.1(120000)0.9.2(240229)", ok: true, want: time.Date(2024, 2, 29, 12, 0, 0, 0, time.UTC)},
		{name: "time missing", block: "0.9.2(251114)\r\n", ok: false},
		{name: "date missing", block: "0.9.1(101500)\r\n1.8.0(1)", ok: false},
		{name: "billing period is not the clock", block: "0.9.1*01(101500)0.9.2(251114)", ok: false},

		{name: "not a date", block: "0.9.1(101500)0.9.2(250229)", ok: true, wantErr: `date "250229" is not a calendar date`},
		{name: "month 13", block: "0.9.1(101500)0.9.2(251314)", ok: true, wantErr: "not a calendar date"},
		{name: "day 0", block: "0.9.1(101500)0.9.2(251100)", ok: true, wantErr: "not a calendar date"},
		{name: "hour 24", block: "0.9.1(240000)0.9.2(251114)", ok: true, wantErr: `time "240000" out of range`},
		{name: "letters", block: "0.9.1(10h500)0.9.2(251114)", ok: true, wantErr: "not digits"},
		{name: "short", block: "0.9.1(1015)0.9.2(251114)", ok: true, wantErr: "want 6 digits"},
		{name: "skipped by DST", block: "0.9.1(023000)0.9.2(250330)", loc: sthlm, ok: true,
			wantErr: "2025-03-30 02:30:00 does not exist in Europe/Stockholm"},
		{name: "repeated by DST", block: "0.9.1(023000)0.9.2(251026)", loc: sthlm, ok: true,
			wantErr: "2025-10-26 02:30:00 occurs twice in Europe/Stockholm"},
		{name: "just before DST ends", block: "0.9.1(015959)0.9.2(251026)", loc: sthlm, ok: true,
			want: time.Date(2025, 10, 26, 1, 59, 59, 0, sthlm)},
		{name: "just after DST ends", block: "0.9.1(030000)0.9.2(251026)", loc: sthlm, ok: true,
			want: time.Date(2025, 10, 26, 3, 0, 0, 0, sthlm)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			sets, err := ParseDataBlock([]byte(tc.block))
			require.NoError(t, err)
			got, ok, err := MeterClock(sets, tc.loc)
			require.Equal(t, tc.ok, ok)
			if tc.wantErr != "" {
				require.ErrorContains(t, err, tc.wantErr)
				return
			}
			require.NoError(t, err)
			require.True(t, tc.want.Equal(got), "got %v, want %v", got, tc.want)
			if tc.ok {
				require.Equal(t, tc.want.Location(), got.Location())
			}
		})
	}
}

func TestIsNumeric(t *testing.T) {
	t.Parallel()
	for _, s := range []string{"0", "0012.345", " 230.1 ", "-1.5", "+7", ".5", "5.", "00000000"} {
		require.True(t, IsNumeric(s), s)
	}
	for _, s := range []string{"", " ", "-", ".", "1.2.3", "1e3", "12:00", "25-11-14", "0x1F", "1 2", "NaN"} {
		require.False(t, IsNumeric(s), s)
	}
}

func TestDataMessage(t *testing.T) {
	t.Parallel()
	// STX "1(2)" CR LF "!" CR LF ETX BCC, the BCC worked out by hand.
	block := []byte("1(2)\r\n!\r\n")
	var x byte
	for _, c := range append(append([]byte{}, block...), ETX) {
		x ^= c
	}
	require.Equal(t, append(append([]byte{STX}, block...), ETX, x&0x7f), DataMessage(block))
}
