package api

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/gofiber/fiber/v2"
	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"
	"golang.org/x/crypto/bcrypt"

	"github.com/amrd/amrd/store"
)

// principal is who is calling, resolved once per request by the auth middleware.
type principal struct {
	user   store.User
	method string // "token", "basic" or "jwt"
	// staff principals (Token, or Basic for a staff user) see and write everything.
	staff bool
	// roles maps each organization the principal may act in to its role there. A JWT
	// principal has exactly its token's organization; a non-staff Basic principal has
	// every organization it is a member of.
	roles map[uuid.UUID]string
	// org is the JWT's organization (uuid.Nil for other methods).
	org uuid.UUID
}

// scope is what the principal may read.
func (p *principal) scope() store.Scope {
	if p.staff {
		return store.AllOrgs
	}
	orgs := make([]uuid.UUID, 0, len(p.roles))
	for o := range p.roles {
		orgs = append(orgs, o)
	}
	return store.OrgScope(orgs...)
}

// canWrite reports whether the principal may write inside an organization.
func (p *principal) canWrite(org uuid.UUID) bool {
	return p.staff || p.roles[org] == "editor"
}

func current(c *fiber.Ctx) *principal {
	p, _ := c.Locals(principalKey).(*principal)
	return p
}

type ctxKey int

const principalKey ctxKey = 1

// claims is the JWT payload, shaped like djangorestframework-jwt's with the organization
// added, as Utilitarian issues it.
type claims struct {
	UserID       string `json:"user_id"`
	Username     string `json:"username"`
	Organization string `json:"organization"`
	OrigIat      int64  `json:"orig_iat"`
	jwt.RegisteredClaims
}

// jwtRefreshWindow bounds renewal: a JWT can be renewed while the first token of its chain
// was issued less than 7 days ago (djangorestframework-jwt's default refresh delta), after
// which the user logs in again.
const jwtRefreshWindow = 7 * 24 * time.Hour

func (s *Server) issueJWT(u store.User, org uuid.UUID, origIat time.Time) (string, error) {
	now := s.cfg.now()
	if origIat.IsZero() {
		origIat = now
	}
	cl := claims{
		UserID:       u.ID.String(),
		Username:     u.Username,
		Organization: org.String(),
		OrigIat:      origIat.Unix(),
		RegisteredClaims: jwt.RegisteredClaims{
			IssuedAt:  jwt.NewNumericDate(now),
			ExpiresAt: jwt.NewNumericDate(now.Add(s.cfg.JWTTTL)),
		},
	}
	return jwt.NewWithClaims(jwt.SigningMethodHS256, cl).SignedString(s.cfg.JWTKey)
}

// parseJWT verifies an HS256 token with the signing key, then each fallback key. Any
// other algorithm, "none" included, is refused.
func (s *Server) parseJWT(raw string) (*claims, error) {
	cl := &claims{}
	_, err := jwt.ParseWithClaims(raw, cl, s.jwtKeys,
		jwt.WithValidMethods([]string{jwt.SigningMethodHS256.Alg()}),
		jwt.WithExpirationRequired(),
		jwt.WithTimeFunc(s.cfg.now),
	)
	if err != nil {
		if errors.Is(err, jwt.ErrTokenExpired) {
			return nil, unauthorized("JWT", "Signature has expired.")
		}
		return nil, unauthorized("JWT", "Error decoding signature.")
	}
	return cl, nil
}

// jwtKeys is parseJWT's key function: the signing key alone, or with the fallbacks.
func (s *Server) jwtKeys(*jwt.Token) (any, error) {
	if len(s.cfg.JWTKeyFallbacks) == 0 {
		return s.cfg.JWTKey, nil
	}
	set := jwt.VerificationKeySet{Keys: make([]jwt.VerificationKey, 0, 1+len(s.cfg.JWTKeyFallbacks))}
	set.Keys = append(set.Keys, s.cfg.JWTKey)
	for _, k := range s.cfg.JWTKeyFallbacks {
		set.Keys = append(set.Keys, k)
	}
	return set, nil
}

func unauthorized(scheme, detail string) error {
	h := scheme
	if scheme == "JWT" {
		h = `JWT realm="api"`
	}
	return &apiError{status: fiber.StatusUnauthorized, detail: detail,
		headers: map[string]string{fiber.HeaderWWWAuthenticate: h}}
}

// authenticate resolves the Authorization header into a principal, or answers 401.
func (s *Server) authenticate(c *fiber.Ctx) error {
	scheme, cred, _ := strings.Cut(strings.TrimSpace(c.Get(fiber.HeaderAuthorization)), " ")
	cred = strings.TrimSpace(cred)
	ctx := c.UserContext()
	var p *principal
	var err error
	switch strings.ToLower(scheme) {
	case "token":
		p, err = s.authToken(ctx, cred)
	case "basic":
		p, err = s.authBasic(c, cred)
	case "jwt", "bearer":
		p, err = s.authJWT(ctx, cred)
	case "":
		err = unauthorized(s.defaultScheme(), "Authentication credentials were not provided.")
	default:
		err = unauthorized(s.defaultScheme(), "Unsupported authentication scheme.")
	}
	if err != nil {
		return err
	}
	c.Locals(principalKey, p)
	return c.Next()
}

