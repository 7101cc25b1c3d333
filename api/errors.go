package api

import (
	"errors"
	"log/slog"
	"strconv"

	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/utils"

	"github.com/amrd/amrd/store"
)

// FieldErrors is a DRF-style validation error: field name to messages. It answers 400.
type FieldErrors map[string][]string

func (e FieldErrors) Error() string { return "invalid request body" }

// add records a message for a field.
func (e FieldErrors) add(field, msg string) { e[field] = append(e[field], msg) }

// orNil returns nil when no field had an error, so callers can write `return errs.orNil()`.
func (e FieldErrors) orNil() error {
	if len(e) == 0 {
		return nil
	}
	return e
}

// apiError is an error with a status and a client-safe detail.
type apiError struct {
	status  int
	detail  string
	headers map[string]string
}

func (e *apiError) Error() string { return e.detail }

func errStatus(status int, detail string) error { return &apiError{status: status, detail: detail} }

var (
	errNotFound   = errStatus(fiber.StatusNotFound, "Not found.")
	errForbidden  = errStatus(fiber.StatusForbidden, "You do not have permission to perform this action.")
	errStaffOnly  = errStatus(fiber.StatusForbidden, "Only staff users may perform this action.")
	errBadJSONMsg = "JSON parse error: the request body is not valid JSON."
)

// errorHandler is the one place where errors become HTTP statuses. Clients never see an
// internal error text: anything unexpected is logged and answered with a generic 500.
func (s *Server) errorHandler(c *fiber.Ctx, err error) error {
	var fe FieldErrors
	var ae *apiError
	var sfe *store.FieldError
	var ce *store.ConflictError
	var fbe *fiber.Error
	switch {
	case errors.As(err, &fe):
		return c.Status(fiber.StatusBadRequest).JSON(fe)
	case errors.As(err, &ae):
		for k, v := range ae.headers {
			c.Set(k, v)
		}
		return c.Status(ae.status).JSON(fiber.Map{"detail": ae.detail})
	case errors.As(err, &sfe):
		return c.Status(fiber.StatusBadRequest).JSON(FieldErrors{sfe.Field: {sfe.Msg}})
	case errors.As(err, &ce):
		return c.Status(fiber.StatusConflict).JSON(fiber.Map{"detail": ce.Msg})
	case errors.Is(err, store.ErrNotFound):
		return c.Status(fiber.StatusNotFound).JSON(fiber.Map{"detail": "Not found."})
	case errors.Is(err, store.ErrInvalid):
		// The database refused a value that validation let through: the client's to fix,
		// and a gap in validation to close, so the operation and code are logged.
		s.log.Warn("the database refused a value", "method", methodLabel(c.Method()), "route", s.routeLabel(c, fiber.StatusBadRequest), "err", err)
		return c.Status(fiber.StatusBadRequest).JSON(fiber.Map{"detail": "A value breaks a rule of the database (too long, out of range, or not allowed)."})
	case errors.Is(err, store.ErrUnavailable):
		c.Set(fiber.HeaderRetryAfter, "5")
		return c.Status(fiber.StatusServiceUnavailable).JSON(fiber.Map{"detail": "The database is unavailable; try again shortly."})
	case errors.As(err, &fbe):
		// The status's own text, never the error's: Fiber's messages may quote the
		// request ("Cannot GET /path", a parser's error).
		detail := utils.StatusMessage(fbe.Code) + "."
		switch fbe.Code {
		case fiber.StatusNotFound:
			detail = "Not found."
		case fiber.StatusMethodNotAllowed:
			detail = "Method \"" + methodLabel(c.Method()) + "\" not allowed."
		case fiber.StatusRequestEntityTooLarge:
			detail = "Request body too large."
		case fiber.StatusRequestTimeout:
			detail = "Request timed out."
		}
		if fbe.Code >= 500 {
			s.log.Error("request failed", "method", c.Method(), "path", c.Path(), "status", fbe.Code, "err", err)
			detail = "Internal server error."
		}
		return c.Status(fbe.Code).JSON(fiber.Map{"detail": detail})
	}
	if c.UserContext().Err() != nil {
		c.Set(fiber.HeaderRetryAfter, "5")
		return c.Status(fiber.StatusServiceUnavailable).JSON(fiber.Map{"detail": "The request took too long; try again shortly."})
	}
	s.log.Error("request failed", slog.String("method", c.Method()), slog.String("path", c.Path()), slog.Any("err", err))
	return c.Status(fiber.StatusInternalServerError).JSON(fiber.Map{"detail": "Internal server error."})
}

// tooMany makes a 429 with a Retry-After header of secs seconds.
func tooMany(secs int) error {
	return &apiError{status: fiber.StatusTooManyRequests,
		detail:  "Too many failed login attempts. Try again in " + strconv.Itoa(secs) + " seconds.",
		headers: map[string]string{fiber.HeaderRetryAfter: strconv.Itoa(secs)}}
}
