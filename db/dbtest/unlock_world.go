package dbtest

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/doorledger/doorledger"
)

// UnlockWorld is two buildings with their people, for the unlock tests.
type UnlockWorld struct {
	Services
	A, B                              int64 // buildings
	SignerA, SignerB                  int64
	Admin, MgrA, BoardA, InstA, MgrB  *doorledger.User
	MgrAEmail, BoardAEmail, MgrBEmail string
	serial                            int
	instB                             *doorledger.User // made on first need: B's installer
	signers                           map[int64]int64  // the roster signer of each building AddBuilding made
	withdraw                          map[int64]string // the withdrawal link of each device EnabledDevice made
}

// NewUnlockWorld builds the world with building A in time zone tzA (B is UTC).
// The clock starts at real time (a backend's rules compare consent expiry
// with the database's own clock) unless start is set, which must not be in
// the past either.
func NewUnlockWorld(tb testing.TB, s Services, tzA string, start time.Time) *UnlockWorld {
	tb.Helper()
	if !start.IsZero() {
		*s.Now = start.UTC()
	}
	w := &UnlockWorld{Services: s}
	buildings, users := s.Buildings, s.Users
	for _, b := range []struct {
		id, signer *int64
		name, tz   string
	}{{&w.A, &w.SignerA, "Alder Court", tzA}, {&w.B, &w.SignerB, "Birch House", "UTC"}} {
		bld, err := buildings.CreateBuilding(sys(), doorledger.BuildingInput{Name: b.name, Address: "1 " + b.name, Timezone: b.tz})
		if err != nil {
			tb.Fatal(err)
		}
		*b.id = bld.ID
		sg, err := buildings.AddSigner(sys(), bld.ID, doorledger.SignerInput{Name: "Pat Owner", Title: "Board president", Email: fmt.Sprintf("pat%d@example.com", bld.ID)})
		if err != nil {
			tb.Fatal(err)
		}
		*b.signer = sg.ID
	}
	for _, u := range []struct {
		p      **doorledger.User
		email  string
		role   doorledger.Role
		grants []int64
	}{
		{&w.Admin, "u-admin@example.com", doorledger.RoleAdmin, nil},
		{&w.MgrA, "u-mgr-a@example.com", doorledger.RoleManager, []int64{w.A}},
		{&w.BoardA, "u-board-a@example.com", doorledger.RoleBoard, []int64{w.A}},
		{&w.InstA, "u-inst-a@example.com", doorledger.RoleInstaller, []int64{w.A}},
		{&w.MgrB, "u-mgr-b@example.com", doorledger.RoleManager, []int64{w.B}},
	} {
		nu, err := users.CreateUser(sys(), doorledger.NewUser{Email: u.email, Name: u.email, Role: u.role, Password: "correct horse battery"})
		if err != nil {
			tb.Fatal(err)
		}
		*u.p = nu
		for _, b := range u.grants {
			if err := buildings.GrantAccess(sys(), b, nu.ID); err != nil {
				tb.Fatal(err)
			}
		}
	}
	w.MgrAEmail, w.BoardAEmail, w.MgrBEmail = w.MgrA.Email, w.BoardA.Email, w.MgrB.Email
	return w
}

// EnabledDevice makes a device of building A or B (or one AddBuilding made) enabled for the last 20
// days, through the services: its installer asked 20 days ago, the
// building's signer signed by the link at once, and the device confirmed
// the enable.
func (w *UnlockWorld) EnabledDevice(tb testing.TB, building int64) (deviceID, consentID int64) {
	tb.Helper()
	before := w.newestMail(tb) // the newest mail queued before the setup
	now := *w.Now
	*w.Now = now.AddDate(0, 0, -20)
	defer func() { *w.Now = now }()
	deviceID, consentID = w.signedConsent(tb, building)
	if w.withdraw == nil {
		w.withdraw = map[int64]string{}
	}
	addr := fmt.Sprintf("pat%d@example.com", building)
	w.withdraw[deviceID] = lastLink(tb, w.Outbox, addr, "/consent/withdraw/")
	if err := w.DeviceReports.ReportState(sys(), doorledger.ReportedState{DeviceID: deviceID, State: doorledger.StateEnabled, Version: 1}); err != nil {
		tb.Fatalf("device %d confirms: %v", deviceID, err)
	}
	// The mail of the setup (the link, "consent signed" alerts) is delivered,
	// as the raw world queues none: the tests see only their own.
	w.deliverAfter(tb, before)
	return deviceID, consentID
}

// newestMail is the id of the newest mail waiting (0: none).
func (w *UnlockWorld) newestMail(tb testing.TB) int64 {
	tb.Helper()
	if msgs := w.pendingMail(tb); len(msgs) > 0 {
		return msgs[len(msgs)-1].ID
	}
	return 0
}

// deliverAfter marks the mail queued after message before as sent.
func (w *UnlockWorld) deliverAfter(tb testing.TB, before int64) {
	tb.Helper()
	for _, m := range w.pendingMail(tb) {
		if m.ID > before {
			if err := w.Outbox.MarkSent(context.Background(), m.ID); err != nil {
				tb.Fatal(err)
			}
		}
	}
}

