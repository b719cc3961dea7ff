package auditlog_test

import (
	"fmt"
	"math/bits"
	"math/rand"
	"testing"

	"github.com/doorledger/doorledger"
	"github.com/doorledger/doorledger/auditlog"
	"golang.org/x/mod/sumdb/tlog"
)

// storedTree is a tree built with tlog itself: its stored hashes, by index.
type storedTree struct {
	hashes []tlog.Hash
	leaves []tlog.Hash
}

func (s *storedTree) ReadHashes(idx []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(idx))
	for i, x := range idx {
		if x < 0 || x >= int64(len(s.hashes)) {
			return nil, fmt.Errorf("no stored hash %d", x)
		}
		out[i] = s.hashes[x]
	}
	return out, nil
}

func (s *storedTree) reader() auditlog.HashReader {
	return func(idx []int64) ([]doorledger.LogHash, error) {
		hs, err := s.ReadHashes(idx)
		out := make([]doorledger.LogHash, len(hs))
		for i, h := range hs {
			out[i] = doorledger.LogHash(h)
		}
		return out, err
	}
}

func newStoredTree(tb testing.TB, rng *rand.Rand, n int) *storedTree {
	tb.Helper()
	s := &storedTree{}
	for i := 0; i < n; i++ {
		data := []byte(fmt.Sprintf("entry %d %d", i, rng.Int63()))
		hs, err := tlog.StoredHashes(int64(i), data, s)
		if err != nil {
			tb.Fatal(err)
		}
		s.hashes = append(s.hashes, hs...)
		s.leaves = append(s.leaves, tlog.RecordHash(data))
	}
	return s
}

// TestMultiProof checks multi-proofs against tlog on random trees and
// random sets of entries: the root they give is tlog.TreeHash's, they never
// hold more nodes than the entries' own proofs together, and any changed
// leaf or node, or a node missing or added, fails.
func TestMultiProof(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	for trial := 0; trial < 300; trial++ {
		n := 1 + rng.Intn(700)
		if trial < 20 {
			n = trial + 1
		}
		tree := newStoredTree(t, rng, n)
		root, err := tlog.TreeHash(int64(n), tree)
		if err != nil {
			t.Fatal(err)
		}
		// A random subset, dense or sparse, sometimes runs of neighbours.
		var idx []int64
		p := rng.Float64()
		for i := 0; i < n; i++ {
			if rng.Float64() < p*p {
				idx = append(idx, int64(i))
			}
		}
		proof, err := auditlog.ProveInclusions(idx, int64(n), tree.reader())
		if err != nil {
			t.Fatal(err)
		}
		leaves := make([]doorledger.LogHash, len(idx))
		separate := 0
		for i, x := range idx {
			leaves[i] = doorledger.LogHash(tree.leaves[x])
			rp, err := tlog.ProveRecord(int64(n), x, tree)
			if err != nil {
				t.Fatal(err)
			}
			separate += len(rp)
		}
		head := doorledger.LogHead{Size: int64(n), Root: doorledger.LogHash(root)}
		if err := auditlog.CheckInclusions(proof, leaves, head); err != nil {
			t.Fatalf("n=%d, %d entries: %v", n, len(idx), err)
		}
		// tlog's own proofs take an incomplete subtree of the right edge as
		// one hash; a multi-proof gives it as the complete subtrees the log
		// stores: at most bits.Len(n) more, once for all the entries.
		if len(idx) > 0 && len(proof.Nodes) > separate+bits.Len(uint(n)) {
			t.Errorf("n=%d, %d entries: %d nodes, more than the %d of their own proofs", n, len(idx), len(proof.Nodes), separate)
		}
		if len(idx) > 0 {
			bad := append([]doorledger.LogHash(nil), leaves...)
			bad[rng.Intn(len(bad))][rng.Intn(32)] ^= 1
			if auditlog.CheckInclusions(proof, bad, head) == nil {
				t.Errorf("n=%d: a changed leaf verifies", n)
			}
		}
		if len(proof.Nodes) > 0 {
			k := rng.Intn(len(proof.Nodes))
			changed := *proof
			changed.Nodes = append([]doorledger.LogNode(nil), proof.Nodes...)
			changed.Nodes[k].Hash[rng.Intn(32)] ^= 1
			if auditlog.CheckInclusions(&changed, leaves, head) == nil {
				t.Errorf("n=%d: a changed node verifies", n)
			}
			missing := *proof
			missing.Nodes = append(append([]doorledger.LogNode(nil), proof.Nodes[:k]...), proof.Nodes[k+1:]...)
			if auditlog.CheckInclusions(&missing, leaves, head) == nil {
				t.Errorf("n=%d: a proof missing a node verifies", n)
			}
		}
		extra := *proof
		extra.Nodes = append(append([]doorledger.LogNode(nil), proof.Nodes...), doorledger.LogNode{})
		if auditlog.CheckInclusions(&extra, leaves, head) == nil {
			t.Errorf("n=%d: a proof with a node too many verifies", n)
		}
	}
}

// TestMultiProofNodes: entries that lie together share their nodes.
func TestMultiProofNodes(t *testing.T) {
	// All 8 entries of a tree of 8: nothing else is needed.
	if nodes, _ := auditlog.MultiProofNodes(8, []int64{0, 1, 2, 3, 4, 5, 6, 7}); len(nodes) != 0 {
		t.Errorf("all entries: %v", nodes)
	}
	// Entries 2 and 3 of 8: the subtrees (1, 0) and (2, 1).
	nodes, _ := auditlog.MultiProofNodes(8, []int64{2, 3})
	if fmt.Sprint(nodes) != fmt.Sprint([]doorledger.LogNode{{Level: 1, Index: 0}, {Level: 2, Index: 1}}) {
		t.Errorf("entries 2 and 3 of 8: %v", nodes)
	}
	// None of 7: the complete subtrees 0-3, 4-5, 6.
	nodes, _ = auditlog.MultiProofNodes(7, nil)
	if fmt.Sprint(nodes) != fmt.Sprint([]doorledger.LogNode{{Level: 2, Index: 0}, {Level: 1, Index: 2}, {Level: 0, Index: 6}}) {
		t.Errorf("no entries of 7: %v", nodes)
	}
	for _, bad := range [][]int64{{3, 2}, {2, 2}, {8}, {-1}} {
		if _, err := auditlog.MultiProofNodes(8, bad); err == nil {
			t.Errorf("indexes %v accepted", bad)
		}
	}
}
