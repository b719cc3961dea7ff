package dbtest

import (
	"context"
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/doorledger/doorledger"
)

// Ingest and anomaly acknowledgements, moved from package sqlite's own tests
// (issue 15): they speak only through the services.

var unlockIngestTests = []test{
	{"UnlockIdempotent", testUnlockIdempotent},
	{"UnlockBatchAllOrNothing", testUnlockBatchAllOrNothing},
	{"UnlockGroupCommitConcurrency", testUnlockGroupCommitConcurrency},
	{"AnomalyAcknowledge", testAnomalyAcknowledge},
	{"AnomalyAckInLog", testAnomalyAckInLog},
	{"UnlockUnconsentedDeniedIsAnomaly", testUnlockUnconsentedDeniedIsAnomaly},
	{"UnlockAnomalies", testUnlockAnomalies},
	{"UnlockAlerts", testUnlockAlerts},
}

// ackN acknowledges anomalous events of a building, keeping only the error.
func ackN(w *UnlockWorld, ctx context.Context, building int64, ids []int64, note string) error {
	_, err := w.Unlocks.AcknowledgeAnomalies(ctx, building, ids, note)
	return err
}

// An event is stored once however often, and by however many callers at
// once, it is sent; the key is the device (or, unknown, the building and
// reference) and the event id.
func testUnlockIdempotent(t *testing.T, newServices NewServices) {
	w := NewUnlockWorld(t, newServices(t), "UTC", time.Time{})
	dev, _ := w.EnabledDevice(t, w.A)
	at := w.Now.Add(-time.Minute)
	if res := w.RecordResult(t, unlockEv(dev, "e-1", at, doorledger.UnlockGranted)); res.Inserted != 1 || res.Duplicates != 0 {
		t.Fatalf("first: %+v", res)
	}
	// Re-delivered, alone and inside a batch with a new one: ignored.
	if res := w.RecordResult(t, unlockEv(dev, "e-1", at, doorledger.UnlockGranted)); res.Inserted != 0 || res.Duplicates != 1 {
		t.Fatalf("repeat: %+v", res)
	}
	if res := w.RecordResult(t, unlockEv(dev, "e-1", at, doorledger.UnlockGranted), unlockEv(dev, "e-2", at, doorledger.UnlockGranted)); res.Inserted != 1 || res.Duplicates != 1 {
		t.Fatalf("repeat in batch: %+v", res)
	}
	// The same event from 50 callers at once: recorded once, every caller told it is committed.
	var wg sync.WaitGroup
	errs := make(chan error, 50)
	for i := 0; i < 50; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- w.Unlocks.RecordUnlocks(context.Background(), []doorledger.UnlockEvent{unlockEv(dev, "e-3", at, doorledger.UnlockGranted)})
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if got, want := len(w.Events(t, doorledger.UnlockFilter{BuildingID: w.A, DeviceID: dev})), 3; got != want {
		t.Fatalf("events = %d, want %d", got, want)
	}
	// The same event id from another device is another event.
	dev2, _ := w.EnabledDevice(t, w.A)
	if res := w.RecordResult(t, unlockEv(dev2, "e-1", at, doorledger.UnlockGranted)); res.Inserted != 1 {
		t.Fatalf("other device: %+v", res)
	}
	// Unknown devices are keyed by building and reference.
	ghost := doorledger.UnlockEvent{DeviceRef: "GHOST-1", BuildingID: w.A, EventID: "g-1", OccurredAt: at, Method: "keypad", Result: doorledger.UnlockGranted}
	w.RecordResult(t, ghost)
	if res := w.RecordResult(t, ghost); res.Duplicates != 1 {
		t.Fatalf("unknown device repeat: %+v", res)
	}
	ghost.BuildingID = w.B
	if res := w.RecordResult(t, ghost); res.Inserted != 1 {
		t.Fatalf("unknown device in another building: %+v", res)
	}
}

