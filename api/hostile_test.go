package api_test

// "Never a 500": every operation of the served OpenAPI document gets hostile values in
// its path parameter, each query parameter it declares, each field of its body, the
// headers amrd reads, and the body as a whole, from each principal; amrd must answer
// each with a status below 500 and an error body in its own shape, and be healthy
// afterwards. TestHostile walks a seeded sample that fits in CI; FuzzHostile drives the
// same request builder from fuzz input for longer runs:
//
//	go test -run '^$' -fuzz FuzzHostile -fuzztime 10m ./api/
//
// (with AMRD_TEST_DATABASE_URL set, as make test sets it). AMRD_HOSTILE_SEED and
// AMRD_HOSTILE_SCALE change TestHostile's sample and its size.

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/stretchr/testify/require"

	"github.com/amrd/amrd/api"
)

// hostileOp is one operation of the served document, as the walk needs it.
type hostileOp struct {
	method   string
	template string   // "/v1/metering/sim-cards/{id}"
	query    []string // the query parameters it declares
	fields   []hostileField
	body     bool            // it takes a JSON body
	names    map[string]bool // what a 400 may name: its fields and parameters
	readings bool            // new-meter-readings: a 400 may be the ingestion report
}

type hostileField struct {
	name, typ, format string
	enum              []any
}

// principals of the walk, by the Authorization they send.
var principals = []string{"anonymous", "viewer", "editor", "staff"}

// hostileWorld is a served amrd with fixtures (one valid id of each resource type, so
// that requests get past the 404) and the principals' credentials.
type hostileWorld struct {
	e      *env
	client *http.Client
	ops    []hostileOp
	routes map[string]bool
	auth   map[string]string // principal: Authorization
	ids    map[string]string // path prefix (before /{id}): a fixture's id
	fix    map[string]string // body field: a valid value, as JSON
	query  map[string]string // query parameter: a fixture's id
	editor string            // the editor's JWT, for header cases
}

