package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
)

// SecurityKeySet is what a meter security key collection shows of itself: its keys in
// clear, except the write-only DLMS master key, which no type of this package carries
// out of the store.
type SecurityKeySet struct {
	ID                 uuid.UUID `json:"id"`
	IEC6205621Password *string   `json:"iec62056_21_password"`
	DLMSUnicastKey     *string   `json:"dlms_global_unicast_encryption_key"`
	DLMSBroadcastKey   *string   `json:"dlms_global_broadcast_encryption_key"`
	DLMSAuthKey        *string   `json:"dlms_global_authentication_key"`
	CreatedAt          time.Time `json:"created_at"`
	UpdatedAt          time.Time `json:"updated_at"`
}

// SecurityKeys is a meter security key collection as read: its keys and its meter
// device, embedded (the contract's MeterSecurityKeyCollectionOut).
type SecurityKeys struct {
	SecurityKeySet
	Meter KeyMeter `json:"meter"`
}

// KeyMeter is the meter device embedded in a security key collection: the contract's
// MeterDevice there has every field of a meter device but network_interface_info.
type KeyMeter struct {
	MeterDevice
	// NetworkInterfaceInfo hides the device's: a field of the outer struct wins over an
	// embedded one of the same JSON name, and omitzero leaves this one (always zero) out.
	NetworkInterfaceInfo struct{} `json:"network_interface_info,omitzero"`
}

// SecurityKeysInput is a new security key collection: the meter device's id and its keys
// in clear (nil: unset), the master key included.
type SecurityKeysInput struct {
	Meter              uuid.UUID
	IEC6205621Password *string
	DLMSUnicastKey     *string
	DLMSBroadcastKey   *string
	DLMSMasterKey      *string
	DLMSAuthKey        *string
}

// The encrypted columns; each name is also part of its values' additional data.
const (
	colIECPassword  = "iec62056_21_password_enc"
	colUnicastKey   = "dlms_global_unicast_encryption_key_enc"
	colBroadcastKey = "dlms_global_broadcast_encryption_key_enc"
	colMasterKey    = "dlms_master_key_enc"
	colAuthKey      = "dlms_global_authentication_key_enc"
)

// keyOrg scopes security keys, which have no organization of their own, by their
// device's.
const keyOrg = "(SELECT d.organization_id FROM meter_devices d WHERE d.id = x.meter_device_id)"

// securityKeys reads security key collections with their device (m), decrypting with r.
// The master key column is never selected.
func securityKeys(r *keyRing) entity[SecurityKeys] {
	return entity[SecurityKeys]{
		what: "a meter security key collection",
		from: "meter_security_keys x JOIN meter_devices m ON m.id = x.meter_device_id" + deviceJoins("m"),
		org:  "m.organization_id",
		cols: "x.id, x.created_at, x.updated_at, x." + colIECPassword + ", x." + colUnicastKey + ", x." + colBroadcastKey + ", x." + colAuthKey + ", " +
			deviceCols("m"),
		order: "x.created_at, x.id",
		scan: func(row pgx.CollectableRow) (SecurityKeys, error) {
			var v SecurityKeys
			var pw, uni, bc, auth []byte
			dest, finish := deviceDest(&v.Meter.MeterDevice)
			err := row.Scan(append([]any{&v.ID, &v.CreatedAt, &v.UpdatedAt, &pw, &uni, &bc, &auth}, dest...)...)
			if err != nil {
				return v, err
			}
			finish()
			for _, k := range []struct {
				col string
				enc []byte
				dst **string
			}{{colIECPassword, pw, &v.IEC6205621Password}, {colUnicastKey, uni, &v.DLMSUnicastKey},
				{colBroadcastKey, bc, &v.DLMSBroadcastKey}, {colAuthKey, auth, &v.DLMSAuthKey}} {
				if *k.dst, _, err = openKey(r, v.ID, k.col, k.enc); err != nil {
					return v, err
				}
			}
			return v, nil
		},
		filters: map[string]string{
			"meter":                           "x.meter_device_id = %s",
			"meter_name":                      "m.name = %s",
			"meter_external_system_reference": "m.external_system_reference = %s",
			"meter_manufacturer_serial":       "m.manufacturer_serial = %s",
			"meter_dlms_system_title":         "m.dlms_system_title = %s",
			"meter_dlms_logical_device_name":  "m.dlms_logical_device_name = %s",
		},
	}
}

