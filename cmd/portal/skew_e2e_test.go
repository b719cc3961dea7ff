package main

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/doorledger/doorledger/devicectl"
)

// Clock-skewed events end to end, as the defect was reported: a vendor's
// cloud posts two events of a device whose clock is wrong, one dated three days ahead and
// one 400 days back, both received today. Today's history, its CSV export
// and a board report for yesterday–today hold both, with both times.
func TestEndToEndClockSkewedEvents(t *testing.T) {
	p := MustStartPortal(t, "")
	lastPortal = p
	mgr, devicePath, deviceID, _ := consentedDevice(t, p)
	admin := NewClient(t, p.URL)
	admin.MustLogin(testAdminEmail, p.AdminPass)
	_, body := admin.Get(devicePath)
	building := regexp.MustCompile(`href="(/buildings/(\d+))"`).FindStringSubmatch(body)

	cloud := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer cloud.Close()
	vendor, key := createIntegration(t, admin, building[2], cloud.URL+"/doorledger")

	chicago, _ := time.LoadLocation("America/Chicago") // consentedDevice's building
	now := time.Now()
	ahead, behind := now.Add(72*time.Hour).UTC(), now.AddDate(0, 0, -400).UTC()
	batch := fmt.Sprintf(`{"events":[`+
		`{"event_id":"skew1","device_id":%d,"occurred_at":%q,"method":"keypad","actor_ref":"PKG-AHEAD","result":"granted"},`+
		`{"event_id":"skew2","device_id":%d,"occurred_at":%q,"method":"keypad","actor_ref":"PKG-BEHIND","result":"denied"}]}`,
		deviceID, ahead.Format(time.RFC3339), deviceID, behind.Format(time.RFC3339))
	if status, answer := postVendorEvents(t, p, vendor, key, batch); status != http.StatusOK || !strings.Contains(answer, `"inserted":2`) {
		t.Fatalf("vendor ingest: %d %s", status, answer)
	}
	// Received now: dated today in the building (or, just past midnight,
	// yesterday: the report covers both, the history is asked for both).
	today := time.Now().In(chicago).Format("2006-01-02")
	yesterday := time.Now().In(chicago).AddDate(0, 0, -1).Format("2006-01-02")

	q := url.Values{"from": {yesterday}, "to": {today}}.Encode()
	_, page := mgr.Get(building[1] + "/unlocks?" + q)
	for _, want := range []string{"PKG-AHEAD", "PKG-BEHIND", "received; device clock: " + ahead.In(chicago).Format("2006-01-02 15:04:05 MST"),
		"received; device clock: " + behind.In(chicago).Format("2006-01-02 15:04:05 MST")} {
		if !strings.Contains(page, want) {
			t.Errorf("history %s to %s lacks %q", yesterday, today, want)
		}
	}
	_, csv := mgr.Get(building[1] + "/unlocks.csv?" + q)
	for _, want := range []string{"skew1", "skew2", ahead.Format(time.RFC3339), behind.Format(time.RFC3339)} {
		if !strings.Contains(csv, want) {
			t.Errorf("CSV export %s to %s lacks %q:\n%s", yesterday, today, want, csv)
		}
	}

	report := requestReport(t, mgr, building[1], "pdf", yesterday, today)
	text := strings.Join(strings.Fields(pdfText(t, download(t, mgr, report, awaitReport(t, mgr, report), ".pdf", "application/pdf"))), " ")
	for _, want := range []string{"PKG-AHEAD granted clock skew received; device clock: " + ahead.In(chicago).Format("2006-01-02 15:04:05 MST"),
		"PKG-BEHIND denied clock skew received; device clock: " + behind.In(chicago).Format("2006-01-02 15:04:05 MST")} {
		if !strings.Contains(text, want) {
			t.Errorf("report %s to %s lacks %q:\n%s", yesterday, today, want, text)
		}
	}
}

// createIntegration has the admin create a vendor integration covering the
// building (its id) with the webhook, and returns the integration's id and
// its key (shown once).
func createIntegration(t *testing.T, admin *Client, building, webhook string) (id, key string) {
	t.Helper()
	status, _, body := admin.Post("/vendors", "/vendors", url.Values{"name": {"Acme Cloud"}, "webhook_url": {webhook}, "building": {building}})
	k := regexp.MustCompile(`\(shown once\):</strong> <code class="hash">(dlvk_[A-Za-z0-9_-]+)</code>`).FindStringSubmatch(body)
	i := regexp.MustCompile(`/api/vendors/(\d+)/events`).FindStringSubmatch(body)
	if status != http.StatusOK || k == nil || i == nil {
		t.Fatalf("create integration: %d\n%s", status, body)
	}
	return i[1], k[1]
}

// postVendorEvents posts a batch of unlock events as the vendor's cloud,
// signed now with key, and returns the answer.
func postVendorEvents(t *testing.T, p *Portal, vendorID, key, batch string) (int, string) {
	t.Helper()
	status, answer, _ := postVendor(t, p, vendorID, key, batch)
	return status, answer
}

// postVendor is postVendorEvents that also returns the answer's header.
func postVendor(t *testing.T, p *Portal, vendorID, key, batch string) (int, string, http.Header) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, fmt.Sprintf("%s/api/vendors/%s/events", p.URL, vendorID), strings.NewReader(batch))
	req.Header.Set(devicectl.SignatureHeader, devicectl.Sign([]byte(key), time.Now(), []byte(batch)))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	answer, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(answer), resp.Header
}
