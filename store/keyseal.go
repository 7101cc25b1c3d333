package store

import (
	"bytes"
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

// errKeyOpen says that a stored key did not decrypt: neither SECRET_KEY nor any of
// SECRET_KEY_FALLBACKS is the one it was written with, or the row was altered in the
// database.
var errKeyOpen = errors.New("decrypting a meter security key: neither SECRET_KEY nor any of SECRET_KEY_FALLBACKS " +
	"is the key it was written with, or the stored value was altered")

// keySealInfo names what the derived key is for (HKDF's info), so that the same
// SECRET_KEY never yields the same key for two purposes.
const keySealInfo = "amrd meter-security-keys v1"

// keyIDInfo derives a key's id, which says in each value which secret sealed it: HKDF
// with another info, so that the id tells nothing about the encryption key.
const keyIDInfo = "amrd meter-security-keys key id v1"

// A sealed value is keyed (the current format) or bare (before key ids, still read):
//
//	keyed: 0x02 ‖ key id (4 bytes) ‖ nonce (12) ‖ ciphertext ‖ GCM tag (16)
//	bare:  nonce (12) ‖ ciphertext ‖ GCM tag (16)
//
// The key id names the secret that sealed the value, so that a reader takes the right
// key at once and `amrd keys rotate` skips values already under the current secret
// without decrypting with each key in turn. Four bytes tell apart the few secrets a
// rotation involves (two ids collide with probability 2^-32, and then both keys are
// tried). A bare value begins with a random nonce: that it reads as keyed by chance
// (2^-40) is caught by GCM's tag, and it is then read as bare.
const (
	keyedMagic  = 0x02
	keyIDLen    = 4
	keyedHeader = 1 + keyIDLen
)

// sealer is one secret's AES-256-GCM key and the id of that key.
type sealer struct {
	id   [keyIDLen]byte
	aead cipher.AEAD
}

// keyRing seals with the current secret (SECRET_KEY) and opens with it or any of the
// old ones (SECRET_KEY_FALLBACKS), in that order.
type keyRing struct {
	// keys are the current secret's sealer, then the fallbacks'.
	keys []sealer
}

func (r *keyRing) current() sealer { return r.keys[0] }

// newKeyRing derives a sealer from each secret with HKDF-SHA-256. The secrets are random
// strings of at least 32 characters (cmd/amrd checks them), so no salt is needed for
// them to make uniform keys; the derived keys live only in memory.
func newKeyRing(secret string, fallbacks []string) (*keyRing, error) {
	cur, err := newSealer(secret)
	if err != nil {
		return nil, err
	}
	r := &keyRing{keys: []sealer{cur}}
	for _, f := range fallbacks {
		if f == "" || f == secret {
			continue
		}
		s, err := newSealer(f)
		if err != nil {
			return nil, err
		}
		r.keys = append(r.keys, s)
	}
	return r, nil
}

func newSealer(secret string) (sealer, error) {
	var s sealer
	key, err := hkdf.Key(sha256.New, []byte(secret), nil, keySealInfo, 32)
	if err != nil {
		return s, err
	}
	id, err := hkdf.Key(sha256.New, []byte(secret), nil, keyIDInfo, keyIDLen)
	if err != nil {
		return s, err
	}
	copy(s.id[:], id)
	block, err := aes.NewCipher(key)
	if err != nil {
		return s, err
	}
	s.aead, err = cipher.NewGCM(block)
	return s, err
}

// keyAAD binds a ciphertext to its row and column: a value copied into another row, or
// into another column of the same row (the write-only master key into a readable one),
// no longer decrypts. A keyed value's header is bound too.
func keyAAD(header []byte, row uuid.UUID, column string) []byte {
	aad := make([]byte, 0, len(header)+len(row)+len(column))
	aad = append(aad, header...)
	aad = append(aad, row[:]...)
	return append(aad, column...)
}

// sealKey encrypts one key for a column of a row under the current secret, as a keyed
// value; nil for no key. A fresh random 96-bit nonce per value: far below GCM's
// 2^32-messages-per-key bound for random nonces at any realistic number of meters.
func sealKey(r *keyRing, row uuid.UUID, column string, v *string) []byte {
	if v == nil {
		return nil
	}
	cur := r.current()
	a := cur.aead
	out := make([]byte, keyedHeader+a.NonceSize(), keyedHeader+a.NonceSize()+len(*v)+a.Overhead())
	out[0] = keyedMagic
	copy(out[1:keyedHeader], cur.id[:])
	nonce := out[keyedHeader:]
	_, _ = rand.Read(nonce) // crypto/rand.Read never fails (it panics on a broken system)
	return a.Seal(out, nonce, []byte(*v), keyAAD(out[:keyedHeader], row, column))
}

// openKey decrypts what sealKey made (or the bare values of earlier versions); nil stays
// nil. current reports that the value is keyed under the current secret, so that a
// rotation leaves it alone.
func openKey(r *keyRing, row uuid.UUID, column string, enc []byte) (plain *string, current bool, err error) {
	if enc == nil {
		return nil, false, nil
	}
	if len(enc) >= keyedHeader && enc[0] == keyedMagic {
		id := enc[1:keyedHeader]
		for i, s := range r.keys {
			if !bytes.Equal(id, s.id[:]) {
				continue
			}
			if p, ok := open(s.aead, enc[keyedHeader:], keyAAD(enc[:keyedHeader], row, column)); ok {
				return p, i == 0, nil
			}
		}
	}
	// A bare value names no key: the current one is tried first, as it is the likeliest.
	for _, s := range r.keys {
		if p, ok := open(s.aead, enc, keyAAD(nil, row, column)); ok {
			return p, false, nil
		}
	}
	return nil, false, errKeyOpen
}

// open decrypts nonce ‖ ciphertext.
func open(a cipher.AEAD, enc, aad []byte) (*string, bool) {
	n := a.NonceSize()
	if len(enc) < n+a.Overhead() {
		return nil, false
	}
	plain, err := a.Open(nil, enc[:n], enc[n:], aad)
	if err != nil {
		return nil, false
	}
	s := string(plain)
	return &s, true
}
