// Package bench measures amrd's reading ingestion against baselines taken in the same
// run on the same machine: the raw COPY ceiling and the naive one-transaction-per-reading
// path. The machines it runs on may be small and shared, hence noisy, so results are
// ratios, never absolute thresholds.
package bench

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
)

// seriesNames are the eight OBIS series every benchmark meter has.
var seriesNames = []string{"1.8.0", "2.8.0", "1.8.1", "1.8.2", "2.8.1", "2.8.2", "3.8.0", "4.8.0"}

// interval is the readings' spacing: quarter-hour load profiles.
const interval = 15 * time.Minute

var epoch = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// fleet is the meters of one benchmark database.
type fleet struct {
	devices    int
	deviceKeys []int32 // by device number
	seriesKeys []int32 // by series number
}

func deviceName(i int) string { return "bench-" + strconv.Itoa(100000+i) }

// reading i of the stream: all meters and series of one quarter-hour, then the next, as
// collectors deliver them.
func (f *fleet) at(i int64) (device, series int, ts time.Time) {
	per := int64(f.devices * len(seriesNames))
	slot := i / per
	rem := i % per
	return int(rem / int64(len(seriesNames))), int(rem % int64(len(seriesNames))), epoch.Add(time.Duration(slot) * interval)
}

// value of reading i: a register that grows, with three decimals.
func value(i int64) string {
	return strconv.FormatInt(i/1000, 10) + "." + fmt.Sprintf("%03d", i%1000)
}

// makeFleet creates one organization with the eight series, a config allowing them, a
// type with that config and n meters of that type (CT 1, no VT: the factor is computed
// but neutral), and returns their keys.
func makeFleet(ctx context.Context, conn *pgx.Conn, n int) (*fleet, error) {
	var org, cfg, typ string
	if err := conn.QueryRow(ctx, `INSERT INTO organizations (name) VALUES ('bench') RETURNING id`).Scan(&org); err != nil {
		return nil, err
	}
	if err := conn.QueryRow(ctx, `INSERT INTO meter_device_configs (organization_id, name, timezone) VALUES ($1, 'bench', 'UTC') RETURNING id`, org).Scan(&cfg); err != nil {
		return nil, err
	}
	f := &fleet{devices: n}
	for _, s := range seriesNames {
		_, key, err := addSeries(ctx, conn, org, cfg, s)
		if err != nil {
			return nil, err
		}
		f.seriesKeys = append(f.seriesKeys, key)
	}
	if err := conn.QueryRow(ctx, `INSERT INTO meter_device_types (organization_id, name, manufacturer, manufacturer_model, config_id)
		VALUES ($1, 'bench', 'bench', 'bench', $2) RETURNING id`, org, cfg).Scan(&typ); err != nil {
		return nil, err
	}
	if _, err := conn.Exec(ctx, `INSERT INTO meter_devices (organization_id, name, protocol, type_id, has_current_transformer, current_transformer_ratio)
		SELECT $1, 'bench-' || (100000 + g), 'dlms-cosem', $2, true, 1 FROM generate_series(0, $3 - 1) g`, org, typ, n); err != nil {
		return nil, err
	}
	rows, err := conn.Query(ctx, `SELECT key FROM meter_devices ORDER BY name`)
	if err != nil {
		return nil, err
	}
	f.deviceKeys, err = pgx.CollectRows(rows, pgx.RowTo[int32])
	if err != nil {
		return nil, err
	}
	if len(f.deviceKeys) != n {
		return nil, fmt.Errorf("made %d meters, found %d", n, len(f.deviceKeys))
	}
	return f, nil
}

// addSeries creates a cumulative kWh series (affected by the CT ratio) in org and allows
// it in the config cfg; it returns the series' id and key.
func addSeries(ctx context.Context, conn *pgx.Conn, org, cfg, name string) (id string, key int32, err error) {
	if err := conn.QueryRow(ctx, `INSERT INTO meter_reading_series (organization_id, name, unit, affected_by_ct_ratio) VALUES ($1, $2, 'kWh', true) RETURNING id, key`,
		org, name).Scan(&id, &key); err != nil {
		return "", 0, err
	}
	_, err = conn.Exec(ctx, `INSERT INTO meter_device_config_series (config_id, series_id) VALUES ($1, $2)`, cfg, id)
	return id, key, err
}
