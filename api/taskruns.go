package api

import (
	"context"
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/google/uuid"

	"github.com/amrd/amrd/ingest"
	"github.com/amrd/amrd/meterproto"
	"github.com/amrd/amrd/store"
)

// taskRunStore is what the AMR task run routes call: invoking a task, listing runs, and
// the external worker protocol (claim, heartbeat, result).
type taskRunStore interface {
	InvokeRun(context.Context, store.Scope, store.RunInput) (store.TaskRun, error)
	ListTaskRuns(context.Context, store.Scope, store.Filter, store.Page) ([]store.TaskRun, int, error)
	GetTaskRun(context.Context, store.Scope, int64) (store.TaskRun, error)
	ClaimTaskRuns(context.Context, store.Scope, store.Claim) ([]store.TaskRun, error)
	ExtendTaskRun(ctx context.Context, sc store.Scope, id int64, token uuid.UUID, now time.Time, lease time.Duration) (store.TaskRun, error)
	FinishTaskRun(ctx context.Context, sc store.Scope, id int64, token uuid.UUID, o store.RunOutcome) (store.TaskRun, error)
}

// Lease bounds of a claim, in seconds: at least 10 s (a worker heartbeats well within
// it), at most a day (a claim that outlives its worker by a day holds the run too long);
// 300 s by default covers a slow optical read-out of a gas volume corrector.
const (
	defaultLeaseSeconds = 300
	minLeaseSeconds     = 10
	maxLeaseSeconds     = 86400
)

// maxRunErrorLen bounds the error text a worker reports (characters).
const maxRunErrorLen = 2000

// invokeAmrTask answers POST /v1/metering/amr-tasks/invoke: it queues one run of a task
// call on a meter device, due run_offset_seconds from now (a negative offset runs at
// once: a run never starts before its time, and "before now" is now).
func (s *Server) invokeAmrTask(c *fiber.Ctx) error {
	p, b, err := writerBody(c)
	if err != nil {
		return err
	}
	in, offset, err := decodeInvoke(b)
	if err != nil {
		return err
	}
	in.MaxAttempts = s.cfg.RunMaxAttempts
	in.RunAt = s.cfg.now().Add(time.Duration(max(offset, 0)) * time.Second)
	sc := writeScope(p)
	if in.MeterExecutionType == "" {
		if in.MeterExecutionType, err = s.deviceExecutionType(c.UserContext(), sc, in.MeterDeviceID); err != nil {
			return err
		}
	}
	run, err := s.st.InvokeRun(c.UserContext(), sc, in)
	if err != nil {
		return err
	}
	return c.Status(fiber.StatusCreated).JSON(run)
}

// decodeInvoke reads an invoke body; an execution type left out stays "".
func decodeInvoke(b body) (store.RunInput, int64, error) {
	errs := FieldErrors{}
	var in store.RunInput
	var offset int64
	b.id(errs, "meter_device", &in.MeterDeviceID, true)
	b.str(errs, "task_call", &in.TaskCall, true, 1, 50)
	b.jsonObject(errs, "task_kwargs", &in.TaskKwargs)
	b.integer(errs, "run_offset_seconds", &offset, minInt32, maxInt32)
	b.oneOf(errs, "meter_execution_type", &in.MeterExecutionType, false, meterproto.ExecutionTypes...)
	return in, offset, errs.orNil()
}

// deviceExecutionType is the execution type of a device's protocol, for an invoke that
// names none. A device out of scope is a 400 on meter_device, as InvokeRun answers it.
func (s *Server) deviceExecutionType(ctx context.Context, sc store.Scope, id uuid.UUID) (string, error) {
	dev, err := s.st.GetMeterDevice(ctx, sc, id)
	if errors.Is(err, store.ErrNotFound) {
		return "", &store.FieldError{Field: "meter_device", Msg: "Invalid pk \"" + id.String() + "\" - object does not exist."}
	}
	if err != nil {
		return "", err
	}
	t, ok := meterproto.ProtocolExecutionType(dev.Protocol)
	if !ok {
		return "", FieldErrors{"meter_execution_type": {"This field is required."}}
	}
	return t, nil
}

