package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/amrd/amrd/meterproto"
)

// apiClient calls a served amrd with a staff token.
type apiClient struct {
	t     *testing.T
	base  string
	token string
	http  *http.Client
	// auth, when set, is the whole Authorization header instead of the token's ("JWT
	// ...", "Basic ..."); without either no credentials are sent.
	auth string
}

// as returns a client of the same server that sends auth as its Authorization header
// (none when auth is empty).
func (c *apiClient) as(auth string) *apiClient {
	o := *c
	o.auth, o.token = auth, ""
	return &o
}

// call sends a JSON body (nil: none) and decodes the answer into out (nil: ignored); it
// returns the status.
func (c *apiClient) call(method, path string, body any, out any) int {
	c.t.Helper()
	status, _, raw := c.send(method, path, body)
	if out != nil && len(raw) > 0 {
		require.NoError(c.t, json.Unmarshal(raw, out), "body: %s", raw)
	}
	return status
}

// send sends a JSON body (nil: none) and returns the answer's status, header and body.
func (c *apiClient) send(method, path string, body any) (int, http.Header, []byte) {
	c.t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		require.NoError(c.t, err)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, c.base+path, rd)
	require.NoError(c.t, err)
	switch {
	case c.auth != "":
		req.Header.Set("Authorization", c.auth)
	case c.token != "":
		req.Header.Set("Authorization", "Token "+c.token)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.http.Do(req)
	require.NoError(c.t, err)
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	require.NoError(c.t, err)
	return resp.StatusCode, resp.Header, raw
}

// create POSTs and returns the new object's id, requiring 201.
func (c *apiClient) create(path string, body any) string {
	c.t.Helper()
	var out map[string]any
	status := c.call("POST", path, body, &out)
	require.Equal(c.t, http.StatusCreated, status, "POST %s: %v", path, out)
	return fmt.Sprint(out["id"])
}

// TestCollectThroughTheAPI sets up an IEC 62056-21 meter entirely through the REST API,
// invokes its readout on demand and finds the telegram's readings, as an operator would.
func TestCollectThroughTheAPI(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	sim, err := meterproto.NewSimulator(meterproto.SimConfig{Address: "4711", Lines: []string{
		"F.F(00000000)",
		"1.8.0(0012345.678*kWh)",
		"2.8.0(0000007.250*kWh)",
		"32.7(230.1*V)",
	}})
	require.NoError(t, err)
	defer sim.Close()
	simAddr, err := sim.Listen(ctx, "127.0.0.1:0")
	require.NoError(t, err)
	_, simPort, _ := net.SplitHostPort(simAddr)
	port, _ := strconv.Atoi(simPort)

	env := migratedEnv(t)
	out, _, err := amrd(t, env, "", "bootstrap")
	require.NoError(t, err)
	env["SECRET_KEY"] = testSecret
	env["AMRD_LISTEN"] = "127.0.0.1:0"
	env["AMRD_LOG_LEVEL"] = "warn"
	srv := startServe(t, env)
	c := &apiClient{t: t, base: "http://" + srv.addr + "/v1", token: tokenRe.FindString(out), http: &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{}}}

	org := c.create("/organizations/", map[string]any{"name": "Stadtwerke"})
	imp := c.create("/metering/meter-reading-series/", map[string]any{"organization": org, "name": "1-0:1.8.0*255", "unit": "kWh",
		"affected_by_ct_ratio": true})
	exp := c.create("/metering/meter-reading-series/", map[string]any{"organization": org, "name": "2.8.0", "unit": "kWh"})
	config := c.create("/metering/meter-device-configs/", map[string]any{"organization": org, "name": "household",
		"series": []string{imp, exp}, "timezone": "Europe/Berlin"})
	typ := c.create("/metering/meter-device-types/", map[string]any{"organization": org, "name": "E350",
		"manufacturer": "Landis+Gyr", "manufacturer_model": "E350", "config": config})
	netif := c.create("/metering/network-interfaces/", map[string]any{"organization": org, "static_ip_address": "127.0.0.1",
		"port": port, "can_block": true})
	task := c.create("/metering/amr-tasks/", map[string]any{"organization": org, "name": "hourly readout", "schedule": "hourly",
		"meter_execution_type": "generic_iec6205621", "task_call": "readout"})
	device := c.create("/metering/meter-devices/", map[string]any{"organization": org, "name": "E350-0001",
		"protocol": "iec62056-21", "iec62056_21_address": "4711", "type": typ, "network_interface": netif,
		"meter_tasks": []string{task}, "has_current_transformer": true, "current_transformer_ratio": 20})

	var run map[string]any
	require.Equal(t, http.StatusCreated, c.call("POST", "/metering/amr-tasks/invoke", map[string]any{"meter_device": device,
		"task_call": "readout", "meter_execution_type": "generic_iec6205621"}, &run), "%v", run)
	id := fmt.Sprint(run["id"])
	require.Eventually(t, func() bool {
		require.Equal(t, http.StatusOK, c.call("GET", "/metering/amr-task-runs/"+id, nil, &run))
		return run["status"] == "succeeded" || run["status"] == "failed"
	}, 60*time.Second, 100*time.Millisecond)
	require.Equal(t, "succeeded", run["status"], "error: %v", run["error"])
	require.Equal(t, 1, sim.Sessions())

	readings := func(series string) []map[string]any {
		var page struct {
			Results []map[string]any `json:"results"`
		}
		require.Equal(t, http.StatusOK, c.call("GET", "/metering/meter-readings/?meter_device="+device+"&series="+series+"&scaled=true", nil, &page))
		return page.Results
	}
	// Scaled by the CT ratio of 20 (the series is affected by CT): 12345.678 x 20.
	require.Len(t, readings(imp), 1)
	require.Equal(t, "246913.560", fmt.Sprint(readings(imp)[0]["value"]))
	require.Equal(t, "7.250", fmt.Sprint(readings(exp)[0]["value"]))

	t.Run("the interface is free again and the run's result names what did not match", func(t *testing.T) {
		var ni map[string]any
		require.Equal(t, http.StatusOK, c.call("GET", "/metering/network-interfaces/"+netif, nil, &ni))
		require.Equal(t, false, ni["is_blocked"])
		res := run["result"].(map[string]any)
		require.Equal(t, []any{"F.F", "32.7"}, res["unmatched"])
	})

	t.Run("a meter that answers garbage fails the run and says so", func(t *testing.T) {
		sim.SetFault(meterproto.FaultBadBCC)
		require.Equal(t, http.StatusCreated, c.call("POST", "/metering/amr-tasks/invoke", map[string]any{"meter_device": device,
			"task_call": "readout", "meter_execution_type": "generic_iec6205621"}, &run))
		id := fmt.Sprint(run["id"])
		require.Eventually(t, func() bool {
			c.call("GET", "/metering/amr-task-runs/"+id, nil, &run)
			return run["status"] == "failed"
		}, 60*time.Second, 100*time.Millisecond)
		require.Contains(t, run["error"], "bad block check character")
		require.Len(t, readings(imp), 1, "nothing more stored")
	})
	c.http.CloseIdleConnections()
	require.NoError(t, srv.stop())
}
