package store_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	neturl "net/url"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/require"

	"github.com/amrd/amrd/store"
	"github.com/amrd/amrd/store/storetest"
)

// sqlRoleName returns a role name no other test uses: role names are shared by every
// database of the test server, and the tests run in parallel on it.
func sqlRoleName(t *testing.T, prefix string) string {
	t.Helper()
	var b [5]byte
	_, _ = rand.Read(b[:])
	return prefix + "_" + hex.EncodeToString(b[:])
}

const sqlRolePassword = "Test-Passw0rd-0123456789abcdef"

// mkSQLRole creates a SQL role and revokes it when the test ends.
func mkSQLRole(t *testing.T, st *store.Store, in store.SQLRoleInput) store.SQLRole {
	t.Helper()
	if in.Name == "" {
		in.Name = sqlRoleName(t, "amrd_t_role")
	}
	if in.Password == "" {
		in.Password = sqlRolePassword
	}
	r, err := st.CreateSQLRole(testCtx(t), in)
	require.NoError(t, err)
	t.Cleanup(func() {
		err := st.RevokeSQLRole(context.Background(), r.Name)
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			t.Errorf("revoking %s: %v", r.Name, err)
		}
	})
	return r
}

// asUser returns dbURL with another user and password.
func asUser(t *testing.T, dbURL, user, password string) string {
	t.Helper()
	u, err := neturl.Parse(dbURL)
	require.NoError(t, err)
	u.User = neturl.UserPassword(user, password)
	return u.String()
}

// noticeConn is a connection as a SQL role that keeps the NOTICEs it receives.
type noticeConn struct {
	*pgx.Conn
	mu      sync.Mutex
	notices []string
}

func (c *noticeConn) takeNotices() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := c.notices
	c.notices = nil
	return n
}

func connectAs(t *testing.T, dbURL, user, password string) *noticeConn {
	t.Helper()
	cfg, err := pgx.ParseConfig(asUser(t, dbURL, user, password))
	require.NoError(t, err)
	nc := &noticeConn{}
	cfg.OnNotice = func(_ *pgconn.PgConn, n *pgconn.Notice) {
		nc.mu.Lock()
		nc.notices = append(nc.notices, n.Message)
		nc.mu.Unlock()
	}
	nc.Conn, err = pgx.ConnectConfig(testCtx(t), cfg)
	require.NoError(t, err)
	t.Cleanup(func() { _ = nc.Close(context.Background()) })
	return nc
}

func pgCode(err error) string {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Code
	}
	return ""
}

// strings of one column of a query's rows, sorted.
func column(t *testing.T, conn *pgx.Conn, sql string, args ...any) []string {
	t.Helper()
	rows, err := conn.Query(testCtx(t), sql, args...)
	require.NoError(t, err, sql)
	out, err := pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err, sql)
	sort.Strings(out)
	return out
}

// readFixture is one organization with everything a dashboard reads: a series, a device
// config with that series, a device type, a device and three readings.
type readFixture struct {
	org, series, config, typ, device uuid.UUID
	values                           []string // the readings' values, as text
}

// mkReadFixture writes the rows with plain SQL. Every value has digits that no other
// fixture uses (base), so that seeing one tells whose it is.
func mkReadFixture(t *testing.T, dbURL, name, base string) readFixture {
	t.Helper()
	var f readFixture
	var deviceKey, seriesKey int32
	storetest.Query(t, dbURL, `WITH o AS (INSERT INTO organizations (name) VALUES ($1) RETURNING id),
		s AS (INSERT INTO meter_reading_series (organization_id, name, unit) SELECT id, 'energy', 'kWh' FROM o RETURNING id, key),
		c AS (INSERT INTO meter_device_configs (organization_id, name) SELECT id, 'config' FROM o RETURNING id),
		cs AS (INSERT INTO meter_device_config_series (config_id, series_id) SELECT c.id, s.id FROM c, s),
		ty AS (INSERT INTO meter_device_types (organization_id, name, manufacturer, manufacturer_model, config_id)
			SELECT o.id, 'type', 'ACME', 'M1', c.id FROM o, c RETURNING id),
		d AS (INSERT INTO meter_devices (organization_id, name, protocol, type_id)
			SELECT o.id, $1 || '-meter', 'iec62056-21', ty.id FROM o, ty RETURNING id, key)
		SELECT o.id, s.id, s.key, c.id, ty.id, d.id, d.key FROM o, s, c, ty, d`, []any{name},
		&f.org, &f.series, &seriesKey, &f.config, &f.typ, &f.device, &deviceKey)
	ts := time.Now().UTC().Truncate(time.Hour)
	for i := 1; i <= 3; i++ {
		v := fmt.Sprintf("%s%d.%s", base, i, base)
		storetest.Exec(t, dbURL, `INSERT INTO meter_readings (device_key, series_key, ts, value) VALUES ($1, $2, $3, $4::numeric)`,
			deviceKey, seriesKey, ts.Add(-time.Duration(i)*time.Hour), v)
		f.values = append(f.values, v)
	}
	sort.Strings(f.values)
	return f
}