// hostileEnv starts amrd on a fresh database, creates the fixtures and logs the
// principals in. t is a *testing.T or the fuzz target's *testing.F.
func hostileEnv(t testing.TB) *hostileWorld {
	t.Helper()
	// A body limit of 1 MiB lets 100,000-character strings reach the decoders.
	e := startEnv(t, func(c *api.Config) { c.BodyLimit = 1 << 20 })
	w := &hostileWorld{e: e, ids: map[string]string{}, fix: map[string]string{}, query: map[string]string{},
		client: &http.Client{Timeout: 60 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 8, DisableCompression: true}}}
	t.Cleanup(w.client.CloseIdleConnections) // before the env's cleanup shuts the server down

	staff := "Token " + e.staffToken
	w.auth = map[string]string{"anonymous": "", "staff": staff}
	for who, u := range map[string]string{"viewer": "viewer", "editor": "editor"} {
		m := w.must(t, "POST", "/v1/auth/jwt/token/", "", map[string]any{"username": u, "password": testPassword})
		w.auth[who] = "JWT " + m["token"].(string)
	}
	w.editor = w.auth["editor"]

	a := e.orgA.ID.String()
	id := func(m map[string]any) string {
		switch v := m["id"].(type) {
		case string:
			return v
		case float64:
			return strconv.FormatInt(int64(v), 10)
		}
		t.Fatalf("no id in %v", m)
		return ""
	}
	mk := func(path string, body map[string]any) string { return id(w.must(t, "POST", path, staff, body)) }
	const m = "/v1/metering/"
	// Organizations, memberships and users get throwaway rows: PUT or DELETE on them
	// must not take the principals' rights away in the middle of the walk.
	orgC := mk("/v1/organizations/", map[string]any{"name": "Hostile C"})
	user := mk("/v1/users/", map[string]any{"username": "hostile", "password": testPassword, "is_active": true})
	w.ids["/v1/organizations"] = orgC
	w.ids["/v1/users"] = user
	w.ids["/v1/organizations/memberships"] = mk("/v1/organizations/memberships/", map[string]any{"organization": orgC, "user": user, "role": "viewer"})
	sim := mk(m+"sim-cards", map[string]any{"organization": a, "iccid": "8946000000000000001", "imsi": "240010000000001"})
	netif := mk(m+"network-interfaces", map[string]any{"organization": a, "fqdn": "m.example.org", "port": 4059})
	series := mk(m+"meter-reading-series", map[string]any{"organization": a, "name": "1.8.0", "unit": "kWh"})
	config := mk(m+"meter-device-configs", map[string]any{"organization": a, "name": "c", "series": []string{series}, "timezone": "UTC"})
	typ := mk(m+"meter-device-types", map[string]any{"organization": a, "name": "t", "manufacturer": "m", "manufacturer_model": "mm", "config": config})
	task := mk(m+"amr-tasks", map[string]any{"organization": a, "name": "read", "schedule": "daily",
		"meter_execution_type": "generic_iec6205621", "task_call": "read_registers"})
	group := mk(m+"amr-task-groups", map[string]any{"organization": a, "name": "g", "tasks": []string{task}})
	device := mk(m+"meter-devices", map[string]any{"organization": a, "name": "m-h1", "protocol": "iec62056-21", "type": typ,
		"network_interface": netif, "iec62056_21_address": "1"})
	keys := mk(m+"meter-security-keys", map[string]any{"meter": device, "iec62056_21_password": "pw123456"})
	event := mk(m+"meter-system-events", map[string]any{"organization": a, "meter_device": device,
		"timestamp": "2026-01-01T00:00:00Z", "title": "t", "content": "c"})
	run := mk(m+"amr-tasks/invoke", map[string]any{"meter_device": device, "task_call": "read"})
	// The run is claimed, so that results and heartbeats with its token get past the
	// claim check (the first valid result finishes it).
	claimed := w.must(t, "POST", m+"amr-task-runs/claim", staff, map[string]any{"meter_execution_type": "generic_iec6205621", "worker": "w"})
	require.Equal(t, run, id(claimed))
	w.fix["claim_token"] = strconv.Quote(claimed["claim_token"].(string))
	reading := mk(m+"meter-readings", map[string]any{"meter_device": device, "series": series, "timestamp": "2026-01-01T00:00:00Z", "value": "1.5"})
	staged := mk(m+"staged-meter-readings", map[string]any{"meter_device_name": "m-unknown", "series_name": "1.8.0",
		"timestamp": "2026-01-01T00:00:00Z", "value": "1"})
	for prefix, v := range map[string]string{"sim-cards": sim, "network-interfaces": netif, "meter-reading-series": series,
		"meter-device-configs": config, "meter-device-types": typ, "amr-tasks": task, "amr-task-groups": group,
		"meter-devices": device, "meter-security-keys": keys, "meter-system-events": event, "amr-task-runs": run,
		"meter-readings": reading, "staged-meter-readings": staged} {
		w.ids[m+prefix] = v
	}
	q := strconv.Quote
	for field, v := range map[string]string{
		"organization": q(a), "meter_device": q(device), "meter": q(device), "series": q(series), "type": q(typ),
		"network_interface": q(netif), "sim": q(sim), "config": q(config), "user": q(user),
		"tasks": `[` + q(task) + `]`, "meter_tasks": `[` + q(task) + `]`, "task_groups": `[` + q(group) + `]`,
		"meter_device_name": q("m-h1"), "series_name": q("1.8.0"), "timestamp": q("2026-01-02T00:00:00Z"),
		"value": q("1.5"), "si_multiplier": q("0.001"), "username": q("both"), "password": q(testPassword),
		"lease_seconds": "60", "run_offset_seconds": "0", "iccid": q("8946000000000000002"), "imsi": q("240010000000002"),
		"phone_number": q("46700000000"), "ip_address": q("10.0.0.2"), "static_ip_address": q("10.0.0.3"),
		"fqdn": q("n.example.org"), "port": "4059", "email": q("h@example.org"), "timezone": q("UTC"),
		"dlms_system_title": q("4d4d4d0000000001"), "dlms_logical_device_name": q("4d4d4d"),
		"iec62056_21_address": q("2"), "iec62056_21_password": q("pw123456"), "task_call": q("read"), "worker": q("w"),
		"external_system_link": q("https://example.org/sim"), "current_transformer_ratio": "1", "voltage_transformer_ratio": "1",
		"task_kwargs": `{}`, "result": `{}`, "readings": `[]`, "error": `null`, "meter_execution_type": q("generic_iec6205621"),
	} {
		w.fix[field] = v
	}
	w.query = map[string]string{"meter_device": device, "series": series, "task": task, "meter": device}

	status, body := w.get("/v1/schema")
	require.Equal(t, 200, status)
	doc, err := openapi3.NewLoader().LoadFromData(body)
	require.NoError(t, err)
	w.ops = hostileOps(doc)
	w.routes = servedRoutes(doc)
	require.Greater(t, len(w.ops), 80)
	return w
}

