package main

// verify.go writes out, with the standard library, what the portal takes
// from golang.org/x/mod/sumdb/tlog and note: these tests hold the two
// against each other on random trees, keys and notes, so that any
// divergence fails here rather than in a board's hands.

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	mrand "math/rand"
	"os"
	"strings"
	"testing"

	"filippo.io/torchwood"

	"github.com/doorledger/doorledger"
	"github.com/doorledger/doorledger/auditlog"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

type tlogTree struct{ hashes []tlog.Hash }

func (t *tlogTree) ReadHashes(idx []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(idx))
	for i, x := range idx {
		if x < 0 || x >= int64(len(t.hashes)) {
			return nil, fmt.Errorf("no stored hash %d", x)
		}
		out[i] = t.hashes[x]
	}
	return out, nil
}

func TestHashesMatchTlog(t *testing.T) {
	rng := mrand.New(mrand.NewSource(1))
	for i := 0; i < 200; i++ {
		data := make([]byte, rng.Intn(300))
		rng.Read(data)
		if got, want := leafHash(data), tlog.RecordHash(data); got != hash(want) {
			t.Fatalf("leafHash(%x) = %x, tlog.RecordHash %x", data, got, want)
		}
		var l, r hash
		rng.Read(l[:])
		rng.Read(r[:])
		if got, want := nodeHash(l, r), tlog.NodeHash(tlog.Hash(l), tlog.Hash(r)); got != hash(want) {
			t.Fatalf("nodeHash = %x, tlog.NodeHash %x", got, want)
		}
	}
	if want, _ := tlog.TreeHash(0, nil); emptyRoot() != hash(want) {
		t.Errorf("emptyRoot = %x, tlog's %x", emptyRoot(), want)
	}
}

// TestTreeRootMatchesTlog: on random trees and random sets of entries,
// treeRoot asks for exactly the nodes the portal's multi-proof gives, in
// its order, and computes tlog.TreeHash's root; a changed leaf or node
// changes it.
func TestTreeRootMatchesTlog(t *testing.T) {
	rng := mrand.New(mrand.NewSource(2))
	for trial := 0; trial < 400; trial++ {
		n := 1 + rng.Intn(600)
		if trial < 40 {
			n = trial + 1
		}
		tt := &tlogTree{}
		var leaves []tlog.Hash
		for i := 0; i < n; i++ {
			data := []byte(fmt.Sprintf("%d/%d", i, rng.Int63()))
			hs, err := tlog.StoredHashes(int64(i), data, tt)
			if err != nil {
				t.Fatal(err)
			}
			tt.hashes = append(tt.hashes, hs...)
			leaves = append(leaves, tlog.RecordHash(data))
		}
		want, err := tlog.TreeHash(int64(n), tt)
		if err != nil {
			t.Fatal(err)
		}
		p := rng.Float64()
		var ls []leaf
		var idx []int64
		for i := 0; i < n; i++ {
			if rng.Float64() < p*p {
				ls = append(ls, leaf{index: int64(i), hash: hash(leaves[i])})
				idx = append(idx, int64(i))
			}
		}
		expected, err := auditlog.MultiProofNodes(int64(n), idx)
		if err != nil {
			t.Fatal(err)
		}
		var asked []doorledger.LogNode
		node := func(level int, index int64) (hash, error) {
			asked = append(asked, doorledger.LogNode{Level: level, Index: index})
			h, err := tt.ReadHashes([]int64{tlog.StoredHashIndex(level, index)})
			if err != nil {
				return hash{}, err
			}
			return hash(h[0]), nil
		}
		got, err := treeRoot(int64(n), ls, node)
		if err != nil {
			t.Fatal(err)
		}
		if got != hash(want) {
			t.Fatalf("n=%d, %d leaves: root %x, tlog's %x", n, len(ls), got, want)
		}
		if fmt.Sprint(asked) != fmt.Sprint(expected) {
			t.Fatalf("n=%d, %d leaves: asked for nodes %v, the portal's proof gives %v", n, len(ls), asked, expected)
		}
		if len(ls) > 0 {
			k := rng.Intn(len(ls))
			ls[k].hash[rng.Intn(32)] ^= 1
			if bad, _ := treeRoot(int64(n), ls, node); bad == hash(want) {
				t.Errorf("n=%d: a changed leaf gives the root", n)
			}
			ls[k].hash = hash(leaves[ls[k].index])
		}
		if len(expected) > 0 {
			k, calls := rng.Intn(len(expected)), 0
			flip := func(level int, index int64) (hash, error) {
				h, err := node(level, index)
				if calls == k {
					h[0] ^= 1
				}
				calls++
				return h, err
			}
			if bad, _ := treeRoot(int64(n), ls, flip); bad == hash(want) {
				t.Errorf("n=%d: a changed node gives the root", n)
			}
		}
	}
}

