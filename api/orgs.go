package api

import (
	"github.com/google/uuid"

	"github.com/amrd/amrd/store"
)

// Organizations and memberships are read by their members and written by staff only:
// they decide who sees what, so no organization editor may change them.

// organizations serves organizations.
func (s *Server) organizations() resource[store.Organization, uuid.UUID] {
	return resource[store.Organization, uuid.UUID]{
		rows:   s.tables.Organizations,
		policy: staffWrites,
		blank:  func() store.Organization { return store.Organization{IsActive: true} },
		decode: func(b body, v *store.Organization, full bool, errs FieldErrors) {
			b.str(errs, "name", &v.Name, full, 1, 64)
			b.boolean(errs, "is_active", &v.IsActive)
		},
	}
}

// memberships serves memberships, which have integer ids. Their organization is a
// field like the user, not the organization of a row: only staff write them.
func (s *Server) memberships() resource[store.Membership, int64] {
	return resource[store.Membership, int64]{
		rows:   s.tables.Memberships,
		policy: staffWrites,
		blank:  func() store.Membership { return store.Membership{Role: "viewer"} },
		decode: func(b body, v *store.Membership, full bool, errs FieldErrors) {
			b.id(errs, "organization", &v.OrganizationID, full)
			b.id(errs, "user", &v.UserID, full)
			b.oneOf(errs, "role", &v.Role, false, "viewer", "editor")
		},
	}
}
