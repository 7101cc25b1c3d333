package api

import (
	"context"
	"time"

	"github.com/google/uuid"

	"github.com/amrd/amrd/store"
)

// fakeStore's answers for meter devices and AMR task runs, so that FuzzRequest reaches
// the decoders of invoke and of the external worker protocol.

func (f fakeStore) GetMeterDevice(context.Context, store.Scope, uuid.UUID) (store.MeterDevice, error) {
	return store.MeterDevice{Protocol: "lis-200"}, f.err
}
func (f fakeStore) InvokeRun(_ context.Context, _ store.Scope, in store.RunInput) (store.TaskRun, error) {
	return store.TaskRun{MeterDeviceID: in.MeterDeviceID, RunAt: in.RunAt, TaskCall: in.TaskCall}, f.err
}
func (f fakeStore) ListTaskRuns(context.Context, store.Scope, store.Filter, store.Page) ([]store.TaskRun, int, error) {
	return nil, 0, f.err
}
func (f fakeStore) GetTaskRun(context.Context, store.Scope, int64) (store.TaskRun, error) {
	return store.TaskRun{Status: store.RunRunning, MeterDeviceName: "m-1"}, f.err
}
func (f fakeStore) ClaimTaskRuns(context.Context, store.Scope, store.Claim) ([]store.TaskRun, error) {
	return nil, f.err
}
func (f fakeStore) ExtendTaskRun(context.Context, store.Scope, int64, uuid.UUID, time.Time, time.Duration) (store.TaskRun, error) {
	return store.TaskRun{}, f.err
}
func (f fakeStore) FinishTaskRun(_ context.Context, _ store.Scope, _ int64, _ uuid.UUID, o store.RunOutcome) (store.TaskRun, error) {
	return store.TaskRun{Status: o.Status, Result: o.Result}, f.err
}
