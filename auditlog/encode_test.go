package auditlog_test

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/doorledger/doorledger"
	"github.com/doorledger/doorledger/auditlog"
)

var at = time.Date(2026, 11, 2, 10, 0, 0, 123456000, time.UTC)

func TestEncodeAuditSpec(t *testing.T) {
	enc, err := auditlog.EncodeAudit(&doorledger.AuditEntry{ID: 567, At: at, Actor: "admin@example.com", Action: "building.create",
		BuildingID: 7, ObjectType: "building", ObjectID: 7, IP: "127.0.0.1", Detail: "{\"name\":\"A\nB\"}"})
	if err != nil {
		t.Fatal(err)
	}
	want := "doorledger-log/1\n" +
		"kind 5 audit\n" +
		"id 3 567\n" +
		"at 27 2026-11-02T10:00:00.123456Z\n" +
		"actor_id 1 0\n" +
		"actor 17 admin@example.com\n" +
		"action 15 building.create\n" +
		"building_id 1 7\n" +
		"object_type 8 building\n" +
		"object_id 1 7\n" +
		"ip 9 127.0.0.1\n" +
		"detail 14 {\"name\":\"A\nB\"}\n"
	if got := string(enc); got != want {
		t.Errorf("encoding:\n%s\nwant:\n%s", got, want)
	}
	// The leaf hash is RFC 6962's: SHA-256(0x00 || encoding), the same every time.
	if got, want := auditlog.LeafHash(enc).String(), auditlog.LeafHash([]byte(want)).String(); got != want {
		t.Errorf("leaf hash %s, want %s", got, want)
	}
}

func TestEncodeUnlockAndPurgeSpec(t *testing.T) {
	enc, err := auditlog.EncodeUnlock(&doorledger.UnlockEvent{ID: 890, BuildingID: 7, DeviceRef: "SN-1", EventID: "e-1",
		OccurredAt: at, ReceivedAt: at.Add(time.Second), Method: "keypad", Result: doorledger.UnlockGranted,
		Anomalies: []string{"without_consent", "outside_hours"}, Source: "mqtt"})
	if err != nil {
		t.Fatal(err)
	}
	want := "doorledger-log/1\nkind 6 unlock\nid 3 890\nbuilding_id 1 7\ndevice_id 1 0\ndevice_ref 4 SN-1\nevent_id 3 e-1\n" +
		"occurred_at 27 2026-11-02T10:00:00.123456Z\nreceived_at 27 2026-11-02T10:00:01.123456Z\nmethod 6 keypad\n" +
		"actor_ref 0 \nresult 7 granted\nanomalies 29 without_consent,outside_hours\nsource 4 mqtt\n"
	if got := string(enc); got != want {
		t.Errorf("unlock encoding:\n%s\nwant:\n%s", got, want)
	}
	enc, err = auditlog.EncodePurge(&doorledger.LogPurge{ID: 3, At: at, Actor: "system", Of: "unlock", BuildingID: 7,
		Before: time.Date(2023, 11, 2, 0, 0, 0, 0, time.UTC), IDs: []doorledger.IDRange{{From: 1, To: 3}, {From: 5, To: 5}, {From: 9, To: 12}},
		LeavesHash: doorledger.LogHash{0xab, 0xcd}})
	if err != nil {
		t.Fatal(err)
	}
	want = "doorledger-log/1\nkind 5 purge\nid 1 3\nat 27 2026-11-02T10:00:00.123456Z\nactor 6 system\nof 6 unlock\n" +
		"building_id 1 7\nbefore 27 2023-11-02T00:00:00.000000Z\nids 10 1-3,5,9-12\n" +
		"leaves_hash 64 abcd" + strings.Repeat("0", 60) + "\n"
	if got := string(enc); got != want {
		t.Errorf("purge encoding:\n%s\nwant:\n%s", got, want)
	}
}

func TestEncodeRefuses(t *testing.T) {
	for name, e := range map[string]*auditlog.Entry{
		"nanoseconds":   {Kind: "audit", Audit: &doorledger.AuditEntry{At: at.Add(1)}},
		"year 10000":    {Kind: "audit", Audit: &doorledger.AuditEntry{At: time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)}},
		"anomaly comma": {Kind: "unlock", Unlock: &doorledger.UnlockEvent{Anomalies: []string{"a,b"}}},
		"anomaly empty": {Kind: "unlock", Unlock: &doorledger.UnlockEvent{Anomalies: []string{""}}},
		"ranges touch":  {Kind: "purge", Purge: &doorledger.LogPurge{IDs: []doorledger.IDRange{{From: 1, To: 2}, {From: 3, To: 3}}}},
		"ranges order":  {Kind: "purge", Purge: &doorledger.LogPurge{IDs: []doorledger.IDRange{{From: 5, To: 5}, {From: 1, To: 1}}}},
		"range zero":    {Kind: "purge", Purge: &doorledger.LogPurge{IDs: []doorledger.IDRange{{From: 0, To: 1}}}},
		"kind mismatch": {Kind: "unlock", Audit: &doorledger.AuditEntry{}},
	} {
		if enc, err := auditlog.Encode(e); err == nil {
			t.Errorf("%s: encoded as %q, want an error", name, enc)
		}
	}
}

