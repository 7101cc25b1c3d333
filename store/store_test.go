package store_test

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	neturl "net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/amrd/amrd/schema"
	"github.com/amrd/amrd/store"
	"github.com/amrd/amrd/store/storetest"
)

func discard() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func testCtx(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// connect opens a plain pgx connection to a test database, for looking behind the store.
func connect(t *testing.T, url string) *pgx.Conn {
	t.Helper()
	ctx := testCtx(t)
	conn, err := pgx.Connect(ctx, url)
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close(context.Background()) })
	return conn
}

func allVersions(t *testing.T) []int {
	t.Helper()
	migs, err := schema.Migrations()
	require.NoError(t, err)
	vs := make([]int, len(migs))
	for i, m := range migs {
		vs[i] = m.Version
	}
	return vs
}

func mkUser(t *testing.T, st *store.Store, name string) store.User {
	t.Helper()
	u, err := st.CreateUser(testCtx(t), store.UserInput{Username: name, PasswordHash: "hash-" + name, IsActive: true})
	require.NoError(t, err)
	return u
}

func mkOrg(t *testing.T, st *store.Store, name string, active bool) store.Organization {
	t.Helper()
	o, err := st.CreateOrganization(testCtx(t), store.OrganizationInput{Name: name, IsActive: active})
	require.NoError(t, err)
	return o
}

func TestMigrateTwice(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	url := storetest.NewDatabase(t)
	st, err := store.Open(ctx, store.Config{URL: url}, discard())
	require.NoError(t, err)
	t.Cleanup(st.Close)

	first, err := st.Migrate(ctx)
	require.NoError(t, err)
	require.Equal(t, allVersions(t), first)

	second, err := st.Migrate(ctx)
	require.NoError(t, err)
	require.Empty(t, second, "a second Migrate applies nothing")

	rows, err := connect(t, url).Query(ctx, `SELECT version FROM schema_migrations ORDER BY version`)
	require.NoError(t, err)
	recorded, err := pgx.CollectRows(rows, pgx.RowTo[int])
	require.NoError(t, err)
	require.Equal(t, allVersions(t), recorded)
	require.Equal(t, 1, recorded[0])
}

// TestMigrateConcurrently starts several replicas' migrations together: the advisory
// lock makes exactly one of them apply each version.
func TestMigrateConcurrently(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	url := storetest.NewDatabase(t)
	const replicas = 4
	stores := make([]*store.Store, replicas)
	for i := range stores {
		st, err := store.Open(ctx, store.Config{URL: url, MaxConns: 2}, discard())
		require.NoError(t, err)
		t.Cleanup(st.Close)
		stores[i] = st
	}
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		applied []int
		errs    []error
	)
	for _, st := range stores {
		wg.Add(1)
		go func() {
			defer wg.Done()
			vs, err := st.Migrate(ctx)
			mu.Lock()
			defer mu.Unlock()
			applied = append(applied, vs...)
			if err != nil {
				errs = append(errs, err)
			}
		}()
	}
	wg.Wait()
	require.Empty(t, errs)
	require.ElementsMatch(t, allVersions(t), applied, "each version applied by exactly one replica")
}

func TestHypertables(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	_, url := storetest.New(t)
	rows, err := connect(t, url).Query(ctx, `SELECT hypertable_name::text FROM timescaledb_information.hypertables
		WHERE hypertable_schema = 'public'`)
	require.NoError(t, err)
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	for _, want := range []string{"meter_readings", "staged_meter_readings", "meter_system_events"} {
		t.Run(want, func(t *testing.T) {
			require.Contains(t, names, want)
		})
	}
}

