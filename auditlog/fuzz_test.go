package auditlog_test

import (
	"bytes"
	"math/rand"
	"slices"
	"testing"
	"time"

	"github.com/doorledger/doorledger"
	"github.com/doorledger/doorledger/auditlog"
)

// Seed corpora live in testdata/fuzz/<FuzzName>; `go test` runs them, and
// `go test -fuzz=FuzzX ./auditlog/` explores from them.

// fuzzTime makes a time the encoding can hold from fuzzed numbers: zero, or
// a microsecond between the years 0 and 9999.
func fuzzTime(us int64) time.Time {
	if us == 0 {
		return time.Time{}
	}
	const lo, hi = -62167219200000000, 253402300799999999 // 0000-01-01 to 9999-12-31, in µs
	span := uint64(hi - lo + 1)
	return time.UnixMicro(lo + int64(uint64(us)%span)).UTC()
}

func fuzzWords(s string) []string {
	var out []string
	for _, w := range bytes.FieldsFunc([]byte(s), func(r rune) bool { return !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '_') }) {
		out = append(out, string(w))
	}
	return out
}

func sameTime(a, b time.Time) bool { return a.Equal(b) && (a.IsZero() || b.Location() == time.UTC) }

// roundTrip checks decode(encode(x)) == x, and that the encoding is canonical:
// its hash is the same when encoded again.
func roundTrip(t *testing.T, e *auditlog.Entry) *auditlog.Entry {
	t.Helper()
	enc, err := auditlog.Encode(e)
	if err != nil {
		t.Fatalf("encode %+v: %v", e, err)
	}
	back, err := auditlog.Decode(enc)
	if err != nil {
		t.Fatalf("decode %q: %v", enc, err)
	}
	again, err := auditlog.Encode(back)
	if err != nil || !bytes.Equal(again, enc) {
		t.Fatalf("re-encoded %q as %q (%v)", enc, again, err)
	}
	return back
}

func FuzzEncodeAudit(f *testing.F) {
	f.Add(int64(567), int64(1793613600123456), int64(0), "admin@example.com", "building.create", int64(7), "building", int64(7), "127.0.0.1", `{"name":"A"}`)
	f.Add(int64(1), int64(0), int64(-1), "", "", int64(0), "", int64(0), "", "")
	f.Fuzz(func(t *testing.T, id, at, actorID int64, actor, action string, buildingID int64, objectType string, objectID int64, ip, detail string) {
		a := &doorledger.AuditEntry{ID: id, At: fuzzTime(at), ActorID: actorID, Actor: actor, Action: action, BuildingID: buildingID,
			ObjectType: objectType, ObjectID: objectID, IP: ip, Detail: detail}
		b := roundTrip(t, &auditlog.Entry{Kind: doorledger.LogKindAudit, Audit: a}).Audit
		if !sameTime(a.At, b.At) {
			t.Fatalf("at %v came back %v", a.At, b.At)
		}
		b.At = a.At
		if *a != *b {
			t.Fatalf("%+v came back %+v", a, b)
		}
		// Injective: changing any one field changes the encoding.
		ea, _ := auditlog.EncodeAudit(a)
		c := *a
		c.Detail += "x"
		if ec, _ := auditlog.EncodeAudit(&c); bytes.Equal(ea, ec) {
			t.Fatal("two details, one encoding")
		}
		c = *a
		c.Actor, c.Action = a.Actor+a.Action[:min(1, len(a.Action))], a.Action[min(1, len(a.Action)):]
		if ec, _ := auditlog.EncodeAudit(&c); (c.Actor != a.Actor) && bytes.Equal(ea, ec) {
			t.Fatal("a byte moved from action to actor, one encoding")
		}
	})
}

