package api_test

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/amrd/amrd/api"
	"github.com/amrd/amrd/store"
)

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

func TestOrganizationCRUD(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	r := e.do("POST", "/v1/organizations/", e.token(), map[string]any{"name": "Org C"})
	require.Equal(t, 201, r.status, "body: %s", r.body)
	c := r.json(t)
	id := c["id"].(string)
	require.Equal(t, "Org C", c["name"])
	require.Equal(t, true, c["is_active"])
	require.Equal(t, []any{}, c["members"])
	for _, k := range []string{"created_at", "updated_at"} {
		require.NotEmpty(t, c[k])
	}

	// Trailing slash or not, the same route.
	for _, p := range []string{"/v1/organizations/" + id, "/v1/organizations/" + id + "/"} {
		r = e.do("GET", p, e.token(), nil)
		require.Equal(t, 200, r.status, p)
		require.Equal(t, id, r.json(t)["id"])
	}

	r = e.do("PATCH", "/v1/organizations/"+id, e.token(), map[string]any{"is_active": false})
	require.Equal(t, 200, r.status, "body: %s", r.body)
	require.Equal(t, "Org C", r.json(t)["name"], "PATCH keeps fields not sent")
	require.Equal(t, false, r.json(t)["is_active"])

	r = e.do("PUT", "/v1/organizations/"+id, e.token(), map[string]any{"is_active": false})
	require.Equal(t, 400, r.status, "PUT needs every required field")
	require.Equal(t, []any{"This field is required."}, r.json(t)["name"])

	r = e.do("PUT", "/v1/organizations/"+id, e.token(), map[string]any{"name": "Org C2"})
	require.Equal(t, 200, r.status)
	require.Equal(t, "Org C2", r.json(t)["name"])
	require.Equal(t, false, r.json(t)["is_active"], "PUT keeps optional fields it does not send, as DRF does")

	r = e.do("GET", "/v1/organizations/"+e.orgA.ID.String(), e.token(), nil)
	require.Len(t, r.json(t)["members"], 3)

	require.Equal(t, 204, e.do("DELETE", "/v1/organizations/"+id, e.token(), nil).status)
	require.Equal(t, 404, e.do("GET", "/v1/organizations/"+id, e.token(), nil).status)
	require.Equal(t, 404, e.do("DELETE", "/v1/organizations/"+id, e.token(), nil).status)
}

func TestOrganizationValidation(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	long := strings.Repeat("x", 65)
	tests := []struct {
		name  string
		body  any
		field string
		msg   string
	}{
		{"missing name", map[string]any{}, "name", "This field is required."},
		{"blank name", map[string]any{"name": ""}, "name", "This field may not be blank."},
		{"null name", map[string]any{"name": nil}, "name", "This field may not be null."},
		{"name too long", map[string]any{"name": long}, "name", "Ensure this field has no more than 64 characters."},
		{"name not a string", map[string]any{"name": 5}, "name", "Not a valid string."},
		{"is_active not a boolean", map[string]any{"name": "x", "is_active": "yes"}, "is_active", "Must be a valid boolean."},
		{"array body", []any{1}, "non_field_errors", "Invalid data. Expected a dictionary, but got array."},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := e.do("POST", "/v1/organizations", e.token(), tc.body)
			require.Equal(t, 400, r.status, "body: %s", r.body)
			require.Equal(t, []any{tc.msg}, r.json(t)[tc.field])
		})
	}
	t.Run("64 characters is fine", func(t *testing.T) {
		r := e.do("POST", "/v1/organizations", e.token(), map[string]any{"name": strings.Repeat("é", 64)})
		require.Equal(t, 201, r.status, "body: %s", r.body)
	})
}

func TestMalformedRequests(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	tests := []struct {
		name, method, path string
		body               any
		headers            []string
		status             int
	}{
		{"malformed JSON", "POST", "/v1/organizations/", `{"name": `, nil, 400},
		{"JSON null", "POST", "/v1/organizations/", `null`, nil, 400},
		{"wrong content type", "POST", "/v1/organizations/", `name=x`, []string{"Content-Type", "application/x-www-form-urlencoded"}, 415},
		{"body too large", "POST", "/v1/organizations/", `{"name":"` + strings.Repeat("x", 70<<10) + `"}`, nil, 413},
		{"invalid uuid in path", "GET", "/v1/organizations/not-a-uuid", nil, nil, 404},
		{"short uuid in path", "GET", "/v1/organizations/1234", nil, nil, 404},
		{"invalid membership id", "GET", "/v1/organizations/memberships/abc", nil, nil, 404},
		{"huge membership id", "GET", "/v1/organizations/memberships/99999999999999999999999", nil, nil, 404},
		{"unknown route", "GET", "/v1/nothing-here", nil, nil, 404},
		{"method not in contract", "POST", "/v1/organizations/memberships/1", `{}`, nil, 405},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := e.do(tc.method, tc.path, e.token(), tc.body, tc.headers...)
			require.Equal(t, tc.status, r.status, "body: %s", r.body)
			m := r.json(t)
			require.NotEmpty(t, m)
			require.NotContains(t, string(r.body), "fiber", "no internal error text")
		})
	}
}

