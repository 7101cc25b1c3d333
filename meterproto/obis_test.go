package meterproto

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestParseOBIS(t *testing.T) {
	t.Parallel()
	const x = Absent
	tests := []struct {
		in      string
		want    OBIS
		wantErr string
	}{
		{in: "1-0:1.8.0*255", want: OBIS{1, 0, 1, 8, 0, 255, false}},
		{in: "1-0:1.8.0", want: OBIS{1, 0, 1, 8, 0, 255, false}},
		{in: "0-0:C.1.0", want: OBIS{0, 0, 96, 1, 0, 255, false}},
		{in: "0-1:24.2.1*101", want: OBIS{0, 1, 24, 2, 1, 101, false}},
		{in: "1.8.0", want: OBIS{x, x, 1, 8, 0, 255, true}},
		{in: "32.7", want: OBIS{x, x, 32, 7, x, 255, true}},
		{in: "C.1.0", want: OBIS{x, x, 96, 1, 0, 255, true}},
		{in: "F.F", want: OBIS{x, x, 97, 97, x, 255, true}},
		{in: "L.P.0", want: OBIS{x, x, 98, 99, 0, 255, true}},
		{in: "1.8.0*02", want: OBIS{x, x, 1, 8, 0, 2, true}},
		{in: "1.8.0&12", want: OBIS{x, x, 1, 8, 0, 12, true}},
		{in: "255.255.255*255", want: OBIS{x, x, 255, 255, 255, 255, true}},
		{in: "001.008.000", want: OBIS{x, x, 1, 8, 0, 255, true}},

		{in: "", wantErr: "want C.D.E or C.D"},
		{in: "1", wantErr: "want C.D.E or C.D"},
		{in: "1.8.0.0", wantErr: "want C.D.E or C.D"},
		{in: "1-0:1.8", wantErr: "want C.D.E after A-B:"},
		{in: "1:1.8.0", wantErr: "groups A and B must be written A-B:"},
		{in: "1.8.256", wantErr: "group E is 256, above 255"},
		{in: "1.8.0*", wantErr: "group F is empty"},
		{in: "1.8.0*1000", wantErr: "longer than 3 digits"},
		{in: "1..0", wantErr: "group D is empty"},
		{in: "1.8.x", wantErr: `group E "x" is not a number`},
		{in: "1.8.C", wantErr: `group E "C" is not a number`}, // letters only in C and D
		{in: "c.1.0", wantErr: `group C "c" is not a number`},
		{in: "-1.8.0", wantErr: `group C "-1" is not a number`},
		{in: "+1.8.0", wantErr: `group C "+1" is not a number`},
		{in: " 1.8.0", wantErr: "not a number"},
		{in: "1-0:1.8.0*2*3", wantErr: "group F"},
		{in: "1-:1.8.0", wantErr: "group B is empty"},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			got, err := ParseOBIS(tc.in)
			if tc.wantErr != "" {
				require.ErrorIs(t, err, ErrOBIS)
				require.ErrorContains(t, err, tc.wantErr)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.want, got)
			back, err := ParseOBIS(got.String())
			require.NoError(t, err, got.String())
			require.Equal(t, got, back, "String %q does not read back", got.String())
		})
	}
}

func TestOBISString(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"1-0:1.8.0":   "1-0:1.8.0*255",
		"0-0:C.1.0*3": "0-0:96.1.0*3",
		"1.8.0*255":   "1.8.0",
		"1.8.0*02":    "1.8.0*2",
		"96.1.0":      "C.1.0",
		"F.F":         "F.F",
		"32.7":        "32.7",
	} {
		o, err := ParseOBIS(in)
		require.NoError(t, err)
		require.Equal(t, want, o.String(), in)
	}
}

func TestOBISMatches(t *testing.T) {
	t.Parallel()
	tests := []struct {
		a, b string
		want bool
	}{
		{"1.8.0", "1-0:1.8.0*255", true},
		{"1-0:1.8.0*255", "1.8.0", true},
		{"1.8.0", "1-0:1.8.0", true},
		{"1.8.0", "0-0:1.8.0", true}, // a reduced code does not say A and B
		{"1-0:1.8.0", "1-0:1.8.0*255", true},
		{"1.8.0", "1.8.0", true},
		{"32.7", "32.7.0", true},
		{"32.7", "1-0:32.7.0", true},
		{"C.1.0", "0-0:96.1.0*255", true},
		{"F.F", "97.97", true},
		{"1.8.0*02", "1.8.0*2", true},

		{"1.8.0", "1.8.1", false},
		{"1.8.0", "2.8.0", false},
		{"1.8.0", "1.8.0*02", false}, // a billing period is another value
		{"1-0:1.8.0", "0-0:1.8.0", false},
		{"1-0:1.8.0", "1-1:1.8.0", false},
		{"1-0:1.8.0*255", "1-0:1.8.0*01", false},
		{"32.7", "52.7", false},
		{"32.7.0", "32.7.1", false},
	}
	for _, tc := range tests {
		t.Run(tc.a+" vs "+tc.b, func(t *testing.T) {
			a, err := ParseOBIS(tc.a)
			require.NoError(t, err)
			b, err := ParseOBIS(tc.b)
			require.NoError(t, err)
			require.Equal(t, tc.want, a.Matches(b))
			require.Equal(t, tc.want, b.Matches(a), "Matches must be symmetric")
		})
	}
}
