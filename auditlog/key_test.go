package auditlog_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/doorledger/doorledger/auditlog"
)

func TestLoadOrCreateKey(t *testing.T) {
	path := filepath.Join(t.TempDir(), auditlog.KeyFile)
	k, err := auditlog.LoadOrCreateKey(path, "doorledger.example")
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if perm := fi.Mode().Perm(); perm != 0o600 {
		t.Errorf("key file mode %v, want 0600", perm)
	}
	buf, _ := os.ReadFile(path)
	if !strings.HasPrefix(string(buf), "PRIVATE+KEY+doorledger.example+") {
		t.Errorf("key file holds %q", buf)
	}
	if vk := k.VerifierKey(); !strings.HasPrefix(vk, "doorledger.example+") || strings.Contains(vk, "PRIVATE") {
		t.Errorf("verifier key %q", vk)
	}
	if len(k.PublicKey()) != 32 {
		t.Errorf("public key of %d bytes", len(k.PublicKey()))
	}
	// The second start reads the same key; it never makes another.
	again, err := auditlog.LoadOrCreateKey(path, "other-name")
	if err != nil || again.VerifierKey() != k.VerifierKey() {
		t.Fatalf("second start: %v, key %q want %q", err, again.VerifierKey(), k.VerifierKey())
	}
	if entries, _ := os.ReadDir(filepath.Dir(path)); len(entries) != 1 {
		t.Errorf("data directory holds %d files, want only the key", len(entries))
	}
	if _, err := auditlog.LoadOrCreateKey(filepath.Join(t.TempDir(), "k"), "bad name"); err == nil {
		t.Errorf("created a key named with a space")
	}
	os.WriteFile(path, []byte("PRIVATE+KEY+x+00000000+AAAA\n"), 0o600)
	if _, err := auditlog.LoadOrCreateKey(path, "x"); err == nil {
		t.Errorf("loaded a broken key file")
	}
}

func TestSignedHead(t *testing.T) {
	k := mustKey(t, "doorledger")
	other := mustKey(t, "doorledger")
	root := auditlog.LeafHash([]byte("x"))
	signed, err := auditlog.SignHead(k.Signer(), 42, root)
	if err != nil {
		t.Fatal(err)
	}
	size, got, err := auditlog.OpenHead(signed, k.Verifier())
	if err != nil || size != 42 || got != root {
		t.Fatalf("open: %d %v %v", size, got, err)
	}
	// Another portal's key with the same name does not verify it.
	if _, _, err := auditlog.OpenHead(signed, other.Verifier()); err == nil || !strings.Contains(err.Error(), "not signed by") {
		t.Errorf("opened with another key: %v", err)
	}
	v, err := auditlog.NewVerifier(k.VerifierKey())
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := auditlog.OpenHead(signed, v); err != nil {
		t.Errorf("open with the printed verifier key: %v", err)
	}
	// A changed size or root breaks the signature.
	forged := strings.Replace(signed, "\n42\n", "\n43\n", 1)
	if _, _, err := auditlog.OpenHead(forged, k.Verifier()); err == nil {
		t.Errorf("opened a head whose size was changed")
	}
}

func mustKey(tb testing.TB, name string) *auditlog.Key {
	tb.Helper()
	k, err := auditlog.LoadOrCreateKey(filepath.Join(tb.TempDir(), auditlog.KeyFile), name)
	if err != nil {
		tb.Fatal(err)
	}
	return k
}
