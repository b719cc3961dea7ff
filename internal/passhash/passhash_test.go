package passhash

import (
	"strings"
	"testing"

	"golang.org/x/crypto/bcrypt"
)

func TestMatches(t *testing.T) {
	for _, p := range []string{
		"correct horse battery",
		strings.Repeat("a", bcryptMaxLen),
		strings.Repeat("a", bcryptMaxLen+1),
		strings.Repeat("ü", 256),
	} {
		h, err := Hash(p, bcrypt.MinCost)
		if err != nil {
			t.Fatalf("Hash(%d bytes): %v", len(p), err)
		}
		if !Matches(h, p) {
			t.Errorf("a %d-byte password does not match its own hash", len(p))
		}
		if Matches(h, p+"x") || Matches(h, p[:len(p)-1]) {
			t.Errorf("a %d-byte password's hash matches a password one byte longer or shorter", len(p))
		}
	}
}

// TestLongPasswordEveryByteCounts: bcrypt reads 72 bytes; two passwords
// that differ only past them must not share a hash.
func TestLongPasswordEveryByteCounts(t *testing.T) {
	a := strings.Repeat("x", 100) + "a"
	b := strings.Repeat("x", 100) + "b"
	h, err := Hash(a, bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	if Matches(h, b) {
		t.Error("a password differing past byte 72 matches")
	}
}

// TestShortPasswordUnchanged: a password of up to 72 bytes is given to
// bcrypt as it is, so hashes made before the pre-hash still verify.
func TestShortPasswordUnchanged(t *testing.T) {
	p := strings.Repeat("p", bcryptMaxLen)
	h, err := bcrypt.GenerateFromPassword([]byte(p), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	if !Matches(string(h), p) {
		t.Error("a plain bcrypt hash of a 72-byte password does not verify")
	}
}

func TestDummy(t *testing.T) {
	if Dummy == "" || Matches(Dummy, "") {
		t.Fatalf("Dummy = %q: not a usable hash", Dummy)
	}
}
