package jobs

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// TestConfigDefaults: a zero Config gets DefaultConfig's values, retentions stay 0 (keep)
// and rollups on; Worker and Now are this process's.
func TestConfigDefaults(t *testing.T) {
	t.Parallel()
	got := Config{}
	got.defaults()
	require.NotEmpty(t, got.Worker)
	require.NotNil(t, got.Now)
	got.Worker, got.Now = "", nil
	require.Equal(t, DefaultConfig(), got)
	require.Zero(t, got.DataRetention)
	require.False(t, got.NoRollups)
}