// hostileOps lists the document's operations, in a fixed order.
func hostileOps(doc *openapi3.T) []hostileOp {
	var ops []hostileOp
	for _, path := range slices.Sorted(func(yield func(string) bool) {
		for p := range doc.Paths.Map() {
			if !yield(p) {
				return
			}
		}
	}) {
		item := doc.Paths.Value(path)
		for _, method := range []string{"GET", "POST", "PUT", "PATCH", "DELETE"} {
			o := item.GetOperation(method)
			if o == nil {
				continue
			}
			op := hostileOp{method: method, template: path, names: map[string]bool{"non_field_errors": true, "organization": true}}
			for _, p := range append(item.Parameters, o.Parameters...) {
				if p.Value.In == "query" {
					op.query = append(op.query, p.Value.Name)
					op.names[p.Value.Name] = true
				}
			}
			if o.RequestBody != nil {
				if mt := o.RequestBody.Value.Content.Get("application/json"); mt != nil && mt.Schema != nil {
					op.body = true
					s := mt.Schema.Value
					if len(s.OneOf) > 0 { // one reading or an array of them
						op.readings = true
						s = s.OneOf[0].Value
					}
					props := schemaProps(s)
					for _, name := range slices.Sorted(func(yield func(string) bool) {
						for n := range props {
							if !yield(n) {
								return
							}
						}
					}) {
						p := props[name].Value
						if p.ReadOnly {
							continue
						}
						f := hostileField{name: name, format: p.Format, enum: p.Enum}
						if p.Type != nil && len(p.Type.Slice()) > 0 {
							f.typ = p.Type.Slice()[0]
						}
						op.fields = append(op.fields, f)
						op.names[name] = true
					}
				}
			}
			ops = append(ops, op)
		}
	}
	return ops
}

// schemaProps are the properties of an object schema, those of its allOf included.
func schemaProps(s *openapi3.Schema) openapi3.Schemas {
	out := openapi3.Schemas{}
	for _, sub := range s.AllOf {
		for k, v := range schemaProps(sub.Value) {
			out[k] = v
		}
	}
	for k, v := range s.Properties {
		out[k] = v
	}
	return out
}

// hostileStrings are raw values: sent percent-encoded in paths and query strings, and
// as JSON strings (invalid UTF-8 as is) in bodies.
var hostileStrings = []string{
	"\x00", "a\x00b", "\xff", "\xc3\x28", "\xed\xa0\x80", "\xf4\x90\x80\x80", "", " ", "\t\r\n",
	"-1", "0", "1.5", "9223372036854775808", "-9223372036854775809", "1e400", "NaN", "Infinity",
	"true", "null", "[]", "{}", "' OR '1'='1", "%", "%00", "../../etc/passwd", "<script>alert(1)</script>",
	"\u202e", "😀", "2026-02-30T25:61:00Z", "2026-03-29T02:30:00", "0000-00-00", "99999-01-01T00:00:00Z",
	"9999-12-31T23:59:59-14:00", "9999-12-31T23:00:00", "0000-01-01T00:00:00Z", "0001-01-01T00:00:00+14:00",
	"00000000-0000-0000-0000-000000000000", "ZZZZZZZZ-ZZZZ-ZZZZ-ZZZZ-ZZZZZZZZZZZZ", "{00000000-0000-0000-0000-000000000000}",
	strings.Repeat("x", 51), strings.Repeat("é", 151), strings.Repeat("9", 400), strings.Repeat("x", 5000),
}

// longString is the very long string of the body values (100,000 characters).
var longString = strings.Repeat("x", 100_000)

// hostileJSON are raw JSON values (some not JSON at all) for body fields.
var hostileJSON = func() []string {
	deepArray := strings.Repeat("[", 200) + strings.Repeat("]", 200)
	deepObject := strings.Repeat(`{"a":`, 200) + "1" + strings.Repeat("}", 200)
	return []string{
		`"\u0000"`, `"a\u0000b"`, "\"\xff\xfe\"", `"\ud800"`, `"\udc00\ud800x"`, `"` + longString + `"`, `""`, `" "`,
		`1e400`, `-1e400`, `-1`, `0`, `1`, `9223372036854775808`, `-9223372036854775809`, `2147483648`, `1.5`, `1e-400`, `-0`,
		`123456789012345678901234567890123456789012345678901234567890`, `true`, `false`, `null`,
		`[]`, `{}`, `[null]`, `["\u0000"]`, `[1,2,3]`, `{"a":"\u0000"}`, `{"\u0000":1}`, `{"a":"\ud800"}`, deepArray, deepObject,
		`"NaN"`, `"Infinity"`, `"-0"`, `"1e400"`, `"0x10"`, `"2026-02-30T25:61:00Z"`, `"2026-03-29T02:30:00"`, `"0001-01-01T00:00:00Z"`,
		`"9999-12-31T23:59:59-14:00"`, `"9999-12-31T23:00:00"`, `"0000-01-01T00:00:00Z"`, `"0001-01-01T00:00:00+14:00"`,
		`"00000000-0000-0000-0000-000000000000"`, `["00000000-0000-0000-0000-000000000000","00000000-0000-0000-0000-000000000000"]`,
		`"<script>"`, `"` + strings.Repeat("é", 151) + `"`, `"` + strings.Repeat("x", 51) + `"`, `"::1%eth0"`, `"1.2.3.4.5"`,
		`"`, `[`, `{"a":`, `1 2`, `tru`,
	}
}()

