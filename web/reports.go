package web

// Audit reports: a building's reports page (request form, registry,
// monthly subscription), one report's page with its live progress, the
// download, and the page that checks an uploaded file against the registry
// and two reports' log heads against each other.

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"os"
	"regexp"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/doorledger/doorledger"
	"github.com/doorledger/doorledger/auditlog"
	"github.com/doorledger/doorledger/views"
	"github.com/doorledger/doorledger/witness"
	"github.com/labstack/echo/v4"
)

// ReportFiles is the report generator as the pages use it.
type ReportFiles interface {
	// Notify wakes the generator: a report was queued.
	Notify()
	// Open opens the file of a finished report, positioned at its start,
	// after checking that its size and SHA-256 are still the registered
	// ones: a file damaged or altered on disk is never served as the report.
	Open(r *doorledger.ReportRecord) (*os.File, error)
}

// Uploads to the verify page: one file of the largest report (a PDF or CSV of
// doorledger.MaxReportEvents events, or its bundle) fits, twice.
const (
	maxVerifyFile   = 64 << 20
	verifyBodyLimit = 2*maxVerifyFile + 1<<20
)

// reportsShown bounds the registry list of a building's page.
const reportsShown = 100

// reportContentType is the Content-Type a format is served with.
var reportContentType = map[string]string{
	doorledger.ReportPDF:    "application/pdf",
	doorledger.ReportCSV:    "text/csv; charset=utf-8",
	doorledger.ReportBundle: "application/zip",
}

// lastMonth is the range of the month before now's, in loc.
func lastMonth(now time.Time, loc *time.Location) (from, to string) {
	y, m, _ := now.In(loc).Date()
	first := time.Date(y, m, 1, 0, 0, 0, 0, loc)
	return first.AddDate(0, -1, 0).Format("2006-01-02"), first.AddDate(0, 0, -1).Format("2006-01-02")
}

// defaultReportRange is the report form's range before the user picks one:
// this month to date when it has unlock events, else the last complete
// month, and a note saying which (a board's first report should hold
// events, not an empty month).
func defaultReportRange(ctx context.Context, unlocks doorledger.UnlockService, b *doorledger.Building, now time.Time) (from, to, note string) {
	local := now.In(b.Location())
	first := time.Date(local.Year(), local.Month(), 1, 0, 0, 0, 0, b.Location())
	if unlocks != nil {
		days, err := unlocks.DailyCounts(ctx, b.ID, 0, local.Day())
		n := 0
		for _, d := range days {
			if d.Date >= first.Format(time.DateOnly) {
				n += d.Granted + d.Denied
			}
		}
		if err == nil && n > 0 {
			return first.Format(time.DateOnly), local.Format(time.DateOnly),
				fmt.Sprintf("This month to date: %d unlock %s so far.", n, map[bool]string{true: "event", false: "events"}[n == 1])
		}
	}
	from, to = lastMonth(now, b.Location())
	return from, to, "The last complete month, " + first.AddDate(0, -1, 0).Format("January 2006") + ": this month has no unlock events yet."
}

// rangeDays is how many dates from..to covers, both included; 0 when it is
// not a valid range.
func rangeDays(from, to string) int {
	r := doorledger.AuditReport{From: from, To: to}
	return r.Days()
}

// reportRequestInput reads the request form. The service checks it and
// names each problem's field.
func reportRequestInput(c echo.Context, buildingID int64) (doorledger.ReportRequest, views.Form) {
	f := formOf(c, "format", "from", "to")
	for k, s := range f.Values {
		f.Values[k] = strings.TrimSpace(s)
	}
	return doorledger.ReportRequest{BuildingID: buildingID, Format: f.Value("format"), From: f.Value("from"), To: f.Value("to")}, f
}

// reportsView loads a building's reports page for this user, with form f.
func (s *Server) reportsView(ctx context.Context, reports doorledger.ReportService, b *doorledger.Building, f views.Form) (views.ReportsView, error) {
	v := views.ReportsView{Building: b, Form: f, Days: rangeDays(f.Value("from"), f.Value("to"))}
	var err error
	if v.Reports, err = reports.FindReports(ctx, b.ID, reportsShown); err != nil {
		return v, err
	}
	if v.Subscribed, err = reports.Subscribed(ctx, b.ID); err != nil {
		return v, err
	}
	return v, nil
}

