package api_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"io"
	"mime"
	"net/url"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/google/uuid"
	"github.com/stretchr/testify/require"
)

// served fetches /v1/schema without credentials and loads it as OpenAPI 3.
func (e *env) served() *openapi3.T {
	e.t.Helper()
	r := e.do("GET", "/v1/schema", "", nil)
	require.Equal(e.t, 200, r.status, "body: %s", r.body)
	doc, err := openapi3.NewLoader().LoadFromData(r.body)
	require.NoError(e.t, err)
	return doc
}

// TestSchemaIsValidOpenAPI checks that /v1/schema is a valid OpenAPI 3 document, public,
// and states what clients need of it: the security schemes, the page size's limits, the
// public routes and each operation's error statuses.
func TestSchemaIsValidOpenAPI(t *testing.T) {
	e := newEnv(t)
	r := e.do("GET", "/v1/schema/", "Token wrong", nil) // public: bad credentials are not even looked at
	require.Equal(t, 200, r.status)
	require.True(t, strings.HasPrefix(r.header.Get("Content-Type"), "application/json"))
	doc := e.served()
	require.NoError(t, doc.Validate(context.Background()))

	require.True(t, strings.HasPrefix(doc.OpenAPI, "3."))
	require.Contains(t, doc.Info.Description, "Automatic Meter Reading")
	require.Equal(t, "/", doc.Servers[0].URL)
	for name, want := range map[string]string{"Token": "apiKey", "Basic": "http", "JWT": "http"} {
		s := doc.Components.SecuritySchemes[name]
		require.NotNil(t, s, name)
		require.Equal(t, want, s.Value.Type, name)
	}
	require.Equal(t, "Authorization", doc.Components.SecuritySchemes["Token"].Value.Name)

	limit := doc.Components.Parameters["Limit"].Value
	require.EqualValues(t, 100, limit.Schema.Value.Default)
	require.EqualValues(t, 1000, *limit.Schema.Value.Max)
	require.Contains(t, limit.Description, "1000")
	for _, p := range []string{"/v1/schema", "/v1/docs", "/_health/", "/metrics", "/v1/auth/jwt/token/"} {
		op := doc.Paths.Value(p).Get
		if op == nil {
			op = doc.Paths.Value(p).Post
		}
		require.NotNil(t, op.Security, p)
		require.Empty(t, *op.Security, "%s needs no authentication", p)
	}
	sims := doc.Paths.Value("/v1/metering/sim-cards/{id}")
	require.Nil(t, sims.Get.Security, "metering routes use the document's default security")
	for _, code := range []string{"401", "404", "429", "503"} {
		require.NotNil(t, sims.Get.Responses.Value(code), "GET sim card documents %s", code)
	}
	for _, code := range []string{"400", "401", "403", "404", "409", "413", "415", "429", "503"} {
		require.NotNil(t, sims.Patch.Responses.Value(code), "PATCH sim card documents %s", code)
	}
	require.Empty(t, sims.Patch.RequestBody.Value.Content.Get("application/json").Schema.Value.Required, "PATCH bodies are partial")

	member := doc.Components.Schemas["OrganizationMember"].Value.Properties["role"].Value
	require.Equal(t, []any{"viewer", "editor"}, member.Enum)
	require.Equal(t, "viewer", member.Default)
	user := doc.Components.Schemas["User"].Value
	require.True(t, user.Properties["password"].Value.WriteOnly)
	require.EqualValues(t, 8, user.Properties["password"].Value.MinLength)
	for _, f := range []string{"id", "username", "email", "first_name", "last_name", "is_staff", "is_active", "last_login", "created_at", "updated_at"} {
		require.Contains(t, user.Properties, f)
	}
	keys := doc.Components.Schemas
	require.True(t, keys["MeterSecurityKeyCollectionIn"].Value.Properties["dlms_master_key"].Value.WriteOnly)
	require.NotContains(t, keys["MeterSecurityKeyCollectionOut"].Value.Properties, "dlms_master_key")
	require.Equal(t, "#/components/schemas/MeterDevice", keys["MeterSecurityKeyCollectionOut"].Value.Properties["meter"].Value.AllOf[0].Ref)
}

