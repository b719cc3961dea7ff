package sqlite_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/doorledger/doorledger"
	"github.com/doorledger/doorledger/db/dbtest"
	"github.com/doorledger/doorledger/db/sqlite"
)

var sealKey = bytes.Repeat([]byte{7}, sqlite.SealKeySize)

// vendorWorld is the unlock world with a vendor service and the desired
// states handed to the device controller.
type vendorWorld struct {
	*unlockWorld
	vs     *sqlite.VendorService
	pushes []doorledger.DesiredState
}

func newVendorWorld(t *testing.T) *vendorWorld {
	t.Helper()
	w := &vendorWorld{unlockWorld: newUnlockWorld(t, "UTC", time.Time{})}
	w.vs = w.Vendors.(*sqlite.VendorService) // built on w.svc with sealKey (openServices)
	w.d.OnDesired = func(states []doorledger.DesiredState) { w.pushes = append(w.pushes, states...) }
	return w
}

func (w *vendorWorld) create(t *testing.T, name string, buildings ...int64) (*doorledger.VendorIntegration, string) {
	return dbtest.CreateVendor(t, w.UnlockWorld, name, buildings...)
}

// request is a signed request of integration v at now, over body.
func (w *vendorWorld) request(v int64, body string) doorledger.VendorRequest {
	t := time.Now().Truncate(time.Second)
	return doorledger.VendorRequest{VendorID: v, SignedAt: t, Digest: sha256.Sum256([]byte(fmt.Sprint(t.Unix(), ".", body))), Until: t.Add(5 * time.Minute)}
}

func wantKeys(t *testing.T, what string, got [][]byte, want ...string) {
	t.Helper()
	var g []string
	for _, k := range got {
		g = append(g, string(k))
	}
	if !slices.Equal(g, want) {
		t.Errorf("%s: keys %q, want %q", what, g, want)
	}
}

