package auditlog

import (
	"fmt"
	"sort"

	"github.com/doorledger/doorledger"
)

// Leaf is one log entry as the checker sees it: what the log stored, and the
// row it was made from as the row is now.
type Leaf struct {
	Index int64
	Kind  string
	RefID int64
	Hash  doorledger.LogHash // the leaf hash the log stored
	// Tree holds the tree hashes stored with this leaf, from
	// StoredHashIndex(0, Index) up to StoredHashCount(Index+1), in order; a
	// hash the store lacks is the zero hash.
	Tree []doorledger.LogHash
	// Row is the row now, canonically encoded; nil when there is no such row.
	Row []byte
	// RowErr says why the row could not be encoded (a tampered column).
	RowErr error
	// Redaction is set when the row is an unlock event a redaction emptied
	// (Row is then its encoding as it remains).
	Redaction *LeafRedaction
	// Unlogged lists rows of this kind whose ids fall between the previous
	// leaf of the kind and this one, yet are not in the log.
	Unlogged []int64
}

// PurgeLeaf is a purge record's leaf, given to the checker up front: unlock
// events a purge names may be missing from the entries before it.
type PurgeLeaf struct {
	Index int64
	Hash  doorledger.LogHash // the leaf hash the log stored
	Tree0 doorledger.LogHash // the level-0 tree hash stored for it
	Row   []byte             // the purge record now, encoded
}

// Checker recomputes a log, entry after entry, and names the first entry
// that does not match. Feed it the log's leaves in order with Check, then
// call Finish. It keeps O(log n) hashes plus the purge records.
type Checker struct {
	verifier *HeadVerifier
	heads    []doorledger.LogHead
	next     int // the next head to check
	tree     Frontier
	lastRef  map[string]int64
	cover    map[string][]coverRange // by kind purged, sorted by From
	purges   map[int64]*purgeCheck   // by the purge leaf's index

	purged       int64
	headsChecked int

	redactions map[int64]*redactCheck // by the redaction's journal entry id
	redactAt   map[int64]*redactCheck // by its leaf's index
	redacted   int64
}

type purgeCheck struct {
	p     *doorledger.LogPurge
	index int64
	sum   PurgeHasher
}

type coverRange struct {
	from, to int64
	maxTo    int64 // the largest To of this range and those before it
	pc       *purgeCheck
}

// NewChecker returns a checker for a log whose signed heads (any order) are
// checked with v, and whose purge records are purges (any order).
func NewChecker(v *HeadVerifier, heads []doorledger.LogHead, purges []PurgeLeaf) *Checker {
	c := &Checker{
		verifier: v,
		heads:    append([]doorledger.LogHead(nil), heads...),
		lastRef:  map[string]int64{},
		cover:    map[string][]coverRange{},
		purges:   map[int64]*purgeCheck{},
	}
	sort.SliceStable(c.heads, func(i, j int) bool { return c.heads[i].Size < c.heads[j].Size })
	// A purge counts only if its record is as logged: its row encodes to its
	// leaf, and the leaf to the tree's. Anything else covers no missing row,
	// and is reported when its position is reached.
	for _, pl := range purges {
		if pl.Row == nil || LeafHash(pl.Row) != pl.Hash || pl.Hash != pl.Tree0 {
			continue
		}
		e, err := Decode(pl.Row)
		if err != nil || e.Purge == nil {
			continue
		}
		pc := &purgeCheck{p: e.Purge, index: pl.Index}
		c.purges[pl.Index] = pc
		for _, r := range e.Purge.IDs {
			c.cover[e.Purge.Of] = append(c.cover[e.Purge.Of], coverRange{from: r.From, to: r.To, pc: pc})
		}
	}
	for kind, rs := range c.cover {
		sort.Slice(rs, func(i, j int) bool { return rs[i].from < rs[j].from })
		var m int64
		for i := range rs {
			m = max(m, rs[i].to)
			rs[i].maxTo = m
		}
		c.cover[kind] = rs
	}
	return c
}

// Size is how many entries have been checked.
func (c *Checker) Size() int64 { return c.tree.Size() }

// Purged is how many of them are rows a logged purge deleted.
func (c *Checker) Purged() int64 { return c.purged }

// Heads is how many signed heads have been checked.
func (c *Checker) Heads() int { return c.headsChecked }

// Root is the root of the entries checked so far.
func (c *Checker) Root() doorledger.LogHash { return c.tree.Root() }

// Check checks the next entries of the log, in order, and returns the first
// problem (nil: all match). After a problem the checker is spent.
func (c *Checker) Check(batch []Leaf) *doorledger.LogProblem {
	if c.tree.Size() == 0 {
		if p := c.checkHeads(); p != nil {
			return p
		}
	}
	for k := range batch {
		if p := c.leaf(batch, k); p != nil {
			return p
		}
		if p := c.checkHeads(); p != nil {
			return p
		}
	}
	return nil
}

// Finish reports a signed head beyond the last entry: the log lost its end.
func (c *Checker) Finish() *doorledger.LogProblem {
	if p := c.checkHeads(); p != nil {
		return p
	}
	if c.next < len(c.heads) {
		h := c.heads[c.next]
		return &doorledger.LogProblem{What: doorledger.LogTruncated, Index: c.tree.Size(), Size: h.Size,
			Detail: fmt.Sprintf("the log ends after %d entries: entries %d to %d are gone", c.tree.Size(), c.tree.Size(), h.Size-1)}
	}
	return nil
}

