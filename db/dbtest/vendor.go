package dbtest

import (
	"context"
	"crypto/sha256"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/doorledger/doorledger"
)

var vendorTests = []test{
	{"VendorIntegrationCreate", testVendorIntegrationCreate},
	{"VendorKeysRotateRemoveRetire", testVendorKeysRotateRemoveRetire},
	{"VendorDeviceRoute", testVendorDeviceRoute},
	{"VendorRecordEvents", testVendorRecordEvents},
	{"VendorReportState", testVendorReportState},
}

// VendorWorld is the unlock world with the desired states handed to the
// device controller.
type VendorWorld struct {
	*UnlockWorld
	Pushes []doorledger.DesiredState
}

// NewVendorWorld builds the vendor world on s.
func NewVendorWorld(t testing.TB, s Services) *VendorWorld {
	t.Helper()
	w := &VendorWorld{UnlockWorld: NewUnlockWorld(t, s, "UTC", time.Time{})}
	s.OnDesired(func(states []doorledger.DesiredState) { w.Pushes = append(w.Pushes, states...) })
	return w
}

// VendorRequest is a signed request of integration v at now, over body.
func VendorRequest(v int64, body string) doorledger.VendorRequest {
	t := time.Now().Truncate(time.Second)
	return doorledger.VendorRequest{VendorID: v, SignedAt: t, Digest: sha256.Sum256([]byte(fmt.Sprint(t.Unix(), ".", body))), Until: t.Add(5 * time.Minute)}
}

// WantKeys checks keys are want, in order.
func WantKeys(t testing.TB, what string, got [][]byte, want ...string) {
	t.Helper()
	var g []string
	for _, k := range got {
		g = append(g, string(k))
	}
	if !slices.Equal(g, want) {
		t.Errorf("%s: keys %q, want %q", what, g, want)
	}
}

// journaled counts the entries of action about object id.
func (w *UnlockWorld) journaled(t testing.TB, building int64, action string, id int64) int {
	t.Helper()
	return len(slices.DeleteFunc(w.Journal(t, building, action), func(e *doorledger.AuditEntry) bool { return e.ObjectID != id }))
}

// CreateVendor creates a vendor integration (as the admin) for buildings.
func CreateVendor(t testing.TB, w *UnlockWorld, name string, buildings ...int64) (*doorledger.VendorIntegration, string) {
	t.Helper()
	v, key, err := w.Vendors.CreateVendorIntegration(As(w.Admin), doorledger.VendorIntegrationInput{
		Name: name, WebhookURL: "https://" + strings.ToLower(strings.ReplaceAll(name, " ", "")) + ".example/hook", BuildingIDs: buildings})
	if err != nil {
		t.Fatal(err)
	}
	return v, key
}

