package api

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/amrd/amrd/store"
)

// memFailures is a loginFailureStore in memory, shared by the throttles of several
// "replicas" as the database is.
type memFailures struct {
	mu     sync.Mutex
	at     map[string][]time.Time
	writes int
}

func (m *memFailures) LoginFailures(_ context.Context, keys [][]byte, since time.Time, limit int) ([][]time.Time, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([][]time.Time, len(keys))
	for i, k := range keys {
		for _, t := range slices.Backward(m.at[string(k)]) {
			if t.After(since) && len(out[i]) < limit {
				out[i] = append(out[i], t)
			}
		}
	}
	return out, nil
}

func (m *memFailures) AddLoginFailure(_ context.Context, keys [][]byte, at, _ time.Time) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.writes++
	for _, k := range keys {
		m.at[string(k)] = append(m.at[string(k)], at)
	}
	return nil
}

func (m *memFailures) ClearLoginFailures(_ context.Context, key []byte) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.writes++
	delete(m.at, string(key))
	return nil
}

func TestThrottleIsSharedByReplicas(t *testing.T) {
	ctx := context.Background()
	now := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	db := &memFailures{at: map[string][]time.Time{}}
	replicas := []*throttle{newThrottle(db, clock), newThrottle(db, clock), newThrottle(db, clock)}

	wait, failed, err := replicas[0].check(ctx, "u", "10.0.0.1")
	require.NoError(t, err)
	require.Zero(t, wait)
	require.False(t, failed)
	require.Zero(t, db.writes, "a check writes nothing")
	for i := range 5 {
		require.NoError(t, replicas[i%3].fail(ctx, "u", "10.0.0.1"))
		now = now.Add(time.Minute)
	}
	for _, r := range replicas {
		wait, failed, err := r.check(ctx, "u", "10.0.0.1")
		require.NoError(t, err)
		require.True(t, failed)
		// The first failure (at 12:00) leaves the window at 12:15; it is 12:05.
		require.Equal(t, 10*time.Minute, wait)
	}
	wait, failed, err = replicas[1].check(ctx, "other", "10.0.0.1")
	require.NoError(t, err)
	require.Zero(t, wait, "another username from the address is not locked out")
	require.False(t, failed)

	t.Run("the address alone after 50 failures", func(t *testing.T) {
		for i := range 50 {
			require.NoError(t, replicas[i%3].fail(ctx, "spray-"+string(rune('a'+i%26))+string(rune('a'+i/26)), "10.0.0.2"))
		}
		wait, _, err := replicas[2].check(ctx, "fresh", "10.0.0.2")
		require.NoError(t, err)
		require.Equal(t, 15*time.Minute, wait)
	})
	t.Run("after the window, and a success clears the pair", func(t *testing.T) {
		now = now.Add(11 * time.Minute)
		wait, failed, err := replicas[2].check(ctx, "u", "10.0.0.1")
		require.NoError(t, err)
		require.Zero(t, wait, "one failure is out of the window, four are left")
		require.True(t, failed)
		require.NoError(t, replicas[2].succeed(ctx, "u", "10.0.0.1"))
		_, failed, err = replicas[0].check(ctx, "u", "10.0.0.1")
		require.NoError(t, err)
		require.False(t, failed)
	})
}

func TestTokenCacheCountsFromTheLookup(t *testing.T) {
	now := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	tc := &tokenCache{m: map[[32]byte]tokenEntry{}, now: func() time.Time { return now }}
	looked := now
	now = now.Add(300 * time.Millisecond) // a slow lookup
	tc.put("k", store.User{Username: "staff"}, looked)
	u, ok := tc.get("k")
	require.True(t, ok)
	require.Equal(t, "staff", u.Username)
	now = looked.Add(tokenCacheTTL - time.Nanosecond)
	_, ok = tc.get("k")
	require.True(t, ok)
	now = looked.Add(tokenCacheTTL)
	_, ok = tc.get("k")
	require.False(t, ok, "a second after the lookup began, the entry is gone")
	require.LessOrEqual(t, tokenCacheTTL, time.Second)
}
