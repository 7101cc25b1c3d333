package api

import (
	"sync"
	"time"
)

// throttle limits failed logins. Per (username, client address): after userMax failures
// inside window, further attempts get 429 until the oldest failure leaves the window.
// Per client address alone: ipMax failures, so that one address cannot spray many
// usernames. Counters live in memory: with several replicas each keeps its own, which
// multiplies the allowed rate by the replica count (documented in the README).
//
// With userMax = 5 per 15 minutes a password is guessed at most 480 times a day per
// address instead of thousands a second.
type throttle struct {
	mu      sync.Mutex
	now     func() time.Time
	window  time.Duration
	userMax int
	ipMax   int
	fails   map[string][]time.Time
}

// throttleMaxKeys bounds memory: 100,000 keys of a few timestamps each is about 10 MB.
const throttleMaxKeys = 100_000

func newThrottle(now func() time.Time) *throttle {
	return &throttle{now: now, window: 15 * time.Minute, userMax: 5, ipMax: 50, fails: map[string][]time.Time{}}
}

func userKey(username, ip string) string { return "u\x00" + username + "\x00" + ip }
func ipKey(ip string) string             { return "i\x00" + ip }

// blocked returns how long the caller must wait, or 0.
func (t *throttle) blocked(username, ip string) time.Duration {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.now()
	return max(t.waitLocked(userKey(username, ip), t.userMax, now), t.waitLocked(ipKey(ip), t.ipMax, now))
}

func (t *throttle) waitLocked(key string, limit int, now time.Time) time.Duration {
	list := t.pruneLocked(key, now)
	if len(list) < limit {
		return 0
	}
	return list[len(list)-limit].Add(t.window).Sub(now)
}

func (t *throttle) pruneLocked(key string, now time.Time) []time.Time {
	list := t.fails[key]
	i := 0
	for i < len(list) && !list[i].Add(t.window).After(now) {
		i++
	}
	list = list[i:]
	if len(list) == 0 {
		delete(t.fails, key)
	} else {
		t.fails[key] = list
	}
	return list
}

func (t *throttle) fail(username, ip string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.now()
	if len(t.fails) >= throttleMaxKeys {
		for k := range t.fails {
			t.pruneLocked(k, now)
		}
	}
	for _, k := range []string{userKey(username, ip), ipKey(ip)} {
		list := t.pruneLocked(k, now)
		if len(list) >= 64 { // keep the slice short; only the newest ones matter
			list = list[1:]
		}
		t.fails[k] = append(list, now)
	}
}

// succeed clears the (username, address) failures after a correct password.
func (t *throttle) succeed(username, ip string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.fails, userKey(username, ip))
}