func (s *Server) renderReports(c echo.Context, status int, reports doorledger.ReportService, b *doorledger.Building, f views.Form) error {
	v, err := s.reportsView(c.Request().Context(), reports, b, f)
	if err != nil {
		return err
	}
	return render(c, status, views.ReportsPage(s.page(c, "Audit reports: "+b.Name, "buildings"), v))
}

// handleReports shows the request form (last month by default; a range in
// the query is shown with its note, which is how the form's dates ask
// whether to warn), the registry and the subscription.
func (s *Server) handleReports(buildings doorledger.BuildingService, reports doorledger.ReportService, unlocks doorledger.UnlockService) echo.HandlerFunc {
	return func(c echo.Context) error {
		b, err := unlockBuilding(c, buildings)
		if err != nil {
			return err
		}
		from, to, note := defaultReportRange(c.Request().Context(), unlocks, b, s.now())
		f := views.Form{Values: map[string]string{"format": doorledger.ReportPDF, "from": from, "to": to}}
		for _, k := range []string{"format", "from", "to"} {
			if q := strings.TrimSpace(c.QueryParam(k)); q != "" {
				f.Values[k] = q
				note = ""
			}
		}
		v, err := s.reportsView(c.Request().Context(), reports, b, f)
		if err != nil {
			return err
		}
		v.RangeDefault = note
		return render(c, http.StatusOK, views.ReportsPage(s.page(c, "Audit reports: "+b.Name, "buildings"), v))
	}
}

// handleReportRequest queues a report and wakes the generator; the report's
// page follows its progress.
func (s *Server) handleReportRequest(buildings doorledger.BuildingService, reports doorledger.ReportService, files ReportFiles) echo.HandlerFunc {
	return func(c echo.Context) error {
		b, err := unlockBuilding(c, buildings)
		if err != nil {
			return err
		}
		req, f := reportRequestInput(c, b.ID)
		rec, err := reports.RequestReport(c.Request().Context(), req)
		if err != nil {
			if !formError(&f, err) {
				return err
			}
			return s.renderReports(c, formStatus(err), reports, b, f)
		}
		if files != nil {
			files.Notify()
		}
		return s.redirect(c, views.ReportPath(rec.ID, ""), fmt.Sprintf("Report %s requested.", rec.ID))
	}
}

func (s *Server) handleReportSubscription(buildings doorledger.BuildingService, reports doorledger.ReportService) echo.HandlerFunc {
	return func(c echo.Context) error {
		b, err := unlockBuilding(c, buildings)
		if err != nil {
			return err
		}
		on := c.FormValue("on") == "1"
		if err := reports.Subscribe(c.Request().Context(), b.ID, on); err != nil {
			return err
		}
		msg := "You will no longer receive the monthly report of " + b.Name + "."
		if on {
			msg = "You will receive the report of " + b.Name + " by mail after each month ends."
		}
		return s.redirect(c, pathf("/buildings/%d/reports#subscription", b.ID), msg)
	}
}

// reportView loads a report and its building's time zone: 404 for a report of
// a building the user may not see.
func reportView(ctx context.Context, buildings doorledger.BuildingService, reports doorledger.ReportService, logs doorledger.LogService, id string) (views.ReportView, error) {
	rec, err := reports.FindReport(ctx, id)
	if err != nil {
		return views.ReportView{}, err
	}
	b, err := buildings.FindBuildingByID(ctx, rec.BuildingID)
	if err != nil {
		return views.ReportView{}, err
	}
	v := views.ReportView{Report: rec, Loc: b.Location(), Days: rangeDays(rec.From, rec.To)}
	if logs != nil {
		v.VerifierKey, v.Origin = logs.VerifierKey(), logs.Origin()
	}
	return v, nil
}

func (s *Server) handleReport(buildings doorledger.BuildingService, reports doorledger.ReportService, logs doorledger.LogService, witnesses doorledger.WitnessService) echo.HandlerFunc {
	return func(c echo.Context) error {
		v, err := reportView(c.Request().Context(), buildings, reports, logs, c.Param("report"))
		if err != nil {
			return err
		}
		if v.Witnesses, err = configuredVouched(c.Request().Context(), logs, witnesses, v.Report); err != nil {
			return err
		}
		return render(c, http.StatusOK, views.ReportPage(s.page(c, "Report "+v.Report.ID, "buildings"), v))
	}
}

