package api

import (
	"context"
	"crypto/sha256"
	"time"
)

// loginFailureStore keeps the failed logins the throttle counts; *store.Store keeps them
// in the database, so that every replica counts the same failures.
type loginFailureStore interface {
	LoginFailures(ctx context.Context, keys [][]byte, since time.Time, limit int) ([][]time.Time, error)
	AddLoginFailure(ctx context.Context, keys [][]byte, at, expired time.Time) error
	ClearLoginFailures(ctx context.Context, key []byte) error
}

// throttle limits failed logins. Per (username, client address): after userMax failures
// inside window, further attempts get 429 until the oldest failure leaves the window.
// Per client address alone: ipMax failures, so that one address cannot spray many
// usernames. The failures are kept in the database and the window is read on the
// database's clock (serve's Config.Now), so that N replicas allow what one does, not N
// times as many guesses.
//
// With userMax = 5 per 15 minutes a password is guessed at most 480 times a day per
// address instead of thousands a second. Only failures write (two rows); a check is one
// indexed read of both keys, a success after failures one delete.
type throttle struct {
	st      loginFailureStore
	now     func() time.Time
	window  time.Duration
	userMax int
	ipMax   int
}

func newThrottle(st loginFailureStore, now func() time.Time) *throttle {
	return &throttle{st: st, now: now, window: 15 * time.Minute, userMax: 5, ipMax: 50}
}

// userKey and ipKey are the digests the failures are stored under.
func userKey(username, ip string) []byte { return throttleKey("u\x00" + username + "\x00" + ip) }
func ipKey(ip string) []byte             { return throttleKey("i\x00" + ip) }

func throttleKey(s string) []byte {
	h := sha256.Sum256([]byte(s))
	return h[:]
}

// check returns how long the caller must wait (0: go ahead), and whether the (username,
// address) pair has failures inside the window, which a correct password then clears.
func (t *throttle) check(ctx context.Context, username, ip string) (wait time.Duration, userFailed bool, err error) {
	now := t.now()
	limit := max(t.userMax, t.ipMax)
	fails, err := t.st.LoginFailures(ctx, [][]byte{userKey(username, ip), ipKey(ip)}, now.Add(-t.window), limit)
	if err != nil {
		return 0, false, err
	}
	wait = max(t.waitFor(fails[0], t.userMax, now), t.waitFor(fails[1], t.ipMax, now))
	return wait, len(fails[0]) > 0, nil
}

// waitFor is how long until fewer than limit of the failures (newest first, inside the
// window) are left inside it: until the limit-th newest leaves.
func (t *throttle) waitFor(newestFirst []time.Time, limit int, now time.Time) time.Duration {
	if len(newestFirst) < limit {
		return 0
	}
	return max(newestFirst[limit-1].Add(t.window).Sub(now), 0)
}

// fail records a failed login of username from ip.
func (t *throttle) fail(ctx context.Context, username, ip string) error {
	now := t.now()
	return t.st.AddLoginFailure(ctx, [][]byte{userKey(username, ip), ipKey(ip)}, now, now.Add(-t.window))
}

// succeed clears the (username, address) failures after a correct password.
func (t *throttle) succeed(ctx context.Context, username, ip string) error {
	return t.st.ClearLoginFailures(ctx, userKey(username, ip))
}
