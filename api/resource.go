package api

import (
	"context"

	"github.com/gofiber/fiber/v2"
	"github.com/google/uuid"

	"github.com/amrd/amrd/store"
)

// crudStore is what the generic handlers call on the rows of one resource: T is the
// row, ID the type of its id. store.Table satisfies it (store.Store's SimCards,
// Organizations, ...); handler tests fake it.
type crudStore[T any, ID rowID] interface {
	List(ctx context.Context, sc store.Scope, f store.Filter, p store.Page) ([]T, int, error)
	Get(ctx context.Context, sc store.Scope, id ID) (T, error)
	Create(ctx context.Context, in T) (T, error)
	Update(ctx context.Context, sc store.Scope, id ID, in T) (T, error)
	Delete(ctx context.Context, sc store.Scope, id ID) error
}

// rowID is the type of a row's id: a UUID, or an integer (memberships, system events,
// staged readings), as in Utilitarian.
type rowID interface{ uuid.UUID | int64 }

// policy says who may read and write a resource's rows.
type policy int

const (
	// orgRows: rows of an organization, read in the caller's scope and written by the
	// organization's editors (staff: any); the body's organization is settled by placeOrg.
	orgRows policy = iota
	// staffWrites: read in the caller's scope, written by staff only (organizations and
	// memberships decide who sees what, so no organization editor may change them).
	staffWrites
	// staffOnly: read and written by staff only (users; staged readings, which belong to
	// no organization since their device does not exist yet).
	staffOnly
)

// resource is one administered entity type, served by the generic handlers below: they
// own access (scope on reads, write rights, the organization of editors), pagination,
// filters and status codes, so that each resource file only declares its fields and
// rules.
type resource[T any, ID rowID] struct {
	rows   crudStore[T, ID]
	policy policy

	// blank returns the defaults of a new row (POST starts from it).
	blank func() T
	// decode applies the body onto in; full (POST, PUT) makes required fields required.
	decode func(b body, in *T, full bool, errs FieldErrors)
	// prepare, when set, completes a row whose body is valid, before it is written
	// (users: the password's hash).
	prepare func(b body, in *T) error
	// org points at the row's organization field (orgRows only).
	org func(*T) **uuid.UUID
	// orgRequired says whether a row must have an organization (the contract lets SIM
	// cards and meter devices have none; such rows are seen by staff only).
	orgRequired bool
	// filters maps each list filter the contract names to how its value is parsed.
	filters map[string]filterKind
	// mayDelete, when set, refuses the delete of a row that the caller may otherwise
	// write (users: one's own).
	mayDelete func(p *principal, v *T) error
	// written, when set, runs after every update and delete, whether or not it
	// succeeded (users: the token cache forgets what it knew).
	written func()
}