// handleReportStatus is the live part of the report's page, asked for every
// second by the page while the report is queued or being written.
func (s *Server) handleReportStatus(buildings doorledger.BuildingService, reports doorledger.ReportService, logs doorledger.LogService) echo.HandlerFunc {
	return func(c echo.Context) error {
		v, err := reportView(c.Request().Context(), buildings, reports, logs, c.Param("report"))
		if err != nil {
			return err
		}
		return render(c, http.StatusOK, views.ReportStatus(v))
	}
}

// handleReportDownload serves a finished report's file (ReportFiles.Open
// checks that its bytes still have the registered SHA-256) and journals the
// download. A report not finished yet is its own page again, with 409.
func (s *Server) handleReportDownload(buildings doorledger.BuildingService, reports doorledger.ReportService, logs doorledger.LogService, files ReportFiles) echo.HandlerFunc {
	return func(c echo.Context) error {
		ctx := c.Request().Context()
		v, err := reportView(ctx, buildings, reports, logs, c.Param("report"))
		if err != nil {
			return err
		}
		rec := v.Report
		if rec.Status != doorledger.ReportDone {
			p := s.page(c, "Report "+rec.ID, "buildings")
			msg := fmt.Sprintf("Report %s is not ready to download yet: it is %s. This page shows its progress.", rec.ID, rec.Status)
			if rec.Status == doorledger.ReportFailed {
				msg = fmt.Sprintf("Report %s failed, so there is nothing to download.", rec.ID)
			}
			p.Flash = append(p.Flash, views.Flash{Kind: "error", Message: msg})
			return render(c, http.StatusConflict, views.ReportPage(p, v))
		}
		if files == nil {
			return fmt.Errorf("download report %s: no report files configured", rec.ID)
		}
		f, err := files.Open(rec)
		if err != nil {
			return fmt.Errorf("open report %s: %w", rec.ID, err)
		}
		defer f.Close()
		if err := reports.ReportDownloaded(ctx, rec.ID); err != nil {
			return err
		}
		hd := c.Response().Header()
		hd.Set(echo.HeaderContentType, reportContentType[rec.Format])
		hd.Set(echo.HeaderContentDisposition, fmt.Sprintf("attachment; filename=%q", rec.FileName()))
		hd.Set(echo.HeaderContentLength, fmt.Sprint(rec.Bytes))
		hd.Set("Cache-Control", "no-store")
		c.Response().WriteHeader(http.StatusOK)
		if _, err := io.Copy(c.Response(), f); err != nil {
			s.log.Warn("report download cut short", "report", rec.ID, "err", err)
		}
		return nil
	}
}

func (s *Server) verifyPage(c echo.Context, logs doorledger.LogService, status int, v views.VerifyView) error {
	if logs != nil {
		v.VerifierKey, v.Origin = logs.VerifierKey(), logs.Origin()
	}
	return render(c, status, views.VerifyPage(s.page(c, "Verify a report", "buildings"), v))
}

func (s *Server) handleVerifyPage(logs doorledger.LogService) echo.HandlerFunc {
	return func(c echo.Context) error {
		return s.verifyPage(c, logs, http.StatusOK, views.VerifyView{})
	}
}

// reportIDRE matches a report id as reports print it, e.g.
// AR-7-20261122T093000Z-3f9a (the registry's), or without the random suffix.
var reportIDRE = regexp.MustCompile(`AR-[0-9]{1,19}-[0-9]{8}T[0-9]{6}Z(?:-[0-9a-f]{4})?`)

// idScanner finds the first report id in a stream of bytes, in ASCII or in
// UTF-16 (a PDF's document information is UTF-16BE: dropping its zero bytes
// leaves the ASCII of an id).
type idScanner struct {
	tail  []byte
	found string
}

func (s *idScanner) Write(p []byte) (int, error) {
	if s.found != "" {
		return len(p), nil
	}
	buf := append(s.tail, p...)
	if m := reportIDRE.Find(buf); m != nil {
		s.found = string(m)
	} else if m := reportIDRE.Find(bytes.ReplaceAll(buf, []byte{0}, nil)); m != nil {
		s.found = string(m)
	}
	const keep = 128 // longer than an id in UTF-16
	if len(buf) > keep {
		buf = buf[len(buf)-keep:]
	}
	s.tail = append(s.tail[:0], buf...)
	return len(p), nil
}

