package api_test

import (
	"strings"
	"testing"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/amrd/amrd/store/storetest"
)

// mkDevice inserts a meter device straight into the database (its routes are not part of
// this work) and returns its id.
func (e *env) mkDevice(org uuid.UUID, name string, typ, netif any) string {
	e.t.Helper()
	id := uuid.New()
	storetest.Exec(e.t, e.db, `INSERT INTO meter_devices (id, organization_id, name, protocol, type_id, network_interface_id)
		VALUES ($1, $2, $3, 'iec62056-21', $4::uuid, $5::uuid)`, id, org, name, typ, netif)
	return id.String()
}

// fieldError checks a 400 that names field.
func fieldError(t *testing.T, r resp, field string) {
	t.Helper()
	require.Equal(t, 400, r.status, "body: %s", r.body)
	require.Contains(t, r.json(t), field, "body: %s", r.body)
}

func TestNetworkInterfaces(t *testing.T) {
	e := newEnv(t)
	a := e.orgA.ID.String()
	sim := e.created("/v1/metering/sim-cards", e.token(), map[string]any{"organization": a, "iccid": "1", "imsi": "1", "ip_address": "10.0.0.7"})
	simB := e.created("/v1/metering/sim-cards", e.token(), map[string]any{"organization": e.orgB.ID, "iccid": "2", "imsi": "2"})

	r := e.do("POST", "/v1/metering/network-interfaces", e.token(), map[string]any{
		"organization": a, "static_ip_address": "192.0.2.10", "port": 4059, "sim": sim["id"], "can_block": true,
		// read only: ignored
		"host": "evil.example", "is_blocked": true, "block_time": "2026-01-01T00:00:00Z", "id": uuid.NewString()})
	require.Equal(t, 201, r.status, "body: %s", r.body)
	n := r.json(t)
	id := n["id"].(string)
	require.Equal(t, "192.0.2.10", n["host"])
	require.Equal(t, false, n["is_blocked"])
	require.Nil(t, n["block_time"])
	require.Nil(t, n["fqdn"])
	require.Equal(t, 4059.0, n["port"])
	require.Equal(t, true, n["can_block"])
	require.Equal(t, sim["id"], n["sim"])

	t.Run("host follows fqdn, static IP, SIM", func(t *testing.T) {
		path := "/v1/metering/network-interfaces/" + id
		r := e.do("PATCH", path, e.token(), map[string]any{"fqdn": "meter1.example.org"})
		require.Equal(t, 200, r.status, "body: %s", r.body)
		require.Equal(t, "meter1.example.org", r.json(t)["host"])
		r = e.do("PATCH", path, e.token(), map[string]any{"fqdn": "", "static_ip_address": nil})
		require.Equal(t, 200, r.status, "body: %s", r.body)
		require.Nil(t, r.json(t)["fqdn"], "a blank FQDN is none")
		require.Equal(t, "10.0.0.7", r.json(t)["host"])
		r = e.do("PATCH", path, e.token(), map[string]any{"sim": nil})
		require.Equal(t, 200, r.status, "body: %s", r.body)
		require.Nil(t, r.json(t)["host"])
		require.Equal(t, 4059.0, r.json(t)["port"], "PATCH keeps what it does not name")
	})
	t.Run("field rules", func(t *testing.T) {
		tests := []struct {
			name  string
			body  map[string]any
			field string
		}{
			{"no organization", map[string]any{}, "organization"},
			{"bad IP", map[string]any{"organization": a, "static_ip_address": "999.1.1.1"}, "static_ip_address"},
			{"blank IP", map[string]any{"organization": a, "static_ip_address": ""}, "static_ip_address"},
			{"IP with zone", map[string]any{"organization": a, "static_ip_address": "fe80::1%eth0"}, "static_ip_address"},
			{"host name as IP", map[string]any{"organization": a, "static_ip_address": "meter.example"}, "static_ip_address"},
			{"bad fqdn", map[string]any{"organization": a, "fqdn": "meter_1.example"}, "fqdn"},
			{"URL as fqdn", map[string]any{"organization": a, "fqdn": "https://meter.example"}, "fqdn"},
			{"IP as fqdn", map[string]any{"organization": a, "fqdn": "10.0.0.1"}, "fqdn"},
			{"fqdn too long", map[string]any{"organization": a, "fqdn": strings.Repeat("a.", 100) + "b"}, "fqdn"},
			{"negative port", map[string]any{"organization": a, "port": -1}, "port"},
			{"port too large", map[string]any{"organization": a, "port": 2147483648}, "port"},
			{"port not a number", map[string]any{"organization": a, "port": "http"}, "port"},
			{"sim not an id", map[string]any{"organization": a, "sim": "12"}, "sim"},
			{"sim of another organization", map[string]any{"organization": a, "sim": simB["id"]}, "sim"},
			{"sim missing", map[string]any{"organization": a, "sim": uuid.NewString()}, "sim"},
			{"can_block not a boolean", map[string]any{"organization": a, "can_block": "yes"}, "can_block"},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				fieldError(t, e.do("POST", "/v1/metering/network-interfaces", e.token(), tc.body), tc.field)
			})
		}
	})
	t.Run("port bounds are inclusive", func(t *testing.T) {
		for _, p := range []any{0, 2147483647, nil} {
			r := e.do("POST", "/v1/metering/network-interfaces", e.token(), map[string]any{"organization": a, "port": p, "fqdn": "x.example"})
			require.Equal(t, 201, r.status, "body: %s", r.body)
			require.Equal(t, 204, e.do("DELETE", "/v1/metering/network-interfaces/"+r.json(t)["id"].(string), e.token(), nil).status)
		}
	})
	t.Run("editor writes in its organization, viewer reads, others see nothing", func(t *testing.T) {
		r := e.do("POST", "/v1/metering/network-interfaces", e.jwtFor(e.editor, nil), map[string]any{"organization": e.orgB.ID, "fqdn": "e.example"})
		require.Equal(t, 201, r.status, "body: %s", r.body)
		require.Equal(t, a, r.json(t)["organization"])
		viewer := e.jwtFor(e.viewer, nil)
		require.Equal(t, 200, e.do("GET", "/v1/metering/network-interfaces/"+id, viewer, nil).status)
		require.Equal(t, 403, e.do("PATCH", "/v1/metering/network-interfaces/"+id, viewer, map[string]any{"port": 1}).status)
		other := e.jwtFor(e.both, &e.orgB.ID)
		require.Empty(t, ids(t, e.do("GET", "/v1/metering/network-interfaces", other, nil)))
		require.Equal(t, 404, e.do("DELETE", "/v1/metering/network-interfaces/"+id, other, nil).status)
	})
	t.Run("PUT keeps what it does not name, as DRF's full update does", func(t *testing.T) {
		before := e.do("GET", "/v1/metering/network-interfaces/"+id, e.token(), nil).json(t)
		r := e.do("PUT", "/v1/metering/network-interfaces/"+id, e.token(), map[string]any{"fqdn": "put.example"})
		require.Equal(t, 200, r.status, "body: %s", r.body)
		n := r.json(t)
		require.Equal(t, a, n["organization"], "PUT keeps the organization when the body has none")
		require.Equal(t, "put.example", n["fqdn"])
		require.Equal(t, before["port"], n["port"])
		require.Equal(t, before["can_block"], n["can_block"])
	})
	t.Run("in use by a meter device: 409", func(t *testing.T) {
		dev := e.mkDevice(e.orgA.ID, "meter-1", nil, id)
		r := e.do("DELETE", "/v1/metering/network-interfaces/"+id, e.token(), nil)
		require.Equal(t, 409, r.status, "body: %s", r.body)
		require.Contains(t, r.json(t)["detail"], "meter devices")
		r = e.do("PATCH", "/v1/metering/network-interfaces/"+id, e.token(), map[string]any{"organization": e.orgB.ID})
		require.Equal(t, 409, r.status, "body: %s", r.body)
		storetest.Exec(t, e.db, "DELETE FROM meter_devices WHERE id = $1", dev)
	})
	require.Equal(t, 204, e.do("DELETE", "/v1/metering/network-interfaces/"+id, e.token(), nil).status)
	require.Equal(t, 404, e.do("GET", "/v1/metering/network-interfaces/"+id, e.token(), nil).status)
}

