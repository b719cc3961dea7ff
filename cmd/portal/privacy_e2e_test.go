package main

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/doorledger/doorledger"
	"github.com/doorledger/doorledger/db/sqlite"
	"github.com/doorledger/doorledger/internal/testtool"
)

// oldRefs are the courier references of the events seeded 100 days back.
var oldRefs = []string{"OLDREF-1111-COURIER", "OLDREF-2222-PKG", "OLDREF-3333-CRED"}

// seedOldUnlocks records three door openings received 100 days ago, with
// courier references: two by the device then enabled (OLD), one by a device
// not yet consented then (ON: flagged without consent).
func seedOldUnlocks(t *testing.T, w *residentWorld) {
	t.Helper()
	d := sqlite.NewDB(filepath.Join(w.dir, "doorledger.db"))
	clock := time.Now().UTC().Truncate(time.Second).AddDate(0, 0, -100)
	d.Now = func() time.Time { return clock }
	key, err := vendorSealKey(filepath.Join(w.dir, "vendor.key"))
	if err != nil {
		t.Fatal(err)
	}
	if err := d.SetSealKey(key); err != nil {
		t.Fatal(err)
	}
	if err := d.Open(); err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	sys := doorledger.NewSystemContext(context.Background(), "seed")
	for i, ref := range oldRefs {
		dev := w.devices["OLD"]
		if i == 2 {
			dev = w.devices["ON"]
		}
		if err := sqlite.NewUnlockService(d).RecordUnlocks(sys, []doorledger.UnlockEvent{{DeviceID: dev, EventID: fmt.Sprintf("old-%d", i),
			OccurredAt: clock.Add(time.Duration(i) * time.Minute), Method: doorledger.MethodCourierApp, ActorRef: ref, Result: doorledger.UnlockGranted}}); err != nil {
			t.Fatal(err)
		}
		w.forbidden = append(w.forbidden, ref)
	}
}

