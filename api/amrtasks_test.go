package api_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// omit, as a value of a test body's extra fields, leaves the field out of the body (nil
// sends JSON null).
type omit struct{}

// with returns body with the fields of extra on top.
func with(body, extra map[string]any) map[string]any {
	for k, v := range extra {
		if _, ok := v.(omit); ok {
			delete(body, k)
			continue
		}
		body[k] = v
	}
	return body
}

// task is a valid AMR task body in org, with the fields of extra on top.
func task(org any, extra map[string]any) map[string]any {
	return with(map[string]any{"organization": org, "name": "Daily register read", "schedule": "daily",
		"meter_execution_type": "generic_iec6205621", "task_call": "read_registers"}, extra)
}

// created POSTs body to path, requires a 201 and returns the created row.
func (e *env) created(path, auth string, body any) map[string]any {
	e.t.Helper()
	r := e.do("POST", path, auth, body)
	require.Equal(e.t, 201, r.status, "body: %s", r.body)
	return r.json(e.t)
}

// mustCreate POSTs body to path and returns the created row's id.
func (e *env) mustCreate(path, auth string, body any) string {
	e.t.Helper()
	id, _ := e.created(path, auth, body)["id"].(string)
	require.NotEmpty(e.t, id)
	return id
}

func TestAmrTasks(t *testing.T) {
	e := newEnv(t)
	a := e.orgA.ID.String()
	const path = "/v1/metering/amr-tasks"
	created := e.created(path, e.token(), task(a, nil))
	id := created["id"].(string)

	t.Run("defaults", func(t *testing.T) {
		require.Equal(t, a, created["organization"])
		require.Equal(t, true, created["is_active"])
		require.Equal(t, float64(0), created["run_offset_seconds"])
		require.Equal(t, "", created["description"])
		require.Nil(t, created["task_kwargs"])
		require.Contains(t, created, "task_kwargs")
	})
	t.Run("valid values are stored as sent", func(t *testing.T) {
		e.accepts(t, path, func(_ int, extra map[string]any) map[string]any { return task(a, extra) }, []valueCase{
			{"name of 150 characters", map[string]any{"name": strings.Repeat("ä", 150)}, "name", strings.Repeat("ä", 150)},
			{"description of 500 characters", map[string]any{"description": strings.Repeat("d", 500)}, "description", strings.Repeat("d", 500)},
			{"blank description", map[string]any{"description": ""}, "description", ""},
			{"inactive", map[string]any{"is_active": false}, "is_active", false},
			{"every schedule: quarterly", map[string]any{"schedule": "quarterly"}, "schedule", "quarterly"},
			{"every schedule: hourly", map[string]any{"schedule": "hourly"}, "schedule", "hourly"},
			{"every schedule: weekly", map[string]any{"schedule": "weekly"}, "schedule", "weekly"},
			{"every schedule: monthly", map[string]any{"schedule": "monthly"}, "schedule", "monthly"},
			{"every schedule: yearly", map[string]any{"schedule": "yearly"}, "schedule", "yearly"},
			{"execution type lis200", map[string]any{"meter_execution_type": "generic_lis200"}, "meter_execution_type", "generic_lis200"},
			{"execution type corus", map[string]any{"meter_execution_type": "generic_corus_meter"}, "meter_execution_type", "generic_corus_meter"},
			{"smallest int32 offset", map[string]any{"run_offset_seconds": -2147483648}, "run_offset_seconds", float64(-2147483648)},
			{"largest int32 offset", map[string]any{"run_offset_seconds": 2147483647}, "run_offset_seconds", float64(2147483647)},
			{"task_call of 50 characters", map[string]any{"task_call": strings.Repeat("c", 50)}, "task_call", strings.Repeat("c", 50)},
			{"empty kwargs object", map[string]any{"task_kwargs": map[string]any{}}, "task_kwargs", map[string]any{}},
			{"nested kwargs", map[string]any{"task_kwargs": map[string]any{"registers": []any{"1.8.0", "2.8.0"}, "retries": 3.5, "opts": map[string]any{"fast": true, "x": nil}}},
				"task_kwargs", map[string]any{"registers": []any{"1.8.0", "2.8.0"}, "retries": 3.5, "opts": map[string]any{"fast": true, "x": nil}}},
		})
	})
	t.Run("field rules", func(t *testing.T) {
		rules := append(textRules("name", 150, true), textRules("task_call", 50, true)...)
		e.refusesExtra(t, path, func(extra map[string]any) map[string]any { return task(a, extra) }, append(rules, []extraCase{
			{"description too long", map[string]any{"description": strings.Repeat("d", 501)}, "description"},
			{"is_active not a boolean", map[string]any{"is_active": "maybe"}, "is_active"},
			{"schedule missing", map[string]any{"schedule": omit{}}, "schedule"},
			{"schedule unknown", map[string]any{"schedule": "minutely"}, "schedule"},
			{"schedule wrong case", map[string]any{"schedule": "Daily"}, "schedule"},
			{"run_offset_seconds above int32", map[string]any{"run_offset_seconds": 2147483648}, "run_offset_seconds"},
			{"run_offset_seconds below int32", map[string]any{"run_offset_seconds": -2147483649}, "run_offset_seconds"},
			{"run_offset_seconds fraction", map[string]any{"run_offset_seconds": 1.5}, "run_offset_seconds"},
			{"run_offset_seconds text", map[string]any{"run_offset_seconds": "soon"}, "run_offset_seconds"},
			{"meter_execution_type missing", map[string]any{"meter_execution_type": omit{}}, "meter_execution_type"},
			{"meter_execution_type unknown", map[string]any{"meter_execution_type": "generic_dlms"}, "meter_execution_type"},
			{"task_kwargs a list", map[string]any{"task_kwargs": []any{1, 2}}, "task_kwargs"},
			{"task_kwargs a string", map[string]any{"task_kwargs": "{}"}, "task_kwargs"},
			{"task_kwargs a number", map[string]any{"task_kwargs": 1}, "task_kwargs"},
			{"task_kwargs a boolean", map[string]any{"task_kwargs": true}, "task_kwargs"},
			{"task_kwargs with a NUL character", map[string]any{"task_kwargs": map[string]any{"a": "x\x00y"}}, "task_kwargs"},
			{"task_kwargs with a NUL in a key", map[string]any{"task_kwargs": map[string]any{"a\x00": 1}}, "task_kwargs"},
			{"task_kwargs number too large", map[string]any{"task_kwargs": json.RawMessage(`{"n":1e1000000}`)}, "task_kwargs"},
			{"task_kwargs number too small", map[string]any{"task_kwargs": json.RawMessage(`{"n":[1e-1000000]}`)}, "task_kwargs"},
			{"task_kwargs nested too deeply", map[string]any{"task_kwargs": deep(40)}, "task_kwargs"},
			{"organization missing", map[string]any{"organization": omit{}}, "organization"},
			{"organization null", map[string]any{"organization": nil}, "organization"},
			{"schedule null", map[string]any{"schedule": nil}, "schedule"},
			{"run_offset_seconds null", map[string]any{"run_offset_seconds": nil}, "run_offset_seconds"},
			{"is_active null", map[string]any{"is_active": nil}, "is_active"},
			{"description null", map[string]any{"description": nil}, "description"},
			{"organization unknown", map[string]any{"organization": "6f1c2a0e-0000-4000-8000-000000000000"}, "organization"},
			{"organization not a UUID", map[string]any{"organization": "A"}, "organization"},
		}...))
	})
	t.Run("kwargs keep exact numbers and can be cleared", func(t *testing.T) {
		r := e.do("POST", path, e.token(), `{"organization":"`+a+`","name":"n","schedule":"hourly","meter_execution_type":"generic_lis200","task_call":"c","task_kwargs":{"big":12345678901234567890}}`)
		require.Equal(t, 201, r.status, "body: %s", r.body)
		require.Contains(t, string(r.body), `"task_kwargs":{"big":12345678901234567890}`)
		kid := r.json(t)["id"].(string)
		r = e.do("PATCH", path+"/"+kid, e.token(), map[string]any{"task_kwargs": nil})
		require.Equal(t, 200, r.status, "body: %s", r.body)
		require.Nil(t, r.json(t)["task_kwargs"])
	})
	t.Run("PATCH changes only what it sends", func(t *testing.T) {
		r := e.do("PATCH", path+"/"+id, e.token(), map[string]any{"run_offset_seconds": "300", "task_kwargs": map[string]any{"obis": "1.8.0"}})
		require.Equal(t, 200, r.status, "body: %s", r.body)
		got := r.json(t)
		require.Equal(t, float64(300), got["run_offset_seconds"])
		require.Equal(t, map[string]any{"obis": "1.8.0"}, got["task_kwargs"])
		require.Equal(t, "Daily register read", got["name"])
		require.Equal(t, "daily", got["schedule"])
	})
	t.Run("PUT needs required fields and keeps the others", func(t *testing.T) {
		r := e.do("PUT", path+"/"+id, e.token(), map[string]any{"name": "x"})
		require.Equal(t, 400, r.status, "body: %s", r.body)
		require.Contains(t, r.json(t), "schedule")
		require.Contains(t, r.json(t), "meter_execution_type")
		require.Contains(t, r.json(t), "task_call")
		before := e.do("GET", path+"/"+id, e.token(), nil).json(t)
		r = e.do("PUT", path+"/"+id, e.token(), task(nil, map[string]any{"organization": omit{}, "name": "Renamed", "schedule": "monthly"}))
		require.Equal(t, 200, r.status, "body: %s", r.body)
		got := r.json(t)
		require.Equal(t, "Renamed", got["name"])
		require.Equal(t, "monthly", got["schedule"])
		require.Equal(t, before["run_offset_seconds"], got["run_offset_seconds"])
		require.Equal(t, before["task_kwargs"], got["task_kwargs"])
		require.Equal(t, a, got["organization"], "PUT without organization keeps the row's")
	})
	t.Run("editor writes in its organization whatever the body says", func(t *testing.T) {
		tok := e.jwtFor(e.editor, nil)
		r := e.do("POST", path, tok, task(e.orgB.ID, nil))
		require.Equal(t, 201, r.status, "body: %s", r.body)
		require.Equal(t, a, r.json(t)["organization"])
		r = e.do("PATCH", path+"/"+id, tok, map[string]any{"is_active": false, "organization": e.orgB.ID})
		require.Equal(t, 200, r.status, "body: %s", r.body)
		require.Equal(t, false, r.json(t)["is_active"])
		require.Equal(t, a, r.json(t)["organization"])
	})
	t.Run("viewer reads but may not write", func(t *testing.T) {
		tok := e.jwtFor(e.viewer, nil)
		require.Equal(t, 200, e.do("GET", path+"/"+id, tok, nil).status)
		require.Contains(t, ids(t, e.do("GET", path, tok, nil)), id)
		require.Equal(t, 403, e.do("POST", path, tok, task(a, nil)).status)
		require.Equal(t, 403, e.do("PUT", path+"/"+id, tok, task(a, nil)).status)
		require.Equal(t, 403, e.do("PATCH", path+"/"+id, tok, map[string]any{"name": "v"}).status)
		require.Equal(t, 403, e.do("DELETE", path+"/"+id, tok, nil).status)
	})
	t.Run("another organization's task is 404 and not listed", func(t *testing.T) {
		tok := e.jwtFor(e.both, &e.orgB.ID)
		for _, m := range []string{"GET", "PUT", "PATCH", "DELETE"} {
			require.Equal(t, 404, e.do(m, path+"/"+id, tok, task(e.orgB.ID, nil)).status, m)
		}
		require.NotContains(t, ids(t, e.do("GET", path, tok, nil)), id)
	})
	t.Run("bad ids, JSON and content types", func(t *testing.T) {
		require.Equal(t, 404, e.do("GET", path+"/not-a-uuid", e.token(), nil).status)
		require.Equal(t, 404, e.do("GET", path+"/6f1c2a0e-0000-4000-8000-000000000000", e.token(), nil).status)
		require.Equal(t, 400, e.do("POST", path, e.token(), `{"name":`).status)
		require.Equal(t, 400, e.do("POST", path, e.token(), `[1]`).status)
		require.Equal(t, 415, e.do("POST", path, e.token(), `{}`, "Content-Type", "text/plain").status)
		require.Equal(t, 405, e.do("POST", path+"/"+id, e.token(), task(a, nil)).status)
	})
	t.Run("delete is refused while a group or a device uses the task", func(t *testing.T) {
		tid := e.mustCreate(path, e.token(), task(a, map[string]any{"name": "Used"}))
		gid := e.mustCreate("/v1/metering/amr-task-groups", e.token(), map[string]any{"organization": a, "name": "G", "tasks": []string{tid}})
		r := e.do("DELETE", path+"/"+tid, e.token(), nil)
		require.Equal(t, 409, r.status, "body: %s", r.body)
		require.Contains(t, r.json(t)["detail"], "AMR task groups")
		require.Equal(t, 200, e.do("PATCH", "/v1/metering/amr-task-groups/"+gid, e.token(), map[string]any{"tasks": []string{}}).status)

		did := e.mustCreate("/v1/metering/meter-devices", e.token(), map[string]any{"organization": a, "name": "M-used", "protocol": "mbus", "meter_tasks": []string{tid}})
		r = e.do("DELETE", path+"/"+tid, e.token(), nil)
		require.Equal(t, 409, r.status, "body: %s", r.body)
		require.Contains(t, r.json(t)["detail"], "meter devices")
		require.Equal(t, 200, e.do("PATCH", "/v1/metering/meter-devices/"+did, e.token(), map[string]any{"meter_tasks": []string{}}).status)

		require.Equal(t, 204, e.do("DELETE", path+"/"+tid, e.token(), nil).status)
		require.Equal(t, 404, e.do("GET", path+"/"+tid, e.token(), nil).status)
	})
	t.Run("a used task cannot move to another organization", func(t *testing.T) {
		tid := e.mustCreate(path, e.token(), task(a, map[string]any{"name": "Moving"}))
		e.mustCreate("/v1/metering/amr-task-groups", e.token(), map[string]any{"organization": a, "name": "Keeps", "tasks": []string{tid}})
		r := e.do("PATCH", path+"/"+tid, e.token(), map[string]any{"organization": e.orgB.ID})
		require.Equal(t, 409, r.status, "body: %s", r.body)
		require.Contains(t, r.json(t)["detail"], "AMR task groups of another organization")
		free := e.mustCreate(path, e.token(), task(a, map[string]any{"name": "Free"}))
		r = e.do("PATCH", path+"/"+free, e.token(), map[string]any{"organization": e.orgB.ID})
		require.Equal(t, 200, r.status, "body: %s", r.body)
		require.Equal(t, e.orgB.ID.String(), r.json(t)["organization"])
	})
	t.Run("list pages in a stable order", func(t *testing.T) {
		all := ids(t, e.do("GET", path+"?limit=1000", e.token(), nil))
		require.Greater(t, len(all), 3)
		var paged []string
		for off := 0; off < len(all); off += 2 {
			paged = append(paged, ids(t, e.do("GET", path+"?limit=2&offset="+itoa(int64(off)), e.token(), nil))...)
		}
		require.Equal(t, all, paged)
	})
	require.Equal(t, 204, e.do("DELETE", path+"/"+id, e.token(), nil).status)
	require.Equal(t, 404, e.do("GET", path+"/"+id, e.token(), nil).status)
}

