package api_test

// Hardening tests: each names a defect amrd must not have and holds amrd to that.

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/amrd/amrd/api"
)

// requestsLine is a sample of amrd_http_requests_total in the text exposition format.
var requestsLine = regexp.MustCompile(`(?m)^amrd_http_requests_total\{method="([^"]*)",route="([^"]*)",status="([^"]*)"\} \d+`)

// servedRoutes are the route labels amrd may use: the served document's paths as Fiber
// patterns, the middleware's ("/" and "/v1", which answer 401, 413 and CORS before a
// route is reached), "unmatched" (404 without a route) and "malformed" (what fasthttp
// could not parse).
func servedRoutes(doc *openapi3.T) map[string]bool {
	routes := map[string]bool{"/": true, "/v1": true, "unmatched": true, "malformed": true}
	param := regexp.MustCompile(`\{([^}]*)\}`)
	for path := range doc.Paths.Map() {
		p := param.ReplaceAllString(path, ":$1")
		if p != "/" {
			p = strings.TrimSuffix(p, "/")
		}
		routes[p] = true
	}
	return routes
}

// checkMetrics requires /metrics to answer 200 with every request counted under a real
// method and a route of routes, and returns how many series it has.
func checkMetrics(t testing.TB, get func(path string) (int, []byte), routes map[string]bool) int {
	t.Helper()
	status, body := get("/metrics")
	require.Equal(t, 200, status, "GET /metrics: %s", body)
	methods := map[string]bool{"GET": true, "HEAD": true, "POST": true, "PUT": true, "PATCH": true, "DELETE": true, "OPTIONS": true, "OTHER": true}
	series := requestsLine.FindAllStringSubmatch(string(body), -1)
	require.NotEmpty(t, series)
	for _, m := range series {
		require.True(t, methods[m[1]], "method label %q: %s", m[1], m[0])
		require.True(t, routes[m[2]], "route label %q: %s", m[2], m[0])
		require.Regexp(t, `^[1-5][0-9][0-9]$`, m[3])
	}
	return len(series)
}

