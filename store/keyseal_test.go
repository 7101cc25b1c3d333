package store

import (
	"crypto/rand"
	"testing"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"
)

const (
	secretA = "secret-a-0123456789abcdefghijklmnopqrstuv"
	secretB = "secret-b-0123456789abcdefghijklmnopqrstuv"
)

func ring(t *testing.T, secret string, fallbacks ...string) *keyRing {
	t.Helper()
	r, err := newKeyRing(secret, fallbacks)
	require.NoError(t, err)
	return r
}

// sealBare seals as amrd did before key ids: nonce || ciphertext, the row and column as
// additional data.
func sealBare(t *testing.T, r *keyRing, row uuid.UUID, column, v string) []byte {
	t.Helper()
	a := r.current().aead
	nonce := make([]byte, a.NonceSize())
	_, _ = rand.Read(nonce)
	return a.Seal(nonce, nonce, []byte(v), keyAAD(nil, row, column))
}

func TestKeyRing(t *testing.T) {
	row, other := uuid.New(), uuid.New()
	const col, plain = colUnicastKey, "0f0e0d0c0b0a09080706050403020100"
	a, b := ring(t, secretA), ring(t, secretB)
	rotated := ring(t, secretB, secretA)
	v := plain
	underA := sealKey(a, row, col, &v)
	require.Equal(t, byte(keyedMagic), underA[0])
	idA := a.current().id
	require.Equal(t, idA[:], underA[1:keyedHeader], "the value names the key that sealed it")
	require.NotEqual(t, a.current().id, b.current().id)
	require.NotContains(t, string(underA), plain)
	bare := sealBare(t, a, row, col, plain)

	tests := []struct {
		name        string
		r           *keyRing
		enc         []byte
		row         uuid.UUID
		col         string
		want        bool // decrypts to plain
		wantCurrent bool
	}{
		{"keyed, own secret", a, underA, row, col, true, true},
		{"keyed, old secret as a fallback", rotated, underA, row, col, true, false},
		{"keyed, another secret", b, underA, row, col, false, false},
		{"bare, own secret", a, bare, row, col, true, false},
		{"bare, old secret as a fallback", rotated, bare, row, col, true, false},
		{"bare, another secret", b, bare, row, col, false, false},
		{"keyed, another row", a, underA, other, col, false, false},
		{"keyed, another column", a, underA, row, colMasterKey, false, false},
		{"bare, another row", rotated, bare, other, col, false, false},
		{"truncated", a, underA[:keyedHeader+3], row, col, false, false},
		{"empty", a, []byte{}, row, col, false, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, current, err := openKey(tc.r, tc.row, tc.col, tc.enc)
			if !tc.want {
				require.ErrorIs(t, err, errKeyOpen)
				require.Contains(t, err.Error(), "SECRET_KEY_FALLBACKS")
				require.NotContains(t, err.Error(), plain)
				return
			}
			require.NoError(t, err)
			require.Equal(t, plain, *got)
			require.Equal(t, tc.wantCurrent, current)
		})
	}

	t.Run("nil stays nil", func(t *testing.T) {
		got, current, err := openKey(a, row, col, nil)
		require.NoError(t, err)
		require.Nil(t, got)
		require.False(t, current)
		require.Nil(t, sealKey(a, row, col, nil))
	})
	t.Run("a changed key id does not decrypt", func(t *testing.T) {
		// The header is authenticated: a value relabelled as the current key's is refused
		// by that key and by every other.
		enc := append([]byte(nil), underA...)
		idB := b.current().id
		copy(enc[1:keyedHeader], idB[:])
		_, _, err := openKey(rotated, row, col, enc)
		require.ErrorIs(t, err, errKeyOpen)
	})
	t.Run("a bare value that reads as keyed is still read", func(t *testing.T) {
		// A bare value's random nonce may begin like a keyed header (2^-40): GCM's tag
		// refuses the keyed reading, and the bare one follows.
		ra := a.current()
		nonce := make([]byte, ra.aead.NonceSize())
		_, _ = rand.Read(nonce)
		nonce[0] = keyedMagic
		copy(nonce[1:keyedHeader], ra.id[:])
		enc := ra.aead.Seal(nonce, nonce, []byte(plain), keyAAD(nil, row, col))
		got, current, err := openKey(a, row, col, enc)
		require.NoError(t, err)
		require.Equal(t, plain, *got)
		require.False(t, current, "a bare value is never current: a rotation rewrites it")
	})
	t.Run("each value has its own nonce", func(t *testing.T) {
		require.NotEqual(t, underA, sealKey(a, row, col, &v))
	})
	t.Run("a fallback equal to the secret is dropped", func(t *testing.T) {
		require.Len(t, ring(t, secretA, secretA, "").keys, 1)
		require.Len(t, rotated.keys, 2)
	})
}
