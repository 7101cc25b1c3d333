package api

import (
	"bytes"
	"encoding/json"
	"testing"
	"unicode/utf8"

	"github.com/stretchr/testify/require"
)

// FuzzMeteringBodies runs the body decoders of AMR tasks, task groups and meter devices
// on arbitrary JSON objects, as create (full) and as PATCH. Whatever comes in, they must
// not panic, and what they accept must keep the contract's rules: the database checks
// them again, and a value it refuses would be a 400 without a field name.
func FuzzMeteringBodies(f *testing.F) {
	s := &Server{st: fakeStore{}}
	tasks, groups, devices := s.amrTasks(), s.amrTaskGroups(), s.meterDevices()
	f.Fuzz(func(t *testing.T, raw []byte) {
		var b body
		if json.Unmarshal(raw, &b) != nil || b == nil {
			return
		}
		for _, full := range []bool{true, false} {
			task := tasks.blank()
			errs := FieldErrors{}
			tasks.decode(b, &task, full, errs)
			if len(errs) == 0 {
				checkKwargs(t, task.TaskKwargs)
				require.True(t, task.RunOffsetSeconds >= minInt32 && task.RunOffsetSeconds <= maxInt32)
				require.LessOrEqual(t, utf8.RuneCountInString(task.Name), 150)
			}
			group := groups.blank()
			groups.decode(b, &group, full, FieldErrors{})
			require.NotNil(t, group.Tasks)

			dev := devices.blank()
			errs = FieldErrors{}
			devices.decode(b, &dev, full, errs)
			if len(errs) == 0 {
				require.True(t, dev.CurrentTransformerRatio >= 1 && dev.VoltageTransformerRatio >= 1)
				require.True(t, dev.DisconnectorStatus == nil || *dev.DisconnectorStatus >= 0 && *dev.DisconnectorStatus <= 2)
				for _, h := range []*string{dev.DLMSLogicalDeviceName, dev.DLMSSystemTitle} {
					require.True(t, h == nil || isHex(*h))
				}
				if full {
					require.Contains(t, meterProtocols, dev.Protocol)
				}
			}
		}
	})
}

// checkKwargs checks that accepted task arguments are what jsonb stores: a JSON object,
// or nil, in valid UTF-8 without NUL characters.
func checkKwargs(t *testing.T, k json.RawMessage) {
	t.Helper()
	if k == nil {
		return
	}
	require.True(t, utf8.Valid(k), "%q", k)
	require.False(t, bytes.Contains(k, []byte(`\u0000`)), "%q", k)
	var m map[string]any
	require.NoError(t, json.Unmarshal(k, &m), "%q", k)
	require.NotNil(t, m)
}
