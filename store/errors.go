package store

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// Sentinels that callers switch on. Every error a Store method returns wraps one of these,
// or is a *FieldError, or is a context error.
var (
	ErrNotFound    = errors.New("not found")
	ErrConflict    = errors.New("conflict")
	ErrUnavailable = errors.New("database unavailable")
	ErrInvalid     = errors.New("invalid value")
)

// FieldError says that one field of what was written names a row that does not exist,
// or breaks a rule the database enforces.
type FieldError struct {
	Field string
	Msg   string
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Msg }

// ConflictError is an ErrConflict with a message that is safe to show a client.
type ConflictError struct{ Msg string }

func (e *ConflictError) Error() string { return e.Msg }

// Unwrap makes errors.Is(err, ErrConflict) true.
func (e *ConflictError) Unwrap() error { return ErrConflict }

// uniqueAsField says, for each unique constraint, which field a violation names and how.
// A taken name or a repeated membership is a 400 naming the field, as DRF's unique
// validators answer Utilitarian's clients: it is the client's value to fix.
var uniqueAsField = map[string]FieldError{
	"users_username_key":                            {Field: "username", Msg: "A user with that username already exists."},
	"memberships_organization_id_user_id_key":       {Field: "user", Msg: "This user is already a member of this organization."},
	"meter_reading_series_organization_id_name_key": {Field: "name", Msg: "A meter reading series with this name already exists in this organization."},
	"meter_devices_name_key":                        {Field: "name", Msg: "A meter device with this name already exists."},
}

// referrers names, for a table that a delete was refused on, what depends on the row.
var referrers = map[string]string{
	"memberships":                "memberships",
	"api_tokens":                 "API tokens",
	"sim_cards":                  "SIM cards",
	"network_interfaces":         "network interfaces",
	"meter_reading_series":       "meter reading series",
	"meter_device_configs":       "meter device configs",
	"meter_device_config_series": "meter device configs",
	"meter_device_types":         "meter device types",
	"amr_tasks":                  "AMR tasks",
	"amr_task_groups":            "AMR task groups",
	"amr_task_group_tasks":       "AMR task groups",
	"meter_devices":              "meter devices",
	"meter_device_task_groups":   "meter devices",
	"meter_device_tasks":         "meter devices",
}

// mapErr turns a pgx error into the package's sentinels, for one operation (op, e.g.
// "creating a membership"). It is the only place that looks inside pgx errors.
func mapErr(op string, err error) error {
	if err == nil || ours(err) {
		return err
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("%s: %w", op, err)
	}
	if errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("%s: %w", op, ErrNotFound)
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch pe.Code {
		case "23505": // unique_violation
			if fe, ok := uniqueAsField[pe.ConstraintName]; ok {
				return &fe
			}
			f := strings.TrimSuffix(strings.TrimPrefix(pe.ConstraintName, pe.TableName+"_"), "_key")
			f = strings.TrimSuffix(f, "_id")
			return &FieldError{Field: f, Msg: "A row with this " + f + " already exists."}
		case "23503": // foreign_key_violation
			if strings.Contains(pe.Detail, "is still referenced") {
				what := referrers[strings.TrimSpace(pe.TableName)]
				if what == "" {
					what = "other rows"
				}
				return &ConflictError{Msg: fmt.Sprintf("cannot delete: %s still refer to it", what)}
			}
			f := strings.TrimSuffix(strings.TrimPrefix(pe.ConstraintName, pe.TableName+"_"), "_fkey")
			f = strings.TrimSuffix(f, "_id")
			return &FieldError{Field: f, Msg: "no such object"}
		case "23514", "23502": // check, not null
			return fmt.Errorf("%s: %w (%s)", op, ErrInvalid, pe.Code)
		case "54000", "54001": // a value over a limit: an index row too large, JSON nested too deep
			return fmt.Errorf("%s: %w (%s)", op, ErrInvalid, pe.Code)
		// A deadlock or serialization failure (retention's drop_chunks against a write into
		// the chunk it drops, for one) is transient: the client gets 503 with Retry-After
		// and may re-send, which is safe; a job runs again next time.
		case "57P01", "57P02", "57P03", "08000", "08003", "08006", "08001", "08004", "53300", "40P01", "40001":
			return fmt.Errorf("%s: %w", op, ErrUnavailable)
		case "XX000":
			// A chunk that retention's drop_chunks removed while this statement was
			// writing into it (readings older than DATA_RETENTION_DAYS, as make soak
			// sends): the same statement again plans without it.
			if strings.HasPrefix(pe.Message, "could not open relation with OID") {
				return fmt.Errorf("%s: %w", op, ErrUnavailable)
			}
		}
		if strings.HasPrefix(pe.Code, "22") {
			// Class 22, data exception, is about a value that was sent: too long (22001),
			// out of range (22003), not text (22021: NUL or not UTF-8), a JSON escape
			// jsonb refuses (22P05), a bad date or time (22007, 22008), and the rest. The
			// API validates what it takes; this keeps a value it missed a 400, not a 500.
			return fmt.Errorf("%s: %w (%s)", op, ErrInvalid, pe.Code)
		}
		return fmt.Errorf("%s: %w %s", op, errDatabase, pe.Code)
	}
	var ne net.Error
	if errors.As(err, &ne) || pgconn.SafeToRetry(err) || isConnErr(err) {
		return fmt.Errorf("%s: %w", op, ErrUnavailable)
	}
	return fmt.Errorf("%s: %w", op, safeErr(err))
}

// errDatabase is a database error that is none of the sentinels (a 500 for a client);
// its text carries the SQLSTATE only, never the database's message.
var errDatabase = errors.New("database error")

// ours reports an error that is one of the store's own already (a sentinel, or a
// FieldError, ConflictError or StaleCatalogError), whatever it wraps besides.
func ours(err error) bool {
	var fe *FieldError
	var ce *ConflictError
	var se *StaleCatalogError
	for _, s := range []error{ErrNotFound, ErrConflict, ErrUnavailable, ErrInvalid, ErrRollupBusy, ErrNoSecret, errDatabase} {
		if errors.Is(err, s) {
			return true
		}
	}
	return errors.As(err, &fe) || errors.As(err, &ce) || errors.As(err, &se)
}

// fromDatabase reports an error that came from the database, the driver or the
// connection (what mapErr maps), as opposed to one the store's own code made.
func fromDatabase(err error) bool {
	if err == nil || ours(err) {
		return false
	}
	var pe *pgconn.PgError
	var ne net.Error
	return errors.As(err, &pe) || errors.Is(err, pgx.ErrNoRows) || errors.Is(err, context.Canceled) ||
		errors.Is(err, context.DeadlineExceeded) || errors.As(err, &ne) || pgconn.SafeToRetry(err) || isConnErr(err)
}

func isConnErr(err error) bool {
	var ce *pgconn.ConnectError
	if errors.As(err, &ce) {
		return true
	}
	s := err.Error()
	return strings.Contains(s, "conn closed") || strings.Contains(s, "connection refused") ||
		strings.Contains(s, "failed to connect") || strings.Contains(s, "closed pool")
}

// safeErr drops connection details (which can include the URL) from an error's text.
func safeErr(err error) error {
	var ce *pgconn.ConnectError
	if errors.As(err, &ce) {
		return ErrUnavailable
	}
	return err
}
