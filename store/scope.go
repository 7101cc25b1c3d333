package store

import "github.com/google/uuid"

// Scope limits what a caller may see: every organization (staff), or only the listed ones.
// Queries take it as two parameters: ($n::bool OR organization_id = ANY($n+1)).
type Scope struct {
	All  bool
	Orgs []uuid.UUID
}

// AllOrgs is the scope of a staff user.
var AllOrgs = Scope{All: true}

// OrgScope is the scope of one organization.
func OrgScope(ids ...uuid.UUID) Scope { return Scope{Orgs: ids} }

// Allows reports whether the scope includes the organization.
func (s Scope) Allows(org uuid.UUID) bool {
	if s.All {
		return true
	}
	for _, o := range s.Orgs {
		if o == org {
			return true
		}
	}
	return false
}

func (s Scope) args() (bool, []uuid.UUID) {
	if s.Orgs == nil {
		return s.All, []uuid.UUID{}
	}
	return s.All, s.Orgs
}

// Page is a limit/offset window on a stably ordered list.
type Page struct {
	Limit  int
	Offset int
}
