package jobs

import (
	"fmt"
	"time"
)

// Schedules are the contract's AMR task schedules. Every slot is in UTC.
var Schedules = []string{"quarterly", "hourly", "daily", "weekly", "monthly", "yearly"}

// SlotAt returns the latest slot of a schedule at or before t (UTC): quarterly on :00,
// :15, :30 and :45; hourly on the hour; daily at 00:00; weekly on Monday 00:00; monthly
// on the 1st 00:00; yearly on 1 January 00:00.
func SlotAt(schedule string, t time.Time) (time.Time, error) {
	t = t.UTC()
	y, mo, d := t.Date()
	switch schedule {
	case "quarterly":
		return t.Truncate(15 * time.Minute), nil
	case "hourly":
		return t.Truncate(time.Hour), nil
	case "daily":
		return time.Date(y, mo, d, 0, 0, 0, 0, time.UTC), nil
	case "weekly":
		// Monday is weekday 1; Sunday (0) is six days after the Monday before it.
		back := (int(t.Weekday()) + 6) % 7
		return time.Date(y, mo, d-back, 0, 0, 0, 0, time.UTC), nil
	case "monthly":
		return time.Date(y, mo, 1, 0, 0, 0, 0, time.UTC), nil
	case "yearly":
		return time.Date(y, time.January, 1, 0, 0, 0, 0, time.UTC), nil
	}
	return time.Time{}, fmt.Errorf("slot of schedule %q: unknown schedule", schedule)
}

// Due returns the latest slot of a task that is due at now, and when its run may start:
// slot + the run offset. A negative offset counts as none: a run never starts before
// its slot. A slot before the task existed is not due (a task created at 10:07 with an
// hourly schedule first runs at 11:00).
func Due(schedule string, offsetSeconds int64, created, now time.Time) (slot, runAt time.Time, ok bool, err error) {
	off := max(time.Duration(offsetSeconds)*time.Second, 0)
	slot, err = SlotAt(schedule, now.Add(-off))
	if err != nil {
		return time.Time{}, time.Time{}, false, err
	}
	if slot.Before(created) {
		return time.Time{}, time.Time{}, false, nil
	}
	return slot, slot.Add(off), true, nil
}
