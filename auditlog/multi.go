package auditlog

import (
	"errors"
	"fmt"
	"math/bits"
	"slices"

	"github.com/doorledger/doorledger"
	"golang.org/x/mod/sumdb/tlog"
)

// A multi-proof proves many entries at once (the evidence bundle's unlock
// events and journal entries): the union of their inclusion proofs, each
// node once, without the nodes the entries' own leaves give. In the RFC 6962
// tree of n entries, the range [lo, hi) of more than one entry splits at the
// largest power of two below hi-lo; a range holding none of the entries is
// given by its complete subtrees, which the log stores (tlog's stored
// hashes, at StoredHashIndex(level, index)). Entries that lie together share
// all but the edges of their paths: a building's events logged among few
// others' need a few nodes each, not the ~log2(n) of a proof of their own.

// MultiProofNodes returns the complete subtrees (Hash unset) whose hashes,
// with the leaves at indexes, give the root of the tree of size entries, in
// the order a walk of the tree from left to right needs them. indexes must
// be ascending, distinct and below size.
func MultiProofNodes(size int64, indexes []int64) ([]doorledger.LogNode, error) {
	if err := checkIndexes(size, indexes); err != nil {
		return nil, err
	}
	var nodes []doorledger.LogNode
	var walk func(lo, hi int64, leaves []int64)
	walk = func(lo, hi int64, leaves []int64) {
		if len(leaves) == 0 {
			nodes = appendSubtrees(nodes, lo, hi)
			return
		}
		if hi-lo == 1 {
			return
		}
		mid := lo + split(hi-lo)
		i, _ := slices.BinarySearch(leaves, mid)
		walk(lo, mid, leaves[:i])
		walk(mid, hi, leaves[i:])
	}
	if size > 0 {
		walk(0, size, indexes)
	}
	return nodes, nil
}

// appendSubtrees appends the complete subtrees that make up [lo, hi), left
// to right.
func appendSubtrees(nodes []doorledger.LogNode, lo, hi int64) []doorledger.LogNode {
	for lo < hi {
		n := hi - lo
		if n&(n-1) == 0 {
			level := bits.TrailingZeros64(uint64(n))
			return append(nodes, doorledger.LogNode{Level: level, Index: lo >> level})
		}
		k := split(n)
		level := bits.TrailingZeros64(uint64(k))
		nodes = append(nodes, doorledger.LogNode{Level: level, Index: lo >> level})
		lo += k
	}
	return nodes
}

// split is the size of the left subtree of a tree of n > 1 entries: the
// largest power of two below n.
func split(n int64) int64 { return 1 << (bits.Len64(uint64(n-1)) - 1) }

func checkIndexes(size int64, indexes []int64) error {
	for i, x := range indexes {
		if x < 0 || x >= size {
			return fmt.Errorf("auditlog: entry %d is not in a tree of %d", x, size)
		}
		if i > 0 && x <= indexes[i-1] {
			return fmt.Errorf("auditlog: entries %d and %d are not ascending", indexes[i-1], x)
		}
	}
	return nil
}

// ProveInclusions makes the multi-proof of the entries at indexes in the
// tree of size entries, reading the nodes' stored hashes.
func ProveInclusions(indexes []int64, size int64, r HashReader) (*doorledger.LogMultiProof, error) {
	nodes, err := MultiProofNodes(size, indexes)
	if err != nil {
		return nil, err
	}
	idx := make([]int64, len(nodes))
	for i, n := range nodes {
		idx[i] = tlog.StoredHashIndex(n.Level, n.Index)
	}
	hashes, err := r(idx)
	if err != nil {
		return nil, err
	}
	if len(hashes) != len(nodes) {
		return nil, fmt.Errorf("auditlog: read %d hashes, want %d", len(hashes), len(nodes))
	}
	for i := range nodes {
		nodes[i].Hash = hashes[i]
	}
	return &doorledger.LogMultiProof{Size: size, Indexes: slices.Clone(indexes), Nodes: nodes}, nil
}

// MultiProofRoot computes the root of the proof's tree from the leaves at
// its indexes (leaves[i] is the leaf hash of the entry at p.Indexes[i]) and
// its nodes.
func MultiProofRoot(p *doorledger.LogMultiProof, leaves []doorledger.LogHash) (doorledger.LogHash, error) {
	if len(leaves) != len(p.Indexes) {
		return doorledger.LogHash{}, fmt.Errorf("auditlog: %d leaves for %d entries", len(leaves), len(p.Indexes))
	}
	if err := checkIndexes(p.Size, p.Indexes); err != nil {
		return doorledger.LogHash{}, err
	}
	if p.Size == 0 {
		h, _ := tlog.TreeHash(0, nil)
		return doorledger.LogHash(h), nil
	}
	next := 0
	errShort := errors.New("auditlog: the proof has too few nodes")
	node := func(lo, hi int64) (tlog.Hash, error) {
		// The subtrees of [lo, hi), from the proof, folded right to left.
		var want []doorledger.LogNode
		want = appendSubtrees(want, lo, hi)
		hs := make([]tlog.Hash, len(want))
		for i, w := range want {
			if next >= len(p.Nodes) {
				return tlog.Hash{}, errShort
			}
			got := p.Nodes[next]
			if got.Level != w.Level || got.Index != w.Index {
				return tlog.Hash{}, fmt.Errorf("auditlog: the proof gives node (%d, %d) where the tree needs (%d, %d)", got.Level, got.Index, w.Level, w.Index)
			}
			hs[i] = tlog.Hash(got.Hash)
			next++
		}
		h := hs[len(hs)-1]
		for i := len(hs) - 2; i >= 0; i-- {
			h = tlog.NodeHash(hs[i], h)
		}
		return h, nil
	}
	var walk func(lo, hi int64, first, last int) (tlog.Hash, error)
	walk = func(lo, hi int64, first, last int) (tlog.Hash, error) {
		if first == last {
			return node(lo, hi)
		}
		if hi-lo == 1 {
			return tlog.Hash(leaves[first]), nil
		}
		mid := lo + split(hi-lo)
		i, _ := slices.BinarySearch(p.Indexes[first:last], mid)
		l, err := walk(lo, mid, first, first+i)
		if err != nil {
			return l, err
		}
		r, err := walk(mid, hi, first+i, last)
		if err != nil {
			return r, err
		}
		return tlog.NodeHash(l, r), nil
	}
	root, err := walk(0, p.Size, 0, len(p.Indexes))
	if err != nil {
		return doorledger.LogHash{}, err
	}
	if next != len(p.Nodes) {
		return doorledger.LogHash{}, fmt.Errorf("auditlog: the proof has %d nodes, the tree needs %d", len(p.Nodes), next)
	}
	return doorledger.LogHash(root), nil
}

// CheckInclusions checks a multi-proof against a head of its size. Check the
// head's signature first (OpenHead).
func CheckInclusions(p *doorledger.LogMultiProof, leaves []doorledger.LogHash, head doorledger.LogHead) error {
	if p.Size != head.Size {
		return fmt.Errorf("auditlog: proof for a tree of %d entries, head of %d", p.Size, head.Size)
	}
	root, err := MultiProofRoot(p, leaves)
	if err != nil {
		return err
	}
	if root != head.Root {
		return fmt.Errorf("auditlog: the %d entries and the proof's %d nodes give root %s, not the head's %s", len(p.Indexes), len(p.Nodes), root, head.Root)
	}
	return nil
}
