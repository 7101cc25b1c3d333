package api

import (
	"io"
	"log/slog"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
)

// TestConfigDefaults: New gives a Config's zero numbers and durations DefaultConfig's
// values and takes its bools as given.
func TestConfigDefaults(t *testing.T) {
	t.Parallel()
	s, err := New(Config{}, fakeStore{}, fakeTables(nil), nil, slog.New(slog.NewTextHandler(io.Discard, nil)), prometheus.NewRegistry())
	require.NoError(t, err)
	want := DefaultConfig()
	want.AllowTokenAuth = false
	require.Equal(t, want, s.cfg)
}
