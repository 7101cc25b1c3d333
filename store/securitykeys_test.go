package store_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/amrd/amrd/store"
	"github.com/amrd/amrd/store/storetest"
)

func strp(s string) *string { return &s }

// sqlDevice makes a meter device of org with SQL and returns its id.
func sqlDevice(t *testing.T, url string, org uuid.UUID, name string) uuid.UUID {
	t.Helper()
	var id uuid.UUID
	storetest.Query(t, url, `INSERT INTO meter_devices (organization_id, name, protocol) VALUES ($1, $2, 'dlms-cosem') RETURNING id`, []any{org, name}, &id)
	return id
}

// requireFieldError requires err to be a FieldError on field.
func requireFieldError(t *testing.T, err error, field string) {
	t.Helper()
	var fe *store.FieldError
	require.True(t, errors.As(err, &fe), "err: %v", err)
	require.Equal(t, field, fe.Field)
}

func TestSecurityKeysEncryption(t *testing.T) {
	ctx := testCtx(t)
	st, url := storetest.New(t)
	org := mkOrg(t, st, "A", true)
	dev := sqlDevice(t, url, org.ID, "meter-1")
	const master = "00112233445566778899aabbccddeeff"
	in := store.SecurityKeysInput{Meter: dev, IEC6205621Password: strp("secret"), DLMSUnicastKey: strp("0f0e0d0c0b0a09080706050403020100"),
		DLMSMasterKey: strp(master)}
	k1, err := st.CreateSecurityKeys(ctx, store.AllOrgs, in)
	require.NoError(t, err)
	require.Equal(t, "secret", *k1.IEC6205621Password)
	require.Equal(t, *in.DLMSUnicastKey, *k1.DLMSUnicastKey)
	require.Nil(t, k1.DLMSBroadcastKey)
	require.Nil(t, k1.DLMSAuthKey)
	require.Equal(t, dev, k1.Meter.ID)
	k2, err := st.CreateSecurityKeys(ctx, store.AllOrgs, in)
	require.NoError(t, err)

	encOf := func(id uuid.UUID, col string) []byte {
		var enc []byte
		storetest.Query(t, url, `SELECT `+col+` FROM meter_security_keys WHERE id = $1`, []any{id}, &enc)
		return enc
	}
	t.Run("the master key is stored, encrypted", func(t *testing.T) {
		enc := encOf(k1.ID, "dlms_master_key_enc")
		require.NotContains(t, string(enc), master)
		got, err := st.OpenStoredKey(k1.ID, "dlms_master_key_enc", enc)
		require.NoError(t, err)
		require.Equal(t, master, *got)
		require.Nil(t, encOf(k1.ID, "dlms_global_broadcast_encryption_key_enc"), "an unset key is NULL")
		require.NotEqual(t, encOf(k1.ID, "dlms_master_key_enc"), encOf(k2.ID, "dlms_master_key_enc"), "each value has its own nonce")
	})
	t.Run("a value moved to another column or row does not decrypt", func(t *testing.T) {
		tests := []struct {
			name string
			from uuid.UUID
			col  string
		}{
			{"master key into the readable unicast column", k1.ID, "dlms_master_key_enc"},
			{"unicast key of another row", k2.ID, "dlms_global_unicast_encryption_key_enc"},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				saved := encOf(k1.ID, "dlms_global_unicast_encryption_key_enc")
				storetest.Query(t, url, `UPDATE meter_security_keys SET dlms_global_unicast_encryption_key_enc = $2 WHERE id = $1`, []any{k1.ID, encOf(tc.from, tc.col)})
				_, err := st.GetSecurityKeys(ctx, store.AllOrgs, k1.ID)
				require.Error(t, err)
				require.NotErrorIs(t, err, store.ErrNotFound)
				require.Contains(t, err.Error(), "SECRET_KEY")
				require.NotContains(t, err.Error(), master)
				_, _, err = st.ListSecurityKeys(ctx, store.AllOrgs, store.Filter{}, store.Page{Limit: 10})
				require.Error(t, err)
				storetest.Query(t, url, `UPDATE meter_security_keys SET dlms_global_unicast_encryption_key_enc = $2 WHERE id = $1`, []any{k1.ID, saved})
				_, err = st.GetSecurityKeys(ctx, store.AllOrgs, k1.ID)
				require.NoError(t, err)
			})
		}
	})
	t.Run("another SECRET_KEY does not decrypt", func(t *testing.T) {
		other, err := store.Open(ctx, store.Config{URL: url, Secret: "another-secret-key-0123456789abcdef"}, discard())
		require.NoError(t, err)
		defer other.Close()
		_, err = other.GetSecurityKeys(ctx, store.AllOrgs, k1.ID)
		require.Error(t, err)
		require.Contains(t, err.Error(), "SECRET_KEY")
	})
	t.Run("without SECRET_KEY keys are refused", func(t *testing.T) {
		bare, err := store.Open(ctx, store.Config{URL: url}, discard())
		require.NoError(t, err)
		defer bare.Close()
		_, err = bare.CreateSecurityKeys(ctx, store.AllOrgs, in)
		require.ErrorIs(t, err, store.ErrNoSecret)
		_, err = bare.GetSecurityKeys(ctx, store.AllOrgs, k1.ID)
		require.ErrorIs(t, err, store.ErrNoSecret)
		_, _, err = bare.ListSecurityKeys(ctx, store.AllOrgs, store.Filter{}, store.Page{Limit: 10})
		require.ErrorIs(t, err, store.ErrNoSecret)
	})
	t.Run("scope goes through the device", func(t *testing.T) {
		b := mkOrg(t, st, "B", true)
		_, err := st.CreateSecurityKeys(ctx, store.OrgScope(b.ID), in)
		requireFieldError(t, err, "meter")
		_, err = st.GetSecurityKeys(ctx, store.OrgScope(b.ID), k1.ID)
		require.ErrorIs(t, err, store.ErrNotFound)
		require.ErrorIs(t, st.DeleteSecurityKeys(ctx, store.OrgScope(b.ID), k1.ID), store.ErrNotFound)
		_, err = st.GetSecurityKeys(ctx, store.OrgScope(org.ID), k1.ID)
		require.NoError(t, err)
		require.NoError(t, st.DeleteSecurityKeys(ctx, store.OrgScope(org.ID), k1.ID))
		_, err = st.GetSecurityKeys(ctx, store.AllOrgs, k1.ID)
		require.ErrorIs(t, err, store.ErrNotFound)
	})
}