// TestSchemaTags checks the tags as Swagger UI shows them (by name, in the order of the
// document's tags) and Redoc (by x-displayName, in the groups of x-tagGroups): each
// operation has one tag, named as it is displayed, listed once, in the order of the
// groups, and every tag is in a group.
func TestSchemaTags(t *testing.T) {
	e := newEnv(t)
	r := e.do("GET", "/v1/schema", "", nil)
	require.Equal(t, 200, r.status)
	var doc struct {
		Tags []struct {
			Name        string `json:"name"`
			DisplayName string `json:"x-displayName"`
			Trait       bool   `json:"x-traitTag"`
		} `json:"tags"`
		Groups []struct {
			Tags []string `json:"tags"`
		} `json:"x-tagGroups"`
		Paths map[string]map[string]json.RawMessage `json:"paths"`
	}
	require.NoError(t, json.Unmarshal(r.body, &doc))
	var names, grouped []string
	for _, tag := range doc.Tags {
		require.Equal(t, tag.DisplayName, tag.Name, "a tag is named as it is displayed")
		require.NotContains(t, names, tag.Name, "listed once")
		names = append(names, tag.Name)
	}
	for _, g := range doc.Groups {
		grouped = append(grouped, g.Tags...)
	}
	require.Equal(t, names, grouped, "every tag in a group, in the groups' order")
	require.Contains(t, names, "Organization Memberships")
	used := map[string]bool{}
	for path, item := range doc.Paths {
		for method, raw := range item {
			if !contains([]string{"get", "put", "post", "delete", "patch"}, method) {
				continue // parameters, summary, ...
			}
			var op struct{ Tags []string }
			require.NoError(t, json.Unmarshal(raw, &op))
			require.Len(t, op.Tags, 1, "%s %s", method, path)
			require.Contains(t, names, op.Tags[0], "%s %s", method, path)
			used[op.Tags[0]] = true
		}
	}
	for _, tag := range doc.Tags {
		require.True(t, tag.Trait || used[tag.Name], "tag %s has operations or is a section (x-traitTag)", tag.Name)
	}
}

// amrdAdditions are the paths amrd serves under the contract's prefixes that the
// contract does not have: AMR task runs and their external worker protocol, and meter
// reading rollups.
var amrdAdditions = []string{
	"/v1/metering/meter-reading-rollups/",
	"/v1/metering/amr-task-runs/",
	"/v1/metering/amr-task-runs/{id}",
	"/v1/metering/amr-task-runs/claim",
	"/v1/metering/amr-task-runs/{id}/heartbeat",
	"/v1/metering/amr-task-runs/{id}/result",
}

// TestSchemaCoversTheContract checks that the served document has every operation of
// the contract, with the same methods, and no other operation under the contract's paths
// but amrd's additions. With TestSchemaListsEveryRoute this says that amrd routes exactly
// the contract's methods, and its additions.
func TestSchemaCoversTheContract(t *testing.T) {
	e := newEnv(t)
	doc := e.served()
	c := contract(t)
	for path, item := range c.Paths.Map() {
		served := doc.Paths.Value("/v1" + path)
		require.NotNil(t, served, "the served document lacks %s", path)
		for method := range item.Operations() {
			require.NotNil(t, served.GetOperation(method), "the served document lacks %s %s", method, path)
		}
		for method := range served.Operations() {
			require.NotNil(t, item.GetOperation(method), "the served document adds %s %s, which the contract does not list", method, path)
		}
	}
	for path := range doc.Paths.Map() {
		if contains(amrdAdditions, path) {
			require.Nil(t, c.Paths.Value(strings.TrimPrefix(path, "/v1")), "%s is in the contract now", path)
			continue
		}
		if strings.HasPrefix(path, "/v1/metering/") || strings.HasPrefix(path, "/v1/organizations/") || strings.HasPrefix(path, "/v1/auth/") {
			require.NotNil(t, c.Paths.Value(strings.TrimPrefix(path, "/v1")), "%s is not in the contract", path)
		}
	}
}