// ListSecurityKeys returns one page of the security key collections whose device is in
// scope.
func (s *Store) ListSecurityKeys(ctx context.Context, sc Scope, f Filter, p Page) ([]SecurityKeys, int, error) {
	if s.keys == nil {
		return nil, 0, ErrNoSecret
	}
	return securityKeys(s.keys).list(ctx, s.pool, sc, f, p)
}

// GetSecurityKeys returns one security key collection whose device is in scope.
func (s *Store) GetSecurityKeys(ctx context.Context, sc Scope, id uuid.UUID) (SecurityKeys, error) {
	if s.keys == nil {
		return SecurityKeys{}, ErrNoSecret
	}
	return securityKeys(s.keys).get(ctx, s.pool, sc, id)
}

// CreateSecurityKeys stores a security key collection, encrypted, for a meter device in
// sc (the organizations the caller may write in); any other device is reported as a
// missing one, on the field "meter".
func (s *Store) CreateSecurityKeys(ctx context.Context, sc Scope, in SecurityKeysInput) (SecurityKeys, error) {
	if s.keys == nil {
		return SecurityKeys{}, ErrNoSecret
	}
	// The id is made here because it is part of each ciphertext's additional data.
	id := uuid.New()
	var out SecurityKeys
	err := s.inTx(ctx, "creating a meter security key collection", func(tx pgx.Tx) error {
		all, orgs := sc.args()
		// The device is locked against deletion until the keys are in.
		var dev uuid.UUID
		err := tx.QueryRow(ctx, `SELECT id FROM meter_devices WHERE id = $1 AND ($2 OR organization_id = ANY($3)) FOR KEY SHARE`,
			in.Meter, all, orgs).Scan(&dev)
		if errors.Is(err, pgx.ErrNoRows) {
			return noSuchRow("meter", in.Meter)
		}
		if err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `INSERT INTO meter_security_keys (id, meter_device_id, `+colIECPassword+`, `+colUnicastKey+`,
			`+colBroadcastKey+`, `+colMasterKey+`, `+colAuthKey+`) VALUES ($1, $2, $3, $4, $5, $6, $7)`,
			id, in.Meter, sealKey(s.keys, id, colIECPassword, in.IEC6205621Password), sealKey(s.keys, id, colUnicastKey, in.DLMSUnicastKey),
			sealKey(s.keys, id, colBroadcastKey, in.DLMSBroadcastKey), sealKey(s.keys, id, colMasterKey, in.DLMSMasterKey),
			sealKey(s.keys, id, colAuthKey, in.DLMSAuthKey)); err != nil {
			return err
		}
		out, err = securityKeys(s.keys).get(ctx, tx, AllOrgs, id)
		return err
	})
	return out, err
}

// DeleteSecurityKeys removes a security key collection whose device is in scope. Keys
// also go with their device (ON DELETE CASCADE).
func (s *Store) DeleteSecurityKeys(ctx context.Context, sc Scope, id uuid.UUID) error {
	return removeBy(ctx, s.pool, "meter_security_keys", keyOrg, "a meter security key collection", sc, id)
}

// keyCols are the encrypted columns, the master key included: what a rotation rewrites.
var keyCols = [...]string{colIECPassword, colUnicastKey, colBroadcastKey, colMasterKey, colAuthKey}

// KeyRotation counts what RotateSecurityKeys did.
type KeyRotation struct {
	// Changed rows had a value under another secret (a fallback) or without a key id
	// (written before key ids): each such value is now under SECRET_KEY.
	Changed int64
	// Current rows had every value under SECRET_KEY already (or no key at all).
	Current int64
	// Failed rows have a value that no secret decrypts; they are left as they are.
	Failed []uuid.UUID
}