func TestOrganizationCRUD(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	st, _ := storetest.New(t)

	created, err := st.CreateOrganization(ctx, store.OrganizationInput{Name: "Acme", IsActive: true})
	require.NoError(t, err)
	require.NotEqual(t, uuid.Nil, created.ID)
	require.Equal(t, "Acme", created.Name)
	require.True(t, created.IsActive)
	require.Empty(t, created.Members)
	require.False(t, created.CreatedAt.IsZero())

	got, err := st.GetOrganization(ctx, store.AllOrgs, created.ID)
	require.NoError(t, err)
	require.Equal(t, created.ID, got.ID)
	require.Equal(t, "Acme", got.Name)
	require.NotNil(t, got.Members)
	require.Empty(t, got.Members)

	updated, err := st.UpdateOrganization(ctx, store.AllOrgs, created.ID, store.OrganizationInput{Name: "Acme Gas", IsActive: false})
	require.NoError(t, err)
	require.Equal(t, "Acme Gas", updated.Name)
	require.False(t, updated.IsActive)
	require.False(t, updated.UpdatedAt.Before(created.UpdatedAt))

	require.NoError(t, st.DeleteOrganization(ctx, store.AllOrgs, created.ID))
	_, err = st.GetOrganization(ctx, store.AllOrgs, created.ID)
	require.ErrorIs(t, err, store.ErrNotFound)

	missing := uuid.New()
	tests := []struct {
		name string
		call func() error
		want error
	}{
		{"get missing", func() error { _, err := st.GetOrganization(ctx, store.AllOrgs, missing); return err }, store.ErrNotFound},
		{"update missing", func() error {
			_, err := st.UpdateOrganization(ctx, store.AllOrgs, missing, store.OrganizationInput{Name: "x"})
			return err
		}, store.ErrNotFound},
		{"delete missing", func() error { return st.DeleteOrganization(ctx, store.AllOrgs, missing) }, store.ErrNotFound},
		{"delete twice", func() error { return st.DeleteOrganization(ctx, store.AllOrgs, created.ID) }, store.ErrNotFound},
		{"empty name", func() error { _, err := st.CreateOrganization(ctx, store.OrganizationInput{Name: ""}); return err }, store.ErrInvalid},
		{"name too long", func() error {
			_, err := st.CreateOrganization(ctx, store.OrganizationInput{Name: strings.Repeat("n", 65)})
			return err
		}, store.ErrInvalid},
		// PostgreSQL's text holds neither NUL nor bytes that are not UTF-8 (22021): the
		// API refuses them first; should one get through, it is a value error, not an
		// internal one.
		{"NUL in a name", func() error {
			_, err := st.CreateOrganization(ctx, store.OrganizationInput{Name: "a\x00b"})
			return err
		}, store.ErrInvalid},
		{"NUL in a lookup", func() error { _, err := st.GetUserByUsername(ctx, "a\x00b"); return err }, store.ErrInvalid},
		{"not UTF-8 in a filter", func() error {
			_, _, err := st.ListSimCards(ctx, store.AllOrgs, store.Filter{"iccid": "\xff"}, store.Page{Limit: 1})
			return err
		}, store.ErrInvalid},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			require.ErrorIs(t, tc.call(), tc.want)
		})
	}
}

func TestOrganizationPagination(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	st, _ := storetest.New(t)
	var want []uuid.UUID
	for i := range 5 {
		want = append(want, mkOrg(t, st, fmt.Sprintf("org %d", i), true).ID)
	}

	tests := []struct {
		page store.Page
		want []uuid.UUID
	}{
		{store.Page{Limit: 2, Offset: 0}, want[0:2]},
		{store.Page{Limit: 2, Offset: 2}, want[2:4]},
		{store.Page{Limit: 2, Offset: 4}, want[4:5]},
		{store.Page{Limit: 2, Offset: 6}, nil},
		{store.Page{Limit: 100, Offset: 0}, want},
	}
	for _, tc := range tests {
		t.Run(fmt.Sprintf("limit %d offset %d", tc.page.Limit, tc.page.Offset), func(t *testing.T) {
			list, n, err := st.ListOrganizations(ctx, store.AllOrgs, tc.page)
			require.NoError(t, err)
			require.Equal(t, 5, n, "the count is of all rows, not of the page")
			var ids []uuid.UUID
			for _, o := range list {
				ids = append(ids, o.ID)
			}
			require.Equal(t, tc.want, ids, "oldest first")
		})
	}
}

