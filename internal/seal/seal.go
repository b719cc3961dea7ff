// Package seal is how every storage backend keeps secrets the database must
// hold but must not hold in the clear (vendor integrations' HMAC keys,
// webhook secrets, authenticator-app secrets, the bodies of mail not yet
// sent): AES-256-GCM under a key kept outside the database (the data
// directory's vendor.key), so that a copy of the database alone yields none
// of them. Each sealed value is bound (additional data) to where it is
// stored, by the same words on every backend, so that a value copied from
// one backend to the other (portal migrate) opens there and a value moved to
// another row does not.
package seal

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"errors"
	"fmt"
	"strconv"
)

// KeySize is the size of the seal key (AES-256).
const KeySize = 32

// Sealer seals and opens values under one key.
type Sealer struct{ aead cipher.AEAD }

// New returns a Sealer for key, which must be KeySize bytes.
func New(key []byte) (*Sealer, error) {
	if len(key) != KeySize {
		return nil, fmt.Errorf("the seal key must be %d bytes, not %d", KeySize, len(key))
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	return &Sealer{aead: aead}, nil
}

// Random seals under a key that lives only as long as the process: for a
// database whose owner sets no key (tests); the portal sets the data
// directory's.
func Random() *Sealer {
	key := make([]byte, KeySize)
	if _, err := rand.Read(key); err != nil {
		panic(err) // crypto/rand never fails on supported platforms
	}
	s, err := New(key)
	if err != nil {
		panic(err)
	}
	return s
}

// Seal returns a random nonce followed by the sealed plaintext.
func (s *Sealer) Seal(plaintext, aad []byte) ([]byte, error) {
	nonce := make([]byte, s.aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return nil, err
	}
	return s.aead.Seal(nonce, nonce, plaintext, aad), nil
}

// ErrSealedElsewhere says a sealed value does not open with this key
// (another data directory's key, or a value moved from where it was sealed).
var ErrSealedElsewhere = errors.New("does not open with this data directory's seal key (vendor.key)")

// Open opens what Seal returned for the same aad.
func (s *Sealer) Open(sealed, aad []byte) ([]byte, error) {
	n := s.aead.NonceSize()
	if len(sealed) < n {
		return nil, errors.New("sealed value too short")
	}
	plain, err := s.aead.Open(nil, sealed[:n], sealed[n:], aad)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrSealedElsewhere, err)
	}
	return plain, nil
}

// VendorKey binds a sealed vendor key to its integration.
func VendorKey(vendorID int64) []byte {
	return []byte("doorledger vendor key " + strconv.FormatInt(vendorID, 10))
}

// TOTPSecret binds a sealed authenticator-app secret to its user.
func TOTPSecret(userID int64) []byte {
	return []byte("doorledger totp secret " + strconv.FormatInt(userID, 10))
}

// WebhookSecret binds a sealed webhook secret to its subscription.
func WebhookSecret(subscriptionID int64) []byte {
	return []byte("doorledger webhook secret " + strconv.FormatInt(subscriptionID, 10))
}

// MailBody binds a sealed mail body to its outbox row and recipient: moved
// to another row, or its row's recipient changed, it does not open, so
// nobody who can only write the database redirects a link to themselves.
func MailBody(id int64, to string) []byte {
	return []byte("doorledger mail body " + strconv.FormatInt(id, 10) + " " + to)
}
