package main

import (
	"archive/zip"
	"bytes"
	"crypto/sha256"
	"encoding/csv"
	"encoding/hex"
	"fmt"
	"html"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/doorledger/doorledger"
	"github.com/doorledger/doorledger/devicectl"
	"github.com/doorledger/doorledger/internal/testtool"
)

var (
	reportPathRE   = regexp.MustCompile(`^/reports/(AR-[A-Za-z0-9-]+)$`)
	reportSHA256RE = regexp.MustCompile(`id="sha256">([0-9a-f]{64})<`)
	reportStatusRE = regexp.MustCompile(`id="report-status" data-status="([a-z]+)"`)
)

// requestReport asks for a report on the building's reports page and
// returns the report's page.
func requestReport(t *testing.T, c *Client, building, format, from, to string) string {
	t.Helper()
	status, loc, body := c.Post(building+"/reports", building+"/reports", url.Values{"format": {format}, "from": {from}, "to": {to}})
	if status != http.StatusSeeOther || !reportPathRE.MatchString(loc) {
		t.Fatalf("request %s report %s..%s: %d %q\n%s", format, from, to, status, loc, body)
	}
	return loc
}

// awaitReport polls the report's live fragment, as the page does, until the
// report is done, and returns the report's page.
func awaitReport(t *testing.T, c *Client, report string) string {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		status, body := c.Get(report + "/status")
		m := reportStatusRE.FindStringSubmatch(body)
		if status != http.StatusOK || m == nil {
			t.Fatalf("%s/status: %d\n%s", report, status, body)
		}
		switch m[1] {
		case doorledger.ReportDone:
			if strings.Contains(body, "hx-trigger") {
				t.Errorf("%s: a finished report's fragment still polls", report)
			}
			_, page := c.Get(report)
			return page
		case doorledger.ReportFailed:
			t.Fatalf("%s failed:\n%s\nportal log:\n%s", report, body, lastPortal.Stderr.String())
		default:
			if !strings.Contains(body, `hx-trigger="every 1s"`) {
				t.Fatalf("%s is %s but its fragment does not poll:\n%s", report, m[1], body)
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s never finished:\n%s\nportal log:\n%s", report, body, lastPortal.Stderr.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// download fetches a finished report and checks its headers against the
// report's page: the file name, the type, the length and the SHA-256.
func download(t *testing.T, c *Client, report, page, ext, contentType string) []byte {
	t.Helper()
	id := reportPathRE.FindStringSubmatch(report)[1]
	resp, err := c.http.Get(c.base + report + "/download")
	if err != nil {
		t.Fatal(err)
	}
	data, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("download %s: %d %v\n%.500s", report, resp.StatusCode, err, data)
	}
	if got, want := resp.Header.Get("Content-Disposition"), fmt.Sprintf(`attachment; filename="%s%s"`, id, ext); got != want {
		t.Errorf("Content-Disposition %q, want %q", got, want)
	}
	if got := resp.Header.Get("Content-Type"); got != contentType {
		t.Errorf("%s: Content-Type %q, want %q", report, got, contentType)
	}
	if got := resp.Header.Get("Content-Length"); got != strconv.Itoa(len(data)) {
		t.Errorf("%s: Content-Length %q for %d bytes", report, got, len(data))
	}
	m := reportSHA256RE.FindStringSubmatch(page)
	sum := sha256.Sum256(data)
	if m == nil || m[1] != hex.EncodeToString(sum[:]) {
		t.Errorf("%s: the page's SHA-256 %q is not the downloaded file's %x", report, m, sum)
	}
	return data
}

func pdfText(t *testing.T, pdf []byte) string {
	t.Helper()
	bin := testtool.Require(t, "pdftotext")
	in := filepath.Join(t.TempDir(), "report.pdf")
	if err := os.WriteFile(in, pdf, 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(bin, "-layout", "-enc", "UTF-8", in, "-").Output()
	if err != nil {
		t.Fatalf("pdftotext: %v", err)
	}
	return string(out)
}

func qpdfCheck(t *testing.T, pdf []byte) {
	t.Helper()
	bin := testtool.Require(t, "qpdf")
	in := filepath.Join(t.TempDir(), "check.pdf")
	if err := os.WriteFile(in, pdf, 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(bin, "--check", in).CombinedOutput(); err != nil {
		t.Errorf("qpdf --check: %v\n%s", err, out)
	}
}

// verify uploads files (field → file name → bytes) to the verify page.
func verify(t *testing.T, c *Client, files map[string]map[string][]byte) string {
	t.Helper()
	status, _, body := c.PostMultipart("/reports/verify", "/reports/verify", url.Values{}, files)
	if status != http.StatusOK {
		t.Fatalf("verify: %d\n%s", status, body)
	}
	return html.UnescapeString(body)
}

// TestEndToEndReports is the audit report as a manager and a board member
// meet it: events from a device, a PDF requested and followed to the end,
// downloaded and checked (text, structure, hash), a CSV and an evidence
// bundle, the verify page recognising the files, refusing a changed one and
// proving that the later report's log extends the earlier one's; bad ranges,
// a range over a year, an installer kept out, and the download journaled.
func TestEndToEndReports(t *testing.T) {
	p := MustStartPortal(t, "")
	lastPortal = p
	mgr, device, id, secret := consentedDevice(t, p)
	sim := startSim(t, p, id, secret, t.TempDir())
	awaitApplied(t, sim, 1, doorledger.StateEnabled)
	building := buildingOf(t, mgr, device)
	chicago, _ := time.LoadLocation("America/Chicago")
	now := time.Now()
	today, yesterday := now.In(chicago).Format("2006-01-02"), now.In(chicago).AddDate(0, 0, -1).Format("2006-01-02")

	// Four door openings reported by the device: three granted, one denied.
	for i, res := range []doorledger.UnlockResult{doorledger.UnlockGranted, doorledger.UnlockGranted, doorledger.UnlockDenied, doorledger.UnlockGranted} {
		if _, err := sim.Unlock(devicectl.EventMessage{ActorRef: fmt.Sprintf("parcel-r%d", i+1), Result: res,
			OccurredAt: now.Add(time.Duration(i-10) * time.Minute).UTC()}); err != nil {
			t.Fatal(err)
		}
	}
	awaitPage(t, mgr, building+"/unlocks", "parcel-r4")

	// A board member of the building, and the installer of the device.
	board := boardMember(t, p, building)
	inst := NewClient(t, p.URL)
	inst.MustLogin("ivan@example.com", "correct horse battery")

	// The reports page, linked from the building: this month to date by
	// default, as it has unlock events (the last complete month otherwise).
	if _, body := mgr.Get(building); !strings.Contains(body, `href="`+building+`/reports"`) {
		t.Errorf("the building page does not link its reports")
	}
	y, m, _ := now.In(chicago).Date()
	first := time.Date(y, m, 1, 0, 0, 0, 0, chicago)
	status, body := mgr.Get(building + "/reports")
	for _, want := range []string{`value="` + first.Format("2006-01-02") + `"`, `value="` + now.In(chicago).Format("2006-01-02") + `"`,
		"This month to date: ", `name="format" value="pdf" checked`, `id="subscription"`} {
		if status != http.StatusOK || !strings.Contains(body, want) {
			t.Errorf("reports page (%d) lacks %s", status, want)
		}
	}

	// Bad input: the message beside the field, the input kept, nothing queued.
	status, _, body = mgr.Post(building+"/reports", building+"/reports", url.Values{"format": {"pdf"}, "from": {"2026-03-10"}, "to": {"2026-03-01"}})
	if status != http.StatusUnprocessableEntity || !strings.Contains(body, `id="to-error"`) || !strings.Contains(body, "must not be before the start date") ||
		!strings.Contains(body, `value="2026-03-10"`) || !strings.Contains(body, `value="2026-03-01"`) {
		t.Errorf("bad range: %d\n%s", status, body)
	}
	status, _, body = mgr.Post(building+"/reports", building+"/reports", url.Values{"format": {"docx"}, "from": {"yesterday"}, "to": {today}})
	if status != http.StatusUnprocessableEntity || !strings.Contains(body, `id="format-error"`) || !strings.Contains(body, `id="from-error"`) ||
		!strings.Contains(body, `value="yesterday"`) {
		t.Errorf("bad format and date: %d\n%s", status, body)
	}
	if strings.Contains(body, `<tr id="report-`) {
		t.Errorf("a refused request was registered")
	}

	// Over a year: the form warns, and so does the report's page.
	long := url.Values{"from": {"2024-01-01"}, "to": {today}}
	if _, body := mgr.Get(building + "/reports?" + long.Encode()); !strings.Contains(body, `id="range-warning"`) || !strings.Contains(body, "more than a year") {
		t.Errorf("no warning for a range over a year on the form")
	}
	if _, body := mgr.Get(building + "/reports"); strings.Contains(body, `id="range-warning"`) {
		t.Errorf("a month's range is warned about")
	}
	longReport := requestReport(t, mgr, building, doorledger.ReportCSV, "2024-01-01", today)
	if _, body := mgr.Get(longReport); !strings.Contains(body, "more than a year") {
		t.Errorf("the long report's page does not warn")
	}
	awaitReport(t, mgr, longReport)

	// The manager's PDF: followed to the end, downloaded, checked.
	pdfReport := requestReport(t, mgr, building, doorledger.ReportPDF, yesterday, today)
	pdfID := reportPathRE.FindStringSubmatch(pdfReport)[1]
	page := awaitReport(t, mgr, pdfReport)
	for _, want := range []string{`id="download"`, `id="verifier-key"`, `id="head-size"`, "How to verify this report"} {
		if !strings.Contains(page, want) {
			t.Errorf("the finished report's page lacks %s", want)
		}
	}
	// It leads with what it holds, counted as it was written (whether the
	// granted openings fall outside delivery hours depends on the time of day).
	lead := regexp.MustCompile(`This report holds 4 unlock events from ` + yesterday + ` to ` + today +
		`, (no anomalies|1 anomaly \(1 still open when it was made\)|[23] anomalies \([23] still open when it was made\)), 1 consent and 1 device, with every command`)
	if !lead.MatchString(page) {
		t.Errorf("the finished report's page does not lead with what it holds:\n%s", page)
	}
	pdf := download(t, mgr, pdfReport, page, ".pdf", "application/pdf")
	qpdfCheck(t, pdf)
	text := pdfText(t, pdf)
	for _, want := range []string{"Elm Court", pdfID, "4: 3 granted, 1 denied", "SN-9", "parcel-r3"} {
		if !strings.Contains(text, want) {
			t.Errorf("the PDF's text lacks %q:\n%s", want, text)
		}
	}

	// The board member's CSV and evidence bundle.
	csvReport := requestReport(t, board, building, doorledger.ReportCSV, yesterday, today)
	data := download(t, board, csvReport, awaitReport(t, board, csvReport), ".csv", "text/csv; charset=utf-8")
	records, err := csv.NewReader(bytes.NewReader(data)).ReadAll()
	if err != nil {
		t.Fatalf("the CSV does not parse: %v\n%s", err, data)
	}
	if got := strings.Count(string(data), "parcel-r"); got != 4 || len(records) < 5 {
		t.Errorf("the CSV has %d records and %d of the 4 events:\n%s", len(records), got, data)
	}
	bundleReport := requestReport(t, board, building, doorledger.ReportBundle, yesterday, today)
	bundle := download(t, board, bundleReport, awaitReport(t, board, bundleReport), ".zip", "application/zip")
	zr, err := zip.NewReader(bytes.NewReader(bundle), int64(len(bundle)))
	if err != nil {
		t.Fatalf("the bundle is not a zip: %v", err)
	}
	var names []string
	hasPDF := false
	for _, f := range zr.File {
		names = append(names, f.Name)
		hasPDF = hasPDF || strings.HasSuffix(f.Name, ".pdf")
	}
	if !hasPDF {
		t.Errorf("the bundle holds no PDF: %q", names)
	}

	// The registry lists them all.
	_, body = board.Get(building + "/reports")
	for _, r := range []string{pdfReport, csvReport, bundleReport, longReport} {
		if !strings.Contains(body, `href="`+r+`"`) {
			t.Errorf("the registry does not list %s", r)
		}
	}

	// Verify: the downloaded PDF is recognised; one flipped byte is not,
	// and the page says which report it claims to be; two reports' logs.
	body = verify(t, board, map[string]map[string][]byte{"file": {"report.pdf": pdf}})
	if !strings.Contains(body, "Issued by Doorledger:") || !strings.Contains(body, pdfID) || !strings.Contains(body, "Elm Court") {
		t.Errorf("the downloaded PDF is not recognised:\n%s", body)
	}
	changed := bytes.Clone(pdf)
	changed[len(changed)/2] ^= 0x01
	body = verify(t, board, map[string]map[string][]byte{"file": {"report.pdf": changed}})
	if !strings.Contains(body, "Doorledger did not issue this file, or it was changed after it was issued") || strings.Contains(body, "Issued by Doorledger:") {
		t.Errorf("a changed PDF is not refused:\n%s", body)
	}
	if !strings.Contains(body, "It says it is report") || !strings.Contains(body, pdfID) {
		t.Errorf("the changed PDF's claimed report is not named:\n%s", body)
	}
	body = verify(t, mgr, map[string]map[string][]byte{"file": {"report.pdf": pdf}, "other": {"export.csv": data}})
	if !strings.Contains(body, `id="consistency" data-ok="true"`) ||
		!strings.Contains(body, "nothing earlier was rewritten") && !strings.Contains(body, "cover the same signed log head") {
		t.Errorf("two reports' logs are not proved consistent:\n%s", body)
	}
	status, _, body = mgr.PostMultipart("/reports/verify", "/reports/verify", url.Values{}, map[string]map[string][]byte{"file": {"photo.png": {0x89, 'P', 'N', 'G', 0, 0, 0, 0}}})
	if status != http.StatusUnprocessableEntity || !strings.Contains(body, `id="file-error"`) || !strings.Contains(body, "not a PDF, CSV or zip file") {
		t.Errorf("a PNG on the verify page: %d\n%s", status, body)
	}

	// The installer sees none of it.
	for _, path := range []string{building + "/reports", pdfReport, pdfReport + "/download", "/reports/verify"} {
		if status, _ := inst.Get(path); status != http.StatusNotFound {
			t.Errorf("installer GET %s: %d, want 404", path, status)
		}
	}

	// Subscription: on, shown, off.
	if status, _, body := board.Post(building+"/reports", building+"/reports/subscription", url.Values{"on": {"1"}}); status != http.StatusSeeOther {
		t.Errorf("subscribe: %d\n%s", status, body)
	}
	if _, body := board.Get(building + "/reports"); !strings.Contains(body, "Stop the monthly report") {
		t.Errorf("the subscription is not shown")
	}

	// The journal has the downloads.
	if _, body := mgr.Get(building + "/audit"); !strings.Contains(body, "downloaded report "+pdfID+" (PDF, ") {
		t.Errorf("the building's journal lacks the download of %s:\n%s", pdfID, body)
	}
}
