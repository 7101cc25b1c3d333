package api

import (
	"github.com/google/uuid"

	"github.com/amrd/amrd/store"
)

func (s *Server) amrTaskGroups() resource[store.AmrTaskGroup, uuid.UUID] {
	return resource[store.AmrTaskGroup, uuid.UUID]{
		rows:        s.tables.AmrTaskGroups,
		blank:       func() store.AmrTaskGroup { return store.AmrTaskGroup{Tasks: []uuid.UUID{}} },
		org:         func(v *store.AmrTaskGroup) **uuid.UUID { return &v.OrganizationID },
		orgRequired: true,
		decode: func(b body, v *store.AmrTaskGroup, full bool, errs FieldErrors) {
			b.str(errs, "name", &v.Name, full, 1, 150)
			b.str(errs, "description", &v.Description, false, 0, 500)
			b.idSet(errs, "tasks", &v.Tasks)
		},
	}
}