func TestSQLRoleSeesOnlyItsOrganization(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	st, dbURL := storetest.New(t)
	a := mkReadFixture(t, dbURL, "alpha", "111")
	b := mkReadFixture(t, dbURL, "bravo", "999")
	storetest.Exec(t, dbURL, `INSERT INTO staged_meter_readings (meter_device_name, series_name, ts, value) VALUES ('unknown', 'energy', now(), 5)`)

	role := mkSQLRole(t, st, store.SQLRoleInput{OrganizationID: a.org, ConnLimit: 3, StatementTimeout: 45 * time.Second})
	require.Equal(t, a.org, role.OrganizationID)
	require.Equal(t, 3, role.ConnLimit)
	require.Equal(t, "45s", role.StatementTimeout)
	conn := connectAs(t, dbURL, role.Name, sqlRolePassword)
	owner := connect(t, dbURL)

	t.Run("rows", func(t *testing.T) {
		tests := []struct {
			name, sql string
			a, b      []string // what the role sees; what only the owner sees besides
		}{
			{"amrd_read.meter_readings", `SELECT value::text FROM amrd_read.meter_readings`, a.values, b.values},
			{"amrd_read.meter_readings organization", `SELECT DISTINCT organization_id::text FROM amrd_read.meter_readings`,
				[]string{a.org.String()}, []string{b.org.String()}},
			{"amrd_read.meter_devices", `SELECT id::text FROM amrd_read.meter_devices`, []string{a.device.String()}, []string{b.device.String()}},
			{"metering_meterreading", `SELECT value::text FROM public.metering_meterreading`, a.values, b.values},
			{"metering_meterreading devices", `SELECT DISTINCT meter_device_id::text FROM metering_meterreading`,
				[]string{a.device.String()}, []string{b.device.String()}},
			{"metering_meterdevice", `SELECT id::text FROM public.metering_meterdevice`, []string{a.device.String()}, []string{b.device.String()}},
			{"metering_meterdevicetype", `SELECT id::text FROM metering_meterdevicetype`, []string{a.typ.String()}, []string{b.typ.String()}},
			{"metering_meterreadingseries", `SELECT id::text FROM metering_meterreadingseries`, []string{a.series.String()}, []string{b.series.String()}},
			{"metering_meterdeviceconfig", `SELECT id::text FROM metering_meterdeviceconfig`, []string{a.config.String()}, []string{b.config.String()}},
			{"metering_meterdeviceconfig_series", `SELECT meterdeviceconfig_id || ' ' || meterreadingseries_id FROM metering_meterdeviceconfig_series`,
				[]string{a.config.String() + " " + a.series.String()}, []string{b.config.String() + " " + b.series.String()}},
			{"organizations_organization", `SELECT id::text FROM organizations_organization`, []string{a.org.String()}, []string{b.org.String()}},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				require.Equal(t, tc.a, column(t, conn.Conn, tc.sql))
				all := append(slices.Clone(tc.a), tc.b...)
				sort.Strings(all)
				require.Equal(t, all, column(t, owner, tc.sql), "the owner sees every organization")
			})
		}
	})

	t.Run("no staged readings", func(t *testing.T) {
		var n int
		require.NoError(t, conn.QueryRow(ctx, `SELECT count(*) FROM metering_stagedmeterreading`).Scan(&n))
		require.Zero(t, n)
		require.NoError(t, conn.QueryRow(ctx, `SELECT count(*) FROM amrd_read.staged_meter_readings`).Scan(&n))
		require.Zero(t, n)
		require.NoError(t, owner.QueryRow(ctx, `SELECT count(*) FROM metering_stagedmeterreading`).Scan(&n))
		require.Equal(t, 1, n)
	})

	t.Run("every read view with an organization", func(t *testing.T) {
		views, err := st.ReadViews(ctx)
		require.NoError(t, err)
		checked := 0
		for _, v := range views {
			var hasOrg bool
			require.NoError(t, owner.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_attribute
				WHERE attrelid = $1::regclass AND attname = 'organization_id' AND NOT attisdropped)`, v).Scan(&hasOrg))
			if !hasOrg {
				continue
			}
			var other, mine int
			err := conn.QueryRow(ctx, `SELECT count(*) FILTER (WHERE organization_id IS DISTINCT FROM $1), count(*) FROM `+v, a.org).Scan(&other, &mine)
			require.NoError(t, err, v)
			require.Zero(t, other, "%s shows rows of another organization", v)
			checked++
		}
		require.GreaterOrEqual(t, checked, 12)
	})

	t.Run("every read view by internal keys", func(t *testing.T) {
		// The rollups' building blocks (raw_readings, device_zones, rollup_*_rt) carry
		// amrd's internal device and series numbers instead of an organization.
		views, err := st.ReadViews(ctx)
		require.NoError(t, err)
		checked := 0
		for _, v := range views {
			for _, col := range []string{"device_key", "series_key"} {
				var has bool
				require.NoError(t, owner.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_attribute
					WHERE attrelid = $1::regclass AND attname = $2 AND NOT attisdropped)`, v, col).Scan(&has))
				if !has {
					continue
				}
				table := map[string]string{"device_key": "meter_devices", "series_key": "meter_reading_series"}[col]
				var others []int32
				require.NoError(t, owner.QueryRow(ctx, `SELECT coalesce(array_agg(key), '{}') FROM `+table+
					` WHERE organization_id IS DISTINCT FROM $1`, a.org).Scan(&others))
				var seen, foreign int
				err := conn.QueryRow(ctx, `SELECT count(*), count(*) FILTER (WHERE `+col+` = ANY ($1)) FROM `+v, others).Scan(&seen, &foreign)
				require.NoError(t, err, v)
				require.Zero(t, foreign, "%s shows %s of another organization", v, col)
				checked++
			}
		}
		require.GreaterOrEqual(t, checked, 5)
	})

	t.Run("base tables are out of reach", func(t *testing.T) {
		for _, table := range []string{"meter_readings", "meter_devices", "organizations", "users", "api_tokens",
			"meter_security_keys", "sql_roles", "staged_meter_readings", "memberships", "rollup_hourly", "rollup_daily",
			"rollup_series_hourly", "rollup_marks", "rollup_state"} {
			_, err := conn.Exec(ctx, `SELECT 1 FROM `+table+` LIMIT 1`)
			require.Equal(t, "42501", pgCode(err), "%s: %v", table, err)
		}
		// Only visible_orgs of its own role answers.
		var orgs []uuid.UUID
		require.NoError(t, conn.QueryRow(ctx, `SELECT amrd_read.visible_orgs($1)`, role.Name).Scan(&orgs))
		require.Equal(t, []uuid.UUID{a.org}, orgs)
		require.NoError(t, conn.QueryRow(ctx, `SELECT amrd_read.visible_orgs('postgres')`).Scan(&orgs))
		require.Empty(t, orgs)
	})

	t.Run("settings", func(t *testing.T) {
		var timeout, readOnly, path string
		require.NoError(t, conn.QueryRow(ctx, `SHOW statement_timeout`).Scan(&timeout))
		require.Equal(t, "45s", timeout)
		require.NoError(t, conn.QueryRow(ctx, `SHOW default_transaction_read_only`).Scan(&readOnly))
		require.Equal(t, "on", readOnly)
		require.NoError(t, conn.QueryRow(ctx, `SHOW search_path`).Scan(&path))
		require.Equal(t, "public, amrd_read", path)
		// The role's own setting, whatever the connection or the database says.
		var jitOff bool
		require.NoError(t, conn.QueryRow(ctx, `SELECT 'jit=off' = ANY (rolconfig) FROM pg_roles WHERE rolname = current_user`).Scan(&jitOff))
		require.True(t, jitOff, "the role's settings include jit=off")
		var limit int
		var login, inherit, super, createRole, createDB bool
		require.NoError(t, conn.QueryRow(ctx, `SELECT rolconnlimit, rolcanlogin, rolinherit, rolsuper, rolcreaterole, rolcreatedb
			FROM pg_roles WHERE rolname = current_user`).Scan(&limit, &login, &inherit, &super, &createRole, &createDB))
		require.Equal(t, 3, limit)
		require.True(t, login)
		require.False(t, inherit || super || createRole || createDB)
	})

	t.Run("writes fail", func(t *testing.T) {
		// Views with joins are not updatable at all (55000); a simple one is (the
		// security barrier does not change that), so the missing privilege stops it.
		writes := []struct{ sql, code string }{
			{`INSERT INTO metering_meterdevice (id, name) VALUES (gen_random_uuid(), 'x')`, "55000"},
			{`UPDATE metering_meterdevice SET name = 'x'`, "55000"},
			{`DELETE FROM metering_meterreading`, "55000"},
			{`UPDATE amrd_read.organizations SET name = 'x'`, "42501"},
			{`DELETE FROM organizations_organization`, "42501"},
			{`INSERT INTO amrd_read.organizations (name) VALUES ('x')`, "42501"},
			{`INSERT INTO meter_readings (device_key, series_key, ts, value) VALUES (1, 1, now(), 1)`, "42501"},
			{`UPDATE organizations SET name = 'x'`, "42501"},
			{`DELETE FROM meter_devices`, "42501"},
			{`DELETE FROM sql_roles`, "42501"},
			{`INSERT INTO sql_roles (role_name, organization_id) VALUES (current_user, '` + b.org.String() + `')`, "42501"},
		}
		// Read-only by default (25006, where PostgreSQL gets as far as checking); and
		// without the rights when the session turns that off.
		for _, readOnly := range []string{"on", "off"} {
			_, err := conn.Exec(ctx, `SET default_transaction_read_only = `+readOnly)
			require.NoError(t, err)
			for _, w := range writes {
				_, err := conn.Exec(ctx, w.sql)
				require.Error(t, err, w.sql)
				codes := []string{w.code}
				if readOnly == "on" {
					codes = append(codes, "25006")
				}
				require.Contains(t, codes, pgCode(err), "%s (read only %s): %v", w.sql, readOnly, err)
			}
		}
		_, err := conn.Exec(ctx, `RESET default_transaction_read_only`)
		require.NoError(t, err)
		var orgNames []string = column(t, owner, `SELECT name FROM organizations`)
		require.Equal(t, []string{"alpha", "bravo"}, orgNames)
		var n int
		require.NoError(t, owner.QueryRow(ctx, `SELECT count(*) FROM meter_readings`).Scan(&n))
		require.Equal(t, 6, n)
		require.NoError(t, owner.QueryRow(ctx, `SELECT count(*) FROM sql_roles`).Scan(&n))
		require.Equal(t, 1, n)
	})

	t.Run("a leaky function sees no other organization", func(t *testing.T) {
		// A function of the reader's that reports its arguments (RAISE NOTICE) and claims
		// to cost nothing, so that the planner would like to run it first: the views are
		// security barriers, so it runs only on rows that passed the organization filter.
		// Temporary objects need a writable transaction, which a session may choose.
		_, err := conn.Exec(ctx, `SET default_transaction_read_only = off`)
		require.NoError(t, err)
		t.Cleanup(func() { _, _ = conn.Exec(context.Background(), `RESET default_transaction_read_only`) })
		_, err = conn.Exec(ctx, `CREATE FUNCTION pg_temp.leak(v anyelement) RETURNS bool LANGUAGE plpgsql COST 0.0000001
			AS $$ BEGIN RAISE NOTICE 'saw %', v; RETURN true; END $$`)
		require.NoError(t, err)
		queries := []struct {
			sql  string
			want []string
		}{
			{`SELECT count(*) FROM metering_meterreading WHERE pg_temp.leak(value)`, a.values},
			{`SELECT count(*) FROM amrd_read.meter_readings WHERE pg_temp.leak(value)`, a.values},
			{`SELECT count(*) FROM amrd_read.meter_readings WHERE pg_temp.leak(value) AND "timestamp" > now() - interval '1 day'`, a.values},
			{`SELECT count(*) FROM metering_meterreading WHERE pg_temp.leak(value) AND meter_device_id = '` + b.device.String() + `'`, nil},
			{`SELECT count(*) FROM metering_meterdevice WHERE pg_temp.leak(id)`, []string{a.device.String()}},
			{`SELECT count(*) FROM organizations_organization WHERE pg_temp.leak(name)`, []string{"alpha"}},
			{`SELECT count(*) FROM metering_meterreadingseries WHERE pg_temp.leak(id)`, []string{a.series.String()}},
		}
		for _, q := range queries {
			conn.takeNotices()
			_, err := conn.Exec(ctx, q.sql)
			require.NoError(t, err, q.sql)
			var saw []string
			for _, n := range conn.takeNotices() {
				saw = append(saw, strings.TrimPrefix(n, "saw "))
			}
			sort.Strings(saw)
			require.Equal(t, q.want, saw, q.sql)
		}
	})
}

