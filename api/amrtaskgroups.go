package api

import (
	"context"

	"github.com/google/uuid"

	"github.com/amrd/amrd/store"
)

// amrTaskGroupStore is what the AMR task group routes call.
type amrTaskGroupStore interface {
	ListAmrTaskGroups(context.Context, store.Scope, store.Filter, store.Page) ([]store.AmrTaskGroup, int, error)
	GetAmrTaskGroup(context.Context, store.Scope, uuid.UUID) (store.AmrTaskGroup, error)
	CreateAmrTaskGroup(context.Context, store.AmrTaskGroup) (store.AmrTaskGroup, error)
	UpdateAmrTaskGroup(context.Context, store.Scope, uuid.UUID, store.AmrTaskGroup) (store.AmrTaskGroup, error)
	DeleteAmrTaskGroup(context.Context, store.Scope, uuid.UUID) error
}

func (s *Server) amrTaskGroups() resource[store.AmrTaskGroup] {
	return resource[store.AmrTaskGroup]{
		list: s.st.ListAmrTaskGroups, get: s.st.GetAmrTaskGroup, create: s.st.CreateAmrTaskGroup,
		update: s.st.UpdateAmrTaskGroup, del: s.st.DeleteAmrTaskGroup,
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