// hostileBodies are whole bodies, each built from the operation's valid body.
var hostileBodies = []func(valid []byte) []byte{
	func([]byte) []byte { return []byte(strings.Repeat("[", 100_000)) },
	func([]byte) []byte {
		return []byte(strings.Repeat(`{"a":`, 50_000) + "1" + strings.Repeat("}", 50_000))
	},
	func(v []byte) []byte { return duplicateKeys(v) },
	func([]byte) []byte { return []byte(`[]`) },
	func(v []byte) []byte { return []byte("[" + string(v) + "]") },
	func([]byte) []byte { return []byte(`"x"`) },
	func([]byte) []byte { return []byte(`1e400`) },
	func([]byte) []byte { return []byte(`null`) },
	func([]byte) []byte { return []byte(`true`) },
	func([]byte) []byte { return []byte(``) },
	func([]byte) []byte { return []byte(`{}`) },
	func(v []byte) []byte { return v[:len(v)/2] },
	func(v []byte) []byte { return append([]byte("\xef\xbb\xbf"), v...) },
	func(v []byte) []byte { return append(slices.Clone(v), "garbage"...) },
	func([]byte) []byte { return []byte("{\"\\u0000\":1,\"\xff\":2}") },
	func([]byte) []byte { return []byte("{\x00}") },
	func(v []byte) []byte { // 10,000 unknown keys
		var b bytes.Buffer
		b.WriteString(`{`)
		for i := range 10_000 {
			fmt.Fprintf(&b, `"k%d":%d,`, i, i)
		}
		b.Write(bytes.TrimPrefix(v, []byte("{")))
		return b.Bytes()
	},
	func([]byte) []byte { return bytes.Repeat([]byte(" "), 1<<20+100<<10) }, // over the limit: amrd's 413
	func([]byte) []byte { return bytes.Repeat([]byte("x"), 3<<20) },         // over fasthttp's: its 413
}

// duplicateKeys repeats every key of a flat JSON object with a NUL string after it.
func duplicateKeys(v []byte) []byte {
	var m map[string]json.RawMessage
	if json.Unmarshal(v, &m) != nil || len(m) == 0 {
		return []byte(`{"a":1,"a":"\u0000"}`)
	}
	var b bytes.Buffer
	b.WriteString("{")
	for _, k := range slices.Sorted(func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}) {
		fmt.Fprintf(&b, "%q:%s,%q:\"\\u0000\",", k, m[k], k)
	}
	b.Truncate(b.Len() - 1)
	b.WriteString("}")
	return b.Bytes()
}

// hostileHeaders change the headers amrd reads: Authorization (replacing the
// principal's), Content-Type, Host, X-Forwarded-Host and -Proto.
func (w *hostileWorld) hostileHeaders() []func(h *hostileReq) {
	b64 := func(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }
	set := func(k, v string) func(h *hostileReq) {
		return func(h *hostileReq) {
			if k == "Host" {
				h.host = v
				return
			}
			h.header[k] = v
		}
	}
	noneJWT := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none","typ":"JWT"}`)) + "." +
		base64.RawURLEncoding.EncodeToString([]byte(`{"user_id":"x","organization":"y","exp":99999999999}`)) + "."
	return []func(h *hostileReq){
		set("Authorization", "Basic "+b64("\x00:\x00")), set("Authorization", "Basic "+b64("\xff\xfe:x")),
		set("Authorization", "Basic "+b64(strings.Repeat("a", 200)+":x")), set("Authorization", "Basic "+b64("editor:"+testPassword)),
		set("Authorization", "Basic "+b64("nocolon")), set("Authorization", "Basic !!!!"), set("Authorization", "Basic"),
		set("Authorization", "Basic "+b64("editor:"+strings.Repeat("p", 3000))),
		set("Authorization", "Token"), set("Authorization", "Token \xff\xfe"), set("Authorization", "Token "+strings.Repeat("a", 3000)),
		set("Authorization", "JWT"), set("Authorization", "JWT a.b.c"), set("Authorization", "JWT "+noneJWT),
		set("Authorization", "Bearer "+strings.TrimPrefix(w.editor, "JWT ")), set("Authorization", "Digest x"),
		set("Authorization", "token "+w.e.staffToken), set("Authorization", "\xff\xfe"),
		set("Content-Type", "text/plain"), set("Content-Type", "multipart/form-data; boundary=x"), set("Content-Type", "multipart/form-data"),
		set("Content-Type", "application/json; charset=utf-16"), set("Content-Type", "application/x-www-form-urlencoded"),
		set("Content-Type", ";;;"), set("Content-Type", `application/json; boundary="`), set("Content-Type", "application/vnd.api+json"),
		set("Content-Type", "\xff"),
		set("Host", "evil.example"), set("Host", "EXAMPLE.org:65536"), set("Host", "[::1]:80"),
		set("X-Forwarded-Host", "evil.example"), set("X-Forwarded-Host", "\xff\"><"), set("X-Forwarded-Host", "a,b"),
		set("X-Forwarded-Proto", "javascript"), set("X-Forwarded-Proto", "https"),
	}
}

