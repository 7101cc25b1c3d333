package ingest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/apd/v3"
	"github.com/stretchr/testify/require"
)

// decode is Decode, with the request's readings, their positions and its rejections
// apart.
func decode(body []byte, maxItems int) ([]Reading, []int, []ItemError, error) {
	q, err := Decode(body, maxItems)
	if err != nil {
		return nil, nil, nil, err
	}
	return q.readings, q.index, q.rejected, nil
}

func TestDecode(t *testing.T) {
	t.Run("one object and the message-bus names", func(t *testing.T) {
		good, idx, bad, err := decode([]byte(`{"meter":"m1","series":"1.8.0","timestamp":"2026-11-26T10:15:00Z","value":"0012.3450"}`), 10)
		require.NoError(t, err)
		require.Empty(t, bad)
		require.Equal(t, []int{0}, idx)
		require.Equal(t, "m1", good[0].Device)
		require.Equal(t, "1.8.0", good[0].Series)
		require.Equal(t, "12.3450", good[0].Value.String(), "exact, trailing zeros kept")
		require.True(t, good[0].Time.HasOffset)
	})
	t.Run("array with good and bad items", func(t *testing.T) {
		body := `[
			{"meter_device_name":"m1","series_name":"s","timestamp":"2026-11-26T10:15:00+01:00","value":1.5},
			{"meter_device_name":"m1","series_name":"s","timestamp":"yesterday","value":1},
			{"meter_device_name":"","series_name":"s","timestamp":"2026-11-26T10:15:00Z","value":1},
			{"meter_device_name":"m1","series_name":"s","timestamp":"2026-11-26T10:15:00Z","value":"NaN"},
			{"meter_device_name":"m1","series_name":"s","timestamp":"2026-11-26T10:15:00Z"},
			5,
			{"meter_device_name":7,"series_name":"s","timestamp":"2026-11-26T10:15:00Z","value":1},
			{"meter_device_name":"m1","series_name":"s","timestamp":"2026-11-26 10:15","value":"-0.000001"}
		]`
		good, idx, bad, err := decode([]byte(body), 100)
		require.NoError(t, err)
		require.Equal(t, []int{0, 7}, idx)
		require.Equal(t, "1.5", good[0].Value.String())
		require.Equal(t, time.Date(2026, 11, 26, 9, 15, 0, 0, time.UTC), good[0].Time.T)
		require.False(t, good[1].Time.HasOffset)
		require.Equal(t, "-0.000001", good[1].Value.String())
		fields := map[int]string{}
		for _, b := range bad {
			for f := range b.Errors {
				fields[b.Index] = f
			}
		}
		require.Equal(t, map[int]string{1: "timestamp", 2: "meter_device_name", 3: "value", 4: "value", 5: "non_field_errors", 6: "meter_device_name"}, fields)
	})
	t.Run("an item that is not UTF-8 is rejected, not read with U+FFFD", func(t *testing.T) {
		body := "[{\"meter\":\"m\xff\",\"series\":\"s\",\"timestamp\":\"2026-11-26T10:15:00Z\",\"value\":1}," +
			`{"meter":"m2","series":"s","timestamp":"2026-11-26T10:15:00Z","value":1}]`
		good, idx, bad, err := decode([]byte(body), 10)
		require.NoError(t, err)
		require.Equal(t, []int{1}, idx)
		require.Equal(t, "m2", good[0].Device)
		require.Len(t, bad, 1)
		require.Equal(t, "bad_utf8", bad[0].Reason)
		require.Contains(t, bad[0].Errors["non_field_errors"][0], "UTF-8")
	})
	t.Run("NUL and bytes that are not UTF-8 in names (CSV cells)", func(t *testing.T) {
		for _, name := range []string{"m\x00", "m\xff"} {
			_, e := Fields{Device: &name}.Parse()
			require.NotNil(t, e)
			require.Contains(t, e.Errors, "meter_device_name")
		}
	})
	for name, body := range map[string]string{
		"not JSON": `{"meter":`, "empty": ``, "empty array": `[]`, "a number": `42`, "a string": `"x"`,
		"too many": `[{},{},{}]`, "broken array": `[{"a":1},`,
	} {
		t.Run("whole request refused: "+name, func(t *testing.T) {
			_, _, _, err := decode([]byte(body), 2)
			var re *RequestError
			require.ErrorAs(t, err, &re)
			require.NotEmpty(t, re.Msg)
		})
	}
}

