// Command verify checks an unzipped Doorledger evidence bundle without the
// portal. It ships in every bundle as verify.go; in the bundle's directory:
//
//	go mod init verify && go get golang.org/x/mod@v0.42.0 && go run verify.go [verifier key]
//
// It checks, in order, and stops at the first failure, naming it:
//
//  1. every file against the SHA-256 manifest at the end of README.txt (and
//     that no file is missing or unlisted);
//  2. that log-head.txt is a note signed by the key in verifier-key.txt
//     (and that this is the key given as the argument, if any: take it from
//     the portal's admin pages or an earlier report);
//  3. that each consent's terms file hashes to the consent's terms_sha256;
//  4. every inclusion proof in audit.jsonl: the entry's fields encode to the
//     canonical encoding given (version 1, see below), and that encoding,
//     hashed as a leaf, is at its index in the tree of the signed head.
//
// The canonical encoding of an audit entry (Doorledger's package auditlog)
// is "doorledger-log/1\n" then one line per field, "name length value\n",
// length being the value's length in bytes: kind ("audit"), id, at (UTC,
// 2006-01-02T15:04:05.000000Z), actor_id, actor, action, building_id,
// object_type, object_id, ip, detail.
//
// It imports only the standard library and golang.org/x/mod.
package main

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "FAILED:", err)
		os.Exit(1)
	}
	fmt.Println("OK: the bundle verifies")
}

func run(args []string) error {
	if err := checkManifest(); err != nil {
		return err
	}
	tree, err := checkHead(args)
	if err != nil {
		return err
	}
	if err := checkTerms(); err != nil {
		return err
	}
	return checkProofs(tree)
}

// checkManifest compares every file with README.txt's manifest.
func checkManifest() error {
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
		data, err := os.ReadFile(name)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(data)
		switch w, ok := want[name]; {
		case !ok:
			return fmt.Errorf("%s: not in the manifest", name)
		case hex.EncodeToString(sum[:]) != w:
			return fmt.Errorf("%s: SHA-256 %x, the manifest says %s: the file was changed", name, sum, w)
		}
	}
	fmt.Printf("files: %d match the manifest\n", len(have))
	return nil
}

// checkHead opens the signed head with the bundle's key.
func checkHead(args []string) (*tlog.Tree, error) {
	key, err := os.ReadFile("verifier-key.txt")
	if errors.Is(err, fs.ErrNotExist) {
		fmt.Println("log head: none (the log was empty when the report was made)")
		return nil, nil
	} else if err != nil {
		return nil, err
	}
	vkey := strings.TrimSpace(string(key))
	if len(args) > 0 && strings.TrimSpace(args[0]) != vkey {
		return nil, fmt.Errorf("verifier-key.txt is %s, not the key given (%s)", vkey, args[0])
	}
	v, err := note.NewVerifier(vkey)
	if err != nil {
		return nil, fmt.Errorf("verifier-key.txt: %w", err)
	}
	msg, err := os.ReadFile("log-head.txt")
	if errors.Is(err, fs.ErrNotExist) {
		fmt.Println("log head: none (the log was empty when the report was made)")
		return nil, nil
	} else if err != nil {
		return nil, err
	}
	n, err := note.Open(msg, note.VerifierList(v))
	if err != nil {
		return nil, fmt.Errorf("log-head.txt is not signed by verifier-key.txt: %w", err)
	}
	tree, err := tlog.ParseTree([]byte(n.Text))
	if err != nil {
		return nil, fmt.Errorf("log-head.txt: %w", err)
	}
	fmt.Printf("log head: signed by %s: %d entries, root %x\n", v.Name(), tree.N, tree.Hash[:])
	return &tree, nil
}

// checkTerms checks that each consent's terms file hashes to its terms hash.
func checkTerms() error {
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
	fmt.Printf("consents: %d, every signed one's terms hash to its terms_sha256\n", len(files))
	return nil
}

// checkProofs checks every inclusion proof of audit.jsonl against tree.
func checkProofs(tree *tlog.Tree) error {
	f, err := os.Open("audit.jsonl")
	if err != nil {
		return err
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	s.Buffer(nil, 64<<20)
	proved, unproved := 0, 0
	for line := 1; s.Scan(); line++ {
		var e struct {
			ID       int64  `json:"id"`
			Entry    entry  `json:"entry"`
			Encoding string `json:"encoding"`
			Index    *int64 `json:"index"`
			Proof    *struct {
				TreeSize int64    `json:"tree_size"`
				Hashes   []string `json:"hashes"`
			} `json:"proof"`
			Reason string `json:"reason"`
		}
		if err := json.Unmarshal(s.Bytes(), &e); err != nil {
			return fmt.Errorf("audit.jsonl line %d: %w", line, err)
		}
		if e.Proof == nil {
			fmt.Printf("audit #%d: no proof: %s\n", e.ID, e.Reason)
			unproved++
			continue
		}
		switch {
		case tree == nil:
			return fmt.Errorf("audit.jsonl line %d (audit #%d): a proof, but no signed head", line, e.ID)
		case e.Index == nil:
			return fmt.Errorf("audit.jsonl line %d (audit #%d): a proof without an index", line, e.ID)
		case e.Proof.TreeSize != tree.N:
			return fmt.Errorf("audit.jsonl line %d (audit #%d): a proof for a tree of %d, the head has %d", line, e.ID, e.Proof.TreeSize, tree.N)
		}
		enc, err := base64.StdEncoding.DecodeString(e.Encoding)
		if err != nil {
			return fmt.Errorf("audit.jsonl line %d (audit #%d): encoding: %w", line, e.ID, err)
		}
		if !bytes.Equal(e.Entry.encode(), enc) {
			return fmt.Errorf("audit.jsonl line %d (audit #%d): the entry's fields are not the encoding the log holds", line, e.ID)
		}
		proof := make(tlog.RecordProof, len(e.Proof.Hashes))
		for i, h := range e.Proof.Hashes {
			b, err := hex.DecodeString(h)
			if err != nil || len(b) != len(tlog.Hash{}) {
				return fmt.Errorf("audit.jsonl line %d (audit #%d): proof hash %d is not a SHA-256", line, e.ID, i)
			}
			copy(proof[i][:], b)
		}
		if err := tlog.CheckRecord(proof, tree.N, tree.Hash, *e.Index, tlog.RecordHash(enc)); err != nil {
			return fmt.Errorf("audit.jsonl line %d (audit #%d): not in the signed log at index %d: %w", line, e.ID, *e.Index, err)
		}
		proved++
	}
	if err := s.Err(); err != nil {
		return err
	}
	fmt.Printf("audit entries: %d proved in the signed log, %d without a proof\n", proved, unproved)
	return nil
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

// encode writes the entry's canonical encoding, version 1.
func (e *entry) encode() []byte {
	b := []byte("doorledger-log/1\n")
	field := func(name, value string) { b = fmt.Appendf(b, "%s %d %s\n", name, len(value), value) }
	num := func(name string, v int64) { field(name, strconv.FormatInt(v, 10)) }
	field("kind", "audit")
	num("id", e.ID)
	field("at", e.At)
	num("actor_id", e.ActorID)
	field("actor", e.Actor)
	field("action", e.Action)
	num("building_id", e.BuildingID)
	field("object_type", e.ObjectType)
	num("object_id", e.ObjectID)
	field("ip", e.IP)
	field("detail", e.Detail)
	return b
}
