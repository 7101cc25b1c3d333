package store_test

import (
	"crypto/sha256"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/amrd/amrd/store/storetest"
)

func TestLoginFailures(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	st, url := storetest.New(t)
	key := func(s string) []byte { h := sha256.Sum256([]byte(s)); return h[:] }
	a, b, other := key("a"), key("b"), key("other")
	t0 := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	window := 15 * time.Minute

	for i := range 4 {
		require.NoError(t, st.AddLoginFailure(ctx, [][]byte{a, b}, t0.Add(time.Duration(i)*time.Minute), t0.Add(-window)))
	}
	require.NoError(t, st.AddLoginFailure(ctx, [][]byte{other}, t0, t0.Add(-window)))

	t.Run("newest first, inside the window, at most limit, each key apart", func(t *testing.T) {
		got, err := st.LoginFailures(ctx, [][]byte{a, key("none"), b}, t0.Add(time.Minute), 2)
		require.NoError(t, err)
		for _, l := range got {
			for i := range l {
				l[i] = l[i].UTC()
			}
		}
		require.Equal(t, [][]time.Time{
			{t0.Add(3 * time.Minute), t0.Add(2 * time.Minute)},
			nil,
			{t0.Add(3 * time.Minute), t0.Add(2 * time.Minute)},
		}, got)
	})
	t.Run("a correct password clears its own key only", func(t *testing.T) {
		require.NoError(t, st.ClearLoginFailures(ctx, a))
		got, err := st.LoginFailures(ctx, [][]byte{a, b}, t0.Add(-time.Hour), 10)
		require.NoError(t, err)
		require.Empty(t, got[0])
		require.Len(t, got[1], 4)
	})
	t.Run("each failure sweeps expired ones away", func(t *testing.T) {
		later := t0.Add(time.Hour)
		require.NoError(t, st.AddLoginFailure(ctx, [][]byte{a}, later, later.Add(-window)))
		var n int
		storetest.QueryRow(t, url, "SELECT count(*) FROM login_failures", &n)
		require.Equal(t, 1, n, "only the new failure is left")
	})
}
