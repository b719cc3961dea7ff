package auditlog

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"hash"
	"math/bits"

	"github.com/doorledger/doorledger"
	"golang.org/x/mod/sumdb/tlog"
)

// The tree is tlog's: leaves are RFC 6962 record hashes, and every hash of the
// tree (leaves and complete inner nodes) is stored once, at the index
// tlog.StoredHashIndex gives it, so that any proof reads O(log n) of them.

// LeafHash is the tree hash of an encoded entry: SHA-256(0x00 || enc).
func LeafHash(enc []byte) doorledger.LogHash { return doorledger.LogHash(tlog.RecordHash(enc)) }

// StoredHashIndex is where the n'th hash at level (0: leaves) is stored.
func StoredHashIndex(level int, n int64) int64 { return tlog.StoredHashIndex(level, n) }

// StoredHashCount is how many hashes a tree of n entries stores.
func StoredHashCount(n int64) int64 { return tlog.StoredHashCount(n) }

// Frontier is the right edge of a tree: the roots of its complete subtrees,
// largest first. That is all it takes to append entries and compute the root,
// so the sequencer and the checker stream through a log of any size in
// O(log n) memory.
type Frontier struct {
	n      int64
	hashes []doorledger.LogHash
}

// FrontierIndexes returns the stored hash indexes NewFrontier needs for a
// tree of n entries.
func FrontierIndexes(n int64) []int64 {
	var idx []int64
	var start int64
	for level := 62; level >= 0; level-- {
		if n&(1<<level) != 0 {
			idx = append(idx, tlog.StoredHashIndex(level, start>>level))
			start += 1 << level
		}
	}
	return idx
}

// NewFrontier returns the frontier of a tree of n entries from the stored
// hashes at FrontierIndexes(n).
func NewFrontier(n int64, hashes []doorledger.LogHash) (*Frontier, error) {
	if n < 0 || len(hashes) != bits.OnesCount64(uint64(n)) {
		return nil, fmt.Errorf("auditlog: frontier of %d entries: have %d hashes", n, len(hashes))
	}
	return &Frontier{n: n, hashes: append([]doorledger.LogHash(nil), hashes...)}, nil
}

// Size is the tree's number of entries.
func (f *Frontier) Size() int64 { return f.n }

// Append adds a leaf and returns the hashes the tree now stores for it, in
// index order from StoredHashIndex(0, old size): the leaf, then each inner
// node it completes (what tlog.StoredHashes returns).
func (f *Frontier) Append(leaf doorledger.LogHash) []doorledger.LogHash {
	stored := []doorledger.LogHash{leaf}
	h := leaf
	for n := f.n; n&1 == 1; n >>= 1 {
		last := len(f.hashes) - 1
		h = doorledger.LogHash(tlog.NodeHash(tlog.Hash(f.hashes[last]), tlog.Hash(h)))
		f.hashes = f.hashes[:last]
		stored = append(stored, h)
	}
	f.hashes = append(f.hashes, h)
	f.n++
	return stored
}

// Root is the tree's root hash (tlog.TreeHash).
func (f *Frontier) Root() doorledger.LogHash {
	if f.n == 0 {
		h, _ := tlog.TreeHash(0, nil)
		return doorledger.LogHash(h)
	}
	h := f.hashes[len(f.hashes)-1]
	for i := len(f.hashes) - 2; i >= 0; i-- {
		h = doorledger.LogHash(tlog.NodeHash(tlog.Hash(f.hashes[i]), tlog.Hash(h)))
	}
	return h
}

// HashReader reads stored hashes by index, in the order asked; an index not
// stored is an error.
type HashReader func(indexes []int64) ([]doorledger.LogHash, error)

// ReadHashes makes a HashReader a tlog.HashReader.
func (r HashReader) ReadHashes(indexes []int64) ([]tlog.Hash, error) {
	hs, err := r(indexes)
	if err != nil {
		return nil, err
	}
	if len(hs) != len(indexes) {
		return nil, fmt.Errorf("auditlog: read %d hashes, have %d", len(indexes), len(hs))
	}
	return toTlog(hs), nil
}

func toTlog(hs []doorledger.LogHash) []tlog.Hash {
	out := make([]tlog.Hash, len(hs))
	for i, h := range hs {
		out[i] = tlog.Hash(h)
	}
	return out
}

