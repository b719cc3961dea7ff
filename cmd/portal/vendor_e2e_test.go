package main

import (
	"bytes"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/doorledger/doorledger"
	"github.com/doorledger/doorledger/devicectl"
)

// vendorCloud is a vendor's cloud on httptest: it checks the signature of
// each desired state the portal pushes, answers with the next status of its
// script (200 after it), and, like a cloud whose device applied the state,
// calls back the portal's state endpoint, signed.
type vendorCloud struct {
	t        *testing.T
	mu       sync.Mutex
	portal   string // the portal's URL
	vendorID int64
	key      string
	statuses []int
	pushes   []doorledger.DesiredState
	sigErrs  []error
	answers  []int // of its callbacks
	last     struct {
		header string
		body   []byte
	}
}

func (v *vendorCloud) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	v.mu.Lock()
	defer v.mu.Unlock()
	v.sigErrs = append(v.sigErrs, devicectl.VerifySignature(r.Header.Get(devicectl.SignatureHeader), body, [][]byte{[]byte(v.key)}, time.Now(), 0))
	var d doorledger.DesiredState
	if err := json.Unmarshal(body, &d); err != nil {
		v.t.Errorf("vendor: desired state %s: %v", body, err)
	}
	v.pushes = append(v.pushes, d)
	status := http.StatusOK
	if len(v.statuses) > 0 {
		status, v.statuses = v.statuses[0], v.statuses[1:]
	}
	w.WriteHeader(status)
	if status == http.StatusOK {
		go v.callback(doorledger.ReportedState{DeviceID: d.DeviceID, State: d.State, Version: d.Version, At: time.Now().UTC()})
	}
}

// callback posts the applied state to the portal, signed now.
func (v *vendorCloud) callback(r doorledger.ReportedState) {
	body, _ := json.Marshal(r)
	header := devicectl.Sign([]byte(v.key), time.Now(), body)
	status, _ := v.post(header, body)
	v.mu.Lock()
	defer v.mu.Unlock()
	v.answers = append(v.answers, status)
	v.last.header, v.last.body = header, body
}

