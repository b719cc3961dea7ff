package web_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/doorledger/doorledger"
	"github.com/doorledger/doorledger/db/sqlite"
	"github.com/doorledger/doorledger/devicectl"
	"github.com/doorledger/doorledger/web"
)

// testSealKey seals vendor keys in the web tests.
var testSealKey = bytes.Repeat([]byte{'k'}, sqlite.SealKeySize)

// vendorService returns a vendor service on the fixture's database. Any
// number of them agree: they share the database and the seal key.
func (f *fixture) vendorService(tb testing.TB) *sqlite.VendorService {
	tb.Helper()
	return must(sqlite.NewVendorService(f.db, sqlite.NewUnlockService(f.db), testSealKey))(tb)
}

// isVendorPath reports whether a request is for a vendor route.
func isVendorPath(p string) bool {
	return p == "/vendors" || strings.HasPrefix(p, "/vendors/") || strings.HasPrefix(p, "/api/vendors/") ||
		strings.HasPrefix(p, "/devices/") && strings.HasSuffix(p, "/vendor")
}

// withVendors makes the fixture serve the vendor routes from a server that
// has a vendor service, and every other route from the fixture's own server,
// whatever its configuration. Both share the database and the cookie keys,
// so one browser session works across them. (With Vendors in newFixture's
// configuration, this would be needed no longer.)
func (f *fixture) withVendors(tb testing.TB) *fixture {
	tb.Helper()
	vendors := web.NewServer(web.Config{
		Users: f.users, Buildings: f.buildings, Audit: sqlite.NewAuditService(f.db), Consents: f.consents, Papers: f.consents, Policies: sqlite.NewPolicyService(f.db),
		Outbox: f.outbox, Devices: sqlite.NewDeviceService(f.db), Vendors: f.vendorService(tb),
		SessionKeys: [][]byte{[]byte(strings.Repeat("h", 64)), []byte(strings.Repeat("b", 32))},
		Logger:      slog.New(slog.NewTextHandler(io.Discard, nil)),
	}).Handler()
	portal := f.server.Handler()
	f.http = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if isVendorPath(r.URL.Path) {
			vendors.ServeHTTP(w, r)
			return
		}
		portal.ServeHTTP(w, r)
	}))
	tb.Cleanup(f.http.Close)
	return f
}

// vendorRig is the fixture with an integration for building A, its key, and a
// consented device of building A under it.
type vendorRig struct {
	*fixture
	vs     *sqlite.VendorService
	vendor *doorledger.VendorIntegration
	key    string
	device *doorledger.Device
}

func newVendorRig(tb testing.TB) *vendorRig {
	tb.Helper()
	r := &vendorRig{fixture: newFixture(tb).withVendors(tb)}
	r.vs = r.vendorService(tb)
	var err error
	r.vendor, r.key, err = r.vs.CreateVendorIntegration(sys(), doorledger.VendorIntegrationInput{
		Name: "Acme Cloud", WebhookURL: "https://acme.example/doorledger", BuildingIDs: []int64{r.A.ID}})
	if err != nil {
		tb.Fatal(err)
	}
	c, _ := r.signedConsent(tb)
	r.device = must(sqlite.NewDeviceService(r.db).FindDeviceByID(sys(), c.DeviceID))(tb)
	return r
}

// apiAnswer is a machine API response, decoded.
type apiAnswer struct {
	Status      int
	ContentType string
	Error       string            `json:"error"`
	Code        string            `json:"code"`
	Reason      string            `json:"reason"`
	Index       *int              `json:"index"`
	Problems    map[string]string `json:"problems"`
	Received    int               `json:"received"`
	Inserted    int               `json:"inserted"`
	Duplicates  int               `json:"duplicates"`
	Anomalous   int               `json:"anomalous"`
	Recorded    bool              `json:"recorded"`
	raw         string
}

