package api

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
)

// TestSchemaListsEveryRoute checks that the served API description and the router list
// the same operations: no route the document does not describe, no documented operation
// that is not routed. With and without /metrics, which is served only when configured.
func TestSchemaListsEveryRoute(t *testing.T) {
	for _, tc := range []struct {
		name    string
		metrics http.Handler
	}{
		{"with metrics", http.NotFoundHandler()},
		{"without metrics", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := New(Config{JWTKey: []byte("k"), AllowTokenAuth: true, Metrics: tc.metrics}, fakeStore{}, fakeTables(nil), nil,
				slog.New(slog.NewTextHandler(io.Discard, nil)), prometheus.NewRegistry())
			require.NoError(t, err)

			routed := routedOperations(s)
			documented := documentedOperations(t, s)
			require.Empty(t, missing(routed, documented), "routes the document does not describe")
			require.Empty(t, missing(documented, routed), "documented operations that are not routed")
			require.Equal(t, tc.metrics != nil, slices.Contains(documented, "GET /metrics"))
		})
	}
}

// routedOperations lists the router's operations as "METHOD /path/{param}", leaving out
// middleware (Use) and the HEAD routes Fiber adds for every GET.
func routedOperations(s *Server) []string {
	var ops []string
	for _, r := range s.App().GetRoutes(true) {
		if r.Method == http.MethodHead {
			continue
		}
		ops = append(ops, r.Method+" "+normalPath(r.Path))
	}
	return uniqueSorted(ops)
}

// documentedOperations fetches /v1/schema (without credentials: it is public) and lists
// its operations the same way.
func documentedOperations(t *testing.T, s *Server) []string {
	t.Helper()
	res, err := s.App().Test(httptest.NewRequest("GET", "/v1/schema", nil), -1)
	require.NoError(t, err)
	require.Equal(t, 200, res.StatusCode)
	var doc struct {
		Paths map[string]map[string]json.RawMessage `json:"paths"`
	}
	require.NoError(t, json.NewDecoder(res.Body).Decode(&doc))
	var ops []string
	for path, item := range doc.Paths {
		for method := range item {
			switch method {
			case "parameters", "summary", "description", "servers":
				continue
			}
			ops = append(ops, strings.ToUpper(method)+" "+normalPath(path))
		}
	}
	require.NotEmpty(t, ops)
	return uniqueSorted(ops)
}

var fiberParam = regexp.MustCompile(`:([A-Za-z0-9_]+)`)

// normalPath writes Fiber's ":id" as OpenAPI's "{id}" and drops a trailing slash: every
// route answers with or without one.
func normalPath(p string) string {
	p = fiberParam.ReplaceAllString(p, "{$1}")
	if len(p) > 1 {
		p = strings.TrimSuffix(p, "/")
	}
	return p
}

func uniqueSorted(list []string) []string {
	slices.Sort(list)
	return slices.Compact(list)
}

// missing lists the items of want that have is missing.
func missing(want, have []string) []string {
	var out []string
	for _, w := range want {
		if !slices.Contains(have, w) {
			out = append(out, w)
		}
	}
	return out
}

// TestSchemaFollowsSettings checks that the document states this server's settings: the
// body limit, whether Token authentication is on, whether /metrics is served.
func TestSchemaFollowsSettings(t *testing.T) {
	for _, tc := range []struct {
		name string
		opt  docOptions
	}{
		{"defaults", docOptions{metrics: true, tokenAuth: true, bodyLimit: 10 << 20}},
		{"token auth off, no metrics, small bodies", docOptions{bodyLimit: 12345}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			raw, err := buildOpenAPI(tc.opt)
			require.NoError(t, err)
			var doc struct {
				Info       struct{ Description string }
				Paths      map[string]any
				Components struct {
					SecuritySchemes map[string]struct{ Description string } `json:"securitySchemes"`
					Responses       map[string]struct{ Description string }
				}
			}
			require.NoError(t, json.Unmarshal(raw, &doc))
			limit := strconv.Itoa(tc.opt.bodyLimit) + " bytes"
			require.Contains(t, doc.Info.Description, limit)
			require.Contains(t, doc.Components.Responses["PayloadTooLarge"].Description, limit)
			require.Equal(t, !tc.opt.tokenAuth, strings.Contains(doc.Components.SecuritySchemes["Token"].Description, "Disabled"))
			_, metrics := doc.Paths["/metrics"]
			require.Equal(t, tc.opt.metrics, metrics)
			require.NotContains(t, string(raw), "{{", "every placeholder is filled")
		})
	}
}