// The metrics' method label must be a string of its own: c.Method() points into
// fasthttp's request buffer, so the next request on the connection would rewrite the
// labels of the series it created ("GETETE", "POS"), and /metrics would answer 500 once
// two series came to have the same labels.
func TestMetricsLabelsAfterMixedTraffic(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	doc := e.served()
	methods := []string{"GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "HEAD"}
	paths := []string{"/v1/organizations/", "/v1/organizations/" + uuid.NewString(), "/v1/organizations/memberships/1",
		"/v1/metering/sim-cards/?iccid=1", "/v1/nothing-here", "/_health/", "/v1/users/", "/nothing", "/v1/metering/meter-readings/7"}
	auths := []string{e.token(), "", "Token wrong"}
	const workers, each = 8, 500 // 4,000 requests over a few keep-alive connections
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				n := w*each + i
				req, err := http.NewRequest(methods[n%len(methods)], e.base+paths[n/len(methods)%len(paths)], strings.NewReader(`{"name":"x"}`))
				if err != nil {
					errs <- err
					return
				}
				if a := auths[n%len(auths)]; a != "" {
					req.Header.Set("Authorization", a)
				}
				res, err := e.client.Do(req)
				if err != nil {
					errs <- err
					return
				}
				_, _ = io.Copy(io.Discard, res.Body)
				res.Body.Close()
				if res.StatusCode >= 500 {
					errs <- fmt.Errorf("%s %s: %d", req.Method, req.URL, res.StatusCode)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	get := func(path string) (int, []byte) { r := e.do("GET", path, "", nil); return r.status, r.body }
	n := checkMetrics(t, get, servedRoutes(doc))
	require.Greater(t, n, 20, "the mixed traffic made series of many routes and statuses")
}

// A NUL byte or invalid UTF-8 in a text filter, which PostgreSQL refuses (22021, a 500 if
// it got there), is answered 400 by the filter, naming itself.
func TestFiltersRefuseTextPostgreSQLCannotHold(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	filters := map[string][]string{
		"/v1/metering/sim-cards/":            {"iccid", "imsi"},
		"/v1/metering/meter-reading-series/": {"name", "unit"},
		"/v1/metering/meter-devices/": {"name", "external_system_reference", "manufacturer_serial",
			"dlms_logical_device_name", "dlms_system_title"},
		"/v1/metering/meter-security-keys/": {"meter", "meter_name", "meter_external_system_reference", "meter_manufacturer_serial",
			"meter_dlms_system_title", "meter_dlms_logical_device_name"},
		"/v1/metering/staged-meter-readings/": {"meter_device_name", "start_time"},
		"/v1/metering/amr-task-runs/":         {"status", "task"},
	}
	values := map[string]string{
		"%00":     "Null characters are not allowed.",
		"a%00b":   "Null characters are not allowed.",
		"%FF":     "Not valid text: the value is not UTF-8.",
		"x%C3%28": "Not valid text: the value is not UTF-8.",
	}
	for path, names := range filters {
		for _, name := range names {
			for v, msg := range values {
				t.Run(path+name+"="+v, func(t *testing.T) {
					r := e.do("GET", path+"?"+name+"="+v, e.token(), nil)
					require.Equal(t, 400, r.status, "body: %s", r.body)
					require.Equal(t, []any{msg}, r.json(t)[name], "body: %s", r.body)
				})
			}
		}
	}
	t.Run("NUL in the iccid filter", func(t *testing.T) {
		r := e.do("GET", "/v1/metering/sim-cards/?iccid=%00", e.token(), nil)
		require.Equal(t, 400, r.status)
		require.JSONEq(t, `{"iccid":["Null characters are not allowed."]}`, string(r.body))
	})
	t.Run("JSON strings: \\u0000 is NUL", func(t *testing.T) {
		r := e.do("POST", "/v1/metering/sim-cards/", e.token(), `{"organization":"`+e.orgA.ID.String()+`","iccid":"1\u0000"}`)
		require.Equal(t, 400, r.status, "body: %s", r.body)
		require.Equal(t, []any{"Null characters are not allowed."}, r.json(t)["iccid"])
	})
	t.Run("JSON bodies that are not UTF-8", func(t *testing.T) {
		r := e.do("POST", "/v1/metering/sim-cards/", e.token(), "{\"organization\":\""+e.orgA.ID.String()+"\",\"iccid\":\"1\xff\"}")
		require.Equal(t, 400, r.status, "body: %s", r.body)
		require.JSONEq(t, `{"iccid":["Not valid text: the value is not UTF-8."]}`, string(r.body))
		r = e.do("POST", "/v1/metering/sim-cards/", e.token(), "{\"organization\":\""+e.orgA.ID.String()+"\",\"\xff\":\"1\"}")
		require.Equal(t, 400, r.status, "body: %s", r.body)
		require.JSONEq(t, `{"detail":"JSON parse error: the request body is not valid UTF-8."}`, string(r.body))
		r = e.do("POST", "/v1/metering/new-meter-readings", e.token(), "{\"meter\":\"m\xff\",\"series\":\"s\",\"timestamp\":\"2026-01-01T00:00:00Z\",\"value\":1}")
		require.Equal(t, 400, r.status, "body: %s", r.body)
		require.Contains(t, string(r.body), "not valid UTF-8", "rejected, not staged under a name with U+FFFD")
	})
	require.NotContains(t, e.logs.String(), "the database refused a value", "validation caught every value")
}

// A NUL byte or invalid UTF-8 in a Basic username, which PostgreSQL refuses (22021: a 500,
// before the throttle counted the failure), is not looked up: such credentials, like
// other implausible ones (over-long, or a bad password), are a 401 that the throttle
// counts.
func TestBasicAuthHostileCredentials(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	for _, tc := range []struct{ name, user, pass string }{
		{"NUL in username", "edi\x00tor", testPassword},
		{"invalid UTF-8 username", "\xff\xfe", testPassword},
		{"over-long username", strings.Repeat("u", 151), testPassword},
		{"NUL in password", "editor", testPassword + "\x00"},
		{"invalid UTF-8 password", "viewer", "\xc3\x28"},
		{"over-long password", "both", strings.Repeat("p", 2000)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := e.do("GET", "/v1/organizations/", basic(tc.user, tc.pass), nil)
			require.Equal(t, 401, r.status, "body: %s", r.body)
			require.Equal(t, "Basic", r.header.Get("WWW-Authenticate"))
			require.Equal(t, "Invalid username/password.", r.json(t)["detail"])
		})
	}
	t.Run("counted by the throttle", func(t *testing.T) {
		for i := range 4 { // one failure of "edi\x00tor" above
			r := e.do("GET", "/v1/organizations/", basic("edi\x00tor", "x"), nil)
			require.Equal(t, 401, r.status, "attempt %d: %s", i+2, r.body)
		}
		r := e.do("GET", "/v1/organizations/", basic("edi\x00tor", "x"), nil)
		require.Equal(t, 429, r.status, "body: %s", r.body)
		require.NotEmpty(t, r.header.Get("Retry-After"))
	})
	require.Equal(t, 200, e.do("GET", "/v1/organizations/", basic("editor", testPassword), nil).status)
}

// change-organization keeps the token's orig_iat: with a new one, a JWT changed to its
// own organization now and then would never have to be renewed within the refresh
// window, and would live forever without the password.
func TestChangeOrganizationKeepsOrigIat(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(c *api.Config) { c.JWTTTL = 30 * 24 * time.Hour })
	tok := e.jwtFor(e.both, nil)
	orig := decodeClaims(t, strings.TrimPrefix(tok, "JWT "))["orig_iat"]
	change := func(tok string, org uuid.UUID) resp {
		return e.do("POST", "/v1/auth/jwt/change-organization/", tok, map[string]any{"organization": org})
	}
	e.clock.add(time.Hour)
	for _, org := range []uuid.UUID{e.orgA.ID, e.orgB.ID} {
		r := change(tok, org)
		require.Equal(t, 201, r.status, "body: %s", r.body)
		cl := decodeClaims(t, r.json(t)["token"].(string))
		require.Equal(t, orig, cl["orig_iat"], "the chain keeps its start")
		require.Greater(t, cl["iat"], orig)
		require.Equal(t, org.String(), cl["organization"])
		tok = "JWT " + r.json(t)["token"].(string)
	}
	e.clock.add(7 * 24 * time.Hour)
	r := change(tok, e.orgA.ID)
	require.Equal(t, 401, r.status, "body: %s", r.body)
	require.Equal(t, "Refresh has expired; log in again.", r.json(t)["detail"])
	require.Equal(t, 401, e.do("GET", "/v1/auth/jwt/renew/", tok, nil).status)
	require.Equal(t, 200, e.do("GET", "/v1/organizations/", tok, nil).status, "the token itself is valid until it expires")
}