func TestVendorKeysRotateRemoveRetire(t *testing.T) {
	w := newVendorWorld(t)
	v, k1 := w.create(t, "Acme Cloud", w.A)
	keys, err := w.vs.VendorKeys(context.Background(), v.ID)
	if err != nil {
		t.Fatal(err)
	}
	wantKeys(t, "new", keys, k1)

	k2, err := w.vs.RotateVendorKey(uctx(w.Admin), v.ID)
	if err != nil || k2 == k1 {
		t.Fatalf("rotate: %q %v", k2, err)
	}
	keys, _ = w.vs.VendorKeys(context.Background(), v.ID)
	wantKeys(t, "after rotation: both, current first", keys, k2, k1)
	got, _ := w.vs.FindVendorIntegrationByID(uctx(w.Admin), v.ID)
	if got.PreviousKey.Fingerprint != v.Key.Fingerprint || got.Key.Fingerprint == v.Key.Fingerprint {
		t.Errorf("fingerprints after rotation: %+v %+v", got.Key, got.PreviousKey)
	}

	// Rotating again drops the oldest key: two are active at most.
	k3, _ := w.vs.RotateVendorKey(uctx(w.Admin), v.ID)
	keys, _ = w.vs.VendorKeys(context.Background(), v.ID)
	wantKeys(t, "second rotation", keys, k3, k2)

	if err := w.vs.RemovePreviousVendorKey(uctx(w.Admin), v.ID); err != nil {
		t.Fatal(err)
	}
	keys, _ = w.vs.VendorKeys(context.Background(), v.ID)
	wantKeys(t, "previous removed", keys, k3)
	wantCode(t, "remove a previous key that is gone", w.vs.RemovePreviousVendorKey(uctx(w.Admin), v.ID), doorledger.ECONFLICT)

	// Keys are sealed: the database file holds none of them in clear, and
	// another seal key does not open them.
	for _, k := range []string{k1, k2, k3} {
		if n := w.count(t, `SELECT COUNT(*) FROM vendor_integrations WHERE instr(key_sealed, ?) > 0 OR instr(COALESCE(prev_key_sealed, x''), ?) > 0`, []byte(k), []byte(k)); n != 0 {
			t.Errorf("key %s… stored in clear", k[:10])
		}
	}
	raw, err := os.ReadFile(w.d.Path)
	if err != nil {
		t.Fatal(err)
	}
	wal, _ := os.ReadFile(w.d.Path + "-wal")
	if bytes.Contains(append(raw, wal...), []byte(k3)) {
		t.Error("the database file holds the current key in clear")
	}
	other, _ := sqlite.NewVendorService(w.d, w.svc, bytes.Repeat([]byte{8}, sqlite.SealKeySize))
	if _, err := other.VendorKeys(context.Background(), v.ID); err == nil || doorledger.ErrorCode(err) != doorledger.EINTERNAL {
		t.Errorf("another seal key opened the keys: %v", err)
	}
	if _, err := sqlite.NewVendorService(w.d, w.svc, []byte("short")); err == nil {
		t.Error("a short seal key was accepted")
	}

	if err := w.vs.RetireVendorIntegration(uctx(w.Admin), v.ID); err != nil {
		t.Fatal(err)
	}
	_, err = w.vs.VendorKeys(context.Background(), v.ID)
	wantCode(t, "keys of a retired integration", err, doorledger.EUNAUTHORIZED)
	_, err = w.vs.VendorKeys(context.Background(), 999)
	wantCode(t, "keys of an unknown integration", err, doorledger.EUNAUTHORIZED)
	_, err = w.vs.RotateVendorKey(uctx(w.Admin), v.ID)
	wantCode(t, "rotate a retired integration", err, doorledger.ECONFLICT)
	wantCode(t, "retire twice", w.vs.RetireVendorIntegration(uctx(w.Admin), v.ID), doorledger.ECONFLICT)
	// Its name is free again.
	w.create(t, "Acme Cloud", w.A)
	for _, action := range []string{"vendor.rotate_key", "vendor.remove_previous_key", "vendor.retire"} {
		if n := w.count(t, `SELECT COUNT(*) FROM audit_entries WHERE action = ? AND object_id = ?`, action, v.ID); n == 0 {
			t.Errorf("no %s audit entry", action)
		}
	}
	_, err = w.d.Writer().Exec(`DELETE FROM vendor_integrations WHERE id = ?`, v.ID)
	wantRefused(t, "delete an integration", err, "retired, never deleted")
}

