package token

import "testing"

func TestNew(t *testing.T) {
	a, ah := New()
	b, _ := New()
	if len(a) != 43 || a == b {
		t.Fatalf("New() = %q, %q: want two different 43-character tokens", a, b)
	}
	if got, want := ah, Hash(a); got != want {
		t.Errorf("New's hash = %q, want Hash(token) = %q", got, want)
	}
}

// TestHash pins the stored form: sessions and links already in databases
// are found by it.
func TestHash(t *testing.T) {
	if got, want := Hash("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"; got != want {
		t.Errorf("Hash(abc) = %s, want %s", got, want)
	}
}
