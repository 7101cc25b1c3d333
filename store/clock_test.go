package store_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/amrd/amrd/store/storetest"
)

func TestClockFollowsTheDatabase(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	st, url := storetest.New(t)
	c, err := st.NewClock(ctx)
	require.NoError(t, err)

	// The clock and the database's, read around it, agree to within the round trips
	// (generous: a loaded machine can take a while to answer).
	dbNow := func() time.Time {
		var v time.Time
		storetest.QueryRow(t, url, "SELECT clock_timestamp()", &v)
		return v
	}
	before := dbNow()
	got := c.Now()
	after := dbNow()
	require.Equal(t, time.UTC, got.Location())
	require.Equal(t, got, got.Round(time.Microsecond), "PostgreSQL's resolution")
	require.WithinRange(t, got, before.Add(-time.Second), after.Add(time.Second))

	// It moves on without round trips, and a sync keeps it where it was (within them).
	first := c.Now()
	time.Sleep(20 * time.Millisecond)
	second := c.Now()
	require.GreaterOrEqual(t, second.Sub(first), 20*time.Millisecond)
	require.NoError(t, c.Sync(ctx))
	require.WithinDuration(t, second, c.Now(), time.Second)

	// Run syncs until its context ends.
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { c.Run(rctx, 10*time.Millisecond); close(done) }()
	time.Sleep(50 * time.Millisecond)
	cancel()
	<-done
	require.WithinRange(t, c.Now(), dbNow().Add(-time.Second), dbNow().Add(time.Second))
}