func TestPagination(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	for i := 0; i < 5; i++ { // 7 organizations in all
		_, err := e.st.CreateOrganization(ctx, store.OrganizationInput{Name: fmt.Sprintf("P%d", i), IsActive: true})
		require.NoError(t, err)
	}
	all := ids(t, e.do("GET", "/v1/organizations/?limit=100", e.token(), nil))
	require.Len(t, all, 7)

	type page struct {
		count      float64
		n          int
		next, prev string // "" = null
	}
	base := e.base + "/v1/organizations/"
	tests := []struct {
		query  string
		status int
		want   page
		field  string
	}{
		{"", 200, page{7, 7, "", ""}, ""},
		{"?limit=3", 200, page{7, 3, base + "?limit=3&offset=3", ""}, ""},
		{"?limit=3&offset=3", 200, page{7, 3, base + "?limit=3&offset=6", base + "?limit=3"}, ""},
		{"?limit=3&offset=6", 200, page{7, 1, "", base + "?limit=3&offset=3"}, ""},
		{"?limit=3&offset=100", 200, page{7, 0, "", base + "?limit=3&offset=6"}, ""},
		{"?limit=100000", 200, page{7, 7, "", ""}, ""},
		{"?limit=99999999999999999999999", 200, page{7, 7, "", ""}, ""},
		{"?offset=2", 200, page{7, 5, "", base + "?limit=100"}, ""},
		{"?limit=0", 400, page{}, "limit"},
		{"?limit=-1", 400, page{}, "limit"},
		{"?limit=abc", 400, page{}, "limit"},
		{"?limit=1.5", 400, page{}, "limit"},
		{"?offset=-3", 400, page{}, "offset"},
		{"?offset=x", 400, page{}, "offset"},
		{"?offset=99999999999999999999", 400, page{}, "offset"},
	}
	for _, tc := range tests {
		t.Run(tc.query, func(t *testing.T) {
			r := e.do("GET", "/v1/organizations/"+tc.query, e.token(), nil)
			require.Equal(t, tc.status, r.status, "body: %s", r.body)
			m := r.json(t)
			if tc.status != 200 {
				require.Contains(t, m, tc.field)
				return
			}
			require.Equal(t, tc.want.count, m["count"])
			require.Len(t, m["results"], tc.want.n)
			str := func(v any) string { s, _ := v.(string); return s }
			require.Equal(t, tc.want.next, str(m["next"]), "next")
			require.Equal(t, tc.want.prev, str(m["previous"]), "previous")
		})
	}
	t.Run("pages are stable and cover every row once", func(t *testing.T) {
		var got []string
		for off := 0; off < 7; off += 2 {
			got = append(got, ids(t, e.do("GET", fmt.Sprintf("/v1/organizations/?limit=2&offset=%d", off), e.token(), nil))...)
		}
		require.Equal(t, all, got)
	})
	t.Run("other query parameters are kept in links", func(t *testing.T) {
		m := e.do("GET", "/v1/organizations/?limit=2&foo=bar", e.token(), nil).json(t)
		require.Equal(t, base+"?foo=bar&limit=2&offset=2", m["next"])
	})
}