func FuzzEncodeUnlock(f *testing.F) {
	f.Add(int64(890), int64(7), int64(3), "SN-1", "e-1", int64(1793613600123456), int64(1793613601123456), "keypad", "pkg 1", "granted", "without_consent outside_hours", "mqtt")
	f.Add(int64(1), int64(0), int64(0), "", "", int64(0), int64(0), "", "", "", "", "")
	f.Fuzz(func(t *testing.T, id, building, device int64, deviceRef, eventID string, occurred, received int64, method, actorRef, result, anomalies, source string) {
		u := &doorledger.UnlockEvent{ID: id, BuildingID: building, DeviceID: device, DeviceRef: deviceRef, EventID: eventID,
			OccurredAt: fuzzTime(occurred), ReceivedAt: fuzzTime(received), Method: method, ActorRef: actorRef,
			Result: doorledger.UnlockResult(result), Anomalies: fuzzWords(anomalies), Source: source}
		b := roundTrip(t, &auditlog.Entry{Kind: doorledger.LogKindUnlock, Unlock: u}).Unlock
		if !sameTime(u.OccurredAt, b.OccurredAt) || !sameTime(u.ReceivedAt, b.ReceivedAt) || !slices.Equal(u.Anomalies, b.Anomalies) {
			t.Fatalf("%+v came back %+v", u, b)
		}
		b.OccurredAt, b.ReceivedAt, b.Anomalies = u.OccurredAt, u.ReceivedAt, u.Anomalies
		if u.ID != b.ID || u.BuildingID != b.BuildingID || u.DeviceID != b.DeviceID || u.DeviceRef != b.DeviceRef || u.EventID != b.EventID ||
			u.Method != b.Method || u.ActorRef != b.ActorRef || u.Result != b.Result || u.Source != b.Source {
			t.Fatalf("%+v came back %+v", u, b)
		}
		// Anomalies are a list, not a string: one more kind is another encoding.
		eu, _ := auditlog.EncodeUnlock(u)
		c := *u
		c.Anomalies = append(slices.Clone(u.Anomalies), "burst")
		if ec, _ := auditlog.EncodeUnlock(&c); bytes.Equal(eu, ec) {
			t.Fatal("two anomaly lists, one encoding")
		}
	})
}

func FuzzEncodePurge(f *testing.F) {
	f.Add(int64(3), int64(1793613600123456), "system", "unlock", int64(7), int64(1698883200000000), []byte{1, 3, 5, 9, 10, 11, 12}, []byte("hash"))
	f.Add(int64(1), int64(0), "", "", int64(0), int64(0), []byte{}, []byte{})
	f.Fuzz(func(t *testing.T, id, at int64, actor, of string, building, before int64, ids, hash []byte) {
		var list []int64
		var next int64
		for _, b := range ids {
			next += 1 + int64(b)
			list = append(list, next)
		}
		p := &doorledger.LogPurge{ID: id, At: fuzzTime(at), Actor: actor, Of: of, BuildingID: building, Before: fuzzTime(before),
			IDs: auditlog.IDRanges(list)}
		copy(p.LeavesHash[:], hash)
		if got := p.Count(); got != int64(len(list)) {
			t.Fatalf("%d ids make ranges %v of %d", len(list), p.IDs, got)
		}
		b := roundTrip(t, &auditlog.Entry{Kind: doorledger.LogKindPurge, Purge: p}).Purge
		if !sameTime(p.At, b.At) || !sameTime(p.Before, b.Before) || !slices.Equal(p.IDs, b.IDs) ||
			p.ID != b.ID || p.Actor != b.Actor || p.Of != b.Of || p.BuildingID != b.BuildingID || p.LeavesHash != b.LeavesHash {
			t.Fatalf("%+v came back %+v", p, b)
		}
	})
}

// FuzzDecode: whatever the bytes, Decode does not panic, and what it accepts
// encodes back to exactly those bytes, so no two encodings share a value.
func FuzzDecode(f *testing.F) {
	good, _ := auditlog.EncodeAudit(&doorledger.AuditEntry{ID: 567, At: at, Actor: "admin@example.com", Action: "user.login", Detail: "{}"})
	f.Add(good)
	f.Add([]byte("doorledger-log/1\nkind 5 audit\nid 02 12\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := auditlog.Decode(b)
		if err != nil {
			return
		}
		enc, err := auditlog.Encode(e)
		if err != nil {
			t.Fatalf("decoded %q but cannot encode it: %v", b, err)
		}
		if !bytes.Equal(enc, b) {
			t.Fatalf("decoded %q, encodes as %q", b, enc)
		}
	})
}

// Tamperings FuzzChecker applies.
const (
	opFlip       = iota // one byte of a row
	opDeleteRow         // a row deleted (no purge)
	opSwapRows          // two rows of a kind trade contents, each keeping its id
	opTree              // a stored tree hash changed
	opDropLeaf          // an entry deleted from the log itself
	opInsertRow         // a row slipped in among logged ones
	opHead              // a signed head's stored root changed
	opSwapLeaves        // two entries of the log itself trade places
	opCount
)

