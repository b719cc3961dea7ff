package auditlog

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/doorledger/doorledger"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// Key is the portal's Ed25519 key that signs the log's heads, as a note
// signer ("PRIVATE+KEY+<name>+<hash>+<key>", kept secret in the data
// directory) and its verifier key ("<name>+<hash>+<key>", public: shown in the
// admin pages and printed in reports).
type Key struct {
	signer   note.Signer
	verifier note.Verifier
	vkey     string
	public   ed25519.PublicKey
}

// KeyFile is the key's file name in the data directory.
const KeyFile = "log.key"

// LoadOrCreateKey reads the signing key at path, or on first start creates one
// named name (e.g. the portal's host name: no spaces, no "+") and writes it
// there, readable by the owner only. A key file is never overwritten.
func LoadOrCreateKey(path, name string) (*Key, error) {
	k, err := LoadKey(path)
	if !errors.Is(err, fs.ErrNotExist) {
		return k, err
	}
	skey, _, err := note.GenerateKey(rand.Reader, name)
	if err != nil {
		return nil, fmt.Errorf("log key: generate: %w", err)
	}
	// Write a temporary file, then link it into place: the key appears whole
	// or not at all, and a key another process created meanwhile wins.
	tmp, err := os.CreateTemp(filepath.Dir(path), ".log.key-*")
	if err != nil {
		return nil, fmt.Errorf("log key: %w", err)
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return nil, fmt.Errorf("log key: %w", err)
	}
	if _, err := tmp.WriteString(skey + "\n"); err != nil {
		tmp.Close()
		return nil, fmt.Errorf("log key: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return nil, fmt.Errorf("log key: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return nil, fmt.Errorf("log key: %w", err)
	}
	if err := os.Link(tmp.Name(), path); err != nil && !errors.Is(err, fs.ErrExist) {
		return nil, fmt.Errorf("log key: %w", err)
	}
	if d, err := os.Open(filepath.Dir(path)); err == nil {
		d.Sync()
		d.Close()
	}
	return LoadKey(path)
}

// LoadKey reads the signing key at path (an error wrapping fs.ErrNotExist
// when there is none).
func LoadKey(path string) (*Key, error) {
	buf, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("log key: %w", err)
	}
	k, err := ParseKey(strings.TrimSpace(string(buf)))
	if err != nil {
		return nil, fmt.Errorf("log key %s: %w", path, err)
	}
	return k, nil
}

// ParseKey reads an encoded note signer key.
func ParseKey(skey string) (*Key, error) {
	signer, err := note.NewSigner(skey)
	if err != nil {
		return nil, errors.New("not a signing key")
	}
	// PRIVATE+KEY+<name>+<hash>+<base64(1 || seed)>: derive the public key.
	parts := strings.SplitN(skey, "+", 5)
	raw, err := base64.StdEncoding.DecodeString(parts[4])
	if err != nil || len(raw) != 1+ed25519.SeedSize || raw[0] != 1 {
		return nil, errors.New("not an Ed25519 signing key")
	}
	pub := ed25519.NewKeyFromSeed(raw[1:]).Public().(ed25519.PublicKey)
	vkey, err := note.NewEd25519VerifierKey(signer.Name(), pub)
	if err != nil {
		return nil, err
	}
	verifier, err := note.NewVerifier(vkey)
	if err != nil {
		return nil, err
	}
	if verifier.KeyHash() != signer.KeyHash() {
		return nil, errors.New("the key's hash does not match the key")
	}
	return &Key{signer: signer, verifier: verifier, vkey: vkey, public: pub}, nil
}

// Signer signs heads.
func (k *Key) Signer() note.Signer { return k.signer }

// Verifier checks heads' signatures.
func (k *Key) Verifier() note.Verifier { return k.verifier }

// VerifierKey is the public verifier key, "<name>+<hash>+<key>".
func (k *Key) VerifierKey() string { return k.vkey }

// PublicKey is the raw Ed25519 public key.
func (k *Key) PublicKey() ed25519.PublicKey { return k.public }

// NewVerifier reads a verifier key as VerifierKey writes it, e.g. one printed
// in an earlier report, to check heads with.
func NewVerifier(vkey string) (note.Verifier, error) {
	v, err := note.NewVerifier(strings.TrimSpace(vkey))
	if err != nil {
		return nil, fmt.Errorf("verifier key: %w", err)
	}
	return v, nil
}

// SignHead signs the head of a tree: a note whose text is tlog.FormatTree's
// ("go.sum database tree\n<size>\n<base64 root>\n"), as the Go checksum
// database and other tlog logs sign theirs.
func SignHead(s note.Signer, size int64, root doorledger.LogHash) (string, error) {
	msg, err := note.Sign(&note.Note{Text: string(tlog.FormatTree(tlog.Tree{N: size, Hash: tlog.Hash(root)}))}, s)
	if err != nil {
		return "", fmt.Errorf("sign head: %w", err)
	}
	return string(msg), nil
}

// OpenHead checks a signed head with v and returns the tree it signs.
func OpenHead(signed string, v note.Verifier) (size int64, root doorledger.LogHash, err error) {
	if v == nil {
		return 0, root, errors.New("no verifier key")
	}
	n, err := note.Open([]byte(signed), note.VerifierList(v))
	if err != nil {
		var unknown *note.UnverifiedNoteError
		if errors.As(err, &unknown) {
			return 0, root, fmt.Errorf("not signed by %s", v.Name()+"+"+fmt.Sprintf("%08x", v.KeyHash()))
		}
		return 0, root, err
	}
	tree, err := tlog.ParseTree([]byte(n.Text))
	if err != nil {
		return 0, root, err
	}
	return tree.N, doorledger.LogHash(tree.Hash), nil
}
