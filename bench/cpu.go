package bench

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// cpuSample is CPU time consumed so far, in seconds: by amrd (the serve process), by
// this process (the load client, or the COPY and naive clients), by every PostgreSQL
// process on the machine, and by the whole machine (busy and idle). Two samples around a
// case tell where its CPU went, per reading: on 2 cores shared by all three, the case
// is bound by their sum, and a change that moves a ratio shows up here first and with
// far less noise than in readings/s.
type cpuSample struct {
	amrd, client, postgres float64
	busy, idle             float64
	ok                     bool // /proc was readable (Linux)
}

const clockTicks = 100.0 // USER_HZ: 100 on every Linux architecture Go supports

// takeCPU samples the CPU times; amrdPID 0 means no amrd runs.
func takeCPU(amrdPID int) cpuSample {
	var s cpuSample
	stat, err := os.ReadFile("/proc/stat")
	if err != nil {
		return s
	}
	// "cpu  user nice system idle iowait irq softirq steal ..."
	line, _, _ := bytes.Cut(stat, []byte{'\n'})
	f := strings.Fields(string(line))
	for i := 1; i < len(f) && i <= 8; i++ {
		v, _ := strconv.ParseFloat(f[i], 64)
		if i == 4 || i == 5 { // idle, iowait
			s.idle += v / clockTicks
		} else {
			s.busy += v / clockTicks
		}
	}
	s.client = procCPU(os.Getpid())
	if amrdPID > 0 {
		s.amrd = procCPU(amrdPID)
	}
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	for _, d := range dirs {
		comm, err := os.ReadFile(d + "/comm")
		if err != nil || strings.TrimSpace(string(comm)) != "postgres" {
			continue
		}
		pid, _ := strconv.Atoi(filepath.Base(d))
		s.postgres += procCPU(pid)
	}
	s.ok = true
	return s
}

// procCPU is a process's user and system time, in seconds (0 when it is gone).
func procCPU(pid int) float64 {
	raw, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0
	}
	// The fields after the command name, which is in parentheses and may hold spaces.
	i := bytes.LastIndexByte(raw, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(string(raw[i+1:]))
	if len(f) < 13 {
		return 0
	}
	u, _ := strconv.ParseFloat(f[11], 64) // utime, field 14
	k, _ := strconv.ParseFloat(f[12], 64) // stime, field 15
	return (u + k) / clockTicks
}

// CPU is where a case's CPU went, in microseconds a reading, and how busy the machine
// was (share of all cores, 0 to 1).
type CPU struct {
	AmrdUS     float64 `json:"amrd_us_per_reading,omitempty"`
	ClientUS   float64 `json:"client_us_per_reading"`
	PostgresUS float64 `json:"postgres_us_per_reading"`
	Busy       float64 `json:"machine_busy"`
}

// perReading turns two samples into CPU a reading; PostgreSQL backends that ended
// between them are missed (each case's connections live until after its last sample).
func perReading(a, b cpuSample, rows int64) *CPU {
	if !a.ok || !b.ok || rows <= 0 {
		return nil
	}
	us := func(x, y float64) float64 { return max(0, y-x) * 1e6 / float64(rows) }
	c := &CPU{AmrdUS: us(a.amrd, b.amrd), ClientUS: us(a.client, b.client), PostgresUS: us(a.postgres, b.postgres)}
	if total := (b.busy - a.busy) + (b.idle - a.idle); total > 0 {
		c.Busy = (b.busy - a.busy) / total
	}
	return c
}
