package dbtest

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/doorledger/doorledger"
)

var deviceTests = []test{
	{"DeviceEnableWithActiveConsent", testDeviceEnableWithActiveConsent},
	{"DeviceCommandVersionsAndReports", testDeviceCommandVersionsAndReports},
	{"DeviceUnconsentedReportingEnabled", testDeviceUnconsentedReportingEnabled},
	{"DeviceConcurrentCommandsTakeTurns", testDeviceConcurrentCommandsTakeTurns},
	{"DeviceExpireUnconfirmed", testDeviceExpireUnconfirmed},
	{"DeviceRefusedRevoke", testDeviceRefusedRevoke},
	{"DeviceDeliveryRecordsAnyOrder", testDeviceDeliveryRecordsAnyOrder},
	{"DeviceDisableDevices", testDeviceDisableDevices},
	{"DeviceCredential", testDeviceCredential},
	{"DeviceAccess", testDeviceAccess},
	{"DevicePendingDesired", testDevicePendingDesired},
	{"TenantNoticeDevices", testTenantNoticeDevices},
}

// TestTenantNoticeDevices: the tenant notice lists each device in service
// under the disclosure record it names, as "#id vendor model (what it
// opens)", and counts those naming none.
func testTenantNoticeDevices(t *testing.T, newServices NewServices) {
	w := NewDeviceWorld(t, newServices(t))
	if err := w.Privacy.SetPrivacyProfile(as(w.MgrA), w.A, doorledger.PrivacyProfileTDPA); err != nil {
		t.Fatal(err)
	}
	one, _, _ := w.signedDevice(t)
	two, _, _ := w.signedDevice(t)
	w.signedDevice(t) // names no record
	d, err := w.Privacy.SaveVendorDisclosure(as(w.MgrA), w.A, 0, doorledger.VendorDisclosureInput{LegalName: "Acme Access Inc.",
		DataCollected: "courier id, time", Purpose: "deliveries", Retention: "90 days", PolicyURL: "https://acme.example/privacy"})
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []int64{two, one} {
		if err := w.Privacy.SetDeviceDisclosure(as(w.MgrA), w.A, id, d.ID); err != nil {
			t.Fatal(err)
		}
	}
	settings, err := w.Residents.NoticeSettings(as(w.MgrA), w.A)
	if err != nil {
		t.Fatal(err)
	}
	n, err := w.Privacy.TenantNotice(context.Background(), settings.Slug)
	if err != nil {
		t.Fatal(err)
	}
	label := func(id int64) string {
		dev := w.MustDevice(t, id)
		l := "#" + fmt.Sprint(id) + " " + strings.TrimSpace(dev.Vendor+" "+dev.Model)
		if dev.Opens != "" {
			l += " (" + dev.Opens + ")"
		}
		return l
	}
	if len(n.Vendors) != 1 || n.Vendors[0].Disclosure.ID != d.ID || n.Undisclosed != 1 ||
		strings.Join(n.Vendors[0].Devices, "|") != label(one)+"|"+label(two) {
		t.Errorf("tenant notice: %d vendors, %d undisclosed, %+v", len(n.Vendors), n.Undisclosed, n.Vendors)
	}
}

// DeviceWorld is the unlock world (building A in UTC) that records the
// desired states handed to the device controller, and checks each is
// committed by then: read back through the services, which see only
// committed data.
type DeviceWorld struct {
	*UnlockWorld
	mu       sync.Mutex
	pushes   [][]doorledger.DesiredState
	pushErrs []string
}

// NewDeviceWorld builds the device world on s.
func NewDeviceWorld(t *testing.T, s Services) *DeviceWorld {
	t.Helper()
	w := &DeviceWorld{UnlockWorld: NewUnlockWorld(t, s, "UTC", time.Time{})}
	s.OnDesired(func(states []doorledger.DesiredState) {
		w.mu.Lock()
		defer w.mu.Unlock()
		w.pushes = append(w.pushes, states)
		for _, st := range states {
			d, err := w.Devices.FindDeviceByID(sys(), st.DeviceID)
			if err != nil || d.DesiredVersion < st.Version {
				w.pushErrs = append(w.pushErrs, fmt.Sprintf("device %d: pushed version %d before commit (%+v, %v)", st.DeviceID, st.Version, d, err))
			}
		}
	})
	t.Cleanup(func() {
		w.mu.Lock()
		defer w.mu.Unlock()
		for _, e := range w.pushErrs {
			t.Error(e)
		}
	})
	return w
}

