package main

// Several replicas for real: three `amrd serve` processes on one database, each with its
// scheduler on, checked for what replicas must share: the AMR run queue (every slot and
// every run executed once, a killed replica's run executed again by another, once, after
// its lease), readings (stored once whichever replica took them, a device created through
// one usable through another at once) and security state (revocations effective on every
// replica within a second, one login throttle for all).

import (
	"context"
	"encoding/base64"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/amrd/amrd/meterproto"
	"github.com/amrd/amrd/store"
	"github.com/amrd/amrd/store/storetest"
)

// replicaRunTimeout is the replicas' AMRD_AMR_RUN_TIMEOUT_SECONDS: long enough for the
// test to see a run held against a silent meter and kill its replica (it polls every
// 20 ms), short enough that the lease (timeout + 30 s) runs out within the test.
const replicaRunTimeout = 8

// replicaSet is the amrd processes of the test, with a staff client of each.
type replicaSet struct {
	t       *testing.T
	bin     string
	dbURL   string
	token   string
	procs   []*amrdProc
	clients []*apiClient
}

// start starts replica i (a new process in slot i).
func (rs *replicaSet) start(i int) {
	rs.t.Helper()
	p := startAmrd(rs.t, rs.bin, rs.dbURL, "AMRD_AMR_RUN_TIMEOUT_SECONDS="+strconv.Itoa(replicaRunTimeout),
		"AMRD_DB_MAX_CONNS=8")
	c := &apiClient{t: rs.t, base: "http://" + p.addr + "/v1", token: rs.token,
		http: &http.Client{Timeout: 60 * time.Second, Transport: &http.Transport{}}}
	rs.t.Cleanup(c.http.CloseIdleConnections)
	if i == len(rs.procs) {
		rs.procs, rs.clients = append(rs.procs, p), append(rs.clients, c)
	} else {
		rs.procs[i], rs.clients[i] = p, c
	}
}

// byWorker returns the replica whose process claimed as worker (amrd@host:pid), or -1.
func (rs *replicaSet) byWorker(worker string) int {
	for i, p := range rs.procs {
		if strings.HasSuffix(worker, ":"+strconv.Itoa(p.cmd.Process.Pid)) {
			return i
		}
	}
	return -1
}

// requireHealthy fails the test when a replica ended, panicked or logged an error.
func (rs *replicaSet) requireHealthy(t *testing.T) {
	t.Helper()
	for i, p := range rs.procs {
		require.True(t, p.alive(), "replica %d ended; stderr:\n%s", i, p.stderr.String())
		p.requireNoPanic(t)
		require.NotContains(t, p.stderr.String(), `"level":"ERROR"`, "replica %d logged an error", i)
	}
}

// simulator serves an IEC 62056-21 meter on loopback until the test ends.
func simulator(t *testing.T, fault meterproto.Fault, lines ...string) (*meterproto.Simulator, int) {
	t.Helper()
	sim, err := meterproto.NewSimulator(meterproto.SimConfig{Lines: lines, Fault: fault})
	require.NoError(t, err)
	t.Cleanup(func() { _ = sim.Close() })
	addr, err := sim.Listen(context.Background(), "127.0.0.1:0")
	require.NoError(t, err)
	_, port, _ := net.SplitHostPort(addr)
	n, err := strconv.Atoi(port)
	require.NoError(t, err)
	return sim, n
}

// taskRun is a row of amr_task_runs as the test checks it.
type taskRun struct {
	status, worker     string
	attempts           int
	slot               *time.Time
	runAt, createdAt   time.Time
	startedAt, leaseTo *time.Time
	task, device       *uuid.UUID
}

