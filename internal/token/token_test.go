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

func TestMatches(t *testing.T) {
	tok, hash := New()
	if !Matches(hash, tok) {
		t.Error("a token does not match its own hash")
	}
	if Matches(hash, tok+"x") || Matches("", tok) || Matches("zz", "") {
		t.Error("a wrong token, or one against no hash, matches")
	}
	if Matches("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", "") != true {
		t.Error("the empty token does not match its hash (callers refuse it themselves)")
	}
}