func TestFieldsParse(t *testing.T) {
	str := func(s string) *string { return &s }
	tests := []struct {
		name   string
		f      Fields
		errs   map[string]string // field -> part of its message
		reason string
	}{
		{name: "good", f: Fields{str("m1"), str("1.8.0"), str("2026-11-26 10:15"), str(" 0012.50 ")}},
		{name: "nothing sent", f: Fields{},
			errs:   map[string]string{"meter_device_name": "required", "series_name": "required", "timestamp": "required", "value": "required"},
			reason: "missing_meter_device_name+missing_series_name+missing_timestamp+missing_value"},
		{name: "bad value and timestamp", f: Fields{str("m1"), str("s"), str("noon"), str("NaN")},
			errs: map[string]string{"timestamp": "wrong format", "value": "finite"}, reason: "bad_timestamp+bad_value"},
		{name: "blank and long names", f: Fields{str(" "), str(strings.Repeat("x", 51)), str("2026-11-26T10:15:00Z"), str("1")},
			errs: map[string]string{"meter_device_name": "blank", "series_name": "50 characters"}, reason: "bad_meter_device_name+bad_series_name"},
		{name: "value missing", f: Fields{str("m1"), str("s"), str("2026-11-26T10:15:00Z"), nil},
			errs: map[string]string{"value": "required"}, reason: "missing_value"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r, e := tc.f.Parse()
			if tc.errs == nil {
				require.Nil(t, e)
				require.Equal(t, "m1", r.Device)
				require.Equal(t, "12.50", r.Value.String())
				require.False(t, r.Time.HasOffset)
				return
			}
			require.NotNil(t, e)
			require.Len(t, e.Errors, len(tc.errs))
			for f, want := range tc.errs {
				require.Len(t, e.Errors[f], 1)
				require.Contains(t, e.Errors[f][0], want)
			}
			require.Equal(t, tc.reason, e.Reason)
		})
	}
}

func TestDecodeReasons(t *testing.T) {
	_, _, bad, err := decode([]byte(`[5, {"meter":1}, {"meter":"m","series":"s","timestamp":"2026-11-26T10:15:00Z","value":null},
		{"meter":"m","series":"s","timestamp":"2026-11-26T10:15:00Z"}, {"meter":"m","series":"s","timestamp":"x","value":true}]`), 10)
	require.NoError(t, err)
	var reasons []string
	for _, b := range bad {
		reasons = append(reasons, b.Reason)
	}
	require.Equal(t, []string{"bad_item", "bad_meter", "bad_value", "missing_value", "bad_timestamp+bad_value"}, reasons)
	require.Equal(t, []string{"This field may not be null."}, bad[2].Errors["value"])
}

func TestMergeRejected(t *testing.T) {
	e := func(i int) ItemError { return ItemError{Index: i} }
	got := mergeRejected([]ItemError{e(0), e(3), e(4)}, []ItemError{e(1), e(2), e(5), e(6)})
	var idx []int
	for _, g := range got {
		idx = append(idx, g.Index)
	}
	require.Equal(t, []int{0, 1, 2, 3, 4, 5, 6}, idx)
	require.Empty(t, mergeRejected(nil, nil))
	require.NotNil(t, mergeRejected(nil, nil), "a report's rejected is a list, never null")
}

// TestRequest: positions follow the order of Add and Reject; Refuse moves readings to
// the rejections at their positions; Merge interleaves the pipeline's rejections.
func TestRequest(t *testing.T) {
	var q Request
	bad := func(field string) ItemError {
		return ItemError{Errors: map[string][]string{field: {"no"}}, Reason: "bad_" + field}
	}
	q.Add(Reading{Device: "a"})               // 0
	q.Reject(bad("value"))                    // 1
	q.Add(Reading{Device: "b"})               // 2
	q.AddResolved(Reading{Device: "c"}, 7, 8) // 3
	q.Add(Reading{Device: "b"})               // 4
	q.Reject(bad("timestamp"))                // 5
	q.Add(Reading{Device: "d"})               // 6
	require.Equal(t, []int{0, 2, 3, 4, 6}, q.index)
	require.Equal(t, []keys{{}, {}, {7, 8}, {}, {}}, q.keys)

	q.Refuse(func(r *Reading) *ItemError {
		if r.Device == "b" {
			e := bad("meter_device_name")
			return &e
		}
		return nil
	})
	var devices []string
	for i, r := range q.Readings() {
		devices = append(devices, fmt.Sprintf("%s@%d", r.Device, q.Position(i)))
	}
	require.Equal(t, []string{"a@0", "c@3", "d@6"}, devices)
	require.Equal(t, keys{7, 8}, q.key(1), "the keys follow their reading")
	require.Equal(t, keys{}, q.key(2))

	got := q.Merge([]ItemError{{Index: 3, Reason: "conflict"}})
	var at []string
	for _, e := range got {
		at = append(at, fmt.Sprintf("%d:%s", e.Index, e.Reason))
	}
	require.Equal(t, []string{"1:bad_value", "2:bad_meter_device_name", "3:conflict", "4:bad_meter_device_name", "5:bad_timestamp"}, at)
}