// A caller's batch is recorded whole or not at all, whatever else its
// group commit holds.
func testUnlockBatchAllOrNothing(t *testing.T, newServices NewServices) {
	w := NewUnlockWorld(t, newServices(t), "UTC", time.Time{})
	dev, _ := w.EnabledDevice(t, w.A)
	devB, _ := w.EnabledDevice(t, w.B)
	at := w.Now.Add(-time.Minute)
	good := func(id string) doorledger.UnlockEvent { return unlockEv(dev, id, at, doorledger.UnlockGranted) }
	for _, tc := range []struct {
		name   string
		events []doorledger.UnlockEvent
		msg    string
	}{
		{"missing time", []doorledger.UnlockEvent{good("a1"), {DeviceID: dev, EventID: "a2", Method: "keypad", Result: doorledger.UnlockGranted}},
			"event 1: occurred_at: missing"},
		{"bad result", []doorledger.UnlockEvent{good("b1"), good("b2"), {DeviceID: dev, EventID: "b3", OccurredAt: at, Method: "keypad", Result: "opened"}},
			`event 2: result: must be granted or denied, not "opened"`},
		{"unknown device id", []doorledger.UnlockEvent{good("c1"), unlockEv(99999, "c2", at, doorledger.UnlockGranted)},
			"event 1: device_id: no device 99999"},
		{"device of another building", []doorledger.UnlockEvent{good("d1"), {DeviceID: devB, BuildingID: w.A, EventID: "d2", OccurredAt: at, Method: "keypad", Result: doorledger.UnlockGranted}},
			fmt.Sprintf("event 1: device_id: device %d is not in building %d", devB, w.A)},
		{"unknown building", []doorledger.UnlockEvent{good("e1"), {DeviceRef: "X", BuildingID: 777, EventID: "e2", OccurredAt: at, Method: "keypad", Result: doorledger.UnlockGranted}},
			"event 1: building_id: no building 777"},
	} {
		err := w.Unlocks.RecordUnlocks(context.Background(), tc.events)
		if doorledger.ErrorCode(err) != doorledger.EINVALID || doorledger.ErrorMessage(err) != tc.msg {
			t.Errorf("%s: %v, want EINVALID %q", tc.name, err, tc.msg)
		}
	}
	if n := w.CountEvents(t, nil); n != 0 {
		t.Fatalf("%d events written by refused batches", n)
	}
	// Refused and accepted batches committed together: each gets its own answer.
	var wg sync.WaitGroup
	var mu sync.Mutex
	refused, accepted := 0, 0
	for i := 0; i < 60; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			evs := []doorledger.UnlockEvent{good(fmt.Sprintf("g%d-1", i)), good(fmt.Sprintf("g%d-2", i))}
			if i%3 == 0 {
				evs[1].DeviceID = 99999
			}
			err := w.Unlocks.RecordUnlocks(context.Background(), evs)
			mu.Lock()
			defer mu.Unlock()
			if err == nil {
				accepted++
			} else if doorledger.ErrorCode(err) == doorledger.EINVALID {
				refused++
			} else {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if refused != 20 || accepted != 40 {
		t.Fatalf("refused %d, accepted %d", refused, accepted)
	}
	if got, want := w.CountEvents(t, nil), 80; got != want {
		t.Fatalf("events = %d, want %d (two per accepted batch, none of a refused one)", got, want)
	}
	// Validation lists every problem, by event.
	err := w.Unlocks.RecordUnlocks(context.Background(), []doorledger.UnlockEvent{{DeviceID: dev}, good("h1"), {DeviceID: dev, EventID: "x", OccurredAt: at, Result: "granted"}})
	if f := doorledger.ErrorFields(err); f["event 0"] != "event_id: missing" || f["event 2"] != "method: missing" || len(f) != 2 {
		t.Fatalf("fields: %v", err)
	}
}

// Many callers at once: each is answered once its event is committed.
func testUnlockGroupCommitConcurrency(t *testing.T, newServices NewServices) {
	w := NewUnlockWorld(t, newServices(t), "UTC", time.Time{})
	const devices, each = 40, 25
	ids := make([]int64, devices)
	for i := range ids {
		ids[i], _ = w.EnabledDevice(t, w.A)
	}
	now := *w.Now
	var wg sync.WaitGroup
	for d := 0; d < devices; d++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < each; i++ {
				ev := unlockEv(ids[d], fmt.Sprintf("c-%d", i), now.Add(-time.Duration(d*each+i)*time.Minute), doorledger.UnlockGranted)
				if err := w.Unlocks.RecordUnlocks(context.Background(), []doorledger.UnlockEvent{ev}); err != nil {
					t.Error(err)
					return
				}
				// Acknowledged means committed: readable from another connection.
				if n := w.CountEvents(t, &doorledger.UnlockFilter{BuildingID: w.A, DeviceID: ids[d]}, ev.EventID); n != 1 {
					t.Errorf("device %d event %s acknowledged but not readable", ids[d], ev.EventID)
				}
			}
		}()
	}
	wg.Wait()
	if got := w.CountEvents(t, nil); got != devices*each {
		t.Fatalf("events = %d, want %d", got, devices*each)
	}
	// A cancelled caller is answered at once.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := w.Unlocks.RecordUnlocks(ctx, []doorledger.UnlockEvent{unlockEv(ids[0], "cancelled", now, doorledger.UnlockGranted)}); err != context.Canceled {
		t.Fatalf("cancelled: %v", err)
	}
}

