package store

import (
	"context"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
)

// SimCard is a SIM card of a meter's modem.
type SimCard struct {
	ID                 uuid.UUID  `json:"id"`
	OrganizationID     *uuid.UUID `json:"organization"`
	ICCID              string     `json:"iccid"`
	IMSI               string     `json:"imsi"`
	IPAddress          *string    `json:"ip_address"`
	PhoneNumber        *string    `json:"phone_number"`
	ExternalSystemLink *string    `json:"external_system_link"`
	CreatedAt          time.Time  `json:"created_at"`
	UpdatedAt          time.Time  `json:"updated_at"`
}

var simCards = entity[SimCard]{
	what:  "a SIM card",
	from:  "sim_cards x",
	cols:  "x.id, x.organization_id, x.iccid, x.imsi, x.ip_address, x.phone_number, x.external_system_link, x.created_at, x.updated_at",
	order: "x.created_at, x.id",
	scan: func(row pgx.CollectableRow) (SimCard, error) {
		var v SimCard
		err := row.Scan(&v.ID, &v.OrganizationID, &v.ICCID, &v.IMSI, &v.IPAddress, &v.PhoneNumber, &v.ExternalSystemLink, &v.CreatedAt, &v.UpdatedAt)
		return v, err
	},
	filters: map[string]string{"iccid": "x.iccid = %s", "imsi": "x.imsi = %s"},
}

// ListSimCards returns one page of SIM cards in scope.
func (s *Store) ListSimCards(ctx context.Context, sc Scope, f Filter, p Page) ([]SimCard, int, error) {
	return simCards.list(ctx, s.pool, sc, f, p)
}

// GetSimCard returns one SIM card in scope.
func (s *Store) GetSimCard(ctx context.Context, sc Scope, id uuid.UUID) (SimCard, error) {
	return simCards.get(ctx, s.pool, sc, id)
}

// CreateSimCard adds a SIM card.
func (s *Store) CreateSimCard(ctx context.Context, in SimCard) (SimCard, error) {
	var out SimCard
	err := s.inTx(ctx, "creating a SIM card", func(tx pgx.Tx) error {
		var id uuid.UUID
		if err := tx.QueryRow(ctx, `INSERT INTO sim_cards (organization_id, iccid, imsi, ip_address, phone_number, external_system_link)
			VALUES ($1, $2, $3, $4, $5, $6) RETURNING id`, orgOf(in.OrganizationID), in.ICCID, in.IMSI, in.IPAddress, in.PhoneNumber, in.ExternalSystemLink).Scan(&id); err != nil {
			return err
		}
		var err error
		out, err = simCards.get(ctx, tx, AllOrgs, id)
		return err
	})
	return out, err
}

// UpdateSimCard replaces a SIM card's fields. A SIM card used by network interfaces of
// its organization cannot move to another organization.
func (s *Store) UpdateSimCard(ctx context.Context, sc Scope, id uuid.UUID, in SimCard) (SimCard, error) {
	var out SimCard
	err := s.inTx(ctx, "updating a SIM card", func(tx pgx.Tx) error {
		all, orgs := sc.args()
		tag, err := tx.Exec(ctx, `UPDATE sim_cards x SET organization_id = $2, iccid = $3, imsi = $4, ip_address = $5,
			phone_number = $6, external_system_link = $7, updated_at = now()
			WHERE x.id = $1 AND ($8 OR x.organization_id = ANY($9))`,
			id, orgOf(in.OrganizationID), in.ICCID, in.IMSI, in.IPAddress, in.PhoneNumber, in.ExternalSystemLink, all, orgs)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return pgx.ErrNoRows
		}
		if err := refusedIfUsedElsewhere(ctx, tx, "network_interfaces", "sim_id", id, in.OrganizationID, "network interfaces of another organization use this SIM card"); err != nil {
			return err
		}
		out, err = simCards.get(ctx, tx, AllOrgs, id)
		return err
	})
	return out, err
}

// DeleteSimCard removes a SIM card; network interfaces that use it must let go first.
func (s *Store) DeleteSimCard(ctx context.Context, sc Scope, id uuid.UUID) error {
	return remove(ctx, s.pool, "sim_cards", "a SIM card", sc, id)
}

// refusedIfUsedElsewhere refuses (409) when rows of another organization than org refer
// to id through table.col: a row may not change organization under its users.
func refusedIfUsedElsewhere(ctx context.Context, q querier, table, col string, id uuid.UUID, org *uuid.UUID, msg string) error {
	var n int
	if err := q.QueryRow(ctx, "SELECT count(*) FROM "+table+" WHERE "+col+" = $1 AND organization_id IS DISTINCT FROM $2", id, orgOf(org)).Scan(&n); err != nil {
		return err
	}
	if n > 0 {
		return &ConflictError{Msg: msg}
	}
	return nil
}
