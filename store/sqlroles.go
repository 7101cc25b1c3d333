package store

import (
	"context"
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// SQLRole is a PostgreSQL login role bound to one organization (sql_roles).
type SQLRole struct {
	Name           string
	OrganizationID uuid.UUID
	CreatedAt      time.Time
	// ConnLimit is the role's CONNECTION LIMIT; 0 when the role is missing from the
	// server (dropped behind amrd's back; revoking removes the leftover row).
	ConnLimit int
	// StatementTimeout is the role's statement_timeout as PostgreSQL shows it ("30s").
	StatementTimeout string
}

// SQLRoleInput is what CreateSQLRole makes. Zero ConnLimit and StatementTimeout take
// the defaults.
type SQLRoleInput struct {
	Name             string
	OrganizationID   uuid.UUID
	Password         string
	ConnLimit        int
	StatementTimeout time.Duration
}

// Defaults of a SQL role. A Grafana data source keeps a pool of its own, 2 idle
// connections by default and "max open" unlimited; 10 leaves room for a few dashboards
// refreshing at once and one person with psql. A panel query that runs 30 s is a missing
// time filter rather than a chart: it stops before it loads the server for long.
const (
	DefaultSQLRoleConnLimit        = 10
	DefaultSQLRoleStatementTimeout = 30 * time.Second
)

// sqlRoleNameRe is the name rule: what needs no quoting in psql or Grafana (lower case),
// within PostgreSQL's 63-byte identifiers (NAMEDATALEN 64 minus the terminator).
var sqlRoleNameRe = regexp.MustCompile(`^[a-z0-9_]{1,63}$`)

// reservedRoleNames are refused by CREATE ROLE or name the session's role in GRANT and
// ALTER ROLE, where a role of that name would be confusing at best.
var reservedRoleNames = map[string]bool{"public": true, "none": true, "current_user": true, "current_role": true, "session_user": true}

func validSQLRoleName(name string) error {
	switch {
	case !sqlRoleNameRe.MatchString(name):
		return &FieldError{Field: "name", Msg: fmt.Sprintf("%q is not a valid SQL role name: use 1 to 63 lower-case letters, digits and underscores", name)}
	case strings.HasPrefix(name, "pg_"):
		return &FieldError{Field: "name", Msg: fmt.Sprintf("%q is not a valid SQL role name: names starting with pg_ are PostgreSQL's", name)}
	case reservedRoleNames[name]:
		return &FieldError{Field: "name", Msg: fmt.Sprintf("%q is reserved by PostgreSQL", name)}
	}
	return nil
}

// minSQLRolePassword: amrd sql-role generates 32 characters (24 random bytes); a person
// choosing one for a role that any host reaching the server may try should use 16 too.
const minSQLRolePassword = 16

// validSQLRolePassword keeps passwords to printable ASCII, where SASLprep (which SCRAM
// applies to a password, see scramVerifier) changes nothing.
func validSQLRolePassword(pw string) error {
	if len(pw) < minSQLRolePassword || len(pw) > 1000 {
		return &FieldError{Field: "password", Msg: fmt.Sprintf("must be %d to 1000 characters long", minSQLRolePassword)}
	}
	for i := 0; i < len(pw); i++ {
		if pw[i] < 0x21 || pw[i] > 0x7e {
			return &FieldError{Field: "password", Msg: "must be printable ASCII without spaces"}
		}
	}
	return nil
}

// pgTimeout writes a duration as PostgreSQL shows a time setting: in the largest unit
// that divides it exactly (SHOW statement_timeout gives the same text back).
func pgTimeout(d time.Duration) string {
	ms := d.Milliseconds()
	for _, u := range []struct {
		ms   int64
		unit string
	}{{86_400_000, "d"}, {3_600_000, "h"}, {60_000, "min"}, {1000, "s"}} {
		if ms%u.ms == 0 {
			return fmt.Sprintf("%d%s", ms/u.ms, u.unit)
		}
	}
	return fmt.Sprintf("%dms", ms)
}

// maxStatementTimeout is the largest statement_timeout PostgreSQL takes: INT_MAX ms
// (2^31 - 1 ms, about 24.8 days).
const maxStatementTimeout = (1<<31 - 1) * time.Millisecond

// scramVerifier returns what PostgreSQL stores for a SCRAM-SHA-256 password
// (scram_build_secret in its source), computed here so that the password itself never
// reaches the server: a CREATE ROLE with a clear-text password would be written to the
// server's log by log_statement = 'ddl' or 'all', and to pg_stat_statements. A password
// of printable ASCII is its own SASLprep. 4096 iterations and 16 bytes of salt are
// PostgreSQL's defaults (scram_iterations, SCRAM_DEFAULT_SALT_LEN).
func scramVerifier(password string) (string, error) {
	const iterations = 4096
	salt := make([]byte, 16)
	if _, err := rand.Read(salt); err != nil {
		return "", err
	}
	salted, err := pbkdf2.Key(sha256.New, password, salt, iterations, sha256.Size)
	if err != nil {
		return "", err
	}
	mac := func(key []byte, msg string) []byte {
		h := hmac.New(sha256.New, key)
		h.Write([]byte(msg))
		return h.Sum(nil)
	}
	stored := sha256.Sum256(mac(salted, "Client Key"))
	server := mac(salted, "Server Key")
	b64 := base64.StdEncoding.EncodeToString
	return fmt.Sprintf("SCRAM-SHA-256$%d:%s$%s:%s", iterations, b64(salt), b64(stored[:]), b64(server)), nil
}

// ReadViews returns the qualified names of every view a SQL role may read: all views of
// schema amrd_read and the public views whose names start with metering_ or
// organizations_ (Utilitarian's Django tables, which read amrd_read's views).
func (s *Store) ReadViews(ctx context.Context) ([]string, error) {
	return readViews(ctx, s.pool)
}

func readViews(ctx context.Context, q querier) ([]string, error) {
	rows, err := q.Query(ctx, `SELECT format('%I.%I', schemaname, viewname) FROM pg_views
		WHERE schemaname = 'amrd_read'
		   OR (schemaname = 'public' AND (viewname LIKE 'metering\_%' OR viewname LIKE 'organizations\_%'))
		ORDER BY schemaname, viewname`)
	if err != nil {
		return nil, mapErr("listing the read views", err)
	}
	views, err := pgx.CollectRows(rows, pgx.RowTo[string])
	return views, mapErr("listing the read views", err)
}

const sqlRoleCols = `s.role_name, s.organization_id, s.created_at, coalesce(r.rolconnlimit, 0),
	coalesce((SELECT substr(c, length('statement_timeout=') + 1) FROM unnest(r.rolconfig) c
		WHERE c LIKE 'statement\_timeout=%' LIMIT 1), '')
	FROM sql_roles s LEFT JOIN pg_roles r ON r.rolname = s.role_name`

func scanSQLRole(row pgx.CollectableRow) (SQLRole, error) {
	var r SQLRole
	err := row.Scan(&r.Name, &r.OrganizationID, &r.CreatedAt, &r.ConnLimit, &r.StatementTimeout)
	return r, err
}

// ListSQLRoles returns every SQL role of this database, oldest first.
func (s *Store) ListSQLRoles(ctx context.Context) ([]SQLRole, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+sqlRoleCols+` ORDER BY s.created_at, s.role_name`)
	if err != nil {
		return nil, mapErr("listing SQL roles", err)
	}
	list, err := pgx.CollectRows(rows, scanSQLRole)
	return list, mapErr("listing SQL roles", err)
}

