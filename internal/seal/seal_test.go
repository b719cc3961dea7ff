package seal

import (
	"bytes"
	"errors"
	"testing"
)

func TestSealOpen(t *testing.T) {
	s, err := New(bytes.Repeat([]byte{7}, KeySize))
	if err != nil {
		t.Fatal(err)
	}
	sealed, err := s.Seal([]byte("dlvk_secret"), VendorKey(3))
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(sealed, []byte("dlvk_secret")) {
		t.Fatal("the sealed value holds the plaintext")
	}
	if got, err := s.Open(sealed, VendorKey(3)); err != nil || string(got) != "dlvk_secret" {
		t.Fatalf("Open = %q, %v", got, err)
	}
	if _, err := s.Open(sealed, VendorKey(4)); !errors.Is(err, ErrSealedElsewhere) {
		t.Errorf("opened under another row's binding: %v", err)
	}
	other, _ := New(bytes.Repeat([]byte{8}, KeySize))
	if _, err := other.Open(sealed, VendorKey(3)); !errors.Is(err, ErrSealedElsewhere) {
		t.Errorf("opened under another key: %v", err)
	}
	if _, err := s.Open(sealed[:5], VendorKey(3)); err == nil {
		t.Error("a truncated value opened")
	}
	if _, err := New(make([]byte, 16)); err == nil {
		t.Error("New took a 16-byte key")
	}
}

// TestBindings pins the additional data: values sealed by either backend
// (and copied between them) open only under these exact words.
func TestBindings(t *testing.T) {
	for _, tc := range []struct{ got, want string }{
		{string(VendorKey(12)), "doorledger vendor key 12"},
		{string(TOTPSecret(5)), "doorledger totp secret 5"},
		{string(WebhookSecret(9)), "doorledger webhook secret 9"},
		{string(MailBody(41, "a@example.com")), "doorledger mail body 41 a@example.com"},
	} {
		if tc.got != tc.want {
			t.Errorf("got %q, want %q", tc.got, tc.want)
		}
	}
}
