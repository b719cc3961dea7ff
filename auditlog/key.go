package auditlog

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strconv"
	"strings"
	"sync"
	"unicode"

	"github.com/doorledger/doorledger"
	"github.com/doorledger/doorledger/internal/atomicfile"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// Key is the portal's Ed25519 key that signs the log's heads, as a note
// signer ("PRIVATE+KEY+<name>+<hash>+<key>", kept secret in the data
// directory) and its verifier key ("<name>+<hash>+<key>", public: shown in the
// admin pages and printed in reports). The log signs its checkpoints under
// its origin (Named), as C2SP tlog-checkpoint recommends; the name in the
// key file is the one the key was created with.
type Key struct {
	signer   note.Signer
	verifier note.Verifier
	vkey     string
	public   ed25519.PublicKey
	seed     []byte
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
	if err := atomicfile.CreateOnce(path, []byte(skey+"\n")); err != nil {
		return nil, fmt.Errorf("log key: %w", err)
	}
	return LoadKey(path)
}

// OriginFile is the log's origin's file name in the data directory, beside
// KeyFile.
const OriginFile = "log.origin"

// LoadOrCreateOrigin reads the log's origin line at path, or on first start
// chooses one, host plus a random suffix (as in
// "portal.example.com/doorledger-3f9a2c71d0"), and writes it there. It is
// chosen once and never derived again: to anyone who witnesses the log, a
// changed origin is another log. host is the portal's public host name
// (characters other than letters, digits, '.', '-' and ':' are dropped).
func LoadOrCreateOrigin(path, host string) (string, error) {
	o, err := LoadOrigin(path)
	if !errors.Is(err, fs.ErrNotExist) {
		return o, err
	}
	host = strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9', r == '.', r == '-', r == ':':
			return r
		case r >= 'A' && r <= 'Z':
			return r + 'a' - 'A'
		}
		return -1
	}, host)
	if host == "" {
		host = "localhost"
	}
	suffix := make([]byte, 5)
	if _, err := rand.Read(suffix); err != nil {
		return "", err
	}
	origin := host + "/doorledger-" + hex.EncodeToString(suffix)
	if err := checkOrigin(origin); err != nil {
		return "", err
	}
	if err := atomicfile.CreateOnce(path, []byte(origin+"\n")); err != nil {
		return "", fmt.Errorf("log origin: %w", err)
	}
	return LoadOrigin(path)
}

// LoadOrigin reads the log's origin line at path (an error wrapping
// fs.ErrNotExist when there is none).
func LoadOrigin(path string) (string, error) {
	buf, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("log origin: %w", err)
	}
	origin := strings.TrimSuffix(string(buf), "\n")
	if err := checkOrigin(origin); err != nil {
		return "", fmt.Errorf("log origin %s: %w", path, err)
	}
	return origin, nil
}

// checkOrigin accepts an origin that can be a checkpoint's first line and
// the log key's name: not empty, no space, no "+".
func checkOrigin(origin string) error {
	if origin == "" || strings.ContainsAny(origin, "+\n") || strings.IndexFunc(origin, unicode.IsSpace) >= 0 {
		return fmt.Errorf("%q is not an origin (no spaces, no \"+\")", origin)
	}
	if _, err := note.NewEd25519VerifierKey(origin, make([]byte, ed25519.PublicKeySize)); err != nil {
		return fmt.Errorf("%q is not an origin: %w", origin, err)
	}
	return nil
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
	return &Key{signer: signer, verifier: verifier, vkey: vkey, public: pub, seed: raw[1:]}, nil
}

// Named returns the same Ed25519 key under another note key name: the log
// signs its checkpoints under its origin. A signature is over the note's
// text only, so whoever holds the key under one name can check what it
// signed under another (HeadVerifier).
func (k *Key) Named(name string) (*Key, error) {
	if name == k.signer.Name() {
		return k, nil
	}
	vkey, err := note.NewEd25519VerifierKey(name, k.public)
	if err != nil {
		return nil, fmt.Errorf("log key named %q: %w", name, err)
	}
	// "<name>+<hash>+<key>": the signer key is the same with its seed.
	hash := strings.SplitN(vkey, "+", 3)[1]
	return ParseKey("PRIVATE+KEY+" + name + "+" + hash + "+" + base64.StdEncoding.EncodeToString(append([]byte{1}, k.seed...)))
}