// FuzzChecker builds a log, tampers with it in one way at fuzzed positions,
// and checks the verifier finds the tampering at its exact position (and
// finds nothing in an untouched log).
func FuzzChecker(f *testing.F) {
	for op := range opCount {
		f.Add(int64(op), uint8(40), uint8(8), uint8(op), uint16(17), uint16(29), uint8(5))
	}
	f.Add(int64(99), uint8(0), uint8(1), uint8(opFlip), uint16(0), uint16(0), uint8(0))
	f.Fuzz(func(t *testing.T, seed int64, n, batch, op uint8, k16, m16 uint16, b uint8) {
		size := int(n)%80 + 1
		s := buildSynth(t, rand.New(rand.NewSource(seed)), size, int(b)%10)
		k, m := int(k16)%size, int(m16)%size
		bs := int(batch)%size + 1

		// coverLost: the positions of rows whose purge record stops counting.
		coverLost := func(pos ...int) int {
			first := size
			for _, p := range pos {
				for _, c := range s.coverOf[p] {
					first = min(first, c)
				}
			}
			return first
		}
		l := &s.leaves[k]
		kind, ref := l.Kind, l.RefID
		want, whats := -1, []string(nil) // -1: the log is intact
		switch op % opCount {
		case opFlip:
			if l.Row == nil {
				break
			}
			l.Row[int(b)%len(l.Row)] ^= 1 << (b % 8)
			want, whats = min(k, coverLost(k)), []string{doorledger.LogChanged, doorledger.LogOutOfOrder, doorledger.LogMissing}
		case opDeleteRow:
			if l.Row == nil {
				break
			}
			l.Row = nil
			want, whats = min(k, coverLost(k)), []string{doorledger.LogMissing}
		case opSwapRows:
			o := &s.leaves[m]
			if k == m || l.Kind != o.Kind || l.Row == nil || o.Row == nil {
				break
			}
			rk, err1 := auditlog.WithID(o.Row, l.RefID)
			rm, err2 := auditlog.WithID(l.Row, o.RefID)
			if err1 != nil || err2 != nil {
				t.Fatal(err1, err2)
			}
			if bytes.Equal(rk, l.Row) { // the same content: nothing moved
				break
			}
			l.Row, o.Row = rk, rm
			want, whats = min(k, m, coverLost(k, m)), []string{doorledger.LogOutOfOrder, doorledger.LogChanged, doorledger.LogMissing}
		case opTree:
			j := int(b) % len(l.Tree)
			l.Tree[j][int(b)%32] ^= 0x40
			want, whats = k, []string{doorledger.LogAltered}
			if j == 0 && l.Kind == doorledger.LogKindPurge {
				want, whats = min(k, coverLost(k)), []string{doorledger.LogAltered, doorledger.LogMissing}
			}
		case opDropLeaf:
			lost := size
			if l.Kind == doorledger.LogKindPurge {
				lost = coverLost(k)
			}
			s.leaves = append(s.leaves[:k], s.leaves[k+1:]...)
			want, whats = min(k, lost), []string{doorledger.LogAltered, doorledger.LogTruncated, doorledger.LogMissing}
		case opInsertRow:
			l.Unlogged = []int64{l.RefID + 1}
			want, whats = k, []string{doorledger.LogNotInLog}
		case opHead:
			h := &s.heads[int(b)%len(s.heads)]
			h.Root[0] ^= 1
			want, whats = int(h.Size-1), []string{doorledger.LogBadHead}
		case opSwapLeaves:
			if k == m {
				break
			}
			lo, hi := min(k, m), max(k, m)
			s.leaves[lo], s.leaves[hi] = s.leaves[hi], s.leaves[lo]
			s.leaves[lo].Index, s.leaves[hi].Index = int64(lo), int64(hi)
			p, _ := s.check(t, bs)
			// The tree's hashes place each leaf: the swap shows at the first
			// position, or the next one when the first completes no subtree.
			if p == nil || p.Index < int64(lo) || p.Index > int64(lo+1) {
				t.Fatalf("entries %d and %d of %d swapped in the log: %v", lo, hi, size, p)
			}
			return
		}
		p, _ := s.check(t, bs)
		if want < 0 {
			if p != nil {
				t.Fatalf("op %d at %d: log intact, checker says %s", op%opCount, k, p)
			}
			return
		}
		if p == nil || p.Index != int64(want) || !slices.Contains(whats, p.What) {
			t.Fatalf("op %d at %d/%d (%s #%d) in a log of %d: want %v at %d, have %v", op%opCount, k, m, kind, ref, size, whats, want, p)
		}
	})
}
