package store

import (
	"context"
	"errors"
	"time"

	"github.com/google/uuid"
)

// Table is one administered resource's rows as a value with the five operations that
// the API's generic handlers call: T is the row, ID the type of its id (uuid.UUID, or
// int64 for memberships, system events and staged readings). A Table scopes, checks
// and maps errors exactly as the methods it is made of, which stay the store's API for
// everything else (jobs, the CLI, tests).
//
// An operation that a resource does not have is nil, and calling it returns
// errNoOperation (a programming error, never a client's: system events are never
// updated, and security key collections are created from their own input,
// CreateSecurityKeys). The API serves only the operations the contract lists.
type Table[T any, ID comparable] struct {
	list   func(context.Context, Scope, Filter, Page) ([]T, int, error)
	get    func(context.Context, Scope, ID) (T, error)
	create func(context.Context, T) (T, error)
	update func(context.Context, Scope, ID, T) (T, error)
	del    func(context.Context, Scope, ID) error
}

var errNoOperation = errors.New("store: the resource has no such operation")

// List returns one page of the rows in scope that match f, and how many match in all.
func (t Table[T, ID]) List(ctx context.Context, sc Scope, f Filter, p Page) ([]T, int, error) {
	if t.list == nil {
		return nil, 0, errNoOperation
	}
	return t.list(ctx, sc, f, p)
}

// Get returns one row in scope.
func (t Table[T, ID]) Get(ctx context.Context, sc Scope, id ID) (T, error) {
	if t.get == nil {
		return *new(T), errNoOperation
	}
	return t.get(ctx, sc, id)
}

// Create adds a row and returns it as stored.
func (t Table[T, ID]) Create(ctx context.Context, in T) (T, error) {
	if t.create == nil {
		return *new(T), errNoOperation
	}
	return t.create(ctx, in)
}

// Update replaces the fields of a row in scope and returns it as stored.
func (t Table[T, ID]) Update(ctx context.Context, sc Scope, id ID, in T) (T, error) {
	if t.update == nil {
		return *new(T), errNoOperation
	}
	return t.update(ctx, sc, id, in)
}

// Delete removes a row in scope.
func (t Table[T, ID]) Delete(ctx context.Context, sc Scope, id ID) error {
	if t.del == nil {
		return errNoOperation
	}
	return t.del(ctx, sc, id)
}

// The administered resources, one Table each.

// Organizations are scoped by their own id; their list has no filters.
func (s *Store) Organizations() Table[Organization, uuid.UUID] {
	input := func(o Organization) OrganizationInput { return OrganizationInput{Name: o.Name, IsActive: o.IsActive} }
	return Table[Organization, uuid.UUID]{
		list: func(ctx context.Context, sc Scope, _ Filter, p Page) ([]Organization, int, error) {
			return s.ListOrganizations(ctx, sc, p)
		},
		get: s.GetOrganization,
		create: func(ctx context.Context, in Organization) (Organization, error) {
			return s.CreateOrganization(ctx, input(in))
		},
		update: func(ctx context.Context, sc Scope, id uuid.UUID, in Organization) (Organization, error) {
			return s.UpdateOrganization(ctx, sc, id, input(in))
		},
		del: s.DeleteOrganization,
	}
}

// Memberships have integer ids; their list has no filters.
func (s *Store) Memberships() Table[Membership, int64] {
	input := func(m Membership) MembershipInput {
		return MembershipInput{OrganizationID: m.OrganizationID, UserID: m.UserID, Role: m.Role}
	}
	return Table[Membership, int64]{
		list: func(ctx context.Context, sc Scope, _ Filter, p Page) ([]Membership, int, error) {
			return s.ListMemberships(ctx, sc, p)
		},
		get: s.GetMembership,
		create: func(ctx context.Context, in Membership) (Membership, error) {
			return s.CreateMembership(ctx, input(in))
		},
		update: func(ctx context.Context, sc Scope, id int64, in Membership) (Membership, error) {
			return s.UpdateMembership(ctx, sc, id, input(in))
		},
		del: s.DeleteMembership,
	}
}

// Users belong to no organization (only staff reach them), so the scope is not used;
// their list has no filters. An empty PasswordHash on update keeps the stored one.
func (s *Store) Users() Table[User, uuid.UUID] {
	input := func(u User) UserInput {
		return UserInput{Username: u.Username, Email: u.Email, FirstName: u.FirstName, LastName: u.LastName,
			PasswordHash: u.PasswordHash, IsStaff: u.IsStaff, IsActive: u.IsActive}
	}
	return Table[User, uuid.UUID]{
		list:   func(ctx context.Context, _ Scope, _ Filter, p Page) ([]User, int, error) { return s.ListUsers(ctx, p) },
		get:    func(ctx context.Context, _ Scope, id uuid.UUID) (User, error) { return s.GetUser(ctx, id) },
		create: func(ctx context.Context, in User) (User, error) { return s.CreateUser(ctx, input(in)) },
		update: func(ctx context.Context, _ Scope, id uuid.UUID, in User) (User, error) {
			return s.UpdateUser(ctx, id, input(in))
		},
		del: func(ctx context.Context, _ Scope, id uuid.UUID) error { return s.DeleteUser(ctx, id) },
	}
}

