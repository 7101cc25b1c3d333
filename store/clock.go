package store

import (
	"context"
	"sync"
	"time"
)

// Clock is the database server's clock as this process reads it: the database's time at
// its last reading plus the time elapsed since then on this process's monotonic clock.
// Every replica that uses it agrees with the others on the time to within a few
// milliseconds, whatever their own wall clocks say, and a step of the local wall clock
// (NTP, an operator) does not move it. Leases, slots, due times and login-throttle windows
// are computed from it, so that replicas decide them by one clock: the database's.
//
// Sync reads the database's clock again; Run does that periodically, so that the drift
// of the local oscillator (at most about 100 ppm, 1 ms in 10 s) never accumulates.
type Clock struct {
	s *Store

	mu sync.Mutex
	// base is the database's time at the local instant anchor (a reading that carries
	// the monotonic clock, so that time.Since(anchor) ignores wall-clock steps).
	base, anchor time.Time
}

// clockSamples is how many round trips one Sync makes; the quickest one is kept, since
// its midpoint is the closest estimate (the error is at most half its round trip).
const clockSamples = 3

// NewClock reads the database's clock and returns a Clock that follows it.
func (s *Store) NewClock(ctx context.Context) (*Clock, error) {
	c := &Clock{s: s}
	if err := c.Sync(ctx); err != nil {
		return nil, err
	}
	return c, nil
}

// Sync reads the database's clock: the quickest of a few round trips, its reading taken
// to be at the round trip's midpoint.
func (c *Clock) Sync(ctx context.Context) error {
	var best time.Duration = -1
	var base, anchor time.Time
	for range clockSamples {
		start := time.Now()
		var db time.Time
		if err := c.s.pool.QueryRow(ctx, "SELECT clock_timestamp()").Scan(&db); err != nil {
			return mapErr("reading the database's clock", err)
		}
		rtt := time.Since(start)
		if best < 0 || rtt < best {
			best, base, anchor = rtt, db, start.Add(rtt/2)
		}
	}
	c.mu.Lock()
	c.base, c.anchor = base, anchor
	c.mu.Unlock()
	return nil
}

// Now returns the database's current time, in UTC, without a round trip.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	base, anchor := c.base, c.anchor
	c.mu.Unlock()
	// Round to microseconds, PostgreSQL's resolution, so that a time written and read
	// back compares equal.
	return base.Add(time.Since(anchor)).Round(time.Microsecond).UTC()
}

// Run syncs the clock every interval until ctx ends. A failed sync (the database is
// down) keeps the last reading, which the monotonic clock carries on, and is logged.
func (c *Clock) Run(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		sctx, cancel := context.WithTimeout(ctx, every)
		err := c.Sync(sctx)
		cancel()
		if err != nil && ctx.Err() == nil {
			c.s.log.Warn("the database's clock was not read; the last reading goes on", "component", "clock", "err", err)
		}
	}
}
