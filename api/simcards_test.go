package api_test

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestSimCards(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	a := e.orgA.ID.String()
	r := e.do("POST", "/v1/metering/sim-cards", e.token(), map[string]any{
		"organization": a, "iccid": "8946000000000000001", "imsi": "240010000000001", "ip_address": "10.1.2.3"})
	require.Equal(t, 201, r.status, "body: %s", r.body)
	sim := r.json(t)
	id := sim["id"].(string)
	require.Equal(t, a, sim["organization"])
	require.Nil(t, sim["phone_number"])

	t.Run("filters", func(t *testing.T) {
		require.Equal(t, []string{id}, ids(t, e.do("GET", "/v1/metering/sim-cards/?iccid=8946000000000000001", e.token(), nil)))
		require.Empty(t, ids(t, e.do("GET", "/v1/metering/sim-cards/?iccid=894600000000000000", e.token(), nil)))
		require.Equal(t, []string{id}, ids(t, e.do("GET", "/v1/metering/sim-cards/?imsi=240010000000001", e.token(), nil)))
	})
	t.Run("field rules", func(t *testing.T) {
		tests := []struct {
			name  string
			body  map[string]any
			field string
		}{
			{"iccid letters", map[string]any{"iccid": "89ab", "imsi": "1"}, "iccid"},
			{"iccid too long", map[string]any{"iccid": strings.Repeat("1", 21), "imsi": "1"}, "iccid"},
			{"imsi missing", map[string]any{"iccid": "1"}, "imsi"},
			{"imsi too long", map[string]any{"iccid": "1", "imsi": strings.Repeat("1", 16)}, "imsi"},
			{"bad ip", map[string]any{"iccid": "1", "imsi": "1", "ip_address": "999.1.1.1"}, "ip_address"},
			{"blank ip", map[string]any{"iccid": "1", "imsi": "1", "ip_address": ""}, "ip_address"},
			{"bad link", map[string]any{"iccid": "1", "imsi": "1", "external_system_link": "not a url"}, "external_system_link"},
			{"long phone", map[string]any{"iccid": "1", "imsi": "1", "phone_number": strings.Repeat("1", 31)}, "phone_number"},
			{"unknown organization", map[string]any{"iccid": "1", "imsi": "1", "organization": "6f1c2a0e-0000-4000-8000-000000000000"}, "organization"},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				r := e.do("POST", "/v1/metering/sim-cards", e.token(), tc.body)
				require.Equal(t, 400, r.status, "body: %s", r.body)
				require.Contains(t, r.json(t), tc.field)
			})
		}
	})
	t.Run("staff may create a SIM without organization", func(t *testing.T) {
		r := e.do("POST", "/v1/metering/sim-cards", e.token(), map[string]any{"iccid": "2", "imsi": "2"})
		require.Equal(t, 201, r.status, "body: %s", r.body)
		require.Nil(t, r.json(t)["organization"])
		// which no JWT user sees
		list := e.do("GET", "/v1/metering/sim-cards", e.jwtFor(e.editor, nil), nil)
		require.Equal(t, []string{id}, ids(t, list))
	})
	t.Run("editor writes in its organization whatever the body says", func(t *testing.T) {
		tok := e.jwtFor(e.editor, nil)
		r := e.do("POST", "/v1/metering/sim-cards", tok, map[string]any{"iccid": "3", "imsi": "3", "organization": e.orgB.ID})
		require.Equal(t, 201, r.status, "body: %s", r.body)
		require.Equal(t, a, r.json(t)["organization"])
		r = e.do("PATCH", "/v1/metering/sim-cards/"+id, tok, map[string]any{"phone_number": "+4612345"})
		require.Equal(t, 200, r.status, "body: %s", r.body)
		require.Equal(t, "+4612345", r.json(t)["phone_number"])
		require.Equal(t, "8946000000000000001", r.json(t)["iccid"])
	})
	t.Run("viewer reads but may not write", func(t *testing.T) {
		tok := e.jwtFor(e.viewer, nil)
		require.Equal(t, 200, e.do("GET", "/v1/metering/sim-cards/"+id, tok, nil).status)
		require.Equal(t, 403, e.do("POST", "/v1/metering/sim-cards", tok, map[string]any{"iccid": "4", "imsi": "4"}).status)
		require.Equal(t, 403, e.do("PATCH", "/v1/metering/sim-cards/"+id, tok, map[string]any{"iccid": "4"}).status)
		require.Equal(t, 403, e.do("DELETE", "/v1/metering/sim-cards/"+id, tok, nil).status)
	})
	t.Run("another organization's SIM is 404", func(t *testing.T) {
		tok := e.jwtFor(e.both, &e.orgB.ID)
		for _, m := range []string{"GET", "PUT", "PATCH", "DELETE"} {
			require.Equal(t, 404, e.do(m, "/v1/metering/sim-cards/"+id, tok, map[string]any{"iccid": "5", "imsi": "5"}).status, m)
		}
	})
	t.Run("PUT needs required fields", func(t *testing.T) {
		r := e.do("PUT", "/v1/metering/sim-cards/"+id, e.token(), map[string]any{"iccid": "6"})
		require.Equal(t, 400, r.status)
		require.Contains(t, r.json(t), "imsi")
	})
	require.Equal(t, 204, e.do("DELETE", "/v1/metering/sim-cards/"+id, e.token(), nil).status)
	require.Equal(t, 404, e.do("GET", "/v1/metering/sim-cards/"+id, e.token(), nil).status)
}

func TestSimCardsConformToContract(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	r := e.do("POST", "/v1/metering/sim-cards", e.token(), map[string]any{"organization": e.orgA.ID, "iccid": "1", "imsi": "2", "external_system_link": "https://sims.example.org/1"})
	require.Equal(t, 201, r.status, "body: %s", r.body)
	conform(t, "POST", "/metering/sim-cards", r)
	id := r.json(t)["id"].(string)
	conform(t, "GET", "/metering/sim-cards", e.do("GET", "/v1/metering/sim-cards", e.token(), nil))
	conform(t, "GET", "/metering/sim-cards/{id}", e.do("GET", "/v1/metering/sim-cards/"+id, e.token(), nil))
	conform(t, "PUT", "/metering/sim-cards/{id}", e.do("PUT", "/v1/metering/sim-cards/"+id, e.token(), map[string]any{"iccid": "3", "imsi": "4"}))
	conform(t, "PATCH", "/metering/sim-cards/{id}", e.do("PATCH", "/v1/metering/sim-cards/"+id, e.token(), map[string]any{"ip_address": "::1"}))
	r = e.do("DELETE", "/v1/metering/sim-cards/"+id, e.token(), nil)
	require.Equal(t, 204, r.status)
	conform(t, "DELETE", "/metering/sim-cards/{id}", r)
}
