package store

import (
	"context"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
)

// AmrTaskGroup is a named set of AMR tasks of one organization, given to meter devices
// as a whole.
type AmrTaskGroup struct {
	ID             uuid.UUID   `json:"id"`
	Name           string      `json:"name"`
	OrganizationID *uuid.UUID  `json:"organization"`
	Description    string      `json:"description"`
	Tasks          []uuid.UUID `json:"tasks"`
	// TasksInfo is the names of the group's tasks, sorted and joined with ", " (empty
	// for a group without tasks): read only, for people and lists.
	TasksInfo string    `json:"tasks_info"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

var amrTaskGroups = entity[AmrTaskGroup]{
	what: "an AMR task group",
	from: "amr_task_groups x",
	cols: "x.id, x.name, x.organization_id, x.description, " + idList("amr_task_group_tasks", "group_id", "task_id") + ", " +
		"coalesce((SELECT string_agg(t.name, ', ' ORDER BY t.name, t.id) FROM amr_task_group_tasks l " +
		"JOIN amr_tasks t ON t.id = l.task_id WHERE l.group_id = x.id), ''), x.created_at, x.updated_at",
	order: "x.created_at, x.id",
	scan: func(row pgx.CollectableRow) (AmrTaskGroup, error) {
		var v AmrTaskGroup
		err := row.Scan(&v.ID, &v.Name, &v.OrganizationID, &v.Description, &v.Tasks, &v.TasksInfo, &v.CreatedAt, &v.UpdatedAt)
		return v, err
	},
}

// ListAmrTaskGroups returns one page of AMR task groups in scope.
func (s *Store) ListAmrTaskGroups(ctx context.Context, sc Scope, f Filter, p Page) ([]AmrTaskGroup, int, error) {
	return amrTaskGroups.list(ctx, s.pool, sc, f, p)
}

// GetAmrTaskGroup returns one AMR task group in scope.
func (s *Store) GetAmrTaskGroup(ctx context.Context, sc Scope, id uuid.UUID) (AmrTaskGroup, error) {
	return amrTaskGroups.get(ctx, s.pool, sc, id)
}

// CreateAmrTaskGroup adds an AMR task group; its tasks must belong to its organization.
func (s *Store) CreateAmrTaskGroup(ctx context.Context, in AmrTaskGroup) (AmrTaskGroup, error) {
	var out AmrTaskGroup
	err := s.inTx(ctx, "creating an AMR task group", func(tx pgx.Tx) error {
		var id uuid.UUID
		if err := tx.QueryRow(ctx, `INSERT INTO amr_task_groups (organization_id, name, description)
			VALUES ($1, $2, $3) RETURNING id`, orgOf(in.OrganizationID), in.Name, in.Description).Scan(&id); err != nil {
			return err
		}
		var err error
		out, err = writeGroupTasks(ctx, tx, id, in)
		return err
	})
	return out, err
}

// UpdateAmrTaskGroup replaces an AMR task group's fields and tasks. A group used by meter
// devices of its organization cannot move to another organization (409).
func (s *Store) UpdateAmrTaskGroup(ctx context.Context, sc Scope, id uuid.UUID, in AmrTaskGroup) (AmrTaskGroup, error) {
	var out AmrTaskGroup
	err := s.inTx(ctx, "updating an AMR task group", func(tx pgx.Tx) error {
		if err := updateScoped(ctx, tx, sc, `UPDATE amr_task_groups x SET organization_id = $2, name = $3, description = $4,
			updated_at = now()`, id, orgOf(in.OrganizationID), in.Name, in.Description); err != nil {
			return err
		}
		if err := refusedIfUsedElsewhere(ctx, tx, "meter_device_task_groups l JOIN meter_devices d ON d.id = l.device_id", "l.group_id",
			id, in.OrganizationID, "meter devices of another organization use this AMR task group"); err != nil {
			return err
		}
		var err error
		out, err = writeGroupTasks(ctx, tx, id, in)
		return err
	})
	return out, err
}

// writeGroupTasks checks and sets the tasks of group id, then reads the group back.
func writeGroupTasks(ctx context.Context, tx pgx.Tx, id uuid.UUID, in AmrTaskGroup) (AmrTaskGroup, error) {
	if err := checkRefs(ctx, tx, in.OrganizationID, ref{field: "tasks", table: "amr_tasks", ids: in.Tasks}); err != nil {
		return AmrTaskGroup{}, err
	}
	if err := setLinks(ctx, tx, "amr_task_group_tasks", "group_id", "task_id", id, in.Tasks); err != nil {
		return AmrTaskGroup{}, err
	}
	return amrTaskGroups.get(ctx, tx, AllOrgs, id)
}

// DeleteAmrTaskGroup removes an AMR task group (its task links go with it; the tasks
// stay). It is refused (409) while meter devices use the group.
func (s *Store) DeleteAmrTaskGroup(ctx context.Context, sc Scope, id uuid.UUID) error {
	return remove(ctx, s.pool, "amr_task_groups", "an AMR task group", sc, id)
}
