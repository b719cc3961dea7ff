package auditlog_test

import (
	"bytes"
	"encoding/base64"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/doorledger/doorledger/auditlog"
	tlogformats "github.com/transparency-dev/formats/log"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
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
	k := mustKey(t, "doorledger.example/log-1")
	other := mustKey(t, "doorledger.example/log-1")
	root := auditlog.LeafHash([]byte("x"))
	signed, err := auditlog.SignHead(k.Signer(), 42, root)
	if err != nil {
		t.Fatal(err)
	}
	// A C2SP checkpoint: the origin line (the key's name), the size, the
	// root in base64, then the signature under the origin.
	want := "doorledger.example/log-1\n42\n" + base64.StdEncoding.EncodeToString(root[:]) + "\n\n— doorledger.example/log-1 "
	if !strings.HasPrefix(signed, want) {
		t.Errorf("signed head:\n%s\nwant it to start\n%s", signed, want)
	}
	cp, err := auditlog.OpenHead(signed, k.HeadVerifier())
	if err != nil || cp.Size != 42 || cp.Root != root || cp.Origin != "doorledger.example/log-1" || cp.Legacy {
		t.Fatalf("open: %+v %v", cp, err)
	}
	// Another portal's key with the same name does not verify it.
	if _, err := auditlog.OpenHead(signed, other.HeadVerifier()); err == nil || !strings.Contains(err.Error(), "not signed by") {
		t.Errorf("opened with another key: %v", err)
	}
	v, err := auditlog.NewVerifier(k.VerifierKey())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := auditlog.OpenHead(signed, v); err != nil {
		t.Errorf("open with the printed verifier key: %v", err)
	}
	// A checkpoint of another origin, signed with the same key, is not this log's.
	elsewhere, _ := k.Named("elsewhere.example/log")
	foreign, _ := auditlog.SignHead(elsewhere.Signer(), 42, root)
	if _, err := auditlog.OpenHead(foreign, k.HeadVerifier()); err == nil || !strings.Contains(err.Error(), "another log") {
		t.Errorf("opened a checkpoint of another origin: %v", err)
	}
	if _, err := auditlog.OpenHead(foreign, v); err != nil {
		t.Errorf("a verifier key alone names no origin: %v", err)
	}
	// A changed size or root breaks the signature.
	forged := strings.Replace(signed, "\n42\n", "\n43\n", 1)
	if _, err := auditlog.OpenHead(forged, k.HeadVerifier()); err == nil {
		t.Errorf("opened a head whose size was changed")
	}
}

// TestCheckpointParsesWithStandardTooling: a signed head is a checkpoint as
// transparency-dev/formats (what witnesses and monitors use) reads it, with
// the log's verifier key, the plain golang.org/x/mod/sumdb/note verifier.
func TestCheckpointParsesWithStandardTooling(t *testing.T) {
	base := mustKey(t, "doorledger")
	k, err := base.Named("portal.example.org/doorledger-0123456789")
	if err != nil {
		t.Fatal(err)
	}
	root := auditlog.LeafHash([]byte("y"))
	signed, err := auditlog.SignHead(k.Signer(), 1234, root)
	if err != nil {
		t.Fatal(err)
	}
	v, err := note.NewVerifier(k.VerifierKey())
	if err != nil {
		t.Fatal(err)
	}
	cp, _, _, err := tlogformats.ParseCheckpoint([]byte(signed), "portal.example.org/doorledger-0123456789", v)
	if err != nil {
		t.Fatalf("transparency-dev/formats refuses the checkpoint: %v\n%s", err, signed)
	}
	if cp.Size != 1234 || !bytes.Equal(cp.Hash, root[:]) {
		t.Errorf("parsed size %d root %x, want 1234 %x", cp.Size, cp.Hash, root)
	}
	if _, _, _, err := tlogformats.ParseCheckpoint([]byte(signed), "another.example/log", v); err == nil {
		t.Error("parsed as another log's checkpoint")
	}
}

