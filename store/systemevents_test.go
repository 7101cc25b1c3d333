package store_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/amrd/amrd/store"
	"github.com/amrd/amrd/store/storetest"
)

func TestMeterSystemEventsStore(t *testing.T) {
	ctx := testCtx(t)
	st, url := storetest.New(t)
	a, b := mkOrg(t, st, "A", true), mkOrg(t, st, "B", true)
	devA := sqlDevice(t, url, a.ID, "meter-a")
	ev, err := st.CreateMeterSystemEvent(ctx, store.MeterSystemEvent{OrganizationID: &a.ID, MeterDeviceID: devA,
		Timestamp: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), Title: "t", Content: "c"})
	require.NoError(t, err)
	require.Positive(t, ev.ID)

	_, err = st.CreateMeterSystemEvent(ctx, store.MeterSystemEvent{OrganizationID: &b.ID, MeterDeviceID: devA,
		Timestamp: ev.Timestamp, Title: "t", Content: "c"})
	requireFieldError(t, err, "meter_device")

	_, err = st.GetMeterSystemEvent(ctx, store.OrgScope(b.ID), ev.ID)
	require.ErrorIs(t, err, store.ErrNotFound)
	require.ErrorIs(t, st.DeleteMeterSystemEvent(ctx, store.OrgScope(b.ID), ev.ID), store.ErrNotFound)
	got, err := st.GetMeterSystemEvent(ctx, store.OrgScope(a.ID), ev.ID)
	require.NoError(t, err)
	require.True(t, got.Timestamp.Equal(ev.Timestamp))
	require.NoError(t, st.DeleteMeterSystemEvent(ctx, store.OrgScope(a.ID), ev.ID))
	_, err = st.GetMeterSystemEvent(ctx, store.AllOrgs, ev.ID)
	require.ErrorIs(t, err, store.ErrNotFound)
}

func TestSystemEventsMoveWithTheirDevice(t *testing.T) {
	ctx := testCtx(t)
	st, url := storetest.New(t)
	a, b := mkOrg(t, st, "A", true), mkOrg(t, st, "B", true)
	dev := sqlDevice(t, url, a.ID, "meter-moving")
	ev, err := st.CreateMeterSystemEvent(ctx, store.MeterSystemEvent{OrganizationID: &a.ID, MeterDeviceID: dev,
		Timestamp: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), Title: "door opened", Content: "terminal cover"})
	require.NoError(t, err)

	d, err := st.GetMeterDevice(ctx, store.AllOrgs, dev)
	require.NoError(t, err)
	d.OrganizationID = &b.ID
	_, err = st.UpdateMeterDevice(ctx, store.AllOrgs, dev, d)
	require.NoError(t, err)

	_, err = st.GetMeterSystemEvent(ctx, store.OrgScope(a.ID), ev.ID)
	require.ErrorIs(t, err, store.ErrNotFound, "the old organization no longer sees the device's history")
	got, err := st.GetMeterSystemEvent(ctx, store.OrgScope(b.ID), ev.ID)
	require.NoError(t, err)
	require.Equal(t, b.ID, *got.OrganizationID)
}