// checkRoleAdmin says, in words, when the database user cannot create or drop roles.
func checkRoleAdmin(ctx context.Context, tx pgx.Tx, op string) (user string, err error) {
	var super, createRole bool
	err = tx.QueryRow(ctx, `SELECT rolname, rolsuper, rolcreaterole FROM pg_roles WHERE rolname = current_user`).
		Scan(&user, &super, &createRole)
	if err != nil {
		return "", mapErr(op, err)
	}
	if !super && !createRole {
		return user, fmt.Errorf("%s: the database user %s lacks CREATEROLE: a superuser can give it with ALTER ROLE %s CREATEROLE, or run amrd sql-role with a DATABASE_URL of a user that has it",
			op, user, pgx.Identifier{user}.Sanitize())
	}
	return user, nil
}

// roleErr maps an error of a role's DDL: a missing right is said in words (PostgreSQL's
// message names the object, never a password); anything else goes through mapErr.
func roleErr(op, user string, err error) error {
	var pe *pgconn.PgError
	if errors.As(err, &pe) && pe.Code == "42501" { // insufficient_privilege
		return fmt.Errorf("%s: the database user %s lacks a right it needs: %s", op, user, pe.Message)
	}
	return mapErr(op, err)
}

// formatSQL builds one DDL statement server side with format(): DDL takes no bind
// parameters, and format's %I and %L quote identifiers and literals as the server
// parses them.
func formatSQL(ctx context.Context, tx pgx.Tx, format string, args ...string) (string, error) {
	params := []any{format}
	var b strings.Builder
	b.WriteString("SELECT format($1::text")
	for i, a := range args {
		fmt.Fprintf(&b, ", $%d::text", i+2)
		params = append(params, a)
	}
	b.WriteString(")")
	var sql string
	err := tx.QueryRow(ctx, b.String(), params...).Scan(&sql)
	return sql, err
}