// Name is the key's note name: the log's origin once Named.
func (k *Key) Name() string { return k.signer.Name() }

// Signer signs heads.
func (k *Key) Signer() note.Signer { return k.signer }

// Verifier checks heads' signatures.
func (k *Key) Verifier() note.Verifier { return k.verifier }

// VerifierKey is the public verifier key, "<name>+<hash>+<key>".
func (k *Key) VerifierKey() string { return k.vkey }

// PublicKey is the raw Ed25519 public key.
func (k *Key) PublicKey() ed25519.PublicKey { return k.public }

// PrivateKey is the Ed25519 private key, for signers of other formats than
// signed notes (a witness's cosignatures: witness.Open).
func (k *Key) PrivateKey() ed25519.PrivateKey { return ed25519.NewKeyFromSeed(k.seed) }

// HeadVerifier checks the log's signed heads: notes signed with one Ed25519
// key, under whatever key name the signature line gives (a checkpoint's is
// the log's origin; heads signed before checkpoints carry the name the key
// was created with, "doorledger"). The key is what is trusted; the name is a
// label the signature does not cover. With an origin, a checkpoint of
// another log (another origin line) is refused.
type HeadVerifier struct {
	pub    ed25519.PublicKey
	vkey   string
	origin string

	mu    sync.Mutex
	names map[string]note.Verifier
}

// HeadVerifier returns the verifier of the heads this key signs, for the
// log whose origin is the key's name.
func (k *Key) HeadVerifier() *HeadVerifier {
	return &HeadVerifier{pub: k.public, vkey: k.vkey, origin: k.signer.Name()}
}

// NewVerifier reads a verifier key as VerifierKey writes it, e.g. one printed
// in an earlier report, to check heads with. It accepts heads of any origin:
// ForOrigin narrows it.
func NewVerifier(vkey string) (*HeadVerifier, error) {
	vkey = strings.TrimSpace(vkey)
	if _, err := note.NewVerifier(vkey); err != nil {
		return nil, fmt.Errorf("verifier key: %w", err)
	}
	// "<name>+<hash>+<base64(0x01 || key)>", which NewVerifier just accepted.
	parts := strings.SplitN(vkey, "+", 3)
	raw, err := base64.StdEncoding.DecodeString(parts[2])
	if err != nil || len(raw) != 1+ed25519.PublicKeySize || raw[0] != 1 {
		return nil, errors.New("verifier key: not an Ed25519 key")
	}
	return &HeadVerifier{pub: ed25519.PublicKey(raw[1:]), vkey: vkey}, nil
}

// ForOrigin returns the verifier that also requires a checkpoint's origin
// line to be origin ("": any).
func (v *HeadVerifier) ForOrigin(origin string) *HeadVerifier {
	return &HeadVerifier{pub: v.pub, vkey: v.vkey, origin: origin}
}

// VerifierKey is the key as given ("<name>+<hash>+<key>").
func (v *HeadVerifier) VerifierKey() string { return v.vkey }

// Origin is the origin a checkpoint must have ("": any).
func (v *HeadVerifier) Origin() string { return v.origin }

// PublicKey is the raw Ed25519 public key.
func (v *HeadVerifier) PublicKey() ed25519.PublicKey { return v.pub }

// SameKey reports whether vkey is this verifier's Ed25519 key, under any name.
func (v *HeadVerifier) SameKey(vkey string) bool {
	o, err := NewVerifier(vkey)
	return err == nil && o.pub.Equal(v.pub)
}

// Verifier implements note.Verifiers: the key under the signature's name,
// when the signature's key hash is that of the key under that name.
func (v *HeadVerifier) Verifier(name string, hash uint32) (note.Verifier, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	nv, ok := v.names[name]
	if !ok {
		if vkey, err := note.NewEd25519VerifierKey(name, v.pub); err == nil {
			nv, _ = note.NewVerifier(vkey)
		}
		if v.names == nil {
			v.names = map[string]note.Verifier{}
		}
		if len(v.names) < 16 {
			v.names[name] = nv
		}
	}
	if nv == nil || nv.KeyHash() != hash {
		return nil, &note.UnknownVerifierError{Name: name, KeyHash: hash}
	}
	return nv, nil
}