// TestOpenNoteMatchesNote: notes signed by golang.org/x/mod/sumdb/note open
// with openNote exactly when note.Open opens them with the same key, under
// whatever name the key signs; other keys' lines (cosignatures) are
// ignored; a changed text or signature fails.
func TestOpenNoteMatchesNote(t *testing.T) {
	rng := mrand.New(mrand.NewSource(3))
	names := []string{"doorledger", "portal.example.org/doorledger-0123456789", "Zürich.example/log", "a"}
	for trial := 0; trial < 200; trial++ {
		name := names[trial%len(names)]
		skey, vkey, err := note.GenerateKey(rand.Reader, name)
		if err != nil {
			t.Fatal(err)
		}
		signer, _ := note.NewSigner(skey)
		verifier, _ := note.NewVerifier(vkey)
		key, err := parseVerifierKey(vkey)
		if err != nil || key.name != name {
			t.Fatalf("parseVerifierKey(%q): %+v %v", vkey, key, err)
		}
		// A random text of lines, as a checkpoint is.
		var text strings.Builder
		for l := 0; l < 1+rng.Intn(5); l++ {
			fmt.Fprintf(&text, "line %d %x ünï\n", l, rng.Int63())
		}
		signers := []note.Signer{signer}
		if trial%3 == 0 { // a witness cosigns
			wskey, _, _ := note.GenerateKey(rand.Reader, "witness.example")
			w, _ := note.NewSigner(wskey)
			signers = append(signers, w)
		}
		msg, err := note.Sign(&note.Note{Text: text.String()}, signers...)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := note.Open(msg, note.VerifierList(verifier)); err != nil {
			t.Fatal(err)
		}
		got, err := openNote(msg, key)
		if err != nil || got != text.String() {
			t.Fatalf("openNote: %q %v", got, err)
		}
		// The same key under another name: the signature is the key's.
		otherName, _ := parseVerifierKey(renamed(t, skey, "renamed.example"))
		if _, err := openNote(msg, otherName); err != nil {
			t.Errorf("the same key under another name: %v", err)
		}
		// Another key does not open it; nor does a changed text or signature.
		_, ovkey, _ := note.GenerateKey(rand.Reader, name)
		other, _ := parseVerifierKey(ovkey)
		if _, err := openNote(msg, other); err == nil {
			t.Error("opened with another key")
		}
		changed := bytes.Replace(msg, []byte("line 0"), []byte("line 9"), 1)
		if _, err := openNote(changed, key); err == nil {
			t.Error("opened a changed text")
		}
		if _, err := note.Open(changed, note.VerifierList(verifier)); err == nil {
			t.Error("note.Open opened a changed text")
		}
		// A character of the signature changed (in its key hash or in the
		// signature proper): openNote agrees with note.Open, which refuses.
		sigAt := bytes.Index(msg, []byte("\n\n— ")) + len("\n\n— ") + len(name) + 1
		forged, at := bytes.Clone(msg), sigAt+rng.Intn(80)
		if forged[at] == 'A' {
			forged[at] = 'B'
		} else {
			forged[at] = 'A'
		}
		_, err = openNote(forged, key)
		_, nerr := note.Open(forged, note.VerifierList(verifier))
		if (err == nil) != (nerr == nil) {
			t.Errorf("a changed signature: openNote %v, note.Open %v", err, nerr)
		}
	}
	if _, err := parseVerifierKey("doorledger+00000000+AQ=="); err == nil {
		t.Error("parsed a broken key")
	}
	_, vkey, _ := note.GenerateKey(rand.Reader, "x")
	parts := strings.SplitN(vkey, "+", 3)
	if _, err := parseVerifierKey(parts[0] + "+00000000+" + parts[2]); err == nil {
		t.Error("parsed a key whose hash does not match")
	}
}

// renamed returns the verifier key of the signer key skey under another name.
func renamed(tb testing.TB, skey, name string) string {
	tb.Helper()
	k, err := auditlog.ParseKey(skey)
	if err != nil {
		tb.Fatal(err)
	}
	n, err := k.Named(name)
	if err != nil {
		tb.Fatal(err)
	}
	return n.VerifierKey()
}

// TestParseCheckpointMatchesAuditlog: the checkpoints the portal signs, and
// the heads it signed before (tlog.FormatTree), read the same here.
func TestParseCheckpointMatchesAuditlog(t *testing.T) {
	rng := mrand.New(mrand.NewSource(4))
	for i := 0; i < 100; i++ {
		var root doorledger.LogHash
		rng.Read(root[:])
		size := rng.Int63n(1 << 40)
		for _, text := range []string{
			auditlog.FormatCheckpoint(auditlog.Checkpoint{Origin: "portal.example.org/doorledger-0123456789", Size: size, Root: root}),
			string(tlog.FormatTree(tlog.Tree{N: size, Hash: tlog.Hash(root)})),
		} {
			want, err := auditlog.ParseCheckpoint(text)
			if err != nil {
				t.Fatal(err)
			}
			got, err := parseCheckpoint(text)
			if err != nil || got.origin != want.Origin || got.size != want.Size || got.root != hash(want.Root) {
				t.Fatalf("%q: %+v %v, auditlog %+v", text, got, err, want)
			}
		}
	}
	for _, bad := range []string{"", "o\n1\n", "o\n01\nAAAA\n", "o\n-1\n" + strings.Repeat("A", 43) + "=\n", "o\n1\nnot base64\n", "\n1\n" + strings.Repeat("A", 43) + "=\n"} {
		if _, err := parseCheckpoint(bad); err == nil {
			t.Errorf("parsed %q", bad)
		}
		if _, err := auditlog.ParseCheckpoint(bad); err == nil {
			t.Errorf("auditlog parsed %q", bad)
		}
	}
}

