package store_test

import (
	"fmt"
	"testing"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/amrd/amrd/store"
	"github.com/amrd/amrd/store/storetest"
)

func ptr[T any](v T) *T { return &v }

func dec(t *testing.T, s string) store.Decimal {
	t.Helper()
	var d store.Decimal
	_, _, err := d.SetString(s)
	require.NoError(t, err)
	return d
}

// mkDevice inserts a meter device (no store method makes one yet) and returns its id.
func mkDevice(t *testing.T, url string, org uuid.UUID, name string, typ, netif *uuid.UUID) uuid.UUID {
	t.Helper()
	id := uuid.New()
	storetest.Exec(t, url, `INSERT INTO meter_devices (id, organization_id, name, protocol, type_id, network_interface_id)
		VALUES ($1, $2, $3, 'dlms-cosem', $4, $5)`, id, org, name, typ, netif)
	return id
}

func TestNetworkInterfaces(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	st, url := storetest.New(t)
	a, b := mkOrg(t, st, "A", true), mkOrg(t, st, "B", true)
	sim, err := st.CreateSimCard(ctx, store.SimCard{OrganizationID: &a.ID, ICCID: "1", IMSI: "1", IPAddress: ptr("10.0.0.7")})
	require.NoError(t, err)
	simB, err := st.CreateSimCard(ctx, store.SimCard{OrganizationID: &b.ID, ICCID: "2", IMSI: "2"})
	require.NoError(t, err)

	t.Run("host is the FQDN, else the static IP, else the SIM's IP", func(t *testing.T) {
		tests := []struct {
			name string
			in   store.NetworkInterface
			host *string
		}{
			{"all three", store.NetworkInterface{FQDN: ptr("m1.example.org"), StaticIPAddress: ptr("192.0.2.1"), SimID: &sim.ID}, ptr("m1.example.org")},
			{"static and SIM", store.NetworkInterface{StaticIPAddress: ptr("192.0.2.1"), SimID: &sim.ID}, ptr("192.0.2.1")},
			{"SIM only", store.NetworkInterface{SimID: &sim.ID}, ptr("10.0.0.7")},
			{"nothing", store.NetworkInterface{}, nil},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				tc.in.OrganizationID = &a.ID
				n, err := st.CreateNetworkInterface(ctx, tc.in)
				require.NoError(t, err)
				require.Equal(t, tc.host, n.Host)
				require.False(t, n.IsBlocked)
				require.Nil(t, n.BlockTime)
			})
		}
	})

	n, err := st.CreateNetworkInterface(ctx, store.NetworkInterface{OrganizationID: &a.ID, Port: ptr[int64](4059), SimID: &sim.ID, CanBlock: true})
	require.NoError(t, err)
	require.Equal(t, int64(4059), *n.Port)
	require.True(t, n.CanBlock)

	t.Run("a SIM of another organization does not exist", func(t *testing.T) {
		_, err := st.CreateNetworkInterface(ctx, store.NetworkInterface{OrganizationID: &a.ID, SimID: &simB.ID})
		var fe *store.FieldError
		require.ErrorAs(t, err, &fe)
		require.Equal(t, "sim", fe.Field)
	})
	t.Run("block time shows only while blocked", func(t *testing.T) {
		storetest.Exec(t, url, "UPDATE network_interfaces SET block_time = now() WHERE id = $1", n.ID)
		got, err := st.GetNetworkInterface(ctx, store.AllOrgs, n.ID)
		require.NoError(t, err)
		require.Nil(t, got.BlockTime)
		storetest.Exec(t, url, "UPDATE network_interfaces SET is_blocked = true WHERE id = $1", n.ID)
		got, err = st.GetNetworkInterface(ctx, store.AllOrgs, n.ID)
		require.NoError(t, err)
		require.True(t, got.IsBlocked)
		require.NotNil(t, got.BlockTime)
		// an update leaves the block state alone
		got.CanBlock = false
		got, err = st.UpdateNetworkInterface(ctx, store.AllOrgs, n.ID, got)
		require.NoError(t, err)
		require.True(t, got.IsBlocked)
		require.False(t, got.CanBlock)
	})
	t.Run("used by a device: no delete, no move to another organization", func(t *testing.T) {
		dev := mkDevice(t, url, a.ID, "meter-1", nil, &n.ID)
		require.ErrorIs(t, st.DeleteNetworkInterface(ctx, store.AllOrgs, n.ID), store.ErrConflict)
		moved := n
		moved.OrganizationID, moved.SimID = &b.ID, nil
		_, err := st.UpdateNetworkInterface(ctx, store.AllOrgs, n.ID, moved)
		require.ErrorIs(t, err, store.ErrConflict)
		storetest.Exec(t, url, "DELETE FROM meter_devices WHERE id = $1", dev)
		_, err = st.UpdateNetworkInterface(ctx, store.AllOrgs, n.ID, moved)
		require.NoError(t, err)
		require.NoError(t, st.DeleteNetworkInterface(ctx, store.AllOrgs, n.ID))
	})
	t.Run("out of scope is not found", func(t *testing.T) {
		x, err := st.CreateNetworkInterface(ctx, store.NetworkInterface{OrganizationID: &a.ID})
		require.NoError(t, err)
		_, err = st.UpdateNetworkInterface(ctx, store.OrgScope(b.ID), x.ID, x)
		require.ErrorIs(t, err, store.ErrNotFound)
		require.ErrorIs(t, st.DeleteNetworkInterface(ctx, store.OrgScope(b.ID), x.ID), store.ErrNotFound)
	})
}