func TestVendorDeviceRoute(t *testing.T) {
	w := newVendorWorld(t)
	v, key := w.create(t, "Acme Cloud", w.A)
	devA, _ := w.enabledDevice(t, w.A)
	devB, _ := w.enabledDevice(t, w.B)

	route, err := w.vs.DeviceRoute(context.Background(), devA)
	if err != nil || route.VendorID != 0 {
		t.Fatalf("a device on MQTT: %+v %v", route, err)
	}
	_, err = w.vs.DeviceRoute(context.Background(), 999)
	wantCode(t, "route of an unknown device", err, doorledger.ENOTFOUND)

	// A device of a building the integration does not cover: refused by the
	// service and by the database.
	wantCode(t, "device of another building", w.vs.SetDeviceVendor(uctx(w.Admin), devB, v.ID), doorledger.EINVALID)
	_, err = w.d.Writer().Exec(`UPDATE devices SET vendor_integration_id = ? WHERE id = ?`, v.ID, devB)
	wantRefused(t, "direct update", err, "must cover its building")
	wantCode(t, "a manager", w.vs.SetDeviceVendor(uctx(w.MgrA), devA, v.ID), doorledger.EFORBIDDEN)
	wantCode(t, "unknown integration", w.vs.SetDeviceVendor(uctx(w.Admin), devA, 999), doorledger.ENOTFOUND)

	w.pushes = nil
	if err := w.vs.SetDeviceVendor(uctx(w.Admin), devA, v.ID); err != nil {
		t.Fatal(err)
	}
	route, err = w.vs.DeviceRoute(context.Background(), devA)
	if err != nil || route.VendorID != v.ID || route.WebhookURL != v.WebhookURL || string(route.Key) != key {
		t.Fatalf("route %+v %v", route, err)
	}
	if d, _ := sqlite.NewDeviceService(w.d).FindDeviceByID(sys(), devA); d.Transport != "webhook" {
		t.Errorf("transport %q", d.Transport)
	}
	// The new route gets the device's current desired state after commit.
	if len(w.pushes) != 1 || w.pushes[0].DeviceID != devA || w.pushes[0].Version != 1 || w.pushes[0].State != doorledger.StateEnabled {
		t.Errorf("pushes %+v", w.pushes)
	}
	got, _ := w.vs.FindVendorIntegrationByID(uctx(w.Admin), v.ID)
	if !slices.Equal(got.DeviceIDs, []int64{devA}) {
		t.Errorf("devices %v", got.DeviceIDs)
	}
	if n := w.count(t, `SELECT COUNT(*) FROM audit_entries WHERE action = 'device.vendor' AND object_id = ? AND building_id = ?`, devA, w.A); n != 1 {
		t.Errorf("device.vendor audit entries %d", n)
	}
	// Rotation: the portal signs with the new key.
	k2, _ := w.vs.RotateVendorKey(uctx(w.Admin), v.ID)
	if route, _ := w.vs.DeviceRoute(context.Background(), devA); string(route.Key) != k2 {
		t.Error("route still signs with the old key")
	}
	// Retired: pushes fail visibly rather than going elsewhere.
	if err := w.vs.RetireVendorIntegration(uctx(w.Admin), v.ID); err != nil {
		t.Fatal(err)
	}
	_, err = w.vs.DeviceRoute(context.Background(), devA)
	wantCode(t, "route through a retired integration", err, doorledger.ECONFLICT)
	devA2, _ := w.enabledDevice(t, w.A)
	wantCode(t, "set a retired integration", w.vs.SetDeviceVendor(uctx(w.Admin), devA2, v.ID), doorledger.ECONFLICT)
	// Back to MQTT.
	if err := w.vs.SetDeviceVendor(uctx(w.Admin), devA, 0); err != nil {
		t.Fatal(err)
	}
	if route, err := w.vs.DeviceRoute(context.Background(), devA); err != nil || route.VendorID != 0 {
		t.Errorf("back on MQTT: %+v %v", route, err)
	}
}

