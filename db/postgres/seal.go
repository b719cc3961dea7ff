package postgres

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"errors"
	"fmt"
)

// SealKeySize is the size of the key that seals secrets the database must
// keep but must not hold in the clear: vendor integrations' HMAC keys and the
// bodies of mail not yet sent (AES-256).
const SealKeySize = 32

// sealer seals secrets with AES-256-GCM under a key kept outside the database
// (the data directory's vendor.key), so that a copy of the database alone
// yields none of them. Each sealed value is bound (additional data) to where
// it is stored: moved to another row, it does not open.
type sealer struct{ aead cipher.AEAD }

func newSealer(key []byte) (*sealer, error) {
	if len(key) != SealKeySize {
		return nil, fmt.Errorf("the seal key must be %d bytes, not %d", SealKeySize, len(key))
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	return &sealer{aead: aead}, nil
}

// randomSealer seals under a key that lives only as long as the process: for
// a DB whose owner sets no key (tests); the portal sets the data directory's.
func randomSealer() *sealer {
	key := make([]byte, SealKeySize)
	if _, err := rand.Read(key); err != nil {
		panic(err) // crypto/rand never fails on supported platforms
	}
	s, err := newSealer(key)
	if err != nil {
		panic(err)
	}
	return s
}

// seal returns a random nonce followed by the sealed plaintext.
func (s *sealer) seal(plaintext, aad []byte) ([]byte, error) {
	nonce := make([]byte, s.aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return nil, err
	}
	return s.aead.Seal(nonce, nonce, plaintext, aad), nil
}

// errSealedElsewhere says a sealed value does not open with this key (another
// data directory's key, or a value moved from where it was sealed).
var errSealedElsewhere = errors.New("does not open with this data directory's seal key (vendor.key)")

// open opens what seal returned for the same aad.
func (s *sealer) open(sealed, aad []byte) ([]byte, error) {
	n := s.aead.NonceSize()
	if len(sealed) < n {
		return nil, errors.New("sealed value too short")
	}
	plain, err := s.aead.Open(nil, sealed[:n], sealed[n:], aad)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errSealedElsewhere, err)
	}
	return plain, nil
}
