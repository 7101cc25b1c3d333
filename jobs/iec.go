package jobs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/amrd/amrd/ingest"
	"github.com/amrd/amrd/meterproto"
	"github.com/amrd/amrd/store"
)

// Submitter takes readings into the ingestion pipeline; *ingest.Pipeline satisfies it.
type Submitter interface {
	Submit(ctx context.Context, scope store.Scope, req *ingest.Request) (ingest.Report, error)
}

// IEC is the built-in executor of generic_iec6205621 runs: a mode C data readout of the
// device over TCP (its network interface's FQDN, else static IP, else SIM IP, at its
// port), whose data sets become readings of the series they match by OBIS code, taken in
// through the ingestion pipeline (validation, CT/VT and idempotency apply). Every
// task_call performs the readout: it is the one thing this protocol's collector does.
//
// task_kwargs may tune the session: timeout_seconds (whole readout, default 30),
// idle_timeout_seconds (a silent meter, default 5), wake_up (true: NUL bytes first, for
// battery meters), echo (true: a half-duplex optical head echoes our bytes).
type IEC struct {
	Ingest Submitter
	// DefaultZone reads the meter's clock of a device without a config
	// (DEFAULT_METER_TIMEZONE); nil is UTC.
	DefaultZone *time.Location
}

// iecResult is what a run stores as its result.
type iecResult struct {
	MeterIdent      string        `json:"meter_ident"`
	Timestamp       time.Time     `json:"timestamp"`
	TimestampSource string        `json:"timestamp_source"` // "meter_clock" or "run"
	ClockError      string        `json:"meter_clock_error,omitempty"`
	DataSets        int           `json:"data_sets"`
	Readings        ingest.Report `json:"readings"`
	// Series lists, per reading of the report (its index), the series it was for.
	Series []string `json:"series"`
	// Unmatched are the data sets' addresses that match no series of the config.
	Unmatched []string `json:"unmatched"`
}

// Execute reads the meter and takes in its readings.
func (e IEC) Execute(ctx context.Context, run store.TaskRun, target store.RunTarget) ([]byte, error) {
	opt, err := iecOptions(run.TaskKwargs)
	if err != nil {
		return nil, err
	}
	opt.Address = target.IECAddress
	switch {
	case target.InterfaceID == nil:
		return nil, errors.New("the meter device has no network interface to reach it through")
	case target.Host == "":
		return nil, errors.New("the meter device's network interface has no FQDN, static IP address or SIM IP address")
	case target.Port <= 0 || target.Port > 65535:
		return nil, errors.New("the meter device's network interface has no port")
	}
	addr := net.JoinHostPort(target.Host, strconv.Itoa(target.Port))
	ro, err := meterproto.ReadoutTCP(ctx, addr, opt)
	if err != nil {
		return nil, fmt.Errorf("IEC 62056-21 readout of %s: %w", addr, err)
	}

	loc := e.DefaultZone
	if target.TimeZone != "" {
		if loc, err = time.LoadLocation(target.TimeZone); err != nil {
			return nil, fmt.Errorf("the device config's time zone %q: %w", target.TimeZone, err)
		}
	}
	res := iecResult{MeterIdent: "/" + ro.Ident.Manufacturer + string(ro.Ident.BaudChar) + ro.Ident.Enhanced + ro.Ident.Ident, DataSets: len(ro.Sets), Unmatched: []string{}, Series: []string{}}
	stamp := ingest.Stamp{T: run.RunAt.UTC(), HasOffset: true}
	res.Timestamp, res.TimestampSource = stamp.T, "run"
	clock, ok, err := meterproto.MeterClock(ro.Sets, loc)
	if err != nil {
		// A clock that cannot be read (a format of its own, a time that DST skips or
		// repeats) must not cost the readings: they take the run's time, and the result
		// says why.
		res.ClockError = "the meter's clock (0.9.1, 0.9.2) was not used: " + err.Error()
	}
	if ok && err == nil {
		// A wall-clock time without offset: the pipeline reads it in the device config's
		// zone, as it reads any such timestamp, and refuses DST gaps and repeats.
		stamp = ingest.Stamp{T: time.Date(clock.Year(), clock.Month(), clock.Day(), clock.Hour(), clock.Minute(),
			clock.Second(), 0, time.UTC)}
		res.Timestamp, res.TimestampSource = clock, "meter_clock"
	}

	series := seriesCodes(target.Series)
	var req ingest.Request // the matched data sets' readings: the one at position i is of res.Series[i]
	var bad []string
	for _, ds := range ro.Sets {
		if ds.OBISErr != nil || len(ds.Values) == 0 {
			if ds.Address != "" {
				res.Unmatched = append(res.Unmatched, ds.Address)
			}
			continue
		}
		matched := false
		for _, s := range series {
			if !s.code.Matches(ds.OBIS) {
				continue
			}
			matched = true
			r := ingest.Reading{Device: target.DeviceName, Series: s.name, Time: stamp}
			if msg := ingest.ParseDecimal(ds.Values[0].Value, &r.Value); msg != "" {
				bad = append(bad, fmt.Sprintf("%s(%s): %s", ds.Address, ds.Values[0].Raw, msg))
				continue
			}
			req.Add(r)
			res.Series = append(res.Series, s.name)
		}
		if !matched {
			res.Unmatched = append(res.Unmatched, ds.Address)
		}
	}
	n := len(req.Readings())
	if n == 0 {
		if len(bad) > 0 {
			return nil, fmt.Errorf("no reading could be taken from the telegram: %s", strings.Join(bad, "; "))
		}
		return nil, fmt.Errorf("no data set of the telegram matches a series of the device's config (config series: %s; data sets: %s)",
			listOrNone(target.Series), listOrNone(res.Unmatched))
	}
	rep, err := e.Ingest.Submit(ctx, store.AllOrgs, &req)
	if err != nil {
		return nil, fmt.Errorf("taking in %d readings: %w", n, err)
	}
	res.Readings = rep
	out, err := json.Marshal(res)
	if err != nil {
		return nil, fmt.Errorf("encoding the run's result: %w", err)
	}
	if rep.Accepted+rep.Duplicates+rep.Staged == 0 {
		return out, fmt.Errorf("none of the %d readings was taken: %d rejected, %d in conflict with stored values",
			n, len(rep.Rejected), rep.Conflicts)
	}
	if len(bad) > 0 {
		// Some data sets had unusable values; the rest were taken. The result says which.
		res.Unmatched = append(res.Unmatched, bad...)
		out, _ = json.Marshal(res)
	}
	return out, nil
}