// routes registers the operations named in ops ("list", "create", "get", "update",
// "delete"): only the methods the contract lists are served.
func (r resource[T, ID]) routes(g fiber.Router, path string, ops ...string) {
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

// pathID reads the :id parameter of the path as an ID; anything else is a 404.
func pathID[ID rowID](c *fiber.Ctx) (ID, error) {
	var id ID
	var err error
	switch p := any(&id).(type) {
	case *uuid.UUID:
		*p, err = pathUUID(c)
	case *int64:
		*p, err = pathInt(c)
	}
	return id, err
}

// enter is the first check of every operation: a staffOnly resource answers 403 to
// anyone else before anything of the request is read.
func (r resource[T, ID]) enter(c *fiber.Ctx) error {
	if r.policy == staffOnly && !current(c).staff {
		return errStaffOnly
	}
	return nil
}

// mayCreate says whether the caller may create rows at all.
func (r resource[T, ID]) mayCreate(p *principal) error {
	switch {
	case r.policy == orgRows && !p.editsAny():
		return errForbidden
	case r.policy != orgRows && !p.staff:
		return errStaffOnly
	}
	return nil
}

// mayWrite says whether the caller may change the stored row v.
func (r resource[T, ID]) mayWrite(p *principal, v *T) error {
	switch {
	case r.policy == orgRows && !p.canWriteRow(*r.org(v)):
		return errForbidden
	case r.policy != orgRows && !p.staff:
		return errStaffOnly
	}
	return nil
}

func (r resource[T, ID]) handleList(c *fiber.Ctx) error {
	if err := r.enter(c); err != nil {
		return err
	}
	p, err := pageParams(c)
	if err != nil {
		return err
	}
	f, err := parseFilters(c, r.filters)
	if err != nil {
		return err
	}
	list, n, err := r.rows.List(c.UserContext(), current(c).scope(), f, p)
	if err != nil {
		return err
	}
	return c.JSON(newPage(c, p, n, list))
}

func (r resource[T, ID]) handleGet(c *fiber.Ctx) error {
	if err := r.enter(c); err != nil {
		return err
	}
	id, err := pathID[ID](c)
	if err != nil {
		return err
	}
	return getOne(c, id, r.rows.Get)
}

// getOne answers one row in the caller's scope, whatever the type of its id (readings
// have integer ids and no resource).
func getOne[T, K any](c *fiber.Ctx, id K, get func(context.Context, store.Scope, K) (T, error)) error {
	v, err := get(c.UserContext(), current(c).scope(), id)
	if err != nil {
		return err
	}
	return c.JSON(v)
}

func (r resource[T, ID]) handleCreate(c *fiber.Ctx) error {
	if err := r.mayCreate(current(c)); err != nil {
		return err
	}
	b, err := readBody(c)
	if err != nil {
		return err
	}
	in := r.blank()
	if err := r.apply(c, b, &in, true); err != nil {
		return err
	}
	v, err := r.rows.Create(c.UserContext(), in)
	if err != nil {
		return err
	}
	return c.Status(fiber.StatusCreated).JSON(v)
}

// target reads the row that an update or a delete is about: one in the caller's scope
// (else 404, before any right is checked, so that ids do not leak across organizations)
// that the caller may write (else 403).
func (r resource[T, ID]) target(c *fiber.Ctx) (ID, *principal, T, error) {
	var id ID
	var old T
	if err := r.enter(c); err != nil {
		return id, nil, old, err
	}
	id, err := pathID[ID](c)
	if err != nil {
		return id, nil, old, err
	}
	p := current(c)
	if old, err = r.rows.Get(c.UserContext(), p.scope(), id); err != nil {
		return id, nil, old, err
	}
	return id, p, old, r.mayWrite(p, &old)
}

// handleUpdate serves PUT (every required field must be sent) and PATCH (only the fields
// sent); both start from the stored row.
func (r resource[T, ID]) handleUpdate(c *fiber.Ctx) error {
	id, p, old, err := r.target(c)
	if err != nil {
		return err
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
	v, err := r.rows.Update(c.UserContext(), p.scope(), id, in)
	r.wrote()
	if err != nil {
		return err
	}
	return c.JSON(v)
}

func (r resource[T, ID]) handleDelete(c *fiber.Ctx) error {
	id, p, old, err := r.target(c)
	if err != nil {
		return err
	}
	if r.mayDelete != nil {
		if err := r.mayDelete(p, &old); err != nil {
			return err
		}
	}
	err = r.rows.Delete(c.UserContext(), p.scope(), id)
	r.wrote()
	if err != nil {
		return err
	}
	return c.SendStatus(fiber.StatusNoContent)
}

func (r resource[T, ID]) wrote() {
	if r.written != nil {
		r.written()
	}
}

// deleteOne deletes one row in the caller's scope (else 404) if the caller may write in
// its organization (else 403), whatever the type of its id (readings have integer ids
// and no resource).
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

// apply decodes the body onto in and, for rows of an organization, settles that
// organization for the caller.
func (r resource[T, ID]) apply(c *fiber.Ctx, b body, in *T, full bool) error {
	errs := FieldErrors{}
	if r.policy == orgRows {
		org := r.org(in)
		b.nid(errs, "organization", org)
		r.decode(b, in, full, errs)
		if len(errs["organization"]) > 0 {
			return errs
		}
		if err := current(c).placeOrg(org, r.orgRequired, b.has("organization"), full, errs); err != nil {
			return err
		}
	} else {
		r.decode(b, in, full, errs)
	}
	if err := errs.orNil(); err != nil {
		return err
	}
	if r.prepare != nil {
		return r.prepare(b, in)
	}
	return nil
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
