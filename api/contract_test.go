package api_test

import (
	"encoding/json"
	"sync"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/stretchr/testify/require"
)

var (
	contractOnce sync.Once
	contractDoc  *openapi3.T
	contractErr  error
)

// contract loads the Utilitarian v1.3 contract once, with the fixes below for the
// spec's own mistakes (each is a case where Utilitarian itself answers what the spec
// does not allow).
func contract(t *testing.T) *openapi3.T {
	t.Helper()
	contractOnce.Do(func() {
		contractDoc, contractErr = openapi3.NewLoader().LoadFromFile("testdata/contract/openapi_v1_3_0.json")
		if contractErr != nil {
			return
		}
		for _, fix := range contractFixes {
			s := contractDoc.Components.Schemas[fix.schema]
			if s == nil || s.Value.Properties[fix.property] == nil {
				contractErr = &json.UnsupportedValueError{Str: "contract fix names a missing property: " + fix.schema + "." + fix.property}
				return
			}
			s.Value.Properties[fix.property].Value.Nullable = true
		}
	})
	require.NoError(t, contractErr)
	return contractDoc
}

// contractFixes are properties the spec declares non-null that have no value in some
// rows: amrd answers null there, as Utilitarian does.
var contractFixes = []struct{ schema, property string }{
	// Not blocked: no block time. No FQDN, static IP or SIM IP: no host.
	{"NetworkInterface", "block_time"},
	{"NetworkInterface", "host"},
}

// conform checks a 2xx response of amrd against the contract: the operation (contract
// path template, e.g. "/metering/sim-cards/{id}", and method) must list the status, and
// the body must match its schema. Error responses are not described by the contract and
// are checked by the tests themselves; an error here fails the test.
func conform(t *testing.T, method, template string, r resp) {
	t.Helper()
	doc := contract(t)
	item := doc.Paths.Value(template)
	require.NotNil(t, item, "the contract has no path %s", template)
	op := item.GetOperation(method)
	require.NotNil(t, op, "the contract has no %s %s", method, template)
	require.Less(t, r.status, 300, "%s %s: conform checks successful answers; body: %s", method, template, r.body)
	ref := op.Responses.Status(r.status)
	require.NotNil(t, ref, "the contract does not list status %d for %s %s", r.status, method, template)
	mt := ref.Value.Content.Get("application/json")
	if mt == nil || mt.Schema == nil {
		require.Empty(t, r.body, "%s %s %d: the contract describes no body", method, template, r.status)
		return
	}
	var v any
	require.NoError(t, json.Unmarshal(r.body, &v), "body: %s", r.body)
	err := mt.Schema.Value.VisitJSON(v, openapi3.VisitAsResponse(), openapi3.MultiErrors(), openapi3.EnableFormatValidation())
	require.NoError(t, err, "%s %s %d does not match the contract; body: %s", method, template, r.status, r.body)
}
