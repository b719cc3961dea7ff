// Command verify checks an unzipped Doorledger evidence bundle without the
// portal and without the network. It is one long file on purpose: a board runs
// it with `go run verify.go` and nothing else, no module and no other file. It
// ships in every bundle as verify.go; in the bundle's directory:
//
//	go run verify.go [-witnesses FILE] [verifier key]
//
// It checks, in order, and stops at the first failure, naming it:
//
//  1. every file against the SHA-256 manifest at the end of README.txt (and
//     that no file is missing or unlisted);
//  2. that log-head.txt is a note signed by the key in verifier-key.txt
//     (and that this is the key given as the argument, if any: take it from
//     the portal's admin pages or an earlier report), and what it signs: a
//     C2SP tlog-checkpoint (origin line, tree size, root hash), or a head
//     signed before checkpoints ("go.sum database tree");
//  3. that each consent's terms file hashes to the consent's terms_sha256;
//  4. that every journal entry of audit.jsonl encodes to the canonical
//     encoding given, which hashes to its leaf hash;
//  5. that every row of events.csv, re-encoded as the log encoded the event,
//     hashes to the leaf hash whose first bytes log-proof.jsonl lists for it
//     (which names a changed row);
//  6. that those leaves, at their positions, with the nodes of
//     log-proof.jsonl, give the signed head's root;
//  7. for unlock events whose courier or package reference was removed
//     under the privacy profile (their log-proof.jsonl line says "redacted"):
//     that the redaction's journal entry in redactions.jsonl encodes to its
//     leaf (proved with the others in step 6), and that its digest, SHA-256
//     over the events it names in id order, each its 8-byte big-endian id,
//     its leaf as logged and the leaf hash of its row as it remains,
//     matches those rows of events.csv (with the leaf the line gives, which
//     step 6 proves) and what the line of redactions.jsonl gives of the
//     events the bundle does not hold;
//  8. with -witnesses FILE (the witnesses the board trusts: one cosignature
//     key a line, "<name>+<hash>+<key>" as each witness printed it, with an
//     optional label before it, and "k N" for how many must vouch): that
//     witness-checkpoint.txt is signed by the log's key, which of those
//     witnesses cosigned it (c2sp.org/tlog-cosignature: Ed25519 over
//     "cosignature/v1\ntime <unix seconds>\n" and the checkpoint), and that
//     log-head.txt extends it (the RFC 6962 consistency proof of
//     witness-proof.txt); it names the witnesses that vouched, when, and those
//     missing, and fails when fewer than k vouched. The keys come from the
//     board, never from the bundle: a bundle cannot vouch for its own
//     witnesses.
//
// The canonical encoding (Doorledger's package auditlog) is
// "doorledger-log/1\n" then one line per field, "name length value\n",
// length being the value's length in bytes. An audit entry's fields: kind
// ("audit"), id, at (UTC, 2006-01-02T15:04:05.000000Z), actor_id, actor,
// action, building_id, object_type, object_id, ip, detail. An unlock event's:
// kind ("unlock"), id, building_id, device_id (0: a device the portal does
// not know), device_ref, event_id, occurred_at, received_at, method,
// actor_ref, result, anomalies (the kinds, joined by ","), source.
//
// Why the hashing and the signature check are written out here rather than
// taken from golang.org/x/mod/sumdb/tlog and note, as the portal does: this
// program must run where the bundle is opened, possibly years later and
// offline, with nothing but a Go toolchain; importing any module would need a
// download. What it re-implements is small and fixed by standards: RFC 6962's
// leaf and node hashes (SHA-256 over 0x00 || leaf, 0x01 || left || right),
// the split of a tree at the largest power of two, the signed-note format
// and its Ed25519 key hash. Its tests (verify_test.go) check it against tlog
// and note on random trees, keys and notes, so any divergence fails.
//
// It imports only the standard library.
package main

import (
	"bufio"
	"bytes"
	"cmp"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/csv"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"math/bits"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

func main() {
	if err := run(os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "FAILED:", err)
		os.Exit(1)
	}
	fmt.Println("OK: the bundle verifies")
}

func run(args []string, out io.Writer) error {
	flags := flag.NewFlagSet("verify", flag.ContinueOnError)
	witnessFile := flags.String("witnesses", "", "a file of the witnesses your board trusts: one key a line, and \"k N\"")
	if err := flags.Parse(args); err != nil {
		return err
	}
	args = flags.Args()
	if err := checkManifest(out); err != nil {
		return err
	}
	head, err := checkHead(args, out)
	if err != nil {
		return err
	}
	if err := checkTerms(out); err != nil {
		return err
	}
	leaves, err := checkAudit(head, out)
	if err != nil {
		return err
	}
	reds, err := checkRedactionEntries(head, out)
	if err != nil {
		return err
	}
	for _, r := range reds {
		if r.proved {
			leaves = append(leaves, r.leaf)
		}
	}
	if err := checkEvents(head, leaves, reds, out); err != nil {
		return err
	}
	if err := checkRedactions(reds, out); err != nil {
		return err
	}
	return checkWitnesses(*witnessFile, head, out)
}

// checkManifest compares every file with README.txt's manifest.
func checkManifest(out io.Writer) error {
	readme, err := os.ReadFile("README.txt")
	if err != nil {
		return err
	}
	_, manifest, ok := bytes.Cut(readme, []byte("\nManifest (SHA-256)\n"))
	if !ok {
		return errors.New("README.txt: no manifest")
	}
	want := map[string]string{}
	for _, line := range strings.Split(string(manifest), "\n") {
		sum, name, ok := strings.Cut(line, "  ")
		if ok && len(sum) == 64 {
			want[name] = sum
		}
	}
	var have []string
	err = filepath.WalkDir(".", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		name := filepath.ToSlash(path)
		switch name {
		case "README.txt", "go.mod", "go.sum":
			return nil
		}
		have = append(have, name)
		return nil
	})
	if err != nil {
		return err
	}
	for name := range want {
		if !slices.Contains(have, name) {
			return fmt.Errorf("%s: listed in the manifest but missing", name)
		}
	}
	slices.Sort(have)
	for _, name := range have {
		f, err := os.Open(name)
		if err != nil {
			return err
		}
		h := sha256.New()
		_, err = io.Copy(h, f)
		f.Close()
		if err != nil {
			return err
		}
		sum := h.Sum(nil)
		switch w, ok := want[name]; {
		case !ok:
			return fmt.Errorf("%s: not in the manifest", name)
		case hex.EncodeToString(sum) != w:
			return fmt.Errorf("%s: SHA-256 %x, the manifest says %s: the file was changed", name, sum, w)
		}
	}
	fmt.Fprintf(out, "files: %d match the manifest\n", len(have))
	return nil
}

