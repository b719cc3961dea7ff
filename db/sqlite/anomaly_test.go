package sqlite_test

import (
	"context"
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/doorledger/doorledger"
	"github.com/doorledger/doorledger/db/dbtest"
	"github.com/doorledger/doorledger/db/sqlite"
)

func ghostEv(building int64, id string, w *unlockWorld) doorledger.UnlockEvent {
	return dbtest.GhostEv(building, id, w.UnlockWorld)
}

// ack1 and ackN acknowledge, keeping only the error.
func ack1(w *unlockWorld, ctx context.Context, id int64, note string) error {
	_, err := w.svc.AcknowledgeAnomaly(ctx, id, note)
	return err
}

func ackN(w *unlockWorld, ctx context.Context, building int64, ids []int64, note string) error {
	_, err := w.svc.AcknowledgeAnomalies(ctx, building, ids, note)
	return err
}

func wantErr(t *testing.T, what string, err error, code string) {
	t.Helper()
	if got := doorledger.ErrorCode(err); got != code {
		t.Errorf("%s: %v (code %q), want %s", what, err, got, code)
	}
}

func TestAnomalyAcknowledge(t *testing.T) {
	w := newUnlockWorld(t, "America/New_York", time.Time{})
	dev, _ := w.enabledDevice(t, w.A)
	w.record(t, unlockEv(dev, "fine", w.Now.Add(-2*time.Minute), doorledger.UnlockGranted),
		ghostEv(w.A, "gh-1", w), ghostEv(w.A, "gh-2", w), ghostEv(w.A, "gh-3", w), ghostEv(w.B, "gh-b", w))
	fine, gh1, gh2, gh3 := w.EventID(t, w.A, "fine"), w.EventID(t, w.A, "gh-1"), w.EventID(t, w.A, "gh-2"), w.EventID(t, w.A, "gh-3")
	ghB := w.EventID(t, w.B, "gh-b")
	if e := w.Event(t, w.A, "gh-1"); !e.OpenAnomaly() || e.Acknowledged() {
		t.Fatalf("gh-1 recorded as %+v, want an open anomaly", e)
	}
	acks := func() int { return w.count(t, `SELECT COUNT(*) FROM anomaly_acks`) }
	journal := func() int {
		return w.count(t, `SELECT COUNT(*) FROM audit_entries WHERE action = 'anomaly.acknowledge'`)
	}

	// Who may: the building's managers and admins. The board sees but may
	// not; installers, other buildings' managers and unknown ids are not found.
	const note = "device removed from the lobby panel"
	wantErr(t, "board", ack1(w, uctx(w.BoardA), gh1, note), doorledger.EFORBIDDEN)
	wantErr(t, "installer", ack1(w, uctx(w.InstA), gh1, note), doorledger.ENOTFOUND)
	wantErr(t, "manager of B", ack1(w, uctx(w.MgrB), gh1, note), doorledger.ENOTFOUND)
	wantErr(t, "anonymous", ack1(w, context.Background(), gh1, note), doorledger.EUNAUTHORIZED)
	wantErr(t, "no such event", ack1(w, uctx(w.MgrA), ghB+1000, note), doorledger.ENOTFOUND)
	wantErr(t, "manager of A, event of B", ack1(w, uctx(w.MgrA), ghB, note), doorledger.ENOTFOUND)
	if err := ack1(w, uctx(w.MgrB), gh1, note); doorledger.ErrorMessage(err) != "Event not found." {
		t.Errorf("manager of B: %q, want the event not found (not the building)", doorledger.ErrorMessage(err))
	}

	// What: a note of one line, 1 to 500 characters, on an anomalous event.
	for _, bad := range []string{"", "   ", strings.Repeat("x", 501), strings.Repeat("ż", 501), "removed\nand reported", "bad \xff byte"} {
		err := ack1(w, uctx(w.MgrA), gh1, bad)
		if doorledger.ErrorCode(err) != doorledger.EINVALID || doorledger.ErrorFields(err)["note"] == "" {
			t.Errorf("note %.20q: %v, want EINVALID beside the note", bad, err)
		}
	}
	err := ack1(w, uctx(w.MgrA), fine, note)
	wantErr(t, "not anomalous", err, doorledger.EINVALID)
	if want := fmt.Sprintf("Event %d is not flagged as an anomaly", fine); !strings.Contains(doorledger.ErrorMessage(err), want) {
		t.Errorf("not anomalous: %q, want %q", doorledger.ErrorMessage(err), want)
	}
	if n, j := acks(), journal(); n != 0 || j != 0 {
		t.Fatalf("refusals wrote %d acknowledgements, %d journal entries", n, j)
	}

	// Acknowledged: the event carries who, when and the note (trimmed).
	got, err := w.svc.AcknowledgeAnomaly(uctx(w.MgrA), gh1, "  "+note+"  ")
	if err != nil {
		t.Fatal(err)
	}
	e := w.Event(t, w.A, "gh-1")
	if got.ID != gh1 || !got.AcknowledgedAt.Equal(e.AcknowledgedAt) || got.AcknowledgedBy != e.AcknowledgedBy || got.AckNote != e.AckNote {
		t.Errorf("returned %+v, stored %+v", got, e)
	}
	if !e.AcknowledgedAt.Equal(*w.Now) || e.AcknowledgedBy != w.MgrAEmail || e.AckNote != note || e.OpenAnomaly() ||
		!slices.Equal(e.Anomalies, []string{doorledger.AnomalyUnknownDevice}) {
		t.Fatalf("acknowledged event %+v", e)
	}
	// Its journal entry, in the same transaction: who, which event, what was done.
	entry := w.JournalEntry(t, 0, "anomaly.acknowledge")
	actor, building, objType, object, detail := entry.Actor, entry.BuildingID, entry.ObjectType, entry.ObjectID, entry.Detail
	var d struct {
		Note      string   `json:"note"`
		Anomalies []string `json:"anomalies"`
		EventID   string   `json:"event_id"`
		DeviceRef string   `json:"device_ref"`
	}
	if err := json.Unmarshal([]byte(detail), &d); err != nil {
		t.Fatal(err)
	}
	if actor != w.MgrAEmail || building != w.A || objType != "unlock_event" || object != gh1 ||
		d.Note != note || !slices.Equal(d.Anomalies, []string{"unknown_device"}) || d.EventID != "gh-1" || d.DeviceRef != "GHOST-7" {
		t.Errorf("journal entry: %s %d %s %d %s", actor, building, objType, object, detail)
	}

	// Once only.
	err = ack1(w, uctx(w.Admin), gh1, "again")
	wantErr(t, "again", err, doorledger.ECONFLICT)
	if msg := doorledger.ErrorMessage(err); !strings.Contains(msg, w.MgrAEmail) || !regexp.MustCompile(`\d{4}-\d\d-\d\d \d\d:\d\d E[SD]T`).MatchString(msg) {
		t.Errorf("again: %q, want who acknowledged it and when", msg)
	}

	// Open vs all: the history's anomalies, the open ones, and their count.
	list := func(f doorledger.UnlockFilter) []string {
		t.Helper()
		f.BuildingID = w.A
		page, err := w.svc.History(uctx(w.BoardA), f)
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, e := range page.Events {
			ids = append(ids, e.EventID)
		}
		slices.Sort(ids)
		return ids
	}
	if got := list(doorledger.UnlockFilter{AnomaliesOnly: true}); !slices.Equal(got, []string{"gh-1", "gh-2", "gh-3"}) {
		t.Errorf("anomalies: %q", got)
	}
	if got := list(doorledger.UnlockFilter{OpenOnly: true}); !slices.Equal(got, []string{"gh-2", "gh-3"}) {
		t.Errorf("open anomalies: %q", got)
	}
	if got := list(doorledger.UnlockFilter{OpenOnly: true, Anomaly: doorledger.AnomalyUnknownDevice}); !slices.Equal(got, []string{"gh-2", "gh-3"}) {
		t.Errorf("open unknown-device anomalies: %q", got)
	}
	if got := list(doorledger.UnlockFilter{OpenOnly: true, DeviceID: dev}); len(got) != 0 {
		t.Errorf("open anomalies of the consented device: %q", got)
	}
	for _, c := range []struct{ max, want int }{{0, 2}, {10, 2}, {1, 1}} {
		if n, err := w.svc.CountOpenAnomalies(uctx(w.BoardA), w.A, c.max); err != nil || n != c.want {
			t.Errorf("count open (max %d): %d %v, want %d", c.max, n, err, c.want)
		}
	}
	if _, err := w.svc.CountOpenAnomalies(uctx(w.InstA), w.A, 0); doorledger.ErrorCode(err) != doorledger.ENOTFOUND {
		t.Errorf("installer counts: %v", err)
	}
	if n, err := w.svc.CountOpenAnomalies(uctx(w.MgrB), w.B, 0); err != nil || n != 1 {
		t.Errorf("count open in B: %d %v", n, err)
	}

	// Several at once: all or nothing, the refusal naming the event.
	for _, c := range []struct {
		name string
		ids  []int64
		code string
		msg  string
	}{
		{"one already acknowledged", []int64{gh2, gh3, gh1}, doorledger.ECONFLICT, fmt.Sprintf("Event %d was already acknowledged", gh1)},
		{"one not anomalous", []int64{gh2, fine}, doorledger.EINVALID, fmt.Sprintf("Event %d is not flagged", fine)},
		{"one of another building", []int64{gh2, ghB}, doorledger.ENOTFOUND, fmt.Sprintf("Event %d not found", ghB)},
		{"none", nil, doorledger.EINVALID, "Choose the anomalies"},
		{"too many", make([]int64, doorledger.MaxAckEvents+1), doorledger.EINVALID, "at most 500"},
	} {
		if c.name == "too many" {
			for i := range c.ids {
				c.ids[i] = int64(i + 1)
			}
		}
		err := ackN(w, uctx(w.MgrA), w.A, c.ids, "burst: courier's account reported")
		if doorledger.ErrorCode(err) != c.code || !strings.Contains(doorledger.ErrorMessage(err), c.msg) {
			t.Errorf("%s: %v, want %s %q", c.name, err, c.code, c.msg)
		}
	}
	wantErr(t, "several as the board", ackN(w, uctx(w.BoardA), w.A, []int64{gh2}, note), doorledger.EFORBIDDEN)
	if n, j := acks(), journal(); n != 1 || j != 1 {
		t.Fatalf("refused batches wrote: %d acknowledgements, %d journal entries; want 1, 1", n, j)
	}
	batch, err := w.svc.AcknowledgeAnomalies(uctx(w.MgrA), w.A, []int64{gh3, gh2, gh3}, "burst: courier's account reported")
	if err != nil {
		t.Fatal(err)
	}
	if len(batch) != 2 || batch[0].ID != gh2 || batch[1].ID != gh3 || batch[1].AckNote != "burst: courier's account reported" || batch[0].AcknowledgedBy != w.MgrAEmail {
		t.Errorf("batch returned %+v", batch)
	}
	if n, j := acks(), journal(); n != 3 || j != 3 {
		t.Fatalf("after the batch: %d acknowledgements, %d journal entries; want 3, 3 (one each)", n, j)
	}
	if got := list(doorledger.UnlockFilter{OpenOnly: true}); len(got) != 0 {
		t.Errorf("open after acknowledging all: %q", got)
	}
	if n, err := w.svc.CountOpenAnomalies(uctx(w.MgrA), w.A, 0); err != nil || n != 0 {
		t.Errorf("count open after all: %d %v", n, err)
	}
	// An admin reaches every building.
	if err := ack1(w, uctx(w.Admin), ghB, "false alarm: test unit"); err != nil {
		t.Fatal(err)
	}
	if e := w.Event(t, w.B, "gh-b"); e.AcknowledgedBy != w.Admin.Email {
		t.Errorf("B's event acknowledged by %q", e.AcknowledgedBy)
	}
}