func (c *Checker) leaf(batch []Leaf, k int) *doorledger.LogProblem {
	l := &batch[k]
	i := c.tree.Size()
	problem := func(what, detail string) *doorledger.LogProblem {
		return &doorledger.LogProblem{What: what, Index: i, Kind: l.Kind, RefID: l.RefID, Detail: detail}
	}
	if l.Index != i {
		return &doorledger.LogProblem{What: doorledger.LogAltered, Index: i,
			Detail: fmt.Sprintf("the log has no entry %d (next is %d)", i, l.Index)}
	}
	switch l.Kind {
	case doorledger.LogKindAudit, doorledger.LogKindUnlock, doorledger.LogKindPurge:
	default:
		return &doorledger.LogProblem{What: doorledger.LogAltered, Index: i, Detail: fmt.Sprintf("unknown kind %q", l.Kind)}
	}
	if last := c.lastRef[l.Kind]; l.RefID <= last {
		return problem(doorledger.LogOutOfOrder, fmt.Sprintf("%s #%d after #%d", l.Kind, l.RefID, last))
	}
	if len(l.Unlogged) > 0 {
		return &doorledger.LogProblem{What: doorledger.LogNotInLog, Index: i, Kind: l.Kind, RefID: l.Unlogged[0]}
	}

	h := l.Hash
	switch {
	case l.RowErr != nil:
		return problem(doorledger.LogChanged, l.RowErr.Error())
	case l.Row == nil:
		if len(c.covering(l)) == 0 {
			return problem(doorledger.LogMissing, "")
		}
		c.purged++
	case l.Redaction != nil:
		var why string
		if h, why = c.redactedLeaf(l); why != "" {
			return problem(doorledger.LogChanged, why)
		}
	default:
		h = LeafHash(l.Row)
		if h != l.Hash {
			if len(l.Tree) > 0 && h == l.Tree[0] {
				return problem(doorledger.LogAltered, "the log's copy of the entry's hash was altered")
			}
			if j := movedTo(batch, k); j >= 0 {
				return problem(doorledger.LogOutOfOrder, fmt.Sprintf("%s #%d holds what was logged as #%d", l.Kind, l.RefID, batch[j].RefID))
			}
			return problem(doorledger.LogChanged, "")
		}
	}

	stored := c.tree.Append(h)
	if len(stored) != len(l.Tree) {
		return problem(doorledger.LogAltered, fmt.Sprintf("%d tree hashes stored, want %d", len(l.Tree), len(stored)))
	}
	for j := range stored {
		if stored[j] != l.Tree[j] {
			return problem(doorledger.LogAltered, "the log's stored tree hashes were altered")
		}
	}

	for _, pc := range c.covering(l) {
		pc.sum.Add(i, l.Hash)
	}
	if p := c.redactionAt(i, l); p != nil {
		return p
	}
	if l.Kind == doorledger.LogKindPurge {
		pc := c.purges[i]
		if pc == nil || pc.p.ID != l.RefID {
			return problem(doorledger.LogPurgeMismatch, "the purge record was not checked")
		}
		if n := pc.p.Count(); pc.sum.Count() != n {
			return problem(doorledger.LogPurgeMismatch, fmt.Sprintf("it names %d entries, the log has %d of them before it", n, pc.sum.Count()))
		} else if pc.sum.Sum() != pc.p.LeavesHash {
			return problem(doorledger.LogPurgeMismatch, "the hash of the entries it names does not match")
		}
	}
	c.lastRef[l.Kind] = l.RefID
	return nil
}

// covering returns the purges, logged after l, that name l's row.
func (c *Checker) covering(l *Leaf) []*purgeCheck {
	rs := c.cover[l.Kind]
	// The last range starting at or before the id, then back while earlier
	// ranges may still reach it.
	j := sort.Search(len(rs), func(j int) bool { return rs[j].from > l.RefID }) - 1
	var out []*purgeCheck
	for ; j >= 0 && rs[j].maxTo >= l.RefID; j-- {
		if rs[j].to >= l.RefID && rs[j].pc.index > l.Index {
			out = append(out, rs[j].pc)
		}
	}
	return out
}

// movedTo returns the position in batch of another leaf of the same kind
// whose logged content the row of batch[k] now holds, or -1.
func movedTo(batch []Leaf, k int) int {
	l := &batch[k]
	for j := range batch {
		o := &batch[j]
		if j == k || o.Kind != l.Kind {
			continue
		}
		if enc, err := WithID(l.Row, o.RefID); err == nil && LeafHash(enc) == o.Hash {
			return j
		}
	}
	return -1
}

// checkHeads checks every signed head of the size checked so far.
func (c *Checker) checkHeads() *doorledger.LogProblem {
	n := c.tree.Size()
	for c.next < len(c.heads) && c.heads[c.next].Size <= n {
		h := c.heads[c.next]
		c.next++
		c.headsChecked++
		bad := func(what, detail string) *doorledger.LogProblem {
			return &doorledger.LogProblem{What: what, Index: h.Size - 1, Size: h.Size, Detail: detail}
		}
		cp, err := OpenHead(h.Note, c.verifier)
		size, root := cp.Size, cp.Root
		switch {
		case err != nil:
			return bad(doorledger.LogBadHead, err.Error())
		case size != h.Size || root != h.Root:
			return bad(doorledger.LogBadHead, "the stored head differs from what it signs")
		case h.Size < n:
			return bad(doorledger.LogBadHead, "the head was recorded out of order")
		case root != c.tree.Root():
			return bad(doorledger.LogHeadMismatch, fmt.Sprintf("its root %s is not the root of the log's first %d entries: the log was rewritten", root, h.Size))
		}
	}
	return nil
}