// hash is a SHA-256 hash of the tree.
type hash [32]byte

// leafHash is RFC 6962's hash of a leaf: SHA-256(0x00 || data).
func leafHash(data []byte) hash {
	h := sha256.New()
	h.Write([]byte{0})
	h.Write(data)
	var out hash
	h.Sum(out[:0])
	return out
}

// nodeHash is RFC 6962's hash of an inner node: SHA-256(0x01 || left || right).
func nodeHash(left, right hash) hash {
	var buf [1 + 64]byte
	buf[0] = 1
	copy(buf[1:], left[:])
	copy(buf[33:], right[:])
	return sha256.Sum256(buf[:])
}

// emptyRoot is the root of a tree of no entries: SHA-256 of nothing.
func emptyRoot() hash { return sha256.Sum256(nil) }

// verifierKey is a note verifier key, "<name>+<hash>+<base64(0x01 || key)>".
type verifierKey struct {
	name string
	pub  ed25519.PublicKey
}

// keyHash is a signed note's key hash: the first four bytes, big-endian, of
// SHA-256(name || "\n" || 0x01 || Ed25519 public key).
func keyHash(name string, pub ed25519.PublicKey) uint32 {
	h := sha256.New()
	h.Write([]byte(name))
	h.Write([]byte{'\n', 1})
	h.Write(pub)
	return binary.BigEndian.Uint32(h.Sum(nil))
}

// validKeyName reports whether a note key name is well formed: not empty,
// valid UTF-8, no spaces, no "+", no control characters.
func validKeyName(name string) bool {
	if name == "" || !utf8.ValidString(name) {
		return false
	}
	for _, r := range name {
		if r == '+' || r <= ' ' || r == 0x7f || r == 0x85 || r == 0xa0 || r == 0x2028 || r == 0x2029 || r == 0xfeff {
			return false
		}
	}
	return true
}

func parseVerifierKey(vkey string) (*verifierKey, error) {
	name, rest, ok1 := strings.Cut(vkey, "+")
	hash16, key64, ok2 := strings.Cut(rest, "+")
	h, err1 := strconv.ParseUint(hash16, 16, 32)
	key, err2 := base64.StdEncoding.DecodeString(key64)
	if !ok1 || !ok2 || len(hash16) != 8 || err1 != nil || err2 != nil || !validKeyName(name) ||
		len(key) != 1+ed25519.PublicKeySize || key[0] != 1 {
		return nil, errors.New("not an Ed25519 note verifier key")
	}
	pub := ed25519.PublicKey(key[1:])
	if keyHash(name, pub) != uint32(h) {
		return nil, errors.New("its key hash does not match its key")
	}
	return &verifierKey{name: name, pub: pub}, nil
}

// openNote checks a signed note (c2sp.org/signed-note) with key: the text,
// a blank line, then signature lines "— <name> <base64(key hash || signature)>".
// A line of another key is ignored; the key may sign under any name (the
// portal's heads are signed under the log's origin, and were under the
// name "doorledger" before checkpoints): the signature covers the text only.
// It returns the text.
func openNote(msg []byte, key *verifierKey) (string, error) {
	if !utf8.Valid(msg) {
		return "", errors.New("malformed note: not UTF-8")
	}
	i := bytes.LastIndex(msg, []byte("\n\n"))
	if i < 0 || len(msg) == 0 || msg[len(msg)-1] != '\n' {
		return "", errors.New("malformed note: no signatures")
	}
	text, sigs := msg[:i+1], msg[i+2:]
	for _, r := range string(text) {
		if r < ' ' && r != '\n' || r == 0x7f {
			return "", errors.New("malformed note: a control character in its text")
		}
	}
	verified := false
	for len(sigs) > 0 {
		line, rest, _ := bytes.Cut(sigs, []byte("\n"))
		sigs = rest
		body, ok := bytes.CutPrefix(line, []byte("— "))
		name, b64, ok2 := bytes.Cut(body, []byte(" "))
		sig, err := base64.StdEncoding.DecodeString(string(b64))
		if !ok || !ok2 || err != nil || !validKeyName(string(name)) || len(sig) < 5 {
			return "", errors.New("malformed note: a bad signature line")
		}
		if binary.BigEndian.Uint32(sig) != keyHash(string(name), key.pub) {
			continue // another key's: a witness's cosignature, say
		}
		if !ed25519.Verify(key.pub, text, sig[4:]) {
			return "", fmt.Errorf("the signature of %s does not verify", name)
		}
		verified = true
	}
	if !verified {
		return "", errors.New("no signature by the key")
	}
	return string(text), nil
}

// tree is what a signed head says of the log.
type tree struct {
	origin string // "" for a head signed before checkpoints
	size   int64
	root   hash
}

// parseCheckpoint reads a head's text: a C2SP tlog-checkpoint (origin line,
// tree size, base64 root hash, extension lines ignored), or a head signed
// before checkpoints ("go.sum database tree", then size and root alike).
func parseCheckpoint(text string) (*tree, error) {
	lines := strings.Split(text, "\n")
	if len(lines) < 4 || lines[len(lines)-1] != "" {
		return nil, errors.New("malformed checkpoint")
	}
	lines = lines[:len(lines)-1]
	for _, l := range lines {
		if l == "" {
			return nil, errors.New("malformed checkpoint: an empty line")
		}
	}
	t := &tree{origin: lines[0]}
	if t.origin == "go.sum database tree" {
		if len(lines) != 3 {
			return nil, errors.New("malformed tree note")
		}
		t.origin = ""
	}
	n, err := strconv.ParseInt(lines[1], 10, 64)
	if err != nil || n < 0 || strconv.FormatInt(n, 10) != lines[1] {
		return nil, fmt.Errorf("malformed checkpoint: tree size %q", lines[1])
	}
	t.size = n
	root, err := base64.StdEncoding.DecodeString(lines[2])
	if err != nil || len(root) != len(t.root) {
		return nil, fmt.Errorf("malformed checkpoint: root hash %q", lines[2])
	}
	copy(t.root[:], root)
	return t, nil
}

