package store

import (
	"context"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
)

// NetworkInterface is how a meter is reached over IP: a fixed address, a DNS name, or the
// address of its modem's SIM card.
type NetworkInterface struct {
	ID              uuid.UUID  `json:"id"`
	OrganizationID  *uuid.UUID `json:"organization"`
	StaticIPAddress *string    `json:"static_ip_address"`
	// Host is what a collector connects to: the FQDN, else the static IP address, else the
	// SIM card's IP address; nil when there is none. Read only.
	Host      *string    `json:"host"`
	FQDN      *string    `json:"fqdn"`
	Port      *int64     `json:"port"`
	SimID     *uuid.UUID `json:"sim"`
	CanBlock  bool       `json:"can_block"`
	IsBlocked bool       `json:"is_blocked"` // read only
	// BlockTime is when the block began; nil unless blocked. Read only.
	BlockTime *time.Time `json:"block_time"`
	CreatedAt time.Time  `json:"created_at"`
	UpdatedAt time.Time  `json:"updated_at"`
}

var networkInterfaces = entity[NetworkInterface]{
	what: "a network interface",
	from: "network_interfaces x LEFT JOIN sim_cards s ON s.id = x.sim_id",
	cols: `x.id, x.organization_id, x.static_ip_address, coalesce(x.fqdn, x.static_ip_address, s.ip_address), x.fqdn,
		x.port, x.sim_id, x.can_block, x.is_blocked, CASE WHEN x.is_blocked THEN x.block_time END, x.created_at, x.updated_at`,
	order: "x.created_at, x.id",
	scan: func(row pgx.CollectableRow) (NetworkInterface, error) {
		var v NetworkInterface
		err := row.Scan(&v.ID, &v.OrganizationID, &v.StaticIPAddress, &v.Host, &v.FQDN, &v.Port, &v.SimID, &v.CanBlock,
			&v.IsBlocked, &v.BlockTime, &v.CreatedAt, &v.UpdatedAt)
		return v, err
	},
}

// ListNetworkInterfaces returns one page of network interfaces in scope.
func (s *Store) ListNetworkInterfaces(ctx context.Context, sc Scope, f Filter, p Page) ([]NetworkInterface, int, error) {
	return networkInterfaces.list(ctx, s.pool, sc, f, p)
}

// GetNetworkInterface returns one network interface in scope.
func (s *Store) GetNetworkInterface(ctx context.Context, sc Scope, id uuid.UUID) (NetworkInterface, error) {
	return networkInterfaces.get(ctx, s.pool, sc, id)
}

// CreateNetworkInterface adds a network interface; its SIM card must belong to the same
// organization. The block state starts cleared.
func (s *Store) CreateNetworkInterface(ctx context.Context, in NetworkInterface) (NetworkInterface, error) {
	var out NetworkInterface
	err := s.inTx(ctx, "creating a network interface", func(tx pgx.Tx) error {
		if err := checkRefs(ctx, tx, in.OrganizationID, netifRefs(in)...); err != nil {
			return err
		}
		var id uuid.UUID
		if err := tx.QueryRow(ctx, `INSERT INTO network_interfaces (organization_id, static_ip_address, fqdn, port, sim_id, can_block)
			VALUES ($1, $2, $3, $4, $5, $6) RETURNING id`,
			orgOf(in.OrganizationID), in.StaticIPAddress, in.FQDN, in.Port, in.SimID, in.CanBlock).Scan(&id); err != nil {
			return err
		}
		var err error
		out, err = networkInterfaces.get(ctx, tx, AllOrgs, id)
		return err
	})
	return out, err
}

// UpdateNetworkInterface replaces the writable fields of a network interface (the block
// state is not one of them). One used by meter devices cannot move to another
// organization.
func (s *Store) UpdateNetworkInterface(ctx context.Context, sc Scope, id uuid.UUID, in NetworkInterface) (NetworkInterface, error) {
	var out NetworkInterface
	err := s.inTx(ctx, "updating a network interface", func(tx pgx.Tx) error {
		old, err := lockOrg(ctx, tx, "network_interfaces", sc, id)
		if err != nil {
			return err
		}
		if err := checkRefs(ctx, tx, in.OrganizationID, netifRefs(in)...); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `UPDATE network_interfaces SET organization_id = $2, static_ip_address = $3, fqdn = $4,
			port = $5, sim_id = $6, can_block = $7, updated_at = now() WHERE id = $1`,
			id, orgOf(in.OrganizationID), in.StaticIPAddress, in.FQDN, in.Port, in.SimID, in.CanBlock); err != nil {
			return err
		}
		if !sameOrg(old, in.OrganizationID) {
			if err := refusedIfUsedElsewhere(ctx, tx, "meter_devices", "network_interface_id", id, in.OrganizationID,
				"meter devices of another organization use this network interface"); err != nil {
				return err
			}
		}
		out, err = networkInterfaces.get(ctx, tx, AllOrgs, id)
		return err
	})
	return out, err
}

// DeleteNetworkInterface removes a network interface; meter devices that use it must let
// go first (409).
func (s *Store) DeleteNetworkInterface(ctx context.Context, sc Scope, id uuid.UUID) error {
	return remove(ctx, s.pool, "network_interfaces", "a network interface", sc, id)
}

func netifRefs(in NetworkInterface) []ref {
	if in.SimID == nil {
		return nil
	}
	return []ref{{field: "sim", table: "sim_cards", ids: []uuid.UUID{*in.SimID}}}
}