// PushCalls returns the desired states handed to the controller, one batch
// per commit.
func (w *DeviceWorld) PushCalls() [][]doorledger.DesiredState {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([][]doorledger.DesiredState(nil), w.pushes...)
}

// MustDevice reads a device back.
func (w *DeviceWorld) MustDevice(t testing.TB, id int64) *doorledger.Device {
	t.Helper()
	dev, err := w.Devices.FindDeviceByID(sys(), id)
	if err != nil {
		t.Fatal(err)
	}
	return dev
}

// MustCommand reads back a device's command of the given version.
func (w *DeviceWorld) MustCommand(t testing.TB, deviceID, version int64) *doorledger.Command {
	t.Helper()
	cmds, err := w.Devices.FindCommands(sys(), doorledger.CommandFilter{DeviceID: deviceID})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range cmds {
		if c.Version == version {
			return c
		}
	}
	t.Fatalf("device %d has no command of version %d", deviceID, version)
	return nil
}

// Report is the device reporting its state at version.
func (w *DeviceWorld) Report(t testing.TB, id int64, state doorledger.DeviceState, version int64) {
	t.Helper()
	if err := w.DeviceReports.ReportState(context.Background(), doorledger.ReportedState{DeviceID: id, State: state, Version: version, At: time.Now()}); err != nil {
		t.Fatalf("report %s v%d of device %d: %v", state, version, id, err)
	}
}

// JournalCount counts the journal entries with the action about object id
// (0: any) by actor ("": any).
func (w *DeviceWorld) JournalCount(t testing.TB, action string, id int64, actor string) int {
	t.Helper()
	n := 0
	for _, e := range w.Journal(t, 0, action) {
		if (id == 0 || e.ObjectID == id) && (actor == "" || e.Actor == actor) {
			n++
		}
	}
	return n
}

// AlertCount counts the alerts queued to addr whose subject matches glob
// ("*" any text).
func (w *DeviceWorld) AlertCount(t testing.TB, addr, glob string) int {
	t.Helper()
	re := regexp.MustCompile("^" + strings.ReplaceAll(regexp.QuoteMeta(glob), `\*`, ".*") + "$")
	n := 0
	for _, s := range w.Alerts(t, addr) {
		if re.MatchString(s) {
			n++
		}
	}
	return n
}

// signedDevice requests and signs a consent for a device of building A, now,
// and returns the device, the consent and the signer's withdraw link. The device is
// enabled at version 1, not yet confirmed.
func (w *DeviceWorld) signedDevice(t *testing.T) (deviceID, consentID int64, withdraw string) {
	t.Helper()
	deviceID, consentID = w.signedConsent(t, w.A)
	return deviceID, consentID, lastLink(t, w.Outbox, fmt.Sprintf("pat%d@example.com", w.A), "/consent/withdraw/")
}

// ConsentedDevice is a device of building A resting on a signed consent and
// never enabled (desired version 0): signed while the building followed the
// privacy profile without a disclosure record for it, which holds the
// device disabled, and the profile dropped after.
func (w *DeviceWorld) ConsentedDevice(t *testing.T) (deviceID, consentID int64) {
	t.Helper()
	if err := w.Privacy.SetPrivacyProfile(as(w.MgrA), w.A, doorledger.PrivacyProfileTDPA); err != nil {
		t.Fatal(err)
	}
	id, consent, _ := w.signedDevice(t)
	if err := w.Privacy.SetPrivacyProfile(as(w.MgrA), w.A, doorledger.PrivacyProfileNone); err != nil {
		t.Fatal(err)
	}
	if d := w.MustDevice(t, id); d.DesiredVersion != 0 || d.ConsentState != doorledger.ConsentSigned {
		t.Fatalf("consented device: desired %s v%d, consent %s; want v0 under a signed consent", d.DesiredState, d.DesiredVersion, d.ConsentState)
	}
	return id, consent
}