// legacyHeader is the first line of the heads signed before checkpoints:
// tlog.FormatTree's, the Go checksum database's own header.
const legacyHeader = "go.sum database tree"

// Checkpoint is what a signed head says: a C2SP tlog-checkpoint's origin
// line, tree size and root hash. Origin is "" for a head signed before
// checkpoints (Legacy), which named no log.
type Checkpoint struct {
	Origin string
	Size   int64
	Root   doorledger.LogHash
	Legacy bool
}

// SignHead signs the head of a tree as a C2SP tlog-checkpoint
// (c2sp.org/tlog-checkpoint): a signed note whose text is the log's origin
// line, the tree size in decimal and the root hash in base64, each ending
// with a newline. The origin is the signer's key name, as the specification
// recommends (Key.Named gives the log's key under its origin).
func SignHead(s note.Signer, size int64, root doorledger.LogHash) (string, error) {
	text := FormatCheckpoint(Checkpoint{Origin: s.Name(), Size: size, Root: root})
	msg, err := note.Sign(&note.Note{Text: text}, s)
	if err != nil {
		return "", fmt.Errorf("sign head: %w", err)
	}
	return string(msg), nil
}

// FormatCheckpoint writes a checkpoint's note text.
func FormatCheckpoint(c Checkpoint) string {
	return c.Origin + "\n" + strconv.FormatInt(c.Size, 10) + "\n" + base64.StdEncoding.EncodeToString(c.Root[:]) + "\n"
}

// ParseCheckpoint reads a signed head's note text: a C2SP checkpoint (its
// extension lines, if any, are ignored), or a head signed before
// checkpoints (tlog.FormatTree's "go.sum database tree" text).
func ParseCheckpoint(text string) (Checkpoint, error) {
	if strings.HasPrefix(text, legacyHeader+"\n") {
		tree, err := tlog.ParseTree([]byte(text))
		if err != nil {
			return Checkpoint{}, err
		}
		return Checkpoint{Size: tree.N, Root: doorledger.LogHash(tree.Hash), Legacy: true}, nil
	}
	lines := strings.SplitAfter(text, "\n")
	if len(lines) < 4 || lines[len(lines)-1] != "" {
		return Checkpoint{}, errors.New("malformed checkpoint: want an origin, a size and a root hash, each on its line")
	}
	lines = lines[:len(lines)-1]
	for i, l := range lines {
		lines[i] = strings.TrimSuffix(l, "\n")
		if lines[i] == "" {
			return Checkpoint{}, fmt.Errorf("malformed checkpoint: line %d is empty", i+1)
		}
	}
	c := Checkpoint{Origin: lines[0]}
	n, err := strconv.ParseInt(lines[1], 10, 64)
	if err != nil || n < 0 || strconv.FormatInt(n, 10) != lines[1] {
		return Checkpoint{}, fmt.Errorf("malformed checkpoint: tree size %q", lines[1])
	}
	c.Size = n
	root, err := base64.StdEncoding.DecodeString(lines[2])
	if err != nil || len(root) != len(c.Root) {
		return Checkpoint{}, fmt.Errorf("malformed checkpoint: root hash %q", lines[2])
	}
	copy(c.Root[:], root)
	return c, nil
}

// OpenHead checks a signed head with v and returns the checkpoint it signs.
func OpenHead(signed string, v *HeadVerifier) (Checkpoint, error) {
	if v == nil {
		return Checkpoint{}, errors.New("no verifier key")
	}
	n, err := note.Open([]byte(signed), v)
	if err != nil {
		var unknown *note.UnverifiedNoteError
		if errors.As(err, &unknown) {
			return Checkpoint{}, fmt.Errorf("not signed by %s", v.vkey)
		}
		return Checkpoint{}, err
	}
	c, err := ParseCheckpoint(n.Text)
	if err != nil {
		return Checkpoint{}, err
	}
	if !c.Legacy && v.origin != "" && c.Origin != v.origin {
		return Checkpoint{}, fmt.Errorf("a checkpoint of another log: its origin is %q, this log's is %q", c.Origin, v.origin)
	}
	return c, nil
}
