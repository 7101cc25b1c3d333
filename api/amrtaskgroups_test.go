package api_test

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestAmrTaskGroups(t *testing.T) {
	e := newEnv(t)
	a, b := e.orgA.ID.String(), e.orgB.ID.String()
	const path = "/v1/metering/amr-task-groups"
	const tasks = "/v1/metering/amr-tasks"
	t1 := e.mustCreate(tasks, e.token(), task(a, map[string]any{"name": "Read registers"}))
	t2 := e.mustCreate(tasks, e.token(), task(a, map[string]any{"name": "Load profile"}))
	tB := e.mustCreate(tasks, e.token(), task(b, map[string]any{"name": "B's task"}))

	g := e.created(path, e.token(), map[string]any{"organization": a, "name": "Hourly reads", "tasks": []string{t1, t2}})
	id := g["id"].(string)

	t.Run("tasks and tasks_info", func(t *testing.T) {
		require.ElementsMatch(t, []any{t1, t2}, g["tasks"])
		require.Equal(t, "Load profile, Read registers", g["tasks_info"], "task names, sorted, joined with a comma")
		require.Equal(t, "", g["description"])
		r := e.do("POST", path, e.token(), map[string]any{"organization": a, "name": "Empty"})
		require.Equal(t, 201, r.status, "body: %s", r.body)
		require.Equal(t, []any{}, r.json(t)["tasks"])
		require.Equal(t, "", r.json(t)["tasks_info"])
	})
	t.Run("renaming a task shows in tasks_info", func(t *testing.T) {
		require.Equal(t, 200, e.do("PATCH", tasks+"/"+t2, e.token(), map[string]any{"name": "Zeta profile"}).status)
		r := e.do("GET", path+"/"+id, e.token(), nil)
		require.Equal(t, "Read registers, Zeta profile", r.json(t)["tasks_info"])
	})
	t.Run("field rules", func(t *testing.T) {
		e.refusesExtra(t, path, func(extra map[string]any) map[string]any {
			return with(map[string]any{"organization": a, "name": "G", "tasks": []string{}}, extra)
		}, append(textRules("name", 150, true), []extraCase{
			{"description too long", map[string]any{"description": strings.Repeat("d", 501)}, "description"},
			{"description not a string", map[string]any{"description": 5}, "description"},
			{"organization missing", map[string]any{"organization": omit{}}, "organization"},
			{"organization null", map[string]any{"organization": nil}, "organization"},
			{"tasks not a list", map[string]any{"tasks": t1}, "tasks"},
			{"tasks null", map[string]any{"tasks": nil}, "tasks"},
			{"tasks repeated", map[string]any{"tasks": []string{t1, t1}}, "tasks"},
			{"task not a UUID", map[string]any{"tasks": []string{"t1"}}, "tasks"},
			{"task not a string", map[string]any{"tasks": []any{1}}, "tasks"},
			{"task that does not exist", map[string]any{"tasks": []string{"6f1c2a0e-0000-4000-8000-000000000000"}}, "tasks"},
			{"task of another organization", map[string]any{"tasks": []string{t1, tB}}, "tasks"},
		}...))
	})
	t.Run("limits are inclusive", func(t *testing.T) {
		r := e.do("POST", path, e.token(), map[string]any{"organization": a, "name": strings.Repeat("n", 150), "description": strings.Repeat("d", 500)})
		require.Equal(t, 201, r.status, "body: %s", r.body)
	})
	t.Run("PATCH changes only what it sends", func(t *testing.T) {
		r := e.do("PATCH", path+"/"+id, e.token(), map[string]any{"description": "Every hour"})
		require.Equal(t, 200, r.status, "body: %s", r.body)
		require.Equal(t, "Every hour", r.json(t)["description"])
		require.Len(t, r.json(t)["tasks"], 2)
		r = e.do("PATCH", path+"/"+id, e.token(), map[string]any{"tasks": []string{t1}})
		require.Equal(t, 200, r.status, "body: %s", r.body)
		require.Equal(t, []any{t1}, r.json(t)["tasks"])
		require.Equal(t, "Read registers", r.json(t)["tasks_info"])
	})
	t.Run("PUT needs required fields and keeps the others", func(t *testing.T) {
		r := e.do("PUT", path+"/"+id, e.token(), map[string]any{"description": "x"})
		require.Equal(t, 400, r.status, "body: %s", r.body)
		require.Contains(t, r.json(t), "name")
		before := e.do("GET", path+"/"+id, e.token(), nil).json(t)
		r = e.do("PUT", path+"/"+id, e.token(), map[string]any{"name": "Hourly"})
		require.Equal(t, 200, r.status, "body: %s", r.body)
		require.Equal(t, "Hourly", r.json(t)["name"])
		require.Equal(t, before["tasks"], r.json(t)["tasks"])
		require.Equal(t, before["description"], r.json(t)["description"])
		require.Equal(t, a, r.json(t)["organization"])
	})
	t.Run("moving a group checks its tasks against the new organization", func(t *testing.T) {
		gid := e.mustCreate(path, e.token(), map[string]any{"organization": a, "name": "Mover", "tasks": []string{t1}})
		r := e.do("PATCH", path+"/"+gid, e.token(), map[string]any{"organization": b})
		require.Equal(t, 400, r.status, "body: %s", r.body)
		require.Contains(t, r.json(t), "tasks")
		r = e.do("PATCH", path+"/"+gid, e.token(), map[string]any{"organization": b, "tasks": []string{tB}})
		require.Equal(t, 200, r.status, "body: %s", r.body)
		require.Equal(t, b, r.json(t)["organization"])
	})
	t.Run("a group used by devices cannot move to another organization", func(t *testing.T) {
		gid := e.mustCreate(path, e.token(), map[string]any{"organization": a, "name": "Used"})
		e.mustCreate("/v1/metering/meter-devices", e.token(), map[string]any{"organization": a, "name": "M-group-move", "protocol": "mbus", "task_groups": []string{gid}})
		r := e.do("PATCH", path+"/"+gid, e.token(), map[string]any{"organization": b})
		require.Equal(t, 409, r.status, "body: %s", r.body)
		require.Contains(t, r.json(t)["detail"], "meter devices of another organization")
	})
	t.Run("editor writes in its organization whatever the body says", func(t *testing.T) {
		tok := e.jwtFor(e.editor, nil)
		r := e.do("POST", path, tok, map[string]any{"organization": b, "name": "Editor's", "tasks": []string{t1}})
		require.Equal(t, 201, r.status, "body: %s", r.body)
		require.Equal(t, a, r.json(t)["organization"])
		r = e.do("POST", path, tok, map[string]any{"name": "Editor's", "tasks": []string{tB}})
		require.Equal(t, 400, r.status, "body: %s", r.body)
		require.Contains(t, r.json(t), "tasks")
		r = e.do("PATCH", path+"/"+id, tok, map[string]any{"name": "Edited", "organization": b})
		require.Equal(t, 200, r.status, "body: %s", r.body)
		require.Equal(t, a, r.json(t)["organization"])
	})
	t.Run("viewer reads but may not write", func(t *testing.T) {
		tok := e.jwtFor(e.viewer, nil)
		require.Equal(t, 200, e.do("GET", path+"/"+id, tok, nil).status)
		require.Contains(t, ids(t, e.do("GET", path, tok, nil)), id)
		require.Equal(t, 403, e.do("POST", path, tok, map[string]any{"name": "v"}).status)
		require.Equal(t, 403, e.do("PUT", path+"/"+id, tok, map[string]any{"name": "v"}).status)
		require.Equal(t, 403, e.do("PATCH", path+"/"+id, tok, map[string]any{"name": "v"}).status)
		require.Equal(t, 403, e.do("DELETE", path+"/"+id, tok, nil).status)
	})
	t.Run("another organization's group is 404 and not listed", func(t *testing.T) {
		tok := e.jwtFor(e.both, &e.orgB.ID)
		for _, m := range []string{"GET", "PUT", "PATCH", "DELETE"} {
			require.Equal(t, 404, e.do(m, path+"/"+id, tok, map[string]any{"name": "x"}).status, m)
		}
		require.NotContains(t, ids(t, e.do("GET", path, tok, nil)), id)
	})
	t.Run("delete is refused while devices use the group; the tasks stay", func(t *testing.T) {
		gid := e.mustCreate(path, e.token(), map[string]any{"organization": a, "name": "Doomed", "tasks": []string{t1}})
		did := e.mustCreate("/v1/metering/meter-devices", e.token(), map[string]any{"organization": a, "name": "M-group", "protocol": "mbus", "task_groups": []string{gid}})
		r := e.do("DELETE", path+"/"+gid, e.token(), nil)
		require.Equal(t, 409, r.status, "body: %s", r.body)
		require.Contains(t, r.json(t)["detail"], "meter devices")
		require.Equal(t, 200, e.do("PATCH", "/v1/metering/meter-devices/"+did, e.token(), map[string]any{"task_groups": []string{}}).status)
		require.Equal(t, 204, e.do("DELETE", path+"/"+gid, e.token(), nil).status)
		require.Equal(t, 404, e.do("GET", path+"/"+gid, e.token(), nil).status)
		require.Equal(t, 200, e.do("GET", tasks+"/"+t1, e.token(), nil).status)
	})
	require.Equal(t, 204, e.do("DELETE", path+"/"+id, e.token(), nil).status)
	require.Equal(t, 404, e.do("GET", path+"/"+id, e.token(), nil).status)
}

