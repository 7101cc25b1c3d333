package api

import (
	"bytes"
	"encoding/json"
	"slices"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/stretchr/testify/require"

	"github.com/amrd/amrd/ingest"
	"github.com/amrd/amrd/meterproto"
)

// FuzzMeteringBodies runs the body decoders of AMR tasks, task groups and meter devices
// on arbitrary JSON objects, as create (full) and as PATCH, and those of task invocation
// and the external worker protocol (claim, result). Whatever comes in, they must not
// panic, and what they accept must keep the contract's rules: the database checks them
// again, and a value it refuses would be a 400 without a field name.
func FuzzMeteringBodies(f *testing.F) {
	s := &Server{st: fakeStore{}, tables: fakeTables(nil)}
	tasks, groups, devices := s.amrTasks(), s.amrTaskGroups(), s.meterDevices()
	f.Fuzz(func(t *testing.T, raw []byte) {
		var b body
		if json.Unmarshal(raw, &b) != nil || b == nil {
			return
		}
		checkRunBodies(t, b)
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
					require.Contains(t, meterproto.Protocols, dev.Protocol)
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

// checkRunBodies checks what the invoke, claim and result decoders accept.
func checkRunBodies(t *testing.T, b body) {
	t.Helper()
	if in, offset, err := decodeInvoke(b); err == nil {
		checkKwargs(t, in.TaskKwargs)
		require.True(t, offset >= minInt32 && offset <= maxInt32)
		n := utf8.RuneCountInString(in.TaskCall)
		require.True(t, n >= 1 && n <= 50, "%q", in.TaskCall)
		require.True(t, in.MeterExecutionType == "" || slices.Contains(meterproto.ExecutionTypes, in.MeterExecutionType))
	}
	if cl, err := decodeClaim(b); err == nil {
		require.Len(t, cl.Types, 1)
		require.Contains(t, meterproto.ExecutionTypes, cl.Types[0])
		require.True(t, cl.Lease >= 10*time.Second && cl.Lease <= 24*time.Hour, "%v", cl.Lease)
		n := utf8.RuneCountInString(cl.Worker)
		require.True(t, n >= 1 && n <= 100, "%q", cl.Worker)
	}
	const maxReadings = 5
	if in, err := decodeRunResult(b, maxReadings); err == nil {
		require.Contains(t, []string{"succeeded", "failed"}, in.outcome.Status)
		require.Equal(t, in.outcome.Status == "failed", in.outcome.Error != "", "an error exactly when failed")
		require.LessOrEqual(t, utf8.RuneCountInString(in.outcome.Error), 2000)
		require.LessOrEqual(t, len(in.readings), maxReadings)
		checkKwargs(t, in.outcome.Result)
		withItems := withDevice(in.readings, "m-1")
		require.Len(t, withItems, len(in.readings))
		res, err := withReport(in.outcome.Result, ingest.Report{Rejected: []ingest.ItemError{}})
		require.NoError(t, err)
		checkKwargs(t, res)
	}
}
