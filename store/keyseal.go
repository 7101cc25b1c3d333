package store

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"errors"

	"github.com/google/uuid"
)

// ErrNoSecret is returned by the methods that read or write meter security keys when the
// store was opened without a secret: keys are never stored in clear.
var ErrNoSecret = errors.New("meter security keys: SECRET_KEY is not set, so keys can be neither encrypted nor decrypted")

// errKeyOpen says that a stored key did not decrypt: SECRET_KEY is not the one it was
// written with, or the row was altered in the database.
var errKeyOpen = errors.New("decrypting a meter security key: SECRET_KEY differs from the one it was written with, or the stored value was altered")

// keySealInfo names what the derived key is for (HKDF's info), so that the same
// SECRET_KEY never yields the same key for two purposes.
const keySealInfo = "amrd meter-security-keys v1"

// newKeySealer derives an AES-256-GCM key from the secret with HKDF-SHA-256. The secret
// is a random string of at least 32 characters (cmd/amrd checks it), so no salt is needed
// for it to make a uniform key; the derived key lives only in memory.
func newKeySealer(secret string) (cipher.AEAD, error) {
	key, err := hkdf.Key(sha256.New, []byte(secret), nil, keySealInfo, 32)
	if err != nil {
		return nil, err
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}

// keyAAD binds a ciphertext to its row and column: a value copied into another row, or
// into another column of the same row (the write-only master key into a readable one),
// no longer decrypts.
func keyAAD(row uuid.UUID, column string) []byte {
	return append(row[:], column...)
}

// sealKey encrypts one key for a column of a row: nonce || ciphertext, nil for no key.
// A fresh random 96-bit nonce per value: far below GCM's 2^32-messages-per-key bound
// for random nonces at any realistic number of meters.
func sealKey(a cipher.AEAD, row uuid.UUID, column string, v *string) []byte {
	if v == nil {
		return nil
	}
	nonce := make([]byte, a.NonceSize(), a.NonceSize()+len(*v)+a.Overhead())
	_, _ = rand.Read(nonce) // crypto/rand.Read never fails (it panics on a broken system)
	return a.Seal(nonce, nonce, []byte(*v), keyAAD(row, column))
}

// openKey decrypts what sealKey made; nil stays nil.
func openKey(a cipher.AEAD, row uuid.UUID, column string, enc []byte) (*string, error) {
	if enc == nil {
		return nil, nil
	}
	n := a.NonceSize()
	if len(enc) < n+a.Overhead() {
		return nil, errKeyOpen
	}
	plain, err := a.Open(nil, enc[:n], enc[n:], keyAAD(row, column))
	if err != nil {
		return nil, errKeyOpen
	}
	s := string(plain)
	return &s, nil
}