func TestOrganizationIsolation(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	viewer := e.jwtFor(e.viewer, nil)
	editor := e.jwtFor(e.editor, nil)
	a, b := e.orgA.ID.String(), e.orgB.ID.String()

	for name, tok := range map[string]string{"viewer": viewer, "editor": editor} {
		t.Run(name+" lists only its organization", func(t *testing.T) {
			r := e.do("GET", "/v1/organizations/", tok, nil)
			require.Equal(t, []string{a}, ids(t, r))
			require.Equal(t, 200, e.do("GET", "/v1/organizations/"+a, tok, nil).status)
		})
		t.Run(name+" gets 404 for another organization", func(t *testing.T) {
			for _, m := range []string{"GET", "PUT", "PATCH", "DELETE"} {
				r := e.do(m, "/v1/organizations/"+b, tok, map[string]any{"name": "stolen"})
				require.Equal(t, 404, r.status, "%s: %s", m, r.body)
			}
		})
		t.Run(name+" sees only its organization's memberships", func(t *testing.T) {
			r := e.do("GET", "/v1/organizations/memberships/", tok, nil)
			require.Equal(t, float64(3), r.json(t)["count"])
			var bothInB int64
			ms, _, err := e.st.ListMemberships(context.Background(), store.OrgScope(e.orgB.ID), store.Page{Limit: 10})
			require.NoError(t, err)
			bothInB = ms[0].ID
			require.Equal(t, 404, e.do("GET", "/v1/organizations/memberships/"+itoa(bothInB), tok, nil).status)
			require.Equal(t, 404, e.do("DELETE", "/v1/organizations/memberships/"+itoa(bothInB), tok, nil).status)
		})
		t.Run(name+" may not write organizations or memberships", func(t *testing.T) {
			require.Equal(t, 403, e.do("POST", "/v1/organizations/", tok, map[string]any{"name": "x"}).status)
			require.Equal(t, 403, e.do("PATCH", "/v1/organizations/"+a, tok, map[string]any{"name": "x"}).status)
			require.Equal(t, 403, e.do("DELETE", "/v1/organizations/"+a, tok, nil).status)
			r := e.do("POST", "/v1/organizations/memberships/", tok, map[string]any{"organization": a, "user": e.loner.ID})
			require.Equal(t, 403, r.status)
			require.Contains(t, r.json(t)["detail"], "staff")
		})
		t.Run(name+" may not manage users", func(t *testing.T) {
			require.Equal(t, 403, e.do("GET", "/v1/users/", tok, nil).status)
			require.Equal(t, 403, e.do("POST", "/v1/users/", tok, map[string]any{"username": "x", "password": "12345678"}).status)
		})
	}
	// Nothing changed.
	o, err := e.st.GetOrganization(context.Background(), store.AllOrgs, e.orgB.ID)
	require.NoError(t, err)
	require.Equal(t, "Org B", o.Name)
}

func TestMemberships(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	a := e.orgA.ID.String()
	r := e.do("POST", "/v1/organizations/memberships/", e.token(), map[string]any{"organization": a, "user": e.loner.ID})
	require.Equal(t, 201, r.status, "body: %s", r.body)
	m := r.json(t)
	require.Equal(t, "viewer", m["role"], "default role")
	require.Equal(t, a, m["organization"])
	id := itoa(int64(m["id"].(float64)))

	r = e.do("POST", "/v1/organizations/memberships/", e.token(), map[string]any{"organization": a, "user": e.loner.ID})
	require.Equal(t, 400, r.status, "duplicate membership: %s", r.body)
	require.Contains(t, r.json(t), "user")

	r = e.do("PATCH", "/v1/organizations/memberships/"+id, e.token(), map[string]any{"role": "editor"})
	require.Equal(t, 200, r.status)
	require.Equal(t, "editor", r.json(t)["role"])

	tests := []struct {
		name  string
		body  map[string]any
		field string
	}{
		{"unknown user", map[string]any{"organization": a, "user": "6f1c2a0e-0000-4000-8000-000000000000"}, "user"},
		{"unknown organization", map[string]any{"organization": "6f1c2a0e-0000-4000-8000-000000000000", "user": e.loner.ID}, "organization"},
		{"bad role", map[string]any{"organization": a, "user": e.loner.ID, "role": "owner"}, "role"},
		{"missing user", map[string]any{"organization": a}, "user"},
		{"user not a uuid", map[string]any{"organization": a, "user": 12}, "user"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := e.do("POST", "/v1/organizations/memberships", e.token(), tc.body)
			require.Equal(t, 400, r.status, "body: %s", r.body)
			require.Contains(t, r.json(t), tc.field)
		})
	}

	// An editor's JWT now works for the loner, as an editor.
	tok := e.jwtFor(e.loner, nil)
	require.Equal(t, []string{a}, ids(t, e.do("GET", "/v1/organizations/", tok, nil)))

	require.Equal(t, 204, e.do("DELETE", "/v1/organizations/memberships/"+id, e.token(), nil).status)
	require.Equal(t, 404, e.do("GET", "/v1/organizations/memberships/"+id, e.token(), nil).status)
}

