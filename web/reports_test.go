package web_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"html"
	"io"
	"log/slog"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf16"

	"github.com/doorledger/doorledger"
	"github.com/doorledger/doorledger/db/sqlite"
	"github.com/doorledger/doorledger/reports"
	"github.com/doorledger/doorledger/web"
)

// countingRunner is the real report generator, counting its wake-ups.
type countingRunner struct {
	*reports.Runner
	notified atomic.Int32
}

func (r *countingRunner) Notify() { r.notified.Add(1); r.Runner.Notify() }

// withReportFiles serves the fixture's portal again with a report generator
// writing into a directory, and returns the generator (not running: tests
// call RunOnce) and a client of that server.
func (f *fixture) withReportFiles(t *testing.T) (*countingRunner, *client) {
	t.Helper()
	runner := &countingRunner{Runner: reports.NewRunner(f.reports, f.logs, t.TempDir(), nil)}
	srv := web.NewServer(web.Config{
		Users: f.users, Buildings: f.buildings, Audit: sqlite.NewAuditService(f.db),
		Consents: f.consents, Papers: f.consents, Policies: sqlite.NewPolicyService(f.db), Invitations: sqlite.NewInvitationService(f.db, "http://portal.test"), Outbox: f.outbox,
		Devices: sqlite.NewDeviceService(f.db), Unlocks: sqlite.NewUnlockService(f.db), Logs: f.logs,
		Reports: f.reports, ReportFiles: runner,
		SessionKeys: [][]byte{[]byte(strings.Repeat("h", 64)), []byte(strings.Repeat("b", 32))},
		Logger:      slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	hs := httptest.NewServer(srv.Handler())
	t.Cleanup(hs.Close)
	c := f.client()
	c.tb = t
	c.base, _ = url.Parse(hs.URL)
	return runner, c
}

var reportLocRE = regexp.MustCompile(`^/reports/(AR-\d+-\d{8}T\d{6}Z-[0-9a-f]+)$`)

// finish plays the generator for the oldest queued report, whose file is
// data: it claims it and registers data's hash with a freshly signed head.
func (f *fixture) finish(t *testing.T, data []byte) *doorledger.ReportRecord {
	t.Helper()
	gen := doorledger.NewSystemContext(context.Background(), "report generator")
	rec := must(f.reports.NextReport(gen))(t)
	if rec == nil {
		t.Fatal("no report queued")
	}
	head := must(f.logs.SignHead(gen))(t)
	sum := sha256.Sum256(data)
	if err := f.reports.FinishReport(gen, rec.ID, hex.EncodeToString(sum[:]), int64(len(data)), head, doorledger.ReportHolds{}); err != nil {
		t.Fatal(err)
	}
	return must(f.reports.FindReport(doorledger.NewContextWithUser(context.Background(), f.admin), rec.ID))(t)
}

// request asks for a report of building A through the form and returns its page.
func request(t *testing.T, c *client, f *fixture, format, from, to string) string {
	t.Helper()
	resp, body := c.post(fmt.Sprintf("/buildings/%d/reports", f.A.ID), url.Values{"format": {format}, "from": {from}, "to": {to}}, "")
	loc := resp.Header.Get("Location")
	if resp.StatusCode != http.StatusSeeOther || !reportLocRE.MatchString(loc) {
		t.Fatalf("request %s %s..%s: %d %q\n%s", format, from, to, resp.StatusCode, loc, body)
	}
	return loc
}

func TestReportRequestForm(t *testing.T) {
	f := newFixture(t)
	files, c := f.withReportFiles(t)
	c.login(f.managerA.Email)
	page := fmt.Sprintf("/buildings/%d/reports", f.A.ID)

	// Last month in the building's zone by default, a note of its length.
	ny, _ := time.LoadLocation("America/New_York")
	y, m, _ := time.Now().In(ny).Date()
	first := time.Date(y, m, 1, 0, 0, 0, 0, ny)
	resp, body := c.get(page)
	for _, want := range []string{`id="from" name="from" type="date" value="` + first.AddDate(0, -1, 0).Format("2006-01-02") + `"`,
		`id="to" name="to" type="date" value="` + first.AddDate(0, 0, -1).Format("2006-01-02") + `"`,
		`name="format" value="pdf" checked`, `id="range-note"`, `<em>No reports yet.</em>`, "Mail me the monthly report"} {
		if resp.StatusCode != http.StatusOK || !strings.Contains(body, want) {
			t.Errorf("reports page (%d) lacks %s", resp.StatusCode, want)
		}
	}
	if strings.Contains(body, `id="range-warning"`) {
		t.Errorf("a month is warned about")
	}
	// The dates' htmx check: a range over a year is warned about, with its length.
	if _, body := c.get(page + "?from=2025-01-01&to=2026-01-31"); !strings.Contains(body, `id="range-warning"`) || !strings.Contains(body, "This range covers 396 days") {
		t.Errorf("no warning for 396 days:\n%s", body)
	}
	if _, body := c.get(page + "?from=2025-01-01&to=2026-01-01"); strings.Contains(body, `id="range-warning"`) {
		t.Errorf("366 days (ReportWarnDays) are warned about")
	}

	// Bad input: beside each field, kept; nothing registered, the generator not woken.
	for _, tc := range []struct {
		form   url.Values
		fields []string
	}{
		{url.Values{"format": {"pdf"}, "from": {"2026-03-10"}, "to": {"2026-03-01"}}, []string{"to"}},
		{url.Values{"format": {"docx"}, "from": {"last month"}, "to": {""}}, []string{"format", "from", "to"}},
		{url.Values{"format": {"csv"}, "from": {"2026-01-01"}, "to": {time.Now().AddDate(0, 0, 3).Format("2006-01-02")}}, []string{"to"}},
	} {
		resp, body := c.post(page, tc.form, "")
		if resp.StatusCode != http.StatusUnprocessableEntity {
			t.Errorf("%v: %d, want 422", tc.form, resp.StatusCode)
		}
		for _, fld := range tc.fields {
			if !strings.Contains(body, `id="`+fld+`-error"`) {
				t.Errorf("%v: no message beside %s:\n%s", tc.form, fld, body)
			}
		}
		for _, k := range []string{"from", "to"} {
			if v := tc.form.Get(k); v != "" && !strings.Contains(body, `value="`+v+`"`) {
				t.Errorf("%v: %s not kept", tc.form, k)
			}
		}
	}
	if list := must(f.reports.FindReports(sys(), f.A.ID, 10))(t); len(list) != 0 || files.notified.Load() != 0 {
		t.Fatalf("bad requests registered %d reports, woke the generator %d times", len(list), files.notified.Load())
	}

	// A good one: registered, the generator woken, its page follows it.
	loc := request(t, c, f, doorledger.ReportCSV, "2026-01-01", "2026-01-31")
	if files.notified.Load() != 1 {
		t.Errorf("the generator was woken %d times", files.notified.Load())
	}
	_, body = c.get(loc)
	if !strings.Contains(body, `data-status="queued" hx-get="`+loc+`/status" hx-trigger="every 1s"`) {
		t.Errorf("a queued report's page does not poll:\n%s", body)
	}
	if _, body := c.get(page); !strings.Contains(body, `href="`+loc+`"`) {
		t.Errorf("the registry does not list %s", loc)
	}
}

func TestReportProgressAndDownload(t *testing.T) {
	f := newFixture(t)
	runner, c := f.withReportFiles(t)
	c.login(f.boardA.Email)
	loc := request(t, c, f, doorledger.ReportCSV, "2026-01-01", "2026-01-31")

	// Not ready: the download is the report's page again, 409.
	resp, body := c.get(loc + "/download")
	if resp.StatusCode != http.StatusConflict || !strings.Contains(body, "is not ready to download yet") || resp.Header.Get("Content-Disposition") != "" {
		t.Errorf("download of a queued report: %d %q\n%s", resp.StatusCode, resp.Header.Get("Content-Disposition"), body)
	}

	// Progress, as a generator records it, in the fragment the page polls;
	// then its failure, which ends the polling.
	gen := doorledger.NewSystemContext(context.Background(), "report generator")
	claimed := must(f.reports.NextReport(gen))(t)
	if err := f.reports.ReportProgress(gen, claimed.ID, 3, 8); err != nil {
		t.Fatal(err)
	}
	resp, body = c.get(loc + "/status")
	if resp.StatusCode != http.StatusOK || strings.Contains(body, "<html") || !strings.Contains(body, "3 of 8 unlock events") ||
		!strings.Contains(body, `<progress value="3" max="8">`) || !strings.Contains(body, `hx-trigger="every 1s"`) {
		t.Errorf("progress fragment: %d\n%s", resp.StatusCode, body)
	}
	if err := f.reports.FailReport(gen, claimed.ID, "The disk is full."); err != nil {
		t.Fatal(err)
	}
	if _, body = c.get(loc + "/status"); strings.Contains(body, "hx-trigger") || !strings.Contains(body, "The report could not be made:</strong> The disk is full.") {
		t.Errorf("failed fragment:\n%s", body)
	}
	if resp, body := c.get(loc + "/download"); resp.StatusCode != http.StatusConflict || !strings.Contains(body, "failed, so there is nothing to download") {
		t.Errorf("download of a failed report: %d\n%s", resp.StatusCode, body)
	}

	// Generated by the real generator: the fragment stops polling and offers
	// the file; the download is the file with its name, type and length, and
	// is journaled.
	loc = request(t, c, f, doorledger.ReportCSV, "2026-01-01", "2026-01-31")
	id := reportLocRE.FindStringSubmatch(loc)[1]
	if did, err := runner.RunOnce(context.Background()); !did || err != nil {
		t.Fatalf("generate: %v %v", did, err)
	}
	rec := must(f.reports.FindReport(doorledger.NewContextWithUser(context.Background(), f.boardA), id))(t)
	_, body = c.get(loc + "/status")
	if strings.Contains(body, "hx-trigger") || !strings.Contains(body, `id="sha256">`+rec.SHA256+`<`) ||
		!strings.Contains(body, fmt.Sprintf(`<span id="head-size">%d</span>`, rec.HeadSize)) || !strings.Contains(body, f.logs.VerifierKey()) {
		t.Errorf("finished fragment:\n%s", body)
	}
	resp, body = c.get(loc + "/download")
	sum := sha256.Sum256([]byte(body))
	if resp.StatusCode != http.StatusOK || hex.EncodeToString(sum[:]) != rec.SHA256 ||
		resp.Header.Get("Content-Disposition") != `attachment; filename="`+id+`.csv"` ||
		resp.Header.Get("Content-Type") != "text/csv; charset=utf-8" || resp.Header.Get("Content-Length") != fmt.Sprint(rec.Bytes) {
		t.Errorf("download: %d %v\n%s", resp.StatusCode, resp.Header, body)
	}
	downloads := func() int {
		n := 0
		for _, e := range must(f.audit().FindAuditEntries(sys(), doorledger.AuditFilter{BuildingID: f.A.ID}))(t) {
			if e.Action == "report.download" && strings.Contains(e.Detail, id) {
				n++
			}
		}
		return n
	}
	if n := downloads(); n != 1 {
		t.Errorf("%d downloads journaled, want 1", n)
	}

	// Another building's manager and the installer: no such report.
	for _, who := range []string{f.managerB.Email, f.instA.Email} {
		other := f.client()
		other.tb = t
		other.base = c.base
		other.login(who)
		for _, path := range []string{loc, loc + "/status", loc + "/download"} {
			if resp, _ := other.get(path); resp.StatusCode != http.StatusNotFound {
				t.Errorf("%s GET %s: %d, want 404", who, path, resp.StatusCode)
			}
		}
	}

	// The file changed on disk: not served, not journaled.
	path := must(runner.Path(rec))(t)
	if err := os.WriteFile(path, append([]byte(body), 'x'), 0o600); err != nil {
		t.Fatal(err)
	}
	if resp, got := c.get(loc + "/download"); resp.StatusCode != http.StatusInternalServerError || strings.Contains(got, "2026-01") {
		t.Errorf("download of a changed file: %d\n%s", resp.StatusCode, got)
	}
	if n := downloads(); n != 1 {
		t.Errorf("%d downloads journaled after a refused one, want 1", n)
	}
}

func TestReportSubscription(t *testing.T) {
	f := newFixture(t)
	c := f.client()
	c.login(f.boardA.Email)
	page := fmt.Sprintf("/buildings/%d/reports", f.A.ID)
	resp, _ := c.post(page+"/subscription", url.Values{"on": {"1"}}, "")
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("subscribe: %d", resp.StatusCode)
	}
	ctx := doorledger.NewContextWithUser(context.Background(), f.boardA)
	if on := must(f.reports.Subscribed(ctx, f.A.ID))(t); !on {
		t.Fatal("not subscribed")
	}
	if _, body := c.get(page); !strings.Contains(body, "Stop the monthly report") || !strings.Contains(body, "You will receive the report of Building A by mail") {
		t.Errorf("subscription not shown:\n%s", body)
	}
	c.post(page+"/subscription", url.Values{"on": {"0"}}, "")
	if on := must(f.reports.Subscribed(ctx, f.A.ID))(t); on {
		t.Fatal("still subscribed")
	}
}

// upload posts files (field → name → bytes) to the verify page.
func (c *client) uploadFiles(path string, files map[string]map[string][]byte) (*http.Response, string) {
	c.tb.Helper()
	var body bytes.Buffer
	w := multipart.NewWriter(&body)
	w.WriteField("_csrf", c.csrf())
	for field, byName := range files {
		for name, data := range byName {
			fw, _ := w.CreateFormFile(field, name)
			fw.Write(data)
		}
	}
	w.Close()
	req, _ := http.NewRequest(http.MethodPost, c.base.String()+path, &body)
	req.Header.Set("Content-Type", w.FormDataContentType())
	resp, s := c.do(req)
	return resp, html.UnescapeString(s)
}

var tagsRE = regexp.MustCompile(`<[^>]*>`)

// utf16BE is s as a PDF's document information writes it: UTF-16BE.
func utf16BE(s string) []byte {
	var b []byte
	for _, u := range utf16.Encode([]rune(s)) {
		b = append(b, byte(u>>8), byte(u))
	}
	return b
}

func TestVerifyReport(t *testing.T) {
	f := newFixture(t)
	mgr := f.client()
	mgr.login(f.managerA.Email)

	// A "PDF" whose id is written only in UTF-16, as its document
	// information holds it, across the boundary of the reader's chunks (a
	// 512-byte head, then 32 KB reads); then a CSV with a larger log head.
	id1 := reportLocRE.FindStringSubmatch(request(t, mgr, f, doorledger.ReportPDF, "2026-01-01", "2026-01-31"))[1]
	pdf := bytes.Repeat([]byte("0"), 40000)
	copy(pdf, "%PDF-1.7\n")
	copy(pdf[512+32768-20:], append([]byte{0xfe, 0xff}, utf16BE(id1)...))
	copy(pdf[len(pdf)-6:], "%%EOF\n")
	rec1 := f.finish(t, pdf)
	id2 := reportLocRE.FindStringSubmatch(request(t, mgr, f, doorledger.ReportCSV, "2026-01-01", "2026-01-31"))[1]
	csvData := []byte("report," + id2 + "\r\ntime,device,result\r\n")
	rec2 := f.finish(t, csvData)
	if rec2.HeadSize <= rec1.HeadSize {
		t.Fatalf("heads %d then %d: the second report's should be larger", rec1.HeadSize, rec2.HeadSize)
	}

	// The issued file is recognised, with its report, range and head.
	resp, body := mgr.uploadFiles("/reports/verify", map[string]map[string][]byte{"file": {"report.pdf": pdf}})
	for _, want := range []string{`data-issued="true"`, "Issued by Doorledger:</strong> report", id1, "of Building A, 2026-01-01 to 2026-01-31",
		fmt.Sprintf("%d entries", rec1.HeadSize), rec1.HeadRoot.String()} {
		if resp.StatusCode != http.StatusOK || !strings.Contains(body, want) {
			t.Errorf("verify the PDF (%d): lacks %q", resp.StatusCode, want)
		}
	}
	if strings.Contains(body, "does not verify") {
		t.Errorf("the registered head does not verify:\n%s", body)
	}

	// One flipped byte: not issued, and the report it claims to be is named.
	changed := bytes.Clone(pdf)
	changed[200] ^= 0x20
	_, body = mgr.uploadFiles("/reports/verify", map[string]map[string][]byte{"file": {"report.pdf": changed}})
	if !strings.Contains(body, `data-issued="false"`) || !strings.Contains(body, "Doorledger did not issue this file, or it was changed after it was issued.") ||
		!strings.Contains(body, "It says it is report") || !strings.Contains(body, id1) || !strings.Contains(body, rec1.SHA256) {
		t.Errorf("a changed file:\n%s", body)
	}
	// Another building's manager sees neither the report nor whose it is.
	other := f.client()
	other.login(f.managerB.Email)
	_, body = other.uploadFiles("/reports/verify", map[string]map[string][]byte{"file": {"report.pdf": pdf}})
	if !strings.Contains(body, `data-issued="false"`) || strings.Contains(body, "Building A") {
		t.Errorf("another building's manager:\n%s", body)
	}
	_, body = other.uploadFiles("/reports/verify", map[string]map[string][]byte{"file": {"report.pdf": changed}})
	if !strings.Contains(body, "no report of that id is registered among the buildings you can see") || strings.Contains(body, rec1.SHA256) {
		t.Errorf("another building's manager, a changed file:\n%s", body)
	}

	// Two reports: the later one's log extends the earlier one's, in either order.
	for _, files := range []map[string]map[string][]byte{
		{"file": {"report.pdf": pdf}, "other": {"export.csv": csvData}},
		{"file": {"export.csv": csvData}, "other": {"report.pdf": pdf}},
	} {
		_, body = mgr.uploadFiles("/reports/verify", files)
		want := fmt.Sprintf("Report %s's log extends report %s's: nothing earlier was rewritten. The log grew from %d to %d entries", id2, id1, rec1.HeadSize, rec2.HeadSize)
		if !strings.Contains(body, `id="consistency" data-ok="true"`) || !strings.Contains(tagsRE.ReplaceAllString(body, ""), want) {
			t.Errorf("two reports:\n%s", body)
		}
	}
	_, body = mgr.uploadFiles("/reports/verify", map[string]map[string][]byte{"file": {"report.pdf": pdf}, "other": {"report.pdf": changed}})
	if !strings.Contains(body, `id="consistency" data-ok="false"`) || !strings.Contains(body, "only when Doorledger issued both files") {
		t.Errorf("a report and a changed file:\n%s", body)
	}

	// Files that are no report: beside the field, 422.
	for _, tc := range []struct {
		files map[string]map[string][]byte
		field string
		msg   string
	}{
		{map[string]map[string][]byte{"file": {"photo.png": {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n', 0, 0}}}, "file", "This is not a PDF, CSV or zip file"},
		{map[string]map[string][]byte{"file": {"empty.pdf": {}}}, "file", "The file is empty."},
		{map[string]map[string][]byte{"other": {"export.csv": csvData}}, "file", "Choose the report file to check."},
		{map[string]map[string][]byte{"file": {"export.csv": csvData}, "other": {"x.bin": {0, 1, 2, 3}}}, "other", "This is not a PDF, CSV or zip file"},
	} {
		resp, body := mgr.uploadFiles("/reports/verify", tc.files)
		if resp.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(body, `id="`+tc.field+`-error" class="field-error">`+tc.msg) ||
			strings.Contains(body, "Issued by Doorledger") {
			t.Errorf("%s: %d\n%s", tc.msg, resp.StatusCode, body)
		}
	}
}

// TestReportFormDefaultRange: with no unlock events this month, the report
// form holds the last complete month and says so.
func TestReportFormDefaultRange(t *testing.T) {
	f := newFixture(t)
	board := f.client()
	board.login(f.boardA.Email)
	_, body := board.get(fmt.Sprintf("/buildings/%d/reports", f.A.ID))
	now := time.Now().In(f.A.Location())
	first := time.Date(now.Year(), now.Month(), 1, 0, 0, 0, 0, f.A.Location())
	last := first.AddDate(0, -1, 0)
	for _, want := range []string{
		`value="` + last.Format(time.DateOnly) + `"`,
		`value="` + first.AddDate(0, 0, -1).Format(time.DateOnly) + `"`,
		"The last complete month, " + last.Format("January 2006") + ": this month has no unlock events yet.",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("report form lacks %q", want)
		}
	}
}