func TestSQLRoleReadViews(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	st, dbURL := storetest.New(t)
	views, err := st.ReadViews(ctx)
	require.NoError(t, err)
	for _, v := range []string{"amrd_read.meter_readings", "amrd_read.meter_devices", "amrd_read.staged_meter_readings",
		"public.metering_meterreading", "public.metering_meterdevice", "public.metering_meterdeviceconfig_series",
		"public.organizations_organization"} {
		require.Contains(t, views, v)
	}
	require.NotContains(t, views, "public.rollup_hourly")

	// What makes a view safe to grant: it filters by visible_orgs itself, or reads only
	// views that are safe. A Utilitarian view reading a base table directly would show
	// every organization's rows to every SQL role.
	owner := connect(t, dbURL)
	safe := map[string]bool{}
	for range views { // enough passes for views of views
		for _, v := range views {
			var def string
			require.NoError(t, owner.QueryRow(ctx, `SELECT pg_get_viewdef($1::regclass)`, v).Scan(&def))
			if strings.Contains(def, "visible_orgs(CURRENT_USER)") {
				safe[v] = true
				continue
			}
			deps := column(t, owner, `SELECT DISTINCT d.refobjid::regclass::text FROM pg_rewrite r
				JOIN pg_depend d ON d.classid = 'pg_rewrite'::regclass AND d.objid = r.oid AND d.refclassid = 'pg_class'::regclass
				WHERE r.ev_class = $1::regclass AND d.refobjid <> r.ev_class`, v)
			ok := len(deps) > 0
			for _, d := range deps {
				ok = ok && safe[d]
			}
			safe[v] = ok
		}
	}
	for _, v := range views {
		require.True(t, safe[v], "%s neither filters by visible_orgs nor reads only views that do", v)
	}
}

