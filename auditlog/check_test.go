package auditlog_test

import (
	"fmt"
	"math/rand"
	"sync"
	"testing"
	"time"

	"github.com/doorledger/doorledger"
	"github.com/doorledger/doorledger/auditlog"
	"golang.org/x/mod/sumdb/note"
)

// synth is a log built in memory the way the sequencer builds one: rows,
// their leaves, the stored tree hashes and signed heads. Rows a purge named
// are gone (Row nil), as after a retention purge.
type synth struct {
	leaves  []auditlog.Leaf
	heads   []doorledger.LogHead
	coverOf map[int][]int // a purge's position → the positions of the rows it names
}

var (
	testKeyOnce sync.Once
	testKey     *auditlog.Key
)

// sharedKey is one signing key for the whole test binary (fuzzing included).
func sharedKey(tb testing.TB) *auditlog.Key {
	testKeyOnce.Do(func() {
		skey, _, err := note.GenerateKey(rand.New(rand.NewSource(1)), "doorledger-test")
		if err == nil {
			testKey, err = auditlog.ParseKey(skey)
		}
		if err != nil {
			tb.Fatal(err)
		}
	})
	return testKey
}

// buildSynth makes a log of n entries from rng: audit entries, unlock events
// and now and then a purge of some earlier unlock events; a head is signed
// every headEvery entries and at the end.
func buildSynth(tb testing.TB, rng *rand.Rand, n, headEvery int) *synth {
	tb.Helper()
	key := sharedKey(tb)
	s := &synth{coverOf: map[int][]int{}}
	var lastAudit, lastUnlock, lastPurge int64
	base := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	words := []string{"a", "b", "building.create", "user.login", "{}", `{"n":1}`, "x\ny"}
	pick := func() string { return words[rng.Intn(len(words))] }
	var purgeable []int // positions of unlock events not yet purged
	var f auditlog.Frontier
	for i := 0; i < n; i++ {
		var enc []byte
		var err error
		l := auditlog.Leaf{Index: int64(i)}
		switch r := rng.Intn(10); {
		case r < 2 && len(purgeable) > 0:
			lastPurge++
			var names []int
			for _, pos := range purgeable {
				if rng.Intn(2) == 0 {
					names = append(names, pos)
				}
			}
			if len(names) == 0 {
				names = purgeable[:1]
			}
			var ids []int64
			var sum auditlog.PurgeHasher
			for _, pos := range names {
				ids = append(ids, s.leaves[pos].RefID)
				sum.Add(int64(pos), s.leaves[pos].Hash)
				s.leaves[pos].Row = nil // the row is gone; its leaf stays
			}
			var kept []int
			for _, pos := range purgeable {
				if s.leaves[pos].Row != nil {
					kept = append(kept, pos)
				}
			}
			purgeable = kept
			s.coverOf[i] = names
			l.Kind, l.RefID = doorledger.LogKindPurge, lastPurge
			enc, err = auditlog.EncodePurge(&doorledger.LogPurge{ID: lastPurge, At: base.Add(time.Duration(i) * time.Second),
				Actor: "system", Of: doorledger.LogKindUnlock, BuildingID: 1, Before: base, IDs: auditlog.IDRanges(ids), LeavesHash: sum.Sum()})
		case r < 6:
			lastUnlock += 1 + int64(rng.Intn(2))
			l.Kind, l.RefID = doorledger.LogKindUnlock, lastUnlock
			enc, err = auditlog.EncodeUnlock(&doorledger.UnlockEvent{ID: lastUnlock, BuildingID: 1 + int64(rng.Intn(2)), DeviceRef: pick(),
				EventID: pick(), OccurredAt: base, ReceivedAt: base.Add(time.Duration(rng.Intn(3)) * time.Second), Method: "keypad",
				Result: doorledger.UnlockGranted, Source: "mqtt"})
			purgeable = append(purgeable, i)
		default:
			lastAudit += 1 + int64(rng.Intn(2))
			l.Kind, l.RefID = doorledger.LogKindAudit, lastAudit
			enc, err = auditlog.EncodeAudit(&doorledger.AuditEntry{ID: lastAudit, At: base, Actor: pick(), Action: pick(), Detail: pick()})
		}
		if err != nil {
			tb.Fatal(err)
		}
		l.Row, l.Hash = enc, auditlog.LeafHash(enc)
		l.Tree = f.Append(l.Hash)
		s.leaves = append(s.leaves, l)
		if (headEvery > 0 && (i+1)%headEvery == 0) || i == n-1 {
			note, err := auditlog.SignHead(key.Signer(), f.Size(), f.Root())
			if err != nil {
				tb.Fatal(err)
			}
			s.heads = append(s.heads, doorledger.LogHead{Size: f.Size(), Root: f.Root(), Note: note})
		}
	}
	return s
}