// readHeaders are the headers amrd reads.
var readHeaders = []string{"Authorization", "Content-Type", "Host", "X-Forwarded-Host", "X-Forwarded-Proto"}

// hostileReq is one request of the walk.
type hostileReq struct {
	op     *hostileOp
	who    string
	what   string // what was made hostile, for failure messages
	method string
	path   string // request target: escaped path and query
	header map[string]string
	host   string
	body   []byte
	last   bool // a DELETE of a fixture: sent after everything else
}

// Kinds of hostility, the fuzz target's choice among them.
const (
	kindBaseline = iota
	kindPath
	kindQuery
	kindField
	kindFieldString
	kindBody
	kindHeader
	kinds
)

// build makes the request of op from who, with the kind of hostility, its slot (which
// query parameter, field, body or header mutation) and value (raw: see each kind).
func (w *hostileWorld) build(op *hostileOp, who string, kind, slot int, value []byte) hostileReq {
	r := hostileReq{op: op, who: who, method: op.method, header: map[string]string{}}
	if a := w.auth[who]; a != "" {
		r.header["Authorization"] = a
	}
	id := w.idFor(op.template)
	r.what = "baseline"
	if kind == kindPath && strings.Contains(op.template, "{") {
		id, r.what = string(value), fmt.Sprintf("path id %.80q", value)
	} else if op.method == "DELETE" {
		r.last = true
	}
	r.path = pathEscape(pathParam.ReplaceAllString(op.template, "\x01"), id)
	// The filters that name a fixture are sent with its id (the rollups require two of
	// them), but for the one made hostile.
	hostile := ""
	if kind == kindQuery && len(op.query) > 0 {
		hostile = op.query[slot%len(op.query)]
		r.what = fmt.Sprintf("query %s=%.80q", hostile, value)
	}
	var query []string
	for _, name := range op.query {
		switch {
		case name == hostile:
			query = append(query, name+"="+escapeAll(string(value)))
		case w.query[name] != "":
			query = append(query, name+"="+w.query[name])
		}
	}
	if len(query) > 0 {
		r.path += "?" + strings.Join(query, "&")
	}
	if op.body {
		valid := w.validBody(op, "", nil)
		r.body = valid
		r.header["Content-Type"] = "application/json"
		switch {
		case (kind == kindField || kind == kindFieldString) && len(op.fields) > 0:
			f := op.fields[slot%len(op.fields)]
			v := value
			if kind == kindFieldString {
				v = jsonString(value)
			}
			r.body = w.validBody(op, f.name, v)
			r.what = fmt.Sprintf("field %s=%.80q", f.name, v)
		case kind == kindBody:
			r.body = hostileBodies[slot%len(hostileBodies)](valid)
			r.what = fmt.Sprintf("body %d: %.80q", slot%len(hostileBodies), r.body)
		}
	}
	if kind == kindHeader {
		if value == nil {
			hs := w.hostileHeaders()
			hs[slot%len(hs)](&r)
		} else { // the fuzz target's own value, in one of the headers amrd reads
			name := readHeaders[slot%len(readHeaders)]
			if name == "Host" {
				r.host = string(value)
			} else {
				r.header[name] = string(value)
			}
		}
		r.what = fmt.Sprintf("header %q host %q", r.header, r.host)
	}
	return r
}

// pathParam is a path parameter of a template ({id}, {file}).
var pathParam = regexp.MustCompile(`\{[^}]*\}`)

// idFor is the valid value of an operation's path parameter: a fixture's id for {id}.
func (w *hostileWorld) idFor(template string) string {
	prefix, _, ok := strings.Cut(template, "/{id}")
	if !ok {
		return "x"
	}
	return w.ids[strings.TrimSuffix(prefix, "/")]
}

