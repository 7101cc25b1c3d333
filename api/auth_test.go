package api_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/stretchr/testify/require"

	"github.com/amrd/amrd/api"
	"github.com/amrd/amrd/store"
)

func TestTokenAuth(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	nonStaffToken, err := e.st.CreateToken(ctx, e.viewer.ID)
	require.NoError(t, err)

	tests := []struct {
		name       string
		auth       string
		status     int
		wwwAuth    string
		detailPart string
	}{
		{"staff token", e.token(), 200, "", ""},
		{"lower-case scheme", "token " + e.staffToken, 200, "", ""},
		{"no header", "", 401, "Token", "not provided"},
		{"unknown token", "Token 0000000000000000000000000000000000000000", 401, "Token", "Invalid token"},
		{"empty token", "Token", 401, "Token", "Invalid token header"},
		{"token with spaces", "Token a b", 401, "Token", "Invalid token header"},
		{"non-staff user's token", "Token " + nonStaffToken, 401, "Token", "staff"},
		{"unknown scheme", "Digest abc", 401, "Token", "Unsupported"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := e.do("GET", "/v1/organizations/", tc.auth, nil)
			require.Equal(t, tc.status, r.status, "body: %s", r.body)
			if tc.status == 401 {
				require.Equal(t, tc.wwwAuth, r.header.Get("WWW-Authenticate"))
				require.Contains(t, r.json(t)["detail"], tc.detailPart)
			} else {
				require.Equal(t, float64(2), r.json(t)["count"])
			}
		})
	}
}

func TestTokenAuthDisabled(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(c *api.Config) { c.AllowTokenAuth = false })
	r := e.do("GET", "/v1/organizations/", e.token(), nil)
	require.Equal(t, 401, r.status)
	require.Equal(t, `JWT realm="api"`, r.header.Get("WWW-Authenticate"))
	require.Contains(t, r.json(t)["detail"], "disabled")
	// Without a header the challenge is JWT too.
	r = e.do("GET", "/v1/organizations/", "", nil)
	require.Equal(t, 401, r.status)
	require.Equal(t, "JWT", strings.Fields(r.header.Get("WWW-Authenticate"))[0])
	// JWT still works.
	r = e.do("GET", "/v1/organizations/", e.jwtFor(e.viewer, nil), nil)
	require.Equal(t, 200, r.status)
}

func TestBasicAuth(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	t.Run("staff sees everything", func(t *testing.T) {
		r := e.do("GET", "/v1/organizations/", basic("staff", testPassword), nil)
		require.Equal(t, 200, r.status, "body: %s", r.body)
		require.Equal(t, float64(2), r.json(t)["count"])
	})
	t.Run("member sees its organizations", func(t *testing.T) {
		r := e.do("GET", "/v1/organizations/", basic("both", testPassword), nil)
		require.Equal(t, 200, r.status)
		require.ElementsMatch(t, []string{e.orgA.ID.String(), e.orgB.ID.String()}, ids(t, r))
		r = e.do("GET", "/v1/organizations/", basic("viewer", testPassword), nil)
		require.Equal(t, []string{e.orgA.ID.String()}, ids(t, r))
	})
	t.Run("wrong password", func(t *testing.T) {
		r := e.do("GET", "/v1/organizations/", basic("viewer", "wrong"), nil)
		require.Equal(t, 401, r.status)
		require.Equal(t, "Basic", r.header.Get("WWW-Authenticate"))
	})
	t.Run("unknown user", func(t *testing.T) {
		r := e.do("GET", "/v1/organizations/", basic("nobody", testPassword), nil)
		require.Equal(t, 401, r.status)
	})
	t.Run("not base64", func(t *testing.T) {
		r := e.do("GET", "/v1/organizations/", "Basic !!!", nil)
		require.Equal(t, 401, r.status)
		require.Contains(t, r.json(t)["detail"], "base64")
	})
	t.Run("no colon", func(t *testing.T) {
		r := e.do("GET", "/v1/organizations/", "Basic "+base64.StdEncoding.EncodeToString([]byte("staff")), nil)
		require.Equal(t, 401, r.status)
	})
	t.Run("inactive user", func(t *testing.T) {
		u, err := e.st.CreateUser(context.Background(), store.UserInput{Username: "gone", PasswordHash: e.viewer.PasswordHash, IsActive: false})
		require.NoError(t, err)
		r := e.do("GET", "/v1/organizations/", basic(u.Username, testPassword), nil)
		require.Equal(t, 401, r.status)
	})
}