// check runs the checker over the log in batches of batch entries.
func (s *synth) check(tb testing.TB, batch int) (*doorledger.LogProblem, *auditlog.Checker) {
	var purges []auditlog.PurgeLeaf
	for _, l := range s.leaves {
		if l.Kind == doorledger.LogKindPurge {
			pl := auditlog.PurgeLeaf{Index: l.Index, Hash: l.Hash, Row: l.Row}
			if len(l.Tree) > 0 {
				pl.Tree0 = l.Tree[0]
			}
			purges = append(purges, pl)
		}
	}
	c := auditlog.NewChecker(sharedKey(tb).HeadVerifier(), s.heads, purges)
	if batch < 1 {
		batch = 1
	}
	for i := 0; i < len(s.leaves); i += batch {
		if p := c.Check(s.leaves[i:min(i+batch, len(s.leaves))]); p != nil {
			return p, c
		}
	}
	return c.Finish(), c
}

func TestCheckerIntactLogs(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	for n := 0; n <= 70; n++ {
		s := buildSynth(t, rng, n, 1+rng.Intn(9))
		var gone int64
		for _, l := range s.leaves {
			if l.Row == nil {
				gone++
			}
		}
		for _, batch := range []int{1, 7, 1000} {
			p, c := s.check(t, batch)
			if p != nil {
				t.Fatalf("intact log of %d, batches of %d: %s", n, batch, p)
			}
			if c.Size() != int64(n) || c.Purged() != gone || c.Heads() != len(s.heads) {
				t.Fatalf("log of %d: checked %d entries, %d purged (want %d), %d heads (want %d)", n, c.Size(), c.Purged(), gone, c.Heads(), len(s.heads))
			}
		}
	}
}

// firstOfKind returns the position of the first entry of kind with a row, from position from.
func (s *synth) firstOfKind(kind string, from int) int {
	for i := from; i < len(s.leaves); i++ {
		if s.leaves[i].Kind == kind && s.leaves[i].Row != nil {
			return i
		}
	}
	return -1
}