// conformStatus checks r's status, then its body against the contract's schema for
// the operation.
func conformStatus(t *testing.T, status int, method, template string, r resp) {
	t.Helper()
	require.Equal(t, status, r.status, "%s %s: body: %s", method, template, r.body)
	conform(t, method, template, r)
}

// extraCase is a body, a valid one with extra on top, that must be refused with a 400
// naming field.
type extraCase struct {
	name  string
	extra map[string]any
	field string
}

// refusesExtra POSTs each case's body, made by valid, to path and checks the 400.
func (e *env) refusesExtra(t *testing.T, path string, valid func(extra map[string]any) map[string]any, cases []extraCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := e.do("POST", path, e.token(), valid(tc.extra))
			require.Equal(t, 400, r.status, "body: %s", r.body)
			require.Contains(t, r.json(t), tc.field, "body: %s", r.body)
		})
	}
}

// textRules are the refusals of a string field of 1 to max characters: missing (when
// required), null, blank, too long, not a string.
func textRules(field string, max int, required bool) []extraCase {
	cases := []extraCase{
		{field + " null", map[string]any{field: nil}, field},
		{field + " blank", map[string]any{field: ""}, field},
		{field + " too long", map[string]any{field: strings.Repeat("x", max+1)}, field},
		{field + " not a string", map[string]any{field: 12}, field},
	}
	if required {
		cases = append(cases, extraCase{field + " missing", map[string]any{field: omit{}}, field})
	}
	return cases
}