// checkHead opens the signed head with the bundle's key.
func checkHead(args []string, out io.Writer) (*tree, error) {
	data, err := os.ReadFile("verifier-key.txt")
	if errors.Is(err, fs.ErrNotExist) {
		fmt.Fprintln(out, "log head: none (the log was empty when the report was made)")
		return nil, nil
	} else if err != nil {
		return nil, err
	}
	vkey := strings.TrimSpace(string(data))
	key, err := parseVerifierKey(vkey)
	if err != nil {
		return nil, fmt.Errorf("verifier-key.txt: %w", err)
	}
	if len(args) > 0 {
		given, err := parseVerifierKey(strings.TrimSpace(args[0]))
		if err != nil {
			return nil, fmt.Errorf("the key given (%s): %w", args[0], err)
		}
		if !given.pub.Equal(key.pub) {
			return nil, fmt.Errorf("verifier-key.txt is %s, not the key given (%s)", vkey, args[0])
		}
	}
	msg, err := os.ReadFile("log-head.txt")
	if errors.Is(err, fs.ErrNotExist) {
		fmt.Fprintln(out, "log head: none (the log was empty when the report was made)")
		return nil, nil
	} else if err != nil {
		return nil, err
	}
	text, err := openNote(msg, key)
	if err != nil {
		return nil, fmt.Errorf("log-head.txt is not signed by verifier-key.txt: %w", err)
	}
	t, err := parseCheckpoint(text)
	if err != nil {
		return nil, fmt.Errorf("log-head.txt: %w", err)
	}
	if t.origin != "" {
		fmt.Fprintf(out, "log head: a checkpoint of %s signed by %s: %d entries, root %x\n", t.origin, key.name, t.size, t.root[:])
	} else {
		fmt.Fprintf(out, "log head: signed by %s (before checkpoints): %d entries, root %x\n", key.name, t.size, t.root[:])
	}
	return t, nil
}

// checkTerms checks that each consent's terms file hashes to its terms hash.
func checkTerms(out io.Writer) error {
	files, err := filepath.Glob(filepath.Join("consents", "*.json"))
	if err != nil {
		return err
	}
	for _, name := range files {
		data, err := os.ReadFile(name)
		if err != nil {
			return err
		}
		var c struct {
			Signature *struct {
				TermsSHA256 string `json:"terms_sha256"`
				TermsFile   string `json:"terms_file"`
			} `json:"signature"`
		}
		if err := json.Unmarshal(data, &c); err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		if c.Signature == nil {
			continue
		}
		terms, err := os.ReadFile(filepath.FromSlash(c.Signature.TermsFile))
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		if sum := sha256.Sum256(terms); !strings.EqualFold(hex.EncodeToString(sum[:]), c.Signature.TermsSHA256) {
			return fmt.Errorf("%s: the terms signed (%s) hash to %x, not to the terms_sha256 %s", name, c.Signature.TermsFile, sum, c.Signature.TermsSHA256)
		}
	}
	fmt.Fprintf(out, "consents: %d, every signed one's terms hash to its terms_sha256\n", len(files))
	return nil
}

// leaf is an entry the proof covers: its position in the log, its leaf
// hash, and where the bundle has it (for messages).
type leaf struct {
	index int64
	hash  hash
	where string
}

// encoder writes a canonical encoding, version 1.
type encoder []byte

func newEncoding(kind string) encoder {
	e := encoder("doorledger-log/1\n")
	return e.text("kind", kind)
}

func (e encoder) text(name, value string) encoder {
	return fmt.Appendf(e, "%s %d %s\n", name, len(value), value)
}

func (e encoder) int(name string, v int64) encoder { return e.text(name, strconv.FormatInt(v, 10)) }

// checkAudit checks every entry of audit.jsonl and returns the leaves of
// those it says are proved.
func checkAudit(head *tree, out io.Writer) ([]leaf, error) {
	f, err := os.Open("audit.jsonl")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	s.Buffer(nil, 64<<20)
	var leaves []leaf
	unproved := 0
	for line := 1; s.Scan(); line++ {
		var e struct {
			ID       int64  `json:"id"`
			Entry    entry  `json:"entry"`
			Encoding string `json:"encoding"`
			LeafHash string `json:"leaf_hash"`
			Index    *int64 `json:"index"`
			Proved   bool   `json:"proved"`
			Reason   string `json:"reason"`
		}
		if err := json.Unmarshal(s.Bytes(), &e); err != nil {
			return nil, fmt.Errorf("audit.jsonl line %d: %w", line, err)
		}
		where := fmt.Sprintf("audit.jsonl line %d (audit #%d)", line, e.ID)
		if !e.Proved {
			fmt.Fprintf(out, "audit #%d: no proof: %s\n", e.ID, e.Reason)
			unproved++
			continue
		}
		switch {
		case head == nil:
			return nil, fmt.Errorf("%s: proved, but there is no signed head", where)
		case e.Index == nil:
			return nil, fmt.Errorf("%s: proved, without an index", where)
		}
		enc, err := base64.StdEncoding.DecodeString(e.Encoding)
		if err != nil {
			return nil, fmt.Errorf("%s: encoding: %w", where, err)
		}
		if !bytes.Equal(e.Entry.encode(), enc) {
			return nil, fmt.Errorf("%s: the entry's fields are not the encoding the log holds", where)
		}
		h := leafHash(enc)
		if hex.EncodeToString(h[:]) != e.LeafHash {
			return nil, fmt.Errorf("%s: the encoding hashes to %x, not to the leaf hash %s", where, h, e.LeafHash)
		}
		leaves = append(leaves, leaf{index: *e.Index, hash: h, where: where})
	}
	if err := s.Err(); err != nil {
		return nil, err
	}
	fmt.Fprintf(out, "audit entries: %d to prove in the signed log, %d without a proof\n", len(leaves), unproved)
	return leaves, nil
}

// entry is an audit entry as audit.jsonl writes it.
type entry struct {
	ID         int64  `json:"id"`
	At         string `json:"at"`
	ActorID    int64  `json:"actor_id"`
	Actor      string `json:"actor"`
	Action     string `json:"action"`
	BuildingID int64  `json:"building_id"`
	ObjectType string `json:"object_type"`
	ObjectID   int64  `json:"object_id"`
	IP         string `json:"ip"`
	Detail     string `json:"detail"`
}