var runStatuses = []string{store.RunPending, store.RunRunning, store.RunSucceeded, store.RunFailed, store.RunCancelled}

var taskRunFilters = map[string]filterKind{
	"task":                 filterUUID,
	"meter_device":         filterUUID,
	"status":               filterChoice(runStatuses...),
	"trigger":              filterChoice(store.TriggerSchedule, store.TriggerInvoke),
	"meter_execution_type": filterChoice(meterproto.ExecutionTypes...),
	"start_time":           filterTime,
	"end_time":             filterTime,
}

// listTaskRuns answers GET /v1/metering/amr-task-runs: runs in the caller's scope,
// newest first (by run_at).
func (s *Server) listTaskRuns(c *fiber.Ctx) error {
	p, err := pageParams(c)
	if err != nil {
		return err
	}
	f, err := parseFilters(c, taskRunFilters)
	if err != nil {
		return err
	}
	list, n, err := s.st.ListTaskRuns(c.UserContext(), current(c).scope(), f, p)
	if err != nil {
		return err
	}
	return c.JSON(newPage(c, p, n, list))
}

func (s *Server) getTaskRun(c *fiber.Ctx) error {
	id, err := pathInt(c)
	if err != nil {
		return err
	}
	return getOne(c, id, s.st.GetTaskRun)
}

// claimedRun is a run just claimed, with the token that its claimer's heartbeats and
// result must carry. Only the claim answers the token.
type claimedRun struct {
	store.TaskRun
	ClaimToken uuid.UUID `json:"claim_token"`
}

// claimTaskRun answers POST /v1/metering/amr-task-runs/claim: an external worker takes
// the oldest due pending run of its execution type in the organizations it may write,
// 200 with it and its claim token, or 204 when none is due. No run is claimed twice.
func (s *Server) claimTaskRun(c *fiber.Ctx) error {
	p, b, err := writerBody(c)
	if err != nil {
		return err
	}
	cl, err := decodeClaim(b)
	if err != nil {
		return err
	}
	cl.Limit, cl.Now = 1, s.cfg.now()
	runs, err := s.st.ClaimTaskRuns(c.UserContext(), writeScope(p), cl)
	if err != nil {
		return err
	}
	if len(runs) == 0 {
		return c.SendStatus(fiber.StatusNoContent)
	}
	if runs[0].ClaimToken == nil {
		return errors.New("claiming an AMR task run: the store answered no claim token")
	}
	return c.JSON(claimedRun{TaskRun: runs[0], ClaimToken: *runs[0].ClaimToken})
}

func decodeClaim(b body) (store.Claim, error) {
	errs := FieldErrors{}
	var typ string
	cl := store.Claim{}
	b.oneOf(errs, "meter_execution_type", &typ, true, meterproto.ExecutionTypes...)
	b.str(errs, "worker", &cl.Worker, true, 1, 100)
	cl.Lease = b.lease(errs)
	cl.Types = []string{typ}
	return cl, errs.orNil()
}

// lease reads lease_seconds (default 300).
func (b body) lease(errs FieldErrors) time.Duration {
	secs := int64(defaultLeaseSeconds)
	b.integer(errs, "lease_seconds", &secs, minLeaseSeconds, maxLeaseSeconds)
	return time.Duration(secs) * time.Second
}

