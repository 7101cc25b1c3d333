package api

import (
	"regexp"

	"github.com/gofiber/fiber/v2"

	"github.com/amrd/amrd/store"
)

// Users are managed by staff only. Passwords are write-only: accepted on create and
// update, stored as bcrypt hashes, never returned.

// usernameRule is Django's: letters, digits and @ . + - _ only.
var usernameRule = regexp.MustCompile(`^[\p{L}\p{N}@.+\-_]+$`)

// minPasswordLen follows NIST SP 800-63B's minimum for user-chosen secrets.
const minPasswordLen = 8

func staffOnly(c *fiber.Ctx) error {
	if !current(c).staff {
		return errStaffOnly
	}
	return nil
}

func (s *Server) listUsers(c *fiber.Ctx) error {
	if err := staffOnly(c); err != nil {
		return err
	}
	p, err := pageParams(c)
	if err != nil {
		return err
	}
	list, n, err := s.st.ListUsers(c.UserContext(), p)
	if err != nil {
		return err
	}
	return c.JSON(newPage(c, p, n, list))
}

func (s *Server) getUser(c *fiber.Ctx) error {
	if err := staffOnly(c); err != nil {
		return err
	}
	id, err := pathUUID(c)
	if err != nil {
		return err
	}
	u, err := s.st.GetUser(c.UserContext(), id)
	if err != nil {
		return err
	}
	return c.JSON(u)
}

// userInput validates a user body; with full set, username (and on create, password) are
// required.
func userInput(b body, in *store.UserInput, full, create bool) error {
	errs := FieldErrors{}
	b.str(errs, "username", &in.Username, full, 1, 150)
	if b.has("username") && len(errs["username"]) == 0 && !usernameRule.MatchString(in.Username) {
		errs.add("username", "Enter a valid username. This value may contain only letters, numbers, and @/./+/-/_ characters.")
	}
	var password string
	b.str(errs, "password", &password, create, minPasswordLen, 128)
	b.str(errs, "email", &in.Email, false, 0, 254)
	b.str(errs, "first_name", &in.FirstName, false, 0, 150)
	b.str(errs, "last_name", &in.LastName, false, 0, 150)
	b.boolean(errs, "is_staff", &in.IsStaff)
	b.boolean(errs, "is_active", &in.IsActive)
	if err := errs.orNil(); err != nil {
		return err
	}
	if password != "" {
		h, err := HashPassword(password)
		if err != nil {
			return err
		}
		in.PasswordHash = h
	}
	return nil
}

func (s *Server) createUser(c *fiber.Ctx) error {
	if err := staffOnly(c); err != nil {
		return err
	}
	b, err := readBody(c)
	if err != nil {
		return err
	}
	in := store.UserInput{IsActive: true}
	if err := userInput(b, &in, true, true); err != nil {
		return err
	}
	u, err := s.st.CreateUser(c.UserContext(), in)
	if err != nil {
		return err
	}
	return c.Status(fiber.StatusCreated).JSON(u)
}

func (s *Server) updateUser(c *fiber.Ctx) error {
	if err := staffOnly(c); err != nil {
		return err
	}
	id, err := pathUUID(c)
	if err != nil {
		return err
	}
	old, err := s.st.GetUser(c.UserContext(), id)
	if err != nil {
		return err
	}
	b, err := readBody(c)
	if err != nil {
		return err
	}
	in := store.UserInput{Username: old.Username, Email: old.Email, FirstName: old.FirstName,
		LastName: old.LastName, IsStaff: old.IsStaff, IsActive: old.IsActive}
	if err := userInput(b, &in, c.Method() == fiber.MethodPut, false); err != nil {
		return err
	}
	u, err := s.st.UpdateUser(c.UserContext(), id, in)
	s.tokens.reset()
	if err != nil {
		return err
	}
	return c.JSON(u)
}

func (s *Server) deleteUser(c *fiber.Ctx) error {
	if err := staffOnly(c); err != nil {
		return err
	}
	id, err := pathUUID(c)
	if err != nil {
		return err
	}
	if id == current(c).user.ID {
		return errStatus(fiber.StatusConflict, "You cannot delete your own user.")
	}
	err = s.st.DeleteUser(c.UserContext(), id)
	s.tokens.reset()
	if err != nil {
		return err
	}
	return c.SendStatus(fiber.StatusNoContent)
}