func (s *Server) defaultScheme() string {
	if s.cfg.AllowTokenAuth {
		return "Token"
	}
	return "JWT"
}

func (s *Server) authToken(ctx context.Context, key string) (*principal, error) {
	if !s.cfg.AllowTokenAuth {
		return nil, unauthorized("JWT", "Token authentication is disabled.")
	}
	if key == "" || strings.Contains(key, " ") {
		return nil, unauthorized("Token", "Invalid token header.")
	}
	u, ok := s.tokens.get(key)
	if !ok {
		// The entry's life counts from before the lookup: what the lookup read was true
		// at some moment after this one.
		looked := s.tokens.now()
		var err error
		u, err = s.st.UserByToken(ctx, key)
		if errors.Is(err, store.ErrNotFound) {
			return nil, unauthorized("Token", "Invalid token.")
		}
		if err != nil {
			return nil, err
		}
		s.tokens.put(key, u, looked)
	}
	if !u.IsStaff {
		// Utilitarian gives tokens to staff users only; a token left on a user who lost
		// staff rights stops working.
		return nil, unauthorized("Token", "Token authentication is for staff users.")
	}
	return &principal{user: u, method: "token", staff: true}, nil
}

func (s *Server) authBasic(c *fiber.Ctx, cred string) (*principal, error) {
	raw, err := base64.StdEncoding.DecodeString(cred)
	if err != nil {
		return nil, unauthorized("Basic", "Invalid basic header. Credentials not correctly base64 encoded.")
	}
	username, password, ok := strings.Cut(string(raw), ":")
	if !ok {
		return nil, unauthorized("Basic", "Invalid basic header.")
	}
	u, err := s.checkPassword(c, username, password)
	if err != nil {
		if errors.Is(err, errBadCredentials) {
			return nil, unauthorized("Basic", "Invalid username/password.")
		}
		return nil, err
	}
	p := &principal{user: u, method: "basic", staff: u.IsStaff}
	if !u.IsStaff {
		ms, err := s.st.UserMemberships(c.UserContext(), u.ID)
		if err != nil {
			return nil, err
		}
		p.roles = make(map[uuid.UUID]string, len(ms))
		for _, m := range ms {
			p.roles[m.OrganizationID] = m.Role
		}
	}
	return p, nil
}

// authJWT checks the token, then that its user is still active and still a member of its
// organization: a revoked membership ends access at once, not at expiry.
func (s *Server) authJWT(ctx context.Context, raw string) (*principal, error) {
	cl, err := s.parseJWT(raw)
	if err != nil {
		return nil, err
	}
	uid, err1 := uuid.Parse(cl.UserID)
	org, err2 := uuid.Parse(cl.Organization)
	if err1 != nil || err2 != nil {
		return nil, unauthorized("JWT", "Invalid payload.")
	}
	u, err := s.st.GetUser(ctx, uid)
	if errors.Is(err, store.ErrNotFound) || (err == nil && !u.IsActive) {
		return nil, unauthorized("JWT", "User account is disabled or was removed.")
	}
	if err != nil {
		return nil, err
	}
	role, err := s.roleIn(ctx, u.ID, org)
	if err != nil {
		return nil, err
	}
	if role == "" {
		return nil, unauthorized("JWT", "User is no longer a member of this organization.")
	}
	return &principal{user: u, method: "jwt", roles: map[uuid.UUID]string{org: role}, org: org}, nil
}

func (s *Server) roleIn(ctx context.Context, user, org uuid.UUID) (string, error) {
	ms, err := s.st.UserMemberships(ctx, user)
	if err != nil {
		return "", err
	}
	for _, m := range ms {
		if m.OrganizationID == org {
			return m.Role, nil
		}
	}
	return "", nil
}

var errBadCredentials = errors.New("bad credentials")

// dummyHash is compared against when the user does not exist, so that a missing user
// takes as long as a wrong password and usernames cannot be probed by timing.
var dummyHash, _ = bcrypt.GenerateFromPassword([]byte("amrd-timing-equalizer"), bcrypt.DefaultCost)

// checkPassword verifies a username and password under the login throttle.
func (s *Server) checkPassword(c *fiber.Ctx, username, password string) (store.User, error) {
	ip := c.IP()
	ctx := c.UserContext()
	wait, failedBefore, err := s.throttle.check(ctx, username, ip)
	if err != nil {
		return store.User{}, err
	}
	if wait > 0 {
		return store.User{}, tooMany(int((wait + time.Second - 1) / time.Second))
	}
	if !plausible(username, password) {
		// No user has such a name or password: it is not looked up (PostgreSQL's text
		// cannot even hold a NUL: the lookup would fail with error 22021, a 500, before
		// the throttle counted it), and it counts as a failure like any wrong password.
		if err := s.throttle.fail(ctx, username, ip); err != nil {
			return store.User{}, err
		}
		return store.User{}, errBadCredentials
	}
	u, err := s.st.GetUserByUsername(ctx, username)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return store.User{}, err
	}
	hash := u.PasswordHash
	if err != nil {
		hash = string(dummyHash)
	}
	if !s.passwords.check(username, password, hash) || err != nil || !u.IsActive {
		if err := s.throttle.fail(ctx, username, ip); err != nil {
			return store.User{}, err
		}
		return store.User{}, errBadCredentials
	}
	if failedBefore {
		if err := s.throttle.succeed(ctx, username, ip); err != nil {
			return store.User{}, err
		}
	}
	return u, nil
}