// rawExchange writes raw bytes to the server and reads one response.
func rawExchange(t *testing.T, addr string, raw []byte) (*http.Response, []byte) {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	require.NoError(t, err)
	defer conn.Close()
	require.NoError(t, conn.SetDeadline(time.Now().Add(30*time.Second)))
	_, err = conn.Write(raw)
	require.NoError(t, err)
	res, err := http.ReadResponse(bufio.NewReader(conn), nil)
	require.NoError(t, err)
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	require.NoError(t, err)
	return res, body
}

// withBody completes a raw request's head with a content type and a body.
func withBody(head, contentType, body string) string {
	return head + "Content-Type: " + contentType + "\r\nContent-Length: " + fmt.Sprint(len(body)) + "\r\n\r\n" + body
}

// What fasthttp cannot parse gets one of amrd's short JSON bodies, not the parser's
// error text (which quotes the request); so does a malformed body declared
// multipart/form-data, which fasthttp would parse ahead of the handler and answer with
// Go's multipart error.
func TestMalformedRequestsGetShortAnswers(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	addr := strings.TrimPrefix(e.base, "http://")
	const marker = "MARKER-7f3a"
	head := "POST /v1/organizations/ HTTP/1.1\r\nHost: x\r\nAuthorization: " + e.token() + "\r\n"
	for _, tc := range []struct {
		name, raw string
		status    int
		detail    string
	}{
		{"bad Content-Length", head + "Content-Length: 12" + marker + "\r\n\r\n{}", 400, "Malformed request."},
		{"negative Content-Length", head + "Content-Length: -5\r\nX-M: " + marker + "\r\n\r\n{}", 400, "Malformed request."},
		{"bad chunk size", head + "Transfer-Encoding: chunked\r\n\r\nzz" + marker + "\r\n{}\r\n0\r\n\r\n", 400, "Malformed request."},
		{"bad request line", " GET /v1/" + marker + " HTTP/1.1\r\nHost: x\r\n\r\n", 400, "Malformed request."},
		{"request line without a path", "GET\r\nX-M: " + marker + "\r\n\r\n", 400, "Malformed request."},
		{"no request line", "\x00\x01" + marker + "\r\n\r\n", 400, "Malformed request."},
		{"header line without a colon", "GET /v1/organizations/ HTTP/1.1\r\nHost: x\r\n" + marker + "\r\nA: b\r\n\r\n", 400, "Malformed request."},
		{"space in a header name", "GET /v1/organizations/ HTTP/1.1\r\nHost: x\r\nX " + marker + ": b\r\n\r\n", 400, "Malformed request."},
		{"headers over the read buffer", "GET /v1/organizations/ HTTP/1.1\r\nHost: x\r\nX-Big: " + strings.Repeat(marker, 1000) + "\r\n\r\n", 431, "Request header fields too large."},
		{"unknown method", "BREW /v1/organizations/" + marker + " HTTP/1.1\r\nHost: x\r\n\r\n", 405, "Method not allowed."},
		{"not multipart, declared multipart", withBody(head, "multipart/form-data; boundary=xyz", marker+"-not multipart"), 415, ""},
		{"multipart", withBody(head, "multipart/form-data; boundary=xyz",
			"--xyz\r\nContent-Disposition: form-data; name=\"name\"\r\n\r\nx\r\n--xyz--\r\n"), 415, ""},
		{"multipart without boundary", withBody(head, "multipart/form-data", marker), 415, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res, body := rawExchange(t, addr, []byte(tc.raw))
			require.Equal(t, tc.status, res.StatusCode, "body: %s", body)
			require.True(t, strings.HasPrefix(res.Header.Get("Content-Type"), "application/json"), res.Header.Get("Content-Type"))
			var m map[string]string
			require.NoError(t, json.Unmarshal(body, &m), "body: %s", body)
			require.Len(t, m, 1, "body: %s", body)
			require.NotEmpty(t, m["detail"], "body: %s", body)
			if tc.detail != "" {
				require.Equal(t, tc.detail, m["detail"])
			}
			require.NotContains(t, string(body), marker, "the request is not quoted")
		})
	}
	t.Run("431 to a client still sending its body", func(t *testing.T) {
		// The request line fills the read buffer: fasthttp stops reading there, and amrd
		// reads the rest before closing, so that the client gets the answer, not a reset.
		req, err := http.NewRequest("PUT", e.base+"/v1/metering/sim-cards/"+strings.Repeat("x", 5000), bytes.NewReader(bytes.Repeat([]byte(" "), 13<<20)))
		require.NoError(t, err)
		res, err := e.client.Do(req)
		require.NoError(t, err)
		defer res.Body.Close()
		body, err := io.ReadAll(res.Body)
		require.NoError(t, err)
		require.Equal(t, 431, res.StatusCode)
		require.JSONEq(t, `{"detail":"Request header fields too large."}`, string(body))
	})
	require.Equal(t, 200, e.do("GET", "/_health/", "", nil).status)
}