func testVendorIntegrationCreate(t *testing.T, newServices NewServices) {
	w := NewUnlockWorld(t, newServices(t), "UTC", time.Time{})
	v, key := CreateVendor(t, w, "Acme Cloud", w.B, w.A)
	if !strings.HasPrefix(key, doorledger.VendorKeyPrefix) || len(key) != len(doorledger.VendorKeyPrefix)+43 {
		t.Errorf("key %q: want the prefix and 32 random bytes in base64url", key)
	}
	sum := sha256.Sum256([]byte(key))
	if v.Name != "Acme Cloud" || v.Key.Fingerprint != fmt.Sprintf("%x", sum[:4]) || v.PreviousKey.Fingerprint != "" || v.Retired {
		t.Errorf("created %+v", v)
	}
	// Buildings by name: Alder Court (A), Birch House (B).
	if !slices.Equal(v.BuildingIDs, []int64{w.A, w.B}) || !slices.Equal(v.Buildings, []string{"Alder Court", "Birch House"}) {
		t.Errorf("buildings %v %v", v.BuildingIDs, v.Buildings)
	}
	list, err := w.Vendors.FindVendorIntegrations(As(w.Admin))
	if err != nil || len(list) != 1 || list[0].ID != v.ID {
		t.Fatalf("list %v %v", list, err)
	}
	// One audit entry per covered building, so each building's journal shows it.
	if n := len(slices.DeleteFunc(w.Journal(t, 0, "vendor.create"), func(e *doorledger.AuditEntry) bool { return e.ObjectID != v.ID })); n != 2 {
		t.Errorf("audit entries %d, want 2", n)
	}

	for _, tt := range []struct {
		name  string
		in    doorledger.VendorIntegrationInput
		field string
		code  string
	}{
		{"no name", doorledger.VendorIntegrationInput{WebhookURL: "https://x.example", BuildingIDs: []int64{w.A}}, "name", doorledger.EINVALID},
		{"plain http", doorledger.VendorIntegrationInput{Name: "X", WebhookURL: "http://x.example/hook", BuildingIDs: []int64{w.A}}, "webhook_url", doorledger.EINVALID},
		{"credentials in URL", doorledger.VendorIntegrationInput{Name: "X", WebhookURL: "https://u:p@x.example/hook", BuildingIDs: []int64{w.A}}, "webhook_url", doorledger.EINVALID},
		{"not a URL", doorledger.VendorIntegrationInput{Name: "X", WebhookURL: "x.example", BuildingIDs: []int64{w.A}}, "webhook_url", doorledger.EINVALID},
		{"no building", doorledger.VendorIntegrationInput{Name: "X", WebhookURL: "https://x.example"}, "buildings", doorledger.EINVALID},
		{"unknown building", doorledger.VendorIntegrationInput{Name: "X", WebhookURL: "https://x.example", BuildingIDs: []int64{999}}, "buildings", doorledger.EINVALID},
		{"name in use", doorledger.VendorIntegrationInput{Name: "acme cloud", WebhookURL: "https://x.example", BuildingIDs: []int64{w.A}}, "name", doorledger.ECONFLICT},
	} {
		_, _, err := w.Vendors.CreateVendorIntegration(As(w.Admin), tt.in)
		if doorledger.ErrorCode(err) != tt.code || doorledger.ErrorFields(err)[tt.field] == "" {
			t.Errorf("%s: err %v, want %s on %s", tt.name, err, tt.code, tt.field)
		}
	}
	// Loopback http is allowed (a local simulator, tests).
	if _, _, err := w.Vendors.CreateVendorIntegration(As(w.Admin), doorledger.VendorIntegrationInput{Name: "Local", WebhookURL: "http://127.0.0.1:9/hook", BuildingIDs: []int64{w.A}}); err != nil {
		t.Errorf("loopback http: %v", err)
	}

	// Admins only.
	for _, ctx := range []context.Context{As(w.MgrA), As(w.BoardA), context.Background()} {
		if _, _, err := w.Vendors.CreateVendorIntegration(ctx, doorledger.VendorIntegrationInput{Name: "Y", WebhookURL: "https://y.example", BuildingIDs: []int64{w.A}}); err == nil {
			t.Error("a non-admin created an integration")
		}
		if _, err := w.Vendors.FindVendorIntegrations(ctx); err == nil {
			t.Error("a non-admin listed integrations")
		}
		if _, err := w.Vendors.RotateVendorKey(ctx, v.ID); err == nil {
			t.Error("a non-admin rotated a key")
		}
	}
}

func testVendorKeysRotateRemoveRetire(t *testing.T, newServices NewServices) {
	w := NewVendorWorld(t, newServices(t))
	vs := w.Vendors
	v, k1 := CreateVendor(t, w.UnlockWorld, "Acme Cloud", w.A)
	keys, err := vs.VendorKeys(context.Background(), v.ID)
	if err != nil {
		t.Fatal(err)
	}
	WantKeys(t, "new", keys, k1)

	k2, err := vs.RotateVendorKey(as(w.Admin), v.ID)
	if err != nil || k2 == k1 {
		t.Fatalf("rotate: %q %v", k2, err)
	}
	keys, _ = vs.VendorKeys(context.Background(), v.ID)
	WantKeys(t, "after rotation: both, current first", keys, k2, k1)
	got, _ := vs.FindVendorIntegrationByID(as(w.Admin), v.ID)
	if got.PreviousKey.Fingerprint != v.Key.Fingerprint || got.Key.Fingerprint == v.Key.Fingerprint {
		t.Errorf("fingerprints after rotation: %+v %+v", got.Key, got.PreviousKey)
	}

	// Rotating again drops the oldest key: two are active at most.
	k3, _ := vs.RotateVendorKey(as(w.Admin), v.ID)
	keys, _ = vs.VendorKeys(context.Background(), v.ID)
	WantKeys(t, "second rotation", keys, k3, k2)

	if err := vs.RemovePreviousVendorKey(as(w.Admin), v.ID); err != nil {
		t.Fatal(err)
	}
	keys, _ = vs.VendorKeys(context.Background(), v.ID)
	WantKeys(t, "previous removed", keys, k3)
	WantCode(t, "remove a previous key that is gone", vs.RemovePreviousVendorKey(as(w.Admin), v.ID), doorledger.ECONFLICT)

	if err := vs.RetireVendorIntegration(as(w.Admin), v.ID); err != nil {
		t.Fatal(err)
	}
	_, err = vs.VendorKeys(context.Background(), v.ID)
	WantCode(t, "keys of a retired integration", err, doorledger.EUNAUTHORIZED)
	_, err = vs.VendorKeys(context.Background(), 999)
	WantCode(t, "keys of an unknown integration", err, doorledger.EUNAUTHORIZED)
	_, err = vs.RotateVendorKey(as(w.Admin), v.ID)
	WantCode(t, "rotate a retired integration", err, doorledger.ECONFLICT)
	WantCode(t, "retire twice", vs.RetireVendorIntegration(as(w.Admin), v.ID), doorledger.ECONFLICT)
	// Its name is free again.
	CreateVendor(t, w.UnlockWorld, "Acme Cloud", w.A)
	for _, action := range []string{"vendor.rotate_key", "vendor.remove_previous_key", "vendor.retire"} {
		if w.journaled(t, 0, action, v.ID) == 0 {
			t.Errorf("no %s audit entry", action)
		}
	}
}