// call POSTs body to a vendor API path with the signature header (none when "").
func (r *vendorRig) call(tb testing.TB, path string, body io.Reader, signature string) apiAnswer {
	tb.Helper()
	req, _ := http.NewRequest(http.MethodPost, r.http.URL+path, body)
	req.Header.Set("Content-Type", "application/json")
	if signature != "" {
		req.Header.Set(devicectl.SignatureHeader, signature)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	a := apiAnswer{Status: resp.StatusCode, ContentType: resp.Header.Get("Content-Type"), raw: string(raw)}
	if err := json.Unmarshal(raw, &a); err != nil {
		tb.Fatalf("POST %s: %d, not JSON: %v\n%s", path, resp.StatusCode, err, raw)
	}
	return a
}

func (r *vendorRig) eventsPath() string { return fmt.Sprintf("/api/vendors/%d/events", r.vendor.ID) }
func (r *vendorRig) statePath() string  { return fmt.Sprintf("/api/vendors/%d/state", r.vendor.ID) }

// sign signs body with key at now plus skew.
func sign(key string, skew time.Duration, body []byte) string {
	return devicectl.Sign([]byte(key), time.Now().Add(skew), body)
}

// apiEvent is an event as a vendor posts it, occurring now (after the
// fixture's consents were signed: an ordinary, unflagged event).
func apiEvent(device any, id string) map[string]any {
	e := map[string]any{"event_id": id, "occurred_at": time.Now().UTC().Format(time.RFC3339Nano),
		"method": "courier_app", "actor_ref": "pkg-" + id, "result": "granted"}
	switch d := device.(type) {
	case int64:
		e["device_id"] = d
	case string:
		e["device"] = d
	}
	return e
}

func batchJSON(tb testing.TB, events ...map[string]any) []byte {
	tb.Helper()
	buf, err := json.Marshal(map[string]any{"events": events})
	if err != nil {
		tb.Fatal(err)
	}
	return buf
}

// written counts what a request may write: events, remembered signatures,
// audit entries, devices' reported state and commands' status.
func (r *vendorRig) written(tb testing.TB) string {
	tb.Helper()
	var out []string
	for _, q := range []string{
		`SELECT COUNT(*) FROM unlock_events`,
		`SELECT COUNT(*) FROM vendor_requests`,
		`SELECT COUNT(*) FROM audit_entries`,
		`SELECT COALESCE(SUM(reported_version), 0) || ':' || COALESCE(MAX(last_seen_at), '') FROM devices`,
		`SELECT group_concat(status) FROM (SELECT status FROM commands ORDER BY id)`,
	} {
		var s textCol
		if err := r.db.Reader().QueryRow(q).Scan(&s); err != nil {
			tb.Fatal(err)
		}
		out = append(out, string(s))
	}
	return strings.Join(out, " | ")
}

// textCol scans any column as text ("" for NULL).
type textCol string

func (s *textCol) Scan(v any) error {
	switch v := v.(type) {
	case nil:
		*s = ""
	case []byte:
		*s = textCol(v)
	default:
		*s = textCol(fmt.Sprint(v))
	}
	return nil
}

// hiddenLength hides a body's length, so it is sent chunked.
type hiddenLength struct{ io.Reader }

func TestVendorEventsRefused(t *testing.T) {
	r := newVendorRig(t)
	retired, _, err := r.vs.CreateVendorIntegration(sys(), doorledger.VendorIntegrationInput{Name: "Retired Cloud", WebhookURL: "https://retired.example", BuildingIDs: []int64{r.A.ID}})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.vs.RetireVendorIntegration(sys(), retired.ID); err != nil {
		t.Fatal(err)
	}
	dev := r.device.ID
	good := batchJSON(t, apiEvent(dev, "g1"))
	tooMany := make([]map[string]any, web.MaxVendorBatch+1)
	for i := range tooMany {
		tooMany[i] = apiEvent(dev, fmt.Sprintf("m%d", i))
	}
	missingField := apiEvent(dev, "x2")
	delete(missingField, "occurred_at")
	badType := apiEvent(dev, "x1")
	badType["result"] = 1
	huge := append([]byte(`{"events": [`), bytes.Repeat([]byte(" "), 4<<20)...)
	// A device of building B, which the integration does not cover.
	deviceB := must(sqlite.NewDeviceService(r.db).RecordFoundDevice(sys(), r.B.ID, doorledger.DeviceDetails{Vendor: "Acme", Serial: "B-1", Location: "lobby"}))(t).ID
	// Another device of building A: an event naming it by serial and the
	// rig's device by id names two devices.
	otherA := must(sqlite.NewDeviceService(r.db).RecordFoundDevice(sys(), r.A.ID, doorledger.DeviceDetails{Vendor: "Acme", Serial: "HV-KB2-0002", Location: "garage"}))(t)
	twoDevices := apiEvent(dev, "t1")
	twoDevices["device"] = otherA.Serial
	unknownRef := apiEvent(dev, "t2")
	unknownRef["device"] = "NO-SUCH-SERIAL"

	for _, tt := range []struct {
		name   string
		path   string
		body   []byte
		sig    func(body []byte) string
		chunk  bool
		status int
		reason string
		index  int // -1: none
		msg    string
	}{
		{"missing signature", r.eventsPath(), good, func([]byte) string { return "" }, false, 401, "missing_signature", -1, "Missing Doorledger-Signature"},
		{"wrong key", r.eventsPath(), good, func(b []byte) string { return sign("dlvk_guess", 0, b) }, false, 401, "bad_signature", -1, "no signature matches"},
		{"body changed after signing", r.eventsPath(), good, func([]byte) string { return sign(r.key, 0, batchJSON(t, apiEvent(dev, "other"))) }, false, 401, "bad_signature", -1, "no signature matches"},
		{"malformed header", r.eventsPath(), good, func([]byte) string { return "v1=abc" }, false, 401, "bad_signature", -1, "Malformed"},
		{"stale timestamp", r.eventsPath(), good, func(b []byte) string { return sign(r.key, -301*time.Second, b) }, false, 401, "stale_signature", -1, "Stale"},
		{"timestamp from the future", r.eventsPath(), good, func(b []byte) string { return sign(r.key, 10*time.Minute, b) }, false, 401, "stale_signature", -1, "Stale"},
		{"unknown integration", "/api/vendors/999/events", good, func(b []byte) string { return sign(r.key, 0, b) }, false, 401, "unknown_integration", -1, "Unknown or retired"},
		{"not an integration id", "/api/vendors/acme/events", good, func(b []byte) string { return sign(r.key, 0, b) }, false, 401, "unknown_integration", -1, "Unknown or retired"},
		{"retired integration", fmt.Sprintf("/api/vendors/%d/events", retired.ID), good, func(b []byte) string { return sign(r.key, 0, b) }, false, 401, "unknown_integration", -1, "Unknown or retired"},
		{"malformed JSON", r.eventsPath(), []byte(`{"events": [{"event_id": "e1",}]}`), nil, false, 400, "malformed_json", -1, "malformed JSON"},
		{"no events array", r.eventsPath(), []byte(`{"evts": []}`), nil, false, 400, "malformed_json", -1, "events: missing"},
		{"empty batch", r.eventsPath(), []byte(`{"events": []}`), nil, false, 400, "malformed_json", -1, "no events"},
		{"oversized batch", r.eventsPath(), batchJSON(t, tooMany...), nil, false, 413, "too_many_events", -1, "holds 1001 events; at most 1000"},
		{"body too large (chunked)", r.eventsPath(), huge, nil, true, 413, "too_large", -1, "larger than"},
		{"missing field", r.eventsPath(), batchJSON(t, apiEvent(dev, "x0"), apiEvent(dev, "x1"), missingField), nil, false, 422, "invalid_event", 2, "event 2: occurred_at: missing"},
		{"field of the wrong type", r.eventsPath(), batchJSON(t, badType), nil, false, 422, "invalid_event", 0, "event 0: result: must be a string"},
		{"unknown device id", r.eventsPath(), batchJSON(t, apiEvent(dev, "u0"), apiEvent(int64(999999), "u1")), nil, false, 422, "invalid_event", 1, "event 1: device_id: no device 999999 in the buildings this integration reports for"},
		{"device_id and device naming two devices", r.eventsPath(), batchJSON(t, apiEvent(dev, "t0"), twoDevices), nil, false, 422, "invalid_event", 1,
			fmt.Sprintf(`event 1: device: "HV-KB2-0002" is not the serial of device %d; device_id and device name different devices`, dev)},
		{"device_id with a serial of no device", r.eventsPath(), batchJSON(t, unknownRef), nil, false, 422, "invalid_event", 0, "device_id and device name different devices"},
		{"device of a building not covered", r.eventsPath(), batchJSON(t, apiEvent(deviceB, "b0")), nil, false, 422, "invalid_event", 0, fmt.Sprintf("no device %d in the buildings", deviceB)},
		{"reference in a building not covered", r.eventsPath(), batchJSON(t, apiEvent(dev, "r0"), func() map[string]any {
			e := apiEvent("SN-X", "r1")
			e["building_id"] = r.B.ID
			return e
		}()), nil, false, 422, "invalid_event", 1, fmt.Sprintf("does not report for building %d", r.B.ID)},
	} {
		t.Run(tt.name, func(t *testing.T) {
			before := r.written(t)
			sig := sign(r.key, 0, tt.body)
			if tt.sig != nil {
				sig = tt.sig(tt.body)
			}
			var body io.Reader = bytes.NewReader(tt.body)
			if tt.chunk {
				body = hiddenLength{body}
			}
			a := r.call(t, tt.path, body, sig)
			if a.Status != tt.status || a.Reason != tt.reason || !strings.Contains(a.Error, tt.msg) {
				t.Errorf("got %d %s %q, want %d %s containing %q", a.Status, a.Reason, a.Error, tt.status, tt.reason, tt.msg)
			}
			if !strings.HasPrefix(a.ContentType, "application/json") || a.Code != http.StatusText(tt.status) {
				t.Errorf("content type %q, code %q", a.ContentType, a.Code)
			}
			switch {
			case tt.index < 0 && a.Index != nil:
				t.Errorf("index %d, want none", *a.Index)
			case tt.index >= 0 && (a.Index == nil || *a.Index != tt.index):
				t.Errorf("index %v, want %d (%s)", a.Index, tt.index, a.raw)
			}
			if after := r.written(t); after != before {
				t.Errorf("written: %s, was %s", after, before)
			}
		})
	}

	// A body declared larger than the limit is refused before it is read.
	before := r.written(t)
	a := r.call(t, r.eventsPath(), bytes.NewReader(huge), sign(r.key, 0, huge))
	if a.Status != http.StatusRequestEntityTooLarge || !strings.HasPrefix(a.ContentType, "application/json") ||
		a.Reason != "too_large" || a.Code != http.StatusText(http.StatusRequestEntityTooLarge) || a.Error == "" {
		t.Errorf("declared too large: %d %s, want 413 with reason too_large", a.Status, a.raw)
	}
	if after := r.written(t); after != before {
		t.Errorf("written: %s, was %s", after, before)
	}
}

// TestAPIErrorsCarryReason: every JSON error of the API, the error
// handler's as well as the machine API's own refusals, names a reason.
func TestAPIErrorsCarryReason(t *testing.T) {
	r := newVendorRig(t)
	huge := bytes.Repeat([]byte(" "), 5<<20)
	for _, tt := range []struct {
		name, method, path string
		body               []byte
		status             int
		reason             string
	}{
		{"declared larger than the limit", http.MethodPost, r.eventsPath(), huge, 413, "too_large"},
		{"no such route", http.MethodGet, "/api/vendors/1/nothing", nil, 404, "not_found"},
		// A POST to a route that does not exist is 404 before any CSRF or
		// signature check (the route's own middleware makes those).
		{"no such route, posted", http.MethodPost, "/api/vendors/1/nothing", []byte("{}"), 404, "not_found"},
		{"unsigned state callback", http.MethodPost, strings.Replace(r.eventsPath(), "/events", "/state", 1), []byte("{}"), 401, "missing_signature"},
		{"wrong method", http.MethodGet, r.eventsPath(), nil, 404, "not_found"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			req, _ := http.NewRequest(tt.method, r.http.URL+tt.path, bytes.NewReader(tt.body))
			req.Header.Set("Content-Type", "application/json")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var a apiAnswer
			raw, _ := io.ReadAll(resp.Body)
			if err := json.Unmarshal(raw, &a); err != nil {
				t.Fatalf("%d, not JSON: %s", resp.StatusCode, raw)
			}
			if resp.StatusCode != tt.status || a.Reason != tt.reason || a.Error == "" || a.Code != http.StatusText(tt.status) {
				t.Errorf("got %d %s, want %d with reason %q", resp.StatusCode, raw, tt.status, tt.reason)
			}
		})
	}
}