// A body over the limit by more than what fasthttp reads (1 MiB) must still get a 413
// the client can read (not a reset while it is still sending), whether it reads while
// sending (Go), sends everything first (raw), or sends chunks.
func TestLargeBodyGets413(t *testing.T) {
	t.Parallel()
	e := newEnv(t) // body limit 64 KiB: fasthttp reads up to 1 MiB + 64 KiB
	big := bytes.Repeat([]byte("x"), 13<<20)
	check := func(t *testing.T, status int, body []byte) {
		t.Helper()
		require.Equal(t, 413, status, "body: %.200s", body)
		require.JSONEq(t, `{"detail":"Request body too large."}`, string(body))
	}
	for _, tc := range []struct {
		name string
		body io.Reader
	}{
		{"13 MiB", bytes.NewReader(big)},
		{"1 MiB 100 KiB", bytes.NewReader(big[:1<<20+100<<10])},
		{"100 KiB (read, answered by amrd)", bytes.NewReader(big[:100<<10])},
		{"13 MiB chunked", io.MultiReader(bytes.NewReader(big))}, // no length: chunked
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, err := http.NewRequest("POST", e.base+"/v1/organizations/", tc.body)
			require.NoError(t, err)
			req.Header.Set("Authorization", e.token())
			req.Header.Set("Content-Type", "application/json")
			res, err := e.client.Do(req)
			require.NoError(t, err, "the client reads the answer")
			defer res.Body.Close()
			body, err := io.ReadAll(res.Body)
			require.NoError(t, err)
			check(t, res.StatusCode, body)
		})
	}
	t.Run("13 MiB sent before reading", func(t *testing.T) {
		raw := append([]byte("POST /v1/organizations/ HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"+
			"Content-Length: "+fmt.Sprint(len(big))+"\r\n\r\n"), big...)
		res, body := rawExchange(t, strings.TrimPrefix(e.base, "http://"), raw)
		check(t, res.StatusCode, body)
		require.True(t, res.Close, "the connection closes after the answer")
	})
	require.Equal(t, 200, e.do("GET", "/_health/", "", nil).status)
}