// validBody is a plausible body of op (the fixtures' values, else one of the field's
// type) with field, if not "", set to the raw JSON v.
func (w *hostileWorld) validBody(op *hostileOp, field string, v []byte) []byte {
	var b bytes.Buffer
	b.WriteString("{")
	for i, f := range op.fields {
		if i > 0 {
			b.WriteString(",")
		}
		b.WriteString(strconv.Quote(f.name) + ":")
		switch {
		case f.name == field:
			b.Write(v)
		case w.fix[f.name] != "":
			b.WriteString(w.fix[f.name])
		case len(f.enum) > 0:
			raw, _ := json.Marshal(f.enum[0])
			b.Write(raw)
		case f.typ == "integer" || f.typ == "number":
			b.WriteString("1")
		case f.typ == "boolean":
			b.WriteString("true")
		case f.typ == "array":
			b.WriteString("[]")
		case f.typ == "object":
			b.WriteString("{}")
		case f.format == "uuid":
			b.WriteString(`"00000000-0000-4000-8000-000000000000"`)
		case f.format == "date-time":
			b.WriteString(`"2026-01-02T00:00:00Z"`)
		default:
			b.WriteString(`"hostile-` + f.name + `"`)
		}
	}
	b.WriteString("}")
	return b.Bytes()
}

// jsonString quotes raw bytes as a JSON string, leaving bytes that are not UTF-8 as
// they are (encoding/json would replace them).
func jsonString(raw []byte) []byte {
	b := []byte{'"'}
	for _, c := range raw {
		switch {
		case c == '"' || c == '\\':
			b = append(b, '\\', c)
		case c < 0x20:
			b = fmt.Appendf(b, `\u%04x`, c)
		default:
			b = append(b, c)
		}
	}
	return append(b, '"')
}