func runsWhere(t *testing.T, dbURL, where string, args ...any) []taskRun {
	t.Helper()
	var out []taskRun
	for _, row := range storetest.Rows(t, dbURL, `SELECT status, coalesce(worker, ''), attempts, slot, run_at, created_at,
			started_at, lease_until, task_id, meter_device_id FROM amr_task_runs WHERE `+where+` ORDER BY id`, args...) {
		r := taskRun{status: row[0].(string), worker: row[1].(string), attempts: int(row[2].(int32)),
			runAt: row[4].(time.Time), createdAt: row[5].(time.Time)}
		if v, ok := row[3].(time.Time); ok {
			r.slot = &v
		}
		if v, ok := row[6].(time.Time); ok {
			r.startedAt = &v
		}
		if v, ok := row[7].(time.Time); ok {
			r.leaseTo = &v
		}
		if v, ok := row[8].([16]byte); ok {
			id := uuid.UUID(v)
			r.task = &id
		}
		if v, ok := row[9].([16]byte); ok {
			id := uuid.UUID(v)
			r.device = &id
		}
		out = append(out, r)
	}
	return out
}

func basicAuth(user, password string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+password))
}

func TestReplicas(t *testing.T) {
	start := time.Now()
	elapsed := func() string { return time.Since(start).Round(100 * time.Millisecond).String() }
	bin := buildAmrd(t)
	st, dbURL := storetest.New(t)
	token := faultFixtures(t, st, dbURL)
	var org, typ string
	storetest.QueryRow(t, dbURL, "SELECT id::text FROM organizations WHERE name = 'fault'", &org)
	storetest.QueryRow(t, dbURL, "SELECT id::text FROM meter_device_types WHERE name = 'fault'", &typ)

	rs := &replicaSet{t: t, bin: bin, dbURL: dbURL, token: token}
	for i := range 3 {
		rs.start(i)
	}
	t.Logf("%s: three replicas serve", elapsed())

	// Meters: one that never answers (the run on it is held until the replica is
	// killed), and one that reads correctly for the scheduled slots.
	lines := []string{"1.8.0(0012345.678*kWh)", "2.8.0(0000007.250*kWh)"}
	holdSim, holdPort := simulator(t, meterproto.FaultSilent, lines...)
	slotSim, slotPort := simulator(t, meterproto.FaultNone, lines...)

	// 1. A run held by a replica that is killed is run again by another after its
	// lease, once. It goes first: the lease runs out while the rest is checked.
	a := rs.clients[0]
	holdNetif := a.create("/metering/network-interfaces/", map[string]any{"organization": org,
		"static_ip_address": "127.0.0.1", "port": holdPort})
	holdDevice := a.create("/metering/meter-devices/", map[string]any{"organization": org, "name": "hold-m1",
		"protocol": "iec62056-21", "type": typ, "network_interface": holdNetif})
	var invoked map[string]any
	require.Equal(t, http.StatusCreated, rs.clients[1].call("POST", "/metering/amr-tasks/invoke", map[string]any{
		"meter_device": holdDevice, "task_call": "readout", "meter_execution_type": "generic_iec6205621",
		// The meter's silence holds the run until the run's deadline, not the readout's.
		"task_kwargs": map[string]any{"timeout_seconds": 600, "idle_timeout_seconds": 600}}, &invoked), "%v", invoked)
	holdRun := int64(invoked["id"].(float64))
	var held taskRun
	poll(t, 30*time.Second, "a replica claims the invoked run", func() bool {
		runs := runsWhere(t, dbURL, "id = $1", holdRun)
		held = runs[0]
		return held.status == store.RunRunning
	})
	victim := rs.byWorker(held.worker)
	require.NotEqual(t, -1, victim, "the run's worker %q is one of the replicas", held.worker)
	victimPid := rs.procs[victim].cmd.Process.Pid
	rs.procs[victim].kill()
	// Still running when its replica died: the kill landed inside the run.
	runs := runsWhere(t, dbURL, "id = $1", holdRun)
	require.Equal(t, store.RunRunning, runs[0].status, "the run was still held when its replica was killed (run timeout %d s)", replicaRunTimeout)
	holdSim.SetFault(meterproto.FaultNone)
	t.Logf("%s: replica %d (pid %d) killed with the run it held (lease until %s); started again", elapsed(), victim,
		victimPid, held.leaseTo.Format(time.RFC3339))
	rs.start(victim)
	a = rs.clients[0]

	// 2. Scheduled slots that fall due during the test, on the replicas' schedulers. A
	// quarterly task's slot is due at slot + run_offset_seconds; the tasks are given
	// offsets that make their slot (the quarter-hour the test runs in) due 10 to 22 s
	// from now, and are dated from that quarter-hour, as if created at its start (a task
	// runs only slots from its creation on). Times are the database's, as amrd's.
	var dbNow time.Time
	storetest.QueryRow(t, dbURL, "SELECT now()", &dbNow)
	quarter := dbNow.UTC().Truncate(15 * time.Minute)
	sinceQuarter := int(dbNow.Sub(quarter)/time.Second) + 1
	const tasks, devices = 4, 3
	var taskIDs []string
	var taskUUIDs []uuid.UUID
	offsets := map[string]int{}
	for k := range tasks {
		off := sinceQuarter + 10 + 4*k
		id := rs.clients[k%3].create("/metering/amr-tasks/", map[string]any{"organization": org, "name": fmt.Sprintf("slot-%d", k),
			"schedule": "quarterly", "run_offset_seconds": off, "meter_execution_type": "generic_iec6205621", "task_call": "readout"})
		taskIDs = append(taskIDs, id)
		taskUUIDs = append(taskUUIDs, uuid.MustParse(id))
		offsets[id] = off
	}
	// Two tasks reach the devices directly, two through a task group.
	group := a.create("/metering/amr-task-groups/", map[string]any{"organization": org, "name": "slots",
		"tasks": taskIDs[2:]})
	var slotDevices []string
	for d := range devices {
		c := rs.clients[d%3]
		netif := c.create("/metering/network-interfaces/", map[string]any{"organization": org,
			"static_ip_address": "127.0.0.1", "port": slotPort, "can_block": true})
		slotDevices = append(slotDevices, c.create("/metering/meter-devices/", map[string]any{"organization": org,
			"name": fmt.Sprintf("slot-m%d", d), "protocol": "iec62056-21", "type": typ, "network_interface": netif,
			"meter_tasks": taskIDs[:2], "task_groups": []string{group}}))
	}
	storetest.Exec(t, dbURL, "UPDATE amr_tasks SET created_at = $1 WHERE id = ANY($2)", quarter, taskUUIDs)
	lastDue := quarter.Add(time.Duration(sinceQuarter+10+4*(tasks-1)) * time.Second)
	t.Logf("%s: %d quarterly tasks on %d devices, slot %s, due from %s to %s", elapsed(), tasks, devices,
		quarter.Format(time.TimeOnly), quarter.Add(time.Duration(sinceQuarter+10)*time.Second).Format(time.TimeOnly),
		lastDue.Format(time.TimeOnly))

	// 3. Readings posted to the replicas in turn, each batch also to the next replica at
	// the same moment: every reading is stored once, accepted by exactly one of them.
	t.Run("readings through any replica are stored once", func(t *testing.T) {
		const total = 3000
		loads := make([]*load, 3)
		for i := range loads {
			loads[i] = newLoad(rs.procs[i].addr, token, total)
			t.Cleanup(loads[i].client.CloseIdleConnections)
		}
		var mu sync.Mutex
		var accepted, duplicates int
		var wrong []string
		var wg sync.WaitGroup
		batch := 0
		for from := 0; from < total; batch++ {
			size := min(batchSizes[batch%len(batchSizes)], total-from)
			ns := make([]int, size)
			for k := range ns {
				ns[k] = from + k
			}
			from += size
			for _, r := range []int{batch % 3, (batch + 1) % 3} {
				wg.Go(func() {
					a := loads[r].send(ns)
					mu.Lock()
					defer mu.Unlock()
					if a.err != nil || a.status != http.StatusCreated || a.report.Conflicts != 0 || a.report.Staged != 0 ||
						len(a.report.Rejected) != 0 || a.report.Accepted+a.report.Duplicates != len(ns) {
						wrong = append(wrong, fmt.Sprintf("replica %d, %d readings: status %d, %+v, %v", r, len(ns), a.status, a.report, a.err))
						return
					}
					accepted += a.report.Accepted
					duplicates += a.report.Duplicates
				})
			}
			if batch%8 == 7 {
				wg.Wait() // at most 16 requests in flight
			}
		}
		wg.Wait()
		require.Empty(t, wrong)
		require.Equal(t, total, accepted, "each reading accepted by one replica")
		require.Equal(t, total, duplicates, "and a duplicate on the other")
		stored := storedReadings(t, dbURL, total)
		require.Len(t, stored, total)
		for n, v := range stored {
			require.Equal(t, faultValue(n), v, "reading %d", n)
		}
		t.Logf("%s: %d readings in %d batches, each to two replicas at once: stored once each", elapsed(), total, batch)
	})

	t.Run("a device created through one replica takes readings through another at once", func(t *testing.T) {
		reading := func(c *apiClient, minute int) map[string]any {
			var rep map[string]any
			require.Equal(t, http.StatusCreated, c.call("POST", "/metering/new-meter-readings", map[string]any{
				"meter_device_name": "new-m1", "series_name": "1.8.0", "value": fmt.Sprintf("%d.5", minute),
				"timestamp": faultBase.Add(time.Duration(minute) * time.Minute).Format(time.RFC3339)}, &rep), "%v", rep)
			return rep
		}
		// Replica 1 and 2 learn first that the name is unknown (staged, and cached as unknown).
		require.EqualValues(t, 1, reading(rs.clients[1], 0)["staged"])
		require.EqualValues(t, 1, reading(rs.clients[2], 1)["staged"])
		a.create("/metering/meter-devices/", map[string]any{"organization": org, "name": "new-m1",
			"protocol": "iec62056-21", "type": typ})
		for i, c := range rs.clients[1:] {
			rep := reading(c, 2+i)
			require.EqualValues(t, 1, rep["accepted"], "replica %d: %v", i+1, rep)
			require.EqualValues(t, 0, rep["staged"], "replica %d: %v", i+1, rep)
		}
		var n, staged int
		storetest.QueryRow(t, dbURL, `SELECT count(*) FROM meter_readings r JOIN meter_devices d ON d.key = r.device_key
			WHERE d.name = 'new-m1'`, &n)
		storetest.QueryRow(t, dbURL, "SELECT count(*) FROM staged_meter_readings WHERE meter_device_name = 'new-m1'", &staged)
		require.Equal(t, 4, n, "the two staged readings were promoted by the create, the two after it accepted")
		require.Zero(t, staged)
	})

	t.Run("security state is shared", func(t *testing.T) {
		ctx := testCtx(t)
		const password = "correct horse battery"
		user := func(name string, staff bool) string {
			return a.create("/users/", map[string]any{"username": name, "password": password, "is_staff": staff})
		}
		member := func(userID string) string {
			return a.create("/organizations/memberships/", map[string]any{"organization": org, "user": userID, "role": "editor"})
		}
		login := func(c *apiClient, name string) string {
			var out map[string]any
			require.Equal(t, http.StatusCreated, c.as("").call("POST", "/auth/jwt/token/", map[string]any{"username": name,
				"password": password}, &out), "%v", out)
			return "JWT " + out["token"].(string)
		}
		// Asks every replica, each once, and returns their statuses.
		statuses := func(auth string) []int {
			out := make([]int, len(rs.clients))
			for i, c := range rs.clients {
				out[i], _, _ = c.as(auth).send("GET", "/organizations/", nil)
			}
			return out
		}
		ok, denied := []int{200, 200, 200}, []int{401, 401, 401}
		// afterOneSecond waits until a second has passed since a change committed: every
		// replica must have dropped what it cached before it by then.
		afterOneSecond := func(committed time.Time) { time.Sleep(time.Until(committed.Add(time.Second))) }

		t.Run("a revoked token", func(t *testing.T) {
			u, err := uuid.Parse(user("sec-token", true))
			require.NoError(t, err)
			key, err := st.CreateToken(ctx, u)
			require.NoError(t, err)
			require.Equal(t, ok, statuses("Token "+key), "and cached by every replica")
			// No route revokes a token: the operator deletes it.
			storetest.Exec(t, dbURL, "DELETE FROM api_tokens WHERE key_hash = $1", store.TokenHash(key))
			afterOneSecond(time.Now())
			require.Equal(t, denied, statuses("Token "+key))
		})
		t.Run("a deactivated user", func(t *testing.T) {
			staffID := user("sec-staff", true)
			u, err := uuid.Parse(staffID)
			require.NoError(t, err)
			key, err := st.CreateToken(ctx, u)
			require.NoError(t, err)
			editorID := user("sec-editor", false)
			member(editorID)
			jwt := login(rs.clients[2], "sec-editor")
			require.Equal(t, ok, statuses("Token "+key))
			require.Equal(t, ok, statuses(jwt))
			require.Equal(t, ok, statuses(basicAuth("sec-editor", password)))
			for _, id := range []string{staffID, editorID} {
				require.Equal(t, http.StatusOK, a.call("PATCH", "/users/"+id, map[string]any{"is_active": false}, nil))
			}
			committed := time.Now()
			// JWT and Basic read the user on every request: at once.
			require.Equal(t, denied, statuses(jwt))
			require.Equal(t, denied, statuses(basicAuth("sec-editor", password)))
			afterOneSecond(committed)
			require.Equal(t, denied, statuses("Token "+key), "the token cache holds a user a second at most")
		})
		t.Run("a revoked membership", func(t *testing.T) {
			id := user("sec-member", false)
			membership := member(id)
			jwt := login(rs.clients[1], "sec-member")
			require.Equal(t, ok, statuses(jwt))
			require.Equal(t, http.StatusNoContent, a.call("DELETE", "/organizations/memberships/"+membership, nil, nil))
			require.Equal(t, denied, statuses(jwt), "at once")
		})
		t.Run("the login throttle counts failures across replicas", func(t *testing.T) {
			user("sec-guessed", false)
			for i := range 5 {
				status, _, _ := rs.clients[i%3].as(basicAuth("sec-guessed", "guess "+strconv.Itoa(i))).send("GET", "/organizations/", nil)
				require.Equal(t, http.StatusUnauthorized, status, "guess %d on replica %d", i+1, i%3)
			}
			// Five failures over three replicas: the sixth attempt is refused on every
			// one, even with the right password, and the JWT login too.
			for i, c := range rs.clients {
				status, header, body := c.as(basicAuth("sec-guessed", password)).send("GET", "/organizations/", nil)
				require.Equal(t, http.StatusTooManyRequests, status, "replica %d: %s", i, body)
				secs, err := strconv.Atoi(header.Get("Retry-After"))
				require.NoError(t, err, "Retry-After %q", header.Get("Retry-After"))
				require.True(t, secs > 0 && secs <= 15*60, "Retry-After %d", secs)
				var out map[string]any
				require.Equal(t, http.StatusTooManyRequests, c.as("").call("POST", "/auth/jwt/token/",
					map[string]any{"username": "sec-guessed", "password": password}, &out), "replica %d: %v", i, out)
			}
			var rows int
			storetest.QueryRow(t, dbURL, "SELECT count(*) FROM login_failures", &rows)
			require.Equal(t, 2*(5+3), rows, "two rows a failure (user and address): these five guesses and the deactivated "+
				"editor's three attempts; successes and refusals write nothing")
		})
	})

	// 4. Back to the runs. The killed replica's run is claimed again once its lease ran
	// out, by a replica alive, and read once.
	t.Run("the killed replica's run is run again after its lease, once", func(t *testing.T) {
		var again taskRun
		poll(t, time.Until(held.leaseTo.Add(90*time.Second)), "the held run finished again", func() bool {
			again = runsWhere(t, dbURL, "id = $1", holdRun)[0]
			return again.status == store.RunSucceeded || again.status == store.RunFailed
		})
		require.Equal(t, store.RunSucceeded, again.status)
		require.Equal(t, 2, again.attempts, "the dead replica's claim and one more")
		by := rs.byWorker(again.worker)
		require.NotEqual(t, -1, by, "worker %q is a live replica", again.worker)
		require.NotContains(t, again.worker, ":"+strconv.Itoa(victimPid))
		// Both times are read on replicas' database clocks, each within a few ms of the
		// database's own: hence the 100 ms.
		require.False(t, again.startedAt.Before(held.leaseTo.Add(-100*time.Millisecond)),
			"claimed again at %s, not before the lease ended at %s", again.startedAt, held.leaseTo)
		require.Equal(t, 1, holdSim.Sessions(), "the meter was read once")
		t.Logf("%s: the held run ran again on replica %d, %s after its lease ended", elapsed(), by,
			again.startedAt.Sub(*held.leaseTo).Round(10*time.Millisecond))
	})

	t.Run("every slot runs once across replicas", func(t *testing.T) {
		want := tasks * devices
		poll(t, time.Until(lastDue.Add(60*time.Second)), fmt.Sprintf("%d slot runs succeeded", want), func() bool {
			n := len(runsWhere(t, dbURL, "task_id = ANY($1) AND status IN ('succeeded', 'failed')", taskUUIDs))
			return n >= want
		})
		// Two more planning rounds (5 s each) after the last one was due: nothing more is planned.
		time.Sleep(time.Until(lastDue.Add(11 * time.Second)))
		runs := runsWhere(t, dbURL, "task_id = ANY($1)", taskUUIDs)
		require.Len(t, runs, want, "one run a task and device")
		byReplica := map[int]int{}
		seen := map[string]bool{}
		for _, r := range runs {
			k := r.task.String() + "/" + r.device.String()
			require.False(t, seen[k], "task %s on device %s planned twice", r.task, r.device)
			seen[k] = true
			require.Equal(t, store.RunSucceeded, r.status, "%s", k)
			require.Equal(t, 1, r.attempts, "%s", k)
			require.True(t, r.slot.Equal(quarter), "%s: slot %s", k, r.slot)
			require.True(t, r.runAt.Equal(quarter.Add(time.Duration(offsets[r.task.String()])*time.Second)), "%s: run_at %s", k, r.runAt)
			// Planned on the database's clock: not before it was due by the database's
			// own now() (the row's created_at), give or take the clock's reading.
			require.False(t, r.createdAt.Before(r.runAt.Add(-time.Second)), "%s planned at %s, due %s", k, r.createdAt, r.runAt)
			require.False(t, r.startedAt.Before(r.runAt), "%s started at %s, due %s", k, r.startedAt, r.runAt)
			by := rs.byWorker(r.worker)
			require.NotEqual(t, -1, by, "worker %q", r.worker)
			byReplica[by]++
		}
		require.Equal(t, want, slotSim.Sessions(), "each slot read the meter once")
		var readings int
		storetest.QueryRow(t, dbURL, `SELECT count(*) FROM meter_readings r JOIN meter_devices d ON d.key = r.device_key
			WHERE d.name LIKE 'slot-m%'`, &readings)
		require.Equal(t, want*2, readings, "two series a run, dated by the run's time")
		var blocked int
		storetest.QueryRow(t, dbURL, "SELECT count(*) FROM network_interfaces WHERE is_blocked", &blocked)
		require.Zero(t, blocked, "every interface block was released")
		t.Logf("%s: %d slot runs, each once; executed by replica: %v", elapsed(), want, byReplica)
	})

	rs.requireHealthy(t)
	t.Logf("done in %s", elapsed())
}