// TestSecurityKeysRotation: keys written under one SECRET_KEY are read after a change of
// SECRET_KEY through SECRET_KEY_FALLBACKS, RotateSecurityKeys re-encrypts them under the
// new one (resumably, skipping what is current), and the old secret is then not needed.
func TestSecurityKeysRotation(t *testing.T) {
	ctx := testCtx(t)
	stA, url := storetest.New(t) // SECRET_KEY = storetest.Secret
	const newSecret = "the-new-secret-key-0123456789abcdefghij"
	open := func(secret string, fallbacks ...string) *store.Store {
		st, err := store.Open(ctx, store.Config{URL: url, Secret: secret, SecretFallbacks: fallbacks}, discard())
		require.NoError(t, err)
		t.Cleanup(st.Close)
		return st
	}
	org := mkOrg(t, stA, "A", true)
	type want struct{ pw, uni, master string }
	wants := map[uuid.UUID]want{}
	for i := 0; i < 7; i++ {
		dev := sqlDevice(t, url, org.ID, fmt.Sprintf("meter-%d", i))
		w := want{pw: fmt.Sprintf("pw%d", i), uni: fmt.Sprintf("%032x", i), master: fmt.Sprintf("%064x", i)}
		k, err := stA.CreateSecurityKeys(ctx, store.AllOrgs, store.SecurityKeysInput{Meter: dev, IEC6205621Password: strp(w.pw),
			DLMSUnicastKey: strp(w.uni), DLMSMasterKey: strp(w.master)})
		require.NoError(t, err)
		wants[k.ID] = w
	}
	// A row written before key ids: its values are bare (nonce || ciphertext).
	legacy := uuid.New()
	legacyDev := sqlDevice(t, url, org.ID, "meter-legacy")
	storetest.Exec(t, url, `INSERT INTO meter_security_keys (id, meter_device_id, iec62056_21_password_enc, dlms_master_key_enc,
		updated_at) VALUES ($1, $2, $3, $4, '2020-01-01T00:00:00Z')`, legacy, legacyDev,
		store.SealBareKey(storetest.Secret, legacy, "iec62056_21_password_enc", "legacypw"),
		store.SealBareKey(storetest.Secret, legacy, "dlms_master_key_enc", fmt.Sprintf("%064x", 99)))
	wants[legacy] = want{pw: "legacypw", master: fmt.Sprintf("%064x", 99)}

	check := func(t *testing.T, st *store.Store) {
		t.Helper()
		for id, w := range wants {
			k, err := st.GetSecurityKeys(ctx, store.AllOrgs, id)
			require.NoError(t, err)
			require.Equal(t, w.pw, *k.IEC6205621Password)
			if w.uni != "" {
				require.Equal(t, w.uni, *k.DLMSUnicastKey)
			}
			var enc []byte
			storetest.Query(t, url, `SELECT dlms_master_key_enc FROM meter_security_keys WHERE id = $1`, []any{id}, &enc)
			m, err := st.OpenStoredKey(id, "dlms_master_key_enc", enc)
			require.NoError(t, err)
			require.Equal(t, w.master, *m)
		}
	}

	stB := open(newSecret) // the new secret alone: the old rows do not decrypt
	_, err := stB.GetSecurityKeys(ctx, store.AllOrgs, legacy)
	require.ErrorContains(t, err, "SECRET_KEY_FALLBACKS")

	rot := open(newSecret, storetest.Secret)
	t.Run("the old secret as a fallback reads every row", func(t *testing.T) {
		check(t, rot)
		_, _, err := rot.ListSecurityKeys(ctx, store.AllOrgs, store.Filter{}, store.Page{Limit: 100})
		require.NoError(t, err)
	})
	// A row written under the new secret already, and one that no secret decrypts.
	dev := sqlDevice(t, url, org.ID, "meter-new")
	k, err := rot.CreateSecurityKeys(ctx, store.AllOrgs, store.SecurityKeysInput{Meter: dev, IEC6205621Password: strp("newpw"),
		DLMSMasterKey: strp(fmt.Sprintf("%064x", 7))})
	require.NoError(t, err)
	wants[k.ID] = want{pw: "newpw", master: fmt.Sprintf("%064x", 7)}
	lost := uuid.New()
	storetest.Exec(t, url, `INSERT INTO meter_security_keys (id, meter_device_id, dlms_global_authentication_key_enc) VALUES ($1, $2, $3)`,
		lost, sqlDevice(t, url, org.ID, "meter-lost"), store.SealBareKey("a-secret-nobody-has-anymore-0123456789", lost,
			"dlms_global_authentication_key_enc", "00112233445566778899aabbccddeeff"))
	encOf := func(id uuid.UUID) []byte {
		var enc []byte
		storetest.Query(t, url, `SELECT dlms_global_authentication_key_enc FROM meter_security_keys WHERE id = $1`, []any{id}, &enc)
		return enc
	}
	lostEnc := encOf(lost)
	const rows = 10 // 7 + legacy + new + lost

	t.Run("interrupted after the first batch, then resumed", func(t *testing.T) {
		cctx, cancel := context.WithCancel(ctx)
		defer cancel()
		batches := 0
		first, err := rot.RotateSecurityKeys(cctx, 3, func(store.KeyRotation) { batches++; cancel() })
		require.ErrorIs(t, err, context.Canceled)
		require.Equal(t, 1, batches)
		require.Equal(t, int64(3), first.Changed+first.Current+int64(len(first.Failed)), "one batch of 3 rows")
		check(t, rot)

		rest, err := rot.RotateSecurityKeys(ctx, 3, nil)
		require.NoError(t, err)
		require.Equal(t, int64(rows), rest.Changed+rest.Current+int64(len(rest.Failed)))
		require.Equal(t, int64(8), first.Changed+rest.Changed, "the 7 rows and the legacy row, each once")
		require.Equal(t, []uuid.UUID{lost}, rest.Failed, "reported by id; a rerun reports it again")
		require.Equal(t, lostEnc, encOf(lost), "left unchanged")

		again, err := rot.RotateSecurityKeys(ctx, 500, nil)
		require.NoError(t, err)
		require.Zero(t, again.Changed, "a second run changes nothing")
		require.Equal(t, int64(rows-1), again.Current)
		require.Equal(t, []uuid.UUID{lost}, again.Failed)
	})
	t.Run("the old secret is no longer needed", func(t *testing.T) {
		check(t, open(newSecret))
		var updated time.Time
		storetest.Query(t, url, `SELECT updated_at FROM meter_security_keys WHERE id = $1`, []any{legacy}, &updated)
		require.Equal(t, 2020, updated.Year(), "re-encryption is not an edit")
		_, err := stA.GetSecurityKeys(ctx, store.AllOrgs, legacy)
		require.Error(t, err, "the old secret alone no longer reads the rotated rows")
	})
	t.Run("without SECRET_KEY nothing is rotated", func(t *testing.T) {
		_, err := open("").RotateSecurityKeys(ctx, 10, nil)
		require.ErrorIs(t, err, store.ErrNoSecret)
	})
}