func TestMeterReadingSeries(t *testing.T) {
	e := newEnv(t)
	a := e.orgA.ID.String()
	r := e.do("POST", "/v1/metering/meter-reading-series", e.token(), map[string]any{"organization": a, "name": "energy", "unit": "kWh"})
	require.Equal(t, 201, r.status, "body: %s", r.body)
	s := r.json(t)
	id := s["id"].(string)
	require.Equal(t, "1", s["si_multiplier"], "the default multiplier, as a string")
	require.Equal(t, "", s["description"])
	require.Nil(t, s["unit_description"])
	require.Equal(t, false, s["affected_by_ct_ratio"])
	require.Equal(t, false, s["affected_by_vt_ratio"])
	require.NotContains(t, s, "key", "the internal key stays inside")

	t.Run("si_multiplier is exact, as a string or a number", func(t *testing.T) {
		// raw bodies: a JSON number must reach the decoder as written
		tests := []struct{ raw, want string }{
			{`"1000"`, "1000"},
			{`0.001`, "0.001"},
			{`3.6e6`, "3600000"},
			{`0.1000000000000000000000000001`, "0.1000000000000000000000000001"},
			{`"1.500"`, "1.5"},
		}
		for _, tc := range tests {
			r := e.do("PATCH", "/v1/metering/meter-reading-series/"+id, e.token(), `{"si_multiplier": `+tc.raw+`}`)
			require.Equal(t, 200, r.status, "body: %s", r.body)
			require.Equal(t, tc.want, r.json(t)["si_multiplier"], tc.raw)
			require.Equal(t, tc.want, e.do("GET", "/v1/metering/meter-reading-series/"+id, e.token(), nil).json(t)["si_multiplier"])
		}
		for _, bad := range []string{`"NaN"`, `"Infinity"`, `"-inf"`, `""`, `"ten"`, `null`, `true`, `0`, `-5`, `"1e40"`} {
			fieldError(t, e.do("PATCH", "/v1/metering/meter-reading-series/"+id, e.token(), `{"si_multiplier": `+bad+`}`), "si_multiplier")
		}
	})
	t.Run("field rules", func(t *testing.T) {
		tests := []struct {
			name  string
			body  map[string]any
			field string
		}{
			{"name missing", map[string]any{"organization": a, "unit": "u"}, "name"},
			{"name blank", map[string]any{"organization": a, "name": "", "unit": "u"}, "name"},
			{"name too long", map[string]any{"organization": a, "name": strings.Repeat("n", 51), "unit": "u"}, "name"},
			{"unit missing", map[string]any{"organization": a, "name": "x"}, "unit"},
			{"unit too long", map[string]any{"organization": a, "name": "x", "unit": strings.Repeat("u", 11)}, "unit"},
			{"unit_description blank", map[string]any{"organization": a, "name": "x", "unit": "u", "unit_description": ""}, "unit_description"},
			{"description too long", map[string]any{"organization": a, "name": "x", "unit": "u", "description": strings.Repeat("d", 251)}, "description"},
			{"ct not a boolean", map[string]any{"organization": a, "name": "x", "unit": "u", "affected_by_ct_ratio": 1}, "affected_by_ct_ratio"},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				fieldError(t, e.do("POST", "/v1/metering/meter-reading-series", e.token(), tc.body), tc.field)
			})
		}
	})
	t.Run("a name is unique in its organization: 400 naming it, as DRF answers", func(t *testing.T) {
		r := e.do("POST", "/v1/metering/meter-reading-series", e.token(), map[string]any{"organization": a, "name": "energy", "unit": "Wh"})
		fieldError(t, r, "name")
		other := e.created("/v1/metering/meter-reading-series", e.token(), map[string]any{"organization": e.orgB.ID, "name": "energy", "unit": "Wh", "si_multiplier": "0.001"})
		renamed := e.created("/v1/metering/meter-reading-series", e.token(), map[string]any{"organization": a, "name": "power", "unit": "kW"})
		r = e.do("PATCH", "/v1/metering/meter-reading-series/"+renamed["id"].(string), e.token(), map[string]any{"name": "energy"})
		fieldError(t, r, "name")

		t.Run("filters", func(t *testing.T) {
			require.Equal(t, []string{id, other["id"].(string)}, ids(t, e.do("GET", "/v1/metering/meter-reading-series?name=energy", e.token(), nil)))
			require.Equal(t, []string{other["id"].(string)}, ids(t, e.do("GET", "/v1/metering/meter-reading-series?name=energy&unit=Wh", e.token(), nil)))
			require.Empty(t, ids(t, e.do("GET", "/v1/metering/meter-reading-series?unit=kwh", e.token(), nil)), "exact, case included")
			require.Equal(t, []string{id}, ids(t, e.do("GET", "/v1/metering/meter-reading-series?name=energy", e.jwtFor(e.viewer, nil), nil)))
		})
	})
	t.Run("delete refused while a config lists it or readings are stored", func(t *testing.T) {
		cfg := e.created("/v1/metering/meter-device-configs", e.token(), map[string]any{"organization": a, "name": "c", "series": []string{id}})
		r := e.do("DELETE", "/v1/metering/meter-reading-series/"+id, e.token(), nil)
		require.Equal(t, 409, r.status, "body: %s", r.body)
		require.Contains(t, r.json(t)["detail"], "meter device configs")
		require.Equal(t, 204, e.do("DELETE", "/v1/metering/meter-device-configs/"+cfg["id"].(string), e.token(), nil).status)

		dev := e.mkDevice(e.orgA.ID, "meter-1", nil, nil)
		storetest.Exec(t, e.db, `INSERT INTO meter_readings (device_key, series_key, ts, value)
			SELECT d.key, s.key, now(), 42 FROM meter_devices d, meter_reading_series s WHERE d.id = $1 AND s.id = $2`, dev, id)
		r = e.do("DELETE", "/v1/metering/meter-reading-series/"+id, e.token(), nil)
		require.Equal(t, 409, r.status, "body: %s", r.body)
		require.Contains(t, r.json(t)["detail"], "readings")
		storetest.Exec(t, e.db, "DELETE FROM meter_readings")
	})
	require.Equal(t, 204, e.do("DELETE", "/v1/metering/meter-reading-series/"+id, e.token(), nil).status)
	require.Equal(t, 404, e.do("GET", "/v1/metering/meter-reading-series/"+id, e.token(), nil).status)
}

