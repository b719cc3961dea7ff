package witness_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/doorledger/doorledger"
	"github.com/doorledger/doorledger/auditlog"
	"github.com/doorledger/doorledger/witness"
	"golang.org/x/mod/sumdb/tlog"
)

// memTree is a log's tree in memory: its stored hashes, as tlog keeps them.
type memTree struct {
	hashes []tlog.Hash
	n      int64
}

func (t *memTree) ReadHashes(idx []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(idx))
	for i, x := range idx {
		out[i] = t.hashes[x]
	}
	return out, nil
}

func (t *memTree) add(entries ...string) {
	for _, e := range entries {
		hs, err := tlog.StoredHashes(t.n, []byte(e), t)
		if err != nil {
			panic(err)
		}
		t.hashes = append(t.hashes, hs...)
		t.n++
	}
}

func (t *memTree) root(tb testing.TB) tlog.Hash {
	tb.Helper()
	h, err := tlog.TreeHash(t.n, t)
	if err != nil {
		tb.Fatal(err)
	}
	return h
}

func (t *memTree) proof(tb testing.TB, old int64) []tlog.Hash {
	tb.Helper()
	if old == 0 {
		return nil
	}
	p, err := tlog.ProveTree(t.n, old, t)
	if err != nil {
		tb.Fatal(err)
	}
	return p
}

func (t *memTree) sign(tb testing.TB, k *auditlog.Key) string {
	tb.Helper()
	s, err := auditlog.SignHead(k.Signer(), t.n, doorledger.LogHash(t.root(tb)))
	if err != nil {
		tb.Fatal(err)
	}
	return s
}

func entries(prefix string, from, to int) []string {
	var out []string
	for i := from; i < to; i++ {
		out = append(out, fmt.Sprintf("%s %d", prefix, i))
	}
	return out
}

// logKey is a portal's log key, named by its origin as the portal names it.
func logKey(tb testing.TB, origin string) *auditlog.Key {
	tb.Helper()
	k, err := auditlog.LoadOrCreateKey(filepath.Join(tb.TempDir(), "log.key"), "doorledger")
	if err != nil {
		tb.Fatal(err)
	}
	if k, err = k.Named(origin); err != nil {
		tb.Fatal(err)
	}
	return k
}

// TestWitnessCosignsOnlyConsistentCheckpoints runs a witness over HTTP:
// it cosigns the first checkpoint, then one that extends it, answers 409
// with its size to a stale old size, refuses a forked tree (422) re-signed
// with the log's own key and one signed by another key (403), a log it
// does not follow (404), and keeps what it cosigned across a restart.
func TestWitnessCosignsOnlyConsistentCheckpoints(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	w, err := witness.Open(dir, "board-lawyer", nil)
	if err != nil {
		t.Fatal(err)
	}
	key := logKey(t, "portal.example/doorledger-1")
	if _, err := w.Follow(key.VerifierKey()); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(w)
	defer srv.Close()
	v, err := witness.ParseVerifierKey(w.VerifierKey())
	if err != nil {
		t.Fatal(err)
	}

	var tree memTree
	tree.add(entries("e", 0, 5)...)
	first := tree.sign(t, key)
	sigs, err := witness.Submit(ctx, srv.Client(), srv.URL, 0, nil, first)
	if err != nil {
		t.Fatalf("first checkpoint: %v", err)
	}
	line := witness.Line(v, sigs)
	if _, err := witness.CheckCosignature(v, first, line); err != nil {
		t.Fatalf("cosignature of the first checkpoint: %v (%q)", err, sigs)
	}

	tree.add(entries("e", 5, 9)...)
	second := tree.sign(t, key)
	sigs, err = witness.Submit(ctx, srv.Client(), srv.URL, 5, tree.proof(t, 5), second)
	if err != nil {
		t.Fatalf("extension: %v", err)
	}
	if _, err := witness.CheckCosignature(v, second, witness.Line(v, sigs)); err != nil {
		t.Fatalf("cosignature of the extension: %v", err)
	}
	// A cosignature is of one checkpoint only.
	if _, err := witness.CheckCosignature(v, first, witness.Line(v, sigs)); err == nil {
		t.Fatal("the second checkpoint's cosignature verifies for the first")
	}

	// Stale: the witness is at 9.
	var c *witness.Conflict
	if _, err := witness.Submit(ctx, srv.Client(), srv.URL, 5, tree.proof(t, 5), second); !errors.As(err, &c) || c.Size != 9 {
		t.Fatalf("stale old size: got %v, want a 409 naming 9", err)
	}

	// A fork: the same first 5 entries, then others, re-signed with the
	// log's own key (what an attacker with the database and key can do).
	var fork memTree
	fork.add(entries("e", 0, 5)...)
	fork.add(entries("forged", 5, 12)...)
	forged := fork.sign(t, key)
	_, err = witness.Submit(ctx, srv.Client(), srv.URL, 9, fork.proof(t, 9), forged)
	if r, ok := witness.IsRefused(err); !ok || r.Status != http.StatusUnprocessableEntity || !r.Security() {
		t.Fatalf("forked checkpoint: got %v, want 422", err)
	}

	// Signed by another key under the same origin.
	other := logKey(t, "portal.example/doorledger-1")
	tree.add("e 9")
	_, err = witness.Submit(ctx, srv.Client(), srv.URL, 9, tree.proof(t, 9), tree.sign(t, other))
	if r, ok := witness.IsRefused(err); !ok || r.Status != http.StatusForbidden {
		t.Fatalf("checkpoint signed by another key: got %v, want 403", err)
	}
	// A log it does not follow.
	stranger := logKey(t, "elsewhere.example/log")
	_, err = witness.Submit(ctx, srv.Client(), srv.URL, 0, nil, tree.sign(t, stranger))
	if r, ok := witness.IsRefused(err); !ok || r.Status != http.StatusNotFound || r.Security() {
		t.Fatalf("unknown log: got %v, want 404", err)
	}

	// Restarted, it remembers size 9 and its key.
	srv.Close()
	w2, err := witness.Open(dir, "ignored-after-first-start", nil)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := w2.VerifierKey(), w.VerifierKey(); got != want {
		t.Fatalf("key after restart: %s, want %s", got, want)
	}
	if n, ok := w2.Latest(key.Name()); !ok || n != 9 {
		t.Fatalf("after restart the witness is at %d (%v), want 9", n, ok)
	}
	if _, err := w2.Follow(other.VerifierKey()); err == nil || !strings.Contains(err.Error(), "another key") {
		t.Fatalf("following the log under another key: %v", err)
	}
	// And still refuses the fork, without a round trip over HTTP.
	if _, err := w2.AddCheckpoint(witness.FormatRequest(9, fork.proof(t, 9), forged)); err == nil {
		t.Fatal("the restarted witness cosigned the fork")
	}
}

func TestParseVerifierKey(t *testing.T) {
	w, err := witness.Open(t.TempDir(), "w1", nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := witness.ParseVerifierKey(w.VerifierKey()); err != nil {
		t.Fatalf("witness key: %v", err)
	}
	logk := logKey(t, "x.example/log")
	for _, bad := range []string{"", "w1", logk.VerifierKey(), strings.Replace(w.VerifierKey(), "w1+", "w2+", 1)} {
		if _, err := witness.ParseVerifierKey(bad); err == nil {
			t.Errorf("ParseVerifierKey(%q) accepted", bad)
		}
	}
}
