package api

import (
	"github.com/gofiber/fiber/v2"

	"github.com/amrd/amrd/store"
)

// Organizations and memberships are read by their members and written by staff only:
// they decide who sees what, so no organization editor may change them.

func (s *Server) listOrganizations(c *fiber.Ctx) error {
	p, err := pageParams(c)
	if err != nil {
		return err
	}
	list, n, err := s.st.ListOrganizations(c.UserContext(), current(c).scope(), p)
	if err != nil {
		return err
	}
	return c.JSON(newPage(c, p, n, list))
}

func (s *Server) getOrganization(c *fiber.Ctx) error {
	id, err := pathUUID(c)
	if err != nil {
		return err
	}
	o, err := s.st.GetOrganization(c.UserContext(), current(c).scope(), id)
	if err != nil {
		return err
	}
	return c.JSON(o)
}

func orgInput(b body, in *store.OrganizationInput, full bool) error {
	errs := FieldErrors{}
	b.str(errs, "name", &in.Name, full, 1, 64)
	b.boolean(errs, "is_active", &in.IsActive)
	return errs.orNil()
}

func (s *Server) createOrganization(c *fiber.Ctx) error {
	if !current(c).staff {
		return errStaffOnly
	}
	b, err := readBody(c)
	if err != nil {
		return err
	}
	in := store.OrganizationInput{IsActive: true}
	if err := orgInput(b, &in, true); err != nil {
		return err
	}
	o, err := s.st.CreateOrganization(c.UserContext(), in)
	if err != nil {
		return err
	}
	return c.Status(fiber.StatusCreated).JSON(o)
}

// updateOrganization serves PUT (every required field) and PATCH (only the fields sent).
func (s *Server) updateOrganization(c *fiber.Ctx) error {
	id, err := pathUUID(c)
	if err != nil {
		return err
	}
	p := current(c)
	old, err := s.st.GetOrganization(c.UserContext(), p.scope(), id)
	if err != nil {
		return err
	}
	if !p.staff {
		return errStaffOnly
	}
	b, err := readBody(c)
	if err != nil {
		return err
	}
	in := store.OrganizationInput{Name: old.Name, IsActive: old.IsActive}
	if err := orgInput(b, &in, c.Method() == fiber.MethodPut); err != nil {
		return err
	}
	o, err := s.st.UpdateOrganization(c.UserContext(), p.scope(), id, in)
	if err != nil {
		return err
	}
	return c.JSON(o)
}

func (s *Server) deleteOrganization(c *fiber.Ctx) error {
	id, err := pathUUID(c)
	if err != nil {
		return err
	}
	p := current(c)
	if _, err := s.st.GetOrganization(c.UserContext(), p.scope(), id); err != nil {
		return err
	}
	if !p.staff {
		return errStaffOnly
	}
	if err := s.st.DeleteOrganization(c.UserContext(), p.scope(), id); err != nil {
		return err
	}
	return c.SendStatus(fiber.StatusNoContent)
}

func (s *Server) listMemberships(c *fiber.Ctx) error {
	p, err := pageParams(c)
	if err != nil {
		return err
	}
	list, n, err := s.st.ListMemberships(c.UserContext(), current(c).scope(), p)
	if err != nil {
		return err
	}
	return c.JSON(newPage(c, p, n, list))
}

func (s *Server) getMembership(c *fiber.Ctx) error {
	id, err := pathInt(c)
	if err != nil {
		return err
	}
	m, err := s.st.GetMembership(c.UserContext(), current(c).scope(), id)
	if err != nil {
		return err
	}
	return c.JSON(m)
}

func memberInput(b body, in *store.MembershipInput, full bool) error {
	errs := FieldErrors{}
	b.id(errs, "organization", &in.OrganizationID, full)
	b.id(errs, "user", &in.UserID, full)
	b.oneOf(errs, "role", &in.Role, false, "viewer", "editor")
	return errs.orNil()
}

func (s *Server) createMembership(c *fiber.Ctx) error {
	if !current(c).staff {
		return errStaffOnly
	}
	b, err := readBody(c)
	if err != nil {
		return err
	}
	in := store.MembershipInput{Role: "viewer"}
	if err := memberInput(b, &in, true); err != nil {
		return err
	}
	m, err := s.st.CreateMembership(c.UserContext(), in)
	if err != nil {
		return err
	}
	return c.Status(fiber.StatusCreated).JSON(m)
}

func (s *Server) updateMembership(c *fiber.Ctx) error {
	id, err := pathInt(c)
	if err != nil {
		return err
	}
	p := current(c)
	old, err := s.st.GetMembership(c.UserContext(), p.scope(), id)
	if err != nil {
		return err
	}
	if !p.staff {
		return errStaffOnly
	}
	b, err := readBody(c)
	if err != nil {
		return err
	}
	in := store.MembershipInput{OrganizationID: old.OrganizationID, UserID: old.UserID, Role: old.Role}
	if err := memberInput(b, &in, c.Method() == fiber.MethodPut); err != nil {
		return err
	}
	m, err := s.st.UpdateMembership(c.UserContext(), p.scope(), id, in)
	if err != nil {
		return err
	}
	return c.JSON(m)
}

func (s *Server) deleteMembership(c *fiber.Ctx) error {
	id, err := pathInt(c)
	if err != nil {
		return err
	}
	p := current(c)
	if _, err := s.st.GetMembership(c.UserContext(), p.scope(), id); err != nil {
		return err
	}
	if !p.staff {
		return errStaffOnly
	}
	if err := s.st.DeleteMembership(c.UserContext(), p.scope(), id); err != nil {
		return err
	}
	return c.SendStatus(fiber.StatusNoContent)
}
