package dbtest

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/doorledger/doorledger"
)

var reportRegistryTests = []test{
	{"ReportRequestValidation", testReportRequestValidation},
	{"ReportAccess", testReportAccess},
	{"ReportLifecycle", testReportLifecycle},
	{"ReportSubscribeAndMonthly", testReportSubscribeAndMonthly},
	{"ReportMonthlyTooManyEvents", testReportMonthlyTooManyEvents},
}

// requeue puts the reports left running back in the queue: both backends'
// registries can (reports.Runner calls it at start), though the root
// interface does not name it.
func (w *ReportWorld) requeue(t testing.TB, ctx context.Context) (int, error) {
	t.Helper()
	q, ok := w.Reports.(interface {
		RequeueInterrupted(ctx context.Context) (int, error)
	})
	if !ok {
		t.Fatalf("%T cannot requeue interrupted reports", w.Reports)
	}
	return q.RequeueInterrupted(ctx)
}

// reportCount counts the reports registered for building b.
func (w *ReportWorld) reportCount(t testing.TB, b int64) int {
	t.Helper()
	list, err := w.Reports.FindReports(sys(), b, 500)
	if err != nil {
		t.Fatal(err)
	}
	return len(list)
}

// reportMails returns the monthly reports' mail waiting to be sent.
func (w *ReportWorld) reportMails(t testing.TB) []*doorledger.Message {
	t.Helper()
	var mails []*doorledger.Message
	for _, m := range w.pendingMail(t) {
		if m.Kind == "report" {
			mails = append(mails, m)
		}
	}
	return mails
}

func testReportRequestValidation(t *testing.T, newServices NewServices) {
	w := NewReportWorld(t, newServices(t), "America/New_York")
	ny := MustLoc(t, "America/New_York")
	today, yesterday := Day(*w.Now, ny, 0), Day(*w.Now, ny, -1)
	ctx := as(w.MgrA)
	for _, tt := range []struct {
		name             string
		format, from, to string
		field            string
	}{
		{"no format", "", yesterday, today, "format"},
		{"unknown format", "docx", yesterday, today, "format"},
		{"start not a date", doorledger.ReportPDF, "2026-13-01", today, "from"},
		{"end not a date", doorledger.ReportPDF, yesterday, "tomorrow", "to"},
		{"end before start", doorledger.ReportPDF, today, yesterday, "to"},
		{"end after today", doorledger.ReportPDF, today, Day(*w.Now, ny, 1), "to"},
	} {
		_, err := w.Reports.RequestReport(ctx, doorledger.ReportRequest{BuildingID: w.A, Format: tt.format, From: tt.from, To: tt.to})
		if doorledger.ErrorCode(err) != doorledger.EINVALID || doorledger.ErrorFields(err)[tt.field] == "" {
			t.Errorf("%s: err = %v, want EINVALID with a message for %s", tt.name, err, tt.field)
		}
	}

	// More events than a report holds: refused, naming the count, nothing written.
	w.MaxReportEvents(3)
	w.UnlocksAt(t, w.A, w.Now.Add(-72*time.Hour), w.Now.Add(-71*time.Hour), w.Now.Add(-3*time.Hour), w.Now.Add(-2*time.Hour))
	from := Day(*w.Now, ny, -3)
	_, err := w.Reports.RequestReport(ctx, doorledger.ReportRequest{BuildingID: w.A, Format: doorledger.ReportPDF, From: from, To: today})
	if msg := doorledger.ErrorMessage(err); doorledger.ErrorCode(err) != doorledger.EINVALID ||
		!strings.Contains(msg, "has 4 unlock events") || !strings.Contains(msg, "more than the 3") || !strings.Contains(msg, "shorter range") {
		t.Errorf("over the limit: %v", err)
	}
	if n := w.reportCount(t, w.A); n != 0 {
		t.Errorf("%d reports registered by refused requests", n)
	}
	if got := w.Journal(t, w.A, "report.request"); len(got) != 0 {
		t.Errorf("refused requests journaled: %+v", got)
	}

	// At the limit it is accepted, with the count, and journaled in the same transaction.
	r := w.Request(t, w.MgrA, w.A, doorledger.ReportPDF, Day(*w.Now, ny, -1), today)
	if r.Status != doorledger.ReportQueued || r.Total != 2 || r.RequestedBy != w.MgrA.ID || r.RequestedName != w.MgrA.Email ||
		r.BuildingName != "Alder Court" || !r.RequestedAt.Equal(*w.Now) || r.Monthly {
		t.Errorf("registered %+v", r)
	}
	if want := fmt.Sprintf("AR-%d-%s-", w.A, w.Now.UTC().Format("20060102T150405Z")); !strings.HasPrefix(r.ID, want) || len(r.ID) != len(want)+4 {
		t.Errorf("id %q, want %s + 4 hex digits", r.ID, want)
	}
	if j := w.Journal(t, w.A, "report.request"); len(j) != 1 || !strings.Contains(j[0].Detail, r.ID) || j[0].Actor != w.MgrA.Email {
		t.Errorf("journal: %+v", j)
	}
	// Ids stay unique within one second.
	seen := map[string]bool{r.ID: true}
	for i := 0; i < 20; i++ {
		r := w.Request(t, w.MgrA, w.A, doorledger.ReportCSV, today, today)
		if seen[r.ID] {
			t.Fatalf("id %s issued twice", r.ID)
		}
		seen[r.ID] = true
	}

	// A building with no devices and no events: a correct, empty report.
	if r := w.Request(t, w.MgrB, w.B, doorledger.ReportBundle, "2020-01-01", Day(*w.Now, time.UTC, 0)); r.Total != 0 || r.Status != doorledger.ReportQueued {
		t.Errorf("empty building: %+v", r)
	}
}