func TestCheckerFindsTamperingAtItsPosition(t *testing.T) {
	fresh := func() *synth { return buildSynth(t, rand.New(rand.NewSource(7)), 200, 25) }
	for _, kind := range []string{doorledger.LogKindAudit, doorledger.LogKindUnlock} {
		t.Run(kind, func(t *testing.T) {
			s := fresh()
			k := s.firstOfKind(kind, 120)
			row := s.leaves[k].Row
			row[len(row)-3] ^= 0x01 // one byte of the last field's value
			p, _ := s.check(t, 64)
			if p == nil || p.What != doorledger.LogChanged || p.Index != int64(k) || p.Kind != kind || p.RefID != s.leaves[k].RefID {
				t.Errorf("flipped byte in entry %d: %v", k, p)
			} else if want := fmt.Sprintf("entry %d (%s #%d): changed", k, kind, s.leaves[k].RefID); p.String() != want {
				t.Errorf("message %q, want %q", p, want)
			}

			s = fresh()
			k = s.firstOfKind(kind, 60)
			s.leaves[k].Row = nil
			p, _ = s.check(t, 64)
			if p == nil || p.What != doorledger.LogMissing || p.Index != int64(k) {
				t.Errorf("deleted row of entry %d: %v", k, p)
			} else if want := fmt.Sprintf("entry %d (%s #%d): missing", k, kind, s.leaves[k].RefID); p.String() != want {
				t.Errorf("message %q, want %q", p, want)
			}

			// Two rows trade contents (each keeps its id).
			s = fresh()
			a := s.firstOfKind(kind, 90)
			b := s.firstOfKind(kind, a+1)
			for {
				ra, _ := auditlog.WithID(s.leaves[a].Row, s.leaves[b].RefID)
				if auditlog.LeafHash(ra) != s.leaves[b].Hash {
					break // contents differ
				}
				b = s.firstOfKind(kind, b+1)
			}
			ra, _ := auditlog.WithID(s.leaves[b].Row, s.leaves[a].RefID)
			rb, _ := auditlog.WithID(s.leaves[a].Row, s.leaves[b].RefID)
			s.leaves[a].Row, s.leaves[b].Row = ra, rb
			p, _ = s.check(t, 64)
			if p == nil || p.What != doorledger.LogOutOfOrder || p.Index != int64(a) {
				t.Errorf("rows of entries %d and %d swapped: %v", a, b, p)
			} else if want := fmt.Sprintf("entries out of order at %d", a); p.String()[:len(want)] != want {
				t.Errorf("message %q, want %q…", p, want)
			}
		})
	}

	s := fresh()
	s.leaves[150].Tree[0][3] ^= 1
	if p, _ := s.check(t, 64); p == nil || p.What != doorledger.LogAltered || p.Index != 150 {
		t.Errorf("stored tree hash of entry 150 altered: %v", p)
	}
	s = fresh()
	s.leaves[88].Unlogged = []int64{s.leaves[88].RefID - 1}
	if p, _ := s.check(t, 64); p == nil || p.What != doorledger.LogNotInLog || p.Index != 88 {
		t.Errorf("row inserted before entry 88: %v", p)
	}
	s = fresh()
	s.leaves = append(s.leaves[:77], s.leaves[78:]...)
	if p, _ := s.check(t, 64); p == nil || p.What != doorledger.LogAltered || p.Index != 77 {
		t.Errorf("entry 77 gone from the log: %v", p)
	}
	// The log loses its end (after its last purge record, which would leave
	// the rows it names missing before that).
	s = fresh()
	cut := 0
	for i, l := range s.leaves {
		if l.Kind == doorledger.LogKindPurge {
			cut = i + 1
		}
	}
	if cut >= 199 {
		t.Fatalf("last purge at %d", cut-1)
	}
	s.leaves = s.leaves[:cut]
	if p, _ := s.check(t, 64); p == nil || p.What != doorledger.LogTruncated || p.Index != int64(cut) || p.Size != 200 {
		t.Errorf("log cut at %d: %v", cut, p)
	}
	// A head signed by another key (a rewritten log re-signed by an impostor).
	s = fresh()
	other := mustKey(t, "doorledger-test")
	s.heads[1].Note, _ = auditlog.SignHead(other.Signer(), s.heads[1].Size, s.heads[1].Root)
	if p, _ := s.check(t, 64); p == nil || p.What != doorledger.LogBadHead || p.Size != 50 || p.Index != 49 {
		t.Errorf("head at 50 signed by another key: %v", p)
	}
	// A head whose row was changed after signing.
	s = fresh()
	s.heads[2].Root[0] ^= 1
	if p, _ := s.check(t, 64); p == nil || p.What != doorledger.LogBadHead || p.Size != 75 {
		t.Errorf("head at 75 changed: %v", p)
	}
}

func TestCheckerPurges(t *testing.T) {
	s := buildSynth(t, rand.New(rand.NewSource(3)), 120, 0)
	var purge int = -1
	for i, l := range s.leaves {
		if l.Kind == doorledger.LogKindPurge && len(s.coverOf[i]) > 1 {
			purge = i
			break
		}
	}
	if purge < 0 {
		t.Fatal("no purge of two or more rows")
	}
	first := s.coverOf[purge][0]
	if p, c := s.check(t, 50); p != nil || c.Purged() == 0 {
		t.Fatalf("purged rows: %v (%d purged)", p, c.Purged())
	}
	// Without its purge record, the first row it named is missing.
	row := s.leaves[purge].Row
	s.leaves[purge].Row = nil
	if p, _ := s.check(t, 50); p == nil || p.What != doorledger.LogMissing || p.Index != int64(first) {
		t.Errorf("purge record deleted: %v, want entry %d missing", p, first)
	}
	// A purge record widened to name one more row is not the logged one.
	e, _ := auditlog.Decode(row)
	e.Purge.IDs = append(e.Purge.IDs, doorledger.IDRange{From: 1 << 40, To: 1 << 40})
	s.leaves[purge].Row, _ = auditlog.Encode(e)
	if p, _ := s.check(t, 50); p == nil || p.What != doorledger.LogMissing || p.Index != int64(first) {
		t.Errorf("purge record changed: %v, want entry %d missing", p, first)
	}
}
