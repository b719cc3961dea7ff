package auditlog_test

import (
	"fmt"
	"testing"

	"github.com/doorledger/doorledger"
	"github.com/doorledger/doorledger/auditlog"
	"golang.org/x/mod/sumdb/tlog"
)

// memTree is a log's stored hashes in memory, as the database keeps them.
type memTree struct{ hashes []doorledger.LogHash }

func (m *memTree) append(enc []byte) []doorledger.LogHash {
	f, err := auditlog.NewFrontier(m.size(), m.read(auditlog.FrontierIndexes(m.size())))
	if err != nil {
		panic(err)
	}
	stored := f.Append(auditlog.LeafHash(enc))
	m.hashes = append(m.hashes, stored...)
	return stored
}

func (m *memTree) size() int64 {
	var n int64
	for auditlog.StoredHashCount(n) < int64(len(m.hashes)) {
		n++
	}
	return n
}

func (m *memTree) read(idx []int64) []doorledger.LogHash {
	out := make([]doorledger.LogHash, len(idx))
	for i, x := range idx {
		out[i] = m.hashes[x]
	}
	return out
}

func (m *memTree) reader() auditlog.HashReader {
	return func(idx []int64) ([]doorledger.LogHash, error) {
		for _, x := range idx {
			if x < 0 || x >= int64(len(m.hashes)) {
				return nil, fmt.Errorf("no hash %d", x)
			}
		}
		return m.read(idx), nil
	}
}

func TestFrontierMatchesTlog(t *testing.T) {
	var m memTree
	f, _ := auditlog.NewFrontier(0, nil)
	for n := int64(0); n < 300; n++ {
		enc := []byte(fmt.Sprintf("record %d", n))
		// The hashes tlog would store for record n.
		want, err := tlog.StoredHashes(n, enc, m.reader())
		if err != nil {
			t.Fatal(err)
		}
		got := f.Append(auditlog.LeafHash(enc))
		if len(got) != len(want) {
			t.Fatalf("record %d: %d stored hashes, want %d", n, len(got), len(want))
		}
		for i := range got {
			if got[i] != doorledger.LogHash(want[i]) {
				t.Fatalf("record %d: stored hash %d differs", n, i)
			}
		}
		if idx := auditlog.StoredHashIndex(0, n); idx != int64(len(m.hashes)) {
			t.Fatalf("record %d stored at %d, want %d", n, idx, len(m.hashes))
		}
		m.hashes = append(m.hashes, got...)
		if c := auditlog.StoredHashCount(n + 1); c != int64(len(m.hashes)) {
			t.Fatalf("tree of %d stores %d hashes, have %d", n+1, c, len(m.hashes))
		}
		root, err := tlog.TreeHash(n+1, m.reader())
		if err != nil || doorledger.LogHash(root) != f.Root() {
			t.Fatalf("root of %d: %v %v", n+1, f.Root(), err)
		}
		// A frontier loaded from the stored hashes goes on the same way.
		g, err := auditlog.NewFrontier(n+1, m.read(auditlog.FrontierIndexes(n+1)))
		if err != nil || g.Root() != f.Root() {
			t.Fatalf("reloaded frontier of %d: %v", n+1, err)
		}
	}
	empty, _ := tlog.TreeHash(0, nil)
	if f, _ := auditlog.NewFrontier(0, nil); f.Root() != doorledger.LogHash(empty) {
		t.Errorf("empty root")
	}
	if _, err := auditlog.NewFrontier(5, nil); err == nil {
		t.Errorf("frontier of 5 without hashes")
	}
}

func TestProofs(t *testing.T) {
	var m memTree
	roots := map[int64]doorledger.LogHash{}
	for n := int64(1); n <= 40; n++ {
		m.append([]byte(fmt.Sprintf("entry %d", n-1)))
		roots[n], _ = auditlog.TreeHash(n, m.reader())
	}
	head := func(n int64) doorledger.LogHead { return doorledger.LogHead{Size: n, Root: roots[n]} }

	for _, c := range []struct{ index, size int64 }{{0, 1}, {0, 40}, {17, 40}, {39, 40}, {12, 13}, {5, 32}} {
		p, err := auditlog.ProveInclusion(c.index, c.size, m.reader())
		if err != nil {
			t.Fatal(err)
		}
		if p.LeafHash != auditlog.LeafHash([]byte(fmt.Sprintf("entry %d", c.index))) {
			t.Errorf("inclusion %d in %d: wrong leaf hash", c.index, c.size)
		}
		if err := auditlog.CheckInclusion(p, head(c.size)); err != nil {
			t.Errorf("inclusion %d in %d: %v", c.index, c.size, err)
		}
		// Tampered: another leaf, another index, a changed hash, another root.
		bad := *p
		bad.LeafHash[0] ^= 1
		if auditlog.CheckInclusion(&bad, head(c.size)) == nil {
			t.Errorf("inclusion %d in %d: accepted a changed leaf", c.index, c.size)
		}
		if len(p.Hashes) > 0 {
			bad = *p
			bad.Hashes = append([]doorledger.LogHash(nil), p.Hashes...)
			bad.Hashes[len(bad.Hashes)/2][31] ^= 0x80
			if auditlog.CheckInclusion(&bad, head(c.size)) == nil {
				t.Errorf("inclusion %d in %d: accepted a changed proof", c.index, c.size)
			}
			bad = *p
			bad.Index = (p.Index + 1) % p.Size
			if auditlog.CheckInclusion(&bad, head(c.size)) == nil {
				t.Errorf("inclusion %d in %d: accepted another index", c.index, c.size)
			}
		}
		other := head(c.size)
		other.Root[0] ^= 1
		if auditlog.CheckInclusion(p, other) == nil {
			t.Errorf("inclusion %d in %d: accepted another root", c.index, c.size)
		}
	}
	if _, err := auditlog.ProveInclusion(40, 40, m.reader()); err == nil {
		t.Errorf("proved entry 40 in a tree of 40")
	}

	for _, c := range []struct{ old, new int64 }{{1, 40}, {7, 8}, {16, 32}, {13, 37}, {40, 40}} {
		p, err := auditlog.ProveConsistency(c.old, c.new, m.reader())
		if err != nil {
			t.Fatal(err)
		}
		if err := auditlog.CheckConsistency(p, head(c.old), head(c.new)); err != nil {
			t.Errorf("consistency %d to %d: %v", c.old, c.new, err)
		}
		if len(p.Hashes) > 0 {
			bad := *p
			bad.Hashes = append([]doorledger.LogHash(nil), p.Hashes...)
			bad.Hashes[0][0] ^= 1
			if auditlog.CheckConsistency(&bad, head(c.old), head(c.new)) == nil {
				t.Errorf("consistency %d to %d: accepted a changed proof", c.old, c.new)
			}
		}
		// A log that rewrote its past: the old head's root is not in the new tree.
		forged := head(c.old)
		forged.Root[5] ^= 1
		if c.old != c.new && auditlog.CheckConsistency(p, forged, head(c.new)) == nil {
			t.Errorf("consistency %d to %d: accepted a rewritten old tree", c.old, c.new)
		}
	}
	if _, err := auditlog.ProveConsistency(10, 9, m.reader()); err == nil {
		t.Errorf("proved a tree shrinking")
	}
}