// sniffReport names the kind of file head starts with: PDF, zip or CSV (text),
// or "" for anything else.
func sniffReport(head []byte) string {
	switch {
	case bytes.HasPrefix(head, []byte("%PDF-")):
		return "PDF"
	case bytes.HasPrefix(head, []byte("PK\x03\x04")), bytes.HasPrefix(head, []byte("PK\x05\x06")):
		return "zip"
	}
	text := head
	for i := 0; i < utf8.UTFMax && len(text) > 0 && !utf8.Valid(text); i++ {
		text = text[:len(text)-1] // a character cut by the end of the head
	}
	if len(text) == 0 || !utf8.Valid(text) || bytes.IndexByte(text, 0) >= 0 {
		return ""
	}
	if !strings.HasPrefix(http.DetectContentType(head), "text/") {
		return ""
	}
	return "CSV"
}

// readUpload hashes one uploaded file, checks it is a PDF, CSV or zip by its
// content and looks for a report id in it. A problem is a message for the
// field; nothing of the file is kept.
func readUpload(fh *multipart.FileHeader) (*views.VerifiedFile, string, error) {
	if fh.Size > maxVerifyFile {
		return nil, fmt.Sprintf("The file is larger than %s: no report is that large.", byteSize(maxVerifyFile)), nil
	}
	r, err := fh.Open()
	if err != nil {
		return nil, "", fmt.Errorf("open upload: %w", err)
	}
	defer r.Close()
	head := make([]byte, 512)
	k, err := io.ReadFull(r, head)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		return nil, "", fmt.Errorf("read upload: %w", err)
	}
	head = head[:k]
	if k == 0 {
		return nil, "The file is empty.", nil
	}
	f := &views.VerifiedFile{Name: fh.Filename, Kind: sniffReport(head)}
	if f.Kind == "" {
		return nil, "This is not a PDF, CSV or zip file: Doorledger issues reports only in these formats.", nil
	}
	h, ids := sha256.New(), &idScanner{}
	w := io.MultiWriter(h, ids)
	w.Write(head)
	n, err := io.Copy(w, io.LimitReader(r, maxVerifyFile))
	if err != nil {
		return nil, "", fmt.Errorf("read upload: %w", err)
	}
	f.Size, f.SHA256, f.Claims = int64(k)+n, hex.EncodeToString(h.Sum(nil)), ids.found
	if f.Size > maxVerifyFile {
		return nil, fmt.Sprintf("The file is larger than %s: no report is that large.", byteSize(maxVerifyFile)), nil
	}
	return f, "", nil
}

// handleVerify looks an uploaded file up in the registry by its SHA-256 and,
// given a second one, proves that the later report's log extends the
// earlier one's.
func (s *Server) handleVerify(buildings doorledger.BuildingService, reports doorledger.ReportService, logs doorledger.LogService, witnesses doorledger.WitnessService) echo.HandlerFunc {
	return func(c echo.Context) error {
		ctx := c.Request().Context()
		v := views.VerifyView{Form: views.Form{Errors: map[string]string{}, Values: map[string]string{"witnesses": c.FormValue("witnesses")}}}
		trusted, k, terr := witness.ParseTrusted(v.Form.Value("witnesses"))
		if terr != nil {
			v.Form.Errors["witnesses"] = doorledger.ErrorMessage(terr)
		}
		for _, field := range []string{"file", "other"} {
			fh, err := c.FormFile(field)
			var mbe *http.MaxBytesError
			switch {
			case errors.As(err, &mbe):
				return err
			case err != nil || fh.Filename == "" && fh.Size == 0:
				if field == "file" {
					v.Form.Errors[field] = "Choose the report file to check."
				}
				continue
			}
			f, problem, err := readUpload(fh)
			if err != nil {
				return err
			}
			if problem != "" {
				v.Form.Errors[field] = problem
				continue
			}
			f.Field = field
			if err := s.lookUpReport(ctx, buildings, reports, logs, f); err != nil {
				return err
			}
			if f.Witnesses, err = vouched(ctx, logs, witnesses, f.Report, trusted, k); err != nil {
				return err
			}
			v.Files = append(v.Files, *f)
		}
		if len(v.Form.Errors) > 0 {
			v.Files = nil
			return s.verifyPage(c, logs, http.StatusUnprocessableEntity, v)
		}
		if len(v.Files) == 2 {
			cv, err := compareHeads(ctx, logs, v.Files[0], v.Files[1])
			if err != nil {
				return err
			}
			v.Consistency = cv
		}
		return s.verifyPage(c, logs, http.StatusOK, v)
	}
}