func TestVendorEventsRecorded(t *testing.T) {
	r := newVendorRig(t)
	dev := r.device.ID
	both := apiEvent(dev, "e4") // the same device by id and by serial (any case): fine
	both["device"] = strings.ToLower(r.device.Serial)
	body := batchJSON(t, apiEvent(dev, "e1"), apiEvent(strings.ToLower(r.device.Serial), "e2"), apiEvent("BLACK-BOX-7", "e3"), both)
	// The two events named by a reference need the building.
	var batch map[string][]map[string]any
	json.Unmarshal(body, &batch)
	batch["events"][1]["building_id"], batch["events"][2]["building_id"] = r.A.ID, r.A.ID
	body, _ = json.Marshal(batch)

	sig := sign(r.key, 0, body)
	a := r.call(t, r.eventsPath(), bytes.NewReader(body), sig)
	if a.Status != http.StatusOK || a.Received != 4 || a.Inserted != 4 || a.Duplicates != 0 || a.Anomalous != 1 {
		t.Fatalf("batch: %d %s", a.Status, a.raw)
	}
	var known, unknown int
	r.db.Reader().QueryRow(`SELECT COUNT(*) FROM unlock_events WHERE device_id = ? AND source = 'http'`, dev).Scan(&known)
	r.db.Reader().QueryRow(`SELECT COUNT(*) FROM unlock_events WHERE device_id IS NULL AND device_ref = 'BLACK-BOX-7' AND anomalies & 4 <> 0`).Scan(&unknown)
	if known != 3 || unknown != 1 {
		t.Errorf("recorded %d of the device and %d unknown (flagged), want 3 and 1", known, unknown)
	}

	// The same signed request again is a replay: 409, nothing written.
	before := r.written(t)
	a = r.call(t, r.eventsPath(), bytes.NewReader(body), sig)
	if a.Status != http.StatusConflict || a.Reason != "replayed" || !strings.Contains(a.Error, "sign again") {
		t.Errorf("replay: %d %s", a.Status, a.raw)
	}
	if after := r.written(t); after != before {
		t.Errorf("replay wrote: %s, was %s", after, before)
	}
	// Signed again, the same batch is idempotent: nothing new.
	a = r.call(t, r.eventsPath(), bytes.NewReader(body), sign(r.key, time.Second, body))
	if a.Status != http.StatusOK || a.Inserted != 0 || a.Duplicates != 4 {
		t.Errorf("re-signed: %d %s", a.Status, a.raw)
	}

	// Key rotation: both keys work until the previous one is removed.
	oldKey := r.key
	newKey := must(r.vs.RotateVendorKey(sys(), r.vendor.ID))(t)
	for i, key := range []string{oldKey, newKey} {
		b := batchJSON(t, apiEvent(dev, fmt.Sprintf("rot%d", i)))
		if a := r.call(t, r.eventsPath(), bytes.NewReader(b), sign(key, 0, b)); a.Status != http.StatusOK || a.Inserted != 1 {
			t.Errorf("key %d during rotation: %d %s", i, a.Status, a.raw)
		}
	}
	if err := r.vs.RemovePreviousVendorKey(sys(), r.vendor.ID); err != nil {
		t.Fatal(err)
	}
	b := batchJSON(t, apiEvent(dev, "after-removal"))
	if a := r.call(t, r.eventsPath(), bytes.NewReader(b), sign(oldKey, 0, b)); a.Status != http.StatusUnauthorized || a.Reason != "bad_signature" {
		t.Errorf("removed key: %d %s", a.Status, a.raw)
	}

	// A bare array is a batch too.
	b, _ = json.Marshal([]map[string]any{apiEvent(dev, "bare")})
	if a := r.call(t, r.eventsPath(), bytes.NewReader(b), sign(newKey, 0, b)); a.Status != http.StatusOK || a.Inserted != 1 {
		t.Errorf("bare array: %d %s", a.Status, a.raw)
	}
}

