// Package token makes the random secrets the portal hands out (session ids,
// one-time links, invitations) and the hash under which every storage backend
// keeps them, so that a copy of the database yields no usable token.
package token

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
)

// New returns 32 random bytes, URL-safe encoded, and the hash to store.
func New() (token, hash string) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand never fails on supported platforms
	}
	token = base64.RawURLEncoding.EncodeToString(b)
	return token, Hash(token)
}

// Hash is how tokens are stored: the hex SHA-256 of the token.
func Hash(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

// Matches reports whether token hashes to stored (a Hash), in time that
// does not depend on where they differ; a stored value that is not a hash
// (none issued) is still compared, against zeros, and never matches.
func Matches(stored, token string) bool {
	want, err := hex.DecodeString(stored)
	valid := err == nil && len(want) == sha256.Size
	if !valid {
		want = make([]byte, sha256.Size) // still compare, so timing says nothing
	}
	got := sha256.Sum256([]byte(token))
	return subtle.ConstantTimeCompare(got[:], want) == 1 && valid
}
