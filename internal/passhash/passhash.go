// Package passhash is how every storage backend hashes and checks account
// passwords (bcrypt, golang.org/x/crypto), so that a hash written by one
// backend verifies on the other (portal migrate copies them as they are).
package passhash

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"fmt"

	"golang.org/x/crypto/bcrypt"
)

// bcryptMaxLen is the most bytes of a password bcrypt reads: golang.org/x/crypto
// refuses to hash a longer one, which would be a 500 for a 73-256 byte password.
const bcryptMaxLen = 72

// key is what bcrypt is given for a password: the password itself up to
// bcryptMaxLen bytes (so every hash made before pre-hashing still verifies),
// and beyond that the base64 of its HMAC-SHA256 under a fixed label (44
// bytes, no NUL), so that every byte of a long passphrase counts. The label
// keeps an unsalted SHA-256 of the password leaked elsewhere from working
// here as a password.
func key(password string) []byte {
	if len(password) <= bcryptMaxLen {
		return []byte(password)
	}
	m := hmac.New(sha256.New, []byte("doorledger password pre-hash v1"))
	m.Write([]byte(password))
	return []byte(base64.StdEncoding.EncodeToString(m.Sum(nil)))
}

// Hash is the one place a password is hashed, at bcrypt cost cost.
func Hash(password string, cost int) (string, error) {
	h, err := bcrypt.GenerateFromPassword(key(password), cost)
	if err != nil {
		return "", fmt.Errorf("hash password: %w", err)
	}
	return string(h), nil
}

// Matches is the one place a password is checked against its hash.
func Matches(hash, password string) bool {
	return bcrypt.CompareHashAndPassword([]byte(hash), key(password)) == nil
}

// Dummy is compared against when the email is unknown, so that a wrong
// address takes as long as a wrong password and does not reveal who has an
// account.
var Dummy, _ = Hash("doorledger-dummy-password", bcrypt.DefaultCost)