// The database itself keeps acknowledgements append-only, and accepts one
// only for an anomalous event of the same building; the retention purge still
// deletes an acknowledged event, and the acknowledgement stays.
func TestAnomalyAcksAppendOnly(t *testing.T) {
	w := newUnlockWorld(t, "UTC", time.Time{})
	dev, _ := w.enabledDevice(t, w.A)
	old := w.Now.AddDate(0, 0, -40)
	oldGhost := ghostEv(w.A, "gh-old", w)
	oldGhost.OccurredAt, oldGhost.ReceivedAt = old, old
	w.record(t, unlockEv(dev, "fine", w.Now.Add(-time.Minute), doorledger.UnlockGranted), ghostEv(w.A, "gh-1", w), ghostEv(w.A, "gh-2", w), oldGhost)
	fine, gh1, gh2, ghOld := w.EventID(t, w.A, "fine"), w.EventID(t, w.A, "gh-1"), w.EventID(t, w.A, "gh-2"), w.EventID(t, w.A, "gh-old")
	if err := ackN(w, uctx(w.MgrA), w.A, []int64{gh1, ghOld}, "courier's account reported"); err != nil {
		t.Fatal(err)
	}
	insert := `INSERT INTO anomaly_acks (event_id, building_id, acked_at, actor, note) VALUES (?, ?, '2026-01-01T00:00:00.000000Z', 'sql', 'x')`
	for _, c := range []struct {
		what  string
		query string
		args  []any
	}{
		{"change a note", `UPDATE anomaly_acks SET note = 'nothing happened' WHERE event_id = ?`, []any{gh1}},
		{"delete one", `DELETE FROM anomaly_acks WHERE event_id = ?`, []any{gh1}},
		{"a second for an event", insert, []any{gh1, w.A}},
		{"one for an event that is not anomalous", insert, []any{fine, w.A}},
		{"one for an event that does not exist", insert, []any{gh1 + 1000, w.A}},
		{"one under another building", insert, []any{gh2, w.B}},
		{"an empty note", `INSERT INTO anomaly_acks (event_id, building_id, acked_at, actor, note) VALUES (?, ?, 'x', 'sql', '  ')`, []any{gh2, w.A}},
	} {
		if _, err := w.d.Writer().Exec(c.query, c.args...); err == nil {
			t.Errorf("%s: allowed", c.what)
		}
	}
	if e := w.Event(t, w.A, "gh-1"); e.AckNote != "courier's account reported" {
		t.Errorf("note now %q", e.AckNote)
	}
	if e := w.Event(t, w.A, "gh-2"); !e.OpenAnomaly() {
		t.Errorf("gh-2 acknowledged behind the service's back: %+v", e)
	}
	// The refusals above are the triggers' and constraints', not a typo's: the
	// same insert is accepted for an open anomaly of the building.
	if _, err := w.d.Writer().Exec(insert, gh2, w.A); err != nil {
		t.Fatalf("a well-formed acknowledgement refused: %v", err)
	}

	if _, err := w.svc.UpdateUnlockSettings(uctx(w.MgrA), w.A, doorledger.UnlockSettings{RetentionDays: 30, BurstCount: 20, BurstMinutes: 10}); err != nil {
		t.Fatal(err)
	}
	if n, err := w.svc.Purge(sys(), *w.Now); err != nil || n != 1 {
		t.Fatalf("purge: %d %v, want the old event deleted", n, err)
	}
	if n := w.count(t, `SELECT COUNT(*) FROM unlock_events WHERE id = ?`, ghOld); n != 0 {
		t.Fatalf("the old acknowledged event was not purged")
	}
	if n := w.count(t, `SELECT COUNT(*) FROM anomaly_acks WHERE event_id IN (?, ?)`, gh1, ghOld); n != 2 {
		t.Fatalf("acknowledgements left: %d, want both", n)
	}
}

