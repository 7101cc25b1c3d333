package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"
	"golang.org/x/crypto/bcrypt"

	"github.com/amrd/amrd/store"
	"github.com/amrd/amrd/store/storetest"
)

// newSecret is the SECRET_KEY a rotation moves to (testSecret is the old one).
const newSecret = "rotated-secret-key-0123456789abcdefghij"

// TestKeysRotate is a whole rotation of SECRET_KEY: keys stored and a JWT issued under
// the old secret; a restart with the new one and the old one as a fallback, where both
// still work; `amrd keys rotate` (interrupted, resumed, run again); a restart without the
// fallback, where the keys still decrypt and the old JWT no longer verifies.
func TestKeysRotate(t *testing.T) {
	t.Parallel()
	env := migratedEnv(t)
	dbURL := env["DATABASE_URL"]
	ctx := testCtx(t)
	old, err := store.Open(ctx, store.Config{URL: dbURL, Secret: testSecret}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	require.NoError(t, err)
	t.Cleanup(old.Close)

	// An editor of an organization (for a JWT) and its meters' keys, under the old secret.
	org, err := old.CreateOrganization(ctx, store.OrganizationInput{Name: "o", IsActive: true})
	require.NoError(t, err)
	hash, err := bcrypt.GenerateFromPassword([]byte("editor-password"), bcrypt.MinCost)
	require.NoError(t, err)
	u, err := old.CreateUser(ctx, store.UserInput{Username: "editor", PasswordHash: string(hash), IsActive: true})
	require.NoError(t, err)
	_, err = old.CreateMembership(ctx, store.MembershipInput{OrganizationID: org.ID, UserID: u.ID, Role: "editor"})
	require.NoError(t, err)
	const keys = 5
	want := map[string]string{} // key collection id -> its unicast key
	for i := 0; i < keys; i++ {
		var dev uuid.UUID
		storetest.Query(t, dbURL, `INSERT INTO meter_devices (organization_id, name, protocol) VALUES ($1, $2, 'dlms-cosem') RETURNING id`,
			[]any{org.ID, fmt.Sprintf("m%d", i)}, &dev)
		uni := fmt.Sprintf("%032x", i+1)
		k, err := old.CreateSecurityKeys(ctx, store.AllOrgs, store.SecurityKeysInput{Meter: dev, DLMSUnicastKey: &uni,
			DLMSMasterKey: strPtr(fmt.Sprintf("%064x", i+1))})
		require.NoError(t, err)
		want[k.ID.String()] = uni
	}

	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{}}
	t.Cleanup(client.CloseIdleConnections)
	call := func(t *testing.T, srv *served, method, path, auth string, body any) (int, []byte) {
		t.Helper()
		var r io.Reader
		if body != nil {
			raw, err := json.Marshal(body)
			require.NoError(t, err)
			r = bytes.NewReader(raw)
		}
		req, err := http.NewRequest(method, "http://"+srv.addr+path, r)
		require.NoError(t, err)
		req.Header.Set("Content-Type", "application/json")
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		resp, err := client.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		got, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		return resp.StatusCode, got
	}
	// keysSeen lists the keys as the API returns them to the JWT editor.
	keysSeen := func(t *testing.T, srv *served, jwt string) (int, map[string]string) {
		t.Helper()
		status, body := call(t, srv, "GET", "/v1/metering/meter-security-keys/?limit=100", "JWT "+jwt, nil)
		if status != http.StatusOK {
			return status, nil
		}
		var page struct {
			Results []struct {
				ID  string `json:"id"`
				Uni string `json:"dlms_global_unicast_encryption_key"`
			} `json:"results"`
		}
		require.NoError(t, json.Unmarshal(body, &page))
		got := map[string]string{}
		for _, r := range page.Results {
			got[r.ID] = r.Uni
		}
		return status, got
	}
	withEnv := func(extra map[string]string) map[string]string {
		e := map[string]string{"AMRD_LISTEN": "127.0.0.1:0", "AMRD_JOBS": "false", "AMRD_INGEST_WARM_DEVICES": "0"}
		for k, v := range env {
			e[k] = v
		}
		for k, v := range extra {
			e[k] = v
		}
		return e
	}

	// Under the old secret: a JWT.
	srv := startServe(t, withEnv(map[string]string{"SECRET_KEY": testSecret}))
	status, body := call(t, srv, "POST", "/v1/auth/jwt/token/", "", map[string]string{"username": "editor", "password": "editor-password"})
	require.Equal(t, http.StatusCreated, status, "body: %s", body)
	var tok struct{ Token string }
	require.NoError(t, json.Unmarshal(body, &tok))
	oldJWT := tok.Token
	status, got := keysSeen(t, srv, oldJWT)
	require.Equal(t, http.StatusOK, status)
	require.Equal(t, want, got)
	client.CloseIdleConnections()
	require.NoError(t, srv.stop())

	t.Run("the new secret with the old one as a fallback", func(t *testing.T) {
		srv := startServe(t, withEnv(map[string]string{"SECRET_KEY": newSecret, "SECRET_KEY_FALLBACKS": " " + testSecret + " ,"}))
		defer func() { client.CloseIdleConnections(); require.NoError(t, srv.stop()) }()
		status, got := keysSeen(t, srv, oldJWT)
		require.Equal(t, http.StatusOK, status, "a JWT signed with the old secret still verifies")
		require.Equal(t, want, got, "keys encrypted under the old secret still decrypt")
		status, body := call(t, srv, "GET", "/v1/auth/jwt/renew/", "JWT "+oldJWT, nil)
		require.Equal(t, http.StatusOK, status, "body: %s", body)
		require.NoError(t, json.Unmarshal(body, &tok))
		require.NotEqual(t, oldJWT, tok.Token)
	})
	newJWT := tok.Token // signed with the new secret

	rotate := func(t *testing.T, extra map[string]string, args ...string) (string, string, error) {
		t.Helper()
		return amrd(t, withEnv(extra), "", append([]string{"keys", "rotate"}, args...)...)
	}
	counts := regexp.MustCompile(`keys rotate: (\d+) rows re-encrypted under SECRET_KEY, (\d+) already under it, (\d+) could not be decrypted`)
	rotated := func(t *testing.T, out string) [3]string {
		t.Helper()
		m := counts.FindStringSubmatch(out)
		require.NotNil(t, m, "output: %s", out)
		return [3]string{m[1], m[2], m[3]}
	}
	fallback := map[string]string{"SECRET_KEY": newSecret, "SECRET_KEY_FALLBACKS": testSecret}

	t.Run("rotate, interrupted after a batch, resumed and run again", func(t *testing.T) {
		// Interrupted: the command's context ends as it reports its first batch of 2
		// (as Ctrl-C would between two batches).
		var stdout bytes.Buffer
		cctx, cancel := context.WithCancel(ctx)
		defer cancel()
		stderr := &cancelOn{text: "rows done", cancel: cancel}
		err := run(cctx, []string{"keys", "rotate", "-batch", "2"}, strings.NewReader(""), &stdout, stderr, envFunc(withEnv(fallback)))
		require.ErrorContains(t, err, "interrupted; run it again")
		require.Contains(t, stderr.buf.String(), "keys rotate: 2 rows done")
		first := rotated(t, stdout.String())
		require.Equal(t, [3]string{"2", "0", "0"}, first, stdout.String())

		out, _, err := rotate(t, fallback)
		require.NoError(t, err)
		require.Equal(t, [3]string{fmt.Sprint(keys - 2), "2", "0"}, rotated(t, out), "resumed: the rows done are current")
		out, _, err = rotate(t, fallback)
		require.NoError(t, err)
		require.Equal(t, [3]string{"0", fmt.Sprint(keys), "0"}, rotated(t, out), "run again: nothing to change")
	})

	t.Run("the new secret alone", func(t *testing.T) {
		srv := startServe(t, withEnv(map[string]string{"SECRET_KEY": newSecret}))
		defer func() { client.CloseIdleConnections(); require.NoError(t, srv.stop()) }()
		status, got := keysSeen(t, srv, newJWT)
		require.Equal(t, http.StatusOK, status)
		require.Equal(t, want, got, "every key decrypts without the old secret")
		status, _ = keysSeen(t, srv, oldJWT)
		require.Equal(t, http.StatusUnauthorized, status, "without the fallback, the old secret's JWTs end")
	})

	t.Run("a row no secret decrypts is reported by id, exit status 2", func(t *testing.T) {
		var id string
		storetest.QueryRow(t, dbURL, `UPDATE meter_security_keys SET dlms_master_key_enc = '\x0011223344556677889900112233445566778899'
			WHERE id = (SELECT id FROM meter_security_keys ORDER BY id LIMIT 1) RETURNING id::text`, &id)
		out, _, err := rotate(t, map[string]string{"SECRET_KEY": newSecret})
		require.Equal(t, 2, exitCode(err), "err: %v", err)
		require.Equal(t, [3]string{"0", fmt.Sprint(keys - 1), "1"}, rotated(t, out))
		require.Contains(t, out, "meter security key collection "+id)
		require.NotContains(t, out, "00112233", "no key material is printed")
	})

	t.Run("settings", func(t *testing.T) {
		_, _, err := rotate(t, map[string]string{"SECRET_KEY": ""})
		require.ErrorContains(t, err, "SECRET_KEY must be set")
		_, _, err = rotate(t, map[string]string{"SECRET_KEY": newSecret, "SECRET_KEY_FALLBACKS": testSecret + ",short-secret"})
		require.ErrorContains(t, err, "SECRET_KEY_FALLBACKS: key 2 of 2 is shorter than 32")
		require.NotContains(t, err.Error(), "short-secret", "a secret is never quoted")
		_, _, err = amrd(t, withEnv(nil), "", "keys")
		require.ErrorContains(t, err, "usage: amrd keys rotate")
		_, _, err = amrd(t, map[string]string{"DATABASE_URL": dbURL, "SECRET_KEY": newSecret, "SECRET_KEY_FALLBACKS": "tiny"}, "", "serve")
		require.ErrorContains(t, err, "SECRET_KEY_FALLBACKS: key 1 of 1")

		s, err := loadSettings(envFunc(map[string]string{"SECRET_KEY": newSecret, "SECRET_KEY_FALLBACKS": " " + testSecret + " , ,x"}))
		require.NoError(t, err)
		require.Equal(t, []string{testSecret, "x"}, s.SecretKeyFallbacks)
		require.Equal(t, [][]byte{[]byte(testSecret), []byte("x")}, s.jwtKeyFallbacks(), "JWTs are signed with SECRET_KEY: its fallbacks verify them")
		s.JWTSigningKey = strings.Repeat("j", 40)
		require.Nil(t, s.jwtKeyFallbacks(), "a JWT_SIGNING_KEY has no fallbacks")
	})
}

func strPtr(s string) *string { return &s }

// cancelOn is a writer that calls cancel once text has been written to it.
type cancelOn struct {
	buf    bytes.Buffer
	text   string
	cancel func()
}

func (c *cancelOn) Write(p []byte) (int, error) {
	n, err := c.buf.Write(p)
	if strings.Contains(c.buf.String(), c.text) {
		c.cancel()
	}
	return n, err
}
