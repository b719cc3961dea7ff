package dbtest

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/doorledger/doorledger"
)

// Commands of one device written at once, from several connections (on
// PostgreSQL) or callers: each reads the device's desired version and writes
// the next, so concurrent writers must wait for each other, never write the
// same version twice nor fail on the unique (device, version) (issue 15).
func testDeviceConcurrentCommandsTakeTurns(t *testing.T, newServices NewServices) {
	w := NewDeviceWorld(t, newServices(t))
	found, err := w.Devices.RecordFoundDevice(as(w.MgrA), w.A, doorledger.DeviceDetails{Vendor: "Shady", Serial: "RACE-1", Location: "panel"})
	if err != nil {
		t.Fatal(err)
	}
	const writers, each = 8, 3
	var wg sync.WaitGroup
	errs := make(chan error, writers*each)
	versions := make(chan int64, writers*each)
	for i := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range each {
				cmd, err := w.Devices.SetDesiredState(as(w.MgrA), found.ID, doorledger.StateDisabled, fmt.Sprintf("writer %d, %d", i, j))
				if err != nil {
					errs <- err
					continue
				}
				versions <- cmd.Version
			}
		}()
	}
	wg.Wait()
	close(errs)
	close(versions)
	for err := range errs {
		t.Errorf("concurrent SetDesiredState: %v", err)
	}
	var got []int64
	for v := range versions {
		got = append(got, v)
	}
	slices.Sort(got)
	for i, v := range got {
		if v != int64(i+1) {
			t.Fatalf("versions written %v, want 1 to %d once each", got, writers*each)
		}
	}
	if d := w.MustDevice(t, found.ID); d.DesiredVersion != writers*each {
		t.Errorf("desired version %d, want %d", d.DesiredVersion, writers*each)
	}
	open, err := w.Devices.FindCommands(as(w.MgrA), doorledger.CommandFilter{DeviceID: found.ID, Open: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(open) != 1 || open[0].Version != writers*each {
		t.Errorf("open commands %+v, want only the last (the rest superseded)", open)
	}
	if n := w.JournalCount(t, "device.disable", found.ID, w.MgrA.Email); n != writers*each {
		t.Errorf("%d device.disable entries, want %d", n, writers*each)
	}
}

// enabledConfirmed is a device of building A enabled under its consent at
// version 1 by the manager and confirmed by the device.
func (w *DeviceWorld) enabledConfirmed(t *testing.T) int64 {
	t.Helper()
	id, _ := w.ConsentedDevice(t)
	if _, err := w.Devices.SetDesiredState(as(w.MgrA), id, doorledger.StateEnabled, ""); err != nil {
		t.Fatal(err)
	}
	w.Report(t, id, doorledger.StateEnabled, 1)
	if dev := w.MustDevice(t, id); !dev.Confirmed() {
		t.Fatalf("device not confirmed at v1: %+v", dev)
	}
	return id
}

// A command the device does not confirm within the time-out is recorded
// not confirmed, journaled and alerted once, and retried until the device
// answers; delivery attempts and their failures are kept on the command.
func testDeviceExpireUnconfirmed(t *testing.T, newServices NewServices) {
	w := NewDeviceWorld(t, newServices(t))
	enabled, disabled := doorledger.StateEnabled, doorledger.StateDisabled
	id, _ := w.ConsentedDevice(t)
	ctx := context.Background()
	c1, err := w.Devices.SetDesiredState(as(w.MgrA), id, enabled, "")
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Controller.MarkSent(ctx, c1.ID, nil); err != nil {
		t.Fatal(err)
	}
	if c := w.MustCommand(t, id, 1); c.Status != doorledger.CommandSent || c.Attempts != 1 || !c.SentAt.Equal(*w.Now) {
		t.Errorf("after MarkSent: %+v", c)
	}
	expire := func() []doorledger.DesiredState {
		t.Helper()
		retries, err := w.Controller.ExpireUnconfirmed(ctx, 5*time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		return retries
	}
	audits := func() int { return w.JournalCount(t, "command.not_confirmed", c1.ID, "system") }
	alerts := func(to string) int { return w.AlertCount(t, to, "Device * did not confirm*") }

	*w.Now = w.Now.Add(3 * time.Minute)
	if r := expire(); len(r) != 0 {
		t.Errorf("retries before the time-out: %+v", r)
	}
	*w.Now = w.Now.Add(3 * time.Minute)
	want := doorledger.DesiredState{DeviceID: id, CommandID: c1.ID, State: enabled, Version: 1, IssuedAt: c1.RequestedAt}
	for i := range 2 {
		if r := expire(); len(r) != 1 || r[0] != want {
			t.Errorf("run %d: retries %+v, want [%+v]", i+1, r, want)
		}
		if c := w.MustCommand(t, id, 1); c.Status != doorledger.CommandNotConfirmed {
			t.Errorf("run %d: status %s", i+1, c.Status)
		}
		if a, m := audits(), alerts(w.MgrA.Email); a != 1 || m != 1 {
			t.Errorf("run %d: %d audit entries and %d alerts, want 1 and 1", i+1, a, m)
		}
	}
	if n := alerts(w.BoardA.Email); n != 0 {
		t.Errorf("the board got %d time-out alerts", n)
	}

	// Retries are counted; a failure is kept; a retried command stays not confirmed.
	if err := w.Controller.MarkSent(ctx, c1.ID, errors.New("broker unavailable")); err != nil {
		t.Fatal(err)
	}
	if c := w.MustCommand(t, id, 1); c.Attempts != 2 || c.LastError != "broker unavailable" || c.Status != doorledger.CommandNotConfirmed {
		t.Errorf("after a failed retry: %+v", c)
	}
	if err := w.Controller.MarkSent(ctx, c1.ID, nil); err != nil {
		t.Fatal(err)
	}
	if c := w.MustCommand(t, id, 1); c.Attempts != 3 || c.LastError != "" || c.Status != doorledger.CommandNotConfirmed {
		t.Errorf("after a retry: %+v", c)
	}
	expire()
	if a, m := audits(), alerts(w.MgrA.Email); a != 1 || m != 1 {
		t.Errorf("after retrying: %d audit entries and %d alerts, want 1 and 1", a, m)
	}

	// The device comes back and confirms: nothing left to retry.
	w.Report(t, id, enabled, 1)
	if c := w.MustCommand(t, id, 1); c.Status != doorledger.CommandConfirmed {
		t.Errorf("late confirmation: %s", c.Status)
	}
	if r := expire(); len(r) != 0 {
		t.Errorf("retries after confirmation: %+v", r)
	}

	// A command never handed over times out as well.
	c2, err := w.Devices.SetDesiredState(as(w.MgrA), id, disabled, "")
	if err != nil {
		t.Fatal(err)
	}
	*w.Now = w.Now.Add(6 * time.Minute)
	if r := expire(); len(r) != 1 || r[0].CommandID != c2.ID || r[0].State != disabled {
		t.Errorf("retries of the unsent disable: %+v", r)
	}
	WantCode(t, "MarkSent of an unknown command", w.Controller.MarkSent(ctx, 99999, nil), doorledger.ENOTFOUND)
}

// A device that answers a revoke with the version it was sent but the
// state it had is refusing the command. That is neither "confirmed" nor
// "waiting": the command is recorded refused, journaled, and the managers are
// alerted at once, not after the time-out.
func testDeviceRefusedRevoke(t *testing.T, newServices NewServices) {
	w := NewDeviceWorld(t, newServices(t))
	enabled, disabled := doorledger.StateEnabled, doorledger.StateDisabled
	id := w.enabledConfirmed(t)
	mgr := as(w.MgrA)
	revoke, err := w.Devices.SetDesiredState(mgr, id, disabled, "revoked by a manager")
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Controller.MarkSent(context.Background(), revoke.ID, nil); err != nil {
		t.Fatal(err)
	}

	// The device takes version 2 but stays enabled.
	*w.Now = w.Now.Add(2 * time.Second)
	w.Report(t, id, enabled, 2)

	c := w.MustCommand(t, id, 2)
	if c.Status != doorledger.CommandRefused || !c.ConfirmedAt.IsZero() || !c.RefusedAt.Equal(*w.Now) || c.ID != revoke.ID {
		t.Errorf("revoke after the device said enabled v2: status %s, confirmed %v, refused %v; want refused now, never confirmed", c.Status, c.ConfirmedAt, c.RefusedAt)
	}
	dev := w.MustDevice(t, id)
	if dev.Confirmed() || !dev.Refused() || dev.Pending() {
		t.Errorf("device: confirmed %v, refused %v, pending %v; want refused only", dev.Confirmed(), dev.Refused(), dev.Pending())
	}
	if dev.DesiredState != disabled || dev.ReportedState != enabled || dev.CommandStatus != doorledger.CommandRefused {
		t.Errorf("device: desired %s, reported %s, command %s", dev.DesiredState, dev.ReportedState, dev.CommandStatus)
	}
	st := dev.Status(*w.Now, 30*time.Second)
	if st.Label != "disabled · device refused: still enabled" || st.Tone != doorledger.ToneAlarm || st.Code != "refused" {
		t.Errorf("device status %+v, want the alarm \"disabled · device refused: still enabled\"", st)
	}
	if cs := c.Status.Describe(c.State); cs.Tone != doorledger.ToneAlarm || !strings.Contains(strings.ToLower(cs.Label), "refused") {
		t.Errorf("command status %+v, want an alarm saying refused", cs)
	}

	journal := func() int { return w.JournalCount(t, "command.refused", revoke.ID, deviceLabel(id)) }
	alerts := func(to string) int { return w.AlertCount(t, to, "Device * REFUSED*") }
	if n := journal(); n != 1 {
		t.Errorf("%d command.refused journal entries, want 1", n)
	}
	if n := alerts(w.MgrA.Email); n != 1 {
		t.Errorf("%d refusal alerts to the manager at once, want 1", n)
	}
	var body string
	for _, m := range w.MailsTo(t, w.MgrA.Email) {
		if strings.Contains(m.Subject, "REFUSED") {
			body = m.Body
		}
	}
	for _, want := range []string{"still ENABLED", "told it to be disabled", "couriers may still be able to open the door"} {
		if !strings.Contains(body, want) {
			t.Errorf("alert body lacks %q:\n%s", want, body)
		}
	}
	if n := w.JournalCount(t, "command.confirmed", revoke.ID, ""); n != 0 {
		t.Errorf("the refused revoke was journaled confirmed %d times", n)
	}

	// The device says it again: a sign of life, not a second alert.
	*w.Now = w.Now.Add(time.Second)
	w.Report(t, id, enabled, 2)
	if j, a := journal(), alerts(w.MgrA.Email); j != 1 || a != 1 {
		t.Errorf("after a repeat: %d journal entries and %d alerts, want 1 and 1", j, a)
	}

	// The time-out does not turn "refused" into "not confirmed", and the
	// refused command is sent again with the retries.
	*w.Now = w.Now.Add(10 * time.Minute)
	retries, err := w.Controller.ExpireUnconfirmed(context.Background(), 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if len(retries) != 1 || retries[0].CommandID != revoke.ID || retries[0].State != disabled {
		t.Errorf("retries %+v, want the refused revoke", retries)
	}
	if c := w.MustCommand(t, id, 2); c.Status != doorledger.CommandRefused {
		t.Errorf("after the time-out: %s, want still refused", c.Status)
	}
	if n := w.JournalCount(t, "command.not_confirmed", revoke.ID, ""); n != 0 {
		t.Errorf("a refused command also timed out (%d entries)", n)
	}
	if open, err := w.Devices.FindCommands(mgr, doorledger.CommandFilter{DeviceID: id, Open: true}); err != nil || len(open) != 1 {
		t.Errorf("open commands %d (%v), want the refused one", len(open), err)
	}

	// When the device finally disables, the command is confirmed.
	w.Report(t, id, disabled, 2)
	if c := w.MustCommand(t, id, 2); c.Status != doorledger.CommandConfirmed || c.ConfirmedAt.IsZero() {
		t.Errorf("after the device disabled: %+v", c)
	}
	if dev := w.MustDevice(t, id); !dev.Confirmed() || dev.Refused() {
		t.Errorf("device after it disabled: %+v", dev)
	}

	// A device that confirmed and then says the opposite for the same
	// version has gone back on it: refused again, and alerted.
	*w.Now = w.Now.Add(time.Minute)
	w.Report(t, id, enabled, 2)
	if c := w.MustCommand(t, id, 2); c.Status != doorledger.CommandRefused {
		t.Errorf("after the device went back to enabled: %s, want refused", c.Status)
	}
	if dev := w.MustDevice(t, id); !dev.Refused() {
		t.Errorf("device after going back: %+v", dev)
	}
	if j := journal(); j != 2 {
		t.Errorf("%d command.refused entries after the device went back, want 2", j)
	}
}

func deviceLabel(id int64) string { return "device " + itoa(id) }

// Delivery records (Controller.MarkSentMany, which may hold them a while)
// written after their command was confirmed or timed out leave the status
// alone, and the latest delivery time wins whatever the order.
func testDeviceDeliveryRecordsAnyOrder(t *testing.T, newServices NewServices) {
	w := NewDeviceWorld(t, newServices(t))
	enabled := doorledger.StateEnabled
	ctx := context.Background()
	id, _ := w.ConsentedDevice(t)
	c1, err := w.Devices.SetDesiredState(as(w.MgrA), id, enabled, "")
	if err != nil {
		t.Fatal(err)
	}
	// Timed out before its record was written: ExpireUnconfirmed writes the
	// record first, then finds the command past its time-out.
	first := *w.Now
	if err := w.Controller.MarkSentMany(ctx, []doorledger.DesiredState{{DeviceID: id, CommandID: c1.ID}}); err != nil {
		t.Fatal(err)
	}
	*w.Now = w.Now.Add(10 * time.Minute)
	retries, err := w.Controller.ExpireUnconfirmed(ctx, 5*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if len(retries) != 1 {
		t.Fatalf("retries %+v", retries)
	}
	if c := w.MustCommand(t, id, 1); c.Status != doorledger.CommandNotConfirmed || c.Attempts != 1 || !c.SentAt.Equal(first) {
		t.Errorf("after the time-out: %+v", c)
	}
	// The retry's record may be held; a failed retry, recorded at once, writes it first.
	retried := *w.Now
	if err := w.Controller.MarkSentMany(ctx, retries); err != nil {
		t.Fatal(err)
	}
	*w.Now = w.Now.Add(time.Second)
	if err := w.Controller.MarkSent(ctx, c1.ID, context.DeadlineExceeded); err != nil {
		t.Fatal(err)
	}
	c := w.MustCommand(t, id, 1)
	if c.Status != doorledger.CommandNotConfirmed || c.Attempts != 3 || !c.SentAt.Equal(retried) || c.LastError != context.DeadlineExceeded.Error() {
		t.Errorf("after a held retry and a failed one: %+v", c)
	}
	// Confirmed, then a record arrives late: still confirmed.
	w.Report(t, id, enabled, 1)
	if err := w.Controller.MarkSentMany(ctx, []doorledger.DesiredState{{DeviceID: id, CommandID: c1.ID}}); err != nil {
		t.Fatal(err)
	}
	if err := w.Controller.FlushSent(ctx); err != nil {
		t.Fatal(err)
	}
	if c := w.MustCommand(t, id, 1); c.Status != doorledger.CommandConfirmed || c.Attempts != 4 {
		t.Errorf("a late record: %+v", c)
	}
}

// DisableDevices: every device of one installer or vendor in the
// caller's buildings (admins: all), or a building's lockdown in one push;
// the lockdown page's progress; who may not.
func testDeviceDisableDevices(t *testing.T, newServices NewServices) {
	w := NewDeviceWorld(t, newServices(t))
	disabled := doorledger.StateDisabled
	inst2, err := w.Users.CreateUser(sys(), doorledger.NewUser{Email: "u-inst2-a@example.com", Name: "Second installer", Role: doorledger.RoleInstaller, Password: "correct horse battery"})
	if err != nil {
		t.Fatal(err)
	}
	for _, g := range []struct{ b, u int64 }{{w.A, inst2.ID}, {w.B, w.InstA.ID}} {
		if err := w.Buildings.GrantAccess(sys(), g.b, g.u); err != nil {
			t.Fatal(err)
		}
	}
	ask := func(u *doorledger.User, building, signer int64, vendor, serial string) int64 {
		t.Helper()
		r := Request(serial, signer)
		r.Device.Vendor = vendor
		c, err := w.Consents.RequestConsent(as(u), building, r)
		if err != nil {
			t.Fatal(err)
		}
		return c.DeviceID
	}
	a1, _, _ := w.signedDevice(t) // InstA's, "Acme Access", enabled
	a2 := ask(inst2, w.A, w.SignerA, "Acme Access", "DD-2")
	a3 := ask(w.InstA, w.A, w.SignerA, "Bolt", "DD-3")
	a4 := ask(inst2, w.A, w.SignerA, "Bolt", "DD-4")
	b1 := ask(w.InstA, w.B, w.SignerB, "Acme Access", "DD-5")
	b2 := ask(w.InstA, w.B, w.SignerB, "Bolt", "DD-6")
	mgr := as(w.MgrA)

	devices := func(cmds []*doorledger.Command) string {
		var s []string
		for _, c := range cmds {
			if c.State != disabled || c.Status != doorledger.CommandPending {
				t.Errorf("command %+v", c)
			}
			s = append(s, itoa(c.DeviceID))
		}
		return strings.Join(s, ",")
	}
	ids := func(ids ...int64) string {
		var s []string
		for _, id := range ids {
			s = append(s, itoa(id))
		}
		return strings.Join(s, ",")
	}
	for _, tt := range []struct {
		name string
		ctx  context.Context
		f    doorledger.DeviceFilter
		want string
	}{
		{"manager, one installer", mgr, doorledger.DeviceFilter{InstallerID: w.InstA.ID}, ids(a1, a3)},
		{"manager, one vendor (any case)", mgr, doorledger.DeviceFilter{Vendor: " acme access "}, ids(a1, a2)},
		{"manager, vendor in one building", mgr, doorledger.DeviceFilter{Vendor: "Bolt", BuildingID: w.A}, ids(a3, a4)},
		{"admin, one vendor everywhere", as(w.Admin), doorledger.DeviceFilter{Vendor: "Bolt"}, ids(a3, a4, b2)},
		{"admin, one installer everywhere", as(w.Admin), doorledger.DeviceFilter{InstallerID: w.InstA.ID}, ids(a1, a3, b1, b2)},
		{"other manager, one installer", as(w.MgrB), doorledger.DeviceFilter{InstallerID: w.InstA.ID}, ids(b1, b2)},
	} {
		cmds, err := w.Devices.DisableDevices(tt.ctx, tt.f, "installer under investigation")
		if err != nil {
			t.Errorf("%s: %v", tt.name, err)
			continue
		}
		if got := devices(cmds); got != tt.want {
			t.Errorf("%s: disabled %s, want %s", tt.name, got, tt.want)
		}
	}

	// Building lockdown: every device of the building in service, in one push.
	before := len(w.PushCalls())
	lock, err := w.Devices.DisableDevices(mgr, doorledger.DeviceFilter{BuildingID: w.A}, "lockdown")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := devices(lock), ids(a1, a2, a3, a4); got != want {
		t.Errorf("lockdown disabled %s, want %s", got, want)
	}
	if calls := w.PushCalls(); len(calls) != before+1 || len(calls[before]) != 4 {
		t.Errorf("lockdown pushed in %d calls, want 1 of 4", len(calls)-before)
	}
	for _, id := range []int64{a1, a2, a3, a4} {
		if dev := w.MustDevice(t, id); dev.DesiredState != disabled {
			t.Errorf("device %d still %s", id, dev.DesiredState)
		}
	}
	if n := w.JournalCount(t, "device.disable_many", w.A, w.MgrA.Email); n < 1 {
		t.Errorf("no device.disable_many entry")
	}

	// The devices confirm as they answer: the rest stay open.
	w.Report(t, a2, disabled, lock[1].Version)
	w.Report(t, a3, disabled, lock[2].Version)
	open, err := w.Devices.FindCommands(mgr, doorledger.CommandFilter{BuildingID: w.A, Open: true})
	if err != nil {
		t.Fatal(err)
	}
	var still []int64
	for _, c := range open {
		still = append(still, c.DeviceID)
	}
	slices.Sort(still)
	if got, want := ids(still...), ids(a1, a4); got != want {
		t.Errorf("open commands of A after two confirmations: devices %s, want %s", got, want)
	}

	// Refusals.
	_, err = w.Devices.DisableDevices(mgr, doorledger.DeviceFilter{BuildingID: w.B}, "")
	WantCode(t, "lockdown of a building not granted", err, doorledger.ENOTFOUND)
	_, err = w.Devices.DisableDevices(mgr, doorledger.DeviceFilter{}, "")
	WantCode(t, "empty filter", err, doorledger.EINVALID)
	_, err = w.Devices.DisableDevices(as(w.InstA), doorledger.DeviceFilter{InstallerID: w.InstA.ID}, "")
	WantCode(t, "installer", err, doorledger.EFORBIDDEN)
	_, err = w.Devices.DisableDevices(as(w.BoardA), doorledger.DeviceFilter{BuildingID: w.A}, "")
	WantCode(t, "board lockdown", err, doorledger.EFORBIDDEN)
	_, err = w.Devices.DisableDevices(mgr, doorledger.DeviceFilter{BuildingID: w.A}, strings.Repeat("x", 501))
	WantCode(t, "long reason", err, doorledger.EINVALID)
}

// A device's credential: 32 random bytes in base64url, given once, never
// journaled; the right secret authenticates its device only, and a rotation
// ends the old one. Managers and admins issue them.
func testDeviceCredential(t *testing.T, newServices NewServices) {
	w := NewDeviceWorld(t, newServices(t))
	ctx := context.Background()
	id, _ := w.ConsentedDevice(t)
	other, _ := w.ConsentedDevice(t) // never given a credential
	secret, err := w.Devices.IssueCredential(as(w.MgrA), id)
	if err != nil {
		t.Fatal(err)
	}
	if raw, err := base64.RawURLEncoding.DecodeString(secret); err != nil || len(raw) != 32 {
		t.Fatalf("secret %q: %d bytes, %v; want 32 random bytes in base64url", secret, len(raw), err)
	}
	if err := w.DeviceReports.AuthenticateDevice(ctx, id, secret); err != nil {
		t.Errorf("right secret: %v", err)
	}
	for _, tt := range []struct {
		name   string
		id     int64
		secret string
	}{
		{"wrong secret", id, secret + "x"},
		{"empty secret", id, ""},
		{"another device's secret", other, secret},
		{"no credential issued, empty secret", other, ""},
		{"unknown device", 9999, secret},
	} {
		WantCode(t, tt.name, w.DeviceReports.AuthenticateDevice(ctx, tt.id, tt.secret), doorledger.EUNAUTHORIZED)
	}

	// Rotation invalidates the old secret.
	rotated, err := w.Devices.IssueCredential(as(w.Admin), id)
	if err != nil {
		t.Fatal(err)
	}
	WantCode(t, "old secret after rotation", w.DeviceReports.AuthenticateDevice(ctx, id, secret), doorledger.EUNAUTHORIZED)
	if err := w.DeviceReports.AuthenticateDevice(ctx, id, rotated); err != nil {
		t.Errorf("new secret: %v", err)
	}
	var details []string
	for _, e := range w.Journal(t, 0, "device.credential") {
		if e.ObjectID == id {
			details = append(details, e.Detail)
		}
	}
	if fmt.Sprint(details) != `[{"rotated":false} {"rotated":true}]` {
		t.Errorf("device.credential entries %v, want the issue then the rotation", details)
	}
	for _, e := range w.Journal(t, 0, "device.credential") {
		if strings.Contains(e.Detail, secret) || strings.Contains(e.Detail, rotated) {
			t.Errorf("a secret is in the journal: %s", e.Detail)
		}
	}
	for _, m := range w.MailsTo(t, w.MgrA.Email) {
		if strings.Contains(m.Body, secret) || strings.Contains(m.Body, rotated) {
			t.Errorf("a secret is in the mail: %s", m.Subject)
		}
	}
	_, err = w.Devices.IssueCredential(as(w.BoardA), id)
	WantCode(t, "board", err, doorledger.EFORBIDDEN)
	_, err = w.Devices.IssueCredential(as(w.MgrB), id)
	WantCode(t, "another building's manager", err, doorledger.ENOTFOUND)
}

// Who sees and changes which devices: another building's manager finds
// nothing, the board looks but does not touch, an installer sees only what
// they installed, admins everything, nobody signed in nothing.
func testDeviceAccess(t *testing.T, newServices NewServices) {
	w := NewDeviceWorld(t, newServices(t))
	enabled, disabled := doorledger.StateEnabled, doorledger.StateDisabled
	inst2, err := w.Users.CreateUser(sys(), doorledger.NewUser{Email: "u-inst2-a@example.com", Name: "Second installer", Role: doorledger.RoleInstaller, Password: "correct horse battery"})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Buildings.GrantAccess(sys(), w.A, inst2.ID); err != nil {
		t.Fatal(err)
	}
	a1, _, _ := w.signedDevice(t) // InstA's
	req, err := w.Consents.RequestConsent(as(inst2), w.A, Request("ACC-2", w.SignerA))
	if err != nil {
		t.Fatal(err)
	}
	a2 := req.DeviceID
	b, err := w.Devices.RecordFoundDevice(as(w.MgrB), w.B, doorledger.DeviceDetails{Vendor: "Acme Access", Serial: "ACC-B", Location: "roof"})
	if err != nil {
		t.Fatal(err)
	}
	b1 := b.ID
	for _, id := range []int64{a1, a2} {
		if _, err := w.Devices.SetDesiredState(as(w.MgrA), id, disabled, "setup"); err != nil {
			t.Fatal(err)
		}
	}
	ids := func(ctx context.Context, f doorledger.DeviceFilter) string {
		t.Helper()
		list, err := w.Devices.FindDevices(ctx, f)
		if err != nil {
			t.Fatalf("FindDevices(%+v): %v", f, err)
		}
		var s []string
		for _, d := range list {
			s = append(s, itoa(d.ID))
		}
		return strings.Join(s, ",")
	}
	list := func(ids ...int64) string {
		var s []string
		for _, id := range ids {
			s = append(s, itoa(id))
		}
		return strings.Join(s, ",")
	}
	found := doorledger.DeviceDetails{Vendor: "X", Serial: "1", Location: "panel"}

	// A manager of another building: not found, whatever the method.
	mgrB := as(w.MgrB)
	_, err = w.Devices.FindDeviceByID(mgrB, a1)
	WantCode(t, "mgrB FindDeviceByID", err, doorledger.ENOTFOUND)
	_, err = w.Devices.SetDesiredState(mgrB, a1, disabled, "")
	WantCode(t, "mgrB SetDesiredState", err, doorledger.ENOTFOUND)
	_, err = w.Devices.IssueCredential(mgrB, a1)
	WantCode(t, "mgrB IssueCredential", err, doorledger.ENOTFOUND)
	_, err = w.Devices.FindDevices(mgrB, doorledger.DeviceFilter{BuildingID: w.A})
	WantCode(t, "mgrB FindDevices of A", err, doorledger.ENOTFOUND)
	_, err = w.Devices.FindCommands(mgrB, doorledger.CommandFilter{DeviceID: a1})
	WantCode(t, "mgrB FindCommands of a1", err, doorledger.ENOTFOUND)
	_, err = w.Devices.FindCommands(mgrB, doorledger.CommandFilter{BuildingID: w.A})
	WantCode(t, "mgrB FindCommands of A", err, doorledger.ENOTFOUND)
	_, err = w.Devices.RecordFoundDevice(mgrB, w.A, found)
	WantCode(t, "mgrB RecordFoundDevice in A", err, doorledger.ENOTFOUND)
	_, err = w.Devices.DisableDevices(mgrB, doorledger.DeviceFilter{BuildingID: w.A}, "")
	WantCode(t, "mgrB lockdown of A", err, doorledger.ENOTFOUND)
	if got, want := ids(mgrB, doorledger.DeviceFilter{}), list(b1); got != want {
		t.Errorf("mgrB sees %s, want %s", got, want)
	}

	// The board looks but does not touch.
	board := as(w.BoardA)
	if _, err := w.Devices.FindDeviceByID(board, a1); err != nil {
		t.Errorf("board FindDeviceByID: %v", err)
	}
	if got, want := ids(board, doorledger.DeviceFilter{}), list(a1, a2); got != want {
		t.Errorf("board sees %s, want %s", got, want)
	}
	_, err = w.Devices.SetDesiredState(board, a1, disabled, "")
	WantCode(t, "board SetDesiredState", err, doorledger.EFORBIDDEN)
	_, err = w.Devices.IssueCredential(board, a1)
	WantCode(t, "board IssueCredential", err, doorledger.EFORBIDDEN)
	_, err = w.Devices.RecordFoundDevice(board, w.A, found)
	WantCode(t, "board RecordFoundDevice", err, doorledger.EFORBIDDEN)
	_, err = w.Devices.DisableDevices(board, doorledger.DeviceFilter{Vendor: "Acme Access"}, "")
	WantCode(t, "board disable by vendor", err, doorledger.EFORBIDDEN)
	if cmds, err := w.Devices.FindCommands(board, doorledger.CommandFilter{BuildingID: w.A}); err != nil || len(cmds) != 3 {
		t.Errorf("board FindCommands: %d, %v; want 3 (a1's enable and disable, a2's disable)", len(cmds), err)
	}

	// An installer sees only what they installed, in buildings they were invited to.
	inst := as(w.InstA)
	if got, want := ids(inst, doorledger.DeviceFilter{}), list(a1); got != want {
		t.Errorf("installer sees %s, want %s", got, want)
	}
	if got := ids(inst, doorledger.DeviceFilter{InstallerID: inst2.ID}); got != "" {
		t.Errorf("installer filtering on another installer sees %s", got)
	}
	for _, id := range []int64{a2, b1} {
		_, err = w.Devices.FindDeviceByID(inst, id)
		WantCode(t, fmt.Sprintf("installer FindDeviceByID(%d)", id), err, doorledger.ENOTFOUND)
	}
	_, err = w.Devices.SetDesiredState(inst, a1, enabled, "")
	WantCode(t, "installer enables own device", err, doorledger.EFORBIDDEN)
	_, err = w.Devices.SetDesiredState(inst, a2, disabled, "")
	WantCode(t, "installer disables another's device", err, doorledger.ENOTFOUND)
	if cmds, err := w.Devices.FindCommands(inst, doorledger.CommandFilter{BuildingID: w.A}); err != nil || len(cmds) != 2 || cmds[0].DeviceID != a1 || cmds[1].DeviceID != a1 {
		t.Errorf("installer FindCommands: %+v, %v; want only a1's", cmds, err)
	}

	// Admins see everything; nobody signed in sees nothing.
	if got, want := ids(as(w.Admin), doorledger.DeviceFilter{}), list(a1, a2, b1); got != want {
		t.Errorf("admin sees %s, want %s", got, want)
	}
	if got, want := ids(as(w.Admin), doorledger.DeviceFilter{Vendor: "acme access"}), list(a1, a2, b1); got != want {
		t.Errorf("admin by vendor (any case) sees %s, want %s", got, want)
	}
	if got, want := ids(as(w.Admin), doorledger.DeviceFilter{Vendor: "acme access", InstallerID: inst2.ID}), list(a2); got != want {
		t.Errorf("admin by vendor and installer sees %s, want %s", got, want)
	}
	_, err = w.Devices.FindDevices(context.Background(), doorledger.DeviceFilter{})
	WantCode(t, "anonymous FindDevices", err, doorledger.EUNAUTHORIZED)
	_, err = w.Devices.FindDeviceByID(context.Background(), a1)
	WantCode(t, "anonymous FindDeviceByID", err, doorledger.EUNAUTHORIZED)

	// The consent state is joined: signed, awaiting, none.
	for _, c := range []struct {
		id   int64
		want doorledger.ConsentStatus
	}{{a1, doorledger.ConsentSigned}, {a2, doorledger.ConsentAwaiting}, {b1, ""}} {
		if got := w.MustDevice(t, c.id).ConsentState; got != c.want {
			t.Errorf("device %d ConsentState = %q, want %q", c.id, got, c.want)
		}
	}
}

// PendingDesired: what the portal publishes at start-up, every device ever
// given a desired state with its latest command, whichever building.
func testDevicePendingDesired(t *testing.T, newServices NewServices) {
	w := NewDeviceWorld(t, newServices(t))
	enabled, disabled := doorledger.StateEnabled, doorledger.StateDisabled
	mgr := as(w.MgrA)
	d1, _ := w.ConsentedDevice(t)
	if _, err := w.Consents.RequestConsent(as(w.InstA), w.A, Request("PD-2", w.SignerA)); err != nil {
		t.Fatal(err) // its device is never given a desired state: nothing to publish
	}
	d3, err := w.Devices.RecordFoundDevice(as(w.MgrB), w.B, doorledger.DeviceDetails{Vendor: "Ghost", Serial: "PD-3", Location: "roof"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Devices.SetDesiredState(mgr, d1, enabled, ""); err != nil {
		t.Fatal(err)
	}
	*w.Now = w.Now.Add(time.Second)
	c2, err := w.Devices.SetDesiredState(mgr, d1, disabled, "")
	if err != nil {
		t.Fatal(err)
	}
	c3, err := w.Devices.SetDesiredState(as(w.Admin), d3.ID, disabled, "")
	if err != nil {
		t.Fatal(err)
	}
	got, err := w.Controller.PendingDesired(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	want := []doorledger.DesiredState{
		{DeviceID: d1, CommandID: c2.ID, State: disabled, Version: 2, IssuedAt: *w.Now},
		{DeviceID: d3.ID, CommandID: c3.ID, State: disabled, Version: 1, IssuedAt: *w.Now},
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("PendingDesired = %+v\nwant %+v", got, want)
	}
}
