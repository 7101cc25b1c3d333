package store_test

import (
	"errors"
	"testing"

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