// escapeAll percent-encodes every byte but letters and digits.
func escapeAll(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '.' || c == '_' {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}

// pathEscape puts the escaped id where the template has \x01.
func pathEscape(template, id string) string {
	before, after, ok := strings.Cut(template, "\x01")
	if !ok {
		return template
	}
	return before + escapeAll(id) + after
}

// send sends a request; an error means it never got an answer.
func (w *hostileWorld) send(r hostileReq) (int, http.Header, []byte, error) {
	var body io.Reader
	if r.body != nil {
		body = bytes.NewReader(r.body)
	}
	req, err := http.NewRequest(r.method, w.e.base+r.path, body)
	if err != nil {
		return 0, nil, nil, err
	}
	for k, v := range r.header {
		req.Header[k] = []string{v} // as is: net/http checks what it sends
	}
	if r.host != "" {
		req.Host = r.host
	}
	res, err := w.client.Do(req)
	if err != nil {
		return 0, nil, nil, err
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(res.Body)
	return res.StatusCode, res.Header, raw, err
}

// must sends a fixture request and returns its JSON object.
func (w *hostileWorld) must(t testing.TB, method, path, auth string, body any) map[string]any {
	t.Helper()
	raw, err := json.Marshal(body)
	require.NoError(t, err)
	r := hostileReq{method: method, path: path, body: raw, header: map[string]string{"Content-Type": "application/json"}}
	if auth != "" {
		r.header["Authorization"] = auth
	}
	status, _, resBody, err := w.send(r)
	require.NoError(t, err)
	require.Contains(t, []int{200, 201}, status, "%s %s: %s", method, path, resBody)
	var m map[string]any
	require.NoError(t, json.Unmarshal(resBody, &m), "%s", resBody)
	return m
}

func (w *hostileWorld) get(path string) (int, []byte) {
	status, _, body, err := w.send(hostileReq{method: "GET", path: path})
	if err != nil {
		return 0, []byte(err.Error())
	}
	return status, body
}

// check says what is wrong with an answer, or "".
func (w *hostileWorld) check(r hostileReq, status int, header http.Header, body []byte) string {
	if status >= 500 {
		return fmt.Sprintf("status %d: %.300s", status, body)
	}
	if status < 400 {
		return ""
	}
	if ct := header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		return fmt.Sprintf("status %d with Content-Type %q: %.300s", status, ct, body)
	}
	var m map[string]any
	if err := json.Unmarshal(body, &m); err != nil || len(m) == 0 {
		return fmt.Sprintf("status %d: not a JSON object: %.300s", status, body)
	}
	if status != 400 {
		if d, ok := m["detail"].(string); !ok || d == "" || len(m) != 1 {
			return fmt.Sprintf("status %d: not {\"detail\": ...}: %.300s", status, body)
		}
		return ""
	}
	if _, ok := m["rejected"]; ok && r.op.readings {
		return "" // new-meter-readings: the report, nothing taken
	}
	for k, v := range m {
		if k == "detail" {
			if d, ok := v.(string); !ok || d == "" || len(m) != 1 {
				return fmt.Sprintf("400: a detail with more: %.300s", body)
			}
			continue
		}
		if !r.op.names[k] {
			return fmt.Sprintf("400 names %q, not a field or parameter of the operation: %.300s", k, body)
		}
		msgs, ok := v.([]any)
		if !ok || len(msgs) == 0 {
			return fmt.Sprintf("400: %q is not a list of messages: %.300s", k, body)
		}
		for _, msg := range msgs {
			if s, ok := msg.(string); !ok || s == "" {
				return fmt.Sprintf("400: %q has a message that is not text: %.300s", k, body)
			}
		}
	}
	return ""
}

// plan is the seeded sample of the walk: every operation from every principal as is,
// then, for each operation, scale values (chosen at random) of each kind of hostility in
// each of its slots, from principals weighted to those who get past authorization.
func (w *hostileWorld) plan(rng *rand.Rand, scale int) []hostileReq {
	weighted := []string{"anonymous", "viewer", "viewer", "editor", "editor", "editor", "staff", "staff", "staff", "staff"}
	who := func() string { return weighted[rng.IntN(len(weighted))] }
	pick := func(list []string) []byte { return []byte(list[rng.IntN(len(list))]) }
	var out []hostileReq
	headers := len(w.hostileHeaders())
	for i := range w.ops {
		op := &w.ops[i]
		for _, p := range principals {
			out = append(out, w.build(op, p, kindBaseline, 0, nil))
		}
		for range scale {
			if strings.Contains(op.template, "{") {
				v := pick(hostileStrings)
				if rng.IntN(4) == 0 && !strings.HasPrefix(op.template, "/v1/organizations/memberships") {
					// An id of another resource; not for memberships, whose integer ids
					// are also the principals' memberships (1 to 4).
					v = []byte(w.ids[pickKey(rng, w.ids)])
				}
				out = append(out, w.build(op, who(), kindPath, 0, v))
			}
			for q := range op.query {
				out = append(out, w.build(op, who(), kindQuery, q, pick(hostileStrings)))
			}
			for f := range op.fields {
				out = append(out, w.build(op, who(), kindField, f, pick(hostileJSON)))
				if rng.IntN(2) == 0 {
					out = append(out, w.build(op, who(), kindFieldString, f, pick(hostileStrings)))
				}
			}
			if op.body {
				out = append(out, w.build(op, who(), kindBody, rng.IntN(len(hostileBodies)), nil))
			}
			out = append(out, w.build(op, who(), kindHeader, rng.IntN(headers), nil))
		}
	}
	rng.Shuffle(len(out), func(i, j int) { out[i], out[j] = out[j], out[i] })
	// DELETEs of the fixtures go last, so that the rest reach rows that exist.
	slices.SortStableFunc(out, func(a, b hostileReq) int {
		switch {
		case a.last == b.last:
			return 0
		case a.last:
			return 1
		}
		return -1
	})
	return out
}

func pickKey(rng *rand.Rand, m map[string]string) string {
	keys := slices.Sorted(func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	})
	return keys[rng.IntN(len(keys))]
}

// serverTrouble lists the log lines of the server that mean a gap: an internal error,
// a panic, or a value that validation let through to the database.
var serverTrouble = regexp.MustCompile(`(?m)^.*"msg":"(request failed|panic in a handler|the database refused a value)".*$`)

