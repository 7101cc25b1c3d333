package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/google/uuid"

	"github.com/amrd/amrd/store"
)

const sqlRoleUsage = `usage: amrd sql-role create -organization ID [-name N] [-connection-limit N] [-statement-timeout D]
       amrd sql-role list
       amrd sql-role revoke -name N`

// sqlRoleCmd manages the PostgreSQL login roles that dashboards (Grafana) read one
// organization's data with.
func sqlRoleCmd(ctx context.Context, cfg settings, log *slog.Logger, args []string, stdout io.Writer) error {
	if len(args) == 0 {
		return errors.New(sqlRoleUsage)
	}
	switch args[0] {
	case "create":
		return sqlRoleCreate(ctx, cfg, log, args[1:], stdout)
	case "list":
		if len(args) > 1 {
			return errors.New(sqlRoleUsage)
		}
		return withStore(ctx, cfg, log, func(st *store.Store) error { return sqlRoleList(ctx, st, stdout) })
	case "revoke":
		fs := flag.NewFlagSet("sql-role revoke", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		name := fs.String("name", "", "the SQL role to drop")
		if err := fs.Parse(args[1:]); err != nil {
			return fmt.Errorf("sql-role revoke: %w\n%s", err, sqlRoleUsage)
		}
		if *name == "" {
			return errors.New("sql-role revoke: -name is required (amrd sql-role list shows the names)")
		}
		return withStore(ctx, cfg, log, func(st *store.Store) error {
			if err := st.RevokeSQLRole(ctx, *name); err != nil {
				return fmt.Errorf("sql-role revoke: %w", err)
			}
			fmt.Fprintf(stdout, "sql-role: revoked %s: the role is dropped and its sessions are ended\n", *name)
			return nil
		})
	}
	return errors.New(sqlRoleUsage)
}

func sqlRoleCreate(ctx context.Context, cfg settings, log *slog.Logger, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("sql-role create", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	orgFlag := fs.String("organization", "", "the id of the organization whose rows the role reads")
	name := fs.String("name", "", "the role's name (default grafana_<organization id prefix>_<random>)")
	connLimit := fs.Int("connection-limit", store.DefaultSQLRoleConnLimit, "connections the role may hold at once")
	timeout := fs.Duration("statement-timeout", store.DefaultSQLRoleStatementTimeout, "longest a query of the role may run")
	if err := fs.Parse(args); err != nil {
		return fmt.Errorf("sql-role create: %w\n%s", err, sqlRoleUsage)
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("sql-role create: unexpected argument %q\n%s", fs.Arg(0), sqlRoleUsage)
	}
	if *orgFlag == "" {
		return errors.New("sql-role create: -organization is required (the organization's id)")
	}
	org, err := uuid.Parse(*orgFlag)
	if err != nil {
		return fmt.Errorf("sql-role create: -organization %q is not an organization id (a UUID)", *orgFlag)
	}
	if *name == "" {
		*name = "grafana_" + strings.ReplaceAll(org.String(), "-", "")[:8] + "_" + randomHex(2)
	}
	password := sqlRolePassword()
	return withStore(ctx, cfg, log, func(st *store.Store) error {
		role, err := st.CreateSQLRole(ctx, store.SQLRoleInput{Name: *name, OrganizationID: org, Password: password,
			ConnLimit: *connLimit, StatementTimeout: *timeout})
		if err != nil {
			return fmt.Errorf("sql-role create: %w", err)
		}
		orgName := ""
		if o, err := st.GetOrganization(ctx, store.AllOrgs, org); err == nil {
			orgName = o.Name
		}
		printSQLRole(stdout, role, orgName, password, dataSourceOf(cfg.DatabaseURL))
		return nil
	})
}

// sqlRolePassword is 24 random bytes (192 bits), 32 characters of base64url: safe in a
// URL, in YAML and in Grafana's form as it is.
func sqlRolePassword() string {
	var b [24]byte
	_, _ = rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// dataSource is where a client reaches amrd's database, from DATABASE_URL.
type dataSource struct {
	Host     string // host:port
	Database string
	SSLMode  string // as DATABASE_URL says; "" when it says nothing
}

// grafanaSSLMode is the choice of Grafana's "TLS/SSL Mode" that matches: Grafana offers
// disable, require, verify-ca and verify-full.
func (d dataSource) grafanaSSLMode() string {
	switch d.SSLMode {
	case "require", "verify-ca", "verify-full":
		return d.SSLMode
	}
	return "disable"
}

// dataSourceOf reads host, port, database and sslmode from a PostgreSQL URL
// (postgres://...) or keyword/value string (host=... dbname=...), as libpq and pgx take
// them. Of several hosts it takes the first.
func dataSourceOf(dbURL string) dataSource {
	kv := map[string]string{}
	if strings.HasPrefix(dbURL, "postgres://") || strings.HasPrefix(dbURL, "postgresql://") {
		u, err := url.Parse(dbURL)
		if err == nil {
			host, port := u.Host, ""
			host, _, _ = strings.Cut(host, ",")
			if h, p, err := net.SplitHostPort(host); err == nil {
				host, port = h, p
			}
			kv["host"], kv["port"] = strings.Trim(host, "[]"), port
			kv["dbname"] = strings.TrimPrefix(u.Path, "/")
			kv["user"] = u.User.Username()
			for k, v := range u.Query() {
				if len(v) > 0 && v[0] != "" {
					kv[k] = v[0]
				}
			}
		}
	} else {
		for _, f := range strings.Fields(dbURL) {
			if k, v, ok := strings.Cut(f, "="); ok {
				kv[k] = strings.Trim(v, "'")
			}
		}
	}
	host, _, _ := strings.Cut(kv["host"], ",")
	port, _, _ := strings.Cut(kv["port"], ",")
	if host == "" {
		host = "localhost"
	}
	if port == "" {
		port = "5432"
	}
	db := kv["dbname"]
	if db == "" {
		db = kv["user"] // libpq's default
	}
	return dataSource{Host: net.JoinHostPort(host, port), Database: db, SSLMode: kv["sslmode"]}
}

// printSQLRole prints what Grafana's PostgreSQL data source needs, once: amrd keeps only
// the password's SCRAM hash.
func printSQLRole(w io.Writer, role store.SQLRole, orgName, password string, ds dataSource) {
	ssl := ds.grafanaSSLMode()
	label := role.OrganizationID.String()
	if orgName != "" {
		label = fmt.Sprintf("%s (%s)", orgName, role.OrganizationID)
	}
	fmt.Fprintf(w, `sql-role: created %s for organization %s
  It may read the views of schema amrd_read and Utilitarian's public.metering_* views, and
  sees only this organization's rows there; it cannot read the tables or write. At most
  %d connections; statement timeout %s.

Grafana, Connections > Data sources > PostgreSQL (the password is shown only now):
  Host URL:       %s
  Database name:  %s
  Username:       %s
  Password:       %s
  TLS/SSL Mode:   %s
  Version:        15+
  TimescaleDB:    on
`, role.Name, label, role.ConnLimit, role.StatementTimeout, ds.Host, ds.Database, role.Name, password, ssl)
	if ds.SSLMode == "" || ds.SSLMode == "prefer" || ds.SSLMode == "allow" {
		fmt.Fprintf(w, "  (DATABASE_URL says sslmode=%s, which Grafana does not offer: choose require if the\n  server has TLS.)\n", or(ds.SSLMode, "prefer"))
	}
	fmt.Fprintf(w, "  Host URL is where amrd reaches the database; give the address Grafana reaches it at.\n")

	u := url.URL{Scheme: "postgres", User: url.UserPassword(role.Name, password), Host: ds.Host, Path: "/" + ds.Database,
		RawQuery: url.Values{"sslmode": {or(ds.SSLMode, "prefer")}}.Encode()}
	fmt.Fprintf(w, "\npsql:\n  psql '%s'\n", u.String())

	name := "amrd " + or(orgName, role.OrganizationID.String())
	// Double-quoted YAML strings take Go's escapes (\", \\, \xXX, \uXXXX).
	fmt.Fprintf(w, `
Provisioning file (for example /etc/grafana/provisioning/datasources/%s.yaml):
apiVersion: 1
datasources:
  - name: %s
    type: grafana-postgresql-datasource
    url: %s
    user: %s
    jsonData:
      database: %s
      sslmode: %s
      timescaledb: true
      postgresVersion: 1500
    secureJsonData:
      password: %s
`, role.Name, strconv.Quote(name), strconv.Quote(ds.Host), role.Name, strconv.Quote(ds.Database), ssl, strconv.Quote(password))
}

func sqlRoleList(ctx context.Context, st *store.Store, stdout io.Writer) error {
	roles, err := st.ListSQLRoles(ctx)
	if err != nil {
		return fmt.Errorf("sql-role list: %w", err)
	}
	if len(roles) == 0 {
		fmt.Fprintln(stdout, "sql-role: no SQL roles (amrd sql-role create makes one)")
		return nil
	}
	names := map[uuid.UUID]string{}
	for _, r := range roles {
		if _, ok := names[r.OrganizationID]; ok {
			continue
		}
		o, err := st.GetOrganization(ctx, store.AllOrgs, r.OrganizationID)
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("sql-role list: %w", err)
		}
		names[r.OrganizationID] = o.Name
	}
	tw := tabwriter.NewWriter(stdout, 0, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tORGANIZATION ID\tORGANIZATION\tCONNECTION LIMIT\tSTATEMENT TIMEOUT\tCREATED")
	for _, r := range roles {
		limit := strconv.Itoa(r.ConnLimit)
		if r.ConnLimit == 0 {
			limit = "(role missing)"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", r.Name, r.OrganizationID, names[r.OrganizationID], limit,
			or(r.StatementTimeout, "-"), r.CreatedAt.UTC().Format(time.RFC3339))
	}
	return tw.Flush()
}