func testAnomalyAcknowledge(t *testing.T, newServices NewServices) {
	w := NewUnlockWorld(t, newServices(t), "America/New_York", time.Time{})
	dev, _ := w.EnabledDevice(t, w.A)
	w.RecordResult(t, unlockEv(dev, "fine", w.Now.Add(-2*time.Minute), doorledger.UnlockGranted),
		GhostEv(w.A, "gh-1", w), GhostEv(w.A, "gh-2", w), GhostEv(w.A, "gh-3", w), GhostEv(w.B, "gh-b", w))
	fine, gh1, gh2, gh3 := w.EventID(t, w.A, "fine"), w.EventID(t, w.A, "gh-1"), w.EventID(t, w.A, "gh-2"), w.EventID(t, w.A, "gh-3")
	ghB := w.EventID(t, w.B, "gh-b")
	if e := w.Event(t, w.A, "gh-1"); !e.OpenAnomaly() || e.Acknowledged() {
		t.Fatalf("gh-1 recorded as %+v, want an open anomaly", e)
	}
	acks := func() int { return w.CountAcknowledged(t) }
	journal := func() int {
		return len(w.Journal(t, 0, "anomaly.acknowledge"))
	}

	// Who may: the building's managers and admins. The board sees but may
	// not; installers, other buildings' managers and unknown ids are not found.
	const note = "device removed from the lobby panel"
	WantCode(t, "board", ack1(w, As(w.BoardA), gh1, note), doorledger.EFORBIDDEN)
	WantCode(t, "installer", ack1(w, As(w.InstA), gh1, note), doorledger.ENOTFOUND)
	WantCode(t, "manager of B", ack1(w, As(w.MgrB), gh1, note), doorledger.ENOTFOUND)
	WantCode(t, "anonymous", ack1(w, context.Background(), gh1, note), doorledger.EUNAUTHORIZED)
	WantCode(t, "no such event", ack1(w, As(w.MgrA), ghB+1000, note), doorledger.ENOTFOUND)
	WantCode(t, "manager of A, event of B", ack1(w, As(w.MgrA), ghB, note), doorledger.ENOTFOUND)
	if err := ack1(w, As(w.MgrB), gh1, note); doorledger.ErrorMessage(err) != "Event not found." {
		t.Errorf("manager of B: %q, want the event not found (not the building)", doorledger.ErrorMessage(err))
	}

	// What: a note of one line, 1 to 500 characters, on an anomalous event.
	for _, bad := range []string{"", "   ", strings.Repeat("x", 501), strings.Repeat("ż", 501), "removed\nand reported", "bad \xff byte"} {
		err := ack1(w, As(w.MgrA), gh1, bad)
		if doorledger.ErrorCode(err) != doorledger.EINVALID || doorledger.ErrorFields(err)["note"] == "" {
			t.Errorf("note %.20q: %v, want EINVALID beside the note", bad, err)
		}
	}
	err := ack1(w, As(w.MgrA), fine, note)
	WantCode(t, "not anomalous", err, doorledger.EINVALID)
	if want := fmt.Sprintf("Event %d is not flagged as an anomaly", fine); !strings.Contains(doorledger.ErrorMessage(err), want) {
		t.Errorf("not anomalous: %q, want %q", doorledger.ErrorMessage(err), want)
	}
	if n, j := acks(), journal(); n != 0 || j != 0 {
		t.Fatalf("refusals wrote %d acknowledgements, %d journal entries", n, j)
	}

	// Acknowledged: the event carries who, when and the note (trimmed).
	got, err := w.Unlocks.AcknowledgeAnomaly(As(w.MgrA), gh1, "  "+note+"  ")
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
	err = ack1(w, As(w.Admin), gh1, "again")
	WantCode(t, "again", err, doorledger.ECONFLICT)
	if msg := doorledger.ErrorMessage(err); !strings.Contains(msg, w.MgrAEmail) || !regexp.MustCompile(`\d{4}-\d\d-\d\d \d\d:\d\d E[SD]T`).MatchString(msg) {
		t.Errorf("again: %q, want who acknowledged it and when", msg)
	}

	// Open vs all: the history's anomalies, the open ones, and their count.
	list := func(f doorledger.UnlockFilter) []string {
		t.Helper()
		f.BuildingID = w.A
		page, err := w.Unlocks.History(As(w.BoardA), f)
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
		if n, err := w.Unlocks.CountOpenAnomalies(As(w.BoardA), w.A, c.max); err != nil || n != c.want {
			t.Errorf("count open (max %d): %d %v, want %d", c.max, n, err, c.want)
		}
	}
	if _, err := w.Unlocks.CountOpenAnomalies(As(w.InstA), w.A, 0); doorledger.ErrorCode(err) != doorledger.ENOTFOUND {
		t.Errorf("installer counts: %v", err)
	}
	if n, err := w.Unlocks.CountOpenAnomalies(As(w.MgrB), w.B, 0); err != nil || n != 1 {
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
		err := ackN(w, As(w.MgrA), w.A, c.ids, "burst: courier's account reported")
		if doorledger.ErrorCode(err) != c.code || !strings.Contains(doorledger.ErrorMessage(err), c.msg) {
			t.Errorf("%s: %v, want %s %q", c.name, err, c.code, c.msg)
		}
	}
	WantCode(t, "several as the board", ackN(w, As(w.BoardA), w.A, []int64{gh2}, note), doorledger.EFORBIDDEN)
	if n, j := acks(), journal(); n != 1 || j != 1 {
		t.Fatalf("refused batches wrote: %d acknowledgements, %d journal entries; want 1, 1", n, j)
	}
	batch, err := w.Unlocks.AcknowledgeAnomalies(As(w.MgrA), w.A, []int64{gh3, gh2, gh3}, "burst: courier's account reported")
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
	if n, err := w.Unlocks.CountOpenAnomalies(As(w.MgrA), w.A, 0); err != nil || n != 0 {
		t.Errorf("count open after all: %d %v", n, err)
	}
	// An admin reaches every building.
	if err := ack1(w, As(w.Admin), ghB, "false alarm: test unit"); err != nil {
		t.Fatal(err)
	}
	if e := w.Event(t, w.B, "gh-b"); e.AcknowledgedBy != w.Admin.Email {
		t.Errorf("B's event acknowledged by %q", e.AcknowledgedBy)
	}
}

