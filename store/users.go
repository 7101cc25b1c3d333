package store

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// User is a person or service that calls the API. PasswordHash is a bcrypt hash and is
// never serialized.
type User struct {
	ID           uuid.UUID  `json:"id"`
	Username     string     `json:"username"`
	Email        string     `json:"email"`
	FirstName    string     `json:"first_name"`
	LastName     string     `json:"last_name"`
	PasswordHash string     `json:"-"`
	IsStaff      bool       `json:"is_staff"`
	IsActive     bool       `json:"is_active"`
	LastLogin    *time.Time `json:"last_login"`
	CreatedAt    time.Time  `json:"created_at"`
	UpdatedAt    time.Time  `json:"updated_at"`
}

// UserInput is what a create or update writes. An empty PasswordHash on update keeps the
// stored one.
type UserInput struct {
	Username     string
	Email        string
	FirstName    string
	LastName     string
	PasswordHash string
	IsStaff      bool
	IsActive     bool
}

const userCols = `id, username, email, first_name, last_name, password_hash, is_staff, is_active, last_login, created_at, updated_at`

func scanUser(row pgx.CollectableRow) (User, error) {
	var u User
	err := row.Scan(&u.ID, &u.Username, &u.Email, &u.FirstName, &u.LastName, &u.PasswordHash,
		&u.IsStaff, &u.IsActive, &u.LastLogin, &u.CreatedAt, &u.UpdatedAt)
	return u, err
}

// CountUsers returns how many users exist.
func (s *Store) CountUsers(ctx context.Context) (int, error) {
	var n int
	err := s.pool.QueryRow(ctx, `SELECT count(*) FROM users`).Scan(&n)
	return n, mapErr("counting users", err)
}

// ListUsers returns one page of users, oldest first, and how many there are.
func (s *Store) ListUsers(ctx context.Context, p Page) ([]User, int, error) {
	n, err := s.CountUsers(ctx)
	if err != nil {
		return nil, 0, err
	}
	rows, err := s.pool.Query(ctx, `SELECT `+userCols+` FROM users ORDER BY created_at, id LIMIT $1 OFFSET $2`, p.Limit, p.Offset)
	if err != nil {
		return nil, 0, mapErr("listing users", err)
	}
	list, err := pgx.CollectRows(rows, scanUser)
	return list, n, mapErr("listing users", err)
}

// GetUser returns one user by id.
func (s *Store) GetUser(ctx context.Context, id uuid.UUID) (User, error) {
	rows, _ := s.pool.Query(ctx, `SELECT `+userCols+` FROM users WHERE id = $1`, id)
	u, err := pgx.CollectExactlyOneRow(rows, scanUser)
	return u, mapErr("reading a user", err)
}

// GetUserByUsername returns one user by name.
func (s *Store) GetUserByUsername(ctx context.Context, username string) (User, error) {
	rows, _ := s.pool.Query(ctx, `SELECT `+userCols+` FROM users WHERE username = $1`, username)
	u, err := pgx.CollectExactlyOneRow(rows, scanUser)
	return u, mapErr("reading a user", err)
}

// CreateUser adds a user.
func (s *Store) CreateUser(ctx context.Context, in UserInput) (User, error) {
	rows, _ := s.pool.Query(ctx, `INSERT INTO users (username, email, first_name, last_name, password_hash, is_staff, is_active)
		VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING `+userCols,
		in.Username, in.Email, in.FirstName, in.LastName, in.PasswordHash, in.IsStaff, in.IsActive)
	u, err := pgx.CollectExactlyOneRow(rows, scanUser)
	return u, mapErr("creating a user", err)
}

