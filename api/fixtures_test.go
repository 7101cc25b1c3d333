package api_test

import (
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/amrd/amrd/store/storetest"
)

// sqlDevice makes a meter device with SQL (the tests that use it are not about the device
// API) and returns its id. org nil makes a device without organization; cols sets more
// columns of meter_devices.
func (e *env) sqlDevice(org *uuid.UUID, name string, cols map[string]any) string {
	e.t.Helper()
	names := []string{"organization_id", "name", "protocol"}
	args := []any{org, name, "dlms-cosem"}
	extra := make([]string, 0, len(cols))
	for c := range cols {
		extra = append(extra, c)
	}
	sort.Strings(extra)
	for _, c := range extra {
		names = append(names, c)
		args = append(args, cols[c])
	}
	marks := make([]string, len(names))
	for i := range names {
		marks[i] = "$" + strconv.Itoa(i+1)
	}
	var id uuid.UUID
	storetest.Query(e.t, e.db, "INSERT INTO meter_devices ("+strings.Join(names, ", ")+") VALUES ("+strings.Join(marks, ", ")+") RETURNING id", args, &id)
	return id.String()
}

// fieldCase is a body that a create must refuse with a 400 naming field.
type fieldCase struct {
	name  string
	body  map[string]any
	field string
}

// refuses posts each case's body to path as staff and requires a 400 naming its field;
// check, when not nil, looks further at each answer.
func (e *env) refuses(t *testing.T, path string, cases []fieldCase, check func(*testing.T, fieldCase, resp)) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := e.do("POST", path, e.token(), tc.body)
			require.Equal(t, 400, r.status, "body: %s", r.body)
			require.Contains(t, r.json(t), tc.field)
			if check != nil {
				check(t, tc, r)
			}
		})
	}
}

// conformed sends a request as staff to path, requires the status want and checks the
// answer against the contract's operation (method and path template, without /v1).
func (e *env) conformed(t *testing.T, method, template, path string, body any, want int) resp {
	t.Helper()
	r := e.do(method, path, e.token(), body)
	require.Equal(t, want, r.status, "%s %s: %s", method, path, r.body)
	conform(t, method, template, r)
	return r
}