func TestScope(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	st, _ := storetest.New(t)
	a := mkOrg(t, st, "A", true)
	b := mkOrg(t, st, "B", true)

	tests := []struct {
		name  string
		scope store.Scope
		want  []uuid.UUID
	}{
		{"all orgs", store.AllOrgs, []uuid.UUID{a.ID, b.ID}},
		{"org A", store.OrgScope(a.ID), []uuid.UUID{a.ID}},
		{"org B", store.OrgScope(b.ID), []uuid.UUID{b.ID}},
		{"A and B", store.OrgScope(a.ID, b.ID), []uuid.UUID{a.ID, b.ID}},
		{"no orgs", store.OrgScope(), nil},
		{"zero scope", store.Scope{}, nil},
		{"unknown org", store.OrgScope(uuid.New()), nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			list, n, err := st.ListOrganizations(ctx, tc.scope, store.Page{Limit: 10})
			require.NoError(t, err)
			require.Equal(t, len(tc.want), n)
			var ids []uuid.UUID
			for _, o := range list {
				ids = append(ids, o.ID)
			}
			require.Equal(t, tc.want, ids)
			for _, id := range []uuid.UUID{a.ID, b.ID} {
				require.Equal(t, tc.scope.Allows(id), contains(tc.want, id), "Allows agrees with the query")
				_, err := st.GetOrganization(ctx, tc.scope, id)
				if contains(tc.want, id) {
					require.NoError(t, err)
				} else {
					require.ErrorIs(t, err, store.ErrNotFound)
				}
			}
		})
	}

	t.Run("writes outside the scope", func(t *testing.T) {
		_, err := st.UpdateOrganization(ctx, store.OrgScope(a.ID), b.ID, store.OrganizationInput{Name: "taken", IsActive: false})
		require.ErrorIs(t, err, store.ErrNotFound)
		require.ErrorIs(t, st.DeleteOrganization(ctx, store.OrgScope(a.ID), b.ID), store.ErrNotFound)
		got, err := st.GetOrganization(ctx, store.AllOrgs, b.ID)
		require.NoError(t, err)
		require.Equal(t, "B", got.Name, "B is unchanged")
		require.True(t, got.IsActive)
	})
}

func contains(ids []uuid.UUID, id uuid.UUID) bool {
	for _, x := range ids {
		if x == id {
			return true
		}
	}
	return false
}

func TestMemberships(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	st, _ := storetest.New(t)
	org := mkOrg(t, st, "Org", true)
	other := mkOrg(t, st, "Other", true)
	u := mkUser(t, st, "member")
	u2 := mkUser(t, st, "member2")

	m, err := st.CreateMembership(ctx, store.MembershipInput{OrganizationID: org.ID, UserID: u.ID, Role: "viewer"})
	require.NoError(t, err)
	require.NotZero(t, m.ID)
	require.Equal(t, org.ID, m.OrganizationID)
	require.Equal(t, u.ID, m.UserID)
	require.Equal(t, "viewer", m.Role)

	got, err := st.GetOrganization(ctx, store.AllOrgs, org.ID)
	require.NoError(t, err)
	require.Equal(t, []uuid.UUID{u.ID}, got.Members)

	t.Run("create errors", func(t *testing.T) {
		tests := []struct {
			name      string
			in        store.MembershipInput
			wantField string // a *store.FieldError with this field
			wantIs    error
		}{
			{name: "duplicate", in: store.MembershipInput{OrganizationID: org.ID, UserID: u.ID, Role: "editor"}, wantField: "user"},
			{name: "unknown user", in: store.MembershipInput{OrganizationID: org.ID, UserID: uuid.New(), Role: "viewer"}, wantField: "user"},
			{name: "unknown organization", in: store.MembershipInput{OrganizationID: uuid.New(), UserID: u.ID, Role: "viewer"}, wantField: "organization"},
			{name: "bad role", in: store.MembershipInput{OrganizationID: org.ID, UserID: u2.ID, Role: "owner"}, wantIs: store.ErrInvalid},
			{name: "empty role", in: store.MembershipInput{OrganizationID: org.ID, UserID: u2.ID, Role: ""}, wantIs: store.ErrInvalid},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				_, err := st.CreateMembership(ctx, tc.in)
				require.Error(t, err)
				if tc.wantField != "" {
					var fe *store.FieldError
					require.ErrorAs(t, err, &fe)
					require.Equal(t, tc.wantField, fe.Field)
					return
				}
				require.ErrorIs(t, err, tc.wantIs)
				if tc.wantIs == store.ErrConflict {
					var ce *store.ConflictError
					require.ErrorAs(t, err, &ce)
					require.Contains(t, ce.Msg, "user")
				}
			})
		}
	})

	t.Run("scope", func(t *testing.T) {
		m2, err := st.CreateMembership(ctx, store.MembershipInput{OrganizationID: other.ID, UserID: u2.ID, Role: "editor"})
		require.NoError(t, err)
		list, n, err := st.ListMemberships(ctx, store.OrgScope(org.ID), store.Page{Limit: 10})
		require.NoError(t, err)
		require.Equal(t, 1, n)
		require.Len(t, list, 1)
		require.Equal(t, m.ID, list[0].ID)

		list, n, err = st.ListMemberships(ctx, store.AllOrgs, store.Page{Limit: 10})
		require.NoError(t, err)
		require.Equal(t, 2, n)
		require.Equal(t, []int64{m.ID, m2.ID}, []int64{list[0].ID, list[1].ID})

		_, err = st.GetMembership(ctx, store.OrgScope(org.ID), m2.ID)
		require.ErrorIs(t, err, store.ErrNotFound)
		require.ErrorIs(t, st.DeleteMembership(ctx, store.OrgScope(org.ID), m2.ID), store.ErrNotFound)
		_, err = st.UpdateMembership(ctx, store.OrgScope(org.ID), m2.ID,
			store.MembershipInput{OrganizationID: other.ID, UserID: u2.ID, Role: "viewer"})
		require.ErrorIs(t, err, store.ErrNotFound)
		require.NoError(t, st.DeleteMembership(ctx, store.AllOrgs, m2.ID))
	})

	t.Run("update and delete", func(t *testing.T) {
		up, err := st.UpdateMembership(ctx, store.OrgScope(org.ID), m.ID, store.MembershipInput{OrganizationID: org.ID, UserID: u.ID, Role: "editor"})
		require.NoError(t, err)
		require.Equal(t, "editor", up.Role)
		_, err = st.UpdateMembership(ctx, store.AllOrgs, m.ID, store.MembershipInput{OrganizationID: org.ID, UserID: u.ID, Role: "root"})
		require.ErrorIs(t, err, store.ErrInvalid)
		got, err := st.GetMembership(ctx, store.AllOrgs, m.ID)
		require.NoError(t, err)
		require.Equal(t, "editor", got.Role, "a refused update changes nothing")

		require.NoError(t, st.DeleteMembership(ctx, store.AllOrgs, m.ID))
		_, err = st.GetMembership(ctx, store.AllOrgs, m.ID)
		require.ErrorIs(t, err, store.ErrNotFound)
		require.ErrorIs(t, st.DeleteMembership(ctx, store.AllOrgs, m.ID), store.ErrNotFound)
	})
}