// TestSchemaHasTheContractFixes checks that each fix the conformance tests apply to the
// contract (contractFixes) is in the served document too.
func TestSchemaHasTheContractFixes(t *testing.T) {
	e := newEnv(t)
	doc := e.served()
	for _, f := range contractFixes {
		s := doc.Components.Schemas[f.schema]
		require.NotNil(t, s, f.schema)
		p := s.Value.Properties[f.property]
		require.NotNil(t, p, "%s.%s", f.schema, f.property)
		require.True(t, p.Value.Nullable, "%s.%s is nullable in contractFixes (api/contract_test.go) but not in the served document (nullableFixes in api/openapi.go)", f.schema, f.property)
	}
}

// conformServed checks a response of amrd, of any status, against the served document:
// the operation lists the status, its headers and its content type, and the body
// matches the schema.
func conformServed(t *testing.T, doc *openapi3.T, method, template string, r resp) {
	t.Helper()
	item := doc.Paths.Value(template)
	require.NotNil(t, item, "the served document has no path %s", template)
	op := item.GetOperation(method)
	require.NotNil(t, op, "the served document has no %s %s", method, template)
	ref := op.Responses.Status(r.status)
	require.NotNil(t, ref, "the served document does not list status %d for %s %s; body: %s", r.status, method, template, r.body)
	for name := range ref.Value.Headers {
		require.NotEmpty(t, r.header.Get(name), "%s %s %d: header %s", method, template, r.status, name)
	}
	if len(ref.Value.Content) == 0 {
		require.Empty(t, r.body, "%s %s %d: the document describes no body", method, template, r.status)
		return
	}
	ct, _, err := mime.ParseMediaType(r.header.Get("Content-Type"))
	require.NoError(t, err)
	mt := ref.Value.Content.Get(ct)
	require.NotNil(t, mt, "%s %s %d: content type %s is not documented", method, template, r.status, ct)
	if ct != "application/json" {
		return
	}
	var v any
	require.NoError(t, json.Unmarshal(r.body, &v), "body: %s", r.body)
	err = mt.Schema.Value.VisitJSON(v, openapi3.VisitAsResponse(), openapi3.MultiErrors(), openapi3.EnableFormatValidation())
	require.NoError(t, err, "%s %s %d does not match the served document; body: %s", method, template, r.status, r.body)
}

