package api_test

import (
	"bytes"
	"encoding/hex"
	"strings"
	"testing"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/amrd/amrd/store/storetest"
)

// Keys of the tests: the master key is recognisable wherever it might leak.
const (
	masterKey = "5EC12E7A5EC12E7A5EC12E7A5EC12E7A" // 128-bit
	guek128   = "000102030405060708090a0b0c0d0e0f"
	gbek256   = "101112131415161718191a1b1c1d1e1f202122232425262728292a2b2c2d2e2f"
	gak128    = "d0d1d2d3d4d5d6d7d8d9dadbdcdddedf"
)

const keysPath = "/v1/metering/meter-security-keys"

// noMaster fails when a response carries the master key (or the sent value), in any
// letter case, or when a successful one has a master key field at all.
func noMaster(t *testing.T, r resp, sent ...string) {
	t.Helper()
	for _, k := range append(sent, masterKey) {
		if k == "" {
			continue
		}
		require.NotContains(t, strings.ToLower(string(r.body)), strings.ToLower(k), "the master key leaked: %s", r.body)
	}
	if r.status < 300 {
		require.NotContains(t, string(r.body), "dlms_master_key", "a response has a master key field: %s", r.body)
	}
}

func keysBody(meter string) map[string]any {
	return map[string]any{"meter": meter, "iec62056_21_password": "pw123456",
		"dlms_global_unicast_encryption_key": guek128, "dlms_global_broadcast_encryption_key": gbek256,
		"dlms_global_authentication_key": gak128, "dlms_master_key": masterKey}
}