// lookUpReport fills in the registered report whose file f is, or the report
// f claims to be, and checks the report's signed head with the log's key.
func (s *Server) lookUpReport(ctx context.Context, buildings doorledger.BuildingService, reports doorledger.ReportService, logs doorledger.LogService, f *views.VerifiedFile) error {
	rec, err := reports.FindReportBySHA256(ctx, f.SHA256)
	switch doorledger.ErrorCode(err) {
	case "":
	case doorledger.ENOTFOUND:
		if f.Claims != "" {
			claimed, err := reports.FindReport(ctx, f.Claims)
			if err != nil && doorledger.ErrorCode(err) != doorledger.ENOTFOUND {
				return err
			}
			f.Claimed = claimed
		}
		return nil
	default:
		return err
	}
	f.Report, f.Claims = rec, ""
	f.Loc = time.UTC
	if b, err := buildings.FindBuildingByID(ctx, rec.BuildingID); err == nil {
		f.Loc = b.Location()
	} else if doorledger.ErrorCode(err) != doorledger.ENOTFOUND {
		return err
	}
	if rec.HeadSize > 0 {
		f.HeadProblem = checkHead(logs, rec)
	}
	return nil
}

// checkHead checks a report's signed head with the log's verifier key and
// against the size and root registered with it; "" when both hold.
func checkHead(logs doorledger.LogService, rec *doorledger.ReportRecord) string {
	vr, err := auditlog.NewVerifier(logs.VerifierKey())
	if err != nil {
		return err.Error()
	}
	cp, err := auditlog.OpenHead(rec.HeadNote, vr.ForOrigin(logs.Origin()))
	if err != nil {
		return err.Error()
	}
	if cp.Size != rec.HeadSize || cp.Root != rec.HeadRoot {
		return fmt.Sprintf("the signed note names %d entries and root %s, the registry %d and %s", cp.Size, cp.Root, rec.HeadSize, rec.HeadRoot)
	}
	return ""
}

// compareHeads proves that the larger of two reports' log heads extends the
// smaller: a consistency proof from the log, checked against both signed
// roots (tlog.CheckTree).
func compareHeads(ctx context.Context, logs doorledger.LogService, a, b views.VerifiedFile) (*views.ConsistencyView, error) {
	switch {
	case a.Report == nil || b.Report == nil:
		return &views.ConsistencyView{Problem: "the logs of two reports can be compared only when Doorledger issued both files."}, nil
	case a.Report.HeadSize == 0 || b.Report.HeadSize == 0:
		return &views.ConsistencyView{Problem: "a report that prints no log head cannot be compared."}, nil
	case a.HeadProblem != "" || b.HeadProblem != "":
		return &views.ConsistencyView{Problem: "a report's signed head does not verify, so its log cannot be trusted."}, nil
	}
	cv := &views.ConsistencyView{Old: a.Report, New: b.Report}
	if cv.Old.HeadSize > cv.New.HeadSize {
		cv.Old, cv.New = cv.New, cv.Old
	}
	oldHead := doorledger.LogHead{Size: cv.Old.HeadSize, Root: cv.Old.HeadRoot}
	newHead := doorledger.LogHead{Size: cv.New.HeadSize, Root: cv.New.HeadRoot}
	if oldHead.Size == newHead.Size {
		if oldHead.Root != newHead.Root {
			cv.Problem = fmt.Sprintf("both reports print a log of %d entries, with different roots: the log was rewritten between them.", oldHead.Size)
		}
		cv.Same = cv.Problem == ""
		return cv, nil
	}
	proof, err := logs.ProveConsistency(ctx, oldHead.Size, newHead.Size)
	if err != nil {
		if code := doorledger.ErrorCode(err); code == doorledger.EINVALID || code == doorledger.ENOTFOUND {
			cv.Problem = doorledger.ErrorMessage(err)
			return cv, nil
		}
		return nil, err
	}
	if err := auditlog.CheckConsistency(proof, oldHead, newHead); err != nil {
		cv.Problem = fmt.Sprintf("report %s's log does not extend report %s's: something logged before was rewritten (%v).", cv.New.ID, cv.Old.ID, err)
	}
	return cv, nil
}
