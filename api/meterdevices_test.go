package api_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"
)

// sqlScalar runs query on the test database directly and scans its one value. The routes
// of device types and network interfaces are other work, and readings, events and keys
// have routes of their own: the tests here make those rows with SQL.
func sqlScalar[T any](e *env, query string, args ...any) T {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, e.db)
	require.NoError(e.t, err)
	defer conn.Close(ctx)
	var v T
	require.NoError(e.t, conn.QueryRow(ctx, query, args...).Scan(&v), "query: %s", query)
	return v
}

// sqlID inserts a row with query (which ends in RETURNING id) and returns its UUID.
func sqlID(e *env, query string, args ...any) string {
	e.t.Helper()
	return sqlScalar[uuid.UUID](e, query, args...).String()
}

// Fixture rows made with SQL.
const (
	insertType = `INSERT INTO meter_device_types (organization_id, name, manufacturer, manufacturer_model)
		VALUES ($1, 'E450', 'Landis+Gyr', 'E450') RETURNING id`
	insertInterface = `INSERT INTO network_interfaces (organization_id, fqdn, static_ip_address, port, sim_id)
		VALUES ($1, $2, $3, $4, $5) RETURNING id`
	insertSim = `INSERT INTO sim_cards (organization_id, iccid, imsi, ip_address) VALUES ($1, '1', '2', $2) RETURNING id`
)

// device is a valid meter device body in org, with the fields of extra on top.
func device(org any, name string, extra map[string]any) map[string]any {
	return with(map[string]any{"organization": org, "name": name, "protocol": "dlms-cosem"}, extra)
}