// CreateSQLRole creates a PostgreSQL login role that can read only the read views
// (ReadViews), sees only the rows of in.OrganizationID there (the views filter by
// sql_roles), cannot write, and has a statement timeout and a connection limit of its
// own. Everything happens in one transaction (CREATE ROLE is transactional), so that a
// failure leaves nothing behind. The password reaches the server only as a SCRAM
// verifier.
func (s *Store) CreateSQLRole(ctx context.Context, in SQLRoleInput) (SQLRole, error) {
	op := "creating SQL role " + in.Name
	if err := validSQLRoleName(in.Name); err != nil {
		return SQLRole{}, err
	}
	if err := validSQLRolePassword(in.Password); err != nil {
		return SQLRole{}, err
	}
	if in.ConnLimit == 0 {
		in.ConnLimit = DefaultSQLRoleConnLimit
	}
	if in.ConnLimit < 1 {
		return SQLRole{}, &FieldError{Field: "connection_limit", Msg: "must be at least 1"}
	}
	if in.StatementTimeout == 0 {
		in.StatementTimeout = DefaultSQLRoleStatementTimeout
	}
	if in.StatementTimeout < time.Millisecond || in.StatementTimeout > maxStatementTimeout || in.StatementTimeout%time.Millisecond != 0 {
		return SQLRole{}, &FieldError{Field: "statement_timeout", Msg: "must be whole milliseconds from 1ms to 596h (PostgreSQL's largest)"}
	}
	verifier, err := scramVerifier(in.Password)
	if err != nil {
		return SQLRole{}, fmt.Errorf("%s: hashing the password: %w", op, err)
	}

	var role SQLRole
	err = s.inTx(ctx, op, func(tx pgx.Tx) error {
		user, err := checkRoleAdmin(ctx, tx, op)
		if err != nil {
			return err
		}
		var orgExists, taken bool
		if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM organizations WHERE id = $1),
			EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $2)`, in.OrganizationID, in.Name).Scan(&orgExists, &taken); err != nil {
			return roleErr(op, user, err)
		}
		if !orgExists {
			return &FieldError{Field: "organization", Msg: fmt.Sprintf("no organization has the id %s", in.OrganizationID)}
		}
		if taken {
			return takenRoleName(in.Name)
		}
		views, err := readViews(ctx, tx)
		if err != nil {
			return err
		}
		if len(views) == 0 {
			return fmt.Errorf("%s: the database has no read views: run amrd migrate first", op)
		}

		var db string
		if err := tx.QueryRow(ctx, `SELECT current_database()`).Scan(&db); err != nil {
			return mapErr(op, err)
		}
		type stmt struct {
			format string
			args   []string
		}
		stmts := []stmt{
			// NOINHERIT: should someone grant the role another one later, it still does not
			// get that role's rights without SET ROLE.
			{`CREATE ROLE %I LOGIN PASSWORD %L CONNECTION LIMIT %s NOINHERIT NOCREATEDB NOCREATEROLE NOSUPERUSER NOREPLICATION NOBYPASSRLS`,
				[]string{in.Name, verifier, fmt.Sprint(in.ConnLimit)}},
			{`ALTER ROLE %I SET statement_timeout = %L`, []string{in.Name, pgTimeout(in.StatementTimeout)}},
			// Unqualified names resolve to the Utilitarian views first, as the dashboards
			// written for Utilitarian expect, then to amrd's own.
			{`ALTER ROLE %I SET search_path = public, amrd_read`, []string{in.Name}},
			// A second guard besides the missing write privileges; a session can turn it off,
			// which gives it nothing it may write.
			{`ALTER ROLE %I SET default_transaction_read_only = on`, []string{in.Name}},
			// JIT compiles a dashboard's small query for longer than it runs: the
			// real-time views look costly to the planner (schema/0008).
			{`ALTER ROLE %I SET jit = off`, []string{in.Name}},
			{`GRANT CONNECT ON DATABASE %I TO %I`, []string{db, in.Name}},
			{`GRANT USAGE ON SCHEMA amrd_read TO %I`, []string{in.Name}},
			// The views call visible_orgs, and PostgreSQL checks EXECUTE on a function a
			// view calls against the querying role, not the view's owner; the migration
			// revoked it from PUBLIC. The function answers only for roles the session's
			// user belongs to, so a role learns only its own organization from it.
			{`GRANT EXECUTE ON FUNCTION amrd_read.visible_orgs(name) TO %I`, []string{in.Name}},
		}
		for _, v := range views {
			// %s: v is quoted already (readViews formats it with %I).
			stmts = append(stmts, stmt{`GRANT SELECT ON %s TO %I`, []string{v, in.Name}})
		}
		for _, st := range stmts {
			sql, err := formatSQL(ctx, tx, st.format, st.args...)
			if err != nil {
				return mapErr(op, err)
			}
			if _, err := tx.Exec(ctx, sql); err != nil {
				var pe *pgconn.PgError
				// Made meanwhile: duplicate_object, or the unique index when the other
				// transaction was still open.
				if errors.As(err, &pe) && (pe.Code == "42710" || pe.Code == "23505" && pe.ConstraintName == "pg_authid_rolname_index") {
					return takenRoleName(in.Name)
				}
				return roleErr(op, user, err)
			}
		}
		// A GRANT by a user who holds some right on an object but not its grant option
		// only warns ("no privileges were granted"): check that every grant took.
		var missing []string
		rows, err := tx.Query(ctx, `SELECT v FROM unnest($2::text[]) v WHERE NOT has_table_privilege($1, v, 'SELECT')
			UNION ALL SELECT 'EXECUTE on amrd_read.visible_orgs(name)' WHERE NOT has_function_privilege($1, 'amrd_read.visible_orgs(name)', 'EXECUTE')
			UNION ALL SELECT 'USAGE on schema amrd_read' WHERE NOT has_schema_privilege($1, 'amrd_read', 'USAGE')
			UNION ALL SELECT 'CONNECT on database ' || current_database() WHERE NOT has_database_privilege($1, current_database(), 'CONNECT')`,
			in.Name, views)
		if err == nil {
			missing, err = pgx.CollectRows(rows, pgx.RowTo[string])
		}
		if err != nil {
			return mapErr(op, err)
		}
		if len(missing) > 0 {
			return fmt.Errorf("%s: the database user %s may not grant %s (it neither owns them nor holds the grant option): run amrd sql-role as the user that ran amrd migrate",
				op, user, strings.Join(missing, ", "))
		}
		if _, err := tx.Exec(ctx, `INSERT INTO sql_roles (role_name, organization_id) VALUES ($1, $2)`, in.Name, in.OrganizationID); err != nil {
			return roleErr(op, user, err)
		}
		rows, _ = tx.Query(ctx, `SELECT `+sqlRoleCols+` WHERE s.role_name = $1`, in.Name)
		role, err = pgx.CollectExactlyOneRow(rows, scanSQLRole)
		return mapErr(op, err)
	})
	if err != nil {
		return SQLRole{}, err
	}
	return role, nil
}

func takenRoleName(name string) error {
	return &FieldError{Field: "name", Msg: fmt.Sprintf("a PostgreSQL role named %s exists already (role names are shared by every database of the server): choose another name", name)}
}

// RevokeSQLRole drops a SQL role made by CreateSQLRole: its rights in this database, the
// role and its sql_roles row, in one transaction. It refuses a name that is not in
// sql_roles, so that it never drops a role amrd did not make. Sessions of the role that
// are open lose every right at once; they are ended where the database user may signal
// them (a superuser, or a member of pg_signal_backend).
func (s *Store) RevokeSQLRole(ctx context.Context, name string) error {
	op := "revoking SQL role " + name
	var pids []int32
	err := s.inTx(ctx, op, func(tx pgx.Tx) error {
		// The row first: it says whether amrd made the role, and its lock makes a second
		// revoke of the same role wait for this one and then find nothing.
		err := tx.QueryRow(ctx, `DELETE FROM sql_roles WHERE role_name = $1 RETURNING true`, name).Scan(new(bool))
		if errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("%s: no SQL role of this database has that name (amrd sql-role list shows them): %w", op, ErrNotFound)
		}
		if err != nil {
			return mapErr(op, err)
		}
		var exists, hasPrivs bool
		if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1)`, name).Scan(&exists); err != nil {
			return mapErr(op, err)
		}
		if !exists {
			return nil // dropped behind amrd's back: only the row was left
		}
		user, err := checkRoleAdmin(ctx, tx, op)
		if err != nil {
			return err
		}
		rows, _ := tx.Query(ctx, `SELECT pid FROM pg_stat_activity WHERE usename = $1`, name)
		if pids, err = pgx.CollectRows(rows, pgx.RowTo[int32]); err != nil {
			return mapErr(op, err)
		}
		if err := tx.QueryRow(ctx, `SELECT pg_has_role(current_user, $1, 'USAGE')`, name).Scan(&hasPrivs); err != nil {
			return mapErr(op, err)
		}
		// DROP OWNED revokes the role's rights here and on shared objects (the
		// database's CONNECT) and drops what it owns here (a session's temporary
		// functions). It needs the privileges of the role, which a user with CREATEROLE
		// does not have over a role it made (PostgreSQL 16 gives it ADMIN without
		// INHERIT): it takes them for the rest of the transaction, where DROP ROLE ends
		// the membership again.
		ddl := [][]string{{`DROP OWNED BY %I`, name}, {`DROP ROLE %I`, name}}
		if !hasPrivs {
			ddl = append([][]string{{`GRANT %I TO %I WITH INHERIT TRUE`, name, user}}, ddl...)
		}
		for _, d := range ddl {
			sql, err := formatSQL(ctx, tx, d[0], d[1:]...)
			if err != nil {
				return mapErr(op, err)
			}
			if _, err := tx.Exec(ctx, sql); err != nil {
				var pe *pgconn.PgError
				if errors.As(err, &pe) && pe.Code == "2BP01" { // dependent_objects_still_exist
					return fmt.Errorf("%s: objects in another database depend on the role (%s): run DROP OWNED BY %s there first",
						op, strings.ReplaceAll(pe.Detail, "\n", "; "), pgx.Identifier{name}.Sanitize())
				}
				return roleErr(op, user, err)
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	// The role is gone and its sessions can read nothing more; end them, so that they do
	// not hold connections. Only pids seen as the role's a moment ago, and only where this
	// user may signal them: a failure here changes nothing of the above.
	for _, pid := range pids {
		var ok bool
		if err := s.pool.QueryRow(ctx, `SELECT pg_terminate_backend(pid) FROM pg_stat_activity
			WHERE pid = $1 AND usesysid IS NOT NULL AND NOT EXISTS (SELECT 1 FROM pg_roles WHERE oid = usesysid)`, pid).Scan(&ok); err != nil &&
			!errors.Is(err, pgx.ErrNoRows) {
			s.log.Warn("ending a session of a revoked SQL role", "component", "store", "role", name, "pid", pid, "err", mapErr(op, err).Error())
		}
	}
	return nil
}