func testReportAccess(t *testing.T, newServices NewServices) {
	w := NewReportWorld(t, newServices(t), "UTC")
	today := Day(*w.Now, time.UTC, 0)
	req := doorledger.ReportRequest{BuildingID: w.A, Format: doorledger.ReportPDF, From: today, To: today}
	byManager := w.Request(t, w.MgrA, w.A, req.Format, req.From, req.To)
	*w.Now = w.Now.Add(time.Second) // the queue is by time requested
	byBoard := w.Request(t, w.BoardA, w.A, req.Format, req.From, req.To)
	w.Request(t, w.Admin, w.A, req.Format, req.From, req.To)
	sum := w.Finish(t, byManager.ID)

	for _, u := range []*doorledger.User{w.MgrA, w.BoardA, w.Admin} {
		ctx := as(u)
		if r, err := w.Reports.FindReport(ctx, byBoard.ID); err != nil || r.RequestedName != w.BoardA.Email {
			t.Errorf("%s: FindReport = %+v, %v", u.Email, r, err)
		}
		if list, err := w.Reports.FindReports(ctx, w.A, 0); err != nil || len(list) != 3 {
			t.Errorf("%s: FindReports: %d, %v", u.Email, len(list), err)
		}
		if r, err := w.Reports.FindReportBySHA256(ctx, strings.ToUpper(sum)); err != nil || r.ID != byManager.ID {
			t.Errorf("%s: FindReportBySHA256 = %+v, %v", u.Email, r, err)
		}
		if err := w.Reports.ReportDownloaded(ctx, byManager.ID); err != nil {
			t.Errorf("%s: ReportDownloaded: %v", u.Email, err)
		}
		if _, err := w.Reports.Subscribed(ctx, w.A); err != nil {
			t.Errorf("%s: Subscribed: %v", u.Email, err)
		}
	}
	// The installer of the building and the manager of another one learn nothing.
	for _, u := range []*doorledger.User{w.InstA, w.MgrB} {
		ctx := as(u)
		_, err := w.Reports.RequestReport(ctx, req)
		WantCode(t, u.Email+" RequestReport", err, doorledger.ENOTFOUND)
		_, err = w.Reports.FindReport(ctx, byManager.ID)
		WantCode(t, u.Email+" FindReport", err, doorledger.ENOTFOUND)
		_, err = w.Reports.FindReports(ctx, w.A, 10)
		WantCode(t, u.Email+" FindReports", err, doorledger.ENOTFOUND)
		_, err = w.Reports.FindReportBySHA256(ctx, sum)
		WantCode(t, u.Email+" FindReportBySHA256", err, doorledger.ENOTFOUND)
		WantCode(t, u.Email+" ReportDownloaded", w.Reports.ReportDownloaded(ctx, byManager.ID), doorledger.ENOTFOUND)
		WantCode(t, u.Email+" Subscribe", w.Reports.Subscribe(ctx, w.A, true), doorledger.ENOTFOUND)
		_, err = w.Reports.Subscribed(ctx, w.A)
		WantCode(t, u.Email+" Subscribed", err, doorledger.ENOTFOUND)
	}
	_, err := w.Reports.FindReport(as(w.MgrA), "AR-no-such")
	WantCode(t, "unknown id", err, doorledger.ENOTFOUND)
	_, err = w.Reports.FindReportBySHA256(as(w.MgrA), "not a hash")
	WantCode(t, "malformed hash", err, doorledger.EINVALID)
	_, err = w.Reports.FindReport(context.Background(), byManager.ID)
	WantCode(t, "anonymous", err, doorledger.EUNAUTHORIZED)
	// The journal names who downloaded which report.
	if j := w.Journal(t, w.A, "report.download"); len(j) != 3 || j[1].Actor != w.BoardA.Email || !strings.Contains(j[1].Detail, byManager.ID) {
		t.Errorf("downloads journaled: %+v", j)
	}
	// A report not done yet cannot be downloaded.
	WantCode(t, "download of a queued report", w.Reports.ReportDownloaded(as(w.BoardA), byBoard.ID), doorledger.ECONFLICT)

	// The generator's methods are the system's alone, admins included.
	for _, u := range []*doorledger.User{w.Admin, w.MgrA} {
		ctx := as(u)
		_, err := w.Reports.NextReport(ctx)
		WantCode(t, u.Email+" NextReport", err, doorledger.EFORBIDDEN)
		WantCode(t, u.Email+" GatherReport", w.Reports.GatherReport(ctx, byBoard.ID, func(*doorledger.AuditReport) error { return nil }), doorledger.EFORBIDDEN)
		WantCode(t, u.Email+" ReportProgress", w.Reports.ReportProgress(ctx, byBoard.ID, 1, 2), doorledger.EFORBIDDEN)
		WantCode(t, u.Email+" FinishReport", w.Reports.FinishReport(ctx, byBoard.ID, sum, 10, nil, doorledger.ReportHolds{}), doorledger.EFORBIDDEN)
		WantCode(t, u.Email+" FailReport", w.Reports.FailReport(ctx, byBoard.ID, "no"), doorledger.EFORBIDDEN)
		_, err = w.Reports.QueueMonthlyReports(ctx, *w.Now)
		WantCode(t, u.Email+" QueueMonthlyReports", err, doorledger.EFORBIDDEN)
		_, err = w.requeue(t, ctx)
		WantCode(t, u.Email+" RequeueInterrupted", err, doorledger.EFORBIDDEN)
	}
	// The system has no subscription of its own.
	WantCode(t, "system Subscribe", w.Reports.Subscribe(gen(), w.A, true), doorledger.EFORBIDDEN)
}

