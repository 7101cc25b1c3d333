package api

import (
	"bytes"
	"cmp"
	"compress/gzip"
	"crypto/sha256"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"path"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/gofiber/fiber/v2"
)

// The served API description (GET /v1/schema) is the Utilitarian v1.3 contract turned into
// what amrd serves: paths under /v1 as amrd routes them, the operations not served yet left
// out, the contract's own mistakes fixed, amrd's additions (openapi_amrd.json: its header,
// authentication, users, health, metrics, error responses) merged in, and each
// operation's access rule and error responses stated. It is built once, when the routes
// are registered, from embedded files only, so a build error is a bug that every test run
// meets: it panics then, as regexp.MustCompile does.

// contractJSON is the contract the conformance tests check amrd against (BSD-3-Clause,
// see testdata/contract/LICENSE; the served document credits it).
//
//go:embed testdata/contract/openapi_v1_3_0.json
var contractJSON []byte

//go:embed openapi_amrd.json
var amrdJSON []byte

// notServed are the contract's paths that amrd does not serve, left out of the served
// document; the router test keeps the two in step. Every contract path is served today.
var notServed = map[string]bool{}

// nullableFixes are properties the contract declares non-null that amrd, like
// Utilitarian, answers null in some rows. contractFixes in api/contract_test.go lists the
// same ones for the conformance tests; a test checks that each of those is here.
var nullableFixes = []struct{ schema, property string }{
	{"NetworkInterface", "block_time"}, // not blocked: no block time
	{"NetworkInterface", "host"},       // no FQDN, static IP or SIM IP: no host
}

// docOptions are the settings that change what amrd serves.
type docOptions struct {
	metrics   bool // /metrics is served
	tokenAuth bool // ALLOW_TOKEN_AUTH
	bodyLimit int  // largest request body, bytes
}

type obj = map[string]any

var httpMethods = []string{"get", "put", "post", "delete", "options", "head", "patch", "trace"}