func TestMeterDeviceConfigs(t *testing.T) {
	e := newEnv(t)
	a := e.orgA.ID.String()
	energy := e.created("/v1/metering/meter-reading-series", e.token(), map[string]any{"organization": a, "name": "energy", "unit": "kWh"})["id"].(string)
	power := e.created("/v1/metering/meter-reading-series", e.token(), map[string]any{"organization": a, "name": "power", "unit": "kW"})["id"].(string)
	foreign := e.created("/v1/metering/meter-reading-series", e.token(), map[string]any{"organization": e.orgB.ID, "name": "gas", "unit": "m3"})["id"].(string)

	c := e.created("/v1/metering/meter-device-configs", e.token(), map[string]any{"organization": a, "name": "elec", "series": []string{power, energy},
		"series_info": "ignored"})
	id := c["id"].(string)
	require.ElementsMatch(t, []any{power, energy}, c["series"])
	require.Equal(t, "energy (kWh), power (kW)", c["series_info"])
	require.Equal(t, "UTC", c["timezone"], "the default time zone")

	t.Run("field rules", func(t *testing.T) {
		tests := []struct {
			name  string
			body  map[string]any
			field string
		}{
			{"series missing", map[string]any{"organization": a, "name": "x"}, "series"},
			{"series not a list", map[string]any{"organization": a, "name": "x", "series": energy}, "series"},
			{"series repeated", map[string]any{"organization": a, "name": "x", "series": []string{energy, energy}}, "series"},
			{"series of another organization", map[string]any{"organization": a, "name": "x", "series": []string{energy, foreign}}, "series"},
			{"series missing row", map[string]any{"organization": a, "name": "x", "series": []string{uuid.NewString()}}, "series"},
			{"series not ids", map[string]any{"organization": a, "name": "x", "series": []any{1}}, "series"},
			{"name missing", map[string]any{"organization": a, "series": []string{}}, "name"},
			{"name too long", map[string]any{"organization": a, "name": strings.Repeat("n", 51), "series": []string{}}, "name"},
			{"unknown time zone", map[string]any{"organization": a, "name": "x", "series": []string{}, "timezone": "Mars/Olympus_Mons"}, "timezone"},
			{"time zone the tz database lacks", map[string]any{"organization": a, "name": "x", "series": []string{}, "timezone": "US/Pacific-New"}, "timezone"},
			{"time zone null", map[string]any{"organization": a, "name": "x", "series": []string{}, "timezone": nil}, "timezone"},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				fieldError(t, e.do("POST", "/v1/metering/meter-device-configs", e.token(), tc.body), tc.field)
			})
		}
	})
	t.Run("PATCH changes what it names", func(t *testing.T) {
		r := e.do("PATCH", "/v1/metering/meter-device-configs/"+id, e.token(), map[string]any{"timezone": "Europe/Stockholm"})
		require.Equal(t, 200, r.status, "body: %s", r.body)
		require.Equal(t, "Europe/Stockholm", r.json(t)["timezone"])
		require.Len(t, r.json(t)["series"], 2)
		r = e.do("PATCH", "/v1/metering/meter-device-configs/"+id, e.token(), map[string]any{"series": []string{energy}})
		require.Equal(t, 200, r.status, "body: %s", r.body)
		require.Equal(t, []any{energy}, r.json(t)["series"])
		require.Equal(t, "energy (kWh)", r.json(t)["series_info"])
		require.Equal(t, "Europe/Stockholm", r.json(t)["timezone"])
		// moving to another organization takes series of that organization
		fieldError(t, e.do("PATCH", "/v1/metering/meter-device-configs/"+id, e.token(), map[string]any{"organization": e.orgB.ID}), "series")
	})
	t.Run("PUT keeps the time zone it does not name", func(t *testing.T) {
		before := e.do("GET", "/v1/metering/meter-device-configs/"+id, e.token(), nil).json(t)["timezone"]
		r := e.do("PUT", "/v1/metering/meter-device-configs/"+id, e.token(), map[string]any{"name": "elec", "series": []string{energy, power}})
		require.Equal(t, 200, r.status, "body: %s", r.body)
		require.Equal(t, before, r.json(t)["timezone"])
		fieldError(t, e.do("PUT", "/v1/metering/meter-device-configs/"+id, e.token(), map[string]any{"name": "elec"}), "series")
	})
	t.Run("an editor cannot name another organization's series", func(t *testing.T) {
		r := e.do("POST", "/v1/metering/meter-device-configs", e.jwtFor(e.editor, nil), map[string]any{"name": "x", "series": []string{foreign}})
		fieldError(t, r, "series")
	})
	t.Run("in use by a device type: 409", func(t *testing.T) {
		typ := e.created("/v1/metering/meter-device-types", e.token(), map[string]any{"organization": a, "name": "t", "manufacturer": "m", "manufacturer_model": "mm", "config": id})
		r := e.do("DELETE", "/v1/metering/meter-device-configs/"+id, e.token(), nil)
		require.Equal(t, 409, r.status, "body: %s", r.body)
		require.Contains(t, r.json(t)["detail"], "meter device types")
		require.Equal(t, 204, e.do("DELETE", "/v1/metering/meter-device-types/"+typ["id"].(string), e.token(), nil).status)
	})
	require.Equal(t, 204, e.do("DELETE", "/v1/metering/meter-device-configs/"+id, e.token(), nil).status)
	// the series stay, free to go
	require.Equal(t, 204, e.do("DELETE", "/v1/metering/meter-reading-series/"+energy, e.token(), nil).status)
}