func testReportLifecycle(t *testing.T, newServices NewServices) {
	w := NewReportWorld(t, newServices(t), "UTC")
	today := Day(*w.Now, time.UTC, 0)
	a := w.Request(t, w.MgrA, w.A, doorledger.ReportPDF, today, today)
	*w.Now = w.Now.Add(time.Second)
	b := w.Request(t, w.MgrA, w.A, doorledger.ReportCSV, today, today)
	*w.Now = w.Now.Add(time.Second)
	c := w.Request(t, w.MgrB, w.B, doorledger.ReportBundle, today, today)

	// Claimed oldest first, each once.
	w.Claim(t, a.ID)
	w.Claim(t, b.ID)
	WantCode(t, "progress of a queued report", w.Reports.ReportProgress(gen(), c.ID, 1, 2), doorledger.ECONFLICT)
	if err := w.Reports.ReportProgress(gen(), a.ID, 40, 100); err != nil {
		t.Fatal(err)
	}
	WantCode(t, "negative progress", w.Reports.ReportProgress(gen(), a.ID, -1, 100), doorledger.EINVALID)
	if r, _ := w.Reports.FindReport(as(w.MgrA), a.ID); r.Status != doorledger.ReportRunning || r.Done != 40 || r.Total != 100 || !r.StartedAt.Equal(*w.Now) {
		t.Errorf("running: %+v", r)
	}

	// A portal killed while generating: its running reports go back to the queue.
	if n, err := w.requeue(t, gen()); err != nil || n != 2 {
		t.Fatalf("requeued %d, %v", n, err)
	}
	if r, _ := w.Reports.FindReport(as(w.MgrA), a.ID); r.Status != doorledger.ReportQueued || r.Done != 0 || !r.StartedAt.IsZero() {
		t.Errorf("requeued: %+v", r)
	}
	w.Claim(t, a.ID)

	// Bad results are refused and change nothing.
	head, err := w.Logs.SignHead(gen())
	if err != nil {
		t.Fatal(err)
	}
	WantCode(t, "bad hash", w.Reports.FinishReport(gen(), a.ID, "abc", 10, head, doorledger.ReportHolds{}), doorledger.EINVALID)
	WantCode(t, "empty file", w.Reports.FinishReport(gen(), a.ID, strings.Repeat("a", 64), 0, head, doorledger.ReportHolds{}), doorledger.EINVALID)
	forged := *head
	forged.Root[0] ^= 1
	WantCode(t, "unsigned head", w.Reports.FinishReport(gen(), a.ID, strings.Repeat("a", 64), 10, &forged, doorledger.ReportHolds{}), doorledger.EINVALID)
	WantCode(t, "open anomalies above the anomalies", w.Reports.FinishReport(gen(), a.ID, strings.Repeat("a", 64), 10, head, doorledger.ReportHolds{Anomalies: 1, OpenAnomalies: 2}), doorledger.EINVALID)
	WantCode(t, "a negative count", w.Reports.FinishReport(gen(), a.ID, strings.Repeat("a", 64), 10, head, doorledger.ReportHolds{Consents: -1}), doorledger.EINVALID)
	WantCode(t, "finish a queued report", w.Reports.FinishReport(gen(), b.ID, strings.Repeat("a", 64), 10, head, doorledger.ReportHolds{}), doorledger.ECONFLICT)

	sum := strings.Repeat("0123456789abcdef", 4)
	holds := doorledger.ReportHolds{Anomalies: 3, OpenAnomalies: 1, Consents: 2, Devices: 4}
	if err := w.Reports.FinishReport(gen(), a.ID, strings.ToUpper(sum), 5000, head, holds); err != nil {
		t.Fatal(err)
	}
	r, _ := w.Reports.FindReport(as(w.MgrA), a.ID)
	if r.Status != doorledger.ReportDone || r.SHA256 != sum || r.Bytes != 5000 || r.HeadSize != head.Size || r.HeadRoot != head.Root ||
		r.HeadNote != head.Note || !r.DoneAt.Equal(*w.Now) || r.Holds == nil || *r.Holds != holds {
		t.Errorf("done: %+v (holds %+v)", r, r.Holds)
	}
	if j := w.Journal(t, w.A, "report.generate"); len(j) != 1 || !strings.Contains(j[0].Detail, sum) || !strings.Contains(j[0].Detail, a.ID) {
		t.Errorf("journal: %+v", j)
	}
	WantCode(t, "finish twice", w.Reports.FinishReport(gen(), a.ID, sum, 5000, head, doorledger.ReportHolds{}), doorledger.ECONFLICT)
	WantCode(t, "fail a done report", w.Reports.FailReport(gen(), a.ID, "late"), doorledger.ECONFLICT)
	// Not a monthly report: no mail.
	if n := len(w.reportMails(t)); n != 0 {
		t.Errorf("%d report mails for a requested report", n)
	}

	// A report without a head (the log was empty) is registered without one.
	w.Claim(t, b.ID)
	if err := w.Reports.FinishReport(gen(), b.ID, sum, 10, nil, doorledger.ReportHolds{}); err != nil {
		t.Fatal(err)
	}
	if r, _ := w.Reports.FindReport(as(w.MgrA), b.ID); r.HeadSize != 0 || r.HeadRoot != (doorledger.LogHash{}) || r.HeadNote != "" {
		t.Errorf("no head: %+v", r)
	}

	// Failing records the reason, for people, and journals it.
	w.Claim(t, c.ID)
	if err := w.Reports.FailReport(gen(), c.ID, "  the disk is full  "); err != nil {
		t.Fatal(err)
	}
	if r, _ := w.Reports.FindReport(as(w.MgrB), c.ID); r.Status != doorledger.ReportFailed || r.Error != "the disk is full" {
		t.Errorf("failed: %+v", r)
	}
	if j := w.Journal(t, w.B, "report.fail"); len(j) != 1 || !strings.Contains(j[0].Detail, "the disk is full") {
		t.Errorf("journal: %+v", j)
	}
	if r, err := w.Reports.NextReport(gen()); r != nil || err != nil {
		t.Errorf("empty queue: %+v, %v", r, err)
	}
	if n, err := w.requeue(t, gen()); n != 0 || err != nil {
		t.Errorf("requeue with nothing running: %d, %v", n, err)
	}
	// Listed newest first.
	list, err := w.Reports.FindReports(as(w.Admin), w.A, 10)
	if err != nil || len(list) != 2 || list[0].ID != b.ID || list[1].ID != a.ID {
		t.Errorf("list: %v", err)
	}
}

