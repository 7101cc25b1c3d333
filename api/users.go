package api

import (
	"regexp"

	"github.com/gofiber/fiber/v2"
	"github.com/google/uuid"

	"github.com/amrd/amrd/store"
)

// Users are managed by staff only. Passwords are write-only: accepted on create and
// update, stored as bcrypt hashes, never returned.

// usernameRule is Django's: letters, digits and @ . + - _ only.
var usernameRule = regexp.MustCompile(`^[\p{L}\p{N}@.+\-_]+$`)

// minPasswordLen follows NIST SP 800-63B's minimum for user-chosen secrets.
const minPasswordLen = 8

// users serves users. A new user (no id yet) must be sent a password; an update without
// one keeps the stored hash. A change or delete clears the token cache, so that it takes
// effect on this replica at once; no one may delete their own user.
func (s *Server) users() resource[store.User, uuid.UUID] {
	return resource[store.User, uuid.UUID]{
		rows:   s.tables.Users,
		policy: staffOnly,
		blank:  func() store.User { return store.User{IsActive: true} },
		decode: func(b body, v *store.User, full bool, errs FieldErrors) {
			b.str(errs, "username", &v.Username, full, 1, 150)
			if b.has("username") && len(errs["username"]) == 0 && !usernameRule.MatchString(v.Username) {
				errs.add("username", "Enter a valid username. This value may contain only letters, numbers, and @/./+/-/_ characters.")
			}
			var password string
			b.str(errs, "password", &password, full && v.ID == uuid.Nil, minPasswordLen, 128)
			b.str(errs, "email", &v.Email, false, 0, 254)
			b.str(errs, "first_name", &v.FirstName, false, 0, 150)
			b.str(errs, "last_name", &v.LastName, false, 0, 150)
			b.boolean(errs, "is_staff", &v.IsStaff)
			b.boolean(errs, "is_active", &v.IsActive)
			v.PasswordHash = "" // the store keeps the stored hash unless prepare sets a new one
		},
		prepare: func(b body, v *store.User) error {
			var password string
			b.str(FieldErrors{}, "password", &password, false, 0, 0) // decode validated it
			if password == "" {
				return nil
			}
			h, err := HashPassword(password)
			v.PasswordHash = h
			return err
		},
		mayDelete: func(p *principal, v *store.User) error {
			if v.ID == p.user.ID {
				return errStatus(fiber.StatusConflict, "You cannot delete your own user.")
			}
			return nil
		},
		written: s.tokens.reset,
	}
}