func TestMeterDevices(t *testing.T) {
	e := newEnv(t)
	a, b := e.orgA.ID.String(), e.orgB.ID.String()
	const path = "/v1/metering/meter-devices"
	typeA, typeB := sqlID(e, insertType, a), sqlID(e, insertType, b)
	nifA := sqlID(e, insertInterface, a, "meter1.example.net", nil, 4059, nil)
	nifB := sqlID(e, insertInterface, b, "meter2.example.net", nil, 4059, nil)
	taskA := e.mustCreate("/v1/metering/amr-tasks", e.token(), task(a, nil))
	taskB := e.mustCreate("/v1/metering/amr-tasks", e.token(), task(b, nil))
	groupA := e.mustCreate("/v1/metering/amr-task-groups", e.token(), map[string]any{"organization": a, "name": "GA"})
	groupB := e.mustCreate("/v1/metering/amr-task-groups", e.token(), map[string]any{"organization": b, "name": "GB"})

	dev := e.created(path, e.token(), device(a, "LGZ-0001", map[string]any{
		"external_system_reference": "ERP-17", "manufacturer_serial": "SN-4711", "iec62056_21_address": "12345678",
		"dlms_logical_device_name": "4C475A6731", "dlms_system_title": "4c475a6700000001",
		"type": typeA, "network_interface": nifA, "task_groups": []string{groupA}, "meter_tasks": []string{taskA},
		"has_current_transformer": true, "current_transformer_ratio": 30, "has_disconnector": true, "disconnector_status": 1,
	}))
	id := dev["id"].(string)

	t.Run("stored as sent", func(t *testing.T) {
		require.Equal(t, a, dev["organization"])
		require.Equal(t, typeA, dev["type"])
		require.Equal(t, nifA, dev["network_interface"])
		require.Equal(t, "meter1.example.net:4059", dev["network_interface_info"])
		require.Equal(t, []any{groupA}, dev["task_groups"])
		require.Equal(t, []any{taskA}, dev["meter_tasks"])
		require.Equal(t, float64(30), dev["current_transformer_ratio"])
		require.Equal(t, float64(1), dev["voltage_transformer_ratio"])
		require.Equal(t, false, dev["has_voltage_transformer"])
		require.Equal(t, float64(1), dev["disconnector_status"])
		require.Equal(t, "4c475a6700000001", dev["dlms_system_title"])
	})
	t.Run("defaults", func(t *testing.T) {
		r := e.do("POST", path, e.token(), map[string]any{"organization": a, "name": "Bare", "protocol": "mbus"})
		require.Equal(t, 201, r.status, "body: %s", r.body)
		got := r.json(t)
		for _, f := range []string{"external_system_reference", "manufacturer_serial", "iec62056_21_address", "dlms_logical_device_name",
			"dlms_system_title", "type", "network_interface", "disconnector_status"} {
			require.Contains(t, got, f)
			require.Nil(t, got[f], f)
		}
		require.Equal(t, []any{}, got["task_groups"])
		require.Equal(t, []any{}, got["meter_tasks"])
		require.Equal(t, "", got["network_interface_info"])
		require.Equal(t, float64(1), got["current_transformer_ratio"])
		require.Equal(t, false, got["has_disconnector"])
	})
	t.Run("valid values", func(t *testing.T) {
		e.accepts(t, path, func(i int, extra map[string]any) map[string]any {
			return device(a, "valid-"+itoa(int64(i)), extra)
		}, []valueCase{
			{"name of 50 characters", map[string]any{"name": strings.Repeat("ü", 50)}, "name", strings.Repeat("ü", 50)},
			{"protocol iec62056-21", map[string]any{"protocol": "iec62056-21"}, "protocol", "iec62056-21"},
			{"protocol i-flag", map[string]any{"protocol": "i-flag"}, "protocol", "i-flag"},
			{"protocol modbus", map[string]any{"protocol": "modbus"}, "protocol", "modbus"},
			{"protocol lis-200", map[string]any{"protocol": "lis-200"}, "protocol", "lis-200"},
			{"blank reference", map[string]any{"external_system_reference": ""}, "external_system_reference", ""},
			{"reference of 50", map[string]any{"external_system_reference": strings.Repeat("r", 50)}, "external_system_reference", strings.Repeat("r", 50)},
			{"serial of 50", map[string]any{"manufacturer_serial": strings.Repeat("s", 50)}, "manufacturer_serial", strings.Repeat("s", 50)},
			{"null serial", map[string]any{"manufacturer_serial": nil}, "manufacturer_serial", nil},
			{"logical name of 32 hex digits", map[string]any{"dlms_logical_device_name": strings.Repeat("aF09", 8)}, "dlms_logical_device_name", strings.Repeat("aF09", 8)},
			{"blank logical name", map[string]any{"dlms_logical_device_name": ""}, "dlms_logical_device_name", ""},
			{"system title of 16 hex digits", map[string]any{"dlms_system_title": "ABCDEF0123456789"}, "dlms_system_title", "ABCDEF0123456789"},
			{"null type", map[string]any{"type": nil}, "type", nil},
			{"null interface", map[string]any{"network_interface": nil}, "network_interface", nil},
			{"largest ratio", map[string]any{"voltage_transformer_ratio": 2147483647}, "voltage_transformer_ratio", float64(2147483647)},
			{"ratio as text", map[string]any{"current_transformer_ratio": "40"}, "current_transformer_ratio", float64(40)},
			{"disconnector 0", map[string]any{"disconnector_status": 0}, "disconnector_status", float64(0)},
			{"disconnector 2", map[string]any{"disconnector_status": 2}, "disconnector_status", float64(2)},
			{"disconnector null", map[string]any{"disconnector_status": nil}, "disconnector_status", nil},
		})
	})
	t.Run("field rules", func(t *testing.T) {
		const nowhere = "6f1c2a0e-0000-4000-8000-000000000000"
		e.refusesExtra(t, path, func(extra map[string]any) map[string]any { return device(a, "rule", extra) }, append(textRules("name", 50, true), []extraCase{
			{"name taken", map[string]any{"name": "LGZ-0001"}, "name"},
			{"protocol missing", map[string]any{"protocol": omit{}}, "protocol"},
			{"protocol null", map[string]any{"protocol": nil}, "protocol"},
			{"protocol unknown", map[string]any{"protocol": "dlms"}, "protocol"},
			{"protocol wrong case", map[string]any{"protocol": "DLMS-COSEM"}, "protocol"},
			{"reference too long", map[string]any{"external_system_reference": strings.Repeat("r", 51)}, "external_system_reference"},
			{"reference not a string", map[string]any{"external_system_reference": 5}, "external_system_reference"},
			{"serial too long", map[string]any{"manufacturer_serial": strings.Repeat("s", 51)}, "manufacturer_serial"},
			{"IEC address too long", map[string]any{"iec62056_21_address": "123456789"}, "iec62056_21_address"},
			{"logical name not hex", map[string]any{"dlms_logical_device_name": "LGZ"}, "dlms_logical_device_name"},
			{"logical name too long", map[string]any{"dlms_logical_device_name": strings.Repeat("a", 33)}, "dlms_logical_device_name"},
			{"system title not hex", map[string]any{"dlms_system_title": "0g"}, "dlms_system_title"},
			{"system title with a space", map[string]any{"dlms_system_title": "00 11"}, "dlms_system_title"},
			{"system title too long", map[string]any{"dlms_system_title": strings.Repeat("a", 17)}, "dlms_system_title"},
			{"type not a UUID", map[string]any{"type": "E450"}, "type"},
			{"type that does not exist", map[string]any{"type": nowhere}, "type"},
			{"type of another organization", map[string]any{"type": typeB}, "type"},
			{"interface not a UUID", map[string]any{"network_interface": 7}, "network_interface"},
			{"interface that does not exist", map[string]any{"network_interface": nowhere}, "network_interface"},
			{"interface of another organization", map[string]any{"network_interface": nifB}, "network_interface"},
			{"task groups not a list", map[string]any{"task_groups": groupA}, "task_groups"},
			{"task groups repeated", map[string]any{"task_groups": []string{groupA, groupA}}, "task_groups"},
			{"task group that does not exist", map[string]any{"task_groups": []string{nowhere}}, "task_groups"},
			{"task group of another organization", map[string]any{"task_groups": []string{groupB}}, "task_groups"},
			{"task group that is a task", map[string]any{"task_groups": []string{taskA}}, "task_groups"},
			{"meter tasks null", map[string]any{"meter_tasks": nil}, "meter_tasks"},
			{"meter tasks repeated", map[string]any{"meter_tasks": []string{taskA, taskA}}, "meter_tasks"},
			{"meter task not a UUID", map[string]any{"meter_tasks": []string{"x"}}, "meter_tasks"},
			{"meter task of another organization", map[string]any{"meter_tasks": []string{taskA, taskB}}, "meter_tasks"},
			{"has_current_transformer not a boolean", map[string]any{"has_current_transformer": "yes"}, "has_current_transformer"},
			{"has_voltage_transformer null", map[string]any{"has_voltage_transformer": nil}, "has_voltage_transformer"},
			{"has_disconnector a number", map[string]any{"has_disconnector": 1}, "has_disconnector"},
			{"current ratio 0", map[string]any{"current_transformer_ratio": 0}, "current_transformer_ratio"},
			{"current ratio negative", map[string]any{"current_transformer_ratio": -30}, "current_transformer_ratio"},
			{"current ratio above int32", map[string]any{"current_transformer_ratio": 2147483648}, "current_transformer_ratio"},
			{"current ratio null", map[string]any{"current_transformer_ratio": nil}, "current_transformer_ratio"},
			{"current ratio a fraction", map[string]any{"current_transformer_ratio": 2.5}, "current_transformer_ratio"},
			{"voltage ratio 0", map[string]any{"voltage_transformer_ratio": 0}, "voltage_transformer_ratio"},
			{"voltage ratio below int32", map[string]any{"voltage_transformer_ratio": -2147483649}, "voltage_transformer_ratio"},
			{"voltage ratio text", map[string]any{"voltage_transformer_ratio": "many"}, "voltage_transformer_ratio"},
			{"disconnector 3", map[string]any{"disconnector_status": 3}, "disconnector_status"},
			{"disconnector -1", map[string]any{"disconnector_status": -1}, "disconnector_status"},
			{"disconnector text", map[string]any{"disconnector_status": "open"}, "disconnector_status"},
			{"disconnector huge", map[string]any{"disconnector_status": 1e300}, "disconnector_status"},
			{"organization unknown", map[string]any{"organization": nowhere}, "organization"},
			{"organization not a UUID", map[string]any{"organization": "A"}, "organization"},
		}...))
	})
	t.Run("a name is unique across the installation", func(t *testing.T) {
		r := e.do("POST", path, e.token(), device(b, "LGZ-0001", nil))
		require.Equal(t, 400, r.status, "body: %s", r.body)
		require.Equal(t, []any{"A meter device with this name already exists."}, r.json(t)["name"])
		other := e.mustCreate(path, e.token(), device(b, "LGZ-0002", nil))
		r = e.do("PATCH", path+"/"+other, e.token(), map[string]any{"name": "LGZ-0001"})
		require.Equal(t, 400, r.status, "body: %s", r.body)
		require.Contains(t, r.json(t), "name")
		r = e.do("PATCH", path+"/"+id, e.token(), map[string]any{"name": "LGZ-0001"})
		require.Equal(t, 200, r.status, "keeping its own name is no conflict; body: %s", r.body)
	})
	t.Run("network_interface_info is host:port", func(t *testing.T) {
		simA := sqlID(e, insertSim, a, "10.0.0.7")
		tests := []struct {
			name      string
			fqdn, ip  any
			port, sim any
			want      string
		}{
			{"FQDN and port", "m.example.net", "192.0.2.1", 4059, simA, "m.example.net:4059"},
			{"static IPv6 and port", nil, "2001:db8::1", 4059, simA, "[2001:db8::1]:4059"},
			{"SIM IP without port", nil, nil, nil, simA, "10.0.0.7"},
			{"no host", nil, nil, 4059, nil, ""},
		}
		for i, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				nif := sqlID(e, insertInterface, a, tc.fqdn, tc.ip, tc.port, tc.sim)
				r := e.do("POST", path, e.token(), device(a, "nif-"+itoa(int64(i)), map[string]any{"network_interface": nif}))
				require.Equal(t, 201, r.status, "body: %s", r.body)
				require.Equal(t, tc.want, r.json(t)["network_interface_info"])
			})
		}
	})
	t.Run("filters match exactly", func(t *testing.T) {
		other := e.mustCreate(path, e.token(), device(a, "LGZ-0001-B", map[string]any{"external_system_reference": "ERP-1",
			"manufacturer_serial": "SN-47", "dlms_logical_device_name": "4C475A67", "dlms_system_title": "4c475a67"}))
		tests := []struct {
			query string
			want  []string
		}{
			{"name=LGZ-0001", []string{id}},
			{"name=LGZ-0001-B", []string{other}},
			{"name=LGZ", []string{}},
			{"name=lgz-0001", []string{}},
			{"external_system_reference=ERP-17", []string{id}},
			{"external_system_reference=ERP-1", []string{other}},
			{"manufacturer_serial=SN-4711", []string{id}},
			{"manufacturer_serial=SN-47", []string{other}},
			{"dlms_logical_device_name=4C475A6731", []string{id}},
			{"dlms_logical_device_name=4C475A67", []string{other}},
			{"dlms_system_title=4c475a6700000001", []string{id}},
			{"dlms_system_title=4C475A6700000001", []string{}},
			{"name=LGZ-0001&manufacturer_serial=SN-4711", []string{id}},
			{"name=LGZ-0001&manufacturer_serial=SN-47", []string{}},
		}
		for _, tc := range tests {
			t.Run(tc.query, func(t *testing.T) {
				r := e.do("GET", path+"?"+tc.query, e.token(), nil)
				require.Equal(t, 200, r.status, "body: %s", r.body)
				require.Equal(t, tc.want, ids(t, r))
			})
		}
		require.Empty(t, ids(t, e.do("GET", path+"?name=LGZ-0001", e.jwtFor(e.both, &e.orgB.ID), nil)), "filters stay inside the scope")
	})
	t.Run("PATCH changes only what it sends", func(t *testing.T) {
		r := e.do("PATCH", path+"/"+id, e.token(), map[string]any{"has_voltage_transformer": true, "voltage_transformer_ratio": 100, "disconnector_status": nil})
		require.Equal(t, 200, r.status, "body: %s", r.body)
		got := r.json(t)
		require.Equal(t, float64(100), got["voltage_transformer_ratio"])
		require.Nil(t, got["disconnector_status"])
		require.Equal(t, typeA, got["type"])
		require.Equal(t, []any{taskA}, got["meter_tasks"])
		require.Equal(t, "SN-4711", got["manufacturer_serial"])
	})
	t.Run("a device moving organization takes its references along or is refused", func(t *testing.T) {
		mover := e.mustCreate(path, e.token(), device(a, "mover", map[string]any{"meter_tasks": []string{taskA}}))
		r := e.do("PATCH", path+"/"+mover, e.token(), map[string]any{"organization": b})
		require.Equal(t, 400, r.status, "body: %s", r.body)
		require.Contains(t, r.json(t), "meter_tasks")
		r = e.do("PATCH", path+"/"+mover, e.token(), map[string]any{"organization": b, "meter_tasks": []string{taskB}, "type": typeB})
		require.Equal(t, 200, r.status, "body: %s", r.body)
		require.Equal(t, b, r.json(t)["organization"])
	})
	t.Run("staff may keep a device outside any organization", func(t *testing.T) {
		r := e.do("POST", path, e.token(), map[string]any{"name": "orphan", "protocol": "modbus"})
		require.Equal(t, 201, r.status, "body: %s", r.body)
		got := r.json(t)
		require.Nil(t, got["organization"])
		orphan := got["id"].(string)
		r = e.do("POST", path, e.token(), map[string]any{"name": "orphan-typed", "protocol": "modbus", "organization": nil, "type": typeA})
		require.Equal(t, 400, r.status, "references must share the device's (absent) organization; body: %s", r.body)
		require.Contains(t, r.json(t), "type")
		tok := e.jwtFor(e.editor, nil)
		require.NotContains(t, ids(t, e.do("GET", path, tok, nil)), orphan)
		require.Equal(t, 404, e.do("GET", path+"/"+orphan, tok, nil).status)
		require.Equal(t, 404, e.do("PATCH", path+"/"+orphan, tok, map[string]any{"name": "mine"}).status)
		r = e.do("PATCH", path+"/"+orphan, e.token(), map[string]any{"organization": a})
		require.Equal(t, 200, r.status, "body: %s", r.body)
		require.Equal(t, a, r.json(t)["organization"])
	})
	t.Run("PUT needs required fields and keeps the others", func(t *testing.T) {
		r := e.do("PUT", path+"/"+id, e.token(), map[string]any{"name": "LGZ-0001"})
		require.Equal(t, 400, r.status, "body: %s", r.body)
		require.Contains(t, r.json(t), "protocol")
		putID := e.mustCreate(path, e.token(), device(a, "put-me", map[string]any{"meter_tasks": []string{taskA}, "current_transformer_ratio": 5}))
		r = e.do("PUT", path+"/"+putID, e.token(), map[string]any{"name": "put-me", "protocol": "mbus"})
		require.Equal(t, 200, r.status, "body: %s", r.body)
		got := r.json(t)
		require.Equal(t, "mbus", got["protocol"])
		require.Equal(t, []any{taskA}, got["meter_tasks"])
		require.Equal(t, float64(5), got["current_transformer_ratio"])
		require.Equal(t, a, got["organization"])
	})
	t.Run("editor writes in its organization whatever the body says", func(t *testing.T) {
		tok := e.jwtFor(e.editor, nil)
		r := e.do("POST", path, tok, device(b, "editors", nil))
		require.Equal(t, 201, r.status, "body: %s", r.body)
		require.Equal(t, a, r.json(t)["organization"])
		r = e.do("POST", path, tok, device(nil, "editors-typed", map[string]any{"organization": omit{}, "type": typeB}))
		require.Equal(t, 400, r.status, "body: %s", r.body)
		require.Contains(t, r.json(t), "type")
		r = e.do("PATCH", path+"/"+id, tok, map[string]any{"iec62056_21_address": "1", "organization": b})
		require.Equal(t, 200, r.status, "body: %s", r.body)
		require.Equal(t, a, r.json(t)["organization"])
		require.Equal(t, "1", r.json(t)["iec62056_21_address"])
	})
	t.Run("viewer reads but may not write", func(t *testing.T) {
		tok := e.jwtFor(e.viewer, nil)
		require.Equal(t, 200, e.do("GET", path+"/"+id, tok, nil).status)
		require.Contains(t, ids(t, e.do("GET", path, tok, nil)), id)
		require.Equal(t, 403, e.do("POST", path, tok, device(a, "viewers", nil)).status)
		require.Equal(t, 403, e.do("PUT", path+"/"+id, tok, device(a, "viewers", nil)).status)
		require.Equal(t, 403, e.do("PATCH", path+"/"+id, tok, map[string]any{"name": "v"}).status)
		require.Equal(t, 403, e.do("DELETE", path+"/"+id, tok, nil).status)
	})
	t.Run("another organization's device is 404 and not listed", func(t *testing.T) {
		tok := e.jwtFor(e.both, &e.orgB.ID)
		for _, m := range []string{"GET", "PUT", "PATCH", "DELETE"} {
			require.Equal(t, 404, e.do(m, path+"/"+id, tok, device(b, "x", nil)).status, m)
		}
		require.NotContains(t, ids(t, e.do("GET", path, tok, nil)), id)
	})
	t.Run("delete takes keys, task links, readings and events along", func(t *testing.T) {
		keep := e.mustCreate(path, e.token(), device(a, "keep", map[string]any{"meter_tasks": []string{taskA}}))
		gone := e.mustCreate(path, e.token(), device(a, "gone", map[string]any{"meter_tasks": []string{taskA}, "task_groups": []string{groupA}}))
		for _, d := range []string{keep, gone} {
			sqlID(e, "INSERT INTO meter_security_keys (meter_device_id) VALUES ($1) RETURNING id", d)
			sqlScalar[int64](e, `INSERT INTO meter_readings (device_key, series_key, ts, value)
				SELECT key, 1, '2026-01-01T00:00:00Z', 1.5 FROM meter_devices WHERE id = $1 RETURNING id`, d)
			sqlScalar[int64](e, `INSERT INTO meter_system_events (organization_id, meter_device_id, ts, title, content)
				VALUES ($1, $2, '2026-01-01T00:00:00Z', 'Power down', 'Phase L1 lost') RETURNING id`, a, d)
		}
		goneKey := sqlScalar[int32](e, "SELECT key FROM meter_devices WHERE id = $1", gone)
		require.Equal(t, 204, e.do("DELETE", path+"/"+gone, e.token(), nil).status)
		require.Equal(t, 404, e.do("GET", path+"/"+gone, e.token(), nil).status)

		count := func(query string, arg any) int64 { return sqlScalar[int64](e, query, arg) }
		require.Zero(t, count("SELECT count(*) FROM meter_security_keys WHERE meter_device_id = $1", gone))
		require.Zero(t, count("SELECT count(*) FROM meter_readings WHERE device_key = $1", goneKey))
		require.Zero(t, count("SELECT count(*) FROM meter_system_events WHERE meter_device_id = $1", gone))
		require.Zero(t, count("SELECT count(*) FROM meter_device_tasks WHERE device_id = $1", gone))
		require.Zero(t, count("SELECT count(*) FROM meter_device_task_groups WHERE device_id = $1", gone))
		// The other device, and the tasks and groups, are untouched.
		require.Equal(t, int64(1), count("SELECT count(*) FROM meter_security_keys WHERE meter_device_id = $1", keep))
		require.Equal(t, int64(1), count("SELECT count(*) FROM meter_readings r JOIN meter_devices d ON d.key = r.device_key WHERE d.id = $1", keep))
		require.Equal(t, int64(1), count("SELECT count(*) FROM meter_system_events WHERE meter_device_id = $1", keep))
		require.Equal(t, 200, e.do("GET", "/v1/metering/amr-tasks/"+taskA, e.token(), nil).status)
		require.Equal(t, 200, e.do("GET", "/v1/metering/amr-task-groups/"+groupA, e.token(), nil).status)
	})
	require.Equal(t, 204, e.do("DELETE", path+"/"+id, e.token(), nil).status)
	require.Equal(t, 404, e.do("DELETE", path+"/"+id, e.token(), nil).status)
}