// encode writes the entry's canonical encoding.
func (e *entry) encode() []byte {
	return []byte(newEncoding("audit").int("id", e.ID).text("at", e.At).int("actor_id", e.ActorID).text("actor", e.Actor).
		text("action", e.Action).int("building_id", e.BuildingID).text("object_type", e.ObjectType).
		int("object_id", e.ObjectID).text("ip", e.IP).text("detail", e.Detail))
}

// proofLine is a line of log-proof.jsonl: its header, an unlock event or a node.
type proofLine struct {
	Format     string            `json:"format"`
	TreeSize   int64             `json:"tree_size"`
	Root       string            `json:"root"`
	BuildingID int64             `json:"building_id"`
	Unlock     *int64            `json:"unlock"`
	Index      *int64            `json:"index"`
	Leaf       string            `json:"leaf"` // the first bytes of its leaf hash, in hex
	Fields     map[string]string `json:"fields"`
	Reason     string            `json:"reason"`
	Redacted   *struct {
		By   int64  `json:"by"`
		Leaf string `json:"leaf"`
	} `json:"redacted"`
	Node []int64 `json:"node"`
	Hash string  `json:"hash"`
}

// proofReader reads log-proof.jsonl line by line.
type proofReader struct {
	s    *bufio.Scanner
	line int
}

func (r *proofReader) next() (*proofLine, error) {
	if !r.s.Scan() {
		if err := r.s.Err(); err != nil {
			return nil, err
		}
		return nil, io.EOF
	}
	r.line++
	var l proofLine
	if err := json.Unmarshal(r.s.Bytes(), &l); err != nil {
		return nil, fmt.Errorf("log-proof.jsonl line %d: %w", r.line, err)
	}
	return &l, nil
}

// csvTimeUTC turns an events.csv time (building time with its offset) back
// into the log's form: UTC with microseconds.
func csvTimeUTC(s string) (string, error) {
	if s == "" {
		return "", nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return "", err
	}
	return t.UTC().Format("2006-01-02T15:04:05.000000Z"), nil
}

// unsafeCell reads a cell the portal made spreadsheet-safe: without the '
// it put before = + - @, a tab or a carriage return.
func unsafeCell(c string) string {
	if len(c) >= 2 && c[0] == '\'' && strings.IndexByte("=+-@\t\r", c[1]) >= 0 {
		return c[1:]
	}
	return c
}

// checkEvents re-encodes every row of events.csv as the log did, checks it
// against the leaf hash log-proof.jsonl lists for it, then checks that the
// leaves of the events and of the journal entries, with the nodes of
// log-proof.jsonl, give the signed root.
func checkEvents(head *tree, leaves []leaf, reds map[int64]*redaction, out io.Writer) error {
	pf, err := os.Open("log-proof.jsonl")
	switch {
	case errors.Is(err, fs.ErrNotExist) && head == nil:
		fmt.Fprintln(out, "unlock events: no signed head to prove them against")
		return nil
	case errors.Is(err, fs.ErrNotExist):
		return errors.New("log-proof.jsonl: missing, so nothing proves the events and entries in the signed head")
	case err != nil:
		return err
	}
	defer pf.Close()
	if head == nil {
		return errors.New("log-proof.jsonl: a proof, but no signed head")
	}
	s := bufio.NewScanner(pf)
	s.Buffer(nil, 64<<20)
	pr := &proofReader{s: s}
	h, err := pr.next()
	if err != nil {
		return fmt.Errorf("log-proof.jsonl: %w", err)
	}
	switch {
	case h.Format != "doorledger-log-proof/1":
		return fmt.Errorf("log-proof.jsonl: format %q, this program reads doorledger-log-proof/1", h.Format)
	case h.TreeSize != head.size:
		return fmt.Errorf("log-proof.jsonl: a proof for a tree of %d entries, the signed head has %d", h.TreeSize, head.size)
	case h.Root != hex.EncodeToString(head.root[:]):
		return fmt.Errorf("log-proof.jsonl: a proof for the root %s, the signed head's is %x", h.Root, head.root)
	}

	ef, err := os.Open("events.csv")
	if err != nil {
		return err
	}
	defer ef.Close()
	cr := csv.NewReader(bufio.NewReaderSize(ef, 64<<10))
	cr.ReuseRecord = true
	header, err := cr.Read()
	if err != nil {
		return fmt.Errorf("events.csv: %w", err)
	}
	col := map[string]int{}
	for i, name := range header {
		name, _, _ = strings.Cut(name, " (") // "occurred_at (Europe/Zurich)"
		col[name] = i
	}
	for _, name := range []string{"occurred_at", "device_id", "device", "method", "actor_ref", "result", "anomalies",
		"event_id", "received_at", "unlock_id", "source"} {
		if _, ok := col[name]; !ok {
			return fmt.Errorf("events.csv: no %s column", name)
		}
	}
	proved, unproved := 0, 0
	var pending *proofLine // the line read after the last event: the first node
	for row := 2; ; row++ {
		rec, err := cr.Read()
		if err == io.EOF {
			break
		} else if err != nil {
			return fmt.Errorf("events.csv: %w", err)
		}
		cell := func(name string) string { return rec[col[name]] }
		id, err := strconv.ParseInt(cell("unlock_id"), 10, 64)
		if err != nil {
			return fmt.Errorf("events.csv line %d: unlock_id %q", row, cell("unlock_id"))
		}
		where := fmt.Sprintf("events.csv line %d (unlock #%d)", row, id)
		l, err := pr.next()
		if err == io.EOF || err == nil && l.Unlock == nil {
			return fmt.Errorf("%s: log-proof.jsonl has no line for it", where)
		} else if err != nil {
			return err
		}
		if *l.Unlock != id {
			return fmt.Errorf("%s: log-proof.jsonl line %d is for unlock #%d", where, pr.line, *l.Unlock)
		}
		if l.Reason != "" || l.Index == nil {
			fmt.Fprintf(out, "unlock #%d: no proof: %s\n", id, l.Reason)
			unproved++
			continue
		}
		enc, err := encodeEvent(cell, h.BuildingID, id, l.Fields)
		if err != nil {
			return fmt.Errorf("%s: %w", where, err)
		}
		lh := leafHash(enc)
		if l.Redacted != nil {
			r := reds[l.Redacted.By]
			logged, err := parseHash(l.Redacted.Leaf)
			switch {
			case r == nil:
				return fmt.Errorf("%s: redacted by audit #%d, which redactions.jsonl does not hold", where, l.Redacted.By)
			case err != nil:
				return fmt.Errorf("%s: log-proof.jsonl line %d: redacted leaf: %w", where, pr.line, err)
			}
			r.pairs = append(r.pairs, redactedPair{id: id, logged: logged, redacted: lh, where: where})
			lh = logged
		}
		if l.Leaf == "" || !strings.HasPrefix(hex.EncodeToString(lh[:]), l.Leaf) {
			return fmt.Errorf("%s: the row hashes to %x, log-proof.jsonl line %d gives the log's leaf as %s…: the row (or that line) was changed",
				where, lh, pr.line, l.Leaf)
		}
		leaves = append(leaves, leaf{index: *l.Index, hash: lh, where: where})
		proved++
	}
	if pending, err = pr.next(); err != nil && err != io.EOF {
		return err
	}
	if pending != nil && pending.Unlock != nil {
		return fmt.Errorf("log-proof.jsonl line %d: unlock #%d is not in events.csv", pr.line, *pending.Unlock)
	}

	slices.SortFunc(leaves, func(a, b leaf) int { return cmp.Compare(a.index, b.index) })
	for i, l := range leaves {
		if l.index < 0 || l.index >= head.size {
			return fmt.Errorf("%s: index %d is not in the signed head's tree of %d entries", l.where, l.index, head.size)
		}
		if i > 0 && l.index == leaves[i-1].index && l.hash != leaves[i-1].hash {
			return fmt.Errorf("%s and %s: both at index %d of the log", leaves[i-1].where, l.where, l.index)
		}
	}
	// A redaction's entry may be in audit.jsonl as well: the same leaf once.
	leaves = slices.CompactFunc(leaves, func(a, b leaf) bool { return a.index == b.index && a.hash == b.hash })
	nodes := 0
	nextNode := func(level int, index int64) (hash, error) {
		var n *proofLine
		if pending != nil {
			n, pending = pending, nil
		} else if n, err = pr.next(); err == io.EOF {
			return hash{}, fmt.Errorf("log-proof.jsonl: ends before the node (%d, %d) the tree needs", level, index)
		} else if err != nil {
			return hash{}, err
		}
		if len(n.Node) != 2 || n.Node[0] != int64(level) || n.Node[1] != index {
			return hash{}, fmt.Errorf("log-proof.jsonl line %d: gives node %v where the tree needs (%d, %d)", pr.line, n.Node, level, index)
		}
		var h hash
		b, err := hex.DecodeString(n.Hash)
		if err != nil || len(b) != len(h) {
			return hash{}, fmt.Errorf("log-proof.jsonl line %d: node hash %q", pr.line, n.Hash)
		}
		copy(h[:], b)
		nodes++
		return h, nil
	}
	root, err := treeRoot(head.size, leaves, nextNode)
	if err != nil {
		return err
	}
	if pending != nil {
		return fmt.Errorf("log-proof.jsonl line %d: a line the tree does not need", pr.line)
	}
	if extra, err := pr.next(); err == nil {
		return fmt.Errorf("log-proof.jsonl line %d: a line the tree does not need (%v)", pr.line, extra.Node)
	} else if err != io.EOF {
		return err
	}
	if root != head.root {
		return fmt.Errorf("log-proof.jsonl: the %d unlock events and %d journal entries, with its %d nodes, give the root %x, not the signed head's %x: a node or a leaf hash was changed",
			proved, len(leaves)-proved, nodes, root, head.root)
	}
	fmt.Fprintf(out, "unlock events: %d proved in the signed log, %d without a proof\n", proved, unproved)
	fmt.Fprintf(out, "log: %d entries and %d nodes give the signed root\n", len(leaves), nodes)
	return nil
}