// Longest credentials a user can have: Django's username field holds 150 characters;
// amrd takes passwords of at most 128 characters (users.go), 512 bytes of UTF-8, and
// leaves room for passwords set by other means (bcrypt reads only the first 72 bytes).
const (
	maxUsernameLen = 150
	maxPasswordLen = 1024 // bytes
)

// plausible reports whether a username and password could be a user's: text that
// PostgreSQL can hold, within the lengths above. Basic credentials are any bytes.
func plausible(username, password string) bool {
	return badText(username) == "" && badText(password) == "" &&
		utf8.RuneCountInString(username) <= maxUsernameLen && len(password) <= maxPasswordLen
}

// passwordCache remembers, for a minute, that a (username, password, hash) triple was
// verified, so that Basic auth does not pay bcrypt (tens of milliseconds of CPU) on every
// request. It keeps only SHA-256 digests, never a password, and a changed hash misses the
// cache.
type passwordCache struct {
	mu  sync.Mutex
	ok  map[[32]byte]time.Time
	now func() time.Time
}

const passwordCacheTTL = time.Minute

// passwordCacheMax bounds the cache: 10,000 entries of 32+24 bytes is under 1 MB.
const passwordCacheMax = 10_000

func (pc *passwordCache) check(username, password, hash string) bool {
	h := sha256.New()
	h.Write([]byte(username))
	h.Write([]byte{0})
	h.Write([]byte(password))
	h.Write([]byte{0})
	h.Write([]byte(hash))
	var k [32]byte
	copy(k[:], h.Sum(nil))
	now := pc.now()
	pc.mu.Lock()
	exp, hit := pc.ok[k]
	pc.mu.Unlock()
	if hit && now.Before(exp) {
		return true
	}
	if bcrypt.CompareHashAndPassword([]byte(hash), []byte(password)) != nil {
		return false
	}
	pc.mu.Lock()
	defer pc.mu.Unlock()
	if len(pc.ok) >= passwordCacheMax {
		for key, e := range pc.ok {
			if now.After(e) || len(pc.ok) >= passwordCacheMax {
				delete(pc.ok, key)
			}
		}
	}
	pc.ok[k] = now.Add(passwordCacheTTL)
	return true
}

// HashPassword makes a bcrypt hash at the default cost (10: tens of milliseconds of CPU).
func HashPassword(password string) (string, error) {
	h, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.DefaultCost)
	return string(h), err
}

// tokenCache remembers, for a second, which user an API token belongs to, so that a
// collector posting thousands of requests a second costs one database lookup a second,
// not one a request. Only SHA-256 digests of tokens are kept. A user changed or deleted
// through this process clears it at once; a change through another replica (or in the
// database: a token deleted, a user deactivated or demoted) takes effect on this one
// within tokenCacheTTL. Its clock is this process's (monotonic) one: a TTL is a
// duration here, not a time of the database.
type tokenCache struct {
	mu  sync.Mutex
	m   map[[32]byte]tokenEntry
	now func() time.Time
}

type tokenEntry struct {
	user store.User
	exp  time.Time
}

// tokenCacheTTL bounds how long a revoked token or a deactivated or demoted user keeps
// working on another replica: at most a second after the change committed, since an
// entry's life starts before the lookup that filled it.
const tokenCacheTTL = time.Second

// tokenCacheMax bounds the cache: 10,000 users of about 300 bytes is 3 MB.
const tokenCacheMax = 10_000

func (tc *tokenCache) get(key string) (store.User, bool) {
	k := sha256.Sum256([]byte(key))
	tc.mu.Lock()
	defer tc.mu.Unlock()
	e, ok := tc.m[k]
	if !ok || !tc.now().Before(e.exp) {
		return store.User{}, false
	}
	return e.user, true
}

// put caches the user that a lookup begun at looked found.
func (tc *tokenCache) put(key string, u store.User, looked time.Time) {
	k := sha256.Sum256([]byte(key))
	tc.mu.Lock()
	defer tc.mu.Unlock()
	if len(tc.m) >= tokenCacheMax {
		clear(tc.m)
	}
	tc.m[k] = tokenEntry{user: u, exp: looked.Add(tokenCacheTTL)}
}

func (tc *tokenCache) reset() {
	tc.mu.Lock()
	defer tc.mu.Unlock()
	clear(tc.m)
}
