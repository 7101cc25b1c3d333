package api

import (
	"context"

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