func testReportSubscribeAndMonthly(t *testing.T, newServices NewServices) {
	w := NewReportWorld(t, newServices(t), "America/New_York")
	ny := MustLoc(t, "America/New_York")
	if err := w.Reports.Subscribe(as(w.BoardA), w.A, true); err != nil {
		t.Fatal(err)
	}
	if err := w.Reports.Subscribe(as(w.BoardA), w.A, true); err != nil { // again: no change
		t.Fatal(err)
	}
	if on, err := w.Reports.Subscribed(as(w.BoardA), w.A); !on || err != nil {
		t.Errorf("board subscribed: %v, %v", on, err)
	}
	if on, err := w.Reports.Subscribed(as(w.MgrA), w.A); on || err != nil {
		t.Errorf("manager subscribed: %v, %v", on, err)
	}
	if j := w.Journal(t, w.A, "report.subscribe"); len(j) != 1 || j[0].Actor != w.BoardA.Email {
		t.Errorf("journal: %+v", j)
	}
	// The manager of B subscribes and changes their mind: B has no subscriber.
	if err := w.Reports.Subscribe(as(w.MgrB), w.B, true); err != nil {
		t.Fatal(err)
	}
	if err := w.Reports.Subscribe(as(w.MgrB), w.B, false); err != nil {
		t.Fatal(err)
	}
	if j := w.Journal(t, w.B, "report.unsubscribe"); len(j) != 1 {
		t.Errorf("journal: %+v", j)
	}

	// The first of next month, 03:00 UTC, is still the evening before in New
	// York: last month there is the one before this one.
	utc := w.Now.UTC()
	next := time.Date(utc.Year(), utc.Month()+1, 1, 0, 0, 0, 0, time.UTC)
	monthBefore := func(t time.Time) (string, string) {
		first := time.Date(t.Year(), t.Month()-1, 1, 0, 0, 0, 0, time.UTC)
		return first.Format("2006-01-02"), first.AddDate(0, 1, -1).Format("2006-01-02")
	}
	nyEvening := next.Add(3 * time.Hour)
	if d := nyEvening.In(ny); d.Day() == 1 {
		t.Fatalf("%v is not the evening before in New York", d)
	}
	queue := func(at time.Time, want int) []*doorledger.ReportRecord {
		t.Helper()
		*w.Now = at // the registry's time is the database's clock
		n, err := w.Reports.QueueMonthlyReports(gen(), at)
		if err != nil || n != want {
			t.Fatalf("QueueMonthlyReports(%v) = %d, %v; want %d", at, n, err, want)
		}
		list, err := w.Reports.FindReports(sys(), w.A, 100)
		if err != nil {
			t.Fatal(err)
		}
		return list
	}
	list := queue(nyEvening, 1)
	wantFrom, wantTo := monthBefore(next.AddDate(0, -1, 0))
	if len(list) != 1 || !list[0].Monthly || list[0].From != wantFrom || list[0].To != wantTo || list[0].Format != doorledger.ReportPDF ||
		list[0].RequestedName != "system" || list[0].RequestedBy != 0 || list[0].Status != doorledger.ReportQueued {
		t.Fatalf("queued %+v, want %s..%s", list[0], wantFrom, wantTo)
	}
	queue(nyEvening, 0)
	// An hour past midnight in New York: this month has ended there.
	nyMorning := next.Add(6 * time.Hour)
	list = queue(nyMorning, 1)
	wantFrom, wantTo = monthBefore(next)
	if len(list) != 2 || list[0].From != wantFrom || list[0].To != wantTo {
		t.Fatalf("queued %+v, want %s..%s", list[0], wantFrom, wantTo)
	}
	queue(nyMorning, 0)
	queue(nyMorning.Add(24*time.Hour), 0) // once per month
	if reps, _ := w.Reports.FindReports(sys(), w.B, 10); len(reps) != 0 {
		t.Errorf("building without a subscriber: %d reports", len(reps))
	}

	// Finishing a monthly report mails its subscriber a link, in the same transaction.
	older, newer := list[1], list[0]
	sum := w.Finish(t, older.ID)
	mails := w.reportMails(t)
	month, _ := time.Parse("2006-01-02", older.From)
	if len(mails) != 1 || mails[0].To != w.BoardA.Email || mails[0].BuildingID != w.A {
		t.Fatalf("mails %+v", mails)
	}
	for _, s := range []string{"Alder Court", month.Format("January 2006"), older.ID, sum, BaseURL + "/reports/" + older.ID} {
		if !strings.Contains(mails[0].Subject+"\n"+mails[0].Body, s) {
			t.Errorf("mail lacks %q:\n%s\n%s", s, mails[0].Subject, mails[0].Body)
		}
	}

	// A subscriber who lost access no longer counts.
	if err := w.Buildings.RevokeAccess(sys(), w.A, w.BoardA.ID); err != nil {
		t.Fatal(err)
	}
	queue(next.AddDate(0, 1, 0).Add(6*time.Hour), 0)
	w.Claim(t, newer.ID)
	head, _ := w.Logs.SignHead(gen())
	if err := w.Reports.FinishReport(gen(), newer.ID, sum, 10, head, doorledger.ReportHolds{}); err != nil {
		t.Fatal(err)
	}
	if n := len(w.reportMails(t)); n != 1 {
		t.Errorf("%d report mails, want only the one before access was revoked", n)
	}
}

