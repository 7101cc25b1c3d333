package jobs

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func utc(s string) time.Time {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return t.UTC()
}

func TestSlotAt(t *testing.T) {
	tests := []struct {
		schedule, at, want string
	}{
		{"quarterly", "2026-11-26T10:14:59Z", "2026-11-26T10:00:00Z"},
		{"quarterly", "2026-11-26T10:15:00Z", "2026-11-26T10:15:00Z"},
		{"quarterly", "2026-11-26T10:59:59Z", "2026-11-26T10:45:00Z"},
		{"hourly", "2026-11-26T10:59:59Z", "2026-11-26T10:00:00Z"},
		{"hourly", "2026-11-26T12:30:00+02:00", "2026-11-26T10:00:00Z"}, // slots are UTC
		{"daily", "2026-11-26T23:59:59Z", "2026-11-26T00:00:00Z"},
		{"weekly", "2026-11-26T10:00:00Z", "2026-11-23T00:00:00Z"}, // a Thursday
		{"weekly", "2026-11-23T00:00:00Z", "2026-11-23T00:00:00Z"}, // Monday itself
		{"weekly", "2026-11-29T23:59:59Z", "2026-11-23T00:00:00Z"}, // Sunday
		{"weekly", "2026-03-01T05:00:00Z", "2026-02-23T00:00:00Z"}, // across a month
		{"monthly", "2026-11-30T10:00:00Z", "2026-11-01T00:00:00Z"},
		{"yearly", "2026-11-26T10:00:00Z", "2026-01-01T00:00:00Z"},
	}
	for _, tc := range tests {
		t.Run(tc.schedule+" "+tc.at, func(t *testing.T) {
			got, err := SlotAt(tc.schedule, utc(tc.at))
			require.NoError(t, err)
			require.Equal(t, utc(tc.want), got)
		})
	}
	_, err := SlotAt("fortnightly", utc("2026-11-26T10:00:00Z"))
	require.ErrorContains(t, err, "unknown schedule")
}

func TestDue(t *testing.T) {
	created := utc("2026-01-01T00:00:00Z")
	tests := []struct {
		name     string
		schedule string
		offset   int64
		created  time.Time
		now      string
		slot     string
		runAt    string
		ok       bool
	}{
		{"on the slot", "hourly", 0, created, "2026-11-26T10:00:00Z", "2026-11-26T10:00:00Z", "2026-11-26T10:00:00Z", true},
		{"offset not yet passed: previous slot", "hourly", 90, created, "2026-11-26T10:01:00Z", "2026-11-26T09:00:00Z", "2026-11-26T09:01:30Z", true},
		{"offset passed", "hourly", 90, created, "2026-11-26T10:01:30Z", "2026-11-26T10:00:00Z", "2026-11-26T10:01:30Z", true},
		{"negative offset is none", "quarterly", -300, created, "2026-11-26T10:14:00Z", "2026-11-26T10:00:00Z", "2026-11-26T10:00:00Z", true},
		{"slot before the task existed", "hourly", 0, utc("2026-11-26T10:07:00Z"), "2026-11-26T10:30:00Z", "", "", false},
		{"first slot after creation", "hourly", 0, utc("2026-11-26T10:07:00Z"), "2026-11-26T11:00:00Z", "2026-11-26T11:00:00Z", "2026-11-26T11:00:00Z", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			slot, runAt, ok, err := Due(tc.schedule, tc.offset, tc.created, utc(tc.now))
			require.NoError(t, err)
			require.Equal(t, tc.ok, ok)
			if ok {
				require.Equal(t, utc(tc.slot), slot)
				require.Equal(t, utc(tc.runAt), runAt)
				require.False(t, runAt.After(utc(tc.now)), "never before its time")
			}
		})
	}
}
