package doorledger_test

import (
	"slices"
	"testing"
	"time"

	"github.com/doorledger/doorledger"
)

// TestCheckAck: who may acknowledge, the note, and the ids (sorted, each
// once, 1 to MaxAckEvents), in that order.
func TestCheckAck(t *testing.T) {
	tooMany := make([]int64, doorledger.MaxAckEvents+1)
	for i := range tooMany {
		tooMany[i] = int64(i + 1)
	}
	for _, c := range []struct {
		name string
		role doorledger.Role
		note string
		ids  []int64
		code string
		msg  string
	}{
		{"board", doorledger.RoleBoard, "ok", []int64{1}, doorledger.EFORBIDDEN, "Only the building's managers may acknowledge anomalies."},
		{"installer, bad note", doorledger.RoleInstaller, "", nil, doorledger.EFORBIDDEN, "Only the building's managers may acknowledge anomalies."},
		{"empty note before no ids", doorledger.RoleManager, " ", nil, doorledger.EINVALID, ""},
		{"no ids", doorledger.RoleManager, "ok", nil, doorledger.EINVALID, "Choose the anomalies to acknowledge."},
		{"too many", doorledger.RoleAdmin, "ok", tooMany, doorledger.EINVALID, "Acknowledge at most 500 anomalies at once."},
	} {
		_, _, err := doorledger.CheckAck(c.role, c.note, c.ids)
		if doorledger.ErrorCode(err) != c.code || c.msg != "" && doorledger.ErrorMessage(err) != c.msg {
			t.Errorf("%s: %v, want %s %q", c.name, err, c.code, c.msg)
		}
	}
	note, ids, err := doorledger.CheckAck(doorledger.RoleManager, "  gate fixed ", []int64{7, 3, 7, 5, 3})
	if err != nil || note != "gate fixed" || !slices.Equal(ids, []int64{3, 5, 7}) {
		t.Errorf("CheckAck = %q %v %v, want the note trimmed and the ids 3, 5, 7", note, ids, err)
	}
	if _, ids, _ := doorledger.CheckAck(doorledger.RoleAdmin, "ok", tooMany[:doorledger.MaxAckEvents]); len(ids) != doorledger.MaxAckEvents {
		t.Errorf("MaxAckEvents ids: %d kept", len(ids))
	}
}

// TestCheckAcknowledgeable: the refusal names the first event listed, in
// the caller's order, that cannot be acknowledged.
func TestCheckAcknowledgeable(t *testing.T) {
	ny, err := time.LoadLocation("America/New_York")
	if err != nil {
		t.Fatal(err)
	}
	acked := time.Date(2026, 7, 1, 16, 30, 0, 0, time.UTC)
	events := []*doorledger.UnlockEvent{
		{ID: 1, BuildingID: 10},
		{ID: 2, BuildingID: 10, Anomalies: []string{doorledger.AnomalyUnknownDevice}},
		{ID: 3, BuildingID: 10, Anomalies: []string{doorledger.AnomalyUnknownDevice}, AcknowledgedAt: acked, AcknowledgedBy: "mgr@example.com"},
		{ID: 4, BuildingID: 11, Anomalies: []string{doorledger.AnomalyUnknownDevice}},
	}
	for _, c := range []struct {
		ids  []int64
		code string
		msg  string
	}{
		{[]int64{2}, "", ""},
		{[]int64{2, 9, 1}, doorledger.ENOTFOUND, "Event 9 not found."},
		{[]int64{2, 4}, doorledger.ENOTFOUND, "Event 4 not found."},
		{[]int64{1, 3}, doorledger.EINVALID, "Event 1 is not flagged as an anomaly: there is nothing to acknowledge."},
		{[]int64{3, 1}, doorledger.ECONFLICT, "Event 3 was already acknowledged by mgr@example.com on 2026-07-01 12:30 EDT."},
	} {
		err := doorledger.CheckAcknowledgeable(10, c.ids, events, ny)
		if doorledger.ErrorCode(err) != c.code || c.msg != "" && doorledger.ErrorMessage(err) != c.msg {
			t.Errorf("%v: %v, want %s %q", c.ids, err, c.code, c.msg)
		}
	}
}

// TestAckJournalDetail: a registered device by its id, an unknown one by
// what it called itself (the journal's "anomaly.acknowledge" line reads both).
func TestAckJournalDetail(t *testing.T) {
	known := doorledger.AckJournalDetail(&doorledger.UnlockEvent{DeviceID: 5, DeviceRef: "P-5", EventID: "e1",
		Anomalies: []string{doorledger.AnomalyOutsideHours}}, "false alarm")
	if len(known) != 4 || known["device_id"] != int64(5) || known["note"] != "false alarm" || known["event_id"] != "e1" ||
		!slices.Equal(known["anomalies"].([]string), []string{doorledger.AnomalyOutsideHours}) {
		t.Errorf("known device: %v", known)
	}
	ghost := doorledger.AckJournalDetail(&doorledger.UnlockEvent{DeviceRef: "GHOST-7", EventID: "e2"}, "reported")
	if len(ghost) != 4 || ghost["device_ref"] != "GHOST-7" || ghost["device_id"] != nil {
		t.Errorf("unknown device: %v", ghost)
	}
}