// UpdateUser replaces a user's fields (the password only when a new hash is given).
func (s *Store) UpdateUser(ctx context.Context, id uuid.UUID, in UserInput) (User, error) {
	rows, _ := s.pool.Query(ctx, `UPDATE users SET username = $2, email = $3, first_name = $4, last_name = $5,
		password_hash = CASE WHEN $6 = '' THEN password_hash ELSE $6 END,
		is_staff = $7, is_active = $8, updated_at = now() WHERE id = $1 RETURNING `+userCols,
		id, in.Username, in.Email, in.FirstName, in.LastName, in.PasswordHash, in.IsStaff, in.IsActive)
	u, err := pgx.CollectExactlyOneRow(rows, scanUser)
	return u, mapErr("updating a user", err)
}

// DeleteUser removes a user with their memberships and tokens.
func (s *Store) DeleteUser(ctx context.Context, id uuid.UUID) error {
	tag, err := s.pool.Exec(ctx, `DELETE FROM users WHERE id = $1`, id)
	if err != nil {
		return mapErr("deleting a user", err)
	}
	if tag.RowsAffected() == 0 {
		return mapErr("deleting a user", pgx.ErrNoRows)
	}
	return nil
}

// TouchLogin records a successful password login.
func (s *Store) TouchLogin(ctx context.Context, id uuid.UUID) error {
	_, err := s.pool.Exec(ctx, `UPDATE users SET last_login = now() WHERE id = $1`, id)
	return mapErr("recording a login", err)
}

// TokenHash is how an API token is stored: SHA-256 of its text.
func TokenHash(key string) []byte {
	h := sha256.Sum256([]byte(key))
	return h[:]
}

// CreateToken makes a new API token for a user and returns its key, which is stored only
// as a hash: this is the one time it can be shown.
func (s *Store) CreateToken(ctx context.Context, userID uuid.UUID) (string, error) {
	key, err := insertToken(ctx, s.pool, userID)
	return key, mapErr("creating a token", err)
}

type execer interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
}

// insertToken stores a new token's hash. Keys are 40 hex digits (160 random bits), the
// shape of Utilitarian's tokens.
func insertToken(ctx context.Context, db execer, userID uuid.UUID) (string, error) {
	var b [20]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	key := hex.EncodeToString(b[:])
	_, err := db.Exec(ctx, `INSERT INTO api_tokens (user_id, key_hash, key_prefix) VALUES ($1, $2, $3)`,
		userID, TokenHash(key), key[:8])
	if err != nil {
		return "", err
	}
	return key, nil
}

// UserByToken returns the active user that owns an API token.
func (s *Store) UserByToken(ctx context.Context, key string) (User, error) {
	rows, _ := s.pool.Query(ctx, `SELECT u.id, u.username, u.email, u.first_name, u.last_name, u.password_hash,
		u.is_staff, u.is_active, u.last_login, u.created_at, u.updated_at
		FROM api_tokens t JOIN users u ON u.id = t.user_id WHERE t.key_hash = $1 AND u.is_active`, TokenHash(key))
	u, err := pgx.CollectExactlyOneRow(rows, scanUser)
	return u, mapErr("authenticating a token", err)
}

// Bootstrap creates the first staff user with a token, only when no user exists yet; the
// check and the insert hold an advisory lock so that two replicas starting together make
// one. It returns created=false when users already existed.
func (s *Store) Bootstrap(ctx context.Context, username, passwordHash string) (u User, token string, created bool, err error) {
	err = s.inTx(ctx, "creating the first user", func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(0x616d7262)`); err != nil {
			return err
		}
		var n int
		if err := tx.QueryRow(ctx, `SELECT count(*) FROM users`).Scan(&n); err != nil {
			return err
		}
		if n > 0 {
			return nil
		}
		rows, _ := tx.Query(ctx, `INSERT INTO users (username, password_hash, is_staff) VALUES ($1, $2, true) RETURNING `+userCols,
			username, passwordHash)
		var err error
		if u, err = pgx.CollectExactlyOneRow(rows, scanUser); err != nil {
			return err
		}
		if token, err = insertToken(ctx, tx, u.ID); err != nil {
			return err
		}
		created = true
		return nil
	})
	if err != nil {
		return User{}, "", false, err
	}
	return u, token, created, nil
}
