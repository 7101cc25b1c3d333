package store

import (
	"context"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
)

// Organization groups the entities of one customer.
type Organization struct {
	ID        uuid.UUID   `json:"id"`
	Name      string      `json:"name"`
	IsActive  bool        `json:"is_active"`
	Members   []uuid.UUID `json:"members"`
	CreatedAt time.Time   `json:"created_at"`
	UpdatedAt time.Time   `json:"updated_at"`
}

// OrganizationInput is what a create or update writes.
type OrganizationInput struct {
	Name     string
	IsActive bool
}

const orgCols = `o.id, o.name, o.is_active,
	coalesce((SELECT array_agg(m.user_id ORDER BY m.id) FROM memberships m WHERE m.organization_id = o.id), '{}'),
	o.created_at, o.updated_at`

func scanOrg(row pgx.CollectableRow) (Organization, error) {
	var o Organization
	err := row.Scan(&o.ID, &o.Name, &o.IsActive, &o.Members, &o.CreatedAt, &o.UpdatedAt)
	return o, err
}

// ListOrganizations returns one page of the organizations in scope, oldest first, and
// how many there are in all.
func (s *Store) ListOrganizations(ctx context.Context, sc Scope, p Page) ([]Organization, int, error) {
	all, orgs := sc.args()
	var n int
	if err := s.pool.QueryRow(ctx, `SELECT count(*) FROM organizations o WHERE ($1 OR o.id = ANY($2))`, all, orgs).Scan(&n); err != nil {
		return nil, 0, mapErr("counting organizations", err)
	}
	rows, err := s.pool.Query(ctx, `SELECT `+orgCols+` FROM organizations o WHERE ($1 OR o.id = ANY($2))
		ORDER BY o.created_at, o.id LIMIT $3 OFFSET $4`, all, orgs, p.Limit, p.Offset)
	if err != nil {
		return nil, 0, mapErr("listing organizations", err)
	}
	list, err := pgx.CollectRows(rows, scanOrg)
	if err != nil {
		return nil, 0, mapErr("listing organizations", err)
	}
	return list, n, nil
}

// GetOrganization returns one organization in scope.
func (s *Store) GetOrganization(ctx context.Context, sc Scope, id uuid.UUID) (Organization, error) {
	all, orgs := sc.args()
	rows, _ := s.pool.Query(ctx, `SELECT `+orgCols+` FROM organizations o WHERE o.id = $1 AND ($2 OR o.id = ANY($3))`, id, all, orgs)
	o, err := pgx.CollectExactlyOneRow(rows, scanOrg)
	return o, mapErr("reading an organization", err)
}

// CreateOrganization adds an organization.
func (s *Store) CreateOrganization(ctx context.Context, in OrganizationInput) (Organization, error) {
	rows, _ := s.pool.Query(ctx, `WITH o AS (INSERT INTO organizations (name, is_active) VALUES ($1, $2) RETURNING *)
		SELECT o.id, o.name, o.is_active, '{}'::uuid[], o.created_at, o.updated_at FROM o`, in.Name, in.IsActive)
	o, err := pgx.CollectExactlyOneRow(rows, scanOrg)
	return o, mapErr("creating an organization", err)
}

// UpdateOrganization replaces an organization's fields.
func (s *Store) UpdateOrganization(ctx context.Context, sc Scope, id uuid.UUID, in OrganizationInput) (Organization, error) {
	all, orgs := sc.args()
	tag, err := s.pool.Exec(ctx, `UPDATE organizations SET name = $2, is_active = $3, updated_at = now()
		WHERE id = $1 AND ($4 OR id = ANY($5))`, id, in.Name, in.IsActive, all, orgs)
	if err != nil {
		return Organization{}, mapErr("updating an organization", err)
	}
	if tag.RowsAffected() == 0 {
		return Organization{}, mapErr("updating an organization", pgx.ErrNoRows)
	}
	return s.GetOrganization(ctx, sc, id)
}

// DeleteOrganization removes an organization and its memberships. It refuses (ErrConflict)
// while devices, series or other entities still belong to it: those are deleted first, on
// purpose, so that no meter data disappears with one call.
func (s *Store) DeleteOrganization(ctx context.Context, sc Scope, id uuid.UUID) error {
	all, orgs := sc.args()
	tag, err := s.pool.Exec(ctx, `DELETE FROM organizations WHERE id = $1 AND ($2 OR id = ANY($3))`, id, all, orgs)
	if err != nil {
		return mapErr("deleting an organization", err)
	}
	if tag.RowsAffected() == 0 {
		return mapErr("deleting an organization", pgx.ErrNoRows)
	}
	return nil
}

