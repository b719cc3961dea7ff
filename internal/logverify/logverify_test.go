package logverify

import (
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/doorledger/doorledger"
	"github.com/doorledger/doorledger/auditlog"
)

// TestJoin: each stored leaf gets its row as it is now, its stored tree
// hashes, and the rows between the previous leaf of its kind and it that the
// log does not hold; a leaf of an unknown encoding gets no row; last moves.
func TestJoin(t *testing.T) {
	h := func(b byte) doorledger.LogHash { return doorledger.LogHash{b} }
	stored := []Stored{
		{Idx: 4, Kind: "audit", Ref: 10, Enc: auditlog.Version, Hash: h(1)},
		{Idx: 5, Kind: "unlock", Ref: 7, Enc: auditlog.Version, Hash: h(2)},
		{Idx: 6, Kind: "audit", Ref: 13, Enc: auditlog.Version + 1, Hash: h(3)},
		{Idx: 7, Kind: "audit", Ref: 14, Enc: auditlog.Version, Hash: h(4)}, // its row is gone
	}
	if got := Upto(stored); got["audit"] != 14 || got["unlock"] != 7 || len(got) != 2 {
		t.Errorf("Upto = %v", got)
	}
	bad := errors.New("not an integer")
	rows := map[string][]Row{
		"audit":  {{ID: 10, Enc: []byte("a10")}, {ID: 11, Enc: []byte("a11")}, {ID: 12, Err: bad}, {ID: 13, Enc: []byte("a13")}},
		"unlock": {{ID: 7, Enc: []byte("u7"), Red: &auditlog.LeafRedaction{}}},
	}
	tree := map[int64]doorledger.LogHash{}
	for i := range int64(16) {
		tree[i] = h(byte(100 + i))
	}
	last := map[string]int64{"audit": 9, "unlock": 6}
	batch := Join(stored, rows, tree, last)
	if len(batch) != 4 {
		t.Fatalf("%d leaves, want 4", len(batch))
	}
	for i, l := range batch {
		if l.Index != stored[i].Idx || l.Kind != stored[i].Kind || l.RefID != stored[i].Ref || l.Hash != stored[i].Hash {
			t.Errorf("leaf %d: %+v, want stored %+v", i, l, stored[i])
		}
		var want []doorledger.LogHash
		for x := auditlog.StoredHashIndex(0, l.Index); x < auditlog.StoredHashCount(l.Index+1); x++ {
			want = append(want, tree[x])
		}
		if !slices.Equal(l.Tree, want) {
			t.Errorf("leaf %d: tree %v, want %v", i, l.Tree, want)
		}
	}
	if string(batch[0].Row) != "a10" || batch[0].RowErr != nil || batch[0].Unlogged != nil {
		t.Errorf("leaf 4: %+v", batch[0])
	}
	if string(batch[1].Row) != "u7" || batch[1].Redaction == nil {
		t.Errorf("leaf 5: %+v", batch[1])
	}
	if batch[2].Row != nil || fmt.Sprint(batch[2].RowErr) != fmt.Sprintf("unknown encoding version %d", auditlog.Version+1) ||
		!slices.Equal(batch[2].Unlogged, []int64{11, 12}) {
		t.Errorf("leaf 6: %+v, want no row, the version's error and 11, 12 unlogged", batch[2])
	}
	if batch[3].Row != nil || batch[3].RowErr != nil || batch[3].Unlogged != nil {
		t.Errorf("leaf 7: %+v, want no row", batch[3])
	}
	if last["audit"] != 14 || last["unlock"] != 7 {
		t.Errorf("last = %v", last)
	}
}

// TestUnsequenced: the oldest rows are named, the rest counted, and the
// problem is set only when there is none already (golden).
func TestUnsequenced(t *testing.T) {
	at := time.Date(2026, 12, 7, 9, 0, 0, 0, time.UTC)
	v := &doorledger.LogVerification{Entries: 40}
	for i := range 12 {
		v.Overdue = append(v.Overdue, doorledger.LogRowRef{Kind: "unlock", ID: int64(100 - i), At: at.Add(time.Duration(12-i) * time.Second)})
	}
	v.Overdue = append(v.Overdue, doorledger.LogRowRef{Kind: "audit", ID: 3, At: at})
	Unsequenced(v, 15, "2026-12-07T10:00:00.000000Z")
	if len(v.Overdue) != MaxOverdue || v.Overdue[0].Kind != "audit" || v.Overdue[1].ID != 89 {
		t.Errorf("overdue %v, want the %d oldest, oldest first", v.Overdue, MaxOverdue)
	}
	want := "15 rows committed more than 1m0s before the database's newest row (2026-12-07T10:00:00.000000Z) are not in the log: " +
		"audit #3 (2026-12-07T09:00:00.000000Z), unlock #89 (2026-12-07T09:00:01.000000Z), unlock #90 (2026-12-07T09:00:02.000000Z), " +
		"unlock #91 (2026-12-07T09:00:03.000000Z), unlock #92 (2026-12-07T09:00:04.000000Z), unlock #93 (2026-12-07T09:00:05.000000Z), " +
		"unlock #94 (2026-12-07T09:00:06.000000Z), unlock #95 (2026-12-07T09:00:07.000000Z), unlock #96 (2026-12-07T09:00:08.000000Z), " +
		"unlock #97 (2026-12-07T09:00:09.000000Z) and 5 more"
	p := v.Problem
	if p == nil || p.What != doorledger.LogUnsequenced || p.Index != 40 || p.Kind != "audit" || p.RefID != 3 || p.Detail != want {
		t.Errorf("problem %+v, want detail\n%s", p, want)
	}

	first := &doorledger.LogProblem{What: "changed"}
	v = &doorledger.LogVerification{Problem: first, Overdue: []doorledger.LogRowRef{{Kind: "audit", ID: 1, At: at}}}
	Unsequenced(v, 1, "2026-12-07T10:00:00.000000Z")
	if v.Problem != first {
		t.Errorf("problem %+v, want the first one kept", v.Problem)
	}
}