// routes is what devicectl.Router asks a backend's vendor service: both
// backends' answer it, though the root interface does not name it.
type routes interface {
	doorledger.VendorService
	DeviceRoute(ctx context.Context, deviceID int64) (doorledger.DeviceRoute, error)
}

func testVendorDeviceRoute(t *testing.T, newServices NewServices) {
	w := NewVendorWorld(t, newServices(t))
	vs, ok := w.Vendors.(routes)
	if !ok {
		t.Fatalf("%T says no device's route", w.Vendors)
	}
	v, key := CreateVendor(t, w.UnlockWorld, "Acme Cloud", w.A)
	devA, _ := w.EnabledDevice(t, w.A)
	devB, _ := w.EnabledDevice(t, w.B)

	route, err := vs.DeviceRoute(context.Background(), devA)
	if err != nil || route.VendorID != 0 {
		t.Fatalf("a device on MQTT: %+v %v", route, err)
	}
	_, err = vs.DeviceRoute(context.Background(), 999)
	WantCode(t, "route of an unknown device", err, doorledger.ENOTFOUND)

	// A device of a building the integration does not cover is refused (the
	// database refuses it too: tested beside each backend).
	WantCode(t, "device of another building", vs.SetDeviceVendor(as(w.Admin), devB, v.ID), doorledger.EINVALID)
	WantCode(t, "a manager", vs.SetDeviceVendor(as(w.MgrA), devA, v.ID), doorledger.EFORBIDDEN)
	WantCode(t, "unknown integration", vs.SetDeviceVendor(as(w.Admin), devA, 999), doorledger.ENOTFOUND)

	w.Pushes = nil
	if err := vs.SetDeviceVendor(as(w.Admin), devA, v.ID); err != nil {
		t.Fatal(err)
	}
	route, err = vs.DeviceRoute(context.Background(), devA)
	if err != nil || route.VendorID != v.ID || route.WebhookURL != v.WebhookURL || string(route.Key) != key {
		t.Fatalf("route %+v %v", route, err)
	}
	if d, _ := w.Devices.FindDeviceByID(sys(), devA); d.Transport != "webhook" {
		t.Errorf("transport %q", d.Transport)
	}
	// The new route gets the device's current desired state after commit.
	if len(w.Pushes) != 1 || w.Pushes[0].DeviceID != devA || w.Pushes[0].Version != 1 || w.Pushes[0].State != doorledger.StateEnabled {
		t.Errorf("pushes %+v", w.Pushes)
	}
	got, _ := vs.FindVendorIntegrationByID(as(w.Admin), v.ID)
	if !slices.Equal(got.DeviceIDs, []int64{devA}) {
		t.Errorf("devices %v", got.DeviceIDs)
	}
	if n := w.journaled(t, w.A, "device.vendor", devA); n != 1 {
		t.Errorf("device.vendor audit entries %d", n)
	}
	// Rotation: the portal signs with the new key.
	k2, _ := vs.RotateVendorKey(as(w.Admin), v.ID)
	if route, _ := vs.DeviceRoute(context.Background(), devA); string(route.Key) != k2 {
		t.Error("route still signs with the old key")
	}
	// Retired: pushes fail visibly rather than going elsewhere.
	if err := vs.RetireVendorIntegration(as(w.Admin), v.ID); err != nil {
		t.Fatal(err)
	}
	_, err = vs.DeviceRoute(context.Background(), devA)
	WantCode(t, "route through a retired integration", err, doorledger.ECONFLICT)
	devA2, _ := w.EnabledDevice(t, w.A)
	WantCode(t, "set a retired integration", vs.SetDeviceVendor(as(w.Admin), devA2, v.ID), doorledger.ECONFLICT)
	// Back to MQTT.
	if err := vs.SetDeviceVendor(as(w.Admin), devA, 0); err != nil {
		t.Fatal(err)
	}
	if route, err := vs.DeviceRoute(context.Background(), devA); err != nil || route.VendorID != 0 {
		t.Errorf("back on MQTT: %+v %v", route, err)
	}
}