// Membership says that a user belongs to an organization, with a role: "viewer" (read
// only) or "editor" (may write inside the organization).
type Membership struct {
	ID             int64     `json:"id"`
	OrganizationID uuid.UUID `json:"organization"`
	UserID         uuid.UUID `json:"user"`
	Role           string    `json:"role"`
	CreatedAt      time.Time `json:"created_at"`
	UpdatedAt      time.Time `json:"updated_at"`
}

// MembershipInput is what a create or update writes.
type MembershipInput struct {
	OrganizationID uuid.UUID
	UserID         uuid.UUID
	Role           string
}

const memberCols = `id, organization_id, user_id, role, created_at, updated_at`

func scanMember(row pgx.CollectableRow) (Membership, error) {
	var m Membership
	err := row.Scan(&m.ID, &m.OrganizationID, &m.UserID, &m.Role, &m.CreatedAt, &m.UpdatedAt)
	return m, err
}

// ListMemberships returns one page of the memberships in scope, oldest first.
func (s *Store) ListMemberships(ctx context.Context, sc Scope, p Page) ([]Membership, int, error) {
	all, orgs := sc.args()
	var n int
	if err := s.pool.QueryRow(ctx, `SELECT count(*) FROM memberships WHERE ($1 OR organization_id = ANY($2))`, all, orgs).Scan(&n); err != nil {
		return nil, 0, mapErr("counting memberships", err)
	}
	rows, err := s.pool.Query(ctx, `SELECT `+memberCols+` FROM memberships WHERE ($1 OR organization_id = ANY($2))
		ORDER BY id LIMIT $3 OFFSET $4`, all, orgs, p.Limit, p.Offset)
	if err != nil {
		return nil, 0, mapErr("listing memberships", err)
	}
	list, err := pgx.CollectRows(rows, scanMember)
	if err != nil {
		return nil, 0, mapErr("listing memberships", err)
	}
	return list, n, nil
}

// GetMembership returns one membership in scope.
func (s *Store) GetMembership(ctx context.Context, sc Scope, id int64) (Membership, error) {
	all, orgs := sc.args()
	rows, _ := s.pool.Query(ctx, `SELECT `+memberCols+` FROM memberships WHERE id = $1 AND ($2 OR organization_id = ANY($3))`, id, all, orgs)
	m, err := pgx.CollectExactlyOneRow(rows, scanMember)
	return m, mapErr("reading a membership", err)
}

// CreateMembership adds a user to an organization.
func (s *Store) CreateMembership(ctx context.Context, in MembershipInput) (Membership, error) {
	rows, _ := s.pool.Query(ctx, `INSERT INTO memberships (organization_id, user_id, role) VALUES ($1, $2, $3)
		RETURNING `+memberCols, in.OrganizationID, in.UserID, in.Role)
	m, err := pgx.CollectExactlyOneRow(rows, scanMember)
	return m, mapErr("creating a membership", err)
}

// UpdateMembership replaces a membership's fields.
func (s *Store) UpdateMembership(ctx context.Context, sc Scope, id int64, in MembershipInput) (Membership, error) {
	all, orgs := sc.args()
	rows, _ := s.pool.Query(ctx, `UPDATE memberships SET organization_id = $2, user_id = $3, role = $4, updated_at = now()
		WHERE id = $1 AND ($5 OR organization_id = ANY($6)) RETURNING `+memberCols, id, in.OrganizationID, in.UserID, in.Role, all, orgs)
	m, err := pgx.CollectExactlyOneRow(rows, scanMember)
	return m, mapErr("updating a membership", err)
}

// DeleteMembership removes a membership.
func (s *Store) DeleteMembership(ctx context.Context, sc Scope, id int64) error {
	all, orgs := sc.args()
	tag, err := s.pool.Exec(ctx, `DELETE FROM memberships WHERE id = $1 AND ($2 OR organization_id = ANY($3))`, id, all, orgs)
	if err != nil {
		return mapErr("deleting a membership", err)
	}
	if tag.RowsAffected() == 0 {
		return mapErr("deleting a membership", pgx.ErrNoRows)
	}
	return nil
}

// UserMemberships returns a user's memberships, oldest first: the first is the
// organization a JWT is issued for when none is asked for.
func (s *Store) UserMemberships(ctx context.Context, userID uuid.UUID) ([]Membership, error) {
	rows, err := s.pool.Query(ctx, `SELECT m.id, m.organization_id, m.user_id, m.role, m.created_at, m.updated_at
		FROM memberships m JOIN organizations o ON o.id = m.organization_id
		WHERE m.user_id = $1 AND o.is_active ORDER BY m.id`, userID)
	if err != nil {
		return nil, mapErr("reading a user's memberships", err)
	}
	list, err := pgx.CollectRows(rows, scanMember)
	return list, mapErr("reading a user's memberships", err)
}