func TestDeleteOrganizationCascadesMemberships(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	st, _ := storetest.New(t)
	org := mkOrg(t, st, "Doomed", true)
	keep := mkOrg(t, st, "Kept", true)
	u := mkUser(t, st, "u")
	m, err := st.CreateMembership(ctx, store.MembershipInput{OrganizationID: org.ID, UserID: u.ID, Role: "viewer"})
	require.NoError(t, err)
	kept, err := st.CreateMembership(ctx, store.MembershipInput{OrganizationID: keep.ID, UserID: u.ID, Role: "viewer"})
	require.NoError(t, err)

	require.NoError(t, st.DeleteOrganization(ctx, store.AllOrgs, org.ID))

	_, err = st.GetMembership(ctx, store.AllOrgs, m.ID)
	require.ErrorIs(t, err, store.ErrNotFound)
	list, n, err := st.ListMemberships(ctx, store.AllOrgs, store.Page{Limit: 10})
	require.NoError(t, err)
	require.Equal(t, 1, n)
	require.Equal(t, kept.ID, list[0].ID)
	_, err = st.GetUser(ctx, u.ID)
	require.NoError(t, err, "the user stays")
}

func TestUsers(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	st, _ := storetest.New(t)

	n, err := st.CountUsers(ctx)
	require.NoError(t, err)
	require.Zero(t, n)

	u, err := st.CreateUser(ctx, store.UserInput{Username: "alice", Email: "a@example.com", FirstName: "Alice",
		LastName: "Liddell", PasswordHash: "h1", IsStaff: true, IsActive: true})
	require.NoError(t, err)
	require.Equal(t, "alice", u.Username)
	require.Equal(t, "a@example.com", u.Email)
	require.Equal(t, "h1", u.PasswordHash)
	require.True(t, u.IsStaff)
	require.True(t, u.IsActive)
	require.Nil(t, u.LastLogin)

	t.Run("duplicate username", func(t *testing.T) {
		_, err := st.CreateUser(ctx, store.UserInput{Username: "alice", PasswordHash: "h2", IsActive: true})
		var fe *store.FieldError
		require.ErrorAs(t, err, &fe)
		require.Equal(t, "username", fe.Field)
		require.Contains(t, fe.Msg, "username")
	})

	t.Run("read", func(t *testing.T) {
		byID, err := st.GetUser(ctx, u.ID)
		require.NoError(t, err)
		require.Equal(t, u.ID, byID.ID)
		byName, err := st.GetUserByUsername(ctx, "alice")
		require.NoError(t, err)
		require.Equal(t, u.ID, byName.ID)
		_, err = st.GetUser(ctx, uuid.New())
		require.ErrorIs(t, err, store.ErrNotFound)
		_, err = st.GetUserByUsername(ctx, "nobody")
		require.ErrorIs(t, err, store.ErrNotFound)
	})

	t.Run("update", func(t *testing.T) {
		tests := []struct {
			name     string
			hash     string
			wantHash string
		}{
			{"empty hash keeps the password", "", "h1"},
			{"new hash replaces it", "h3", "h3"},
			{"empty hash again keeps the new one", "", "h3"},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				up, err := st.UpdateUser(ctx, u.ID, store.UserInput{Username: "alice", Email: "new@example.com",
					PasswordHash: tc.hash, IsStaff: false, IsActive: true})
				require.NoError(t, err)
				require.Equal(t, tc.wantHash, up.PasswordHash)
				require.Equal(t, "new@example.com", up.Email)
				require.False(t, up.IsStaff)
				stored, err := st.GetUser(ctx, u.ID)
				require.NoError(t, err)
				require.Equal(t, tc.wantHash, stored.PasswordHash)
			})
		}
		_, err := st.UpdateUser(ctx, uuid.New(), store.UserInput{Username: "ghost", IsActive: true})
		require.ErrorIs(t, err, store.ErrNotFound)
	})

	t.Run("rename onto another user", func(t *testing.T) {
		bob := mkUser(t, st, "bob")
		_, err := st.UpdateUser(ctx, bob.ID, store.UserInput{Username: "alice", IsActive: true})
		var fe *store.FieldError
		require.ErrorAs(t, err, &fe)
		require.Equal(t, "username", fe.Field)
	})

	t.Run("touch login", func(t *testing.T) {
		require.NoError(t, st.TouchLogin(ctx, u.ID))
		got, err := st.GetUser(ctx, u.ID)
		require.NoError(t, err)
		require.NotNil(t, got.LastLogin)
	})

	t.Run("list and delete", func(t *testing.T) {
		carol := mkUser(t, st, "carol")
		list, n, err := st.ListUsers(ctx, store.Page{Limit: 10})
		require.NoError(t, err)
		require.Equal(t, 3, n)
		names := make([]string, len(list))
		for i, x := range list {
			names[i] = x.Username
		}
		require.Equal(t, []string{"alice", "bob", "carol"}, names, "oldest first")

		page, n, err := st.ListUsers(ctx, store.Page{Limit: 1, Offset: 1})
		require.NoError(t, err)
		require.Equal(t, 3, n)
		require.Len(t, page, 1)
		require.Equal(t, "bob", page[0].Username)

		require.NoError(t, st.DeleteUser(ctx, carol.ID))
		require.ErrorIs(t, st.DeleteUser(ctx, carol.ID), store.ErrNotFound)
		n, err = st.CountUsers(ctx)
		require.NoError(t, err)
		require.Equal(t, 2, n)
	})
}