// THE RULE (4): with an active consent, enabling works and is pushed after commit.
func testDeviceEnableWithActiveConsent(t *testing.T, newServices NewServices) {
	w := NewDeviceWorld(t, newServices(t))
	enabled := doorledger.StateEnabled
	id, consent := w.ConsentedDevice(t)
	cmd, err := w.Devices.SetDesiredState(as(w.MgrA), id, enabled, "signed by the board")
	if err != nil {
		t.Fatal(err)
	}
	if cmd.Version != 1 || cmd.State != enabled || cmd.Status != doorledger.CommandPending || cmd.RequestedBy != w.MgrA.Email || cmd.BuildingID != w.A {
		t.Errorf("command = %+v", cmd)
	}
	dev := w.MustDevice(t, id)
	if dev.DesiredState != enabled || dev.DesiredVersion != 1 || !dev.Pending() || dev.ConsentID != consent || dev.ConsentState != doorledger.ConsentSigned {
		t.Errorf("device = %+v", dev)
	}
	if n := w.JournalCount(t, "device.enable", id, w.MgrA.Email); n != 1 {
		t.Errorf("%d device.enable audit entries, want 1", n)
	}
	calls := w.PushCalls()
	want := doorledger.DesiredState{DeviceID: id, CommandID: cmd.ID, State: enabled, Version: 1, IssuedAt: *w.Now}
	if len(calls) != 1 || len(calls[0]) != 1 || calls[0][0] != want {
		t.Errorf("pushed %+v, want [[%+v]]", calls, want)
	}
}