// TestServedResponsesMatchSchema drives amrd's own routes (auth, organizations,
// memberships, users, health, metrics, the description) and the model metering resource,
// with valid and invalid requests, and checks every answer, errors included, against
// the served document.
func TestServedResponsesMatchSchema(t *testing.T) {
	e := newEnv(t)
	doc := e.served()
	staff := e.token()
	viewer := e.jwtFor(e.viewer, &e.orgA.ID)
	both := e.jwtFor(e.both, &e.orgA.ID)
	missing := "/" + uuid.NewString()
	var last resp
	check := func(name, method, template, path, auth string, body any, want int, headers ...string) {
		t.Helper()
		t.Run(name, func(t *testing.T) {
			last = e.do(method, path, auth, body, headers...)
			require.Equal(t, want, last.status, "body: %s", last.body)
			conformServed(t, doc, method, template, last)
		})
	}
	id := func() string {
		t.Helper()
		v, ok := last.json(t)["id"]
		require.True(t, ok, "body: %s", last.body)
		raw, _ := json.Marshal(v)
		return strings.Trim(string(raw), `"`)
	}

	check("health", "GET", "/_health/", "/_health/", "", nil, 200)
	check("metrics", "GET", "/metrics", "/metrics", "", nil, 200)
	check("schema", "GET", "/v1/schema", "/v1/schema", "", nil, 200)
	check("docs", "GET", "/v1/docs", "/v1/docs", "", nil, 200)
	check("docs file", "GET", "/v1/docs/{file}", "/v1/docs/docs.js", "", nil, 200)
	check("docs file missing", "GET", "/v1/docs/{file}", "/v1/docs/nope.js", "", nil, 404)

	const token = "/v1/auth/jwt/token/"
	check("jwt token", "POST", token, token, "", map[string]any{"username": "editor", "password": testPassword}, 201)
	check("jwt token bad password", "POST", token, token, "", map[string]any{"username": "editor", "password": "nope"}, 400)
	check("jwt token missing fields", "POST", token, token, "", map[string]any{}, 400)
	check("jwt token malformed JSON", "POST", token, token, "", `{"username":`, 400)
	check("jwt token not JSON", "POST", token, token, "", "username=editor", 415, "Content-Type", "application/x-www-form-urlencoded")
	check("jwt renew", "GET", "/v1/auth/jwt/renew/", "/v1/auth/jwt/renew/", viewer, nil, 200)
	check("jwt renew with a token", "GET", "/v1/auth/jwt/renew/", "/v1/auth/jwt/renew/", staff, nil, 401)
	const change = "/v1/auth/jwt/change-organization/"
	check("jwt change organization", "POST", change, change, both, map[string]any{"organization": e.orgB.ID}, 201)
	check("jwt change organization, not a member", "POST", change, change, viewer, map[string]any{"organization": e.orgB.ID}, 400)

	const orgs, org = "/v1/organizations/", "/v1/organizations/{id}"
	check("organizations list", "GET", orgs, orgs, viewer, nil, 200)
	check("organizations without credentials", "GET", orgs, orgs, "", nil, 401)
	check("organizations bad limit", "GET", orgs, orgs+"?limit=x", staff, nil, 400)
	check("organization create by viewer", "POST", orgs, orgs, viewer, map[string]any{"name": "C"}, 403)
	check("organization create", "POST", orgs, orgs, staff, map[string]any{"name": "C"}, 201)
	orgC := id()
	check("organization read", "GET", org, orgs+orgC, staff, nil, 200)
	check("organization read missing", "GET", org, orgs+missing[1:], staff, nil, 404)
	check("organization put", "PUT", org, orgs+orgC, staff, map[string]any{"name": "C2", "is_active": true}, 200)
	check("organization patch invalid", "PATCH", org, orgs+orgC, staff, map[string]any{"name": ""}, 400)
	check("organization patch", "PATCH", org, orgs+orgC, staff, map[string]any{"is_active": false}, 200)

	const members, member = "/v1/organizations/memberships/", "/v1/organizations/memberships/{id}"
	check("membership create", "POST", members, members, staff, map[string]any{"organization": orgC, "user": e.loner.ID, "role": "editor"}, 201)
	mid := id()
	check("membership duplicate", "POST", members, members, staff, map[string]any{"organization": orgC, "user": e.loner.ID}, 400)
	check("membership bad role", "POST", members, members, staff, map[string]any{"organization": orgC, "user": e.loner.ID, "role": "owner"}, 400)
	check("memberships list", "GET", members, members, viewer, nil, 200)
	check("membership read", "GET", member, members+mid, staff, nil, 200)
	check("membership read, not a number", "GET", member, members+"x", staff, nil, 404)
	check("membership put", "PUT", member, members+mid, staff, map[string]any{"organization": orgC, "user": e.loner.ID}, 200)
	check("membership patch", "PATCH", member, members+mid, staff, map[string]any{"role": "editor"}, 200)
	check("membership patch by viewer", "PATCH", member, members+mid, viewer, map[string]any{"role": "viewer"}, 404)
	check("membership delete", "DELETE", member, members+mid, staff, nil, 204)

	const users, user = "/v1/users/", "/v1/users/{id}"
	check("users list", "GET", users, users, staff, nil, 200)
	check("users list by viewer", "GET", users, users, viewer, nil, 403)
	check("user create, short password", "POST", users, users, staff, map[string]any{"username": "new", "password": "short"}, 400)
	check("user create", "POST", users, users, staff, map[string]any{"username": "new", "password": "long-enough-secret", "email": "n@example.org"}, 201)
	uid := id()
	check("user duplicate", "POST", users, users, staff, map[string]any{"username": "new", "password": "long-enough-secret"}, 400)
	check("user read", "GET", user, users+uid, staff, nil, 200)
	check("user put", "PUT", user, users+uid, staff, map[string]any{"username": "newer"}, 200)
	check("user patch", "PATCH", user, users+uid, staff, map[string]any{"first_name": "Ada", "password": "another-long-secret"}, 200)
	check("user delete", "DELETE", user, users+uid, staff, nil, 204)
	check("user read deleted", "GET", user, users+uid, staff, nil, 404)
	self, err := e.st.GetUserByUsername(context.Background(), "staff")
	require.NoError(t, err)
	check("user delete self", "DELETE", user, users+self.ID.String(), staff, nil, 409)

	const sims, sim = "/v1/metering/sim-cards", "/v1/metering/sim-cards/{id}"
	card := map[string]any{"organization": e.orgA.ID, "iccid": "89460000000000000001", "imsi": "240000000000001"}
	check("sim card create", "POST", sims, sims, staff, card, 201)
	sid := id()
	check("sim card create by viewer", "POST", sims, sims, viewer, card, 403)
	check("sim card create invalid", "POST", sims, sims, staff, map[string]any{"iccid": "x"}, 400)
	check("sim card create too large", "POST", sims, sims, staff, `{"iccid":"`+strings.Repeat("1", 70<<10)+`"}`, 413)
	check("sim cards list", "GET", sims, sims+"?iccid=89460000000000000001", viewer, nil, 200)
	check("sim card read", "GET", sim, sims+"/"+sid, viewer, nil, 200)
	check("sim card read missing", "GET", sim, sims+missing, viewer, nil, 404)
	check("sim card put", "PUT", sim, sims+"/"+sid, staff, card, 200)
	check("sim card patch", "PATCH", sim, sims+"/"+sid, staff, map[string]any{"ip_address": "10.0.0.1"}, 200)
	check("organization delete refused", "DELETE", org, orgs+e.orgA.ID.String(), staff, nil, 409)
	check("sim card delete", "DELETE", sim, sims+"/"+sid, staff, nil, 204)
	check("organization delete", "DELETE", org, orgs+orgC, staff, nil, 204)

	for range 5 {
		e.do("POST", token, "", map[string]any{"username": "editor", "password": "wrong"})
	}
	check("jwt token throttled", "POST", token, token, "", map[string]any{"username": "editor", "password": testPassword}, 429)
	check("basic throttled", "GET", sims, sims, basic("editor", testPassword), nil, 429)
}