func TestLoginThrottle(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	for i := 0; i < 5; i++ {
		r := e.do("GET", "/v1/organizations/", basic("editor", "guess"), nil)
		require.Equal(t, 401, r.status, "attempt %d", i+1)
	}
	// The sixth attempt is refused before the password is checked, even the right one.
	r := e.do("GET", "/v1/organizations/", basic("editor", testPassword), nil)
	require.Equal(t, 429, r.status)
	require.NotEmpty(t, r.header.Get("Retry-After"))
	require.Contains(t, r.json(t)["detail"], "Too many")
	// The JWT login shares the throttle.
	r = e.do("POST", "/v1/auth/jwt/token/", "", map[string]any{"username": "editor", "password": testPassword})
	require.Equal(t, 429, r.status)
	// Another user from the same address is not locked out by editor's failures.
	r = e.do("GET", "/v1/organizations/", basic("viewer", testPassword), nil)
	require.Equal(t, 200, r.status)
	// After the window the right password works again.
	e.clock.add(16 * time.Minute)
	r = e.do("GET", "/v1/organizations/", basic("editor", testPassword), nil)
	require.Equal(t, 200, r.status, "body: %s", r.body)
}

func TestJWTLogin(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	orgB, orgA := e.orgB.ID.String(), e.orgA.ID.String()
	tests := []struct {
		name   string
		body   any
		status int
		org    string // expected organization claim
		field  string // expected error field
	}{
		{"first organization", map[string]any{"username": "both", "password": testPassword}, 201, orgA, ""},
		{"organization asked for", map[string]any{"username": "both", "password": testPassword, "organization": orgB}, 201, orgB, ""},
		{"organization null", map[string]any{"username": "both", "password": testPassword, "organization": nil}, 201, orgA, ""},
		{"non-member organization", map[string]any{"username": "viewer", "password": testPassword, "organization": orgB}, 400, "", "organization"},
		{"organization not a uuid", map[string]any{"username": "viewer", "password": testPassword, "organization": "x"}, 400, "", "organization"},
		{"wrong password", map[string]any{"username": "viewer", "password": "nope"}, 400, "", "non_field_errors"},
		{"unknown user", map[string]any{"username": "ghost", "password": testPassword}, 400, "", "non_field_errors"},
		{"member of nothing", map[string]any{"username": "loner", "password": testPassword}, 400, "", "non_field_errors"},
		{"missing password", map[string]any{"username": "viewer"}, 400, "", "password"},
		{"blank username", map[string]any{"username": "", "password": "x"}, 400, "", "username"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := e.do("POST", "/v1/auth/jwt/token/", "", tc.body)
			require.Equal(t, tc.status, r.status, "body: %s", r.body)
			m := r.json(t)
			if tc.status == 201 {
				cl := decodeClaims(t, m["token"].(string))
				require.Equal(t, tc.org, cl["organization"])
				require.Equal(t, "both", cl["username"])
				exp, iat := cl["exp"].(float64), cl["iat"].(float64)
				require.Equal(t, float64(1200), exp-iat, "JWT_EXPIRATION_TIME_SECONDS default")
			} else {
				require.Contains(t, m, tc.field)
			}
		})
	}
}

// decodeClaims reads a JWT's payload without checking it.
func decodeClaims(t *testing.T, tok string) map[string]any {
	t.Helper()
	parts := strings.Split(tok, ".")
	require.Len(t, parts, 3)
	raw, err := base64.RawURLEncoding.DecodeString(parts[1])
	require.NoError(t, err)
	var m map[string]any
	require.NoError(t, json.Unmarshal(raw, &m))
	return m
}