func TestUsersAPI(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	r := e.do("POST", "/v1/users/", e.token(), map[string]any{"username": "newbie", "password": "long-enough-1", "email": "n@example.org"})
	require.Equal(t, 201, r.status, "body: %s", r.body)
	require.NotContains(t, string(r.body), "password")
	require.NotContains(t, string(r.body), "long-enough-1")
	u := r.json(t)
	id := u["id"].(string)
	require.Equal(t, false, u["is_staff"])
	require.Equal(t, true, u["is_active"])

	// The new password works.
	_, err := e.st.CreateMembership(context.Background(), store.MembershipInput{OrganizationID: e.orgA.ID, UserID: mustUUID(t, id), Role: "viewer"})
	require.NoError(t, err)
	require.Equal(t, 200, e.do("GET", "/v1/organizations/", basic("newbie", "long-enough-1"), nil).status)

	r = e.do("PATCH", "/v1/users/"+id, e.token(), map[string]any{"password": "another-secret-2"})
	require.Equal(t, 200, r.status, "body: %s", r.body)
	require.NotContains(t, string(r.body), "another-secret-2")
	require.Equal(t, 401, e.do("GET", "/v1/organizations/", basic("newbie", "long-enough-1"), nil).status)
	require.Equal(t, 200, e.do("GET", "/v1/organizations/", basic("newbie", "another-secret-2"), nil).status)

	list := e.do("GET", "/v1/users/", e.token(), nil)
	require.Equal(t, 200, list.status)
	require.NotContains(t, string(list.body), "$2a$", "no bcrypt hash in responses")
	require.Equal(t, float64(6), list.json(t)["count"])

	tests := []struct {
		name  string
		body  map[string]any
		field string
	}{
		{"short password", map[string]any{"username": "x1", "password": "short"}, "password"},
		{"missing password", map[string]any{"username": "x2"}, "password"},
		{"bad username", map[string]any{"username": "a b", "password": "long-enough-1"}, "username"},
		{"duplicate username", map[string]any{"username": "newbie", "password": "long-enough-1"}, "username"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := e.do("POST", "/v1/users/", e.token(), tc.body)
			if tc.field == "" {
				require.Equal(t, 409, r.status, "body: %s", r.body)
				return
			}
			require.Equal(t, 400, r.status, "body: %s", r.body)
			require.Contains(t, r.json(t), tc.field)
		})
	}
	require.Equal(t, 204, e.do("DELETE", "/v1/users/"+id, e.token(), nil).status)
	require.Equal(t, 404, e.do("GET", "/v1/users/"+id, e.token(), nil).status)
}

func TestHealthAndMetrics(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	for _, p := range []string{"/_health/", "/_health"} {
		r := e.do("GET", p, "", nil)
		require.Equal(t, 200, r.status)
		require.Equal(t, "up", r.json(t)["database"])
	}
	e.do("GET", "/v1/organizations/", e.token(), nil)
	r := e.do("GET", "/metrics", "", nil)
	require.Equal(t, 200, r.status)
	require.Contains(t, string(r.body), `amrd_http_requests_total{method="GET",route="/v1/organizations",status="200"} 1`)
	require.Contains(t, string(r.body), `amrd_http_request_duration_seconds_bucket`)
}

func TestCORS(t *testing.T) {
	t.Parallel()
	t.Run("whitelist", func(t *testing.T) {
		e := newEnv(t, func(c *api.Config) { c.CORSWhitelist = []string{"https://dash.example.org"} })
		r := e.do("OPTIONS", "/v1/organizations/", "", nil, "Origin", "https://dash.example.org", "Access-Control-Request-Method", "GET")
		require.Equal(t, "https://dash.example.org", r.header.Get("Access-Control-Allow-Origin"))
		r = e.do("OPTIONS", "/v1/organizations/", "", nil, "Origin", "https://evil.example.org", "Access-Control-Request-Method", "GET")
		require.Empty(t, r.header.Get("Access-Control-Allow-Origin"))
	})
	t.Run("allow all", func(t *testing.T) {
		e := newEnv(t, func(c *api.Config) { c.CORSAllowAll = true })
		r := e.do("GET", "/v1/organizations/", e.token(), nil, "Origin", "https://any.example.org")
		require.Equal(t, "*", r.header.Get("Access-Control-Allow-Origin"))
	})
	t.Run("default allows no origin", func(t *testing.T) {
		e := newEnv(t)
		r := e.do("GET", "/v1/organizations/", e.token(), nil, "Origin", "https://any.example.org")
		require.Equal(t, 200, r.status)
		require.Empty(t, r.header.Get("Access-Control-Allow-Origin"))
	})
}
