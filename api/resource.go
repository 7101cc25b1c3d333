package api

import (
	"context"

	"github.com/gofiber/fiber/v2"
	"github.com/google/uuid"

	"github.com/amrd/amrd/store"
)

// resource is one administered entity type of the metering API, served by the generic
// handlers below: they own tenancy (scope on reads, write rights, the organization of
// editors), pagination, filters and status codes, so that each resource file only
// declares its fields and rules.
type resource[T any] struct {
	list   func(context.Context, store.Scope, store.Filter, store.Page) ([]T, int, error)
	get    func(context.Context, store.Scope, uuid.UUID) (T, error)
	create func(context.Context, T) (T, error)
	update func(context.Context, store.Scope, uuid.UUID, T) (T, error)
	del    func(context.Context, store.Scope, uuid.UUID) error

	// blank returns the defaults of a new row (POST starts from it).
	blank func() T
	// decode applies the body onto in; full (POST, PUT) makes required fields required.
	decode func(b body, in *T, full bool, errs FieldErrors)
	// org points at the row's organization field.
	org func(*T) **uuid.UUID
	// orgRequired says whether a row must have an organization (the contract lets SIM
	// cards and meter devices have none; such rows are seen by staff only).
	orgRequired bool
	// filters maps each list filter the contract names to how its value is parsed.
	filters map[string]filterKind
}

// routes registers the operations named in ops ("list", "create", "get", "update",
// "delete"): only the methods the contract lists are served.
func (r resource[T]) routes(g fiber.Router, path string, ops ...string) {
	for _, op := range ops {
		switch op {
		case "list":
			g.Get(path, func(c *fiber.Ctx) error { return r.handleList(c) })
		case "create":
			g.Post(path, func(c *fiber.Ctx) error { return r.handleCreate(c) })
		case "get":
			g.Get(path+"/:id", func(c *fiber.Ctx) error { return r.handleGet(c) })
		case "update":
			g.Put(path+"/:id", func(c *fiber.Ctx) error { return r.handleUpdate(c) })
			g.Patch(path+"/:id", func(c *fiber.Ctx) error { return r.handleUpdate(c) })
		case "delete":
			g.Delete(path+"/:id", func(c *fiber.Ctx) error { return r.handleDelete(c) })
		default:
			panic("unknown operation " + op)
		}
	}
}

func (r resource[T]) handleList(c *fiber.Ctx) error {
	p, err := pageParams(c)
	if err != nil {
		return err
	}
	f, err := parseFilters(c, r.filters)
	if err != nil {
		return err
	}
	list, n, err := r.list(c.UserContext(), current(c).scope(), f, p)
	if err != nil {
		return err
	}
	return c.JSON(newPage(c, p, n, list))
}

func (r resource[T]) handleGet(c *fiber.Ctx) error {
	id, err := pathUUID(c)
	if err != nil {
		return err
	}
	return getOne(c, id, r.get)
}

// getOne answers one row in the caller's scope, whatever the type of its id (UUID, or
// integer for events).
func getOne[T, K any](c *fiber.Ctx, id K, get func(context.Context, store.Scope, K) (T, error)) error {
	v, err := get(c.UserContext(), current(c).scope(), id)
	if err != nil {
		return err
	}
	return c.JSON(v)
}

func (r resource[T]) handleCreate(c *fiber.Ctx) error {
	if !current(c).editsAny() {
		return errForbidden
	}
	b, err := readBody(c)
	if err != nil {
		return err
	}
	in := r.blank()
	if err := r.apply(c, b, &in, true); err != nil {
		return err
	}
	v, err := r.create(c.UserContext(), in)
	if err != nil {
		return err
	}
	return c.Status(fiber.StatusCreated).JSON(v)
}

// handleUpdate serves PUT (every required field must be sent) and PATCH (only the fields
// sent); both start from the stored row.
func (r resource[T]) handleUpdate(c *fiber.Ctx) error {
	id, err := pathUUID(c)
	if err != nil {
		return err
	}
	p := current(c)
	old, err := r.get(c.UserContext(), p.scope(), id)
	if err != nil {
		return err
	}
	if !p.canWriteRow(*r.org(&old)) {
		return errForbidden
	}
	b, err := readBody(c)
	if err != nil {
		return err
	}
	in := old
	// PUT requires every required field; like DRF's full update, it leaves optional
	// fields it does not send as they are (resetting them would lose data a client never
	// meant to touch).
	if err := r.apply(c, b, &in, c.Method() == fiber.MethodPut); err != nil {
		return err
	}
	v, err := r.update(c.UserContext(), p.scope(), id, in)
	if err != nil {
		return err
	}
	return c.JSON(v)
}

func (r resource[T]) handleDelete(c *fiber.Ctx) error {
	id, err := pathUUID(c)
	if err != nil {
		return err
	}
	return deleteOne(c, id, r.get, r.del, r.org)
}

// deleteOne deletes one row in the caller's scope (else 404) if the caller may write in
// its organization (else 403), whatever the type of its id.
func deleteOne[T, K any](c *fiber.Ctx, id K, get func(context.Context, store.Scope, K) (T, error),
	del func(context.Context, store.Scope, K) error, org func(*T) **uuid.UUID) error {
	p := current(c)
	old, err := get(c.UserContext(), p.scope(), id)
	if err != nil {
		return err
	}
	if !p.canWriteRow(*org(&old)) {
		return errForbidden
	}
	if err := del(c.UserContext(), p.scope(), id); err != nil {
		return err
	}
	return c.SendStatus(fiber.StatusNoContent)
}

// apply decodes the body onto in and settles its organization for the caller.
func (r resource[T]) apply(c *fiber.Ctx, b body, in *T, full bool) error {
	errs := FieldErrors{}
	org := r.org(in)
	b.nid(errs, "organization", org)
	r.decode(b, in, full, errs)
	if len(errs["organization"]) > 0 {
		return errs
	}
	if err := current(c).placeOrg(org, r.orgRequired, b.has("organization"), full, errs); err != nil {
		return err
	}
	return errs.orNil()
}

// editsAny reports whether the principal may write anywhere at all.
func (p *principal) editsAny() bool {
	if p.staff {
		return true
	}
	for _, role := range p.roles {
		if role == "editor" {
			return true
		}
	}
	return false
}

// canWriteRow reports whether the principal may change a row of the organization (rows
// without one are staff's).
func (p *principal) canWriteRow(org *uuid.UUID) bool {
	if p.staff {
		return true
	}
	return org != nil && p.canWrite(*org)
}

// placeOrg settles the organization of a row being written. Staff write what they send.
// A JWT user writes in the token's organization: any organization in the body is
// replaced, as Utilitarian does. Other users (Basic) name an organization they edit, or
// get the only one they edit.
func (p *principal) placeOrg(org **uuid.UUID, required, sent, full bool, errs FieldErrors) error {
	switch {
	case p.staff:
		if required && *org == nil && (full || sent) {
			if sent {
				errs.add("organization", "This field may not be null.")
			} else {
				errs.add("organization", "This field is required.")
			}
		}
		return nil
	case p.method == "jwt":
		o := p.org
		*org = &o
	case *org == nil:
		var only []uuid.UUID
		for o, role := range p.roles {
			if role == "editor" {
				only = append(only, o)
			}
		}
		if len(only) != 1 {
			errs.add("organization", "This field is required.")
			return nil
		}
		*org = &only[0]
	}
	if !p.canWrite(**org) {
		return errForbidden
	}
	return nil
}