func TestMeterReadingSeries(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	st, url := storetest.New(t)
	a, b := mkOrg(t, st, "A", true), mkOrg(t, st, "B", true)

	t.Run("multipliers are exact", func(t *testing.T) {
		for i, v := range []string{"1", "1000", "0.001", "0.000000000000000000000000000001", "123456789012345678901234567890.123456789012345678901234567891"} {
			s, err := st.CreateMeterReadingSeries(ctx, store.MeterReadingSeries{OrganizationID: &a.ID, Name: fmt.Sprint("exact-", i), Unit: "u", SIMultiplier: dec(t, v)})
			require.NoError(t, err, v)
			require.Equal(t, v, s.SIMultiplier.String())
			got, err := st.GetMeterReadingSeries(ctx, store.AllOrgs, s.ID)
			require.NoError(t, err)
			want := dec(t, v)
			require.Equal(t, 0, got.SIMultiplier.Cmp(&want.Decimal), v)
			require.Positive(t, got.Key)
		}
	})

	s, err := st.CreateMeterReadingSeries(ctx, store.MeterReadingSeries{OrganizationID: &a.ID, Name: "energy", Unit: "kWh",
		SIMultiplier: store.DecimalOf(3600000), AffectedByCTRatio: true})
	require.NoError(t, err)
	require.Equal(t, "3600000", s.SIMultiplier.String())

	t.Run("names are unique in an organization only", func(t *testing.T) {
		_, err := st.CreateMeterReadingSeries(ctx, store.MeterReadingSeries{OrganizationID: &a.ID, Name: "energy", Unit: "Wh", SIMultiplier: store.DecimalOf(1)})
		var fe *store.FieldError
		require.ErrorAs(t, err, &fe)
		require.Equal(t, "name", fe.Field)
		other, err := st.CreateMeterReadingSeries(ctx, store.MeterReadingSeries{OrganizationID: &b.ID, Name: "energy", Unit: "Wh", SIMultiplier: store.DecimalOf(1)})
		require.NoError(t, err)
		list, n, err := st.ListMeterReadingSeries(ctx, store.AllOrgs, store.Filter{"name": "energy", "unit": "Wh"}, store.Page{Limit: 10})
		require.NoError(t, err)
		require.Equal(t, 1, n)
		require.Equal(t, other.ID, list[0].ID)
	})

	cfg, err := st.CreateMeterDeviceConfig(ctx, store.MeterDeviceConfig{OrganizationID: &a.ID, Name: "c", Series: []uuid.UUID{s.ID}, Timezone: "UTC"})
	require.NoError(t, err)

	t.Run("listed by a config: no delete, no move", func(t *testing.T) {
		err := st.DeleteMeterReadingSeries(ctx, store.AllOrgs, s.ID)
		require.ErrorIs(t, err, store.ErrConflict)
		require.ErrorContains(t, err, "meter device configs")
		moved := s
		moved.OrganizationID = &b.ID
		moved.Name = "moved"
		_, err = st.UpdateMeterReadingSeries(ctx, store.AllOrgs, s.ID, moved)
		require.ErrorIs(t, err, store.ErrConflict)
		// staying in the organization is fine
		s.Description = "active energy"
		got, err := st.UpdateMeterReadingSeries(ctx, store.AllOrgs, s.ID, s)
		require.NoError(t, err)
		require.Equal(t, "active energy", got.Description)
	})

	cfg.Series = []uuid.UUID{}
	_, err = st.UpdateMeterDeviceConfig(ctx, store.AllOrgs, cfg.ID, cfg)
	require.NoError(t, err)
	dev := mkDevice(t, url, a.ID, "meter-1", nil, nil)
	storetest.Exec(t, url, `INSERT INTO meter_readings (device_key, series_key, ts, value)
		SELECT d.key, s.key, '2026-01-01T00:00:00Z', 1.5 FROM meter_devices d, meter_reading_series s WHERE d.id = $1 AND s.id = $2`, dev, s.ID)

	t.Run("readings stored: no delete, no move", func(t *testing.T) {
		err := st.DeleteMeterReadingSeries(ctx, store.AllOrgs, s.ID)
		require.ErrorIs(t, err, store.ErrConflict)
		require.ErrorContains(t, err, "readings")
		moved := s
		moved.OrganizationID = &b.ID
		moved.Name = "moved"
		_, err = st.UpdateMeterReadingSeries(ctx, store.AllOrgs, s.ID, moved)
		require.ErrorIs(t, err, store.ErrConflict)
	})
	t.Run("readings of other series do not hold it", func(t *testing.T) {
		x, err := st.CreateMeterReadingSeries(ctx, store.MeterReadingSeries{OrganizationID: &a.ID, Name: "unused", Unit: "u", SIMultiplier: store.DecimalOf(1)})
		require.NoError(t, err)
		require.ErrorIs(t, st.DeleteMeterReadingSeries(ctx, store.OrgScope(b.ID), x.ID), store.ErrNotFound)
		require.NoError(t, st.DeleteMeterReadingSeries(ctx, store.OrgScope(a.ID), x.ID))
		require.ErrorIs(t, st.DeleteMeterReadingSeries(ctx, store.AllOrgs, x.ID), store.ErrNotFound)
	})

	storetest.Exec(t, url, "DELETE FROM meter_readings")
	require.NoError(t, st.DeleteMeterReadingSeries(ctx, store.AllOrgs, s.ID))
}