func testVendorRecordEvents(t *testing.T, newServices NewServices) {
	w := NewVendorWorld(t, newServices(t))
	vs := w.Vendors
	v, _ := CreateVendor(t, w.UnlockWorld, "Acme Cloud", w.A)
	devA, _ := w.EnabledDevice(t, w.A)
	devB, _ := w.EnabledDevice(t, w.B)
	now := *w.Now
	ev := func(dev int64, id string) doorledger.UnlockEvent {
		e := UnlockEv(dev, id, now.Add(-time.Minute), doorledger.UnlockGranted)
		e.Source = doorledger.SourceHTTP
		return e
	}
	ref := func(building int64, serial, id string) doorledger.UnlockEvent {
		e := ev(0, id)
		e.DeviceRef, e.BuildingID = serial, building
		return e
	}
	// recorded says which of the event ids the building holds.
	recorded := func(building int64, ids ...string) []string {
		var got []string
		for _, id := range ids {
			if w.Recorded(t, building, id) {
				got = append(got, id)
			}
		}
		return got
	}

	for _, tt := range []struct {
		name   string
		events []doorledger.UnlockEvent
		field  string
		msg    string
	}{
		{"unknown device id", []doorledger.UnlockEvent{ev(devA, "a"), ev(999, "b")}, "event 1", "no device 999 in the buildings"},
		{"device of a building not covered", []doorledger.UnlockEvent{ev(devB, "a")}, "event 0", fmt.Sprintf("no device %d in the buildings", devB)},
		{"reference in a building not covered", []doorledger.UnlockEvent{ev(devA, "a"), ev(devA, "b"), ref(w.B, "X-1", "c")}, "event 2", fmt.Sprintf("does not report for building %d", w.B)},
	} {
		_, err := vs.RecordVendorEvents(context.Background(), VendorRequest(v.ID, tt.name), tt.events)
		if doorledger.ErrorCode(err) != doorledger.EINVALID || !strings.Contains(doorledger.ErrorFields(err)[tt.field], tt.msg) {
			t.Errorf("%s: %v, want %s: %s", tt.name, err, tt.field, tt.msg)
		}
		if got := append(recorded(w.A, "a", "b", "c"), recorded(w.B, "a", "b", "c")...); len(got) != 0 {
			t.Fatalf("%s: events %v written", tt.name, got)
		}
	}

	// A device known by its serial, and one unknown in a covered building:
	// the latter is recorded and flagged.
	d, err := w.Devices.FindDeviceByID(sys(), devA)
	if err != nil {
		t.Fatal(err)
	}
	batch := []doorledger.UnlockEvent{ev(devA, "e1"), ref(w.A, strings.ToLower(d.Serial), "e2"), ref(w.A, "BLACK-BOX-1", "e3")}
	req := VendorRequest(v.ID, "batch")
	res, err := vs.RecordVendorEvents(context.Background(), req, batch)
	if err != nil {
		t.Fatal(err)
	}
	if res.Events != 3 || res.Inserted != 3 || res.Duplicates != 0 || res.Anomalous != 1 {
		t.Errorf("result %+v", res)
	}
	if e := w.Event(t, w.A, "e2"); e.DeviceID != devA || e.Source != doorledger.SourceHTTP {
		t.Errorf("e2 %+v", e)
	}
	if e := w.Event(t, w.A, "e3"); e.DeviceID != 0 || !e.HasAnomaly(doorledger.AnomalyUnknownDevice) {
		t.Errorf("e3 %+v", e)
	}

	// The same signed request again is a replay: refused, nothing written.
	_, err = vs.RecordVendorEvents(context.Background(), req, batch)
	WantCode(t, "replay", err, doorledger.ECONFLICT)
	// Signed again (another digest), the batch is idempotent.
	res, err = vs.RecordVendorEvents(context.Background(), VendorRequest(v.ID, "batch, signed again"), batch)
	if err != nil || res.Inserted != 0 || res.Duplicates != 3 {
		t.Errorf("re-sent: %+v %v", res, err)
	}
	// A refused request is not remembered: the same one may be tried again.
	bad := VendorRequest(v.ID, "refused by the unlock service")
	badBatch := []doorledger.UnlockEvent{ev(devA, "ok"), ref(w.A, "X", "")}
	for i := 0; i < 2; i++ {
		_, err = vs.RecordVendorEvents(context.Background(), bad, badBatch)
		WantCode(t, fmt.Sprintf("refused batch, try %d", i), err, doorledger.EINVALID)
	}
	if got := recorded(w.A, "ok"); len(got) != 0 {
		t.Errorf("events of a refused batch written: %v", got)
	}

	// A retired integration records nothing.
	vs.RetireVendorIntegration(as(w.Admin), v.ID)
	_, err = vs.RecordVendorEvents(context.Background(), VendorRequest(v.ID, "after retirement"), []doorledger.UnlockEvent{ev(devA, "e5")})
	WantCode(t, "retired", err, doorledger.EUNAUTHORIZED)
}