// The Tenant Data Privacy Act profile through the portal: off by default (no
// tenant notice); on, enabling a device without a complete vendor disclosure
// record is refused, by the form and by the database; the tenant privacy
// notice (page and PDF) is made from the records and leaks nothing of the
// fixture's people, serials or courier data; after a restart the retention
// job has removed the courier references older than 90 days, counts and
// anomaly flags stay, `portal audit verify` and the evidence bundle's own
// verifier pass, and the board's report states the profile and its checks.
func TestEndToEndPrivacyProfile(t *testing.T) {
	w := seedResidentWorld(t)
	seedOldUnlocks(t, w)
	p, _, mgr := w.start(t)
	notice := w.noticePath(t, mgr)
	resident := NewClient(t, p.URL)
	if status, _ := resident.Get(notice + "/privacy"); status != http.StatusNotFound {
		t.Fatalf("tenant notice without the profile: %d", status)
	}
	page := w.building + "/privacy"
	if status, loc, body := mgr.Post(page, page+"/profile", url.Values{"profile": {doorledger.PrivacyProfileTDPA}}); status != http.StatusSeeOther || loc != page {
		t.Fatalf("turn the profile on: %d %q\n%s", status, loc, body)
	}

	// Enabling without a vendor disclosure record: refused, with the reason.
	recent := fmt.Sprintf("/devices/%d", w.devices["RECENT"])
	if status, loc, _ := mgr.Post(recent, recent+"/enable", nil); status != http.StatusSeeOther || loc != recent {
		t.Fatalf("enable: %d %q", status, loc)
	}
	if _, body := mgr.Get(recent); !strings.Contains(body, "Tenant Data Privacy Act profile: name the device") {
		t.Errorf("the device page does not say why it was not enabled:\n%s", body)
	}
	raw, err := sql.Open("sqlite", "file:"+filepath.Join(w.dir, "doorledger.db")+"?_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	if _, err := raw.Exec(`UPDATE devices SET desired_state = 'enabled', desired_version = desired_version + 1 WHERE id = ?`, w.devices["RECENT"]); err == nil ||
		!strings.Contains(err.Error(), "vendor disclosure record") {
		t.Fatalf("the database enabled a device without a disclosure record: %v", err)
	}
	// An incomplete record is refused beside its fields, the input kept.
	status, _, body := mgr.Post(page, page+"/disclosures", url.Values{"legal_name": {"Acme Access Systems LLC"}, "policy_url": {"not a url"}})
	if status != http.StatusUnprocessableEntity || !strings.Contains(body, "Say what data the device collects.") ||
		!strings.Contains(body, `value="Acme Access Systems LLC"`) || !strings.Contains(body, "privacy policy (https://") {
		t.Fatalf("incomplete record: %d\n%s", status, body)
	}
	full := url.Values{"legal_name": {"Acme Access Systems LLC"}, "data_collected": {"Time of each door opening and the courier app account"},
		"purpose": {"Letting couriers deliver parcels to the lobby"}, "retention": {"13 months"}, "policy_url": {"https://acme.example/privacy"}}
	if status, _, body := mgr.Post(page, page+"/disclosures", full); status != http.StatusSeeOther {
		t.Fatalf("save record: %d\n%s", status, body)
	}
	var record int64
	if err := raw.QueryRow(`SELECT MAX(id) FROM vendor_disclosures`).Scan(&record); err != nil {
		t.Fatal(err)
	}
	if status, _, _ := mgr.Post(page, fmt.Sprintf("%s/devices/%d", page, w.devices["RECENT"]), url.Values{"disclosure": {fmt.Sprint(record)}}); status != http.StatusSeeOther {
		t.Fatalf("name the record: %d", status)
	}
	mgr.Post(recent, recent+"/enable", nil)
	var state string
	if err := raw.QueryRow(`SELECT desired_state FROM devices WHERE id = ?`, w.devices["RECENT"]).Scan(&state); err != nil || state != "enabled" {
		t.Fatalf("with a complete record the device is %q (%v)", state, err)
	}
	// ON was enabled before the profile and names no record: the check says so.
	if _, body := mgr.Get(page); !strings.Contains(body, "Does not hold:") || !strings.Contains(body, fmt.Sprintf("not so for device #%d", w.devices["ON"])) {
		t.Errorf("the privacy page does not flag the device without a record:\n%s", body)
	}

	// The tenant privacy notice: public, beside the device notice.
	if _, body := resident.Get(notice); !strings.Contains(body, `href="`+notice+`/privacy"`) {
		t.Errorf("the device notice does not link the tenant privacy notice:\n%s", body)
	}
	status, body = resident.Get(notice + "/privacy")
	sections := []string{"Data collected", "Purpose", "Retention", "Third parties and their privacy policies", "Security",
		"How to get or correct your data", "Breach notification"}
	for _, want := range append(sections, "Acme Access Systems LLC", "https://acme.example/privacy", "13 months", "removed 90 days after") {
		if status != http.StatusOK || !strings.Contains(body, want) {
			t.Errorf("tenant notice (%d) lacks %q", status, want)
		}
	}
	resp, err := http.Get(p.URL + notice + "/privacy.pdf")
	if err != nil {
		t.Fatal(err)
	}
	pdf, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/pdf" {
		t.Fatalf("tenant notice PDF: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	qpdfCheck(t, pdf)
	text := strings.Join(strings.Fields(pdfText(t, pdf)), " ")
	for _, want := range append(sections, "Tenant privacy notice", "Linden House", "Acme Access Systems LLC", "https://acme.example/privacy") {
		if !strings.Contains(text, want) {
			t.Errorf("tenant notice PDF lacks %q:\n%s", want, text)
		}
	}
	for _, leak := range w.forbidden {
		if strings.Contains(body, leak) || strings.Contains(text, leak) {
			t.Errorf("the tenant notice shows %q", leak)
		}
	}

	var anomaliesBefore, eventsBefore int
	if err := raw.QueryRow(`SELECT COUNT(*), SUM(anomalies <> 0) FROM unlock_events`).Scan(&eventsBefore, &anomaliesBefore); err != nil {
		t.Fatal(err)
	}
	p.Stop(t)

	// The retention job runs at start (and daily): after it, the references
	// older than 90 days are gone, the recent ones stay.
	p, admin, mgr := w.start(t)
	deadline := time.Now().Add(30 * time.Second)
	for {
		var n int
		if err := raw.QueryRow(`SELECT COUNT(*) FROM unlock_events WHERE redaction_id IS NOT NULL`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n == len(oldRefs) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d events redacted after the job, want %d\n%s", n, len(oldRefs), p.Stderr.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	var events, anomalies, kept, left int
	if err := raw.QueryRow(`SELECT COUNT(*), SUM(anomalies <> 0), SUM(actor_ref <> ''),
		SUM(actor_ref IN (?, ?, ?)) FROM unlock_events`, oldRefs[0], oldRefs[1], oldRefs[2]).Scan(&events, &anomalies, &kept, &left); err != nil {
		t.Fatal(err)
	}
	if events != eventsBefore || anomalies != anomaliesBefore || left != 0 || kept != 3 {
		t.Errorf("after the job: %d events (%d before), %d flagged (%d before), %d old references left, %d recent kept",
			events, eventsBefore, anomalies, anomaliesBefore, left, kept)
	}
	if _, body := admin.Get("/audit"); !strings.Contains(body, "removed the courier and package references of 3 unlock events") {
		t.Errorf("the journal does not tell the redaction")
	}
	if _, _, body := admin.Post("/audit", "/audit/verify", nil); !strings.Contains(body, "Intact:") {
		t.Fatalf("verify now after the redaction:\n%s", body)
	}

	// The board's evidence bundle over the redacted events verifies offline.
	loc, _ := time.LoadLocation("America/New_York")
	now := time.Now().In(loc)
	rep := requestReport(t, mgr, w.building, doorledger.ReportBundle, now.AddDate(0, 0, -101).Format("2006-01-02"), now.Format("2006-01-02"))
	bundle := download(t, mgr, rep, awaitReport(t, mgr, rep), ".zip", "application/zip")
	dir := unzipBundle(t, bundle)
	if data, err := os.ReadFile(filepath.Join(dir, "events.csv")); err != nil {
		t.Fatal(err)
	} else {
		for _, ref := range oldRefs {
			if bytes.Contains(data, []byte(ref)) {
				t.Errorf("events.csv still holds %q", ref)
			}
		}
	}
	if data, err := os.ReadFile(filepath.Join(dir, "report.pdf")); err != nil {
		t.Fatal(err)
	} else {
		report := strings.Join(strings.Fields(pdfText(t, data)), " ")
		for _, want := range []string{"Privacy profile", "Tenant Data Privacy Act", "NOT ALL CHECKS HOLD", "No identifiable unlock data is kept past 90 days: holds"} {
			if !strings.Contains(report, want) {
				t.Errorf("the board report lacks %q", want)
			}
		}
	}
	goBin := testtool.Require(t, "go")
	cmd := exec.Command(goBin, "run", "verify.go")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOFLAGS=-mod=mod", "GOPROXY=off", "GOWORK=off", "GO111MODULE=on", "GOPATH="+t.TempDir(), "GOMODCACHE="+t.TempDir())
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "redactions: 1, naming 3 events, match their digests") || !strings.Contains(string(out), "OK: the bundle verifies") {
		t.Fatalf("the bundle's verifier: %v\n%s", err, out)
	}
	p.Stop(t)

	var cli, errb bytes.Buffer
	if err := run(context.Background(), []string{"audit", "verify", "-data", w.dir}, func(string) string { return "" }, &cli, &errb); err != nil {
		t.Fatalf("portal audit verify after the redaction: %v\n%s%s", err, cli.String(), errb.String())
	}
}
