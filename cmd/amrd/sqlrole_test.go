package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"io"
	"log/slog"
	"regexp"
	"strings"
	"testing"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/amrd/amrd/store"
	"github.com/amrd/amrd/store/storetest"
)

var (
	sqlRoleUserRe = regexp.MustCompile(`(?m)^  Username: +(\S+)$`)
	sqlRolePassRe = regexp.MustCompile(`(?m)^  Password: +(\S+)$`)
	sqlRolePsqlRe = regexp.MustCompile(`(?m)^  psql '(\S+)'$`)
)

// revokeAtEnd drops a role a test made: role names are shared by every database of the
// test server, so they must not outlive the test.
func revokeAtEnd(t *testing.T, st *store.Store, name string) {
	t.Cleanup(func() {
		err := st.RevokeSQLRole(context.Background(), name)
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			t.Errorf("revoking %s: %v", name, err)
		}
	})
}

func TestSQLRoleCommand(t *testing.T) {
	t.Parallel()
	env := migratedEnv(t)
	st := openStore(t, env)
	org, err := st.CreateOrganization(testCtx(t), store.OrganizationInput{Name: "Stadtwerke", IsActive: true})
	require.NoError(t, err)

	out, errOut, err := amrd(t, env, "", "sql-role", "create", "-organization", org.ID.String(), "-statement-timeout", "1m")
	require.NoError(t, err)
	m := sqlRoleUserRe.FindStringSubmatch(out)
	require.NotNil(t, m, out)
	name := m[1]
	revokeAtEnd(t, st, name)
	require.Regexp(t, `^grafana_`+strings.ReplaceAll(org.ID.String(), "-", "")[:8]+`_[0-9a-f]{4}$`, name)
	m = sqlRolePassRe.FindStringSubmatch(out)
	require.NotNil(t, m, out)
	password := m[1]
	require.Len(t, password, 32)
	require.Equal(t, 1, strings.Count(out, "Password:"), "the details are printed once")
	for _, want := range []string{"Stadtwerke", "TLS/SSL Mode:   disable", "TimescaleDB:    on", "statement timeout 1min",
		"type: grafana-postgresql-datasource", "timescaledb: true", "postgresVersion: 1500", `password: "` + password + `"`,
		"user: " + name} {
		require.Contains(t, out, want)
	}
	require.NotContains(t, errOut, password, "the password is never logged")

	// The printed psql URL works, as the new role, and reads the views.
	m = sqlRolePsqlRe.FindStringSubmatch(out)
	require.NotNil(t, m, out)
	var user, timeout string
	var readings int
	storetest.QueryRow(t, m[1], `SELECT current_user, current_setting('statement_timeout'), (SELECT count(*) FROM metering_meterreading)`,
		&user, &timeout, &readings)
	require.Equal(t, name, user)
	require.Equal(t, "1min", timeout)

	out, _, err = amrd(t, env, "", "sql-role", "list")
	require.NoError(t, err)
	require.Regexp(t, name+` +`+org.ID.String()+` +Stadtwerke +10 +1min +\d{4}-`, out)

	out, _, err = amrd(t, env, "", "sql-role", "revoke", "-name", name)
	require.NoError(t, err)
	require.Contains(t, out, "revoked "+name)
	out, _, err = amrd(t, env, "", "sql-role", "list")
	require.NoError(t, err)
	require.NotContains(t, out, name)
	require.Contains(t, out, "no SQL roles")
	_, err = store.Open(testCtx(t), store.Config{URL: m[1]}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	require.Error(t, err, "the revoked role still logs in")

	_, _, err = amrd(t, env, "", "sql-role", "revoke", "-name", name)
	require.ErrorContains(t, err, "no SQL role")
}

func TestSQLRoleCommandFails(t *testing.T) {
	t.Parallel()
	env := migratedEnv(t)
	st := openStore(t, env)
	org, err := st.CreateOrganization(testCtx(t), store.OrganizationInput{Name: "A", IsActive: true})
	require.NoError(t, err)
	var b [4]byte
	_, _ = rand.Read(b[:])
	taken := "amrd_t_cmd_" + hex.EncodeToString(b[:])
	_, _, err = amrd(t, env, "", "sql-role", "create", "-organization", org.ID.String(), "-name", taken)
	require.NoError(t, err)
	revokeAtEnd(t, st, taken)

	tests := []struct {
		name    string
		args    []string
		wantErr string
	}{
		{"unknown organization", []string{"create", "-organization", uuid.NewString()}, "no organization has the id"},
		{"not an id", []string{"create", "-organization", "Stadtwerke"}, "is not an organization id"},
		{"no organization", []string{"create"}, "-organization is required"},
		{"taken name", []string{"create", "-organization", org.ID.String(), "-name", taken}, "exists already"},
		{"bad name", []string{"create", "-organization", org.ID.String(), "-name", "Grafana"}, "not a valid SQL role name"},
		{"bad connection limit", []string{"create", "-organization", org.ID.String(), "-connection-limit", "-2"}, "connection_limit"},
		{"revoke without name", []string{"revoke"}, "-name is required"},
		{"unknown subcommand", []string{"drop"}, "usage: amrd sql-role"},
		{"nothing", nil, "usage: amrd sql-role"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out, _, err := amrd(t, env, "", append([]string{"sql-role"}, tc.args...)...)
			require.ErrorContains(t, err, tc.wantErr)
			require.NotContains(t, out, "Password:")
			roles, err := st.ListSQLRoles(testCtx(t))
			require.NoError(t, err)
			require.Len(t, roles, 1, "only the first role exists")
			require.Equal(t, taken, roles[0].Name)
		})
	}
}

func TestSQLRoleDataSource(t *testing.T) {
	t.Parallel()
	tests := []struct {
		url     string
		want    dataSource
		grafana string
	}{
		{"postgres://amrd:pw@db.example.com:5433/amrd?sslmode=verify-full", dataSource{"db.example.com:5433", "amrd", "verify-full"}, "verify-full"},
		{"postgresql://amrd@db/amrd", dataSource{"db:5432", "amrd", ""}, "disable"},
		{"postgres://amrd@[::1]:6000/x?sslmode=require", dataSource{"[::1]:6000", "x", "require"}, "require"},
		{"postgres://amrd@h1:5001,h2:5002/x?sslmode=disable", dataSource{"h1:5001", "x", "disable"}, "disable"},
		{"postgres://amrd@/amrd?host=/run/postgresql", dataSource{"/run/postgresql:5432", "amrd", ""}, "disable"},
		{"host=db port=5434 dbname=meters user=amrd sslmode=prefer", dataSource{"db:5434", "meters", "prefer"}, "disable"},
		{"host=db user=amrd", dataSource{"db:5432", "amrd", ""}, "disable"},
	}
	for _, tc := range tests {
		t.Run(tc.url, func(t *testing.T) {
			got := dataSourceOf(tc.url)
			require.Equal(t, tc.want, got)
			require.Equal(t, tc.grafana, got.grafanaSSLMode())
		})
	}
}