func testVendorReportState(t *testing.T, newServices NewServices) {
	w := NewVendorWorld(t, newServices(t))
	vs := w.Vendors
	v, _ := CreateVendor(t, w.UnlockWorld, "Acme Cloud", w.A)
	other, _ := CreateVendor(t, w.UnlockWorld, "Other Cloud", w.A)
	devA, _ := w.EnabledDevice(t, w.A)
	if err := vs.SetDeviceVendor(as(w.Admin), devA, v.ID); err != nil {
		t.Fatal(err)
	}
	cmd, err := w.Devices.SetDesiredState(as(w.MgrA), devA, doorledger.StateDisabled, "test")
	if err != nil {
		t.Fatal(err)
	}
	report := doorledger.ReportedState{DeviceID: devA, State: doorledger.StateDisabled, Version: cmd.Version, At: time.Now()}
	audits := func() int {
		all, err := w.Audit.FindAuditEntries(sys(), doorledger.AuditFilter{Limit: 100000})
		if err != nil {
			t.Fatal(err)
		}
		return len(all)
	}
	before := audits()

	for _, tt := range []struct {
		name   string
		vendor int64
		r      doorledger.ReportedState
		code   string
	}{
		{"another integration's device", other.ID, report, doorledger.EINVALID},
		{"unknown device", v.ID, doorledger.ReportedState{DeviceID: 999, State: doorledger.StateDisabled, Version: 1}, doorledger.EINVALID},
		{"bad state", v.ID, doorledger.ReportedState{DeviceID: devA, State: "open", Version: cmd.Version}, doorledger.EINVALID},
		{"negative version", v.ID, doorledger.ReportedState{DeviceID: devA, State: doorledger.StateDisabled, Version: -1}, doorledger.EINVALID},
	} {
		err := vs.ReportVendorState(context.Background(), VendorRequest(tt.vendor, tt.name), tt.r)
		WantCode(t, tt.name, err, tt.code)
	}
	if n := audits(); n != before {
		t.Errorf("refused reports wrote %d audit entries", n-before)
	}
	if d, err := w.Devices.FindDeviceByID(sys(), devA); err != nil || d.ReportedVersion == cmd.Version {
		t.Errorf("a refused report was recorded: %+v %v", d, err)
	}

	req := VendorRequest(v.ID, "report")
	if err := vs.ReportVendorState(context.Background(), req, report); err != nil {
		t.Fatal(err)
	}
	cmds, _ := w.Devices.FindCommands(sys(), doorledger.CommandFilter{DeviceID: devA})
	if cmds[0].Version != cmd.Version || cmds[0].Status != doorledger.CommandConfirmed {
		t.Errorf("command %+v, want confirmed", cmds[0])
	}
	WantCode(t, "replayed report", vs.ReportVendorState(context.Background(), req, report), doorledger.ECONFLICT)
}