// heartbeatTaskRun answers POST /v1/metering/amr-task-runs/{id}/heartbeat: the lease of
// a run held by the claim token moves to now + lease_seconds. A claim that was lost
// (expired, or the run reported) is 409.
func (s *Server) heartbeatTaskRun(c *fiber.Ctx) error {
	run, b, err := s.runToWrite(c)
	if err != nil {
		return err
	}
	errs := FieldErrors{}
	var token uuid.UUID
	b.id(errs, "claim_token", &token, true)
	lease := b.lease(errs)
	if err := errs.orNil(); err != nil {
		return err
	}
	out, err := s.st.ExtendTaskRun(c.UserContext(), writeScope(current(c)), run.ID, token, s.cfg.now(), lease)
	if err != nil {
		return err
	}
	return c.JSON(out)
}

// runToWrite reads the run of the path, as the caller sees it, and the request body: a
// run out of the caller's scope is 404, one of an organization it only reads is 403 (as
// every write answers).
func (s *Server) runToWrite(c *fiber.Ctx) (store.TaskRun, body, error) {
	id, err := pathInt(c)
	if err != nil {
		return store.TaskRun{}, nil, err
	}
	p := current(c)
	if !p.editsAny() {
		return store.TaskRun{}, nil, errForbidden
	}
	run, err := s.st.GetTaskRun(c.UserContext(), p.scope(), id)
	if err != nil {
		return store.TaskRun{}, nil, err
	}
	if !p.canWriteRow(run.OrganizationID) {
		return store.TaskRun{}, nil, errForbidden
	}
	b, err := readBody(c)
	return run, b, err
}

// runResult is a worker's report of a run.
type runResult struct {
	token    uuid.UUID
	outcome  store.RunOutcome
	readings []json.RawMessage
}

// reportTaskRun answers POST /v1/metering/amr-task-runs/{id}/result: the worker's
// readings go through the reading pipeline (as new-meter-readings, for the run's device),
// then the run is finished with the worker's status, error and result, to which the
// readings' report is added under "readings". If the pipeline refuses the readings as a
// whole (busy, shutting down, database down) the answer is 503 and the run stays
// running: the worker re-sends, and readings already stored come back as duplicates.
func (s *Server) reportTaskRun(c *fiber.Ctx) error {
	run, b, err := s.runToWrite(c)
	if err != nil {
		return err
	}
	in, err := decodeRunResult(b, s.cfg.MaxReadingsPerRequest)
	if err != nil {
		return err
	}
	if run.Status != store.RunRunning {
		return errRunNotRunning // checked again when it is finished; this saves ingesting a late re-send
	}
	sc := writeScope(current(c))
	rep, err := s.ingestRunReadings(c.UserContext(), sc, run.MeterDeviceName, in.readings)
	if err != nil {
		return err
	}
	if in.outcome.Result, err = withReport(in.outcome.Result, rep); err != nil {
		return err
	}
	in.outcome.Now = s.cfg.now()
	out, err := s.st.FinishTaskRun(c.UserContext(), sc, run.ID, in.token, in.outcome)
	if err != nil {
		return err
	}
	return c.JSON(out)
}

// errRunNotRunning answers a result for a run that is not running: reported already, or
// its claim expired and it went back to the queue (or failed).
var errRunNotRunning = errStatus(fiber.StatusConflict,
	"This run is not running under this claim: its lease ran out, or it was reported already.")