func TestTokens(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	st, url := storetest.New(t)
	u := mkUser(t, st, "tok")

	key, err := st.CreateToken(ctx, u.ID)
	require.NoError(t, err)
	require.Len(t, key, 40)
	_, err = hex.DecodeString(key)
	require.NoError(t, err, "the key is hex")

	other, err := st.CreateToken(ctx, u.ID)
	require.NoError(t, err)
	require.NotEqual(t, key, other, "keys are random")

	t.Run("lookup", func(t *testing.T) {
		tests := []struct {
			name    string
			key     string
			wantErr error
		}{
			{"the key", key, nil},
			{"the other key", other, nil},
			{"wrong key", strings.Repeat("0", 40), store.ErrNotFound},
			{"prefix only", key[:8], store.ErrNotFound},
			{"upper case", strings.ToUpper(key), store.ErrNotFound},
			{"empty", "", store.ErrNotFound},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				got, err := st.UserByToken(ctx, tc.key)
				if tc.wantErr != nil {
					require.ErrorIs(t, err, tc.wantErr)
					return
				}
				require.NoError(t, err)
				require.Equal(t, u.ID, got.ID)
			})
		}
	})

	t.Run("the key is stored only as a hash", func(t *testing.T) {
		conn := connect(t, url)
		var hash []byte
		var prefix string
		require.NoError(t, conn.QueryRow(ctx, `SELECT key_hash, key_prefix FROM api_tokens WHERE key_hash = $1`,
			store.TokenHash(key)).Scan(&hash, &prefix))
		require.NotEqual(t, []byte(key), hash)
		require.Equal(t, store.TokenHash(key), hash)
		require.Equal(t, key[:8], prefix)

		// No column, in any text form, holds the key.
		var n int
		require.NoError(t, conn.QueryRow(ctx, `SELECT count(*) FROM api_tokens t
			WHERE t::text LIKE '%' || $1 || '%' OR encode(t.key_hash, 'escape') LIKE '%' || $1 || '%'`, key).Scan(&n))
		require.Zero(t, n)
	})

	t.Run("inactive user", func(t *testing.T) {
		_, err := st.UpdateUser(ctx, u.ID, store.UserInput{Username: u.Username, IsActive: false})
		require.NoError(t, err)
		_, err = st.UserByToken(ctx, key)
		require.ErrorIs(t, err, store.ErrNotFound)
	})

	t.Run("unknown user", func(t *testing.T) {
		_, err := st.CreateToken(ctx, uuid.New())
		var fe *store.FieldError
		require.ErrorAs(t, err, &fe)
		require.Equal(t, "user", fe.Field)
	})

	t.Run("deleting the user deletes the tokens", func(t *testing.T) {
		require.NoError(t, st.DeleteUser(ctx, u.ID))
		var n int
		require.NoError(t, connect(t, url).QueryRow(ctx, `SELECT count(*) FROM api_tokens`).Scan(&n))
		require.Zero(t, n)
	})
}