func testDeviceCommandVersionsAndReports(t *testing.T, newServices NewServices) {
	w := NewDeviceWorld(t, newServices(t))
	id, _ := w.ConsentedDevice(t)
	mgr := as(w.MgrA)
	enabled, disabled := doorledger.StateEnabled, doorledger.StateDisabled
	var cmds []*doorledger.Command
	for _, s := range []doorledger.DeviceState{enabled, disabled, enabled} {
		cmd, err := w.Devices.SetDesiredState(mgr, id, s, "")
		if err != nil {
			t.Fatal(err)
		}
		cmds = append(cmds, cmd)
	}
	list, err := w.Devices.FindCommands(mgr, doorledger.CommandFilter{DeviceID: id})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, c := range list {
		got = append(got, fmt.Sprintf("v%d %s %s", c.Version, c.State, c.Status))
	}
	if g, want := strings.Join(got, "; "), "v3 enabled pending; v2 disabled superseded; v1 enabled superseded"; g != want {
		t.Errorf("commands, newest first: %s\nwant %s", g, want)
	}
	confirmed := func() int {
		return w.JournalCount(t, "command.confirmed", cmds[2].ID, "")
	}
	badReports := func() int {
		return w.JournalCount(t, "device.bad_report", id, "")
	}

	// Behind: recorded, confirms nothing.
	w.Report(t, id, disabled, 2)
	if dev := w.MustDevice(t, id); dev.ReportedVersion != 2 || dev.ReportedState != disabled || !dev.Pending() {
		t.Errorf("after v2 report: %+v", dev)
	}
	if c := w.MustCommand(t, id, 2); c.Status != doorledger.CommandSuperseded {
		t.Errorf("v2 status = %s, want superseded (a superseded command is never confirmed)", c.Status)
	}

	// The desired version confirms its command, once.
	*w.Now = w.Now.Add(1500 * time.Millisecond)
	w.Report(t, id, enabled, 3)
	c := w.MustCommand(t, id, 3)
	if c.Status != doorledger.CommandConfirmed || !c.ConfirmedAt.Equal(*w.Now) || c.Latency() != 1500*time.Millisecond {
		t.Errorf("v3 after report: %+v", c)
	}
	if dev := w.MustDevice(t, id); dev.Pending() || dev.ReportedState != enabled {
		t.Errorf("device after confirmation: %+v", dev)
	}
	w.Report(t, id, enabled, 3)
	if n := confirmed(); n != 1 {
		t.Errorf("%d command.confirmed entries after a duplicate, want 1", n)
	}
	if n := w.JournalCount(t, "command.confirmed", 0, fmt.Sprintf("device %d", id)); n != 1 {
		t.Errorf("confirmation not audited as the device: %d", n)
	}

	// Out of order: ignored, but the device was seen.
	*w.Now = w.Now.Add(time.Minute)
	w.Report(t, id, disabled, 2)
	if dev := w.MustDevice(t, id); dev.ReportedVersion != 3 || dev.ReportedState != enabled || !dev.LastSeenAt.Equal(*w.Now) {
		t.Errorf("after an out-of-order report: reported %s v%d, seen %v (want enabled v3, seen %v)", dev.ReportedState, dev.ReportedVersion, dev.LastSeenAt, *w.Now)
	}

	// A version never issued is suspicious: audited, not recorded, not confirmed.
	w.Report(t, id, enabled, 9)
	if dev := w.MustDevice(t, id); dev.ReportedVersion != 3 || dev.DesiredVersion != 3 {
		t.Errorf("after a report ahead of desired: %+v", dev)
	}
	if n := badReports(); n != 1 {
		t.Errorf("%d bad_report entries, want 1", n)
	}

	// The right version in the wrong state confirms nothing: the device
	// refused it (testDeviceRefusedRevoke).
	c4, err := w.Devices.SetDesiredState(mgr, id, disabled, "")
	if err != nil {
		t.Fatal(err)
	}
	w.Report(t, id, enabled, 4)
	if c := w.MustCommand(t, id, 4); c.Status != doorledger.CommandRefused {
		t.Errorf("v4 after a wrong-state report: %s, want refused", c.Status)
	}
	if n := w.JournalCount(t, "command.refused", c4.ID, ""); n != 1 {
		t.Errorf("%d command.refused entries, want 1", n)
	}
	w.Report(t, id, disabled, 4)
	if c := w.MustCommand(t, id, 4); c.Status != doorledger.CommandConfirmed || c.ID != c4.ID {
		t.Errorf("v4 after the right report: %+v", c)
	}
	if open, err := w.Devices.FindCommands(mgr, doorledger.CommandFilter{DeviceID: id, Open: true}); err != nil || len(open) != 0 {
		t.Errorf("open commands: %+v, %v", open, err)
	}
	if dev := w.MustDevice(t, id); dev.Unconsented {
		t.Errorf("a consented device was flagged")
	}

	// Unknown devices and malformed reports are refused for good.
	err = w.DeviceReports.ReportState(context.Background(), doorledger.ReportedState{DeviceID: 9999, State: enabled, Version: 1})
	WantCode(t, "report of an unknown device", err, doorledger.ENOTFOUND)
	err = w.DeviceReports.ReportState(context.Background(), doorledger.ReportedState{DeviceID: id, State: "open", Version: 1})
	WantCode(t, "report of a bad state", err, doorledger.EINVALID)
}