// buildOpenAPI makes the served document.
func buildOpenAPI(o docOptions) ([]byte, error) {
	var doc, add obj
	if err := json.Unmarshal(contractJSON, &doc); err != nil {
		return nil, fmt.Errorf("reading the contract: %w", err)
	}
	overlay := bytes.ReplaceAll(amrdJSON, []byte("{{body_limit}}"), []byte(strconv.Itoa(o.bodyLimit)))
	if err := json.Unmarshal(overlay, &add); err != nil {
		return nil, fmt.Errorf("reading openapi_amrd.json: %w", err)
	}
	comps, err1 := child(doc, "components")
	addComps, err2 := child(add, "components")
	contractPaths, err3 := child(doc, "paths")
	addPaths, err4 := child(add, "paths")
	if err := errors.Join(err1, err2, err3, err4); err != nil {
		return nil, err
	}

	// The contract's paths are relative to /v1 (its server URL wrongly ends in /metering);
	// amrd's paths are complete, since /_health/ and /metrics are outside /v1.
	paths := obj{}
	for p, item := range contractPaths {
		if !notServed[p] {
			paths["/v1"+p] = item
		}
	}
	if !o.metrics {
		delete(addPaths, "/metrics")
	}
	doc["paths"] = paths

	// amrd's header, servers and authentication replace Utilitarian's (whose API key
	// scheme names no header); tags are merged by name.
	for _, k := range []string{"info", "servers", "security", "x-tagGroups"} {
		doc[k] = add[k]
	}
	comps["securitySchemes"] = addComps["securitySchemes"]
	doc["tags"] = mergeTags(doc["tags"], add["tags"])
	merge(comps, addComps)
	merge(paths, addPaths)
	if err := fixContract(comps); err != nil {
		return nil, err
	}
	if !o.tokenAuth {
		if tok, err := child(comps, "securitySchemes", "Token"); err == nil {
			tok["description"] = fmt.Sprint(tok["description"], " Disabled on this server (ALLOW_TOKEN_AUTH=false).")
		}
	}

	tagNames := map[string]bool{}
	for _, t := range asList(doc["tags"]) {
		tagNames[nameOf(t)] = true
	}
	used := map[string]bool{}
	for path, item := range paths {
		for _, m := range httpMethods {
			op, ok := item.(obj)[m].(obj)
			if !ok {
				continue
			}
			tag, err := decorate(path, m, op, comps, tagNames)
			if err != nil {
				return nil, fmt.Errorf("%s %s: %w", strings.ToUpper(m), path, err)
			}
			used[tag] = true
		}
	}
	// Drop the tags of the operations left out; keep the sections without operations
	// (Authentication, Pagination).
	var tags []any
	for _, t := range asList(doc["tags"]) {
		if m, _ := t.(obj); m["x-traitTag"] == true || used[nameOf(t)] {
			tags = append(tags, t)
		}
	}
	doc["tags"] = tags
	if err := displayTags(doc); err != nil {
		return nil, err
	}
	prune(doc, comps)

	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(doc); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// child walks down nested objects.
func child(m obj, keys ...string) (obj, error) {
	for _, k := range keys {
		next, ok := m[k].(obj)
		if !ok {
			return nil, fmt.Errorf("openapi: no object %q in %s", k, strings.Join(keys, "."))
		}
		m = next
	}
	return m, nil
}

// merge copies src into dst: objects are merged key by key, anything else replaces.
func merge(dst, src obj) {
	for k, v := range src {
		if sv, ok := v.(obj); ok {
			if dv, ok := dst[k].(obj); ok {
				merge(dv, sv)
				continue
			}
		}
		dst[k] = v
	}
}

// mergeTags merges amrd's tags into the contract's of the same name, key by key (amrd's
// may fix only a display name), and appends the new.
func mergeTags(contract, amrd any) []any {
	out := asList(contract)
	byName := map[string]int{}
	for i, t := range out {
		byName[nameOf(t)] = i
	}
	for _, t := range asList(amrd) {
		i, ok := byName[nameOf(t)]
		if !ok {
			out = append(out, t)
			continue
		}
		dst, _ := out[i].(obj)
		src, _ := t.(obj)
		if dst != nil && src != nil {
			merge(dst, src)
		} else {
			out[i] = t
		}
	}
	return out
}

// displayTags names each tag by its display name (x-displayName: Redoc shows it, Swagger
// UI shows the name) and lists the tags in the order of their groups (x-tagGroups), the
// order in which Swagger UI shows them. Every tag must be in a group: Redoc leaves out
// the others.
func displayTags(doc obj) error {
	rename := map[string]string{}
	byName := map[string]any{}
	for _, t := range asList(doc["tags"]) {
		name := nameOf(t)
		m, _ := t.(obj)
		if d, _ := m["x-displayName"].(string); d != "" {
			m["name"] = d
			rename[name] = d
		}
		byName[name] = t
	}
	var tags, groups []any
	for _, g := range asList(doc["x-tagGroups"]) {
		m, _ := g.(obj)
		var names []any
		for _, n := range asList(m["tags"]) {
			name, _ := n.(string)
			t, ok := byName[name]
			if !ok {
				continue // no operation of it is served
			}
			delete(byName, name)
			tags = append(tags, t)
			names = append(names, cmp.Or(rename[name], name))
		}
		if len(names) > 0 {
			m["tags"] = names
			groups = append(groups, m)
		}
	}
	if len(byName) > 0 {
		return fmt.Errorf("openapi: tags in no x-tagGroups group: %v", slices.Sorted(maps.Keys(byName)))
	}
	doc["tags"], doc["x-tagGroups"] = tags, groups
	for _, item := range doc["paths"].(obj) {
		for _, m := range httpMethods {
			if op, ok := item.(obj)[m].(obj); ok {
				for i, t := range asList(op["tags"]) {
					if d, ok := rename[t.(string)]; ok {
						op["tags"].([]any)[i] = d
					}
				}
			}
		}
	}
	return nil
}

// fixContract corrects the contract's own mistakes, where amrd answers (as Utilitarian
// does) what the contract does not allow.
func fixContract(comps obj) error {
	for _, f := range nullableFixes {
		p, err := child(comps, "schemas", f.schema, "properties", f.property)
		if err != nil {
			return err
		}
		p["nullable"] = true
	}
	// Reads of a key collection embed its whole meter device, as the device's own routes
	// answer it; the contract copies the device inline, without network_interface_info.
	out, err := child(comps, "schemas", "MeterSecurityKeyCollectionOut", "properties")
	if err != nil {
		return err
	}
	out["meter"] = obj{
		"allOf":       []any{obj{"$ref": "#/components/schemas/MeterDevice"}},
		"readOnly":    true,
		"description": "The meter device the keys are for.",
	}
	// The master key is accepted on create and never answered, though the contract's
	// create response uses the same schema as its body.
	mk, err := child(comps, "schemas", "MeterSecurityKeyCollectionIn", "properties", "dlms_master_key")
	if err != nil {
		return err
	}
	mk["writeOnly"] = true
	mk["description"] = "Used in DLMS communication. Write-only: stored encrypted, never answered."
	return nil
}

// decorate settles one operation: a single tag (returned), a summary, amrd's pagination
// and filter parameters, a partial body for PATCH, who may call it, and the errors it can
// answer.
func decorate(path, method string, op, comps obj, tagNames map[string]bool) (string, error) {
	// One tag, the resource's, so that each operation is listed once.
	var tag string
	for _, t := range asList(op["tags"]) {
		if s, _ := t.(string); tagNames[s] {
			tag = s
			break
		}
	}
	if tag == "" {
		return "", fmt.Errorf("no documented tag among %v", op["tags"])
	}
	op["tags"] = []any{tag}

	// The contract has descriptions only: their first line becomes the summary.
	desc, _ := op["description"].(string)
	if _, ok := op["summary"]; !ok {
		line, rest, _ := strings.Cut(desc, "\n")
		line = strings.TrimSuffix(strings.TrimSpace(line), ".")
		if line != "" {
			op["summary"] = strings.ToUpper(line[:1]) + line[1:]
			desc = rest
		}
	}

	query := false
	for i, p := range asList(op["parameters"]) {
		m, _ := p.(obj)
		if ref, ok := m["$ref"].(string); ok {
			target, err := child(comps, "parameters", strings.TrimPrefix(ref, "#/components/parameters/"))
			if err != nil {
				return "", err
			}
			query = query || target["in"] == "query"
			continue
		}
		query = query || m["in"] == "query"
		switch m["name"] {
		case "limit":
			op["parameters"].([]any)[i] = obj{"$ref": "#/components/parameters/Limit"}
		case "offset":
			op["parameters"].([]any)[i] = obj{"$ref": "#/components/parameters/Offset"}
		case "start_time", "end_time":
			m["schema"] = obj{"type": "string", "format": "date-time"}
			m["description"] = "Inclusive bound on the row's timestamp: an ISO 8601 date-time (without an offset: UTC)."
		default:
			if d, _ := m["description"].(string); d == "" && m["in"] == "query" {
				m["description"] = "Exact match."
			}
		}
	}

	_, body := op["requestBody"]
	if method == "patch" {
		if err := partialBody(op, comps); err != nil {
			return "", err
		}
	}

	sec, hasSec := op["security"].([]any)
	public := hasSec && len(sec) == 0
	auth := strings.HasPrefix(path, "/v1/auth/")
	write := method != "get"
	users := strings.HasPrefix(path, "/v1/users")
	op["description"] = strings.TrimSpace(desc + "\n\n**Access:** " + access(path, write, public))

	// The errors amrd can answer, by what the operation takes and who may call it.
	var codes []string
	add := func(ok bool, cs ...string) {
		if ok {
			codes = append(codes, cs...)
		}
	}
	add(body || query, "400")
	add(!public, "401")
	add(!public && !auth && (write || users), "403")
	add(strings.Contains(path, "{"), "404")
	add(write && !auth, "409")
	add(body, "413", "415")
	// Logins are throttled (the JWT token route and Basic on any other), and both read
	// the database; /_health/ states its own 503, the document and /metrics need none.
	add(!public || path == "/v1/auth/jwt/token/", "429", "503")
	responses, ok := op["responses"].(obj)
	if !ok {
		return "", errors.New("no responses")
	}
	for _, c := range codes {
		if _, ok := responses[c]; !ok {
			responses[c] = obj{"$ref": "#/components/responses/" + errorResponse[c]}
		}
	}
	return tag, nil
}

var errorResponse = map[string]string{
	"400": "BadRequest", "401": "Unauthorized", "403": "Forbidden", "404": "NotFound",
	"409": "Conflict", "413": "PayloadTooLarge", "415": "UnsupportedMediaType",
	"429": "TooManyRequests", "503": "ServiceUnavailable",
}

func asList(v any) []any { l, _ := v.([]any); return l }

// nameOf is the "name" of a tag object.
func nameOf(t any) string {
	m, _ := t.(obj)
	s, _ := m["name"].(string)
	return s
}

// access says who may call an operation, as the handlers decide it.
func access(path string, write, public bool) string {
	switch {
	case public:
		return "no authentication."
	case strings.HasPrefix(path, "/v1/auth/"):
		return "a valid JWT (any role)."
	case strings.HasPrefix(path, "/v1/users"):
		return "staff only."
	case strings.HasPrefix(path, "/v1/organizations") && write:
		return "staff only (organizations and memberships decide who sees what)."
	case strings.HasPrefix(path, "/v1/organizations"):
		return "any authenticated user; non-staff users see only their own organizations and those organizations' memberships."
	case write:
		return "staff, or an editor of the row's organization: a JWT editor writes in the token's organization, which replaces any `organization` sent. Viewers get 403."
	default:
		return "any authenticated user; non-staff users see only their organizations' rows."
	}
}

// partialBody points a PATCH at a copy of its body schema without required fields: only
// the fields sent change.
func partialBody(op, comps obj) error {
	rb, _ := op["requestBody"].(obj)
	if ref, ok := rb["$ref"].(string); ok {
		var err error
		if rb, err = child(comps, "requestBodies", strings.TrimPrefix(ref, "#/components/requestBodies/")); err != nil {
			return err
		}
	}
	schema, err := child(rb, "content", "application/json", "schema")
	if err != nil {
		return err
	}
	ref, _ := schema["$ref"].(string)
	name := strings.TrimPrefix(ref, "#/components/schemas/")
	full, err := child(comps, "schemas", name)
	if err != nil {
		return err
	}
	schemas := comps["schemas"].(obj)
	if _, ok := schemas[name+"Patch"]; !ok {
		p := maps.Clone(full)
		delete(p, "required")
		p["description"] = "Any of the fields of " + name + "; those not sent keep their values."
		schemas[name+"Patch"] = p
	}
	op["requestBody"] = obj{"required": true, "content": obj{"application/json": obj{
		"schema": obj{"$ref": "#/components/schemas/" + name + "Patch"}}}}
	return nil
}

// prune drops the components no served operation refers to (contract schemas that
// amrd's own descriptions replaced).
func prune(doc, comps obj) {
	used := map[string]bool{}
	var walk func(v any)
	walk = func(v any) {
		switch x := v.(type) {
		case obj:
			for k, e := range x {
				ref, isRef := e.(string)
				if k != "$ref" || !isRef {
					walk(e)
					continue
				}
				if used[ref] {
					continue
				}
				used[ref] = true
				if parts := strings.Split(strings.TrimPrefix(ref, "#/components/"), "/"); len(parts) == 2 {
					if target, err := child(comps, parts[0], parts[1]); err == nil {
						walk(target)
					}
				}
			}
		case []any:
			for _, e := range x {
				walk(e)
			}
		}
	}
	walk(doc["paths"])
	for _, section := range []string{"schemas", "requestBodies", "responses", "parameters"} {
		m, _ := comps[section].(obj)
		for name := range m {
			if !used["#/components/"+section+"/"+name] {
				delete(m, name)
			}
		}
	}
}

// apiSchema serves GET /v1/schema: the OpenAPI 3 document of what this server serves.
func (s *Server) apiSchema() fiber.Handler {
	doc, err := buildOpenAPI(docOptions{metrics: s.cfg.Metrics != nil, tokenAuth: s.cfg.AllowTokenAuth, bodyLimit: s.cfg.BodyLimit})
	if err != nil {
		panic("api: building the API description: " + err.Error())
	}
	return func(c *fiber.Ctx) error {
		c.Set(fiber.HeaderContentType, fiber.MIMEApplicationJSONCharsetUTF8)
		return c.Send(doc)
	}
}

// The page at /v1/docs is Swagger UI: swagger-ui-dist from npm, at the version pinned in
// swaggerui/VERSION (swaggerui/update.sh fetches it and checks its integrity), embedded so
// that neither the build nor the page needs the network (the operations team's browser
// may have no internet). docs.js starts it on /v1/schema; docs.css adds amrd's few styles.

//go:embed docs.html
var docsHTML []byte

//go:embed docs.js docs.css swaggerui/swagger-ui-bundle.js swaggerui/swagger-ui.css swaggerui/favicon-32x32.png
//go:embed swaggerui/LICENSE swaggerui/NOTICE swaggerui/swagger-ui-bundle.js.LICENSE.txt
var docsFS embed.FS

// docsCSP lets the page load scripts, styles and images from this origin only (no inline
// script or style, no eval), call this origin only (the document and "Try it out"), and
// be framed by no one. Swagger UI's icons are data: URLs in its style sheet.
const docsCSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; " +
	"base-uri 'none'; form-action 'none'; object-src 'none'; frame-ancestors 'none'"

// docsFile is one file under /v1/docs/.
type docsFile struct {
	body        []byte
	contentType string
	// gzipped is the body gzipped, on first use: compressing the 1.8 MB bundle (to about
	// 0.5 MB) takes a noticeable fraction of a second, too long for every start or every
	// request.
	gzipped func() []byte
}

// docsSite is the page and its files, made once.
type docsSite struct {
	// pages are the page for /v1/docs and for /v1/docs/: its links are relative, so that
	// they work behind a path prefix too, and the two URLs have different directories.
	page, pageSlash []byte
	files           map[string]docsFile
	version         string // ?v= of the links: changes with any file, so files can be cached for good
}

var docsOnce = sync.OnceValues(buildDocs)

// docsTypes are the files' content types, by extension (not the system's mime.types, which
// vary); anything else (LICENSE, NOTICE, .txt) is plain text.
var docsTypes = map[string]string{
	".js":  "text/javascript; charset=utf-8",
	".css": "text/css; charset=utf-8",
	".png": "image/png",
}

func buildDocs() (*docsSite, error) {
	site := &docsSite{files: map[string]docsFile{}}
	sum := sha256.New()
	err := fs.WalkDir(docsFS, ".", func(name string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		body, err := docsFS.ReadFile(name)
		if err != nil {
			return err
		}
		base := path.Base(name)
		ct, ok := docsTypes[path.Ext(base)]
		if !ok {
			ct = fiber.MIMETextPlainCharsetUTF8
		}
		site.files[base] = docsFile{body: body, contentType: ct, gzipped: sync.OnceValue(func() []byte {
			var gz bytes.Buffer
			zw := gzip.NewWriter(&gz)
			_, _ = zw.Write(body) // a bytes.Buffer does not fail
			_ = zw.Close()
			return gz.Bytes()
		})}
		fmt.Fprintf(sum, "%s %d\n", base, len(body))
		sum.Write(body)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("reading the docs page's files: %w", err)
	}
	site.version = fmt.Sprintf("%x", sum.Sum(nil))[:16]
	page := bytes.ReplaceAll(docsHTML, []byte("{{v}}"), []byte(site.version))
	site.page = bytes.ReplaceAll(page, []byte("{{dir}}"), []byte("docs/"))
	site.pageSlash = bytes.ReplaceAll(page, []byte("{{dir}}"), nil)
	return site, nil
}

// apiDocs serves GET /v1/docs: Swagger UI on /v1/schema, with "Try it out".
func (s *Server) apiDocs() fiber.Handler {
	site, err := docsOnce()
	if err != nil {
		panic("api: " + err.Error())
	}
	return func(c *fiber.Ctx) error {
		c.Set(fiber.HeaderContentType, fiber.MIMETextHTMLCharsetUTF8)
		c.Set(fiber.HeaderContentSecurityPolicy, docsCSP)
		c.Set(fiber.HeaderXContentTypeOptions, "nosniff")
		c.Set(fiber.HeaderCacheControl, "no-cache") // it names the files' version
		if strings.HasSuffix(c.Path(), "/") {
			return c.Send(site.pageSlash)
		}
		return c.Send(site.page)
	}
}

// apiDocsFile serves GET /v1/docs/{file}: the page's script, style sheets and icon, and
// Swagger UI's licenses.
func (s *Server) apiDocsFile() fiber.Handler {
	site, err := docsOnce()
	if err != nil {
		panic("api: " + err.Error())
	}
	return func(c *fiber.Ctx) error {
		f, ok := site.files[c.Params("file")]
		if !ok {
			return errNotFound
		}
		c.Set(fiber.HeaderContentType, f.contentType)
		c.Set(fiber.HeaderXContentTypeOptions, "nosniff")
		if c.Query("v") == site.version {
			// The page links each file with the version of all of them: a new amrd links
			// new URLs, so a browser may keep these for good.
			c.Set(fiber.HeaderCacheControl, "public, max-age=31536000, immutable")
		} else {
			c.Set(fiber.HeaderCacheControl, "no-cache")
		}
		c.Vary(fiber.HeaderAcceptEncoding)
		if c.AcceptsEncodings("gzip") == "gzip" {
			c.Set(fiber.HeaderContentEncoding, "gzip")
			return c.Send(f.gzipped())
		}
		return c.Send(f.body)
	}
}