// Revoke has the signer of a device EnabledDevice made withdraw its consent
// by the link mailed at signing, at time at: the consent service disables
// the device and withdraws the consent then. Its mail is delivered, as
// EnabledDevice's is.
func (w *UnlockWorld) Revoke(tb testing.TB, deviceID int64, at time.Time) {
	tb.Helper()
	defer w.deliverAfter(tb, w.newestMail(tb))
	now := *w.Now
	*w.Now = at
	defer func() { *w.Now = now }()
	if _, err := w.Consents.EndByToken(context.Background(), w.withdraw[deviceID], "revoked"); err != nil {
		tb.Fatalf("revoke device %d: %v", deviceID, err)
	}
}

// signedConsent has building A's or B's installer ask for a device, now,
// and the building's signer sign by the link mailed: the device is enabled
// at version 1, not yet confirmed (unless a privacy hold keeps it disabled).
func (w *UnlockWorld) signedConsent(tb testing.TB, building int64) (deviceID, consentID int64) {
	tb.Helper()
	signer, addr, installer := w.SignerA, fmt.Sprintf("pat%d@example.com", w.A), w.InstA
	if building == w.B {
		signer, addr, installer = w.SignerB, fmt.Sprintf("pat%d@example.com", w.B), w.installerB(tb)
	} else if s, ok := w.signers[building]; ok {
		signer, addr = s, fmt.Sprintf("pat%d@example.com", building)
	}
	w.serial++
	c, err := w.Consents.RequestConsent(As(installer), building, Request(fmt.Sprintf("SN-%05d", w.serial), signer))
	if err != nil {
		tb.Fatalf("request consent: %v", err)
	}
	token := lastLink(tb, w.Outbox, addr, "/sign/")
	sess, err := w.Consents.OpenSigning(context.Background(), token)
	if err != nil {
		tb.Fatal(err)
	}
	signed, err := w.Consents.Sign(context.Background(), token, doorledger.SignInput{TypedName: "Pat Owner", AgreeESign: true, SignaturePNG: SignaturePNG,
		IP: "192.0.2.1", UserAgent: "test", TermsSHA256: doorledger.TermsSHA256(sess.Terms)})
	if err != nil {
		tb.Fatalf("sign consent %d: %v", c.ID, err)
	}
	if signed.DeviceID == 0 {
		tb.Fatalf("consent %d signed without a device", c.ID)
	}
	return signed.DeviceID, c.ID
}

// pendingMail returns the mail waiting to be sent, oldest first.
func (w *UnlockWorld) pendingMail(tb testing.TB) []*doorledger.Message {
	tb.Helper()
	msgs, err := w.Outbox.PendingMessages(context.Background(), 100, 100000)
	if err != nil {
		tb.Fatal(err)
	}
	return msgs
}

// AddBuilding adds a building in time zone tz, with a roster signer, on
// which A's installer may ask for devices (EnabledDevice): for benchmarks
// that spread their devices.
func (w *UnlockWorld) AddBuilding(tb testing.TB, name, tz string) int64 {
	tb.Helper()
	bld, err := w.Buildings.CreateBuilding(sys(), doorledger.BuildingInput{Name: name, Address: "1 " + name, Timezone: tz})
	if err != nil {
		tb.Fatal(err)
	}
	sg, err := w.Buildings.AddSigner(sys(), bld.ID, doorledger.SignerInput{Name: "Pat Owner", Title: "Board president", Email: fmt.Sprintf("pat%d@example.com", bld.ID)})
	if err != nil {
		tb.Fatal(err)
	}
	if err := w.Buildings.GrantAccess(sys(), bld.ID, w.InstA.ID); err != nil {
		tb.Fatal(err)
	}
	if w.signers == nil {
		w.signers = map[int64]int64{}
	}
	w.signers[bld.ID] = sg.ID
	return bld.ID
}

// installerB is an installer of building B, made on first need (the world's
// other people stay as they are).
func (w *UnlockWorld) installerB(tb testing.TB) *doorledger.User {
	tb.Helper()
	if w.instB == nil {
		u, err := w.Users.CreateUser(sys(), doorledger.NewUser{Email: "u-inst-b@example.com", Name: "u-inst-b@example.com", Role: doorledger.RoleInstaller, Password: "correct horse battery"})
		if err != nil {
			tb.Fatal(err)
		}
		if err := w.Buildings.GrantAccess(sys(), w.B, u.ID); err != nil {
			tb.Fatal(err)
		}
		w.instB = u
	}
	return w.instB
}

// UnlockEv is an unlock of a device by a courier's app.
func UnlockEv(device int64, id string, at time.Time, result doorledger.UnlockResult) doorledger.UnlockEvent {
	return doorledger.UnlockEvent{DeviceID: device, EventID: id, OccurredAt: at, Method: doorledger.MethodCourierApp,
		ActorRef: "courier-" + id, Result: result}
}