func TestMeterDevicesConformToContract(t *testing.T) {
	e := newEnv(t)
	const path = "/v1/metering/meter-devices"
	a := e.orgA.ID.String()
	typ := sqlID(e, insertType, a)
	nif := sqlID(e, insertInterface, a, nil, "192.0.2.10", 4059, nil)
	tid := e.mustCreate("/v1/metering/amr-tasks", e.token(), task(a, nil))
	gid := e.mustCreate("/v1/metering/amr-task-groups", e.token(), map[string]any{"organization": a, "name": "G", "tasks": []string{tid}})
	r := e.do("POST", path, e.token(), device(a, "full", map[string]any{
		"external_system_reference": "ERP-1", "manufacturer_serial": "SN-1", "iec62056_21_address": "1",
		"dlms_logical_device_name": "AB", "dlms_system_title": "CD", "type": typ, "network_interface": nif,
		"task_groups": []string{gid}, "meter_tasks": []string{tid}, "has_disconnector": true, "disconnector_status": 2}))
	conformStatus(t, 201, "POST", "/metering/meter-devices", r)
	id := r.json(t)["id"].(string)
	conformStatus(t, 201, "POST", "/metering/meter-devices", e.do("POST", path+"/", e.token(), map[string]any{"name": "bare", "protocol": "mbus"}))
	conformStatus(t, 200, "GET", "/metering/meter-devices", e.do("GET", path, e.token(), nil))
	conformStatus(t, 200, "GET", "/metering/meter-devices", e.do("GET", path+"/?name=full&dlms_system_title=CD", e.token(), nil))
	conformStatus(t, 200, "GET", "/metering/meter-devices/{id}", e.do("GET", path+"/"+id, e.token(), nil))
	conformStatus(t, 200, "PUT", "/metering/meter-devices/{id}", e.do("PUT", path+"/"+id, e.token(), device(a, "full", map[string]any{"protocol": "lis-200"})))
	conformStatus(t, 200, "PATCH", "/metering/meter-devices/{id}", e.do("PATCH", path+"/"+id, e.token(), map[string]any{"network_interface": nif, "disconnector_status": 0}))
	r = e.do("DELETE", path+"/"+id, e.token(), nil)
	require.Equal(t, 204, r.status)
	conform(t, "DELETE", "/metering/meter-devices/{id}", r)
}