// RotateSecurityKeys re-encrypts every stored security key under the current secret,
// batch rows at a time in id order, each batch in a transaction of its own that locks
// its rows; after, when not nil, is called with the totals after each batch. A value
// already under the current secret is recognized by its key id and left as it is, so
// that an interrupted rotation is resumed by running it again. A row with a value that
// neither the secret nor a fallback decrypts is counted in Failed and left unchanged
// (nothing of it is ever logged or returned but its id). It returns the totals, and the
// context's error when it was cancelled between batches.
func (s *Store) RotateSecurityKeys(ctx context.Context, batch int, after func(KeyRotation)) (KeyRotation, error) {
	var total KeyRotation
	if s.keys == nil {
		return total, ErrNoSecret
	}
	if batch <= 0 {
		batch = 500
	}
	var last *uuid.UUID
	for {
		if err := ctx.Err(); err != nil {
			return total, err
		}
		var n int
		var done KeyRotation
		err := s.inTx(ctx, "re-encrypting meter security keys", func(tx pgx.Tx) error {
			var err error
			n, done, last, err = s.rotateBatch(ctx, tx, last, batch)
			return err
		})
		if err != nil {
			return total, err
		}
		total.Changed += done.Changed
		total.Current += done.Current
		total.Failed = append(total.Failed, done.Failed...)
		if after != nil {
			after(total)
		}
		if n < batch {
			return total, nil
		}
	}
}

// rotateBatch re-encrypts up to limit rows whose id follows after (nil: from the first)
// and returns how many it read, what it did and the last id.
func (s *Store) rotateBatch(ctx context.Context, tx pgx.Tx, after *uuid.UUID, limit int) (int, KeyRotation, *uuid.UUID, error) {
	var r KeyRotation
	rows, err := tx.Query(ctx, fmt.Sprintf(`SELECT id, %s, %s, %s, %s, %s FROM meter_security_keys
		WHERE $1::uuid IS NULL OR id > $1 ORDER BY id LIMIT $2 FOR UPDATE`, keyCols[0], keyCols[1], keyCols[2], keyCols[3], keyCols[4]),
		after, limit)
	if err != nil {
		return 0, r, after, err
	}
	type keyRow struct {
		id  uuid.UUID
		enc [len(keyCols)][]byte
	}
	var read []keyRow
	for rows.Next() {
		var k keyRow
		if err := rows.Scan(&k.id, &k.enc[0], &k.enc[1], &k.enc[2], &k.enc[3], &k.enc[4]); err != nil {
			rows.Close()
			return 0, r, after, err
		}
		read = append(read, k)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, r, after, err
	}
	if len(read) == 0 {
		return 0, r, after, nil
	}
	last := read[len(read)-1].id
	// The changed rows, column by column, as the arrays of one UPDATE.
	var ids []uuid.UUID
	var cols [len(keyCols)][][]byte
rowsLoop:
	for _, k := range read {
		changed := false
		for c, enc := range k.enc {
			plain, current, err := openKey(s.keys, k.id, keyCols[c], enc)
			if err != nil {
				r.Failed = append(r.Failed, k.id)
				continue rowsLoop
			}
			if enc != nil && !current {
				k.enc[c] = sealKey(s.keys, k.id, keyCols[c], plain)
				changed = true
			}
		}
		if !changed {
			r.Current++
			continue
		}
		ids = append(ids, k.id)
		for c := range k.enc {
			cols[c] = append(cols[c], k.enc[c])
		}
	}
	if len(ids) > 0 {
		// updated_at stays: re-encryption is not an edit of the keys.
		tag, err := tx.Exec(ctx, fmt.Sprintf(`UPDATE meter_security_keys k SET %[1]s = u.c0, %[2]s = u.c1, %[3]s = u.c2, %[4]s = u.c3, %[5]s = u.c4
			FROM unnest($1::uuid[], $2::bytea[], $3::bytea[], $4::bytea[], $5::bytea[], $6::bytea[]) AS u(id, c0, c1, c2, c3, c4)
			WHERE k.id = u.id`, keyCols[0], keyCols[1], keyCols[2], keyCols[3], keyCols[4]),
			ids, cols[0], cols[1], cols[2], cols[3], cols[4])
		if err != nil {
			return 0, r, after, err
		}
		r.Changed = tag.RowsAffected()
	}
	return len(read), r, &last, nil
}