func TestSQLRoleCreateFailsCleanly(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	st, dbURL := storetest.New(t)
	org := mkOrg(t, st, "A", true)
	other := mkOrg(t, st, "B", true)
	admin := connect(t, dbURL)

	existing := mkSQLRole(t, st, store.SQLRoleInput{OrganizationID: org.ID})
	foreign := sqlRoleName(t, "amrd_t_foreign")
	_, err := admin.Exec(ctx, `CREATE ROLE `+foreign)
	require.NoError(t, err)
	t.Cleanup(func() { _, _ = admin.Exec(context.Background(), `DROP ROLE IF EXISTS `+foreign) })

	// A database user that may read and write what amrd needs, but not create roles.
	weakName := sqlRoleName(t, "amrd_t_weak")
	const weakPassword = "weak-user-password-0123"
	for _, sql := range []string{
		`CREATE ROLE ` + weakName + ` LOGIN PASSWORD '` + weakPassword + `'`,
		`GRANT SELECT ON organizations TO ` + weakName,
		`GRANT SELECT, INSERT, DELETE ON sql_roles TO ` + weakName,
	} {
		_, err := admin.Exec(ctx, sql)
		require.NoError(t, err, sql)
	}
	t.Cleanup(func() {
		_, _ = admin.Exec(context.Background(), `DROP OWNED BY `+weakName)
		_, _ = admin.Exec(context.Background(), `DROP ROLE IF EXISTS `+weakName)
	})
	weak, err := store.Open(ctx, store.Config{URL: asUser(t, dbURL, weakName, weakPassword)}, discard())
	require.NoError(t, err)
	t.Cleanup(weak.Close)

	tests := []struct {
		name    string
		st      *store.Store
		in      store.SQLRoleInput
		field   string // a FieldError on this field, or
		wantErr string // an error with this text
	}{
		{name: "unknown organization", st: st, in: store.SQLRoleInput{OrganizationID: uuid.New()}, field: "organization"},
		{name: "name of a SQL role", st: st, in: store.SQLRoleInput{Name: existing.Name, OrganizationID: other.ID}, field: "name"},
		{name: "name of another role", st: st, in: store.SQLRoleInput{Name: foreign, OrganizationID: org.ID}, field: "name"},
		{name: "name of PostgreSQL", st: st, in: store.SQLRoleInput{Name: "pg_grafana", OrganizationID: org.ID}, field: "name"},
		{name: "reserved name", st: st, in: store.SQLRoleInput{Name: "public", OrganizationID: org.ID}, field: "name"},
		{name: "upper case", st: st, in: store.SQLRoleInput{Name: "Grafana", OrganizationID: org.ID}, field: "name"},
		{name: "too long", st: st, in: store.SQLRoleInput{Name: strings.Repeat("g", 64), OrganizationID: org.ID}, field: "name"},
		{name: "short password", st: st, in: store.SQLRoleInput{Password: "short", OrganizationID: org.ID}, field: "password"},
		{name: "negative connection limit", st: st, in: store.SQLRoleInput{ConnLimit: -1, OrganizationID: org.ID}, field: "connection_limit"},
		{name: "sub-millisecond timeout", st: st, in: store.SQLRoleInput{StatementTimeout: time.Microsecond, OrganizationID: org.ID}, field: "statement_timeout"},
		{name: "user without CREATEROLE", st: weak, in: store.SQLRoleInput{OrganizationID: org.ID},
			wantErr: "the database user " + weakName + " lacks CREATEROLE"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			in := tc.in
			if in.Name == "" {
				in.Name = sqlRoleName(t, "amrd_t_fail")
			}
			if in.Password == "" {
				in.Password = sqlRolePassword
			}
			var rolesBefore []string = column(t, admin, `SELECT role_name || ' ' || organization_id FROM sql_roles`)
			_, err := tc.st.CreateSQLRole(ctx, in)
			require.Error(t, err)
			if tc.field != "" {
				requireFieldError(t, err, tc.field)
			} else {
				require.ErrorContains(t, err, tc.wantErr)
			}
			require.NotContains(t, err.Error(), in.Password)
			require.Equal(t, rolesBefore, column(t, admin, `SELECT role_name || ' ' || organization_id FROM sql_roles`))
			if in.Name != existing.Name && in.Name != foreign && in.Name != "public" {
				var n int
				require.NoError(t, admin.QueryRow(ctx, `SELECT count(*) FROM pg_roles WHERE rolname = $1`, in.Name).Scan(&n))
				require.Zero(t, n, "a role was left behind")
			}
		})
	}
}

