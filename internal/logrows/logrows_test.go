package logrows

import (
	"bytes"
	"fmt"
	"testing"
	"time"

	"github.com/doorledger/doorledger"
	"github.com/doorledger/doorledger/auditlog"
)

// timeOf reads times as a driver that hands time.Time (nil: none).
func timeOf(name string, v any) (time.Time, error) {
	switch v := v.(type) {
	case nil:
		return time.Time{}, nil
	case time.Time:
		return v, nil
	}
	return time.Time{}, fmt.Errorf("%s: %T is not a time", name, v)
}

var at = time.Date(2026, 7, 1, 16, 30, 5, 123456000, time.UTC)

func unlockRow(extra ...any) *Columns {
	names := []string{"id", "building_id", "device_id", "device_ref", "event_id", "occurred_at", "received_at",
		"method", "actor_ref", "result", "anomalies", "source", "redaction_id", "leaf", "redacted"}
	c := NewColumns(names[:12+len(extra)], timeOf)
	copy(c.Vals, []any{int64(7), int64(3), int64(0), "GHOST-7", "e1", at, at, "keypad", "courier-1", "granted", int64(4), "mqtt"})
	copy(c.Vals[12:], extra)
	return c
}

// An audit row encodes as auditlog encodes the entry; a value of the wrong
// type makes the row unencodable, naming the column.
func TestEncodeAudit(t *testing.T) {
	names := []string{"id", "at", "actor_id", "actor", "action", "building_id", "object_type", "object_id", "ip", "detail"}
	c := NewColumns(names, timeOf)
	copy(c.Vals, []any{int64(9), at, int64(2), "mgr@example.com", "device.offline", int64(3), "device", int64(5), "", `{"seconds":60}`})
	if id, err := c.Begin(); err != nil || id != 9 {
		t.Fatalf("Begin = %d %v", id, err)
	}
	got, err := EncodeAudit(c)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := auditlog.EncodeAudit(&doorledger.AuditEntry{ID: 9, At: at, ActorID: 2, Actor: "mgr@example.com", Action: "device.offline",
		BuildingID: 3, ObjectType: "device", ObjectID: 5, Detail: `{"seconds":60}`})
	if !bytes.Equal(got, want) {
		t.Errorf("encoded %q, want %q", got, want)
	}

	c.Vals[3], c.Vals[1] = int64(1), "2026-07-01"
	c.Begin()
	if _, err := EncodeAudit(c); err == nil || err.Error() != "at: string is not a time" {
		t.Errorf("wrong types: %v, want the first named", err)
	}
	c.Vals[0] = "9"
	if _, err := c.Begin(); err == nil {
		t.Error("a row id of text begun")
	}
}

// An unlock row's anomalies are bits of the known kinds; what a redaction
// recorded of it comes out beside its encoding.
func TestEncodeUnlock(t *testing.T) {
	c := unlockRow(int64(0), nil, nil)
	c.Begin()
	if _, err := EncodeUnlock(c); err != nil || c.Redaction() != nil {
		t.Fatalf("EncodeUnlock: %v, redaction %+v", err, c.Redaction())
	}
	u, _ := Unlock(c)
	if len(u.Anomalies) != 1 || u.DeviceRef != "GHOST-7" || !u.OccurredAt.Equal(at) {
		t.Errorf("unlock read as %+v", u)
	}
	c.Vals[10] = int64(64)
	c.Begin()
	if _, err := EncodeUnlock(c); err == nil || err.Error() != "anomalies: unknown flags 64" {
		t.Errorf("unknown bits: %v", err)
	}

	leaf, red := bytes.Repeat([]byte{1}, 32), bytes.Repeat([]byte{2}, 32)
	c = unlockRow(int64(40), leaf, red)
	c.Begin()
	if _, err := EncodeUnlock(c); err != nil {
		t.Fatal(err)
	}
	if x := c.Redaction(); x == nil || x.By != 40 || !x.Recorded || x.Logged[0] != 1 || x.Redacted[0] != 2 {
		t.Errorf("redaction %+v", x)
	}
	c.Begin()
	if c.Redaction() != nil {
		t.Error("Begin kept the last row's redaction")
	}
}

// A redaction checks the row against its leaf, and its journal detail
// names the events and their digest.
func TestRedactLeaves(t *testing.T) {
	c := unlockRow(bytes.Repeat([]byte{0}, 32))
	c.Begin()
	if _, err := RedactLeaves(c); err == nil || err.Error() != "the row does not match its leaf" {
		t.Errorf("wrong leaf: %v", err)
	}
	u, _ := Unlock(c)
	enc, _ := auditlog.EncodeUnlock(u)
	leaf := auditlog.LeafHash(enc)
	c.Vals[12] = leaf[:]
	c.Begin()
	leaves, err := RedactLeaves(c)
	if err != nil {
		t.Fatal(err)
	}
	red := auditlog.RedactUnlock(*u)
	renc, _ := auditlog.EncodeUnlock(&red)
	if r := auditlog.LeafHash(renc); !bytes.Equal(leaves, append(leaf[:], r[:]...)) {
		t.Errorf("leaves %x", leaves)
	}

	var rs Redactions
	rs.Add(7, leaves)
	rs.Add(8, leaves)
	d, err := rs.Detail("2026-04-01T00:00:00.000000Z")
	if err != nil {
		t.Fatal(err)
	}
	if len(rs.Leaves) != 2 || rs.Leaves[1].UnlockID != 8 || rs.Leaves[0].Logged != leaf || d["events"] != int64(2) || d["ids"] != "7-8" ||
		d["before"] != "2026-04-01T00:00:00.000000Z" || d["digest"] == "" {
		t.Errorf("redactions %+v, detail %v", rs.Leaves, d)
	}
}

// A purge's hash takes the leaves in the log's order, whatever the ids'
// order; an event not in the log is refused.
func TestUnlockPurgeHash(t *testing.T) {
	logged := map[int64]doorledger.LogLeaf{
		5: {RefID: 5, Index: 30, Hash: doorledger.LogHash{5}},
		6: {RefID: 6, Index: 12, Hash: doorledger.LogHash{6}},
	}
	got, err := UnlockPurgeHash([]int64{5, 6}, logged)
	if err != nil {
		t.Fatal(err)
	}
	var want auditlog.PurgeHasher
	want.Add(12, doorledger.LogHash{6})
	want.Add(30, doorledger.LogHash{5})
	if got != want.Sum() {
		t.Errorf("hash %v, want the leaves by index", got)
	}
	if _, err := UnlockPurgeHash([]int64{5, 7}, logged); err == nil || err.Error() != "log purge: unlock event 7 is not in the log; it cannot be purged" {
		t.Errorf("an event not logged: %v", err)
	}
}
