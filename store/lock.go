package store

import (
	"context"

	"github.com/google/uuid"
)

// lockOrg locks one row in scope of an organization-owned table for update and returns its
// organization, so that an update can tell whether the row changes organization. A row
// out of scope is pgx.ErrNoRows.
func lockOrg(ctx context.Context, q querier, table string, sc Scope, id uuid.UUID) (*uuid.UUID, error) {
	all, orgs := sc.args()
	var org *uuid.UUID
	err := q.QueryRow(ctx, "SELECT x.organization_id FROM "+table+" x WHERE x.id = $1 AND ($2 OR x.organization_id = ANY($3)) FOR UPDATE",
		id, all, orgs).Scan(&org)
	return org, err
}

// sameOrg reports whether two organization references are the same (both nil counts).
func sameOrg(a, b *uuid.UUID) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	return *a == *b
}