var unlockEv = UnlockEv

// At returns an event of a device (0: an unknown relay of building A) whose
// clock is right: received when it occurred.
func (w *UnlockWorld) At(device int64, id string, t time.Time, result doorledger.UnlockResult) doorledger.UnlockEvent {
	e := UnlockEv(device, id, t, result)
	e.ReceivedAt = t
	if device == 0 {
		e.BuildingID, e.DeviceRef = w.A, "relay-9"
	}
	return e
}

// GhostEv is an unlock reported for building by a device it does not know:
// flagged unknown_device.
func GhostEv(building int64, id string, w *UnlockWorld) doorledger.UnlockEvent {
	return doorledger.UnlockEvent{BuildingID: building, DeviceRef: "GHOST-7", EventID: id, OccurredAt: w.Now.Add(-time.Minute),
		Method: doorledger.MethodKeypad, ActorRef: "pkg-" + id, Result: doorledger.UnlockGranted}
}

// Record records events as a device's batch.
func (w *UnlockWorld) Record(tb testing.TB, events ...doorledger.UnlockEvent) {
	tb.Helper()
	if err := w.Unlocks.RecordUnlocks(context.Background(), events); err != nil {
		tb.Fatalf("record: %v", err)
	}
}

// Event reads back one recorded event by building and event id.
func (w *UnlockWorld) Event(tb testing.TB, building int64, eventID string) *doorledger.UnlockEvent {
	tb.Helper()
	e := w.findEvent(tb, building, eventID)
	if e == nil {
		tb.Fatalf("event %q not recorded", eventID)
	}
	return e
}

// Recorded tells whether the building's newest 500 events hold eventID.
func (w *UnlockWorld) Recorded(tb testing.TB, building int64, eventID string) bool {
	tb.Helper()
	return w.findEvent(tb, building, eventID) != nil
}

func (w *UnlockWorld) findEvent(tb testing.TB, building int64, eventID string) *doorledger.UnlockEvent {
	tb.Helper()
	page, err := w.Unlocks.History(sys(), doorledger.UnlockFilter{BuildingID: building, Limit: 500})
	if err != nil {
		tb.Fatal(err)
	}
	for _, e := range page.Events {
		if e.EventID == eventID {
			return e
		}
	}
	return nil
}

// EventID is the portal's id of a recorded event, by the device's event id.
func (w *UnlockWorld) EventID(tb testing.TB, building int64, eventID string) int64 {
	tb.Helper()
	return w.Event(tb, building, eventID).ID
}

// resultRecorder is what both backends' unlock services offer besides
// doorledger.EventSink: RecordUnlocks that says what was new.
type resultRecorder interface {
	RecordUnlocksResult(ctx context.Context, events []doorledger.UnlockEvent) (*doorledger.ImportResult, error)
}

// RecordResult records events as a device's batch and returns what was new.
func (w *UnlockWorld) RecordResult(tb testing.TB, events ...doorledger.UnlockEvent) *doorledger.ImportResult {
	tb.Helper()
	r, ok := w.Unlocks.(resultRecorder)
	if !ok {
		tb.Fatalf("%T has no RecordUnlocksResult", w.Unlocks)
	}
	res, err := r.RecordUnlocksResult(context.Background(), events)
	if err != nil {
		tb.Fatalf("record: %v", err)
	}
	return res
}

// Events returns every event f selects (f.After and f.Limit ignored), newest first.
func (w *UnlockWorld) Events(tb testing.TB, f doorledger.UnlockFilter) []*doorledger.UnlockEvent {
	tb.Helper()
	var out []*doorledger.UnlockEvent
	f.After, f.Limit = doorledger.UnlockCursor{}, 500
	for {
		page, err := w.Unlocks.History(sys(), f)
		if err != nil {
			tb.Fatal(err)
		}
		out = append(out, page.Events...)
		if page.Next.IsZero() {
			return out
		}
		f.After = page.Next
	}
}

// CountEvents counts the events f selects (nil: of both buildings), only
// those of the given event ids when some are given.
func (w *UnlockWorld) CountEvents(tb testing.TB, f *doorledger.UnlockFilter, eventIDs ...string) int {
	tb.Helper()
	filters := []doorledger.UnlockFilter{{BuildingID: w.A}, {BuildingID: w.B}}
	if f != nil {
		filters = []doorledger.UnlockFilter{*f}
	}
	n := 0
	for _, f := range filters {
		for _, e := range w.Events(tb, f) {
			if len(eventIDs) == 0 || slices.Contains(eventIDs, e.EventID) {
				n++
			}
		}
	}
	return n
}

// CountAcknowledged counts the acknowledged events of both buildings.
func (w *UnlockWorld) CountAcknowledged(tb testing.TB) int {
	tb.Helper()
	n := 0
	for _, b := range []int64{w.A, w.B} {
		for _, e := range w.Events(tb, doorledger.UnlockFilter{BuildingID: b, AnomaliesOnly: true}) {
			if e.Acknowledged() {
				n++
			}
		}
	}
	return n
}