// encodeEvent re-encodes an events.csv row as the log encoded the event.
// fields holds what the row cannot carry exactly (log-proof.jsonl's "fields").
func encodeEvent(cell func(string) string, buildingID, id int64, fields map[string]string) ([]byte, error) {
	text := func(name string) (string, error) {
		if v, ok := fields[name]; ok {
			if c := cell(name); c != safeCell(v) && c != safeCell(strings.ReplaceAll(v, "\r\n", "\n")) {
				return "", fmt.Errorf("%s: the row shows %q, log-proof.jsonl %q", name, c, v)
			}
			return v, nil
		}
		return unsafeCell(cell(name)), nil
	}
	var device int64
	if d := cell("device_id"); d != "" {
		n, err := strconv.ParseInt(d, 10, 64)
		if err != nil || n <= 0 {
			return nil, fmt.Errorf("device_id %q", d)
		}
		device = n
	}
	ref, ok := fields["device_ref"]
	if !ok && device == 0 {
		if ref, ok = strings.CutPrefix(cell("device"), "unregistered: "); !ok {
			return nil, fmt.Errorf("device %q: no device_id, and not an unregistered device's reference", cell("device"))
		}
	}
	occurred, err := csvTimeUTC(cell("occurred_at"))
	if err != nil {
		return nil, fmt.Errorf("occurred_at: %w", err)
	}
	received, err := csvTimeUTC(cell("received_at"))
	if err != nil {
		return nil, fmt.Errorf("received_at: %w", err)
	}
	anomalies, ok := fields["anomalies"]
	if !ok {
		// The labels are the kinds, "_" written " ", joined by ", ".
		labels := unsafeCell(cell("anomalies"))
		anomalies = strings.ReplaceAll(strings.ReplaceAll(labels, ", ", ","), " ", "_")
	}
	var vals [5]string
	for i, name := range [...]string{"event_id", "method", "actor_ref", "result", "source"} {
		if vals[i], err = text(name); err != nil {
			return nil, err
		}
	}
	e := newEncoding("unlock").int("id", id).int("building_id", buildingID).int("device_id", device).text("device_ref", ref).
		text("event_id", vals[0]).text("occurred_at", occurred).text("received_at", received).text("method", vals[1]).
		text("actor_ref", vals[2]).text("result", vals[3]).text("anomalies", anomalies).text("source", vals[4])
	return []byte(e), nil
}

// safeCell is how the portal writes text in a CSV cell: a ' before = + - @,
// a tab or a carriage return, so that a spreadsheet reads no formula.
func safeCell(s string) string {
	if s != "" && strings.IndexByte("=+-@\t\r", s[0]) >= 0 {
		return "'" + s
	}
	return s
}