// StagedReadings have integer ids and belong to no organization (only staff reach
// them), so the scope is not used. Their list filters are meter_device_name (a string),
// start_time and end_time (time.Time).
func (s *Store) StagedReadings() Table[StagedReading, int64] {
	return Table[StagedReading, int64]{
		list: func(ctx context.Context, _ Scope, f Filter, p Page) ([]StagedReading, int, error) {
			var sf StagedFilter
			sf.DeviceName, _ = f["meter_device_name"].(string)
			sf.Start, _ = f["start_time"].(time.Time)
			sf.End, _ = f["end_time"].(time.Time)
			return s.ListStaged(ctx, sf, p)
		},
		get:    func(ctx context.Context, _ Scope, id int64) (StagedReading, error) { return s.GetStaged(ctx, id) },
		create: s.CreateStaged,
		update: func(ctx context.Context, _ Scope, id int64, in StagedReading) (StagedReading, error) {
			return s.UpdateStaged(ctx, id, in)
		},
		del: func(ctx context.Context, _ Scope, id int64) error { return s.DeleteStaged(ctx, id) },
	}
}

// SimCards are the SIM cards.
func (s *Store) SimCards() Table[SimCard, uuid.UUID] {
	return Table[SimCard, uuid.UUID]{s.ListSimCards, s.GetSimCard, s.CreateSimCard, s.UpdateSimCard, s.DeleteSimCard}
}

// NetworkInterfaces are the meters' network interfaces.
func (s *Store) NetworkInterfaces() Table[NetworkInterface, uuid.UUID] {
	return Table[NetworkInterface, uuid.UUID]{s.ListNetworkInterfaces, s.GetNetworkInterface,
		s.CreateNetworkInterface, s.UpdateNetworkInterface, s.DeleteNetworkInterface}
}

// MeterReadingSeries are the meter reading series.
func (s *Store) MeterReadingSeries() Table[MeterReadingSeries, uuid.UUID] {
	return Table[MeterReadingSeries, uuid.UUID]{s.ListMeterReadingSeries, s.GetMeterReadingSeries,
		s.CreateMeterReadingSeries, s.UpdateMeterReadingSeries, s.DeleteMeterReadingSeries}
}

// MeterDeviceConfigs are the meter device configs.
func (s *Store) MeterDeviceConfigs() Table[MeterDeviceConfig, uuid.UUID] {
	return Table[MeterDeviceConfig, uuid.UUID]{s.ListMeterDeviceConfigs, s.GetMeterDeviceConfig,
		s.CreateMeterDeviceConfig, s.UpdateMeterDeviceConfig, s.DeleteMeterDeviceConfig}
}

// MeterDeviceTypes are the meter device types.
func (s *Store) MeterDeviceTypes() Table[MeterDeviceType, uuid.UUID] {
	return Table[MeterDeviceType, uuid.UUID]{s.ListMeterDeviceTypes, s.GetMeterDeviceType,
		s.CreateMeterDeviceType, s.UpdateMeterDeviceType, s.DeleteMeterDeviceType}
}

// MeterSystemEvents are the meters' system events: integer ids, and no update.
func (s *Store) MeterSystemEvents() Table[MeterSystemEvent, int64] {
	return Table[MeterSystemEvent, int64]{list: s.ListMeterSystemEvents, get: s.GetMeterSystemEvent,
		create: s.CreateMeterSystemEvent, del: s.DeleteMeterSystemEvent}
}

// SecurityKeys are the meter security key collections: no update, and no create
// (CreateSecurityKeys takes the keys in clear, which a read never returns).
func (s *Store) SecurityKeys() Table[SecurityKeys, uuid.UUID] {
	return Table[SecurityKeys, uuid.UUID]{list: s.ListSecurityKeys, get: s.GetSecurityKeys, del: s.DeleteSecurityKeys}
}

// AmrTaskGroups are the AMR task groups.
func (s *Store) AmrTaskGroups() Table[AmrTaskGroup, uuid.UUID] {
	return Table[AmrTaskGroup, uuid.UUID]{s.ListAmrTaskGroups, s.GetAmrTaskGroup,
		s.CreateAmrTaskGroup, s.UpdateAmrTaskGroup, s.DeleteAmrTaskGroup}
}

// AmrTasks are the AMR tasks.
func (s *Store) AmrTasks() Table[AmrTask, uuid.UUID] {
	return Table[AmrTask, uuid.UUID]{s.ListAmrTasks, s.GetAmrTask, s.CreateAmrTask, s.UpdateAmrTask, s.DeleteAmrTask}
}

// MeterDevices are the meter devices.
func (s *Store) MeterDevices() Table[MeterDevice, uuid.UUID] {
	return Table[MeterDevice, uuid.UUID]{s.ListMeterDevices, s.GetMeterDevice,
		s.CreateMeterDevice, s.UpdateMeterDevice, s.DeleteMeterDevice}
}