func TestBootstrap(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)

	t.Run("once", func(t *testing.T) {
		st, _ := storetest.New(t)
		u, token, created, err := st.Bootstrap(ctx, "admin", "hash")
		require.NoError(t, err)
		require.True(t, created)
		require.Equal(t, "admin", u.Username)
		require.True(t, u.IsStaff)
		require.True(t, u.IsActive)
		require.Len(t, token, 40)
		byToken, err := st.UserByToken(ctx, token)
		require.NoError(t, err)
		require.Equal(t, u.ID, byToken.ID)

		u2, token2, created2, err := st.Bootstrap(ctx, "admin2", "hash")
		require.NoError(t, err)
		require.False(t, created2)
		require.Empty(t, token2)
		require.Equal(t, uuid.Nil, u2.ID)
		n, err := st.CountUsers(ctx)
		require.NoError(t, err)
		require.Equal(t, 1, n)
	})

	t.Run("users exist", func(t *testing.T) {
		st, _ := storetest.New(t)
		mkUser(t, st, "someone")
		_, _, created, err := st.Bootstrap(ctx, "admin", "hash")
		require.NoError(t, err)
		require.False(t, created)
		_, err = st.GetUserByUsername(ctx, "admin")
		require.ErrorIs(t, err, store.ErrNotFound)
	})

	t.Run("concurrently", func(t *testing.T) {
		st, _ := storetest.New(t)
		const callers = 6
		var (
			wg      sync.WaitGroup
			mu      sync.Mutex
			created int
			errs    []error
		)
		for i := range callers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, _, c, err := st.Bootstrap(ctx, fmt.Sprintf("admin%d", i), "hash")
				mu.Lock()
				defer mu.Unlock()
				if err != nil {
					errs = append(errs, err)
				}
				if c {
					created++
				}
			}()
		}
		wg.Wait()
		require.Empty(t, errs)
		require.Equal(t, 1, created)
		n, err := st.CountUsers(ctx)
		require.NoError(t, err)
		require.Equal(t, 1, n)
	})
}

