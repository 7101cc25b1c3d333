-- Failed logins, for the login throttle (api/throttle.go). They are counted in the
-- database so that every replica sees the same ones: per-process counters let N replicas
-- take N times the allowed guesses. key is a SHA-256 digest of (username, client
-- address) or of the address alone, never a username in clear. Only failures write; each
-- one also deletes up to 100 rows older than the throttle's window, so the table holds
-- little more than the failures of the last 15 minutes.
CREATE TABLE login_failures (
    key bytea NOT NULL,
    at timestamptz NOT NULL
);

-- The throttle's read: the newest failures of a key inside the window.
CREATE INDEX login_failures_key_at_idx ON login_failures (key, at DESC);
-- The sweep of expired failures.
CREATE INDEX login_failures_at_idx ON login_failures (at);
