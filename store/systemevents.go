package store

import (
	"context"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
)

// MeterSystemEvent is an event a meter device registered (a power failure, a cover
// opened, a clock set), with an integer id as in Utilitarian.
type MeterSystemEvent struct {
	ID             int64      `json:"id"`
	OrganizationID *uuid.UUID `json:"organization"`
	MeterDeviceID  uuid.UUID  `json:"meter_device"`
	Timestamp      time.Time  `json:"timestamp"`
	Title          string     `json:"title"`
	Content        string     `json:"content"`
	CreatedAt      time.Time  `json:"created_at"`
	UpdatedAt      time.Time  `json:"updated_at"`
}

// systemEvents reads the events hypertable, ordered by the time of the event and then
// by id, so that paging never skips or repeats one.
var systemEvents = entity[MeterSystemEvent]{
	what:  "a meter system event",
	from:  "meter_system_events x",
	cols:  "x.id, x.organization_id, x.meter_device_id, x.ts, x.title, x.content, x.created_at, x.updated_at",
	order: "x.ts, x.id",
	scan: func(row pgx.CollectableRow) (MeterSystemEvent, error) {
		var v MeterSystemEvent
		err := row.Scan(&v.ID, &v.OrganizationID, &v.MeterDeviceID, &v.Timestamp, &v.Title, &v.Content, &v.CreatedAt, &v.UpdatedAt)
		return v, err
	},
	filters: map[string]string{
		"meter_device": "x.meter_device_id = %s",
		"start_time":   "x.ts >= %s",
		"end_time":     "x.ts <= %s",
	},
}

// ListMeterSystemEvents returns one page of the events in scope.
func (s *Store) ListMeterSystemEvents(ctx context.Context, sc Scope, f Filter, p Page) ([]MeterSystemEvent, int, error) {
	return systemEvents.list(ctx, s.pool, sc, f, p)
}

// GetMeterSystemEvent returns one event in scope.
func (s *Store) GetMeterSystemEvent(ctx context.Context, sc Scope, id int64) (MeterSystemEvent, error) {
	return systemEvents.get(ctx, s.pool, sc, id)
}

// CreateMeterSystemEvent adds an event. The hypertable has no foreign keys, so the
// organization and the device are checked here: the device must exist and belong to the
// event's organization (else a FieldError on meter_device), and it stays locked against
// deletion until the event is in.
func (s *Store) CreateMeterSystemEvent(ctx context.Context, in MeterSystemEvent) (MeterSystemEvent, error) {
	var out MeterSystemEvent
	err := s.inTx(ctx, "creating a meter system event", func(tx pgx.Tx) error {
		if in.OrganizationID != nil {
			var known bool
			if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM organizations WHERE id = $1)`, *in.OrganizationID).Scan(&known); err != nil {
				return err
			}
			if !known {
				return noSuchRow("organization", *in.OrganizationID)
			}
		}
		if err := checkRefs(ctx, tx, in.OrganizationID, ref{"meter_device", "meter_devices", []uuid.UUID{in.MeterDeviceID}}); err != nil {
			return err
		}
		var id int64
		if err := tx.QueryRow(ctx, `INSERT INTO meter_system_events (organization_id, meter_device_id, ts, title, content)
			VALUES ($1, $2, $3, $4, $5) RETURNING id`, orgOf(in.OrganizationID), in.MeterDeviceID, in.Timestamp, in.Title, in.Content).Scan(&id); err != nil {
			return err
		}
		var err error
		out, err = systemEvents.get(ctx, tx, AllOrgs, id)
		return err
	})
	return out, err
}

// DeleteMeterSystemEvent removes one event in scope.
func (s *Store) DeleteMeterSystemEvent(ctx context.Context, sc Scope, id int64) error {
	return remove(ctx, s.pool, "meter_system_events", "a meter system event", sc, id)
}