// split is the size of the left subtree of an RFC 6962 tree of n > 1
// entries: the largest power of two below n.
func split(n int64) int64 { return 1 << (bits.Len64(uint64(n-1)) - 1) }

// treeRoot computes the root of the RFC 6962 tree of size entries from the
// leaves given (sorted by index, distinct, below size) and, for every part
// of the tree that holds none of them, the hashes of its complete subtrees,
// asked of node left to right as (level, index): the subtree of the 2^level
// entries from index * 2^level.
func treeRoot(size int64, leaves []leaf, node func(level int, index int64) (hash, error)) (hash, error) {
	if size == 0 {
		if len(leaves) > 0 {
			return hash{}, errors.New("entries in an empty tree")
		}
		return emptyRoot(), nil
	}
	// subtrees folds the complete subtrees of [lo, hi), which holds no leaf.
	subtrees := func(lo, hi int64) (hash, error) {
		var hs []hash
		for lo < hi {
			n := hi - lo
			k := n
			if n&(n-1) != 0 {
				k = split(n)
			}
			level := bits.TrailingZeros64(uint64(k))
			h, err := node(level, lo>>level)
			if err != nil {
				return hash{}, err
			}
			hs = append(hs, h)
			lo += k
		}
		h := hs[len(hs)-1]
		for i := len(hs) - 2; i >= 0; i-- {
			h = nodeHash(hs[i], h)
		}
		return h, nil
	}
	var walk func(lo, hi int64, ls []leaf) (hash, error)
	walk = func(lo, hi int64, ls []leaf) (hash, error) {
		if len(ls) == 0 {
			return subtrees(lo, hi)
		}
		if hi-lo == 1 {
			return ls[0].hash, nil
		}
		mid := lo + split(hi-lo)
		i, _ := slices.BinarySearchFunc(ls, mid, func(l leaf, x int64) int { return cmp.Compare(l.index, x) })
		left, err := walk(lo, mid, ls[:i])
		if err != nil {
			return hash{}, err
		}
		right, err := walk(mid, hi, ls[i:])
		if err != nil {
			return hash{}, err
		}
		return nodeHash(left, right), nil
	}
	return walk(0, size, leaves)
}

// redaction is a line of redactions.jsonl: a redaction's journal entry,
// what it names, and the events it names as the bundle gives them.
type redaction struct {
	id     int64
	proved bool
	leaf   leaf
	ids    [][2]int64 // id ranges, ascending
	count  int64
	digest hash
	pairs  []redactedPair // from events.csv and the line's "others"
	where  string
}

type redactedPair struct {
	id               int64
	logged, redacted hash
	where            string
}

func parseHash(s string) (hash, error) {
	var h hash
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != len(h) {
		return h, fmt.Errorf("%q is not a SHA-256 in hex", s)
	}
	copy(h[:], b)
	return h, nil
}