// Each acknowledgement's journal entry goes into the verifiable log, which
// still verifies.
func testAnomalyAckInLog(t *testing.T, newServices NewServices) {
	w := NewUnlockWorld(t, newServices(t), "UTC", time.Time{})
	w.RecordResult(t, GhostEv(w.A, "gh-1", w))
	logs := w.Logs
	if _, err := logs.SignHead(sys()); err != nil {
		t.Fatal(err)
	}
	if err := ack1(w, As(w.MgrA), w.EventID(t, w.A, "gh-1"), "false alarm"); err != nil {
		t.Fatal(err)
	}
	head, err := logs.SignHead(sys())
	if err != nil {
		t.Fatal(err)
	}
	entry := w.JournalEntry(t, 0, "anomaly.acknowledge").ID
	idx, err := logs.EntryIndex(sys(), doorledger.LogKindAudit, entry)
	if err != nil {
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

// A device recorded as found without consent has no business at
// the door at all: each attempt through it is an anomaly, refused by the
// device or not. A device that only waits for its consent and refuses
// couriers is doing what it should.
func testUnlockUnconsentedDeniedIsAnomaly(t *testing.T, newServices NewServices) {
	w := NewUnlockWorld(t, newServices(t), "UTC", time.Time{})
	now := *w.Now
	found, err := w.Devices.RecordFoundDevice(As(w.MgrA), w.A, doorledger.DeviceDetails{
		Vendor: "Unknown", Serial: "FOUND-1", Location: "behind the mailboxes"})
	if err != nil {
		t.Fatal(err)
	}
	if !found.Unconsented {
		t.Fatalf("a found device is not flagged unconsented: %+v", found)
	}
	requested, err := w.Consents.RequestConsent(As(w.InstA), w.A, Request("AWAIT-1", w.SignerA))
	if err != nil {
		t.Fatal(err)
	}
	awaiting := requested.DeviceID
	before := len(w.Alerts(t, w.MgrAEmail))

	w.RecordResult(t,
		unlockEv(found.ID, "found-denied", now.Add(-2*time.Minute), doorledger.UnlockDenied),
		unlockEv(found.ID, "found-granted", now.Add(-time.Minute), doorledger.UnlockGranted),
		unlockEv(awaiting, "awaiting-denied", now.Add(-time.Minute), doorledger.UnlockDenied),
	)
	for _, tt := range []struct {
		id   string
		want []string
	}{
		{"found-denied", []string{doorledger.AnomalyWithoutConsent}},
		{"found-granted", []string{doorledger.AnomalyAfterRevocation, doorledger.AnomalyWithoutConsent}},
		{"awaiting-denied", nil},
	} {
		if got := w.Event(t, w.A, tt.id).Anomalies; !slices.Equal(got, tt.want) {
			t.Errorf("%s: anomalies %v, want %v", tt.id, got, tt.want)
		}
	}
	var denied []string
	for _, s := range w.Alerts(t, w.MgrAEmail)[before:] {
		if strings.Contains(s, "without_consent") {
			denied = append(denied, s)
		}
	}
	if len(denied) == 0 {
		t.Errorf("no anomaly alert for the found device's attempts; alerts: %q", w.Alerts(t, w.MgrAEmail)[before:])
	}
	// The device is told to disable once, however many attempts it makes.
	cmds, err := w.Devices.FindCommands(sys(), doorledger.CommandFilter{DeviceID: found.ID})
	if err != nil {
		t.Fatal(err)
	}
	if n := len(slices.DeleteFunc(cmds, func(c *doorledger.Command) bool { return c.State != doorledger.StateDisabled })); n != 1 {
		t.Errorf("%d disable commands for the found device, want 1", n)
	}
	// The anomalies filter finds the denied attempt.
	page, err := w.Unlocks.History(sys(), doorledger.UnlockFilter{BuildingID: w.A, Result: doorledger.UnlockDenied, AnomaliesOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Events) != 1 || page.Events[0].EventID != "found-denied" {
		t.Errorf("denied anomalies: %d events, want found-denied only", len(page.Events))
	}
}

// Every kind of anomaly, judged at the event's effective time in the
// building's zone: after revocation, without consent (and the device told to
// disable, once), unknown device, outside hours, burst, clock skew.
func testUnlockAnomalies(t *testing.T, newServices NewServices) {
	w := NewUnlockWorld(t, newServices(t), "America/New_York", time.Time{})
	now := *w.Now
	ok, _ := w.EnabledDevice(t, w.A)
	revoked, _ := w.EnabledDevice(t, w.A)
	w.Revoke(t, revoked, now.Add(-10*time.Minute))
	flags := func(id string) []string { return w.Event(t, w.A, id).Anomalies }
	want := func(id string, kinds ...string) {
		t.Helper()
		if got := flags(id); !slices.Equal(got, kinds) {
			t.Errorf("%s: anomalies %v, want %v", id, got, kinds)
		}
	}

	w.RecordResult(t,
		unlockEv(ok, "plain", now.Add(-time.Minute), doorledger.UnlockGranted),
		unlockEv(revoked, "before-revocation", now.Add(-20*time.Minute), doorledger.UnlockGranted),
		unlockEv(revoked, "after-revocation", now.Add(-5*time.Minute), doorledger.UnlockGranted),
		unlockEv(revoked, "refused-after-revocation", now.Add(-4*time.Minute), doorledger.UnlockDenied),
		unlockEv(ok, "before-enabled", now.AddDate(0, 0, -25), doorledger.UnlockGranted),
		unlockEv(ok, "future", now.Add(48*time.Hour), doorledger.UnlockGranted),
		unlockEv(ok, "denied-future", now.Add(48*time.Hour), doorledger.UnlockDenied),
	)
	want("plain")
	want("before-revocation")
	want("after-revocation", doorledger.AnomalyAfterRevocation, doorledger.AnomalyWithoutConsent)
	// The device obeyed, but it had just opened the door without consent and
	// is flagged unconsented: every attempt through it is an anomaly now
	// (TestUnlockUnconsentedDeniedIsAnomaly).
	want("refused-after-revocation", doorledger.AnomalyWithoutConsent)
	want("before-enabled", doorledger.AnomalyAfterRevocation, doorledger.AnomalyWithoutConsent)
	// Skewed: judged at the time received (now), when the device was fine.
	want("future", doorledger.AnomalyClockSkew)
	want("denied-future", doorledger.AnomalyClockSkew)

	// Opening the door without consent marks the device unconsented and tells
	// it to disable, once.
	if d, err := w.Devices.FindDeviceByID(sys(), revoked); err != nil || !d.Unconsented || d.DesiredVersion != 3 {
		t.Fatalf("revoked device after unlocking: %+v %v, want unconsented at version 3", d, err)
	}
	commands := func() []*doorledger.Command {
		t.Helper()
		cmds, err := w.Devices.FindCommands(sys(), doorledger.CommandFilter{DeviceID: revoked})
		if err != nil {
			t.Fatal(err)
		}
		return cmds
	}
	if n := len(slices.DeleteFunc(commands(), func(c *doorledger.Command) bool {
		return c.Version != 3 || c.State != doorledger.StateDisabled || c.RequestedBy != "system"
	})); n != 1 {
		t.Fatalf("disable command: %d", n)
	}
	if n := len(slices.DeleteFunc(w.Journal(t, w.A, "device.unconsented"), func(e *doorledger.AuditEntry) bool { return e.ObjectID != revoked })); n != 1 {
		t.Fatalf("audit device.unconsented: %d", n)
	}
	w.RecordResult(t, unlockEv(revoked, "again", now.Add(-3*time.Minute), doorledger.UnlockGranted))
	if n := len(commands()); n != 3 {
		t.Fatalf("commands after a second unlock: %d, want 3", n)
	}

	// Unknown device: by reference; a reference that is a registered serial
	// (any case) is that device.
	w.RecordResult(t,
		doorledger.UnlockEvent{DeviceRef: "GHOST-7", BuildingID: w.A, EventID: "ghost", OccurredAt: now.Add(-time.Minute), Method: "Courier App", Result: doorledger.UnlockDenied},
		doorledger.UnlockEvent{DeviceRef: "sn-00001", BuildingID: w.A, EventID: "by-serial", OccurredAt: now.Add(-time.Minute), Method: "keypad", Result: doorledger.UnlockGranted},
	)
	want("ghost", doorledger.AnomalyUnknownDevice)
	if e := w.Event(t, w.A, "ghost"); e.DeviceID != 0 || e.DeviceRef != "GHOST-7" || e.Method != "courier_app" {
		t.Errorf("ghost: %+v", e)
	}
	if e := w.Event(t, w.A, "by-serial"); e.DeviceID != ok || len(e.Anomalies) != 0 {
		t.Errorf("by serial: %+v, want device %d", e, ok)
	}

	// Outside hours, in the building's time zone.
	st, err := w.Unlocks.UnlockSettings(As(w.MgrA), w.A)
	if err != nil {
		t.Fatal(err)
	}
	if st.DeliveryHours, err = doorledger.ParseDeliverySchedule("mon-fri 08:00-20:00"); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Unlocks.UpdateUnlockSettings(As(w.MgrA), w.A, *st); err != nil {
		t.Fatal(err)
	}
	ny, _ := time.LoadLocation("America/New_York")
	local := now.In(ny)
	day := time.Date(local.Year(), local.Month(), local.Day(), 0, 0, 0, 0, ny)
	for day.Weekday() != time.Saturday || !day.Add(10*time.Hour).Before(now) {
		day = day.AddDate(0, 0, -1)
	}
	w.RecordResult(t,
		unlockEv(ok, "saturday-10", day.Add(10*time.Hour), doorledger.UnlockGranted),
		unlockEv(ok, "friday-19:59", day.Add(-4*time.Hour-time.Minute), doorledger.UnlockGranted),
		unlockEv(ok, "friday-20:00", day.Add(-4*time.Hour), doorledger.UnlockGranted),
		unlockEv(ok, "saturday-denied", day.Add(11*time.Hour), doorledger.UnlockDenied),
	)
	want("saturday-10", doorledger.AnomalyOutsideHours)
	want("friday-19:59")
	want("friday-20:00", doorledger.AnomalyOutsideHours)
	want("saturday-denied")

	// Burst: more than 3 granted unlocks in 10 minutes; denied ones do not count.
	st.DeliveryHours, st.BurstCount, st.BurstMinutes = doorledger.DeliverySchedule{}, 3, 10
	if _, err := w.Unlocks.UpdateUnlockSettings(As(w.MgrA), w.B, *st); doorledger.ErrorCode(err) != doorledger.ENOTFOUND {
		t.Fatalf("manager of A sets B: %v", err)
	}
	if _, err := w.Unlocks.UpdateUnlockSettings(As(w.MgrB), w.B, *st); err != nil {
		t.Fatal(err)
	}
	devB, _ := w.EnabledDevice(t, w.B)
	base := now.Add(-time.Hour)
	var burst []doorledger.UnlockEvent
	for i := 0; i < 6; i++ {
		r := doorledger.UnlockGranted
		if i == 1 {
			r = doorledger.UnlockDenied
		}
		burst = append(burst, unlockEv(devB, fmt.Sprintf("burst-%d", i), base.Add(time.Duration(i)*time.Minute), r))
	}
	burst = append(burst, unlockEv(devB, "burst-late", base.Add(30*time.Minute), doorledger.UnlockGranted))
	w.RecordResult(t, burst[:3]...) // in two groups: what is recorded counts
	w.RecordResult(t, burst[3:]...)
	for i, wantBurst := range []bool{false, false, false, false, true, true, false} {
		e := w.Event(t, w.B, burst[i].EventID)
		if got := e.HasAnomaly(doorledger.AnomalyBurst); got != wantBurst {
			t.Errorf("%s: burst %v, want %v", e.EventID, got, wantBurst)
		}
	}

	// Clock skew: far ahead, far behind; an imported export may be old.
	w.RecordResult(t,
		unlockEv(ok, "ahead", now.Add(25*time.Hour), doorledger.UnlockDenied),
		unlockEv(ok, "behind", now.AddDate(0, 0, -40), doorledger.UnlockDenied),
	)
	want("ahead", doorledger.AnomalyClockSkew)
	want("behind", doorledger.AnomalyClockSkew)
	if _, err := w.Unlocks.ImportUnlocks(As(w.MgrA), doorledger.UnlockImport{BuildingID: w.A, Events: []doorledger.UnlockEvent{
		unlockEv(ok, "imported-old", now.AddDate(0, 0, -40), doorledger.UnlockDenied)}}); err != nil {
		t.Fatal(err)
	}
	want("imported-old")
}

// Anomalies alert the building's managers (and board, when it says so):
// one mail per device, kind and hour, however many events and groups.
func testUnlockAlerts(t *testing.T, newServices NewServices) {
	w := NewUnlockWorld(t, newServices(t), "UTC", time.Time{})
	now := *w.Now
	dev, _ := w.EnabledDevice(t, w.A)
	w.Revoke(t, dev, now.Add(-time.Hour))
	settings := func(f func(*doorledger.UnlockSettings)) {
		t.Helper()
		st, err := w.Unlocks.UnlockSettings(As(w.MgrA), w.A)
		if err != nil {
			t.Fatal(err)
		}
		f(st)
		if _, err := w.Unlocks.UpdateUnlockSettings(As(w.MgrA), w.A, *st); err != nil {
			t.Fatal(err)
		}
	}
	settings(func(st *doorledger.UnlockSettings) { st.BurstCount = 0 }) // bursts are below
	// 40 unlocks by a revoked device in four batches, concurrently: one mail
	// per manager for the device, its anomalies and the hour. The board is
	// told only when the building says so.
	var wg sync.WaitGroup
	for b := 0; b < 4; b++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var evs []doorledger.UnlockEvent
			for i := 0; i < 10; i++ {
				evs = append(evs, unlockEv(dev, fmt.Sprintf("r-%d-%d", b, i), now.Add(-time.Duration(b*10+i)*time.Second), doorledger.UnlockGranted))
			}
			if err := w.Unlocks.RecordUnlocks(context.Background(), evs); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if got := w.Alerts(t, w.MgrAEmail); len(got) != 1 || !strings.Contains(got[0], "after_revocation, without_consent") {
		t.Fatalf("manager's alerts: %q", got)
	}
	if got := w.Alerts(t, w.BoardAEmail); len(got) != 0 {
		t.Fatalf("board's alerts: %q", got)
	}
	if got := w.Alerts(t, w.MgrBEmail); len(got) != 0 {
		t.Fatalf("other building's manager: %q", got)
	}
	var body string // bodies are sealed at rest: read them as the dispatcher does
	pending, _ := w.Outbox.PendingMessages(context.Background(), 100, 1000)
	for _, m := range pending {
		if m.To == w.MgrAEmail && m.Kind == "alert" {
			body = m.Body
		}
	}
	for _, s := range []string{"Alder Court", fmt.Sprintf("device %d", dev), "unconsented", "within the hour", "courier-r-"} {
		if !strings.Contains(body, s) {
			t.Errorf("alert body lacks %q:\n%s", s, body)
		}
	}
	// An unknown device is another alert; with alert_board, the board gets it too.
	settings(func(st *doorledger.UnlockSettings) { st.AlertBoard = true })
	for i := 0; i < 3; i++ {
		w.Record(t, doorledger.UnlockEvent{DeviceRef: "BLACK-BOX", BuildingID: w.A, EventID: fmt.Sprintf("bb-%d", i), OccurredAt: now, Method: "remote", Result: doorledger.UnlockGranted})
	}
	if got := w.Alerts(t, w.MgrAEmail); len(got) != 2 {
		t.Fatalf("manager's alerts: %q", got)
	}
	if got := w.Alerts(t, w.BoardAEmail); len(got) != 1 || !strings.Contains(got[0], "unknown_device") {
		t.Fatalf("board's alerts: %q", got)
	}
	// An hour later, the same anomalies alert again.
	*w.Now = now.Add(time.Hour)
	w.Record(t, unlockEv(dev, "next-hour", now.Add(time.Hour), doorledger.UnlockGranted))
	if got := w.Alerts(t, w.MgrAEmail); len(got) != 3 {
		t.Fatalf("manager's alerts an hour later: %q", got)
	}
	// A burst of 100 unlocks by a good device in B (more than 20 in 10
	// minutes): one mail.
	good, _ := w.EnabledDevice(t, w.B)
	var evs []doorledger.UnlockEvent
	for i := 0; i < 100; i++ {
		evs = append(evs, unlockEv(good, fmt.Sprintf("b-%d", i), now.Add(time.Duration(i)*time.Second), doorledger.UnlockGranted))
	}
	for i := 0; i < 100; i += 10 {
		w.Record(t, evs[i:i+10]...)
	}
	if got := w.Alerts(t, w.MgrBEmail); len(got) != 1 || !strings.HasSuffix(got[0], ": burst") {
		t.Fatalf("burst alerts: %q", got)
	}
	if n := len(slices.DeleteFunc(w.Events(t, doorledger.UnlockFilter{BuildingID: w.B, DeviceID: good}), func(e *doorledger.UnlockEvent) bool {
		return !slices.Equal(e.Anomalies, []string{doorledger.AnomalyBurst})
	})); n != 80 {
		t.Fatalf("burst events flagged: %d, want 80", n)
	}
}