// nextLink reads the next link of a list answered with limit=1.
func nextLink(t *testing.T, r resp) *url.URL {
	t.Helper()
	require.Equal(t, 200, r.status, "body: %s", r.body)
	next, ok := r.json(t)["next"].(string)
	require.True(t, ok, "body: %s", r.body)
	u, err := url.Parse(next)
	require.NoError(t, err)
	return u
}

// The pagination links' host: ALLOWED_HOSTS (Django's) restricts it, and
// X-Forwarded-Host is read only with USE_X_FORWARDED_HOST.
func TestLinkHosts(t *testing.T) {
	t.Parallel()
	const list = "/v1/organizations/?limit=1"
	t.Run("default: any well-formed Host, no X-Forwarded-Host", func(t *testing.T) {
		e := newEnv(t)
		u := nextLink(t, e.do("GET", list, e.token(), nil, "X-Forwarded-Host", "evil.example"))
		require.Equal(t, strings.TrimPrefix(e.base, "http://"), u.Host)
		require.Equal(t, "http", u.Scheme)
		require.Equal(t, "/v1/organizations/", u.Path)
		require.Equal(t, "1", u.Query().Get("offset"))
		u = nextLink(t, e.do("GET", list, e.token(), nil, "Host", "API.Example.org:8443", "X-Forwarded-Proto", "https"))
		require.Equal(t, "https://api.example.org:8443/v1/organizations/?limit=1&offset=1", u.String())
		u = nextLink(t, e.do("GET", list, e.token(), nil, "X-Forwarded-Proto", "javascript"))
		require.Equal(t, "http", u.Scheme)

		// A malformed Host is not put in a link: the link names the address the request
		// came in on.
		res, body := rawExchange(t, strings.TrimPrefix(e.base, "http://"), []byte("GET "+list+" HTTP/1.1\r\nHost: evil\"><x\r\n"+
			"Authorization: "+e.token()+"\r\nConnection: close\r\n\r\n"))
		require.Equal(t, 200, res.StatusCode, "body: %s", body)
		var page struct{ Next string }
		require.NoError(t, json.Unmarshal(body, &page))
		require.Equal(t, e.base+"/v1/organizations/?limit=1&offset=1", page.Next)
	})
	t.Run("ALLOWED_HOSTS", func(t *testing.T) {
		e := newEnv(t, func(c *api.Config) { c.AllowedHosts = []string{".example.org", "api.test"} })
		for host, want := range map[string]string{
			"api.test":           "api.test",
			"a.example.org:8000": "a.example.org:8000",
			"example.org":        "example.org",
			"EXAMPLE.ORG.":       "example.org.",
		} {
			u := nextLink(t, e.do("GET", list, e.token(), nil, "Host", host, "X-Forwarded-Host", "evil.example"))
			require.Equal(t, want, u.Host, host)
		}
		for _, host := range []string{"evil.example", "example.org.evil.example", "api.test.evil", "127.0.0.1"} {
			r := e.do("GET", list, e.token(), nil, "Host", host)
			require.Equal(t, 400, r.status, host)
			require.JSONEq(t, `{"detail":"Invalid HTTP_HOST header."}`, string(r.body))
		}
		require.Equal(t, 200, e.do("GET", "/_health/", "", nil, "Host", "10.0.0.7").status, "probes may use any host")
	})
	t.Run("USE_X_FORWARDED_HOST", func(t *testing.T) {
		e := newEnv(t, func(c *api.Config) {
			c.AllowedHosts = []string{".example.org"}
			c.UseXForwardedHost = true
		})
		u := nextLink(t, e.do("GET", list, e.token(), nil, "Host", "10.0.0.7:8000", "X-Forwarded-Host", "api.example.org, proxy.internal"))
		require.Equal(t, "api.example.org", u.Host)
		r := e.do("GET", list, e.token(), nil, "Host", "api.example.org", "X-Forwarded-Host", "evil.example")
		require.Equal(t, 400, r.status, "body: %s", r.body)
	})
}