func TestVendorStateCallback(t *testing.T) {
	r := newVendorRig(t)
	dev := r.device.ID
	otherVendor, otherKey, err := r.vs.CreateVendorIntegration(sys(), doorledger.VendorIntegrationInput{Name: "Other Cloud", WebhookURL: "https://other.example", BuildingIDs: []int64{r.A.ID}})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.vs.SetDeviceVendor(sys(), dev, r.vendor.ID); err != nil {
		t.Fatal(err)
	}
	mgr := doorledger.NewContextWithUser(context.Background(), r.managerA)
	cmd := must(sqlite.NewDeviceService(r.db).SetDesiredState(mgr, dev, doorledger.StateDisabled, "vendor test"))(t)
	report := func(state string, version int64) []byte {
		b, _ := json.Marshal(map[string]any{"device_id": dev, "state": state, "version": version, "at": time.Now().UTC().Format(time.RFC3339)})
		return b
	}
	good := report("disabled", cmd.Version)

	for _, tt := range []struct {
		name   string
		path   string
		body   []byte
		sig    string // "-": none; "": signed with the key now
		status int
		reason string
		msg    string
	}{
		{"missing signature", r.statePath(), good, "-", 401, "missing_signature", "Missing"},
		{"bad signature", r.statePath(), good, sign("dlvk_guess", 0, good), 401, "bad_signature", "no signature matches"},
		{"stale", r.statePath(), good, sign(r.key, -10*time.Minute, good), 401, "stale_signature", "Stale"},
		{"another integration's device", fmt.Sprintf("/api/vendors/%d/state", otherVendor.ID), good, sign(otherKey, 0, good), 422, "invalid_report", fmt.Sprintf("no device %d under this integration", dev)},
		{"malformed JSON", r.statePath(), []byte(`{"device_id": `), "", 400, "malformed_json", "not JSON"},
		{"not an object", r.statePath(), []byte(`[1]`), "", 400, "malformed_json", "JSON object"},
		{"version of the wrong type", r.statePath(), []byte(fmt.Sprintf(`{"device_id": %d, "state": "disabled", "version": "2"}`, dev)), "", 422, "invalid_report", "version: must be an integer"},
		{"missing version", r.statePath(), []byte(fmt.Sprintf(`{"device_id": %d, "state": "disabled"}`, dev)), "", 422, "invalid_report", "version: missing"},
		{"missing device", r.statePath(), []byte(`{"state": "disabled", "version": 2}`), "", 422, "invalid_report", "device_id: missing"},
		{"bad state", r.statePath(), report("open", cmd.Version), "", 422, "invalid_report", "state: must be enabled or disabled"},
		{"bad time", r.statePath(), []byte(fmt.Sprintf(`{"device_id": %d, "state": "disabled", "version": 2, "at": "yesterday"}`, dev)), "", 422, "invalid_report", "at:"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			before := r.written(t)
			sig := tt.sig
			switch sig {
			case "-":
				sig = ""
			case "":
				sig = sign(r.key, 0, tt.body)
			}
			a := r.call(t, tt.path, bytes.NewReader(tt.body), sig)
			if a.Status != tt.status || a.Reason != tt.reason || !strings.Contains(a.Error, tt.msg) {
				t.Errorf("got %d %s %q, want %d %s containing %q", a.Status, a.Reason, a.Error, tt.status, tt.reason, tt.msg)
			}
			if after := r.written(t); after != before {
				t.Errorf("written: %s, was %s", after, before)
			}
		})
	}
	if c := must(sqlite.NewDeviceService(r.db).FindCommands(sys(), doorledger.CommandFilter{DeviceID: dev}))(t)[0]; c.Status == doorledger.CommandConfirmed {
		t.Fatal("a refused callback confirmed the command")
	}

	sig := sign(r.key, 0, good)
	if a := r.call(t, r.statePath(), bytes.NewReader(good), sig); a.Status != http.StatusOK || !a.Recorded {
		t.Fatalf("callback: %d %s", a.Status, a.raw)
	}
	c := must(sqlite.NewDeviceService(r.db).FindCommands(sys(), doorledger.CommandFilter{DeviceID: dev}))(t)[0]
	if c.ID != cmd.ID || c.Status != doorledger.CommandConfirmed {
		t.Errorf("command %+v, want confirmed", c)
	}
	// Replayed: refused, nothing written.
	before := r.written(t)
	if a := r.call(t, r.statePath(), bytes.NewReader(good), sig); a.Status != http.StatusConflict || a.Reason != "replayed" {
		t.Errorf("replay: %d %s", a.Status, a.raw)
	}
	if after := r.written(t); after != before {
		t.Errorf("replay wrote: %s, was %s", after, before)
	}
}