// TestDocsPage checks that /v1/docs is a public page that loads only files amrd serves,
// under a Content-Security-Policy without inline script or style, and that those files
// are served with their types, long cache lifetimes and gzip. TestDocsInBrowser checks
// what the page does in a browser.
func TestDocsPage(t *testing.T) {
	e := newEnv(t)
	for _, path := range []string{"/v1/docs", "/v1/docs/"} {
		t.Run(path, func(t *testing.T) {
			r := e.do("GET", path, "", nil)
			require.Equal(t, 200, r.status)
			ct, _, err := mime.ParseMediaType(r.header.Get("Content-Type"))
			require.NoError(t, err)
			require.Equal(t, "text/html", ct)
			require.Equal(t, "nosniff", r.header.Get("X-Content-Type-Options"))
			page := string(r.body)
			require.NotContains(t, page, "://", "the page loads nothing from elsewhere")
			require.NotContains(t, page, "<style", "no inline style")
			require.NotContains(t, page, " style=", "no inline style")
			require.NotContains(t, page, "{{", "every placeholder is filled")

			csp := r.header.Get("Content-Security-Policy")
			for _, d := range []string{"default-src 'none'", "script-src 'self';", "style-src 'self';", "connect-src 'self'",
				"img-src 'self' data:", "object-src 'none'", "base-uri 'none'", "frame-ancestors 'none'"} {
				require.Contains(t, csp, d)
			}
			require.NotContains(t, csp, "unsafe", "no inline script or style, no eval")
			scripts := regexp.MustCompile(`<script[^>]*>`).FindAllString(page, -1)
			require.Len(t, scripts, 2, "Swagger UI and the script that starts it")
			for _, s := range scripts {
				require.Contains(t, s, " src=", "no inline script: %s", s)
			}

			// Every file the page links is served, relative to the page's own URL.
			base, err := url.Parse(e.base + path)
			require.NoError(t, err)
			links := regexp.MustCompile(`(?:src|href)="([^"]+)"`).FindAllStringSubmatch(page, -1)
			types := map[string]string{}
			for _, l := range links {
				u, err := base.Parse(l[1])
				require.NoError(t, err)
				if strings.HasSuffix(u.Path, "/v1/schema") {
					continue // the <noscript> link
				}
				require.True(t, strings.HasPrefix(u.Path, "/v1/docs/"), "%s links %s", path, u)
				f := e.do("GET", u.RequestURI(), "", nil)
				require.Equal(t, 200, f.status, "%s", u)
				require.Equal(t, "public, max-age=31536000, immutable", f.header.Get("Cache-Control"), "%s: the page links it by version", u)
				require.Equal(t, "nosniff", f.header.Get("X-Content-Type-Options"))
				require.NotEmpty(t, f.body)
				types[strings.TrimPrefix(u.Path, "/v1/docs/")] = f.header.Get("Content-Type")
			}
			require.Equal(t, map[string]string{
				"favicon-32x32.png":    "image/png",
				"swagger-ui.css":       "text/css; charset=utf-8",
				"docs.css":             "text/css; charset=utf-8",
				"swagger-ui-bundle.js": "text/javascript; charset=utf-8",
				"docs.js":              "text/javascript; charset=utf-8",
			}, types)
		})
	}

	t.Run("files", func(t *testing.T) {
		// Without the page's version (or with another), a file is revalidated.
		r := e.do("GET", "/v1/docs/docs.js", "", nil)
		require.Equal(t, 200, r.status)
		require.Equal(t, "no-cache", r.header.Get("Cache-Control"))
		require.Contains(t, string(r.body), "SwaggerUIBundle(")
		for _, name := range []string{"LICENSE", "NOTICE", "swagger-ui-bundle.js.LICENSE.txt"} {
			r := e.do("GET", "/v1/docs/"+name, "", nil)
			require.Equal(t, 200, r.status, name)
			require.Equal(t, "text/plain; charset=utf-8", r.header.Get("Content-Type"), name)
		}
		for _, name := range []string{"nope.js", "update.sh", "VERSION", "..%2Fopenapi.go", "swagger-ui-bundle.js.map"} {
			r := e.do("GET", "/v1/docs/"+name, "", nil)
			require.Equal(t, 404, r.status, name)
		}

		// Gzipped for clients that take it: the bundle is 1.8 MB, about 0.5 MB gzipped.
		plain := e.do("GET", "/v1/docs/swagger-ui-bundle.js", "", nil, "Accept-Encoding", "identity")
		require.Empty(t, plain.header.Get("Content-Encoding"))
		gz := e.do("GET", "/v1/docs/swagger-ui-bundle.js", "", nil, "Accept-Encoding", "gzip, br")
		require.Equal(t, "gzip", gz.header.Get("Content-Encoding"))
		require.Contains(t, gz.header.Get("Vary"), "Accept-Encoding")
		require.Less(t, len(gz.body), len(plain.body)/2)
		zr, err := gzip.NewReader(bytes.NewReader(gz.body))
		require.NoError(t, err)
		unzipped, err := io.ReadAll(zr)
		require.NoError(t, err)
		require.Equal(t, plain.body, unzipped)

		// The bundle is the version api/swaggerui/VERSION pins (update.sh checks the rest).
		pinned, err := os.ReadFile("swaggerui/VERSION")
		require.NoError(t, err)
		version, _, _ := strings.Cut(string(pinned), " ")
		require.Contains(t, string(plain.body), `PACKAGE_VERSION:"`+version+`"`)
	})
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
