package api

import (
	"context"
	"time"

	"github.com/google/uuid"

	"github.com/amrd/amrd/store"
)

// fakeStore's answers for network interfaces, reading series, device configs and device
// types, so that FuzzRequest reaches their decoders.

func (f fakeStore) ListNetworkInterfaces(context.Context, store.Scope, store.Filter, store.Page) ([]store.NetworkInterface, int, error) {
	return nil, 0, f.err
}
func (f fakeStore) GetNetworkInterface(context.Context, store.Scope, uuid.UUID) (store.NetworkInterface, error) {
	return store.NetworkInterface{}, f.err
}
func (f fakeStore) CreateNetworkInterface(_ context.Context, in store.NetworkInterface) (store.NetworkInterface, error) {
	return in, f.err
}
func (f fakeStore) UpdateNetworkInterface(_ context.Context, _ store.Scope, _ uuid.UUID, in store.NetworkInterface) (store.NetworkInterface, error) {
	return in, f.err
}
func (f fakeStore) DeleteNetworkInterface(context.Context, store.Scope, uuid.UUID) error {
	return f.err
}

func (f fakeStore) ListMeterReadingSeries(context.Context, store.Scope, store.Filter, store.Page) ([]store.MeterReadingSeries, int, error) {
	return nil, 0, f.err
}
func (f fakeStore) GetMeterReadingSeries(context.Context, store.Scope, uuid.UUID) (store.MeterReadingSeries, error) {
	return store.MeterReadingSeries{SIMultiplier: store.DecimalOf(1)}, f.err
}
func (f fakeStore) CreateMeterReadingSeries(_ context.Context, in store.MeterReadingSeries) (store.MeterReadingSeries, error) {
	return in, f.err
}
func (f fakeStore) UpdateMeterReadingSeries(_ context.Context, _ store.Scope, _ uuid.UUID, in store.MeterReadingSeries) (store.MeterReadingSeries, error) {
	return in, f.err
}
func (f fakeStore) DeleteMeterReadingSeries(context.Context, store.Scope, uuid.UUID) error {
	return f.err
}

func (f fakeStore) ListMeterDeviceConfigs(context.Context, store.Scope, store.Filter, store.Page) ([]store.MeterDeviceConfig, int, error) {
	return nil, 0, f.err
}
func (f fakeStore) GetMeterDeviceConfig(context.Context, store.Scope, uuid.UUID) (store.MeterDeviceConfig, error) {
	return store.MeterDeviceConfig{Series: []uuid.UUID{}, Timezone: "UTC"}, f.err
}
func (f fakeStore) CreateMeterDeviceConfig(_ context.Context, in store.MeterDeviceConfig) (store.MeterDeviceConfig, error) {
	return in, f.err
}
func (f fakeStore) UpdateMeterDeviceConfig(_ context.Context, _ store.Scope, _ uuid.UUID, in store.MeterDeviceConfig) (store.MeterDeviceConfig, error) {
	return in, f.err
}
func (f fakeStore) DeleteMeterDeviceConfig(context.Context, store.Scope, uuid.UUID) error {
	return f.err
}

func (f fakeStore) ListMeterDeviceTypes(context.Context, store.Scope, store.Filter, store.Page) ([]store.MeterDeviceType, int, error) {
	return nil, 0, f.err
}
func (f fakeStore) GetMeterDeviceType(context.Context, store.Scope, uuid.UUID) (store.MeterDeviceType, error) {
	return store.MeterDeviceType{}, f.err
}
func (f fakeStore) CreateMeterDeviceType(_ context.Context, in store.MeterDeviceType) (store.MeterDeviceType, error) {
	return in, f.err
}
func (f fakeStore) UpdateMeterDeviceType(_ context.Context, _ store.Scope, _ uuid.UUID, in store.MeterDeviceType) (store.MeterDeviceType, error) {
	return in, f.err
}
func (f fakeStore) DeleteMeterDeviceType(context.Context, store.Scope, uuid.UUID) error { return f.err }

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