// Each acknowledgement's journal entry goes into the verifiable log, which
// still verifies.
func TestAnomalyAckInLog(t *testing.T) {
	w := newUnlockWorld(t, "UTC", time.Time{})
	w.record(t, ghostEv(w.A, "gh-1", w))
	logs := sqlite.NewLogService(w.d, mustLogKey(t))
	if _, err := logs.SignHead(sys()); err != nil {
		t.Fatal(err)
	}
	if err := ack1(w, uctx(w.MgrA), w.EventID(t, w.A, "gh-1"), "false alarm"); err != nil {
		t.Fatal(err)
	}
	head, err := logs.SignHead(sys())
	if err != nil {
		t.Fatal(err)
	}
	entry := w.JournalEntry(t, 0, "anomaly.acknowledge").ID
	var idx int64
	if err := w.d.Reader().QueryRow(`SELECT idx FROM log_leaves WHERE kind = 'audit' AND ref_id = ?`, entry).Scan(&idx); err != nil {
		t.Fatalf("the acknowledgement's journal entry is not in the log: %v", err)
	}
	if idx >= head.Size {
		t.Errorf("leaf %d outside the signed head of size %d", idx, head.Size)
	}
	v, err := logs.Verify(sys())
	if err != nil || !v.OK() {
		t.Fatalf("verify: %+v %v", v, err)
	}
}