// checkRedactionEntries reads redactions.jsonl (absent: no event of the
// bundle is redacted) and checks each entry as checkAudit does.
func checkRedactionEntries(head *tree, out io.Writer) (map[int64]*redaction, error) {
	reds := map[int64]*redaction{}
	f, err := os.Open("redactions.jsonl")
	if errors.Is(err, fs.ErrNotExist) {
		return reds, nil
	} else if err != nil {
		return nil, err
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	s.Buffer(nil, 64<<20)
	for line := 1; s.Scan(); line++ {
		var e struct {
			Format   string            `json:"format"`
			ID       int64             `json:"id"`
			Entry    entry             `json:"entry"`
			Encoding string            `json:"encoding"`
			LeafHash string            `json:"leaf_hash"`
			Index    *int64            `json:"index"`
			Proved   bool              `json:"proved"`
			Reason   string            `json:"reason"`
			Others   []json.RawMessage `json:"others"`
		}
		if err := json.Unmarshal(s.Bytes(), &e); err != nil {
			return nil, fmt.Errorf("redactions.jsonl line %d: %w", line, err)
		}
		where := fmt.Sprintf("redactions.jsonl line %d (audit #%d)", line, e.ID)
		if e.Format != "doorledger-redaction-proof/1" {
			return nil, fmt.Errorf("%s: format %q, this program reads doorledger-redaction-proof/1", where, e.Format)
		}
		enc, err := base64.StdEncoding.DecodeString(e.Encoding)
		if err != nil {
			return nil, fmt.Errorf("%s: encoding: %w", where, err)
		}
		if !bytes.Equal(e.Entry.encode(), enc) || e.Entry.ID != e.ID || e.Entry.Action != "unlock.redact" {
			return nil, fmt.Errorf("%s: the entry's fields are not the encoding the log holds, or not a redaction", where)
		}
		h := leafHash(enc)
		if hex.EncodeToString(h[:]) != e.LeafHash {
			return nil, fmt.Errorf("%s: the encoding hashes to %x, not to the leaf hash %s", where, h, e.LeafHash)
		}
		r := &redaction{id: e.ID, where: where}
		if e.Proved {
			if head == nil || e.Index == nil {
				return nil, fmt.Errorf("%s: proved, without a signed head or an index", where)
			}
			r.proved, r.leaf = true, leaf{index: *e.Index, hash: h, where: where}
		} else {
			fmt.Fprintf(out, "redaction audit #%d: no proof: %s\n", e.ID, e.Reason)
		}
		var d struct {
			Events int64  `json:"events"`
			IDs    string `json:"ids"`
			Digest string `json:"digest"`
		}
		if err := json.Unmarshal([]byte(e.Entry.Detail), &d); err != nil {
			return nil, fmt.Errorf("%s: detail: %w", where, err)
		}
		if r.digest, err = parseHash(d.Digest); err != nil {
			return nil, fmt.Errorf("%s: digest: %w", where, err)
		}
		for _, part := range strings.Split(d.IDs, ",") {
			from, to, isRange := strings.Cut(part, "-")
			a, err1 := strconv.ParseInt(from, 10, 64)
			b := a
			var err2 error
			if isRange {
				b, err2 = strconv.ParseInt(to, 10, 64)
			}
			if err1 != nil || err2 != nil || b < a || len(r.ids) > 0 && a <= r.ids[len(r.ids)-1][1] {
				return nil, fmt.Errorf("%s: ids %q", where, d.IDs)
			}
			r.ids = append(r.ids, [2]int64{a, b})
			r.count += b - a + 1
		}
		if r.count != d.Events {
			return nil, fmt.Errorf("%s: names %d events, says %d", where, r.count, d.Events)
		}
		for i, o := range e.Others {
			var v [3]json.RawMessage
			var p redactedPair
			var l, x string
			if json.Unmarshal(o, &v) != nil || json.Unmarshal(v[0], &p.id) != nil || json.Unmarshal(v[1], &l) != nil || json.Unmarshal(v[2], &x) != nil {
				return nil, fmt.Errorf("%s: others[%d]: not [id, leaf, redacted]", where, i)
			}
			var err1, err2 error
			p.logged, err1 = parseHash(l)
			p.redacted, err2 = parseHash(x)
			if err1 != nil || err2 != nil {
				return nil, fmt.Errorf("%s: others[%d]: bad hash", where, i)
			}
			p.where = fmt.Sprintf("%s, others[%d]", where, i)
			r.pairs = append(r.pairs, p)
		}
		if reds[r.id] != nil {
			return nil, fmt.Errorf("%s: audit #%d twice", where, r.id)
		}
		reds[r.id] = r
	}
	return reds, s.Err()
}

// checkRedactions checks each redaction's digest against the events it names.
func checkRedactions(reds map[int64]*redaction, out io.Writer) error {
	ids := make([]int64, 0, len(reds))
	for id := range reds {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	events := 0
	for _, id := range ids {
		r := reds[id]
		slices.SortFunc(r.pairs, func(a, b redactedPair) int { return cmp.Compare(a.id, b.id) })
		var want []int64
		for _, x := range r.ids {
			for i := x[0]; i <= x[1] && int64(len(want)) <= r.count; i++ {
				want = append(want, i)
			}
		}
		if len(want) != len(r.pairs) {
			return fmt.Errorf("%s: names %d events, the bundle gives %d of them", r.where, len(want), len(r.pairs))
		}
		d := sha256.New()
		for i, p := range r.pairs {
			if p.id != want[i] {
				return fmt.Errorf("%s: the bundle gives unlock #%d, which it does not name (or twice)", p.where, p.id)
			}
			var buf [8]byte
			binary.BigEndian.PutUint64(buf[:], uint64(p.id))
			d.Write(buf[:])
			d.Write(p.logged[:])
			d.Write(p.redacted[:])
		}
		var sum hash
		copy(sum[:], d.Sum(nil))
		if sum != r.digest {
			return fmt.Errorf("%s: the redacted events do not give its digest: a redacted row of events.csv, or a leaf, was changed", r.where)
		}
		events += len(r.pairs)
	}
	if len(reds) > 0 {
		fmt.Fprintf(out, "redactions: %d, naming %d events, match their digests\n", len(reds), events)
	}
	return nil
}

// witnessKey is a witness's cosignature key, "<name>+<hash>+<base64(0x04
// || Ed25519 key)>" (c2sp.org/tlog-cosignature), with the board's label.
type witnessKey struct {
	label, name string
	pub         ed25519.PublicKey
	hash        uint32
}

// cosignatureKeyHash is a cosignature key's hash: the first four bytes of
// SHA-256(name || "\n" || 0x04 || Ed25519 public key).
func cosignatureKeyHash(name string, pub ed25519.PublicKey) uint32 {
	h := sha256.New()
	h.Write([]byte(name))
	h.Write([]byte{'\n', 4})
	h.Write(pub)
	return binary.BigEndian.Uint32(h.Sum(nil))
}

// readWitnessFile reads the board's witnesses: "# comments", "k N", and
// lines "[label] <name>+<hash>+<key>".
func readWitnessFile(path string) (keys []*witnessKey, k int, err error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, 0, err
	}
	k = -1
	for i, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		fields := strings.Fields(line)
		if fields[0] == "k" && len(fields) == 2 {
			if k, err = strconv.Atoi(fields[1]); err != nil || k < 0 {
				return nil, 0, fmt.Errorf("%s line %d: k wants a whole number", path, i+1)
			}
			continue
		}
		vkey := fields[len(fields)-1]
		name, rest, ok1 := strings.Cut(vkey, "+")
		hash16, key64, ok2 := strings.Cut(rest, "+")
		h, err1 := strconv.ParseUint(hash16, 16, 32)
		raw, err2 := base64.StdEncoding.DecodeString(key64)
		if !ok1 || !ok2 || len(hash16) != 8 || err1 != nil || err2 != nil || !validKeyName(name) || len(raw) != 1+ed25519.PublicKeySize || raw[0] != 4 {
			return nil, 0, fmt.Errorf("%s line %d: not a witness's cosignature key (<name>+<hash>+<key>, type 0x04)", path, i+1)
		}
		w := &witnessKey{label: strings.Join(fields[:len(fields)-1], " "), name: name, pub: ed25519.PublicKey(raw[1:]), hash: uint32(h)}
		if cosignatureKeyHash(name, w.pub) != w.hash {
			return nil, 0, fmt.Errorf("%s line %d: the key's hash does not match its key", path, i+1)
		}
		if w.label == "" {
			w.label = name
		}
		keys = append(keys, w)
	}
	if len(keys) == 0 {
		return nil, 0, fmt.Errorf("%s: no witness keys", path)
	}
	if k < 0 || k > len(keys) {
		k = len(keys) // all of them, unless the board says fewer
	}
	return keys, k, nil
}

// cosignedAt checks w's cosignature among a note's signature lines, of the
// checkpoint text, and returns the time in it (false: none by w; an error:
// one that does not verify).
func cosignedAt(sigs []byte, text string, w *witnessKey) (time.Time, bool, error) {
	for _, line := range strings.Split(string(sigs), "\n") {
		body, ok := strings.CutPrefix(line, "— ")
		name, b64, ok2 := strings.Cut(body, " ")
		if !ok || !ok2 || name != w.name {
			continue
		}
		sig, err := base64.StdEncoding.DecodeString(b64)
		if err != nil || len(sig) != 4+8+ed25519.SignatureSize || binary.BigEndian.Uint32(sig) != w.hash {
			continue // another key of the same name
		}
		ts := binary.BigEndian.Uint64(sig[4:])
		msg := "cosignature/v1\ntime " + strconv.FormatUint(ts, 10) + "\n" + text
		if !ed25519.Verify(w.pub, []byte(msg), sig[12:]) {
			return time.Time{}, false, fmt.Errorf("the cosignature of %s does not verify", w.label)
		}
		return time.Unix(int64(ts), 0).UTC(), true, nil
	}
	return time.Time{}, false, nil
}