// valueCase is a body, a valid one with extra on top, that must be stored with want in
// field.
type valueCase struct {
	name  string
	extra map[string]any
	field string
	want  any
}

// accepts POSTs each case's body, made by valid from the case's index, to path and checks
// the stored value.
func (e *env) accepts(t *testing.T, path string, valid func(i int, extra map[string]any) map[string]any, cases []valueCase) {
	t.Helper()
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := e.do("POST", path, e.token(), valid(i, tc.extra))
			require.Equal(t, 201, r.status, "body: %s", r.body)
			require.Equal(t, tc.want, r.json(t)[tc.field])
		})
	}
}

// deep returns a JSON object nested n levels.
func deep(n int) map[string]any {
	m := map[string]any{}
	for range n - 1 {
		m = map[string]any{"a": m}
	}
	return m
}

func TestAmrTasksConformToContract(t *testing.T) {
	e := newEnv(t)
	const path = "/v1/metering/amr-tasks"
	r := e.do("POST", path, e.token(), task(e.orgA.ID, map[string]any{"task_kwargs": map[string]any{"registers": []string{"1.8.0"}}}))
	conformStatus(t, 201, "POST", "/metering/amr-tasks/", r)
	id := r.json(t)["id"].(string)
	conformStatus(t, 201, "POST", "/metering/amr-tasks/", e.do("POST", path+"/", e.token(), task(e.orgA.ID, nil)))
	conformStatus(t, 200, "GET", "/metering/amr-tasks/", e.do("GET", path+"/", e.token(), nil))
	conformStatus(t, 200, "GET", "/metering/amr-tasks/{id}", e.do("GET", path+"/"+id, e.token(), nil))
	conformStatus(t, 200, "PUT", "/metering/amr-tasks/{id}", e.do("PUT", path+"/"+id, e.token(), task(e.orgA.ID, map[string]any{"schedule": "yearly"})))
	conformStatus(t, 200, "PATCH", "/metering/amr-tasks/{id}", e.do("PATCH", path+"/"+id, e.token(), map[string]any{"task_kwargs": nil}))
	r = e.do("DELETE", path+"/"+id, e.token(), nil)
	require.Equal(t, 204, r.status)
	conform(t, "DELETE", "/metering/amr-tasks/{id}", r)
}
