package meterproto

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestProtocolExecutionType(t *testing.T) {
	t.Parallel()
	want := map[string]string{ProtocolIEC6205621: ExecGenericIEC6205621, ProtocolLIS200: ExecGenericLIS200}
	for _, p := range Protocols {
		got, ok := ProtocolExecutionType(p)
		w, has := want[p]
		require.Equal(t, has, ok, p)
		require.Equal(t, w, got, p)
		if ok {
			require.Contains(t, ExecutionTypes, got)
		}
	}
	got, ok := ProtocolExecutionType("carrier-pigeon")
	require.False(t, ok)
	require.Empty(t, got)
}