func TestUserMemberships(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	st, _ := storetest.New(t)
	u := mkUser(t, st, "multi")
	other := mkUser(t, st, "other")
	a := mkOrg(t, st, "A", true)
	b := mkOrg(t, st, "B", true)
	inactive := mkOrg(t, st, "Inactive", false)
	c := mkOrg(t, st, "C", true)

	// Joined in the order B, inactive, A, C: memberships come back in that order, without
	// the inactive organization's.
	var want []int64
	for _, o := range []store.Organization{b, inactive, a, c} {
		m, err := st.CreateMembership(ctx, store.MembershipInput{OrganizationID: o.ID, UserID: u.ID, Role: "viewer"})
		require.NoError(t, err)
		if o.IsActive {
			want = append(want, m.ID)
		}
	}
	_, err := st.CreateMembership(ctx, store.MembershipInput{OrganizationID: a.ID, UserID: other.ID, Role: "editor"})
	require.NoError(t, err)

	tests := []struct {
		name    string
		user    uuid.UUID
		wantIDs []int64
		wantOrg []uuid.UUID
	}{
		{"member of several", u.ID, want, []uuid.UUID{b.ID, a.ID, c.ID}},
		{"member of one", other.ID, nil, []uuid.UUID{a.ID}},
		{"unknown user", uuid.New(), nil, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			list, err := st.UserMemberships(ctx, tc.user)
			require.NoError(t, err)
			var ids []int64
			var orgs []uuid.UUID
			for _, m := range list {
				ids = append(ids, m.ID)
				orgs = append(orgs, m.OrganizationID)
				require.Equal(t, tc.user, m.UserID)
			}
			require.Equal(t, tc.wantOrg, orgs)
			if tc.wantIDs != nil {
				require.Equal(t, tc.wantIDs, ids)
			}
		})
	}

	t.Run("deactivating an organization hides its membership", func(t *testing.T) {
		_, err := st.UpdateOrganization(ctx, store.AllOrgs, b.ID, store.OrganizationInput{Name: "B", IsActive: false})
		require.NoError(t, err)
		list, err := st.UserMemberships(ctx, u.ID)
		require.NoError(t, err)
		require.Len(t, list, 2)
		require.Equal(t, a.ID, list[0].OrganizationID)
		require.Equal(t, c.ID, list[1].OrganizationID)
	})
}

func TestPing(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	st, url := storetest.New(t)
	require.NoError(t, st.Ping(ctx))

	// A store of its own, closed: Ping reports the database unavailable.
	closed, err := store.Open(ctx, store.Config{URL: url}, discard())
	require.NoError(t, err)
	closed.Close()
	require.ErrorIs(t, closed.Ping(ctx), store.ErrUnavailable)
}

func TestOpenErrorsHideThePassword(t *testing.T) {
	t.Parallel()
	const password = "Sup3rS3cretPassw0rd"
	port := storetest.FreePort(t)
	tests := []struct {
		name string
		url  string
	}{
		{"closed port", fmt.Sprintf("postgres://amrd:%s@127.0.0.1:%d/amrd?sslmode=disable&connect_timeout=2", password, port)},
		{"closed port, key=value form", fmt.Sprintf("host=127.0.0.1 port=%d user=amrd password=%s dbname=amrd sslmode=disable connect_timeout=2", port, password)},
		{"bad port", fmt.Sprintf("postgres://amrd:%s@127.0.0.1:notaport/amrd", password)},
		{"bad option", fmt.Sprintf("postgres://amrd:%s@127.0.0.1:%d/amrd?sslmode=bogus", password, port)},
		{"bad pool option", fmt.Sprintf("postgres://amrd:%s@127.0.0.1:%d/amrd?pool_max_conns=many", password, port)},
		{"wrong password", withPassword(t, storetest.AdminURL(t), password)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			st, err := store.Open(testCtx(t), store.Config{URL: tc.url}, discard())
			if st != nil {
				st.Close()
			}
			require.Error(t, err)
			require.NotContains(t, err.Error(), password)
			require.NotContains(t, fmt.Sprintf("%+v", err), password)
			for e := errors.Unwrap(err); e != nil; e = errors.Unwrap(e) {
				require.NotContains(t, e.Error(), password, "no wrapped error holds the password")
			}
		})
	}
}

// withPassword returns u with its password replaced.
func withPassword(t *testing.T, u, password string) string {
	t.Helper()
	parsed, err := neturl.Parse(u)
	require.NoError(t, err)
	parsed.User = neturl.UserPassword(parsed.User.Username(), password)
	return parsed.String()
}

// A Table's missing operation is an error, not a panic.
func TestTableMissingOperation(t *testing.T) {
	t.Parallel()
	var st store.Store
	_, err := st.MeterSystemEvents().Update(context.Background(), store.AllOrgs, 1, store.MeterSystemEvent{})
	require.Error(t, err)
	_, err = st.SecurityKeys().Create(context.Background(), store.SecurityKeys{})
	require.Error(t, err)
}