func TestParseValue(t *testing.T) {
	tests := []struct {
		raw, want, msg string
	}{
		{`1`, "1", ""},
		{`"1.000"`, "1.000", ""},
		{`-12.5e3`, "-1.25E+4", ""},
		{`" 7.25 "`, "7.25", ""},
		{`0.1`, "0.1", ""},
		{`123456789012345678901234567890.123456789012345678901234567890`, "123456789012345678901234567890.123456789012345678901234567890", ""},
		{`"NaN"`, "", "finite"},
		{`"Infinity"`, "", "finite"},
		{`"-inf"`, "", "finite"},
		{`""`, "", "valid number"},
		{`"abc"`, "", "finite"},
		{`"0x10"`, "", "finite"},
		{`null`, "", "null"},
		{`true`, "", "valid number"},
		{`[1]`, "", "valid number"},
		{``, "", "required"},
		{`1e200000`, "", "out of range"},
		{"1" + strings.Repeat("0", 131072), "", "out of range"},
		{`1e99999`, "1E+99999", ""},
		{`1e-20000`, "", "decimal places"},
		{`0e-20000`, "0", ""},
	}
	for _, tc := range tests {
		t.Run(tc.raw, func(t *testing.T) {
			var d apd.Decimal
			msg := ParseValue(json.RawMessage(tc.raw), &d)
			if tc.msg != "" {
				require.Contains(t, msg, tc.msg)
				return
			}
			require.Empty(t, msg)
			require.Equal(t, tc.want, d.String())
		})
	}
}

func TestStampIn(t *testing.T) {
	sthlm, err := time.LoadLocation("Europe/Stockholm")
	require.NoError(t, err)
	tests := []struct {
		in   string
		want time.Time
		err  string
	}{
		{"2026-11-26T10:00:00", time.Date(2026, 11, 26, 9, 0, 0, 0, time.UTC), ""},        // CET, +01:00
		{"2026-07-01T10:00:00", time.Date(2026, 7, 1, 8, 0, 0, 0, time.UTC), ""},          // CEST, +02:00
		{"2026-03-29T02:30:00", time.Time{}, "does not exist"},                            // spring forward
		{"2026-10-25T02:30:00", time.Time{}, "ambiguous"},                                 // fall back
		{"2026-10-25T02:30:00+01:00", time.Date(2026, 10, 25, 1, 30, 0, 0, time.UTC), ""}, // offset given
		{"2026-10-25T03:30:00", time.Date(2026, 10, 25, 2, 30, 0, 0, time.UTC), ""},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			st, err := ParseStamp(tc.in)
			require.NoError(t, err)
			got, err := st.In(sthlm)
			if tc.err != "" {
				require.ErrorContains(t, err, tc.err)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.want, got)
		})
	}
	for _, edge := range []string{"9999-12-31T23:59:59.999999Z", "0001-01-01T00:00:00Z", "9999-12-30T23:59:59", "0001-01-02T00:00"} {
		_, err := ParseStamp(edge)
		require.NoError(t, err, edge)
	}
	// Out of the years 1 to 9999 in UTC, or, without an offset, within a day of that.
	for _, out := range []string{"9999-12-31T23:59:59-14:00", "0000-06-01T00:00:00Z", "0001-01-01T00:00:00+00:01", "9999-12-31T00:00:00", "0001-01-01T23:59"} {
		_, err := ParseStamp(out)
		require.ErrorIs(t, err, ErrTimeRange, out)
	}
	for _, bad := range []string{"", "2026-11-26", "2026-13-01T00:00:00Z", "2026-11-26T25:00:00Z", "26/11/2026 10:00", "2026-11-26T10:00:00+25:00"} {
		t.Run("bad "+bad, func(t *testing.T) {
			_, err := ParseStamp(bad)
			require.Error(t, err)
		})
	}
}