func TestHostile(t *testing.T) {
	t.Parallel()
	w := hostileEnv(t)
	seed, scale := uint64(11), 3
	if v, err := strconv.ParseUint(os.Getenv("AMRD_HOSTILE_SEED"), 10, 64); err == nil {
		seed = v
	}
	if v, err := strconv.Atoi(os.Getenv("AMRD_HOSTILE_SCALE")); err == nil && v > 0 {
		scale = v
	}
	reqs := w.plan(rand.New(rand.NewPCG(seed, seed)), scale)
	start := time.Now()
	var sent atomic.Int64
	var mu sync.Mutex
	statuses := map[int]int{}
	var slowest atomic.Int64 // time.Duration
	var slowestWhat string
	var failures []string
	fail := func(s string) {
		mu.Lock()
		defer mu.Unlock()
		if len(failures) < 50 {
			failures = append(failures, s)
		}
	}
	run := func(reqs []hostileReq, workers int) {
		next := make(chan hostileReq)
		var wg sync.WaitGroup
		for range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for r := range next {
					sent.Add(1)
					began := time.Now()
					status, header, body, err := w.send(r)
					if took := time.Since(began); int64(took) > slowest.Load() {
						slowest.Store(int64(took)) // reported, not asserted: a slow answer is not a wrong one
						mu.Lock()
						slowestWhat = fmt.Sprintf("%s %s as %s (%.100s)", r.method, r.op.template, r.who, r.what)
						mu.Unlock()
					}
					if err != nil {
						if !strings.Contains(err.Error(), "invalid header field") && !strings.Contains(err.Error(), "invalid Host header") {
							fail(fmt.Sprintf("%s %s as %s (%s): no answer: %v", r.method, r.op.template, r.who, r.what, err))
						}
						continue
					}
					mu.Lock()
					statuses[status]++
					mu.Unlock()
					if msg := w.check(r, status, header, body); msg != "" {
						fail(fmt.Sprintf("%s %s as %s (%s): %s", r.method, r.op.template, r.who, r.what, msg))
					}
				}
			}()
		}
		for _, r := range reqs {
			next <- r
		}
		close(next)
		wg.Wait()
	}
	split := slices.IndexFunc(reqs, func(r hostileReq) bool { return r.last })
	if split < 0 {
		split = len(reqs)
	}
	run(reqs[:split], 4)
	run(reqs[split:], 1) // the fixtures' DELETEs, in turn
	t.Logf("seed %d, scale %d: %d requests in %v; answers by status: %v; slowest %v: %s", seed, scale, sent.Load(),
		time.Since(start).Round(time.Millisecond), statuses, time.Duration(slowest.Load()).Round(time.Millisecond), slowestWhat)
	for _, f := range failures {
		t.Error(f)
	}
	status, body := w.get("/_health/")
	require.Equal(t, 200, status, "healthy after the walk: %s", body)
	checkMetrics(t, w.get, w.routes)
	require.Empty(t, serverTrouble.FindAllString(w.e.logs.String(), 20), "the server's log")
}

// FuzzHostile builds requests as TestHostile does, from fuzz input: which operation,
// principal, kind of hostility and slot, and the value itself.
func FuzzHostile(f *testing.F) {
	w := hostileEnv(f)
	// Seeds: the defects the hardening tests hold amrd to (hardening_test.go), and one
	// value of each kind on a few operations.
	seed := func(method, template, who string, kind int, slotName string, value string) {
		i := slices.IndexFunc(w.ops, func(o hostileOp) bool { return o.method == method && o.template == template })
		require.GreaterOrEqual(f, i, 0, "%s %s", method, template)
		op := w.ops[i]
		slot := max(slices.Index(op.query, slotName), slices.IndexFunc(op.fields, func(h hostileField) bool { return h.name == slotName }),
			slices.Index(readHeaders, slotName), 0)
		f.Add(uint16(i), uint8(slices.Index(principals, who)), uint8(kind), uint8(slot), []byte(value))
	}
	seed("GET", "/v1/metering/sim-cards", "editor", kindQuery, "iccid", "\x00")
	seed("GET", "/v1/metering/meter-devices", "staff", kindQuery, "dlms_system_title", "\xff")
	seed("GET", "/v1/metering/staged-meter-readings", "staff", kindQuery, "meter_device_name", "a\x00b")
	seed("GET", "/v1/organizations/", "anonymous", kindHeader, "Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte("a\x00:b")))
	seed("POST", "/v1/auth/jwt/change-organization/", "editor", kindField, "organization", `"\u0000"`)
	seed("GET", "/v1/organizations/", "staff", kindHeader, "X-Forwarded-Host", "evil.example")
	seed("POST", "/v1/metering/sim-cards", "editor", kindBody, "", "")
	seed("POST", "/v1/metering/amr-tasks/", "editor", kindField, "task_kwargs", `{"a":"\u0000"}`)
	seed("POST", "/v1/metering/new-meter-readings", "staff", kindFieldString, "meter_device_name", "\xff")
	seed("PUT", "/v1/metering/meter-devices/{id}", "staff", kindPath, "", "9223372036854775808")
	seed("POST", "/v1/users/", "staff", kindField, "username", `"`+longString+`"`)
	f.Fuzz(func(t *testing.T, op uint16, who, kind, slot uint8, value []byte) {
		r := w.build(&w.ops[int(op)%len(w.ops)], principals[int(who)%len(principals)], int(kind)%kinds, int(slot), value)
		status, header, body, err := w.send(r)
		if err != nil {
			return // net/http refused to send it (a header value it does not allow)
		}
		if msg := w.check(r, status, header, body); msg != "" {
			t.Fatalf("%s %s as %s (%s): %s", r.method, r.op.template, r.who, r.what, msg)
		}
		if m := serverTrouble.FindString(w.e.logs.String()); m != "" {
			t.Fatalf("%s %s as %s (%s): the server logged %s", r.method, r.op.template, r.who, r.what, m)
		}
	})
}
