package api

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
	_ "time/tzdata" // as cmd/amrd embeds it

	"github.com/stretchr/testify/require"

	"github.com/amrd/amrd/store"
)

func TestMultiplier(t *testing.T) {
	tests := []struct {
		raw  string // the JSON value sent
		want string // what is kept; "" when refused
	}{
		{`"1"`, "1"},
		{`1`, "1"},
		{`"1000"`, "1000"},
		{`1000.000`, "1000"},
		{`"1E+3"`, "1000"},
		{`1e3`, "1000"},
		{`" 0.001 "`, "0.001"},
		{`0.0010`, "0.001"},
		{`"3600000"`, "3600000"},
		// a float64 would answer 0.30000000000000004 or 0.1 + rounding; this stays exact
		{`0.1000000000000000000000000001`, "0.1000000000000000000000000001"},
		{`"0.000000000000000000000000000001"`, "0.000000000000000000000000000001"},
		{`"999999999999999999999999999999"`, "999999999999999999999999999999"},
		{`"1000000000000000000000000000000"`, ""}, // 31 whole digits
		{`1e-31`, ""}, // 31 decimal places
		{`1e400`, ""},
		{`"1e-999999999"`, ""},
		{`"` + strings.Repeat("1", 100) + `"`, ""},
		{`"NaN"`, ""},
		{`"nan"`, ""},
		{`"sNaN"`, ""},
		{`"Infinity"`, ""},
		{`"-Infinity"`, ""},
		{`"inf"`, ""},
		{`""`, ""},
		{`"  "`, ""},
		{`"abc"`, ""},
		{`"1,5"`, ""},
		{`"0x10"`, ""},
		{`"1_000"`, ""},
		{`"١"`, ""}, // an Arabic-Indic digit
		{`"0"`, ""},
		{`0`, ""},
		{`"-0"`, ""},
		{`-1`, ""},
		{`true`, ""},
		{`[1]`, ""},
		{`{"v":1}`, ""},
		{`null`, ""},
	}
	for _, tc := range tests {
		t.Run(tc.raw, func(t *testing.T) {
			errs := FieldErrors{}
			got := store.DecimalOf(7)
			body{"m": json.RawMessage(tc.raw)}.multiplier(errs, "m", &got)
			if tc.want == "" {
				require.Len(t, errs["m"], 1, "accepted as %s", got)
				require.Equal(t, "7", got.String(), "a refused value must not be kept")
				return
			}
			require.Empty(t, errs)
			require.Equal(t, tc.want, got.String())
			out, err := json.Marshal(struct{ M store.Decimal }{got})
			require.NoError(t, err)
			require.JSONEq(t, `{"M":"`+tc.want+`"}`, string(out), "written as a JSON string")
		})
	}
}

// FuzzMultiplier checks that whatever a body holds, the multiplier decoder either refuses
// it with a field error or keeps a positive number within bounds, in plain notation.
func FuzzMultiplier(f *testing.F) {
	for _, s := range []string{`"1"`, `1e3`, `"NaN"`, `"-0"`, `0.001`, `"1e-999999999"`, `[]`, `"  7 "`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		if !json.Valid([]byte(raw)) {
			return // readBody refuses it before any field decoder
		}
		errs := FieldErrors{}
		var got store.Decimal
		body{"m": json.RawMessage(raw)}.multiplier(errs, "m", &got)
		if len(errs) > 0 {
			return
		}
		s := got.String()
		require.Positive(t, got.Sign(), s)
		require.NotContains(t, s, "E")
		require.LessOrEqual(t, len(s), maxWholeDigits+maxDecimalPlaces+1, s)
	})
}

func TestIsDNSName(t *testing.T) {
	tests := []struct {
		name string
		ok   bool
	}{
		{"meter098765.mydomain.com", true},
		{"meter098765.mydomain.com.", true},
		{"localhost", true},
		{"a-b.c-d.example", true},
		{"xn--bcher-kva.example", true},
		{"1.2.3.example", true},
		{strings.Repeat("a", 63) + ".example", true},
		{strings.Repeat("a", 64) + ".example", false},
		{strings.Repeat("abcdefghi.", 25) + "example", false}, // 257 characters
		{"", false},
		{".", false},
		{"a..b", false},
		{".example", false},
		{"-a.example", false},
		{"a-.example", false},
		{"a_b.example", false},
		{"a b.example", false},
		{"bücher.example", false},
		{"http://meter.example", false},
		{"meter.example:4059", false},
		{"10.0.0.1", false},
		{"999.1.1.1", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tc.ok, isDNSName(tc.name))
		})
	}
}

// TestContractTimezones checks the generated list against the contract (595 names) and
// that every name but the two that no current tz database has loads.
func TestContractTimezones(t *testing.T) {
	require.Len(t, contractTimezones, 595)
	unknown := map[string]bool{"Asia/Hanoi": true, "US/Pacific-New": true}
	for _, z := range contractTimezones {
		_, err := time.LoadLocation(z)
		require.Equal(t, unknown[z], err != nil, "%s: %v", z, err)
	}
	tests := []struct {
		raw string
		ok  bool
	}{
		{`"Europe/Stockholm"`, true},
		{`"UTC"`, true},
		{`"Etc/GMT-1"`, true},
		{`"US/Pacific"`, true},
		{`"Asia/Hanoi"`, false},     // in the contract, in no tz database
		{`"US/Pacific-New"`, false}, // in the contract, removed from the tz database in 2020b
		{`"Europe/Kyiv"`, false},    // in the tz database, not in the contract
		{`"Local"`, false},
		{`"europe/stockholm"`, false},
		{`""`, false},
		{`null`, false},
		{`1`, false},
	}
	for _, tc := range tests {
		t.Run(tc.raw, func(t *testing.T) {
			errs := FieldErrors{}
			got := "before"
			body{"timezone": json.RawMessage(tc.raw)}.timezone(errs, "timezone", &got)
			if tc.ok {
				require.Empty(t, errs)
				require.JSONEq(t, tc.raw, `"`+got+`"`)
			} else {
				require.Len(t, errs["timezone"], 1)
				require.Equal(t, "before", got)
			}
		})
	}
}