func testDeviceUnconsentedReportingEnabled(t *testing.T, newServices NewServices) {
	w := NewDeviceWorld(t, newServices(t))
	mgr := as(w.MgrA)
	enabled, disabled := doorledger.StateEnabled, doorledger.StateDisabled

	// A manager records a black box found in the panel.
	found, err := w.Devices.RecordFoundDevice(mgr, w.A, doorledger.DeviceDetails{Vendor: " Shady ", Serial: "X-1", Location: "basement panel"})
	if err != nil {
		t.Fatal(err)
	}
	if !found.Unconsented || found.DesiredState != disabled || found.ConsentID != 0 || found.InstallerID != 0 || found.Vendor != "Shady" {
		t.Errorf("found device = %+v", found)
	}
	if n := w.JournalCount(t, "device.found", found.ID, ""); n != 1 {
		t.Errorf("%d device.found entries", n)
	}
	for _, to := range []string{w.MgrA.Email, w.BoardA.Email} {
		if n := w.AlertCount(t, to, "Unconsented device found*"); n != 1 {
			t.Errorf("%d found-device alerts to %s, want 1", n, to)
		}
	}
	_, err = w.Devices.RecordFoundDevice(mgr, w.A, doorledger.DeviceDetails{Vendor: "Shady", Serial: "X-1", Location: "roof"})
	WantCode(t, "same vendor and serial again", err, doorledger.ECONFLICT)
	_, err = w.Devices.RecordFoundDevice(mgr, w.A, doorledger.DeviceDetails{Model: "?"})
	if f := doorledger.ErrorFields(err); f["vendor"] == "" || f["serial"] == "" || f["location"] == "" {
		t.Errorf("empty found device: %v", err)
	}

	// It reports that it is enabled: flagged, told to disable, alert.
	w.Report(t, found.ID, enabled, 0)
	dev := w.MustDevice(t, found.ID)
	if !dev.Unconsented || dev.DesiredState != disabled || dev.DesiredVersion != 1 || dev.ReportedState != enabled {
		t.Errorf("after reporting enabled: %+v", dev)
	}
	if c := w.MustCommand(t, found.ID, 1); c.State != disabled || c.RequestedBy != "system" {
		t.Errorf("command = %+v, want disabled by system", c)
	}
	calls := w.PushCalls()
	if len(calls) != 1 || calls[0][0].DeviceID != found.ID || calls[0][0].State != disabled || calls[0][0].Version != 1 {
		t.Errorf("pushed %+v, want the disable", calls)
	}
	unconsentedAudits := func(id int64) int {
		return w.JournalCount(t, "device.unconsented", id, fmt.Sprintf("device %d", id))
	}
	if n := unconsentedAudits(found.ID); n != 1 {
		t.Errorf("%d device.unconsented entries, want 1", n)
	}
	for _, to := range []string{w.MgrA.Email, w.BoardA.Email} {
		if n := w.AlertCount(t, to, "UNCONSENTED device*"); n != 1 {
			t.Errorf("%d unconsented alerts to %s, want 1", n, to)
		}
	}
	if n := w.AlertCount(t, w.MgrB.Email, "*"); n != 0 {
		t.Errorf("another building's manager got %d alerts", n)
	}
	// Saying it again changes nothing: no second command, alert or entry.
	w.Report(t, found.ID, enabled, 0)
	if dev := w.MustDevice(t, found.ID); dev.DesiredVersion != 1 {
		t.Errorf("desired version %d after a repeat, want 1", dev.DesiredVersion)
	}
	if n := w.AlertCount(t, w.MgrA.Email, "UNCONSENTED device*"); n != 1 || unconsentedAudits(found.ID) != 1 {
		t.Errorf("a repeat alerted again: %d alerts", n)
	}
	w.Report(t, found.ID, disabled, 1)
	if c := w.MustCommand(t, found.ID, 1); c.Status != doorledger.CommandConfirmed {
		t.Errorf("disable not confirmed: %s", c.Status)
	}

	// A device awaiting its consent must not be enabled either.
	req, err := w.Consents.RequestConsent(as(w.InstA), w.A, Request("SN-WAITING", w.SignerA))
	if err != nil {
		t.Fatal(err)
	}
	waiting := req.DeviceID
	w.Report(t, waiting, enabled, 0)
	if dev := w.MustDevice(t, waiting); !dev.Unconsented || dev.DesiredVersion != 1 || unconsentedAudits(waiting) != 1 {
		t.Errorf("awaiting device reporting enabled: %+v", dev)
	}

	// A device enabled under consent and merely behind the disable that followed
	// the withdrawal is not "unconsented"; one claiming that disable's version
	// while enabled is. Signing enables it (v1); the withdrawal disables it (v2).
	lagging, _, withdraw := w.signedDevice(t)
	w.Report(t, lagging, enabled, 1)
	if _, err := w.Consents.EndByToken(context.Background(), withdraw, "withdrawn"); err != nil {
		t.Fatal(err)
	}
	w.Report(t, lagging, enabled, 1)
	if dev := w.MustDevice(t, lagging); dev.Unconsented || dev.DesiredVersion != 2 || unconsentedAudits(lagging) != 0 {
		t.Errorf("lagging device: %+v", dev)
	}
	w.Report(t, lagging, enabled, 2)
	if dev := w.MustDevice(t, lagging); !dev.Unconsented || dev.DesiredVersion != 3 || unconsentedAudits(lagging) != 1 {
		t.Errorf("device enabled at the disable's version: %+v", dev)
	}
}