func (v *vendorCloud) post(header string, body []byte) (int, string) {
	req, _ := http.NewRequest(http.MethodPost, fmt.Sprintf("%s/api/vendors/%d/state", v.portal, v.vendorID), bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(devicectl.SignatureHeader, header)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		v.t.Errorf("vendor callback: %v", err)
		return 0, ""
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// awaitCommand polls the database until the device's command of version is confirmed.
func awaitConfirmed(t *testing.T, r *sql.DB, device, version int64) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		var status string
		r.QueryRow(`SELECT status FROM commands WHERE device_id = ? AND version = ?`, device, version).Scan(&status)
		if status == "confirmed" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("command version %d of device %d is %q, never confirmed\nportal log:\n%s", version, device, status, lastPortal.Stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestEndToEndVendorWebhook: a device managed by a vendor's cloud. The admin
// creates the integration and puts the device under it; the portal pushes the
// desired state to the vendor's webhook, signed, retrying after a 500; the
// vendor's signed callback confirms each command. Stale, replayed and badly
// signed callbacks are refused with 4xx and change nothing; a signed batch of
// unlock events is recorded.
func TestEndToEndVendorWebhook(t *testing.T) {
	p := MustStartPortal(t, "")
	lastPortal = p
	mgr, devicePath, deviceID, _ := consentedDevice(t, p)
	admin := NewClient(t, p.URL)
	admin.MustLogin(testAdminEmail, p.AdminPass)
	_, body := admin.Get(devicePath)
	building := regexp.MustCompile(`href="/buildings/(\d+)"`).FindStringSubmatch(body)[1]
	reader, err := sql.Open("sqlite", "file:"+filepath.Join(p.DataDir, "doorledger.db")+"?_pragma=busy_timeout(5000)&_pragma=query_only(1)")
	if err != nil {
		t.Fatal(err)
	}
	defer reader.Close()

	cloud := &vendorCloud{t: t, portal: p.URL, statuses: []int{http.StatusInternalServerError}}
	srv := httptest.NewServer(cloud)
	defer srv.Close()

	// The admin creates the integration: its key is shown once.
	vendorID, vendorKey := createIntegration(t, admin, building, srv.URL+"/doorledger")
	cloud.mu.Lock()
	cloud.key = vendorKey
	fmt.Sscan(vendorID, &cloud.vendorID)
	cloud.mu.Unlock()

	// Under the integration, the device's current desired state (enabled,
	// version 1) goes to the vendor: refused with a 500 once, retried, then
	// confirmed by the vendor's callback.
	if status, loc, body := admin.Post("/vendors", fmt.Sprintf("/devices/%d/vendor", deviceID), url.Values{"vendor": {vendorID}}); status != http.StatusSeeOther {
		t.Fatalf("put the device under the integration: %d %s\n%s", status, loc, body)
	}
	awaitConfirmed(t, reader, deviceID, 1)

	// A revoke goes the same way.
	if status, _, body := mgr.Post(devicePath, devicePath+"/revoke", nil); status != http.StatusSeeOther {
		t.Fatalf("revoke: %d\n%s", status, body)
	}
	awaitConfirmed(t, reader, deviceID, 2)
	awaitPage(t, mgr, devicePath, `data-status="confirmed"`)

	cloud.mu.Lock()
	if len(cloud.pushes) < 3 || cloud.pushes[0].Version != 1 || cloud.pushes[1].Version != 1 || cloud.pushes[len(cloud.pushes)-1].Version != 2 ||
		cloud.pushes[len(cloud.pushes)-1].State != doorledger.StateDisabled {
		t.Errorf("vendor got %+v; want version 1 twice (a 500, then its retry), then version 2 disabled", cloud.pushes)
	}
	for i, err := range cloud.sigErrs {
		if err != nil {
			t.Errorf("push %d: signature %v", i, err)
		}
	}
	for i, s := range cloud.answers {
		if s != http.StatusOK {
			t.Errorf("callback %d answered %d", i, s)
		}
	}
	lastHeader, lastBody := cloud.last.header, cloud.last.body
	cloud.mu.Unlock()

	// Bad callbacks: refused with 4xx, nothing written.
	written := func() string {
		var audits, reportedVersion int64
		var seen sql.NullString
		var commands string
		reader.QueryRow(`SELECT COUNT(*) FROM audit_entries`).Scan(&audits)
		reader.QueryRow(`SELECT reported_version, last_seen_at FROM devices WHERE id = ?`, deviceID).Scan(&reportedVersion, &seen)
		reader.QueryRow(`SELECT group_concat(status) FROM (SELECT status FROM commands WHERE device_id = ? ORDER BY id)`, deviceID).Scan(&commands)
		return fmt.Sprintf("audit %d, reported v%d seen %s, commands %s", audits, reportedVersion, seen.String, commands)
	}
	before := written()
	enabled, _ := json.Marshal(doorledger.ReportedState{DeviceID: deviceID, State: doorledger.StateEnabled, Version: 2, At: time.Now()})
	for _, tt := range []struct {
		name   string
		header string
		body   []byte
		status int
		reason string
	}{
		{"replayed", lastHeader, lastBody, http.StatusConflict, "replayed"},
		{"stale", devicectl.Sign([]byte(cloud.key), time.Now().Add(-10*time.Minute), enabled), enabled, http.StatusUnauthorized, "stale_signature"},
		{"badly signed", devicectl.Sign([]byte("dlvk_not-the-key"), time.Now(), enabled), enabled, http.StatusUnauthorized, "bad_signature"},
		{"unsigned", "", enabled, http.StatusUnauthorized, "missing_signature"},
		{"body changed", lastHeader, enabled, http.StatusUnauthorized, "bad_signature"},
	} {
		status, answer := cloud.post(tt.header, tt.body)
		if status != tt.status || !strings.Contains(answer, `"reason":"`+tt.reason+`"`) {
			t.Errorf("%s callback: %d %s, want %d %s", tt.name, status, answer, tt.status, tt.reason)
		}
		if after := written(); after != before {
			t.Errorf("%s callback wrote: %s, was %s", tt.name, after, before)
		}
	}

	// The vendor's unlock events over HTTPS.
	batch := fmt.Sprintf(`{"events":[{"device_id":%d,"event_id":"acme-1","occurred_at":%q,"method":"courier_app","actor_ref":"pkg 77","result":"denied"}]}`,
		deviceID, time.Now().UTC().Format(time.RFC3339))
	if status, answer := postVendorEvents(t, p, vendorID, cloud.key, batch); status != http.StatusOK || !strings.Contains(answer, `"inserted":1`) {
		t.Errorf("events: %d %s", status, answer)
	}
	var n int
	reader.QueryRow(`SELECT COUNT(*) FROM unlock_events WHERE device_id = ? AND event_id = 'acme-1' AND source = 'http'`, deviceID).Scan(&n)
	if n != 1 {
		t.Errorf("event recorded %d times", n)
	}
}