func TestMeterDeviceConfigsAndTypes(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	st, url := storetest.New(t)
	a, b := mkOrg(t, st, "A", true), mkOrg(t, st, "B", true)
	mk := func(org uuid.UUID, name, unit string) store.MeterReadingSeries {
		s, err := st.CreateMeterReadingSeries(ctx, store.MeterReadingSeries{OrganizationID: &org, Name: name, Unit: unit, SIMultiplier: store.DecimalOf(1)})
		require.NoError(t, err)
		return s
	}
	power, energy, foreign := mk(a.ID, "power", "kW"), mk(a.ID, "energy", "kWh"), mk(b.ID, "gas", "m3")

	cfg, err := st.CreateMeterDeviceConfig(ctx, store.MeterDeviceConfig{OrganizationID: &a.ID, Name: "elec", Series: []uuid.UUID{power.ID, energy.ID}, Timezone: "Europe/Stockholm"})
	require.NoError(t, err)
	require.ElementsMatch(t, []uuid.UUID{power.ID, energy.ID}, cfg.Series)
	require.Equal(t, "energy (kWh), power (kW)", cfg.SeriesInfo)
	require.Equal(t, "Europe/Stockholm", cfg.Timezone)

	t.Run("series of another organization do not exist", func(t *testing.T) {
		_, err := st.CreateMeterDeviceConfig(ctx, store.MeterDeviceConfig{OrganizationID: &a.ID, Name: "x", Series: []uuid.UUID{power.ID, foreign.ID}, Timezone: "UTC"})
		var fe *store.FieldError
		require.ErrorAs(t, err, &fe)
		require.Equal(t, "series", fe.Field)
		require.Contains(t, fe.Msg, foreign.ID.String())
	})
	t.Run("empty series list", func(t *testing.T) {
		c, err := st.CreateMeterDeviceConfig(ctx, store.MeterDeviceConfig{OrganizationID: &a.ID, Name: "none", Series: []uuid.UUID{}, Timezone: "UTC"})
		require.NoError(t, err)
		require.NotNil(t, c.Series)
		require.Empty(t, c.Series)
		require.Equal(t, "", c.SeriesInfo)
	})
	t.Run("update replaces the series", func(t *testing.T) {
		cfg.Series = []uuid.UUID{energy.ID}
		got, err := st.UpdateMeterDeviceConfig(ctx, store.AllOrgs, cfg.ID, cfg)
		require.NoError(t, err)
		require.Equal(t, []uuid.UUID{energy.ID}, got.Series)
		require.Equal(t, "energy (kWh)", got.SeriesInfo)
	})

	typ, err := st.CreateMeterDeviceType(ctx, store.MeterDeviceType{OrganizationID: &a.ID, Name: "E350", Manufacturer: "Landis+Gyr", ManufacturerModel: "E350", ConfigID: &cfg.ID})
	require.NoError(t, err)
	require.Equal(t, cfg.ID, *typ.ConfigID)
	require.Equal(t, "", typ.Description)

	t.Run("a config of another organization does not exist", func(t *testing.T) {
		_, err := st.CreateMeterDeviceType(ctx, store.MeterDeviceType{OrganizationID: &b.ID, Name: "x", Manufacturer: "m", ManufacturerModel: "m", ConfigID: &cfg.ID})
		var fe *store.FieldError
		require.ErrorAs(t, err, &fe)
		require.Equal(t, "config", fe.Field)
	})
	t.Run("a config used by a type: no delete, no move", func(t *testing.T) {
		err := st.DeleteMeterDeviceConfig(ctx, store.AllOrgs, cfg.ID)
		require.ErrorIs(t, err, store.ErrConflict)
		require.ErrorContains(t, err, "meter device types")
		moved := cfg
		moved.OrganizationID, moved.Series = &b.ID, []uuid.UUID{}
		_, err = st.UpdateMeterDeviceConfig(ctx, store.AllOrgs, cfg.ID, moved)
		require.ErrorIs(t, err, store.ErrConflict)
	})
	t.Run("a type used by a device: no delete, no move", func(t *testing.T) {
		dev := mkDevice(t, url, a.ID, "meter-1", &typ.ID, nil)
		err := st.DeleteMeterDeviceType(ctx, store.AllOrgs, typ.ID)
		require.ErrorIs(t, err, store.ErrConflict)
		require.ErrorContains(t, err, "meter devices")
		moved := typ
		moved.OrganizationID, moved.ConfigID = &b.ID, nil
		_, err = st.UpdateMeterDeviceType(ctx, store.AllOrgs, typ.ID, moved)
		require.ErrorIs(t, err, store.ErrConflict)
		storetest.Exec(t, url, "DELETE FROM meter_devices WHERE id = $1", dev)
	})

	require.NoError(t, st.DeleteMeterDeviceType(ctx, store.AllOrgs, typ.ID))
	require.NoError(t, st.DeleteMeterDeviceConfig(ctx, store.AllOrgs, cfg.ID))
	// the series stay
	_, err = st.GetMeterReadingSeries(ctx, store.AllOrgs, energy.ID)
	require.NoError(t, err)
	require.NoError(t, st.DeleteMeterReadingSeries(ctx, store.AllOrgs, energy.ID))
}
