package store

import (
	"context"
	"fmt"
	"sort"
	"strings"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// Filter holds a list's exact-match and range filters, by the contract's parameter
// names, with values already parsed by the caller (string, uuid.UUID, time.Time, ...).
type Filter map[string]any

// querier is a pool or a transaction.
type querier interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// entity describes an organization-owned table for the shared list, get and delete
// queries, so that each resource writes only its own columns and writes.
type entity[T any] struct {
	what  string // "a SIM card", for error messages
	from  string // FROM clause; the main table is aliased x
	cols  string // select list, matching scan
	scan  func(pgx.CollectableRow) (T, error)
	order string // a total order, so paging never skips or repeats a row
	// filters maps a filter name to its SQL condition, with %s for the placeholder.
	filters map[string]string
	// org is the organization column that scopes rows: x.organization_id when empty; a
	// table without one names its owner's (security keys: their device's).
	org string
}

// where builds "WHERE scope AND filters" with arguments starting at $1.
func (e entity[T]) where(sc Scope, f Filter) (string, []any) {
	all, orgs := sc.args()
	org := e.org
	if org == "" {
		org = "x.organization_id"
	}
	conds := []string{"($1 OR " + org + " = ANY($2))"}
	args := []any{all, orgs}
	names := make([]string, 0, len(f))
	for name := range f {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		cond, ok := e.filters[name]
		if !ok {
			continue // the API only passes declared filters
		}
		args = append(args, f[name])
		conds = append(conds, fmt.Sprintf(cond, fmt.Sprintf("$%d", len(args))))
	}
	return " WHERE " + strings.Join(conds, " AND "), args
}

func (e entity[T]) list(ctx context.Context, q querier, sc Scope, f Filter, p Page) ([]T, int, error) {
	where, args := e.where(sc, f)
	var n int
	if err := q.QueryRow(ctx, "SELECT count(*) FROM "+e.from+where, args...).Scan(&n); err != nil {
		return nil, 0, mapErr("counting "+e.what+"s", err)
	}
	args = append(args, p.Limit, p.Offset)
	rows, err := q.Query(ctx, fmt.Sprintf("SELECT %s FROM %s%s ORDER BY %s LIMIT $%d OFFSET $%d",
		e.cols, e.from, where, e.order, len(args)-1, len(args)), args...)
	if err != nil {
		return nil, 0, mapErr("listing "+e.what+"s", err)
	}
	list, err := pgx.CollectRows(rows, e.scan)
	if err != nil {
		return nil, 0, mapErr("listing "+e.what+"s", err)
	}
	return list, n, nil
}

// get reads one row by id (a UUID, or an integer for events).
func (e entity[T]) get(ctx context.Context, q querier, sc Scope, id any) (T, error) {
	where, args := e.where(sc, nil)
	args = append(args, id)
	rows, _ := q.Query(ctx, fmt.Sprintf("SELECT %s FROM %s%s AND x.id = $%d", e.cols, e.from, where, len(args)), args...)
	v, err := pgx.CollectExactlyOneRow(rows, e.scan)
	return v, mapErr("reading "+e.what, err)
}

// remove deletes one row in scope from table; foreign keys that restrict the delete
// become a ConflictError naming what still refers to the row.
func remove(ctx context.Context, q querier, table, what string, sc Scope, id any) error {
	return removeBy(ctx, q, table, "x.organization_id", what, sc, id)
}

// removeBy is remove for a table whose rows are scoped by org, an SQL expression of
// the row x (a table without an organization names its owner's).
func removeBy(ctx context.Context, q querier, table, org, what string, sc Scope, id any) error {
	all, orgs := sc.args()
	tag, err := q.Exec(ctx, "DELETE FROM "+table+" x WHERE x.id = $1 AND ($2 OR "+org+" = ANY($3))", id, all, orgs)
	if err != nil {
		return mapErr("deleting "+what, err)
	}
	if tag.RowsAffected() == 0 {
		return mapErr("deleting "+what, pgx.ErrNoRows)
	}
	return nil
}

// updateScoped runs update, an "UPDATE table x SET ..." of the row $1 whose values are
// args from $2 on, on that row only if it is in scope; no such row is pgx.ErrNoRows.
func updateScoped(ctx context.Context, q querier, sc Scope, update string, id uuid.UUID, args ...any) error {
	all, orgs := sc.args()
	n := len(args) + 2 // $1 is the id, then args
	args = append(append([]any{id}, args...), all, orgs)
	tag, err := q.Exec(ctx, fmt.Sprintf("%s WHERE x.id = $1 AND ($%d OR x.organization_id = ANY($%d))", update, n, n+1), args...)
	if err != nil {
		return err
	}
	if tag.RowsAffected() == 0 {
		return pgx.ErrNoRows
	}
	return nil
}

// ref is a reference from a field of a written row to rows of another table.
type ref struct {
	field string
	table string
	ids   []uuid.UUID
}

// checkRefs checks that every referenced row exists and belongs to the same organization
// as the row being written (org nil: rows without an organization). A row of another
// organization is reported exactly like a missing one, so ids do not leak across
// organizations. The rows found are locked against deletion until the transaction ends,
// so that a reference without a foreign key (events to devices) cannot be left dangling.
func checkRefs(ctx context.Context, q querier, org *uuid.UUID, refs ...ref) error {
	for _, r := range refs {
		if len(r.ids) == 0 {
			continue
		}
		rows, err := q.Query(ctx, "SELECT id FROM "+r.table+" WHERE id = ANY($1) AND organization_id IS NOT DISTINCT FROM $2 FOR KEY SHARE", r.ids, org)
		if err != nil {
			return mapErr("checking "+r.field, err)
		}
		found, err := pgx.CollectRows(rows, pgx.RowTo[uuid.UUID])
		if err != nil {
			return mapErr("checking "+r.field, err)
		}
		ok := make(map[uuid.UUID]bool, len(found))
		for _, id := range found {
			ok[id] = true
		}
		for _, id := range r.ids {
			if !ok[id] {
				return noSuchRow(r.field, id)
			}
		}
	}
	return nil
}

// noSuchRow is the error for a field that names a row that does not exist, or that the
// writer may not refer to (said the same way, so ids do not leak across organizations).
func noSuchRow(field string, id uuid.UUID) *FieldError {
	return &FieldError{Field: field, Msg: fmt.Sprintf("Invalid pk \"%s\" - object does not exist.", id)}
}

// setLinks replaces the rows of a link table (many-to-many) for one owner.
func setLinks(ctx context.Context, q querier, table, ownerCol, otherCol string, owner uuid.UUID, others []uuid.UUID) error {
	if _, err := q.Exec(ctx, "DELETE FROM "+table+" WHERE "+ownerCol+" = $1", owner); err != nil {
		return err
	}
	if len(others) == 0 {
		return nil
	}
	_, err := q.Exec(ctx, "INSERT INTO "+table+" ("+ownerCol+", "+otherCol+") SELECT $1, unnest($2::uuid[]) ON CONFLICT DO NOTHING", owner, others)
	return err
}

// idList is the SQL of a correlated array of linked ids, ordered for stable output.
func idList(table, ownerCol, otherCol string) string {
	return idListOf("x.id", table, ownerCol, otherCol)
}

// idListOf is idList for an owner other than the main row x (owner: its id column).
func idListOf(owner, table, ownerCol, otherCol string) string {
	return "coalesce((SELECT array_agg(l." + otherCol + " ORDER BY l." + otherCol + ") FROM " + table + " l WHERE l." + ownerCol + " = " + owner + "), '{}')"
}

// orgOf is the organization pointer as a query argument (NULL for nil).
func orgOf(o *uuid.UUID) any {
	if o == nil {
		return nil
	}
	return *o
}

// inTx runs fn in a transaction and maps its error: the one way the store uses a
// transaction (what fn reads back, it sets in a variable of the caller's). An error of
// the database or the connection becomes the package's sentinels (mapErr); one that fn
// made itself (a FieldError, a ConflictError, a sentinel it wrapped with what it was
// doing) is returned as it is.
func (s *Store) inTx(ctx context.Context, op string, fn func(pgx.Tx) error) error {
	return s.inTxWith(ctx, op, pgx.TxOptions{}, fn)
}

// inTxWith is inTx with other transaction options (isolation, read only).
func (s *Store) inTxWith(ctx context.Context, op string, opts pgx.TxOptions, fn func(pgx.Tx) error) error {
	err := pgx.BeginTxFunc(ctx, s.pool, opts, fn)
	if fromDatabase(err) {
		return mapErr(op, err)
	}
	return err
}