// TestLegacyHeadsStillVerify: heads signed before checkpoints ("go.sum
// database tree", under the key file's own name) verify with the log's
// verifier, now named after its origin, and with the key printed back then.
func TestLegacyHeadsStillVerify(t *testing.T) {
	base := mustKey(t, "doorledger")
	root := auditlog.LeafHash([]byte("z"))
	legacy, err := note.Sign(&note.Note{Text: string(tlog.FormatTree(tlog.Tree{N: 7, Hash: tlog.Hash(root)}))}, base.Signer())
	if err != nil {
		t.Fatal(err)
	}
	k, err := base.Named("portal.example.org/doorledger-0123456789")
	if err != nil {
		t.Fatal(err)
	}
	if k.VerifierKey() == base.VerifierKey() || !bytes.Equal(k.PublicKey(), base.PublicKey()) {
		t.Fatalf("named key %s, base %s: want the same key under another name", k.VerifierKey(), base.VerifierKey())
	}
	for name, v := range map[string]*auditlog.HeadVerifier{"the log's": k.HeadVerifier(), "the old key": mustVerifier(t, base.VerifierKey())} {
		cp, err := auditlog.OpenHead(string(legacy), v)
		if err != nil || !cp.Legacy || cp.Size != 7 || cp.Root != root || cp.Origin != "" {
			t.Errorf("legacy head with %s verifier: %+v %v", name, cp, err)
		}
	}
	// And the other way: a checkpoint checked with the key printed before.
	signed, _ := auditlog.SignHead(k.Signer(), 8, root)
	if _, err := auditlog.OpenHead(signed, mustVerifier(t, base.VerifierKey())); err != nil {
		t.Errorf("a checkpoint with the key printed before checkpoints: %v", err)
	}
	if !k.HeadVerifier().SameKey(base.VerifierKey()) || k.HeadVerifier().SameKey(mustKey(t, "doorledger").VerifierKey()) {
		t.Error("SameKey")
	}
}

func TestLoadOrCreateOrigin(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, auditlog.OriginFile)
	o, err := auditlog.LoadOrCreateOrigin(path, "Portal.Example.org")
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`^portal\.example\.org/doorledger-[0-9a-f]{10}$`).MatchString(o) {
		t.Errorf("origin %q", o)
	}
	// Chosen once: a later start with another host keeps it.
	if again, err := auditlog.LoadOrCreateOrigin(path, "other.example"); err != nil || again != o {
		t.Errorf("second start: %q %v, want %q", again, err, o)
	}
	if o2, _ := auditlog.LoadOrCreateOrigin(filepath.Join(t.TempDir(), auditlog.OriginFile), "Portal.Example.org"); o2 == o {
		t.Errorf("two portals of the same host chose the same origin %q", o)
	}
	if o3, err := auditlog.LoadOrCreateOrigin(filepath.Join(t.TempDir(), auditlog.OriginFile), "bad host+name with spaces"); err != nil || strings.ContainsAny(o3, " +") {
		t.Errorf("origin from a bad host: %q %v", o3, err)
	}
	os.WriteFile(path, []byte("has space\n"), 0o600)
	if _, err := auditlog.LoadOrigin(path); err == nil {
		t.Error("loaded an origin with a space")
	}
}

func mustVerifier(tb testing.TB, vkey string) *auditlog.HeadVerifier {
	tb.Helper()
	v, err := auditlog.NewVerifier(vkey)
	if err != nil {
		tb.Fatal(err)
	}
	return v
}

func mustKey(tb testing.TB, name string) *auditlog.Key {
	tb.Helper()
	k, err := auditlog.LoadOrCreateKey(filepath.Join(tb.TempDir(), auditlog.KeyFile), name)
	if err != nil {
		tb.Fatal(err)
	}
	return k
}
