package api

import (
	"context"
	"strconv"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/google/uuid"

	"github.com/amrd/amrd/store"
)

// rollupStore is what the meter-reading-rollups route calls.
type rollupStore interface {
	ListRollups(context.Context, store.Scope, store.RollupFilter, store.Page) ([]store.Rollup, int, error)
}

// rollupBucket is what a bucket size allows: the range when start_time is left out (back
// from end_time: a week of hours = 168 buckets, a quarter of days = 92, three years of
// months = 36), and the longest range a request may ask for. Every request aggregates its
// whole range (the page's count needs every bucket), so the limits bound its work to a
// few thousand rows: hour 366 days = 8,784 hours (a leap year); day 3,660 days (10 years)
// = 3,660 days; month 36,525 days (100 years of 365.25 days) = 1,200 months summed from
// 36,525 days.
type rollupBucket struct {
	back      func(end time.Time) time.Time
	limitDays int
}

var rollupBuckets = map[string]rollupBucket{
	store.BucketHour:  {back: func(end time.Time) time.Time { return end.AddDate(0, 0, -7) }, limitDays: 366},
	store.BucketDay:   {back: func(end time.Time) time.Time { return end.AddDate(0, 0, -92) }, limitDays: 3_660},
	store.BucketMonth: {back: func(end time.Time) time.Time { return end.AddDate(-3, 0, 0) }, limitDays: 36_525},
}

var rollupFilters = map[string]filterKind{"meter_device": filterUUID, "series": filterUUID, "start_time": filterTime, "end_time": filterTime}

// listRollups answers GET /v1/metering/meter-reading-rollups (an amrd extension): the
// hour, day or month buckets of one device and series whose start lies in
// [start_time, end_time), oldest first. end_time defaults to now, start_time to a week
// (hour), 92 days (day) or 3 years (month) before end_time. Devices and series are
// checked against the caller's organizations as the readings list does.
func (s *Server) listRollups(c *fiber.Ctx) error {
	p, err := pageParams(c)
	if err != nil {
		return err
	}
	f, err := parseFilters(c, rollupFilters)
	if err != nil {
		return err
	}
	errs := FieldErrors{}
	rf := store.RollupFilter{Bucket: store.BucketHour}
	var ok bool
	if rf.Device, ok = f["meter_device"].(uuid.UUID); !ok {
		errs.add("meter_device", "This field is required.")
	}
	if rf.Series, ok = f["series"].(uuid.UUID); !ok {
		errs.add("series", "This field is required.")
	}
	if v := c.Query("bucket"); v != "" {
		rf.Bucket = strings.Clone(v)
	}
	b, ok := rollupBuckets[rf.Bucket]
	if !ok {
		errs.add("bucket", "Select a valid choice. "+strconv.Quote(rf.Bucket)+" is not one of the available choices: hour, day, month.")
	}
	rf.SI = queryBool(c, errs, "si")
	if err := errs.orNil(); err != nil {
		return err
	}
	rf.Start, _ = f["start_time"].(time.Time)
	rf.End, _ = f["end_time"].(time.Time)
	if rf.End.IsZero() {
		rf.End = s.cfg.now().UTC()
	}
	if rf.Start.IsZero() {
		rf.Start = b.back(rf.End)
	}
	switch {
	case rf.Start.After(rf.End):
		errs.add("start_time", "Ensure start_time is not after end_time.")
	case rf.End.Sub(rf.Start) > time.Duration(b.limitDays)*24*time.Hour:
		errs.add("end_time", "The range may span at most "+strconv.Itoa(b.limitDays)+" days for bucket="+rf.Bucket+".")
	}
	if err := errs.orNil(); err != nil {
		return err
	}
	list, n, err := s.st.ListRollups(c.UserContext(), current(c).scope(), rf, p)
	if err != nil {
		return err
	}
	return c.JSON(newPage(c, p, n, list))
}