func listOrNone(l []string) string {
	if len(l) == 0 {
		return "none"
	}
	return strings.Join(l, ", ")
}

type seriesCode struct {
	name string
	code meterproto.OBIS
}

// seriesCodes reads the series names that are OBIS codes (1.8.0, 1-0:1.8.0*255); other
// names cannot match a data set.
func seriesCodes(names []string) []seriesCode {
	out := make([]seriesCode, 0, len(names))
	for _, n := range names {
		if c, err := meterproto.ParseOBIS(n); err == nil {
			out = append(out, seriesCode{name: n, code: c})
		}
	}
	return out
}

// Bounds of the readout's task_kwargs. An hour is far above any readout (a 64 KiB block
// at 300 Bd takes 36 minutes, the slowest real case); the run's own deadline
// (AMRD_AMR_RUN_TIMEOUT_SECONDS) still applies.
const maxKwargSeconds = 3600

// iecOptions reads the session options of task_kwargs; unknown keys are left to others.
func iecOptions(kwargs json.RawMessage) (meterproto.ReadoutOptions, error) {
	var opt meterproto.ReadoutOptions
	if len(kwargs) == 0 || string(kwargs) == "null" {
		return opt, nil
	}
	var kw map[string]json.RawMessage
	if err := json.Unmarshal(kwargs, &kw); err != nil {
		return opt, errors.New("task_kwargs: must be a JSON object")
	}
	seconds := func(key string, dst *time.Duration) error {
		raw, ok := kw[key]
		if !ok || string(raw) == "null" {
			return nil
		}
		var v float64
		if err := json.Unmarshal(raw, &v); err != nil || v <= 0 || v > maxKwargSeconds {
			return fmt.Errorf("task_kwargs.%s: must be a number of seconds above 0, at most %d", key, maxKwargSeconds)
		}
		*dst = time.Duration(v * float64(time.Second))
		return nil
	}
	flag := func(key string, dst *bool) error {
		raw, ok := kw[key]
		if !ok || string(raw) == "null" {
			return nil
		}
		if err := json.Unmarshal(raw, dst); err != nil {
			return fmt.Errorf("task_kwargs.%s: must be true or false", key)
		}
		return nil
	}
	return opt, errors.Join(seconds("timeout_seconds", &opt.Timeout), seconds("idle_timeout_seconds", &opt.IdleTimeout),
		flag("wake_up", &opt.WakeUp), flag("echo", &opt.Echo))
}