func TestSecurityKeys(t *testing.T) {
	e := newEnv(t)
	devA := e.sqlDevice(&e.orgA.ID, "meter-a", map[string]any{"external_system_reference": "ext-a", "manufacturer_serial": "SER-A",
		"dlms_system_title": "4D4D4D0000000001", "dlms_logical_device_name": "4D4D4D0000000001AB", "disconnector_status": 1})
	devA2 := e.sqlDevice(&e.orgA.ID, "meter-a2", nil)
	devB := e.sqlDevice(&e.orgB.ID, "meter-b", nil)
	devNone := e.sqlDevice(nil, "meter-none", nil)
	var group uuid.UUID
	storetest.Query(t, e.db, `INSERT INTO amr_task_groups (organization_id, name) VALUES ($1, 'g') RETURNING id`, []any{e.orgA.ID}, &group)
	storetest.Query(t, e.db, `INSERT INTO meter_device_task_groups (device_id, group_id) VALUES ($1, $2)`, []any{devA, group})

	r := e.do("POST", keysPath, e.token(), keysBody(devA))
	require.Equal(t, 201, r.status, "body: %s", r.body)
	noMaster(t, r)
	created := r.json(t)
	id := created["id"].(string)
	require.Equal(t, devA, created["meter"], "a create answers the meter's id (MeterSecurityKeyCollectionIn)")
	require.Equal(t, guek128, created["dlms_global_unicast_encryption_key"])
	require.Equal(t, gbek256, created["dlms_global_broadcast_encryption_key"])
	require.Equal(t, gak128, created["dlms_global_authentication_key"])
	require.Equal(t, "pw123456", created["iec62056_21_password"])

	t.Run("reads embed the meter device", func(t *testing.T) {
		r := e.do("GET", keysPath+"/"+id, e.token(), nil)
		require.Equal(t, 200, r.status, "body: %s", r.body)
		noMaster(t, r)
		got := r.json(t)
		require.Equal(t, guek128, got["dlms_global_unicast_encryption_key"])
		m := got["meter"].(map[string]any)
		require.Equal(t, devA, m["id"])
		require.Equal(t, "meter-a", m["name"])
		require.Equal(t, "dlms-cosem", m["protocol"])
		require.Equal(t, e.orgA.ID.String(), m["organization"])
		require.Equal(t, "SER-A", m["manufacturer_serial"])
		require.Equal(t, float64(1), m["disconnector_status"])
		require.Equal(t, []any{group.String()}, m["task_groups"])
		require.Equal(t, []any{}, m["meter_tasks"])
		require.Nil(t, m["type"])
		require.NotContains(t, m, "network_interface_info", "the contract's embedded meter has no network_interface_info")
		require.Len(t, m, 21, "the contract's embedded meter has 21 fields: %v", m)
	})
	t.Run("keys that are not set are null", func(t *testing.T) {
		r := e.do("POST", keysPath, e.token(), map[string]any{"meter": devA2, "dlms_global_unicast_encryption_key": nil})
		require.Equal(t, 201, r.status, "body: %s", r.body)
		got := e.do("GET", keysPath+"/"+r.json(t)["id"].(string), e.token(), nil).json(t)
		for _, f := range []string{"iec62056_21_password", "dlms_global_unicast_encryption_key", "dlms_global_broadcast_encryption_key", "dlms_global_authentication_key"} {
			require.Contains(t, got, f)
			require.Nil(t, got[f], f)
		}
	})
	t.Run("field rules", func(t *testing.T) {
		with := func(f string, v any) map[string]any {
			b := keysBody(devA)
			b[f] = v
			return b
		}
		e.refuses(t, keysPath, []fieldCase{
			{"meter missing", map[string]any{"dlms_master_key": masterKey}, "meter"},
			{"meter null", with("meter", nil), "meter"},
			{"meter not a UUID", with("meter", "meter-a"), "meter"},
			{"meter unknown", with("meter", uuid.NewString()), "meter"},
			{"password blank", with("iec62056_21_password", ""), "iec62056_21_password"},
			{"password too long", with("iec62056_21_password", "123456789"), "iec62056_21_password"},
			{"password not a string", with("iec62056_21_password", 1234), "iec62056_21_password"},
			{"unicast not hex", with("dlms_global_unicast_encryption_key", "g0"+guek128[2:]), "dlms_global_unicast_encryption_key"},
			{"unicast blank", with("dlms_global_unicast_encryption_key", ""), "dlms_global_unicast_encryption_key"},
			{"unicast 31 digits", with("dlms_global_unicast_encryption_key", guek128[1:]), "dlms_global_unicast_encryption_key"},
			{"broadcast 48 digits", with("dlms_global_broadcast_encryption_key", gbek256[:48]), "dlms_global_broadcast_encryption_key"},
			{"broadcast 65 digits", with("dlms_global_broadcast_encryption_key", gbek256+"0"), "dlms_global_broadcast_encryption_key"},
			{"authentication not a string", with("dlms_global_authentication_key", 12), "dlms_global_authentication_key"},
			{"master not hex", with("dlms_master_key", masterKey[:31]+"x"), "dlms_master_key"},
			{"master 33 digits", with("dlms_master_key", masterKey+"0"), "dlms_master_key"},
			{"master not a string", with("dlms_master_key", []string{masterKey}), "dlms_master_key"},
			{"master too long", with("dlms_master_key", masterKey+masterKey+"0"), "dlms_master_key"},
		}, func(t *testing.T, tc fieldCase, r resp) {
			sent, _ := tc.body["dlms_master_key"].(string)
			noMaster(t, r, sent)
		})
		valid := []struct {
			name string
			body map[string]any
		}{
			{"256-bit keys", with("dlms_global_unicast_encryption_key", strings.ToUpper(gbek256))},
			{"one-character password", with("iec62056_21_password", "1")},
			{"every key null", map[string]any{"meter": devA, "iec62056_21_password": nil, "dlms_global_unicast_encryption_key": nil,
				"dlms_global_broadcast_encryption_key": nil, "dlms_master_key": nil, "dlms_global_authentication_key": nil}},
		}
		for _, tc := range valid {
			t.Run(tc.name, func(t *testing.T) {
				r := e.do("POST", keysPath, e.token(), tc.body)
				require.Equal(t, 201, r.status, "body: %s", r.body)
				require.Equal(t, 204, e.do("DELETE", keysPath+"/"+r.json(t)["id"].(string), e.token(), nil).status)
			})
		}
	})
	t.Run("the master key is stored encrypted and never returned", func(t *testing.T) {
		var enc, uni []byte
		storetest.Query(t, e.db, `SELECT dlms_master_key_enc, dlms_global_unicast_encryption_key_enc FROM meter_security_keys WHERE id = $1`, []any{id}, &enc, &uni)
		require.NotEmpty(t, enc)
		raw, err := hex.DecodeString(masterKey)
		require.NoError(t, err)
		for _, plain := range [][]byte{[]byte(masterKey), []byte(strings.ToLower(masterKey)), raw} {
			require.False(t, bytes.Contains(enc, plain), "the master key column holds the key in clear")
		}
		require.False(t, bytes.Contains(uni, []byte(guek128)), "the unicast key column holds the key in clear")
		for _, path := range []string{keysPath, keysPath + "/" + id, keysPath + "?meter=" + devA, keysPath + "?limit=1&offset=1"} {
			r := e.do("GET", path, e.token(), nil)
			require.Equal(t, 200, r.status, "%s: %s", path, r.body)
			noMaster(t, r)
		}
	})
	t.Run("filters", func(t *testing.T) {
		tests := []struct {
			query string
			want  []string
		}{
			{"meter=" + devA, []string{id}},
			{"meter=" + devB, []string{}},
			{"meter_name=meter-a", []string{id}},
			{"meter_name=meter-", []string{}},
			{"meter_external_system_reference=ext-a", []string{id}},
			{"meter_external_system_reference=ext", []string{}},
			{"meter_manufacturer_serial=SER-A", []string{id}},
			{"meter_manufacturer_serial=ser-a", []string{}},
			{"meter_dlms_system_title=4D4D4D0000000001", []string{id}},
			{"meter_dlms_system_title=4D4D4D000000000", []string{}},
			{"meter_dlms_logical_device_name=4D4D4D0000000001AB", []string{id}},
			{"meter_dlms_logical_device_name=4D4D4D0000000001", []string{}},
			{"meter_name=meter-a&meter_manufacturer_serial=SER-A", []string{id}},
			{"meter_name=meter-a&meter_manufacturer_serial=other", []string{}},
		}
		for _, tc := range tests {
			t.Run(tc.query, func(t *testing.T) {
				r := e.do("GET", keysPath+"?"+tc.query, e.token(), nil)
				require.Equal(t, 200, r.status, "body: %s", r.body)
				require.Equal(t, tc.want, ids(t, r))
			})
		}
		r := e.do("GET", keysPath+"?meter=not-a-uuid", e.token(), nil)
		require.Equal(t, 400, r.status)
		require.Contains(t, r.json(t), "meter")
	})
	t.Run("viewer reads its organization's keys but may not write", func(t *testing.T) {
		tok := e.jwtFor(e.viewer, nil)
		r := e.do("GET", keysPath+"/"+id, tok, nil)
		require.Equal(t, 200, r.status)
		noMaster(t, r)
		require.Equal(t, 403, e.do("POST", keysPath, tok, keysBody(devA)).status)
		require.Equal(t, 403, e.do("DELETE", keysPath+"/"+id, tok, nil).status)
	})
	t.Run("editor writes keys of its organization's devices only", func(t *testing.T) {
		tok := e.jwtFor(e.editor, nil)
		for _, dev := range []string{devB, devNone} {
			r := e.do("POST", keysPath, tok, keysBody(dev))
			require.Equal(t, 400, r.status, "body: %s", r.body)
			require.Equal(t, map[string]any{"meter": []any{`Invalid pk "` + dev + `" - object does not exist.`}}, r.json(t))
		}
		r := e.do("POST", keysPath, tok, keysBody(devA2))
		require.Equal(t, 201, r.status, "body: %s", r.body)
		require.Equal(t, 204, e.do("DELETE", keysPath+"/"+r.json(t)["id"].(string), tok, nil).status)
	})
	t.Run("a device the caller only reads is like a missing one", func(t *testing.T) {
		// both: viewer of A and editor of B; with Basic auth it acts in both.
		auth := basic(e.both.Username, testPassword)
		r := e.do("POST", keysPath, auth, keysBody(devA))
		require.Equal(t, 400, r.status, "body: %s", r.body)
		require.Contains(t, r.json(t), "meter")
		require.Equal(t, 403, e.do("DELETE", keysPath+"/"+id, auth, nil).status)
		r = e.do("POST", keysPath, auth, keysBody(devB))
		require.Equal(t, 201, r.status, "body: %s", r.body)
		require.Equal(t, []string{r.json(t)["id"].(string)}, ids(t, e.do("GET", keysPath+"?meter="+devB, auth, nil)))
	})
	t.Run("keys of devices without organization are staff's", func(t *testing.T) {
		r := e.do("POST", keysPath, e.token(), keysBody(devNone))
		require.Equal(t, 201, r.status, "body: %s", r.body)
		none := r.json(t)["id"].(string)
		require.Nil(t, e.do("GET", keysPath+"/"+none, e.token(), nil).json(t)["meter"].(map[string]any)["organization"])
		tok := e.jwtFor(e.editor, nil)
		require.NotContains(t, ids(t, e.do("GET", keysPath, tok, nil)), none)
		require.Equal(t, 404, e.do("GET", keysPath+"/"+none, tok, nil).status)
	})
	t.Run("another organization's keys are 404", func(t *testing.T) {
		tok := e.jwtFor(e.both, &e.orgB.ID)
		require.NotContains(t, ids(t, e.do("GET", keysPath, tok, nil)), id)
		require.Empty(t, ids(t, e.do("GET", keysPath+"?meter="+devA, tok, nil)))
		for _, m := range []string{"GET", "DELETE"} {
			require.Equal(t, 404, e.do(m, keysPath+"/"+id, tok, nil).status, m)
		}
	})
	t.Run("no update", func(t *testing.T) {
		for _, m := range []string{"PUT", "PATCH"} {
			r := e.do(m, keysPath+"/"+id, e.token(), keysBody(devA))
			require.Equal(t, 405, r.status, "%s: %s", m, r.body)
			noMaster(t, r)
		}
	})
	t.Run("ids that are not UUIDs are 404", func(t *testing.T) {
		for _, bad := range []string{"1", "not-a-uuid", strings.Repeat("f", 31)} {
			require.Equal(t, 404, e.do("GET", keysPath+"/"+bad, e.token(), nil).status, bad)
			require.Equal(t, 404, e.do("DELETE", keysPath+"/"+bad, e.token(), nil).status, bad)
		}
	})
	t.Run("keys go with their device", func(t *testing.T) {
		dev := e.sqlDevice(&e.orgA.ID, "meter-gone", nil)
		r := e.do("POST", keysPath, e.token(), keysBody(dev))
		require.Equal(t, 201, r.status, "body: %s", r.body)
		storetest.Query(t, e.db, `DELETE FROM meter_devices WHERE id = $1`, []any{dev})
		require.Equal(t, 404, e.do("GET", keysPath+"/"+r.json(t)["id"].(string), e.token(), nil).status)
	})
	require.Equal(t, 204, e.do("DELETE", keysPath+"/"+id, e.token(), nil).status)
	require.Equal(t, 404, e.do("GET", keysPath+"/"+id, e.token(), nil).status)
	require.Equal(t, 404, e.do("DELETE", keysPath+"/"+id, e.token(), nil).status)
}

func TestSecurityKeysConformToContract(t *testing.T) {
	e := newEnv(t)
	dev := e.sqlDevice(&e.orgA.ID, "meter-1", map[string]any{"manufacturer_serial": "S1", "iec62056_21_address": "12345678"})
	const list, one = "/metering/meter-security-keys", "/metering/meter-security-keys/{id}"
	r := e.conformed(t, "POST", list, keysPath, keysBody(dev), 201)
	id := r.json(t)["id"].(string)
	e.conformed(t, "POST", list, keysPath, map[string]any{"meter": dev}, 201)
	require.Len(t, ids(t, e.conformed(t, "GET", list, keysPath, nil, 200)), 2)
	e.conformed(t, "GET", one, keysPath+"/"+id, nil, 200)
	e.conformed(t, "DELETE", one, keysPath+"/"+id, nil, 204)
}
