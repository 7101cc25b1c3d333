package ingest

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// TestConfigDefaults: a zero Config gets DefaultConfig's values, except the fields whose
// zero means off; DefaultConfig itself is left as it is.
func TestConfigDefaults(t *testing.T) {
	t.Parallel()
	want := DefaultConfig()
	want.warmPage = warmPage
	got := DefaultConfig()
	got.defaults()
	require.Equal(t, want, got)

	got = Config{}
	got.defaults()
	want.FlushEvery, want.WarmDevices = 0, 0
	require.Equal(t, want, got)
}