func fromTlog(hs []tlog.Hash) []doorledger.LogHash {
	out := make([]doorledger.LogHash, len(hs))
	for i, h := range hs {
		out[i] = doorledger.LogHash(h)
	}
	return out
}

// TreeHash computes the root of the tree of the first size entries.
func TreeHash(size int64, r HashReader) (doorledger.LogHash, error) {
	h, err := tlog.TreeHash(size, r)
	return doorledger.LogHash(h), err
}

// ProveInclusion proves that entry index is in the tree of the first size entries.
func ProveInclusion(index, size int64, r HashReader) (*doorledger.LogInclusionProof, error) {
	if index < 0 || index >= size {
		return nil, fmt.Errorf("auditlog: entry %d is not in a tree of %d", index, size)
	}
	leaf, err := r([]int64{tlog.StoredHashIndex(0, index)})
	if err != nil {
		return nil, err
	} else if len(leaf) != 1 {
		return nil, fmt.Errorf("auditlog: no leaf hash for entry %d", index)
	}
	p, err := tlog.ProveRecord(size, index, r)
	if err != nil {
		return nil, err
	}
	return &doorledger.LogInclusionProof{Index: index, Size: size, LeafHash: leaf[0], Hashes: fromTlog(p)}, nil
}

// ProveConsistency proves that the tree of newSize entries extends that of oldSize.
func ProveConsistency(oldSize, newSize int64, r HashReader) (*doorledger.LogConsistencyProof, error) {
	if oldSize < 1 || oldSize > newSize {
		return nil, fmt.Errorf("auditlog: no consistency proof from %d to %d entries", oldSize, newSize)
	}
	p, err := tlog.ProveTree(newSize, oldSize, r)
	if err != nil {
		return nil, err
	}
	return &doorledger.LogConsistencyProof{OldSize: oldSize, NewSize: newSize, Hashes: fromTlog(p)}, nil
}

// CheckInclusion checks an inclusion proof against a head of the proof's size.
// Check the head's signature first (OpenHead).
func CheckInclusion(p *doorledger.LogInclusionProof, head doorledger.LogHead) error {
	if p.Size != head.Size {
		return fmt.Errorf("auditlog: proof for a tree of %d entries, head of %d", p.Size, head.Size)
	}
	if err := tlog.CheckRecord(toTlog(p.Hashes), p.Size, tlog.Hash(head.Root), p.Index, tlog.Hash(p.LeafHash)); err != nil {
		return fmt.Errorf("auditlog: entry %d is not proved in the tree of %d: %w", p.Index, p.Size, err)
	}
	return nil
}

// CheckConsistency checks that newHead's tree extends oldHead's. Check both
// heads' signatures first (OpenHead).
func CheckConsistency(p *doorledger.LogConsistencyProof, oldHead, newHead doorledger.LogHead) error {
	if p.OldSize != oldHead.Size || p.NewSize != newHead.Size {
		return fmt.Errorf("auditlog: proof from %d to %d entries, heads of %d and %d", p.OldSize, p.NewSize, oldHead.Size, newHead.Size)
	}
	if err := tlog.CheckTree(toTlog(p.Hashes), p.NewSize, tlog.Hash(newHead.Root), p.OldSize, tlog.Hash(oldHead.Root)); err != nil {
		return fmt.Errorf("auditlog: the tree of %d does not extend the tree of %d: %w", p.NewSize, p.OldSize, err)
	}
	return nil
}

// PurgeHasher computes a LogPurge's LeavesHash: SHA-256 over the purged
// leaves in log order, each as its 8-byte big-endian position then its hash.
// The zero value is ready to use.
type PurgeHasher struct {
	state hash.Hash
	n     int64
}

// Add adds the leaf at index with hash h.
func (p *PurgeHasher) Add(index int64, h doorledger.LogHash) {
	if p.state == nil {
		p.state = sha256.New()
	}
	var buf [8 + 32]byte
	binary.BigEndian.PutUint64(buf[:8], uint64(index))
	copy(buf[8:], h[:])
	p.state.Write(buf[:])
	p.n++
}

// Count is how many leaves were added.
func (p *PurgeHasher) Count() int64 { return p.n }

// Sum returns the hash of the leaves added.
func (p *PurgeHasher) Sum() doorledger.LogHash {
	if p.state == nil {
		p.state = sha256.New()
	}
	var h doorledger.LogHash
	copy(h[:], p.state.Sum(nil))
	return h
}