func TestVendorRecordEvents(t *testing.T) {
	w := newVendorWorld(t)
	v, _ := w.create(t, "Acme Cloud", w.A)
	devA, _ := w.enabledDevice(t, w.A)
	devB, _ := w.enabledDevice(t, w.B)
	now := *w.Now
	ev := func(dev int64, id string) doorledger.UnlockEvent {
		e := unlockEv(dev, id, now.Add(-time.Minute), doorledger.UnlockGranted)
		e.Source = doorledger.SourceHTTP
		return e
	}
	ref := func(building int64, serial, id string) doorledger.UnlockEvent {
		e := ev(0, id)
		e.DeviceRef, e.BuildingID = serial, building
		return e
	}
	count := func() int { return w.count(t, `SELECT COUNT(*) FROM unlock_events`) }

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
		_, err := w.vs.RecordVendorEvents(context.Background(), w.request(v.ID, tt.name), tt.events)
		if doorledger.ErrorCode(err) != doorledger.EINVALID || !strings.Contains(doorledger.ErrorFields(err)[tt.field], tt.msg) {
			t.Errorf("%s: %v, want %s: %s", tt.name, err, tt.field, tt.msg)
		}
		if n := count(); n != 0 {
			t.Fatalf("%s: %d events written", tt.name, n)
		}
	}

	// A device known by its serial, and one unknown in a covered building:
	// the latter is recorded and flagged.
	var serial string
	w.d.Reader().QueryRow(`SELECT serial FROM devices WHERE id = ?`, devA).Scan(&serial)
	batch := []doorledger.UnlockEvent{ev(devA, "e1"), ref(w.A, strings.ToLower(serial), "e2"), ref(w.A, "BLACK-BOX-1", "e3")}
	req := w.request(v.ID, "batch")
	res, err := w.vs.RecordVendorEvents(context.Background(), req, batch)
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
	_, err = w.vs.RecordVendorEvents(context.Background(), req, batch)
	wantCode(t, "replay", err, doorledger.ECONFLICT)
	// Signed again (another digest), the batch is idempotent.
	res, err = w.vs.RecordVendorEvents(context.Background(), w.request(v.ID, "batch, signed again"), batch)
	if err != nil || res.Inserted != 0 || res.Duplicates != 3 {
		t.Errorf("re-sent: %+v %v", res, err)
	}
	// A refused request is not remembered: the same one may be tried again.
	bad := w.request(v.ID, "refused by the unlock service")
	badBatch := []doorledger.UnlockEvent{ev(devA, "ok"), ref(w.A, "X", "")}
	for i := 0; i < 2; i++ {
		_, err = w.vs.RecordVendorEvents(context.Background(), bad, badBatch)
		wantCode(t, fmt.Sprintf("refused batch, try %d", i), err, doorledger.EINVALID)
	}
	if n := count(); n != 3 {
		t.Errorf("events %d, want 3", n)
	}
	if n := w.count(t, `SELECT COUNT(*) FROM vendor_requests`); n != 2 {
		t.Errorf("remembered requests %d, want 2", n)
	}
	// Expired claims go as new ones arrive.
	w.exec(t, `UPDATE vendor_requests SET expires_at = '2000-01-01T00:00:00.000000Z'`)
	if _, err := w.vs.RecordVendorEvents(context.Background(), w.request(v.ID, "later"), []doorledger.UnlockEvent{ev(devA, "e4")}); err != nil {
		t.Fatal(err)
	}
	if n := w.count(t, `SELECT COUNT(*) FROM vendor_requests`); n != 1 {
		t.Errorf("remembered requests after expiry %d, want 1", n)
	}

	// A retired integration records nothing.
	w.vs.RetireVendorIntegration(uctx(w.Admin), v.ID)
	_, err = w.vs.RecordVendorEvents(context.Background(), w.request(v.ID, "after retirement"), []doorledger.UnlockEvent{ev(devA, "e5")})
	wantCode(t, "retired", err, doorledger.EUNAUTHORIZED)
}

func TestVendorReportState(t *testing.T) {
	w := newVendorWorld(t)
	v, _ := w.create(t, "Acme Cloud", w.A)
	other, _ := w.create(t, "Other Cloud", w.A)
	devA, _ := w.enabledDevice(t, w.A)
	if err := w.vs.SetDeviceVendor(uctx(w.Admin), devA, v.ID); err != nil {
		t.Fatal(err)
	}
	devices := sqlite.NewDeviceService(w.d)
	cmd, err := devices.SetDesiredState(uctx(w.MgrA), devA, doorledger.StateDisabled, "test")
	if err != nil {
		t.Fatal(err)
	}
	report := doorledger.ReportedState{DeviceID: devA, State: doorledger.StateDisabled, Version: cmd.Version, At: time.Now()}
	audits := func() int { return w.count(t, `SELECT COUNT(*) FROM audit_entries`) }
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
		err := w.vs.ReportVendorState(context.Background(), w.request(tt.vendor, tt.name), tt.r)
		wantCode(t, tt.name, err, tt.code)
	}
	if n := audits(); n != before {
		t.Errorf("refused reports wrote %d audit entries", n-before)
	}
	if n := w.count(t, `SELECT COUNT(*) FROM devices WHERE id = ? AND reported_version > 0`, devA); n != 0 {
		t.Error("a refused report was recorded")
	}

	req := w.request(v.ID, "report")
	if err := w.vs.ReportVendorState(context.Background(), req, report); err != nil {
		t.Fatal(err)
	}
	cmds, _ := devices.FindCommands(sys(), doorledger.CommandFilter{DeviceID: devA})
	if cmds[0].Version != cmd.Version || cmds[0].Status != doorledger.CommandConfirmed {
		t.Errorf("command %+v, want confirmed", cmds[0])
	}
	wantCode(t, "replayed report", w.vs.ReportVendorState(context.Background(), req, report), doorledger.ECONFLICT)
}