func TestMeterDeviceTypes(t *testing.T) {
	e := newEnv(t)
	a := e.orgA.ID.String()
	cfg := e.created("/v1/metering/meter-device-configs", e.token(), map[string]any{"organization": a, "name": "c", "series": []string{}})["id"].(string)
	cfgB := e.created("/v1/metering/meter-device-configs", e.token(), map[string]any{"organization": e.orgB.ID, "name": "c", "series": []string{}})["id"].(string)

	typ := e.created("/v1/metering/meter-device-types", e.token(), map[string]any{"organization": a, "name": "E350", "manufacturer": "Landis+Gyr", "manufacturer_model": "ZMF100", "config": cfg})
	id := typ["id"].(string)
	require.Equal(t, cfg, typ["config"])
	require.Equal(t, "", typ["description"])

	t.Run("field rules", func(t *testing.T) {
		ok := func(over map[string]any) map[string]any {
			b := map[string]any{"organization": a, "name": "x", "manufacturer": "m", "manufacturer_model": "mm"}
			for k, v := range over {
				if v == nil {
					delete(b, k)
				} else {
					b[k] = v
				}
			}
			return b
		}
		tests := []struct {
			name  string
			body  map[string]any
			field string
		}{
			{"name missing", ok(map[string]any{"name": nil}), "name"},
			{"name too long", ok(map[string]any{"name": strings.Repeat("n", 51)}), "name"},
			{"manufacturer missing", ok(map[string]any{"manufacturer": nil}), "manufacturer"},
			{"manufacturer blank", ok(map[string]any{"manufacturer": ""}), "manufacturer"},
			{"manufacturer too long", ok(map[string]any{"manufacturer": strings.Repeat("m", 101)}), "manufacturer"},
			{"model missing", ok(map[string]any{"manufacturer_model": nil}), "manufacturer_model"},
			{"model too long", ok(map[string]any{"manufacturer_model": strings.Repeat("m", 51)}), "manufacturer_model"},
			{"description too long", ok(map[string]any{"description": strings.Repeat("d", 501)}), "description"},
			{"config of another organization", ok(map[string]any{"config": cfgB}), "config"},
			{"config not an id", ok(map[string]any{"config": 5}), "config"},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				fieldError(t, e.do("POST", "/v1/metering/meter-device-types", e.token(), tc.body), tc.field)
			})
		}
	})
	t.Run("config may be cleared", func(t *testing.T) {
		r := e.do("PATCH", "/v1/metering/meter-device-types/"+id, e.token(), map[string]any{"config": nil, "description": strings.Repeat("d", 500)})
		require.Equal(t, 200, r.status, "body: %s", r.body)
		require.Nil(t, r.json(t)["config"])
		require.Equal(t, "E350", r.json(t)["name"])
	})
	t.Run("in use by a meter device: 409", func(t *testing.T) {
		dev := e.mkDevice(e.orgA.ID, "meter-1", id, nil)
		r := e.do("DELETE", "/v1/metering/meter-device-types/"+id, e.token(), nil)
		require.Equal(t, 409, r.status, "body: %s", r.body)
		require.Contains(t, r.json(t)["detail"], "meter devices")
		storetest.Exec(t, e.db, "DELETE FROM meter_devices WHERE id = $1", dev)
	})
	require.Equal(t, 204, e.do("DELETE", "/v1/metering/meter-device-types/"+id, e.token(), nil).status)
	require.Equal(t, 404, e.do("DELETE", "/v1/metering/meter-device-types/"+id, e.token(), nil).status)
}