func TestJWTRejected(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	good := strings.TrimPrefix(e.jwtFor(e.viewer, nil), "JWT ")
	claims := decodeClaims(t, good)
	sign := func(method jwt.SigningMethod, key any, mod func(jwt.MapClaims)) string {
		cl := jwt.MapClaims{}
		for k, v := range claims {
			cl[k] = v
		}
		if mod != nil {
			mod(cl)
		}
		s, err := jwt.NewWithClaims(method, cl).SignedString(key)
		require.NoError(t, err)
		return s
	}
	parts := strings.Split(good, ".")
	tamperedPayload := base64.RawURLEncoding.EncodeToString([]byte(strings.Replace(
		mustJSON(t, claims), e.orgA.ID.String(), e.orgB.ID.String(), 1)))

	tests := []struct {
		name, tok, detail string
	}{
		{"tampered payload", parts[0] + "." + tamperedPayload + "." + parts[2], "decoding"},
		{"tampered signature", parts[0] + "." + parts[1] + "." + strings.Repeat("A", len(parts[2])), "decoding"},
		{"wrong key", sign(jwt.SigningMethodHS256, []byte("another-key-another-key-another-key!"), nil), "decoding"},
		{"alg none", sign(jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, nil), "decoding"},
		{"alg HS512 with the right key", sign(jwt.SigningMethodHS512, testKey, nil), "decoding"},
		{"no expiry", sign(jwt.SigningMethodHS256, testKey, func(c jwt.MapClaims) { delete(c, "exp") }), "decoding"},
		{"expired", sign(jwt.SigningMethodHS256, testKey, func(c jwt.MapClaims) { c["exp"] = time.Now().Add(-time.Minute).Unix() }), "expired"},
		{"organization swapped, re-signed without membership", sign(jwt.SigningMethodHS256, testKey, func(c jwt.MapClaims) { c["organization"] = e.orgB.ID.String() }), "member"},
		{"garbage", "not.a.jwt", "decoding"},
		{"empty", "", "decoding"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := e.do("GET", "/v1/organizations/", "JWT "+tc.tok, nil)
			require.Equal(t, 401, r.status, "body: %s", r.body)
			require.Equal(t, `JWT realm="api"`, r.header.Get("WWW-Authenticate"))
			require.Contains(t, r.json(t)["detail"], tc.detail)
		})
	}
	t.Run("expires by the clock", func(t *testing.T) {
		tok := e.jwtFor(e.viewer, nil)
		require.Equal(t, 200, e.do("GET", "/v1/organizations/", tok, nil).status)
		e.clock.add(1201 * time.Second)
		r := e.do("GET", "/v1/organizations/", tok, nil)
		require.Equal(t, 401, r.status)
		require.Contains(t, r.json(t)["detail"], "expired")
	})
}

func mustJSON(t *testing.T, v any) string {
	raw, err := json.Marshal(v)
	require.NoError(t, err)
	return string(raw)
}

func TestJWTRenewAndChangeOrganization(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	tok := e.jwtFor(e.both, nil)
	require.Equal(t, e.orgA.ID.String(), decodeClaims(t, strings.TrimPrefix(tok, "JWT "))["organization"])

	t.Run("renew", func(t *testing.T) {
		e.clock.add(10 * time.Minute)
		r := e.do("GET", "/v1/auth/jwt/renew/", tok, nil)
		require.Equal(t, 200, r.status, "body: %s", r.body)
		renewed := r.json(t)["token"].(string)
		old, cl := decodeClaims(t, strings.TrimPrefix(tok, "JWT ")), decodeClaims(t, renewed)
		require.Equal(t, e.orgA.ID.String(), cl["organization"])
		require.Greater(t, cl["exp"].(float64), old["exp"].(float64))
		require.Equal(t, old["orig_iat"], cl["orig_iat"], "a renewal keeps the chain's start")
		// The renewed token outlives the old one.
		e.clock.add(15 * time.Minute)
		require.Equal(t, 401, e.do("GET", "/v1/organizations/", tok, nil).status)
		require.Equal(t, 200, e.do("GET", "/v1/organizations/", "JWT "+renewed, nil).status)
		tok = "JWT " + renewed
	})
	t.Run("renew needs a JWT", func(t *testing.T) {
		r := e.do("GET", "/v1/auth/jwt/renew/", e.token(), nil)
		require.Equal(t, 401, r.status)
	})
	t.Run("change to a member organization", func(t *testing.T) {
		r := e.do("POST", "/v1/auth/jwt/change-organization/", tok, map[string]any{"organization": e.orgB.ID})
		require.Equal(t, 201, r.status, "body: %s", r.body)
		nt := "JWT " + r.json(t)["token"].(string)
		r = e.do("GET", "/v1/organizations/", nt, nil)
		require.Equal(t, []string{e.orgB.ID.String()}, ids(t, r))
	})
	t.Run("change to a non-member organization", func(t *testing.T) {
		vt := e.jwtFor(e.viewer, nil)
		r := e.do("POST", "/v1/auth/jwt/change-organization/", vt, map[string]any{"organization": e.orgB.ID})
		require.Equal(t, 400, r.status)
		require.Contains(t, r.json(t), "organization")
	})
	t.Run("change without organization", func(t *testing.T) {
		r := e.do("POST", "/v1/auth/jwt/change-organization/", tok, map[string]any{})
		require.Equal(t, 400, r.status)
		require.Equal(t, []any{"This field is required."}, r.json(t)["organization"])
	})
}