func TestAmrTaskGroupsConformToContract(t *testing.T) {
	e := newEnv(t)
	const path = "/v1/metering/amr-task-groups"
	t1 := e.mustCreate("/v1/metering/amr-tasks", e.token(), task(e.orgA.ID, nil))
	r := e.do("POST", path, e.token(), map[string]any{"organization": e.orgA.ID, "name": "G", "tasks": []string{t1}})
	conformStatus(t, 201, "POST", "/metering/amr-task-groups/", r)
	id := r.json(t)["id"].(string)
	conformStatus(t, 201, "POST", "/metering/amr-task-groups/", e.do("POST", path+"/", e.token(), map[string]any{"organization": e.orgA.ID, "name": "Empty"}))
	conformStatus(t, 200, "GET", "/metering/amr-task-groups/", e.do("GET", path+"/", e.token(), nil))
	conformStatus(t, 200, "GET", "/metering/amr-task-groups/{id}", e.do("GET", path+"/"+id, e.token(), nil))
	conformStatus(t, 200, "PUT", "/metering/amr-task-groups/{id}", e.do("PUT", path+"/"+id, e.token(), map[string]any{"name": "H", "description": "d"}))
	conformStatus(t, 200, "PATCH", "/metering/amr-task-groups/{id}", e.do("PATCH", path+"/"+id, e.token(), map[string]any{"tasks": []string{t1}}))
	r = e.do("DELETE", path+"/"+id, e.token(), nil)
	require.Equal(t, 204, r.status)
	conform(t, "DELETE", "/metering/amr-task-groups/{id}", r)
}