func TestEncodeTimeZones(t *testing.T) {
	paris, err := time.LoadLocation("Europe/Paris")
	if err != nil {
		t.Skip("no time zone data:", err)
	}
	a, _ := auditlog.EncodeAudit(&doorledger.AuditEntry{ID: 1, At: at})
	b, _ := auditlog.EncodeAudit(&doorledger.AuditEntry{ID: 1, At: at.In(paris)})
	if !bytes.Equal(a, b) {
		t.Errorf("the same instant in two zones encodes differently:\n%s\n%s", a, b)
	}
}

func TestDecodeRefusesNonCanonical(t *testing.T) {
	good, _ := auditlog.EncodeAudit(&doorledger.AuditEntry{ID: 12, At: at, Actor: "a", Detail: "{}"})
	if _, err := auditlog.Decode(good); err != nil {
		t.Fatal(err)
	}
	for name, mutate := range map[string]func(string) string{
		"version 2":       func(s string) string { return strings.Replace(s, "/1\n", "/2\n", 1) },
		"leading zero id": func(s string) string { return strings.Replace(s, "id 2 12\n", "id 3 012\n", 1) },
		"plus id":         func(s string) string { return strings.Replace(s, "id 2 12\n", "id 3 +12\n", 1) },
		"length zero pad": func(s string) string { return strings.Replace(s, "id 2 12\n", "id 02 12\n", 1) },
		"short length":    func(s string) string { return strings.Replace(s, "actor 1 a\n", "actor 0 a\n", 1) },
		"long length":     func(s string) string { return strings.Replace(s, "actor 1 a\n", "actor 2 a\n", 1) },
		"time other form": func(s string) string {
			return strings.Replace(s, "at 27 2026-11-02T10:00:00.123456Z", "at 25 2026-11-02T10:00:00.123456", 1)
		},
		"zero time": func(s string) string {
			return strings.Replace(s, "2026-11-02T10:00:00.123456Z", "0001-01-01T00:00:00.000000Z", 1)
		},
		"field order": func(s string) string {
			return strings.Replace(s, "actor_id 1 0\nactor 1 a\n", "actor 1 a\nactor_id 1 0\n", 1)
		},
		"trailing bytes":   func(s string) string { return s + "x" },
		"missing field":    func(s string) string { return strings.TrimSuffix(s, "detail 2 {}\n") },
		"unknown kind":     func(s string) string { return strings.Replace(s, "kind 5 audit", "kind 5 audiT", 1) },
		"negative zero":    func(s string) string { return strings.Replace(s, "actor_id 1 0\n", "actor_id 2 -0\n", 1) },
		"CRLF":             func(s string) string { return strings.ReplaceAll(s, "\n", "\r\n") },
		"space in name":    func(s string) string { return strings.Replace(s, "object_id", "object id", 1) },
		"no final newline": func(s string) string { return strings.TrimSuffix(s, "\n") },
	} {
		bad := mutate(string(good))
		if bad == string(good) {
			t.Fatalf("%s: mutation did nothing", name)
		}
		if e, err := auditlog.Decode([]byte(bad)); err == nil {
			t.Errorf("%s: decoded %q as %+v, want an error", name, bad, e.Audit)
		}
	}
}

func TestIDRanges(t *testing.T) {
	r := auditlog.IDRanges([]int64{9, 1, 2, 3, 5, 3, 10, 12, 11})
	s, err := auditlog.FormatIDRanges(r)
	if err != nil || s != "1-3,5,9-12" {
		t.Fatalf("ranges %v: %q %v", r, s, err)
	}
	back, err := auditlog.ParseIDRanges(s)
	if err != nil || len(back) != 3 || back[2] != (doorledger.IDRange{From: 9, To: 12}) {
		t.Fatalf("parse %q: %v %v", s, back, err)
	}
	if n := (&doorledger.LogPurge{IDs: back}).Count(); n != 8 {
		t.Errorf("count %d, want 8", n)
	}
	for _, bad := range []string{"1-1", "3-1", "1,1", "1-2,3", "01", "1,", ",1", "-1", "1--2", "a", "0", "5,3"} {
		if r, err := auditlog.ParseIDRanges(bad); err == nil {
			t.Errorf("ParseIDRanges(%q) = %v, want an error", bad, r)
		}
	}
}

func TestWithID(t *testing.T) {
	a, _ := auditlog.EncodeAudit(&doorledger.AuditEntry{ID: 1, At: at, Actor: "x"})
	b, _ := auditlog.EncodeAudit(&doorledger.AuditEntry{ID: 2, At: at, Actor: "x"})
	got, err := auditlog.WithID(a, 2)
	if err != nil || !bytes.Equal(got, b) {
		t.Fatalf("WithID: %q %v, want %q", got, err, b)
	}
}