// TestConsistencyMatchesTlog holds checkConsistency against tlog.ProveTree
// and CheckTree on every pair of sizes up to 70: each of tlog's proofs
// verifies, and a proof against a changed old root, or with a hash
// flipped, does not.
func TestConsistencyMatchesTlog(t *testing.T) {
	var tr tlogTree
	const max = 70
	for n := int64(0); n < max; n++ {
		hs, err := tlog.StoredHashes(n, []byte(fmt.Sprint("entry ", n)), &tr)
		if err != nil {
			t.Fatal(err)
		}
		tr.hashes = append(tr.hashes, hs...)
	}
	for newSize := int64(1); newSize <= max; newSize++ {
		newRoot, err := tlog.TreeHash(newSize, &tr)
		if err != nil {
			t.Fatal(err)
		}
		for oldSize := int64(1); oldSize <= newSize; oldSize++ {
			oldRoot, _ := tlog.TreeHash(oldSize, &tr)
			p, err := tlog.ProveTree(newSize, oldSize, &tr)
			if err != nil {
				t.Fatal(err)
			}
			if err := tlog.CheckTree(p, newSize, newRoot, oldSize, oldRoot); err != nil {
				t.Fatalf("tlog itself refuses %d→%d: %v", oldSize, newSize, err)
			}
			proof := make([]hash, len(p))
			for i, h := range p {
				proof[i] = hash(h)
			}
			if err := checkConsistency(proof, oldSize, hash(oldRoot), newSize, hash(newRoot)); err != nil {
				t.Fatalf("%d→%d: %v", oldSize, newSize, err)
			}
			bad := hash(oldRoot)
			bad[0] ^= 1
			if checkConsistency(proof, oldSize, bad, newSize, hash(newRoot)) == nil {
				t.Fatalf("%d→%d: accepted another old root", oldSize, newSize)
			}
			if len(proof) > 0 {
				flipped := append([]hash(nil), proof...)
				flipped[len(flipped)/2][3] ^= 1
				if checkConsistency(flipped, oldSize, hash(oldRoot), newSize, hash(newRoot)) == nil {
					t.Fatalf("%d→%d: accepted a changed proof", oldSize, newSize)
				}
			}
		}
	}
}

// TestCosignatureMatchesTorchwood holds cosignedAt against torchwood's
// cosignature/v1 signer: a witness's cosignature verifies with its key and
// gives its time; another witness's key of the same name, or another
// checkpoint, does not verify.
func TestCosignatureMatchesTorchwood(t *testing.T) {
	logKey, err := auditlog.LoadOrCreateKey(t.TempDir()+"/log.key", "example.com/log")
	if err != nil {
		t.Fatal(err)
	}
	signed, err := auditlog.SignHead(logKey.Signer(), 10, doorledger.LogHash{1, 2, 3})
	if err != nil {
		t.Fatal(err)
	}
	mk := func() (*torchwood.CosignatureSigner, *witnessKey) {
		_, priv, _ := ed25519.GenerateKey(rand.Reader)
		s, err := torchwood.NewCosignatureSigner("board-witness", priv)
		if err != nil {
			t.Fatal(err)
		}
		path := t.TempDir() + "/w.txt"
		if err := os.WriteFile(path, []byte("k 1\nBoard's lawyer "+s.Verifier().String()+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		keys, k, err := readWitnessFile(path)
		if err != nil || k != 1 || len(keys) != 1 || keys[0].label != "Board's lawyer" {
			t.Fatalf("readWitnessFile: %v %d %+v", err, k, keys)
		}
		return s, keys[0]
	}
	s, w := mk()
	_, other := mk()
	n, err := note.Open([]byte(signed), note.VerifierList(logKey.Verifier()))
	if err != nil {
		t.Fatal(err)
	}
	cosigned, err := note.Sign(n, logKey.Signer(), s)
	if err != nil {
		t.Fatal(err)
	}
	i := bytes.LastIndex(cosigned, []byte("\n\n"))
	sigs := cosigned[i+2:]
	at, ok, err := cosignedAt(sigs, n.Text, w)
	if err != nil || !ok || at.IsZero() {
		t.Fatalf("the witness's cosignature: %v %v %v", at, ok, err)
	}
	if _, ok, err := cosignedAt(sigs, n.Text, other); ok || err != nil {
		t.Fatalf("another key of the same name: %v %v", ok, err)
	}
	if _, _, err := cosignedAt(sigs, strings.Replace(n.Text, "\n10\n", "\n11\n", 1), w); err == nil {
		t.Fatal("the cosignature verified for another checkpoint")
	}
}