// TestSQLRoleByCreateRoleUser runs amrd as it should run in production: a user with
// CREATEROLE that is not a superuser. It needs the grant option on what it grants, which
// the owner of the schema (the user that ran amrd migrate) has.
func TestSQLRoleByCreateRoleUser(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	st, dbURL := storetest.New(t)
	a := mkReadFixture(t, dbURL, "alpha", "111")
	mkReadFixture(t, dbURL, "bravo", "999")
	admin := connect(t, dbURL)
	var db string
	require.NoError(t, admin.QueryRow(ctx, `SELECT current_database()`).Scan(&db))
	views, err := st.ReadViews(ctx)
	require.NoError(t, err)

	mkUser := func(grantOption bool) *store.Store {
		name := sqlRoleName(t, "amrd_t_admin")
		const password = "creator-password-0123456789"
		opt := ""
		if grantOption {
			opt = " WITH GRANT OPTION"
		}
		for _, sql := range []string{
			`CREATE ROLE ` + name + ` LOGIN CREATEROLE PASSWORD '` + password + `'`,
			`GRANT CONNECT ON DATABASE ` + db + ` TO ` + name + opt,
			`GRANT USAGE ON SCHEMA amrd_read TO ` + name + opt,
			`GRANT EXECUTE ON FUNCTION amrd_read.visible_orgs(name) TO ` + name + opt,
			`GRANT SELECT ON ` + strings.Join(views, ", ") + ` TO ` + name + opt,
			`GRANT SELECT ON organizations TO ` + name,
			`GRANT SELECT, INSERT, DELETE ON sql_roles TO ` + name,
		} {
			_, err := admin.Exec(ctx, sql)
			require.NoError(t, err, sql)
		}
		t.Cleanup(func() {
			_, _ = admin.Exec(context.Background(), `DROP OWNED BY `+name)
			_, _ = admin.Exec(context.Background(), `DROP ROLE IF EXISTS `+name)
		})
		s, err := store.Open(ctx, store.Config{URL: asUser(t, dbURL, name, password)}, discard())
		require.NoError(t, err)
		t.Cleanup(s.Close)
		return s
	}

	t.Run("with the grant option", func(t *testing.T) {
		creator := mkUser(true)
		role := mkSQLRole(t, creator, store.SQLRoleInput{OrganizationID: a.org})
		conn := connectAs(t, dbURL, role.Name, sqlRolePassword)
		require.Equal(t, a.values, column(t, conn.Conn, `SELECT value::text FROM metering_meterreading`))
		require.NoError(t, creator.RevokeSQLRole(ctx, role.Name))
		var n int
		require.NoError(t, admin.QueryRow(ctx, `SELECT count(*) FROM pg_roles WHERE rolname = $1`, role.Name).Scan(&n))
		require.Zero(t, n)
	})

	t.Run("without the grant option", func(t *testing.T) {
		creator := mkUser(false)
		name := sqlRoleName(t, "amrd_t_role")
		_, err := creator.CreateSQLRole(ctx, store.SQLRoleInput{Name: name, OrganizationID: a.org, Password: sqlRolePassword})
		require.ErrorContains(t, err, "may not grant")
		var n int
		require.NoError(t, admin.QueryRow(ctx, `SELECT count(*) FROM pg_roles WHERE rolname = $1`, name).Scan(&n))
		require.Zero(t, n)
		require.NoError(t, admin.QueryRow(ctx, `SELECT count(*) FROM sql_roles`).Scan(&n))
		require.Zero(t, n)
	})
}