// TestMeteringAdminConformsToContract runs every operation of the four resources and
// checks each answer against the contract.
func TestMeteringAdminConformsToContract(t *testing.T) {
	e := newEnv(t)
	a := e.orgA.ID
	sim := e.created("/v1/metering/sim-cards", e.token(), map[string]any{"organization": a, "iccid": "1", "imsi": "2"})["id"]
	tests := []struct {
		path         string
		create, put  map[string]any
		patch        map[string]any
		listFiltered string
	}{
		{"/metering/network-interfaces",
			map[string]any{"organization": a, "fqdn": "m.example.org", "port": 4059, "sim": sim},
			map[string]any{"static_ip_address": "2001:db8::1"}, map[string]any{"fqdn": nil, "static_ip_address": nil}, ""},
		{"/metering/meter-reading-series",
			map[string]any{"organization": a, "name": "energy", "unit": "kWh", "si_multiplier": "3600000", "unit_description": "kilowatt hours"},
			map[string]any{"name": "energy", "unit": "Wh", "si_multiplier": 3600}, map[string]any{"si_multiplier": "0.001"}, "?name=energy&unit=kWh"},
		{"/metering/meter-device-configs",
			map[string]any{"organization": a, "name": "c", "series": []string{}, "timezone": "Etc/GMT-1"},
			map[string]any{"name": "c2", "series": []string{}}, map[string]any{"timezone": "Europe/Stockholm"}, ""},
		{"/metering/meter-device-types",
			map[string]any{"organization": a, "name": "t", "manufacturer": "m", "manufacturer_model": "mm"},
			map[string]any{"name": "t", "manufacturer": "m", "manufacturer_model": "mm", "description": "d"}, map[string]any{"name": "t2"}, ""},
	}
	for _, tc := range tests {
		t.Run(tc.path, func(t *testing.T) {
			r := e.do("POST", "/v1"+tc.path, e.token(), tc.create)
			require.Equal(t, 201, r.status, "body: %s", r.body)
			conform(t, "POST", tc.path, r)
			id := r.json(t)["id"].(string)
			conform(t, "GET", tc.path, e.do("GET", "/v1"+tc.path+tc.listFiltered, e.token(), nil))
			conform(t, "GET", tc.path+"/{id}", e.do("GET", "/v1"+tc.path+"/"+id, e.token(), nil))
			r = e.do("PUT", "/v1"+tc.path+"/"+id, e.token(), tc.put)
			require.Equal(t, 200, r.status, "body: %s", r.body)
			conform(t, "PUT", tc.path+"/{id}", r)
			r = e.do("PATCH", "/v1"+tc.path+"/"+id, e.token(), tc.patch)
			require.Equal(t, 200, r.status, "body: %s", r.body)
			conform(t, "PATCH", tc.path+"/{id}", r)
			r = e.do("DELETE", "/v1"+tc.path+"/"+id, e.token(), nil)
			require.Equal(t, 204, r.status, "body: %s", r.body)
			conform(t, "DELETE", tc.path+"/{id}", r)
		})
	}
}