// The admin page: create (key shown once), rotate, remove the previous key,
// put a device under the integration, retire.
func TestVendorsPage(t *testing.T) {
	f := newFixture(t).withVendors(t)
	c, _ := f.signedConsent(t)
	admin := f.client()
	admin.login(f.admin.Email)

	resp, body := admin.post("/vendors", url.Values{"name": {"Acme Cloud"}, "webhook_url": {"http://acme.example/hook"}, "building": {fmt.Sprint(f.A.ID)}}, "")
	if resp.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(body, "plain http is allowed only to this machine") || !strings.Contains(body, `value="Acme Cloud"`) {
		t.Fatalf("bad URL: %d\n%s", resp.StatusCode, body)
	}
	resp, body = admin.post("/vendors", url.Values{"name": {"Acme Cloud"}, "webhook_url": {"https://acme.example/hook"}, "building": {fmt.Sprint(f.A.ID)}}, "")
	key := keyRE.FindStringSubmatch(body)
	if resp.StatusCode != http.StatusOK || key == nil {
		t.Fatalf("create: %d\n%s", resp.StatusCode, body)
	}
	list := must(f.vendorService(t).FindVendorIntegrations(sys()))(t)
	if len(list) != 1 || list[0].Name != "Acme Cloud" {
		t.Fatalf("integrations %+v", list)
	}
	id := list[0].ID
	if _, body := admin.get("/vendors"); strings.Contains(body, key[1]) || !strings.Contains(body, list[0].Key.Fingerprint) {
		t.Error("the key is shown again, or its fingerprint is not")
	}
	resp, body = admin.post(fmt.Sprintf("/vendors/%d/rotate", id), nil, "")
	key2 := keyRE.FindStringSubmatch(body)
	if resp.StatusCode != http.StatusOK || key2 == nil || key2[1] == key[1] || !strings.Contains(body, "still works until you remove it") {
		t.Fatalf("rotate: %d\n%s", resp.StatusCode, body)
	}
	if resp, _ := admin.post(fmt.Sprintf("/vendors/%d/previous-key/remove", id), nil, ""); resp.StatusCode != http.StatusSeeOther {
		t.Errorf("remove previous key: %d", resp.StatusCode)
	}
	if resp, body := admin.post(fmt.Sprintf("/vendors/%d/previous-key/remove", id), nil, ""); resp.StatusCode != http.StatusConflict || !strings.Contains(body, "has no previous key") {
		t.Errorf("remove it again: %d", resp.StatusCode)
	}
	if resp, _ := admin.post(fmt.Sprintf("/devices/%d/vendor", c.DeviceID), url.Values{"vendor": {fmt.Sprint(id)}}, ""); resp.StatusCode != http.StatusSeeOther {
		t.Errorf("set device vendor: %d", resp.StatusCode)
	}
	if d := must(sqlite.NewDeviceService(f.db).FindDeviceByID(sys(), c.DeviceID))(t); d.Transport != "webhook" {
		t.Errorf("device transport %q", d.Transport)
	}
	if _, body := admin.get("/vendors"); !strings.Contains(body, fmt.Sprintf(`<option value="%d" selected>Acme Cloud</option>`, id)) {
		t.Errorf("the device's integration is not selected:\n%s", body)
	}
	if resp, _ := admin.post(fmt.Sprintf("/vendors/%d/retire", id), nil, ""); resp.StatusCode != http.StatusSeeOther {
		t.Errorf("retire: %d", resp.StatusCode)
	}
	if _, body := admin.get("/vendors"); !strings.Contains(body, "Acme Cloud (retired)") {
		t.Error("the device's retired integration is not shown")
	}
}