func TestSQLRoleListAndRevoke(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	st, dbURL := storetest.New(t)
	org := mkOrg(t, st, "A", true)
	admin := connect(t, dbURL)

	role := mkSQLRole(t, st, store.SQLRoleInput{OrganizationID: org.ID})
	require.Equal(t, store.DefaultSQLRoleConnLimit, role.ConnLimit)
	require.Equal(t, "30s", role.StatementTimeout)
	list, err := st.ListSQLRoles(ctx)
	require.NoError(t, err)
	require.Len(t, list, 1)
	require.Equal(t, role, list[0])
	require.WithinDuration(t, time.Now(), list[0].CreatedAt, time.Minute)

	// A session open while the role is revoked loses its rights at once; what it owns
	// (temporary objects) does not stop the revoke.
	conn := connectAs(t, dbURL, role.Name, sqlRolePassword)
	for _, sql := range []string{`SELECT 1 FROM metering_meterreading`, `SET default_transaction_read_only = off`,
		`CREATE TEMP TABLE scratch (x int)`, `CREATE FUNCTION pg_temp.f() RETURNS int LANGUAGE sql AS 'SELECT 1'`} {
		_, err = conn.Exec(ctx, sql)
		require.NoError(t, err, sql)
	}

	require.NoError(t, st.RevokeSQLRole(ctx, role.Name))
	list, err = st.ListSQLRoles(ctx)
	require.NoError(t, err)
	require.Empty(t, list)
	var n int
	require.NoError(t, admin.QueryRow(ctx, `SELECT count(*) FROM pg_roles WHERE rolname = $1`, role.Name).Scan(&n))
	require.Zero(t, n)
	_, err = conn.Exec(ctx, `SELECT 1 FROM metering_meterreading`)
	require.Error(t, err)

	_, err = pgx.Connect(ctx, asUser(t, dbURL, role.Name, sqlRolePassword))
	require.Error(t, err, "the revoked role logged in")
	require.Equal(t, "28P01", pgCode(err)) // invalid_password: the server does not say the role is gone

	err = st.RevokeSQLRole(ctx, role.Name)
	require.ErrorIs(t, err, store.ErrNotFound)
	require.ErrorContains(t, err, "no SQL role")

	// A role that amrd did not make is never dropped.
	foreign := sqlRoleName(t, "amrd_t_foreign")
	_, err = admin.Exec(ctx, `CREATE ROLE `+foreign)
	require.NoError(t, err)
	t.Cleanup(func() { _, _ = admin.Exec(context.Background(), `DROP ROLE IF EXISTS `+foreign) })
	require.ErrorIs(t, st.RevokeSQLRole(ctx, foreign), store.ErrNotFound)
	require.NoError(t, admin.QueryRow(ctx, `SELECT count(*) FROM pg_roles WHERE rolname = $1`, foreign).Scan(&n))
	require.Equal(t, 1, n)
}