// TestReportMonthlyTooManyEvents: a month with more events than a report
// holds is registered as failed, saying why, and not queued again.
func testReportMonthlyTooManyEvents(t *testing.T, newServices NewServices) {
	w := NewReportWorld(t, newServices(t), "UTC")
	w.MaxReportEvents(2)
	w.UnlocksAt(t, w.B, *w.Now, *w.Now, *w.Now)
	if err := w.Reports.Subscribe(as(w.MgrB), w.B, true); err != nil {
		t.Fatal(err)
	}
	utc := w.Now.UTC()
	next := time.Date(utc.Year(), utc.Month()+1, 1, 1, 0, 0, 0, time.UTC)
	for i := 0; i < 2; i++ {
		if n, err := w.Reports.QueueMonthlyReports(gen(), next); n != 0 || err != nil {
			t.Fatalf("queued %d, %v", n, err)
		}
	}
	list, err := w.Reports.FindReports(as(w.MgrB), w.B, 10)
	if err != nil || len(list) != 1 {
		t.Fatalf("%d reports, %v", len(list), err)
	}
	if r := list[0]; r.Status != doorledger.ReportFailed || !strings.Contains(r.Error, "has 3 unlock events") || r.Total != 3 {
		t.Errorf("registered %+v", r)
	}
	if r, err := w.Reports.NextReport(gen()); r != nil || err != nil {
		t.Errorf("queue: %+v, %v", r, err)
	}
}