var keyRE = regexp.MustCompile(`\(shown once\):</strong> <code class="hash">(dlvk_[A-Za-z0-9_-]{43})</code>`)

// BenchmarkHTTPIngest posts signed batches of 1,000 events over loopback HTTP
// to the real handler and SQLite (synchronous=FULL), from 1 and 4 clients,
// and reports events/s. The events are ordinary: 20 consented devices of one
// building, spread over 19 days after they were enabled, so that none is
// flagged and no alert is mailed.
//
//	go test ./web/ -run '^$' -bench HTTPIngest -benchtime 200x
func BenchmarkHTTPIngest(b *testing.B) {
	for _, clients := range []int{1, 4} {
		b.Run(fmt.Sprintf("clients=%d", clients), func(b *testing.B) { benchHTTPIngest(b, clients) })
	}
}

func benchHTTPIngest(b *testing.B, clients int) {
	r := newVendorRig(b)
	devices := []int64{r.device.ID}
	for len(devices) < 20 {
		c, _ := r.signedConsent(b)
		devices = append(devices, c.DeviceID)
	}
	start := time.Now()
	// Burst detection stays on, at a level 1,000 events a batch never reach.
	us := sqlite.NewUnlockService(r.db)
	s := must(us.UnlockSettings(sys(), r.A.ID))(b)
	s.BurstCount = 100000
	must(us.UpdateUnlockSettings(sys(), r.A.ID, *s))(b)
	later := start.Add(20 * 24 * time.Hour)
	r.db.Now = func() time.Time { return later }

	const perBatch = 1000
	total := b.N * perBatch
	step := 19 * 24 * time.Hour / time.Duration(total+1)
	bodies := make([][]byte, b.N)
	for i := range bodies {
		var sb strings.Builder
		sb.WriteString(`{"events":[`)
		for j := 0; j < perBatch; j++ {
			n := i*perBatch + j
			if j > 0 {
				sb.WriteByte(',')
			}
			result := "granted"
			if n%10 == 0 {
				result = "denied"
			}
			fmt.Fprintf(&sb, `{"device_id":%d,"event_id":"ev-%d","occurred_at":%q,"method":"courier_app","actor_ref":"pkg-%s","result":%q}`,
				devices[n%len(devices)], n, start.Add(time.Minute+time.Duration(n)*step).UTC().Format(time.RFC3339Nano), strconv.FormatInt(int64(n), 36), result)
		}
		sb.WriteString(`]}`)
		bodies[i] = []byte(sb.String())
	}
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: clients}}
	var next atomic.Int64
	var wg sync.WaitGroup
	b.ResetTimer()
	for g := 0; g < clients; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1) - 1
				if i >= int64(b.N) {
					return
				}
				req, _ := http.NewRequest(http.MethodPost, r.http.URL+r.eventsPath(), bytes.NewReader(bodies[i]))
				req.Header.Set("Content-Type", "application/json")
				req.Header.Set(devicectl.SignatureHeader, sign(r.key, 0, bodies[i]))
				resp, err := client.Do(req)
				if err != nil {
					b.Error(err)
					return
				}
				raw, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					b.Errorf("batch %d: %d %s", i, resp.StatusCode, raw)
					return
				}
			}
		}()
	}
	wg.Wait()
	b.StopTimer()
	b.ReportMetric(float64(total)/b.Elapsed().Seconds(), "events/s")
	b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N)*float64(clients), "ms/batch")
	var n, flagged int
	r.db.Reader().QueryRow(`SELECT COUNT(*), COUNT(*) FILTER (WHERE anomalies <> 0) FROM unlock_events`).Scan(&n, &flagged)
	if n != total || flagged != 0 {
		b.Fatalf("recorded %d events (%d flagged), want %d, none flagged", n, flagged, total)
	}
}