// A date-time in the year 10000 in UTC (9999-12-31T23:59:59-14:00) would make every list
// that reaches it answer 500 (Go's JSON encoding of a time refuses years past 9999), so
// date-times are kept in the years 1 to 9999 (UTC) where they come in.
func TestTimestampsOutOfRange(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	meterFleet(t, e)
	const msg = "The date-time is out of range: it must lie between the years 1 and 9999 (UTC)."
	for _, ts := range []string{"9999-12-31T23:59:59-14:00", "9999-12-31T23:00:00", "0000-06-01T00:00:00Z", "0001-01-01T05:00:00"} {
		t.Run(ts, func(t *testing.T) {
			r := e.do("POST", "/v1/metering/new-meter-readings", e.token(), map[string]any{"meter_device_name": "m-a1", "series_name": "1.8.0", "timestamp": ts, "value": "1"})
			require.Equal(t, 400, r.status, "body: %s", r.body)
			require.Contains(t, string(r.body), msg)
			// The staged readings route reads a date-time without offset as UTC: only
			// those with one are out of range there.
			r = e.do("POST", "/v1/metering/staged-meter-readings", e.token(), map[string]any{"meter_device_name": "x", "series_name": "1.8.0", "timestamp": ts, "value": "1"})
			if strings.HasSuffix(ts, "Z") || strings.HasSuffix(ts, "-14:00") {
				require.Equal(t, 400, r.status, "body: %s", r.body)
				require.Equal(t, []any{msg}, r.json(t)["timestamp"])
			} else {
				require.Equal(t, 201, r.status, "body: %s", r.body)
			}
		})
	}
	r := e.do("GET", "/v1/metering/meter-readings/?start_time=9999-12-31T23:59:59-14:00", e.token(), nil)
	require.Equal(t, 400, r.status, "body: %s", r.body)
	require.Equal(t, []any{msg}, r.json(t)["start_time"])
	for _, ts := range []string{"9999-12-31T23:59:59Z", "0001-01-01T00:00:00Z", "9999-12-30T23:00:00"} {
		r := e.do("POST", "/v1/metering/new-meter-readings", e.token(), map[string]any{"meter_device_name": "m-a1", "series_name": "1.8.0", "timestamp": ts, "value": "1"})
		require.Equal(t, 201, r.status, "%s: %s", ts, r.body)
	}
	r = e.do("GET", "/v1/metering/meter-readings/", e.token(), nil)
	require.Equal(t, 200, r.status, "body: %s", r.body)
	require.Equal(t, float64(3), r.json(t)["count"])
}
