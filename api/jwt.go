package api

import (
	"errors"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/google/uuid"

	"github.com/amrd/amrd/store"
)

// jwtToken answers POST /v1/auth/jwt/token/ {username, password, organization?} with a
// JWT for the organization asked for, or the user's first one.
func (s *Server) jwtToken(c *fiber.Ctx) error {
	b, err := readBody(c)
	if err != nil {
		return err
	}
	errs := FieldErrors{}
	var username, password string
	var org uuid.UUID
	b.str(errs, "username", &username, true, 1, 0)
	b.str(errs, "password", &password, true, 1, 0)
	if b.has("organization") && !b.isNull("organization") {
		b.id(errs, "organization", &org, false)
	}
	if err := errs.orNil(); err != nil {
		return err
	}
	u, err := s.checkPassword(c, username, password)
	if errors.Is(err, errBadCredentials) {
		return FieldErrors{"non_field_errors": {"Unable to log in with provided credentials."}}
	}
	if err != nil {
		return err
	}
	if err := s.answerJWT(c, u, org, time.Time{}, fiber.StatusCreated); err != nil {
		return err
	}
	// last_login is for the operations team ("who logged in when"); the token is already
	// issued, so a failure here is logged, not returned.
	if err := s.st.TouchLogin(c.UserContext(), u.ID); err != nil {
		s.log.Warn("recording last_login failed", "user_id", u.ID.String(), "err", err)
	}
	return nil
}

// answerJWT picks the organization (the one asked for, which the user must belong to, or
// the first membership) and answers with a new token.
func (s *Server) answerJWT(c *fiber.Ctx, u store.User, org uuid.UUID, origIat time.Time, status int) error {
	ms, err := s.st.UserMemberships(c.UserContext(), u.ID)
	if err != nil {
		return err
	}
	if len(ms) == 0 {
		return FieldErrors{"non_field_errors": {"User is not a member of any active organization."}}
	}
	if org == uuid.Nil {
		org = ms[0].OrganizationID
	} else {
		found := false
		for _, m := range ms {
			found = found || m.OrganizationID == org
		}
		if !found {
			return FieldErrors{"organization": {"User is not a member of this organization."}}
		}
	}
	tok, err := s.issueJWT(u, org, origIat)
	if err != nil {
		return err
	}
	return c.Status(status).JSON(fiber.Map{"token": tok})
}

// jwtRenew answers GET /v1/auth/jwt/renew/ with a fresh JWT for the same organization,
// while the chain's first token is inside the refresh window.
func (s *Server) jwtRenew(c *fiber.Ctx) error {
	p := current(c)
	if p.method != "jwt" {
		return unauthorized("JWT", "A JWT is required to renew a JWT.")
	}
	orig, err := s.chainStart(c)
	if err != nil {
		return err
	}
	return s.answerJWT(c, p.user, p.org, orig, fiber.StatusOK)
}

// chainStart is the orig_iat of the request's JWT: when the chain of renewals and
// organization changes began with a login. A new token carries it on, and none is made
// once the refresh window after it has passed.
func (s *Server) chainStart(c *fiber.Ctx) (time.Time, error) {
	cl, err := s.parseJWT(bearer(c))
	if err != nil {
		return time.Time{}, err
	}
	orig := time.Unix(cl.OrigIat, 0)
	if s.cfg.now().Sub(orig) > jwtRefreshWindow {
		return time.Time{}, unauthorized("JWT", "Refresh has expired; log in again.")
	}
	return orig, nil
}

// jwtChangeOrganization answers POST /v1/auth/jwt/change-organization/ {organization}
// with a JWT for another organization the user belongs to. The new token keeps the
// chain's orig_iat, as a renewal does: a fresh one would let a token changed to its own
// organization, again and again, live forever without the password.
func (s *Server) jwtChangeOrganization(c *fiber.Ctx) error {
	p := current(c)
	if p.method != "jwt" {
		return unauthorized("JWT", "A JWT is required to change organization.")
	}
	b, err := readBody(c)
	if err != nil {
		return err
	}
	errs := FieldErrors{}
	var org uuid.UUID
	b.id(errs, "organization", &org, true)
	if err := errs.orNil(); err != nil {
		return err
	}
	orig, err := s.chainStart(c)
	if err != nil {
		return err
	}
	return s.answerJWT(c, p.user, org, orig, fiber.StatusCreated)
}

func bearer(c *fiber.Ctx) string {
	h := c.Get(fiber.HeaderAuthorization)
	for i := 0; i < len(h); i++ {
		if h[i] == ' ' {
			return h[i+1:]
		}
	}
	return ""
}