// checkConsistency checks an RFC 6962 consistency proof that the tree of
// newSize entries with root newRoot extends the tree of oldSize entries
// with root oldRoot (0 < oldSize <= newSize). The proof's hashes are in the
// order RFC 6962's SUBPROOF lists them (as golang.org/x/mod/sumdb/tlog's
// ProveTree does): a subtree's proof, then its sibling.
func checkConsistency(proof []hash, oldSize int64, oldRoot hash, newSize int64, newRoot hash) error {
	if oldSize < 1 || oldSize > newSize {
		return errors.New("consistency proof: sizes out of order")
	}
	// sub returns the hashes of the old and the new tree within the
	// subtree of n entries whose first m belong to the old tree; whole
	// reports whether the old tree is exactly a left part of it so far.
	var sub func(m, n int64, whole bool) (hash, hash, error)
	sub = func(m, n int64, whole bool) (hash, hash, error) {
		if m == n {
			if whole {
				return oldRoot, oldRoot, nil
			}
			if len(proof) == 0 {
				return hash{}, hash{}, errors.New("consistency proof: too short")
			}
			h := proof[0]
			proof = proof[1:]
			return h, h, nil
		}
		k := split(n)
		if m <= k {
			o, nw, err := sub(m, k, whole)
			if err != nil || len(proof) == 0 {
				return o, nw, cmp.Or(err, errors.New("consistency proof: too short"))
			}
			right := proof[0]
			proof = proof[1:]
			return o, nodeHash(nw, right), nil
		}
		o, nw, err := sub(m-k, n-k, false)
		if err != nil || len(proof) == 0 {
			return o, nw, cmp.Or(err, errors.New("consistency proof: too short"))
		}
		left := proof[0]
		proof = proof[1:]
		return nodeHash(left, o), nodeHash(left, nw), nil
	}
	o, nw, err := sub(oldSize, newSize, true)
	if err != nil {
		return err
	}
	if len(proof) != 0 {
		return errors.New("consistency proof: too long")
	}
	if o != oldRoot || nw != newRoot {
		return errors.New("consistency proof: the later head does not extend the earlier one")
	}
	return nil
}

// checkWitnesses is step 8 (see the package comment).
func checkWitnesses(path string, head *tree, out io.Writer) error {
	_, err := os.Stat("witness-checkpoint.txt")
	have := err == nil
	if path == "" {
		if have {
			fmt.Fprintln(out, "witnesses: not checked: give -witnesses FILE with the witness keys your board trusts")
		}
		return nil
	}
	keys, k, err := readWitnessFile(path)
	if err != nil {
		return fmt.Errorf("witnesses: %w", err)
	}
	labels := func(ws []*witnessKey) string {
		s := make([]string, len(ws))
		for i, w := range ws {
			s[i] = w.label
		}
		return strings.Join(s, ", ")
	}
	if head == nil || !have {
		if k == 0 {
			fmt.Fprintln(out, "witnesses: the bundle has no witnessed checkpoint (none required)")
			return nil
		}
		return fmt.Errorf("witnesses: the bundle has no witnessed checkpoint: none of the %d required vouched; missing: %s", k, labels(keys))
	}
	msg, err := os.ReadFile("witness-checkpoint.txt")
	if err != nil {
		return err
	}
	logKey, err := os.ReadFile("verifier-key.txt")
	if err != nil {
		return err
	}
	lk, err := parseVerifierKey(strings.TrimSpace(string(logKey)))
	if err != nil {
		return err
	}
	text, err := openNote(msg, lk)
	if err != nil {
		return fmt.Errorf("witness-checkpoint.txt is not signed by the log's key: %w", err)
	}
	cp, err := parseCheckpoint(text)
	if err != nil {
		return fmt.Errorf("witness-checkpoint.txt: %w", err)
	}
	if cp.origin != head.origin {
		return fmt.Errorf("witness-checkpoint.txt is a checkpoint of %q, not of this log (%q)", cp.origin, head.origin)
	}
	// The consistency proof from the witnessed checkpoint to the head.
	pf, err := os.ReadFile("witness-proof.txt")
	if err != nil {
		return err
	}
	lines := strings.Split(strings.TrimSuffix(string(pf), "\n"), "\n")
	if len(lines) < 2 || lines[0] != "old "+strconv.FormatInt(cp.size, 10) || lines[1] != "new "+strconv.FormatInt(head.size, 10) {
		return fmt.Errorf("witness-proof.txt is not a proof from %d to %d entries", cp.size, head.size)
	}
	var proof []hash
	for _, l := range lines[2:] {
		h, err := base64.StdEncoding.DecodeString(l)
		if err != nil || len(h) != len(hash{}) {
			return fmt.Errorf("witness-proof.txt: a bad hash %q", l)
		}
		proof = append(proof, hash(h))
	}
	if cp.size == head.size {
		if len(proof) != 0 || cp.root != head.root {
			return errors.New("witness-checkpoint.txt has the head's size but another root: the log was forked")
		}
	} else if err := checkConsistency(proof, cp.size, cp.root, head.size, head.root); err != nil {
		return fmt.Errorf("witness-proof.txt: %w", err)
	}
	i := bytes.LastIndex(msg, []byte("\n\n"))
	sigs := msg[i+2:]
	var vouched, missing []*witnessKey
	var when []string
	for _, w := range keys {
		at, ok, err := cosignedAt(sigs, text, w)
		if err != nil || !ok {
			// A cosignature that does not verify vouches for nothing: the
			// witness cosigned another checkpoint (another history).
			missing = append(missing, w)
			if err != nil {
				fmt.Fprintf(out, "witnesses: %v\n", err)
			}
			continue
		}
		vouched = append(vouched, w)
		when = append(when, w.label+" at "+at.Format("2006-01-02 15:04:05 UTC"))
	}
	fmt.Fprintf(out, "witnesses: the checkpoint of %d entries, which this head extends, was cosigned by %d of the %d witnesses you trust", cp.size, len(vouched), len(keys))
	if len(when) > 0 {
		fmt.Fprintf(out, ": %s", strings.Join(when, "; "))
	}
	fmt.Fprintln(out)
	if len(missing) > 0 {
		fmt.Fprintf(out, "witnesses: missing: %s\n", labels(missing))
	}
	if len(vouched) < k {
		return fmt.Errorf("witnesses: only %d of the %d required witnesses vouched for this log; missing: %s", len(vouched), k, labels(missing))
	}
	return nil
}