// TestSQLRoleRevokeLeftover: a row whose role was dropped behind amrd's back is listed
// (connection limit 0) and revoking removes it.
func TestSQLRoleRevokeLeftover(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	st, dbURL := storetest.New(t)
	org := mkOrg(t, st, "A", true)
	role := mkSQLRole(t, st, store.SQLRoleInput{OrganizationID: org.ID})
	admin := connect(t, dbURL)
	for _, sql := range []string{`DROP OWNED BY ` + role.Name, `DROP ROLE ` + role.Name} {
		_, err := admin.Exec(ctx, sql)
		require.NoError(t, err)
	}
	list, err := st.ListSQLRoles(ctx)
	require.NoError(t, err)
	require.Len(t, list, 1)
	require.Zero(t, list[0].ConnLimit)
	require.NoError(t, st.RevokeSQLRole(ctx, role.Name))
	list, err = st.ListSQLRoles(ctx)
	require.NoError(t, err)
	require.Empty(t, list)
}

// TestSQLRoleConcurrentCreate: of two creates of one name at once, one wins and the
// other gets the taken-name error, whichever way the server orders them.
func TestSQLRoleConcurrentCreate(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	st, _ := storetest.New(t)
	orgs := []uuid.UUID{mkOrg(t, st, "A", true).ID, mkOrg(t, st, "B", true).ID}
	name := sqlRoleName(t, "amrd_t_race")
	t.Cleanup(func() { _ = st.RevokeSQLRole(context.Background(), name) })
	errs := make([]error, len(orgs))
	var wg sync.WaitGroup
	for i, org := range orgs {
		wg.Go(func() {
			_, errs[i] = st.CreateSQLRole(ctx, store.SQLRoleInput{Name: name, OrganizationID: org, Password: sqlRolePassword})
		})
	}
	wg.Wait()
	var failed []error
	for _, err := range errs {
		if err != nil {
			failed = append(failed, err)
		}
	}
	require.Len(t, failed, 1, "errors: %v", errs)
	requireFieldError(t, failed[0], "name")
	list, err := st.ListSQLRoles(ctx)
	require.NoError(t, err)
	require.Len(t, list, 1)
}