// decodeRunResult reads a result body. Only its shape is checked here; each reading is
// checked by ingestRunReadings, as new-meter-readings checks its items.
func decodeRunResult(b body, maxReadings int) (runResult, error) {
	errs := FieldErrors{}
	var in runResult
	b.id(errs, "claim_token", &in.token, true)
	b.oneOf(errs, "status", &in.outcome.Status, true, store.RunSucceeded, store.RunFailed)
	var text *string
	b.nstr(errs, "error", &text, 0, maxRunErrorLen)
	if text != nil {
		in.outcome.Error = strings.TrimSpace(*text)
	}
	switch {
	case len(errs["status"]) > 0 || len(errs["error"]) > 0:
	case in.outcome.Status == store.RunFailed && in.outcome.Error == "":
		errs.add("error", "This field is required when status is \"failed\": say why the run failed.")
	case in.outcome.Status == store.RunSucceeded && in.outcome.Error != "":
		errs.add("error", "Only a failed run has an error; leave this field out when status is \"succeeded\".")
	}
	b.jsonObject(errs, "result", &in.outcome.Result)
	if in.outcome.Result != nil && len(errs["result"]) == 0 {
		var m map[string]json.RawMessage
		if json.Unmarshal(in.outcome.Result, &m) == nil && m["readings"] != nil {
			errs.add("result", "The key \"readings\" is reserved: amrd stores the report of the run's readings under it.")
		}
	}
	if raw, ok := b["readings"]; ok && !b.isNull("readings") {
		if err := json.Unmarshal(raw, &in.readings); err != nil {
			errs.add("readings", "Expected a list of items but got type \""+jsonType(raw)+"\".")
		} else if len(in.readings) > maxReadings {
			errs.add("readings", "Ensure this field has no more than "+strconv.Itoa(maxReadings)+" elements.")
		}
	}
	return in, errs.orNil()
}

// ingestRunReadings takes a run's readings in through the pipeline. Their device is the
// run's: an item that names none gets it, an item that names another is rejected. The
// report lists every rejected item by its index in the readings array.
func (s *Server) ingestRunReadings(ctx context.Context, sc store.Scope, device string, items []json.RawMessage) (ingest.Report, error) {
	rep := ingest.Report{Rejected: []ingest.ItemError{}}
	if len(items) == 0 {
		return rep, nil
	}
	raw, err := json.Marshal(withDevice(items, device))
	if err != nil {
		return rep, err
	}
	req, err := ingest.Decode(raw, len(items))
	var re *ingest.RequestError
	if errors.As(err, &re) { // not expected: the items are a non-empty array of JSON values
		return rep, FieldErrors{"readings": {re.Msg}}
	}
	req.Refuse(func(r *ingest.Reading) *ingest.ItemError {
		if r.Device == device {
			return nil
		}
		return &ingest.ItemError{Errors: map[string][]string{"meter_device_name": {
			"This reading is for meter device \"" + r.Device + "\"; this run reads \"" + device + "\": leave the name out or send the run's."}}}
	})
	if s.ingest == nil {
		if len(req.Readings()) > 0 {
			return rep, errStatus(fiber.StatusServiceUnavailable, "Reading ingestion is not running.")
		}
		return ingest.Report{Rejected: req.Merge(nil)}, nil
	}
	rep, err = s.ingest.Submit(ctx, sc, req)
	if err != nil {
		return rep, ingestError(err)
	}
	return rep, nil
}

// withDevice gives each reading object that names no device (neither meter_device_name
// nor its alias meter, or both null) the run's device. Other items are left as they are
// for the decoder to judge.
func withDevice(items []json.RawMessage, device string) []json.RawMessage {
	name, _ := json.Marshal(device)
	out := make([]json.RawMessage, len(items))
	for i, raw := range items {
		out[i] = raw
		var m map[string]json.RawMessage
		if json.Unmarshal(raw, &m) != nil || m == nil {
			continue
		}
		if named(m, "meter_device_name") || named(m, "meter") {
			continue
		}
		delete(m, "meter")
		m["meter_device_name"] = name
		if v, err := json.Marshal(m); err == nil {
			out[i] = v
		}
	}
	return out
}

func named(m map[string]json.RawMessage, f string) bool {
	v, ok := m[f]
	return ok && string(v) != "null"
}

// withReport adds the readings' report to a worker's result object (nil: none).
func withReport(result json.RawMessage, rep ingest.Report) (json.RawMessage, error) {
	m := map[string]json.RawMessage{}
	if result != nil {
		if err := json.Unmarshal(result, &m); err != nil {
			return nil, err
		}
	}
	r, err := json.Marshal(rep)
	if err != nil {
		return nil, err
	}
	m["readings"] = r
	return json.Marshal(m)
}