func TestJWTMembershipRevoked(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	tok := e.jwtFor(e.viewer, nil)
	require.Equal(t, 200, e.do("GET", "/v1/organizations/", tok, nil).status)
	ms, err := e.st.UserMemberships(context.Background(), e.viewer.ID)
	require.NoError(t, err)
	require.Equal(t, 204, e.do("DELETE", "/v1/organizations/memberships/"+itoa(ms[0].ID), e.token(), nil).status)
	r := e.do("GET", "/v1/organizations/", tok, nil)
	require.Equal(t, 401, r.status)
	require.Contains(t, r.json(t)["detail"], "no longer a member")
}

// TestJWTFallbackKeys: after a rotation of SECRET_KEY, JWTs signed with a fallback key
// still verify until they expire; new ones (renewals included) are signed with the
// current key only, and a key that is neither is refused.
func TestJWTFallbackKeys(t *testing.T) {
	t.Parallel()
	oldKey := []byte("the-old-secret-key-0123456789abcdefgh")
	e := newEnv(t, func(c *api.Config) {
		c.JWTKeyFallbacks = [][]byte{[]byte("another-old-key-0123456789abcdefghijk"), oldKey}
	})
	claims := decodeClaims(t, strings.TrimPrefix(e.jwtFor(e.viewer, nil), "JWT "))
	sign := func(key []byte, mod func(jwt.MapClaims)) string {
		cl := jwt.MapClaims{}
		for k, v := range claims {
			cl[k] = v
		}
		if mod != nil {
			mod(cl)
		}
		s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, cl).SignedString(key)
		require.NoError(t, err)
		return "JWT " + s
	}
	verifies := func(tok string, key []byte) bool {
		_, err := jwt.Parse(strings.TrimPrefix(tok, "JWT "), func(*jwt.Token) (any, error) { return key, nil })
		return err == nil
	}

	tests := []struct {
		name   string
		tok    string
		status int
		detail string
	}{
		{"signed with the current key", sign(testKey, nil), 200, ""},
		{"signed with a fallback key", sign(oldKey, nil), 200, ""},
		{"signed with another key", sign([]byte("never-a-key-of-this-server-0123456789"), nil), 401, "decoding"},
		{"a fallback key's token, expired", sign(oldKey, func(c jwt.MapClaims) { c["exp"] = time.Now().Add(-time.Minute).Unix() }), 401, "expired"},
		{"a fallback key's token for another organization", sign(oldKey, func(c jwt.MapClaims) { c["organization"] = e.orgB.ID.String() }), 401, "member"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := e.do("GET", "/v1/organizations/", tc.tok, nil)
			require.Equal(t, tc.status, r.status, "body: %s", r.body)
			if tc.detail != "" {
				require.Contains(t, r.json(t)["detail"], tc.detail)
			}
		})
	}
	t.Run("a renewal is signed with the current key", func(t *testing.T) {
		r := e.do("GET", "/v1/auth/jwt/renew/", sign(oldKey, nil), nil)
		require.Equal(t, 200, r.status, "body: %s", r.body)
		renewed := "JWT " + r.json(t)["token"].(string)
		require.True(t, verifies(renewed, testKey))
		require.False(t, verifies(renewed, oldKey))
		require.True(t, verifies(e.jwtFor(e.viewer, nil), testKey), "so is a login")
	})
	t.Run("without fallbacks the old key's tokens end", func(t *testing.T) {
		plain := newEnv(t)
		r := plain.do("GET", "/v1/organizations/", sign(oldKey, nil), nil)
		require.Equal(t, 401, r.status)
	})
}