// FuzzDecode feeds arbitrary bodies to the request decoder: it must never panic, and
// every item must come out either good or rejected, with positions in range.
func FuzzDecode(f *testing.F) {
	for _, s := range []string{
		`{"meter_device_name":"m","series_name":"s","timestamp":"2026-01-01T00:00:00Z","value":"1.5"}`,
		`[{"meter":"m","series":"s","timestamp":"2026-01-01 00:00","value":1e3}]`,
		`[{"value":"NaN"},{"value":null},1,"x",[],{}]`,
		`{"timestamp":"2026-03-29T02:30:00","value":"-0.0"}`,
		`[` + strings.Repeat(`{"value":1},`, 5) + `{}]`,
		` [ {"meter" : "m\u0031", "series":"s","timestamp":"2026-01-01T00:00:00Z","value":-0.5e-3} , {"meter":"m","meter":"n"} ] `,
		`[{"meter_device_name":"m","meter":"n","series_name":"s","series":"t","timestamp":"2026-01-01T00:00:00+01:00","value":"01"},{"Meter":"x"}]`,
		"[{\"meter\":\"m\xff\",\"value\":0},{\"meter\":\"\u00e9\",\"value\":01}]",
		`{"meter":"m","series":"s","timestamp":"2026-01-01T00:00","value":"1"} x`,
	} {
		f.Add([]byte(s))
	}
	sthlm, _ := time.LoadLocation("Europe/Stockholm")
	f.Fuzz(func(t *testing.T, body []byte) {
		// The one-pass decoder, where it takes a body, answers as the general one.
		trimmed := bytes.TrimSpace(body)
		if fq, ok := decodeFast(trimmed, 1000); ok {
			gq, err := decodeGeneral(trimmed, 1000)
			require.NoError(t, err, "decodeFast took a body the general decoder refuses")
			require.Equal(t, gq.index, fq.index)
			require.Equal(t, gq.rejected, fq.rejected)
			require.Equal(t, gq.n, fq.n)
			gg, fg := gq.readings, fq.readings
			require.Equal(t, len(gg), len(fg))
			for i := range gg {
				require.Equal(t, gg[i].Device, fg[i].Device)
				require.Equal(t, gg[i].Series, fg[i].Series)
				require.Equal(t, gg[i].Time, fg[i].Time)
				require.Equal(t, gg[i].Value.String(), fg[i].Value.String())
			}
		}
		good, idx, bad, err := decode(body, 1000)
		if err != nil {
			return
		}
		require.Equal(t, len(good), len(idx))
		seen := map[int]bool{}
		for _, i := range idx {
			seen[i] = true
		}
		for _, b := range bad {
			require.False(t, seen[b.Index], "item %d both good and bad", b.Index)
			require.NotEmpty(t, b.Errors)
			require.NotEmpty(t, b.Reason)
			seen[b.Index] = true
		}
		for i := range seen {
			require.True(t, i >= 0 && i < len(good)+len(bad))
		}
		for _, r := range good {
			require.Equal(t, apd.Finite, r.Value.Form)
			_, _ = r.Time.In(sthlm)
		}
	})
}

// BenchmarkDecode decodes the bodies of make bench: one reading, and 1,000.
func BenchmarkDecode(b *testing.B) {
	item := `{"meter_device_name":"bench-100042","series_name":"1.8.0","timestamp":"2026-01-01T00:15:00Z","value":"12345.678"}`
	for _, n := range []int{1, 1000} {
		body := item
		if n > 1 {
			body = "[" + strings.TrimSuffix(strings.Repeat(item+",", n), ",") + "]"
		}
		for name, decode := range map[string]func([]byte, int) (*Request, error){
			"fast": Decode, "general": decodeGeneral,
		} {
			b.Run(fmt.Sprintf("%s/%d", name, n), func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					if q, err := decode([]byte(body), 10_000); err != nil || len(q.Readings()) != n {
						b.Fatal(err)
					}
				}
			})
		}
	}
}
