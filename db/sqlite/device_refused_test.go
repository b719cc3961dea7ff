package sqlite_test

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/doorledger/doorledger"
	"github.com/doorledger/doorledger/db/sqlite"
)

// A device that answers a revoke with the version it was sent but
// the state it had is refusing the command. That is neither "confirmed" nor
// "waiting": the command is recorded refused, journaled, and the managers are
// alerted at once, not after the time-out.
func TestDeviceRefusedRevoke(t *testing.T) {
	w := newDeviceWorld(t)
	id := w.device(t, w.A, w.inst1, w.activeConsent(t, w.A), "Acme")
	mgr := w.ctx(w.mgrA)
	if _, err := w.svc.SetDesiredState(mgr, id, enabled, ""); err != nil {
		t.Fatal(err)
	}
	w.report(t, id, enabled, 1)
	if dev := w.mustDevice(t, id); !dev.Confirmed() {
		t.Fatalf("device not confirmed at v1: %+v", dev)
	}
	revoke, err := w.svc.SetDesiredState(mgr, id, disabled, "revoked by a manager")
	if err != nil {
		t.Fatal(err)
	}
	if err := w.svc.MarkSent(context.Background(), revoke.ID, nil); err != nil {
		t.Fatal(err)
	}

	// The device takes version 2 but stays enabled.
	*w.now = w.now.Add(2 * time.Second)
	w.report(t, id, enabled, 2)

	c := w.mustCommand(t, id, 2)
	if c.Status != doorledger.CommandRefused || !c.ConfirmedAt.IsZero() || !c.RefusedAt.Equal(*w.now) || c.ID != revoke.ID {
		t.Errorf("revoke after the device said enabled v2: status %s, confirmed %v, refused %v; want refused now, never confirmed", c.Status, c.ConfirmedAt, c.RefusedAt)
	}
	var stored string
	if err := w.d.Reader().QueryRow(`SELECT status FROM commands WHERE id = ?`, revoke.ID).Scan(&stored); err != nil || stored != "refused" {
		t.Errorf("stored status %q (%v), want refused", stored, err)
	}
	dev := w.mustDevice(t, id)
	if dev.Confirmed() || !dev.Refused() || dev.Pending() {
		t.Errorf("device: confirmed %v, refused %v, pending %v; want refused only", dev.Confirmed(), dev.Refused(), dev.Pending())
	}
	if dev.DesiredState != disabled || dev.ReportedState != enabled || dev.CommandStatus != doorledger.CommandRefused {
		t.Errorf("device: desired %s, reported %s, command %s", dev.DesiredState, dev.ReportedState, dev.CommandStatus)
	}
	st := dev.Status(*w.now, 30*time.Second)
	if st.Label != "disabled · device refused: still enabled" || st.Tone != doorledger.ToneAlarm || st.Code != "refused" {
		t.Errorf("device status %+v, want the alarm \"disabled · device refused: still enabled\"", st)
	}
	if cs := c.Status.Describe(c.State); cs.Tone != doorledger.ToneAlarm || !strings.Contains(strings.ToLower(cs.Label), "refused") {
		t.Errorf("command status %+v, want an alarm saying refused", cs)
	}

	journal := func() int {
		return w.count(t, `SELECT COUNT(*) FROM audit_entries WHERE action = 'command.refused' AND object_type = 'command' AND object_id = ? AND actor = ?`,
			revoke.ID, "device "+strconv.FormatInt(id, 10))
	}
	alerts := func(to string) int { return w.count(t, alertsQuery, to, "Device * REFUSED*") }
	if n := journal(); n != 1 {
		t.Errorf("%d command.refused journal entries, want 1", n)
	}
	if n := alerts(w.mgrA.Email); n != 1 {
		t.Errorf("%d refusal alerts to the manager at once, want 1", n)
	}
	// The body as the dispatcher reads it (stored sealed).
	pending, err := sqlite.NewOutboxService(w.d).PendingMessages(context.Background(), 8, 100)
	if err != nil {
		t.Fatal(err)
	}
	var body string
	for _, m := range pending {
		if m.To == w.mgrA.Email && strings.Contains(m.Subject, "REFUSED") {
			body = m.Body
		}
	}
	for _, want := range []string{"still ENABLED", "told it to be disabled", "couriers may still be able to open the door"} {
		if !strings.Contains(body, want) {
			t.Errorf("alert body lacks %q:\n%s", want, body)
		}
	}
	if n := w.count(t, `SELECT COUNT(*) FROM audit_entries WHERE action = 'command.confirmed' AND object_id = ?`, revoke.ID); n != 0 {
		t.Errorf("the refused revoke was journaled confirmed %d times", n)
	}

	// The device says it again: a sign of life, not a second alert.
	*w.now = w.now.Add(time.Second)
	w.report(t, id, enabled, 2)
	if j, a := journal(), alerts(w.mgrA.Email); j != 1 || a != 1 {
		t.Errorf("after a repeat: %d journal entries and %d alerts, want 1 and 1", j, a)
	}

	// The time-out does not turn "refused" into "not confirmed", and the
	// refused command is sent again with the retries.
	*w.now = w.now.Add(10 * time.Minute)
	retries, err := w.svc.ExpireUnconfirmed(context.Background(), 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if len(retries) != 1 || retries[0].CommandID != revoke.ID || retries[0].State != disabled {
		t.Errorf("retries %+v, want the refused revoke", retries)
	}
	if c := w.mustCommand(t, id, 2); c.Status != doorledger.CommandRefused {
		t.Errorf("after the time-out: %s, want still refused", c.Status)
	}
	if n := w.count(t, `SELECT COUNT(*) FROM audit_entries WHERE action = 'command.not_confirmed' AND object_id = ?`, revoke.ID); n != 0 {
		t.Errorf("a refused command also timed out (%d entries)", n)
	}
	if open, err := w.svc.FindCommands(mgr, doorledger.CommandFilter{DeviceID: id, Open: true}); err != nil || len(open) != 1 {
		t.Errorf("open commands %d (%v), want the refused one", len(open), err)
	}

	// When the device finally disables, the command is confirmed.
	w.report(t, id, disabled, 2)
	if c := w.mustCommand(t, id, 2); c.Status != doorledger.CommandConfirmed || c.ConfirmedAt.IsZero() {
		t.Errorf("after the device disabled: %+v", c)
	}
	if dev := w.mustDevice(t, id); !dev.Confirmed() || dev.Refused() {
		t.Errorf("device after it disabled: %+v", dev)
	}

	// A device that confirmed and then says the opposite for the same
	// version has gone back on it: refused again, and alerted.
	*w.now = w.now.Add(time.Minute)
	w.report(t, id, enabled, 2)
	if c := w.mustCommand(t, id, 2); c.Status != doorledger.CommandRefused {
		t.Errorf("after the device went back to enabled: %s, want refused", c.Status)
	}
	if dev := w.mustDevice(t, id); !dev.Refused() {
		t.Errorf("device after going back: %+v", dev)
	}
	if j := journal(); j != 2 {
		t.Errorf("%d command.refused entries after the device went back, want 2", j)
	}
}
