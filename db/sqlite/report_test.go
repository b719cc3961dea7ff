package sqlite_test

import (
	"context"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/doorledger/doorledger"
	"github.com/doorledger/doorledger/db/dbtest"
	"github.com/doorledger/doorledger/db/sqlite"
)

// reportWorld is the unlock tests' world (two buildings, every role, building
// A in a chosen time zone) with the verifiable log and the report service,
// and the suite's report helpers.
type reportWorld struct {
	*unlockWorld
	rw      *dbtest.ReportWorld
	logs    *sqlite.LogService
	reports *sqlite.ReportService
}

func newReportWorld(t *testing.T, tzA string) *reportWorld {
	t.Helper()
	u := newUnlockWorld(t, tzA, time.Time{})
	return &reportWorld{unlockWorld: u, rw: &dbtest.ReportWorld{UnlockWorld: u.UnlockWorld},
		logs: u.Logs.(*sqlite.LogService), reports: u.Reports.(*sqlite.ReportService)}
}

var gen = dbtest.Generator

func (w *reportWorld) unlocksAt(t *testing.T, building int64, times ...time.Time) []string {
	return w.rw.UnlocksAt(t, building, times...)
}

func (w *reportWorld) request(t *testing.T, u *doorledger.User, building int64, format, from, to string) *doorledger.ReportRecord {
	return w.rw.Request(t, u, building, format, from, to)
}

func (w *reportWorld) claim(t *testing.T, want string) *doorledger.ReportRecord {
	return w.rw.Claim(t, want)
}

func (w *reportWorld) finish(t *testing.T, id string) string { return w.rw.Finish(t, id) }

func (w *reportWorld) journal(t *testing.T, building int64, action string) []*doorledger.AuditEntry {
	return w.Journal(t, building, action)
}

// consentedDevice makes an enabled device of building A under a signed
// consent that names it, as the consent service leaves them, since 20 days.
func (w *reportWorld) consentedDevice(t *testing.T) (deviceID, consentID int64) {
	t.Helper()
	since := udb(w.Now.AddDate(0, 0, -20))
	w.serial++
	deviceID = w.exec(t, `INSERT INTO devices (building_id, vendor, model, serial, location, installer_id, origin, created_at)
		VALUES (?, 'Acme', 'K1', ?, 'lobby panel', ?, 'consent_request', ?)`, w.A, fmt.Sprintf("SN-%05d", w.serial), w.InstA.ID, since)
	consentID = w.exec(t, `INSERT INTO consents (building_id, installer_id, signer_id, device_id, vendor, model, serial, location, opens, mode,
		requested_at, status, status_at, terms, terms_sha256, typed_name, signature_png, signed_at, signed_tz, signed_ip, signed_ua, method, expires_at)
		VALUES (?, ?, ?, ?, 'Acme', 'K1', ?, 'lobby', 'front door', 'link', ?, 'awaiting_signature', ?,
		'the terms', 'abc123', 'Pat Owner', x'89504e47', ?, 'UTC', '192.0.2.1', 'test', 'link', ?)`,
		w.A, w.InstA.ID, w.SignerA, deviceID, fmt.Sprintf("SN-%05d", w.serial), since, since, since, udb(w.Now.AddDate(1, 0, 0)))
	signDirectly(t, w.d.Writer(), consentID, "signed")
	w.exec(t, `UPDATE devices SET consent_id = ?, desired_state = 'enabled', desired_version = 1 WHERE id = ?`, consentID, deviceID)
	w.exec(t, `INSERT INTO commands (device_id, building_id, state, version, reason, requested_by, requested_at, status, confirmed_at)
		VALUES (?, ?, 'enabled', 1, 'consented', 'test', ?, 'confirmed', ?)`, deviceID, w.A, since, since)
	return deviceID, consentID
}

func TestReportRequestValidation(t *testing.T) {
	w := newReportWorld(t, "America/New_York")
	ny := mustLoc(t, "America/New_York")
	today, yesterday := day(*w.Now, ny, 0), day(*w.Now, ny, -1)
	ctx := uctx(w.MgrA)
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
		{"end after today", doorledger.ReportPDF, today, day(*w.Now, ny, 1), "to"},
	} {
		_, err := w.reports.RequestReport(ctx, doorledger.ReportRequest{BuildingID: w.A, Format: tt.format, From: tt.from, To: tt.to})
		if doorledger.ErrorCode(err) != doorledger.EINVALID || doorledger.ErrorFields(err)[tt.field] == "" {
			t.Errorf("%s: err = %v, want EINVALID with a message for %s", tt.name, err, tt.field)
		}
	}

	// More events than a report holds: refused, naming the count, nothing written.
	w.reports.MaxEvents = 3
	w.unlocksAt(t, w.A, w.Now.Add(-72*time.Hour), w.Now.Add(-71*time.Hour), w.Now.Add(-3*time.Hour), w.Now.Add(-2*time.Hour))
	from := day(*w.Now, ny, -3)
	_, err := w.reports.RequestReport(ctx, doorledger.ReportRequest{BuildingID: w.A, Format: doorledger.ReportPDF, From: from, To: today})
	if msg := doorledger.ErrorMessage(err); doorledger.ErrorCode(err) != doorledger.EINVALID ||
		!strings.Contains(msg, "has 4 unlock events") || !strings.Contains(msg, "more than the 3") || !strings.Contains(msg, "shorter range") {
		t.Errorf("over the limit: %v", err)
	}
	if n := w.count(t, `SELECT COUNT(*) FROM reports`); n != 0 {
		t.Errorf("%d reports registered by refused requests", n)
	}
	if got := w.journal(t, w.A, "report.request"); len(got) != 0 {
		t.Errorf("refused requests journaled: %+v", got)
	}

	// At the limit it is accepted, with the count, and journaled in the same transaction.
	r := w.request(t, w.MgrA, w.A, doorledger.ReportPDF, day(*w.Now, ny, -1), today)
	if r.Status != doorledger.ReportQueued || r.Total != 2 || r.RequestedBy != w.MgrA.ID || r.RequestedName != w.MgrA.Email ||
		r.BuildingName != "Alder Court" || !r.RequestedAt.Equal(*w.Now) || r.Monthly {
		t.Errorf("registered %+v", r)
	}
	if want := fmt.Sprintf("AR-%d-%s-", w.A, w.Now.UTC().Format("20060102T150405Z")); !strings.HasPrefix(r.ID, want) || len(r.ID) != len(want)+4 {
		t.Errorf("id %q, want %s + 4 hex digits", r.ID, want)
	}
	if j := w.journal(t, w.A, "report.request"); len(j) != 1 || !strings.Contains(j[0].Detail, r.ID) || j[0].Actor != w.MgrA.Email {
		t.Errorf("journal: %+v", j)
	}
	// Ids stay unique within one second.
	seen := map[string]bool{r.ID: true}
	for i := 0; i < 20; i++ {
		r := w.request(t, w.MgrA, w.A, doorledger.ReportCSV, today, today)
		if seen[r.ID] {
			t.Fatalf("id %s issued twice", r.ID)
		}
		seen[r.ID] = true
	}

	// A building with no devices and no events: a correct, empty report.
	if r := w.request(t, w.MgrB, w.B, doorledger.ReportBundle, "2020-01-01", day(*w.Now, time.UTC, 0)); r.Total != 0 || r.Status != doorledger.ReportQueued {
		t.Errorf("empty building: %+v", r)
	}
}

func TestReportAccess(t *testing.T) {
	w := newReportWorld(t, "UTC")
	today := day(*w.Now, time.UTC, 0)
	req := doorledger.ReportRequest{BuildingID: w.A, Format: doorledger.ReportPDF, From: today, To: today}
	byManager := w.request(t, w.MgrA, w.A, req.Format, req.From, req.To)
	*w.Now = w.Now.Add(time.Second) // the queue is by time requested
	byBoard := w.request(t, w.BoardA, w.A, req.Format, req.From, req.To)
	w.request(t, w.Admin, w.A, req.Format, req.From, req.To)
	sum := w.finish(t, byManager.ID)

	for _, u := range []*doorledger.User{w.MgrA, w.BoardA, w.Admin} {
		ctx := uctx(u)
		if r, err := w.reports.FindReport(ctx, byBoard.ID); err != nil || r.RequestedName != w.BoardA.Email {
			t.Errorf("%s: FindReport = %+v, %v", u.Email, r, err)
		}
		if list, err := w.reports.FindReports(ctx, w.A, 0); err != nil || len(list) != 3 {
			t.Errorf("%s: FindReports: %d, %v", u.Email, len(list), err)
		}
		if r, err := w.reports.FindReportBySHA256(ctx, strings.ToUpper(sum)); err != nil || r.ID != byManager.ID {
			t.Errorf("%s: FindReportBySHA256 = %+v, %v", u.Email, r, err)
		}
		if err := w.reports.ReportDownloaded(ctx, byManager.ID); err != nil {
			t.Errorf("%s: ReportDownloaded: %v", u.Email, err)
		}
		if _, err := w.reports.Subscribed(ctx, w.A); err != nil {
			t.Errorf("%s: Subscribed: %v", u.Email, err)
		}
	}
	// The installer of the building and the manager of another one learn nothing.
	for _, u := range []*doorledger.User{w.InstA, w.MgrB} {
		ctx := uctx(u)
		_, err := w.reports.RequestReport(ctx, req)
		wantCode(t, u.Email+" RequestReport", err, doorledger.ENOTFOUND)
		_, err = w.reports.FindReport(ctx, byManager.ID)
		wantCode(t, u.Email+" FindReport", err, doorledger.ENOTFOUND)
		_, err = w.reports.FindReports(ctx, w.A, 10)
		wantCode(t, u.Email+" FindReports", err, doorledger.ENOTFOUND)
		_, err = w.reports.FindReportBySHA256(ctx, sum)
		wantCode(t, u.Email+" FindReportBySHA256", err, doorledger.ENOTFOUND)
		wantCode(t, u.Email+" ReportDownloaded", w.reports.ReportDownloaded(ctx, byManager.ID), doorledger.ENOTFOUND)
		wantCode(t, u.Email+" Subscribe", w.reports.Subscribe(ctx, w.A, true), doorledger.ENOTFOUND)
		_, err = w.reports.Subscribed(ctx, w.A)
		wantCode(t, u.Email+" Subscribed", err, doorledger.ENOTFOUND)
	}
	_, err := w.reports.FindReport(uctx(w.MgrA), "AR-no-such")
	wantCode(t, "unknown id", err, doorledger.ENOTFOUND)
	_, err = w.reports.FindReportBySHA256(uctx(w.MgrA), "not a hash")
	wantCode(t, "malformed hash", err, doorledger.EINVALID)
	_, err = w.reports.FindReport(context.Background(), byManager.ID)
	wantCode(t, "anonymous", err, doorledger.EUNAUTHORIZED)
	// The journal names who downloaded which report.
	if j := w.journal(t, w.A, "report.download"); len(j) != 3 || j[1].Actor != w.BoardA.Email || !strings.Contains(j[1].Detail, byManager.ID) {
		t.Errorf("downloads journaled: %+v", j)
	}
	// A report not done yet cannot be downloaded.
	wantCode(t, "download of a queued report", w.reports.ReportDownloaded(uctx(w.BoardA), byBoard.ID), doorledger.ECONFLICT)

	// The generator's methods are the system's alone, admins included.
	for _, u := range []*doorledger.User{w.Admin, w.MgrA} {
		ctx := uctx(u)
		_, err := w.reports.NextReport(ctx)
		wantCode(t, u.Email+" NextReport", err, doorledger.EFORBIDDEN)
		wantCode(t, u.Email+" GatherReport", w.reports.GatherReport(ctx, byBoard.ID, func(*doorledger.AuditReport) error { return nil }), doorledger.EFORBIDDEN)
		wantCode(t, u.Email+" ReportProgress", w.reports.ReportProgress(ctx, byBoard.ID, 1, 2), doorledger.EFORBIDDEN)
		wantCode(t, u.Email+" FinishReport", w.reports.FinishReport(ctx, byBoard.ID, sum, 10, nil, doorledger.ReportHolds{}), doorledger.EFORBIDDEN)
		wantCode(t, u.Email+" FailReport", w.reports.FailReport(ctx, byBoard.ID, "no"), doorledger.EFORBIDDEN)
		_, err = w.reports.QueueMonthlyReports(ctx, *w.Now)
		wantCode(t, u.Email+" QueueMonthlyReports", err, doorledger.EFORBIDDEN)
		_, err = w.reports.RequeueInterrupted(ctx)
		wantCode(t, u.Email+" RequeueInterrupted", err, doorledger.EFORBIDDEN)
	}
	// The system has no subscription of its own.
	wantCode(t, "system Subscribe", w.reports.Subscribe(gen(), w.A, true), doorledger.EFORBIDDEN)
}

// TestReportGather checks what a report prints: only the building's events of
// the range, bounded in its time zone, the same on every pass and unmoved by
// events committed after the snapshot began; its devices (retired ones too),
// consents with their evidence, commands and journal of the range; a signed
// head covering the request.
func TestReportGather(t *testing.T) {
	w := newReportWorld(t, "America/New_York")
	ny := mustLoc(t, "America/New_York")
	from, to := day(*w.Now, ny, -10), day(*w.Now, ny, -5)
	start, _ := time.ParseInLocation("2006-01-02", from, ny)
	end, _ := time.ParseInLocation("2006-01-02", day(*w.Now, ny, -4), ny)

	dev, consent := w.consentedDevice(t)
	retired, _ := w.consentedDevice(t)
	w.exec(t, `UPDATE devices SET desired_state = 'disabled', retired = 1 WHERE id = ?`, retired)
	w.enabledDevice(t, w.B)
	w.revoke(t, dev, consent, start.Add(36*time.Hour)) // a command inside the range
	// Journal entries inside the range, one of each building, and one after it.
	clock := *w.Now
	for _, at := range []time.Time{start.Add(time.Hour), end.Add(time.Hour)} {
		*w.Now = at
		for _, b := range []int64{w.A, w.B} {
			if _, err := sqlite.NewBuildingService(w.d).AddSigner(sys(), b, doorledger.SignerInput{Name: "Kim " + at.Format("0102"), Title: "Treasurer",
				Email: fmt.Sprintf("kim%d-%s@example.com", b, at.Format("0102"))}); err != nil {
				t.Fatal(err)
			}
		}
	}
	*w.Now = clock

	// Events on both sides of each boundary (midnight in New York, not UTC),
	// recorded out of order, and the same times in building B.
	// start-3h and end-2h fall on the other side of the range in UTC.
	times := []time.Time{start.Add(-time.Microsecond), start, start.Add(5 * time.Hour), start.Add(5 * time.Hour), end.Add(-time.Microsecond), end,
		start.Add(-3 * time.Hour), end.Add(-2 * time.Hour)}
	ids := w.unlocksAt(t, w.A, times[2], times[0], times[5], times[4], times[1], times[3], times[6], times[7])
	w.unlocksAt(t, w.B, times...)
	// In time order, equal times by id: start, the two at +5h, end-2h, end-1µs.
	want := []string{ids[4], ids[0], ids[5], ids[7], ids[3]}

	// "Generated by" names the person, with the address.
	if _, err := w.d.Writer().Exec(`UPDATE users SET name = 'Bea Board' WHERE id = ?`, w.BoardA.ID); err != nil {
		t.Fatal(err)
	}
	r := w.request(t, w.BoardA, w.A, doorledger.ReportPDF, from, to)
	w.claim(t, r.ID)
	*w.Now = w.Now.Add(1500 * time.Millisecond)
	var got *doorledger.AuditReport
	pass := func(rep *doorledger.AuditReport) []string {
		var list []string
		var last time.Time
		if err := rep.Events(func(e *doorledger.UnlockEvent) error {
			if e.BuildingID != w.A || e.OccurredAt.Before(last) {
				t.Errorf("event %+v out of place", e)
			}
			last = e.OccurredAt
			list = append(list, e.EventID)
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		return list
	}
	err := w.reports.GatherReport(gen(), r.ID, func(rep *doorledger.AuditReport) error {
		got = rep
		first := pass(rep)
		if !slices.Equal(first, want) {
			t.Errorf("events %v, want %v", first, want)
		}
		// Committed while the snapshot is open: not in this report.
		w.unlocksAt(t, w.A, start.Add(2*time.Hour), start.Add(4*time.Hour))
		if again := pass(rep); !slices.Equal(again, first) {
			t.Errorf("second pass %v, first %v", again, first)
		}
		// yield's error stops the walk and comes back.
		stop := fmt.Errorf("stop")
		n := 0
		if err := rep.Events(func(*doorledger.UnlockEvent) error { n++; return stop }); err != stop || n != 1 {
			t.Errorf("stopped walk: %v after %d", err, n)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := got.Events(func(*doorledger.UnlockEvent) error { return nil }); err == nil {
		t.Error("Events after GatherReport returned: no error")
	}
	if got.ID != r.ID || got.From != from || got.To != to || got.GeneratedBy != "Bea Board ("+w.BoardA.Email+")" ||
		!got.GeneratedAt.Equal(w.Now.Truncate(time.Second)) || got.GeneratedAt.Location() != time.UTC {
		t.Errorf("report %s %s..%s by %s at %v", got.ID, got.From, got.To, got.GeneratedBy, got.GeneratedAt)
	}
	if got.Building == nil || got.Building.ID != w.A || got.Building.Timezone != "America/New_York" || len(got.Building.Signers) != 3 {
		t.Errorf("building %+v", got.Building)
	}
	var devIDs []int64
	for _, d := range got.Devices {
		devIDs = append(devIDs, d.ID)
	}
	if !slices.Equal(devIDs, []int64{dev, retired}) || !got.Devices[1].Retired || got.Devices[0].Installer != w.InstA.Email || got.Devices[0].Serial == "" {
		t.Errorf("devices %v: %+v", devIDs, got.Devices)
	}
	if len(got.Consents) != 2 || got.Consents[0].ID != consent || got.Consents[0].DeviceID != dev ||
		got.Consents[0].Status != doorledger.ConsentWithdrawn || got.Consents[0].Signature == nil ||
		string(got.Consents[0].Signature.SignaturePNG) != "\x89PNG" || got.Consents[0].Signer.Title != "Board president" {
		t.Errorf("consents %+v", got.Consents)
	}
	if len(got.Commands) != 1 || got.Commands[0].DeviceID != dev || got.Commands[0].State != doorledger.StateDisabled {
		t.Errorf("commands %+v", got.Commands)
	}
	if len(got.AuditEntries) != 1 || got.AuditEntries[0].Action != "signer.add" || got.AuditEntries[0].BuildingID != w.A ||
		got.AuditEntries[0].At.Before(start) || !got.AuditEntries[0].At.Before(end) {
		t.Errorf("journal %+v", got.AuditEntries)
	}
	// The head is signed for the report and covers its request.
	if got.LogHead == nil || got.VerifierKey != w.logs.VerifierKey() || got.VerifierKey == "" {
		t.Fatalf("head %+v, key %q", got.LogHead, got.VerifierKey)
	}
	req := w.journal(t, w.A, "report.request")[0]
	if i, err := w.logs.EntryIndex(sys(), doorledger.LogKindAudit, req.ID); err != nil || i >= got.LogHead.Size {
		t.Errorf("request entry at %d, head size %d: %v", i, got.LogHead.Size, err)
	}

	// A new gather sees the events committed since.
	if err := w.reports.GatherReport(gen(), r.ID, func(rep *doorledger.AuditReport) error {
		if n := len(pass(rep)); n != len(want)+2 {
			t.Errorf("fresh gather: %d events, want %d", n, len(want)+2)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	wantCode(t, "unknown report", w.reports.GatherReport(gen(), "AR-none", func(*doorledger.AuditReport) error { return nil }), doorledger.ENOTFOUND)
}

// TestReportEventsAsHistory checks that a report's events, from the
// database and then from the copy later walks replay, are exactly History's:
// acknowledged or not, written by the services or around them (a separator
// inside a text or a note).
func TestReportEventsAsHistory(t *testing.T) {
	for _, kept := range []int{doorledger.MaxReportEvents, 3} {
		t.Run(fmt.Sprintf("kept%d", kept), func(t *testing.T) {
			defer sqlite.SetMaxKeptEvents(kept)()
			w := newReportWorld(t, "Asia/Kolkata")
			kolkata := mustLoc(t, "Asia/Kolkata")
			from, to := day(*w.Now, kolkata, -5), day(*w.Now, kolkata, 0)
			start, _ := time.ParseInLocation("2006-01-02", from, kolkata)
			dev, _ := w.consentedDevice(t)
			w.record(t, unlockEv(dev, "fine", start.Add(time.Hour), doorledger.UnlockGranted),
				unlockEv(dev, "no", start.Add(2*time.Hour), doorledger.UnlockDenied))
			ids := w.unlocksAt(t, w.A, start.Add(3*time.Hour), start.Add(3*time.Hour), start.Add(4*time.Hour+123456*time.Microsecond), start.Add(5*time.Hour))
			if _, err := w.svc.AcknowledgeAnomalies(uctx(w.MgrA), w.A, []int64{w.EventID(t, w.A, ids[0]), w.EventID(t, w.A, ids[2])}, "Ζ: gate fixed"); err != nil {
				t.Fatal(err)
			}
			// Around the services: separators in the texts and the note.
			odd := w.exec(t, `INSERT INTO unlock_events (building_id, device_ref, event_id, occurred_at, received_at, method, actor_ref, result, anomalies, source, effective_at)
				VALUES (?1, 'relay`+"\x1f"+`9', 'raw`+"\x1f"+`1', ?2, ?3, 'keypad', 'a`+"\x1f"+`b', 'granted', 5, 'csv', ?2)`,
				w.A, sqlite.FormatTime(start.Add(6*time.Hour)), sqlite.FormatTime(*w.Now))
			w.exec(t, `INSERT INTO anomaly_acks (event_id, building_id, acked_at, actor, note) VALUES (?, ?, ?, 'sql', 'x`+"\x1f"+`y')`,
				odd, w.A, sqlite.FormatTime(*w.Now))
			w.unlocksAt(t, w.B, start.Add(time.Hour)) // another building's

			page, err := w.svc.History(uctx(w.MgrA), doorledger.UnlockFilter{BuildingID: w.A, From: from, To: to, Limit: 500})
			if err != nil {
				t.Fatal(err)
			}
			want := slices.Clone(page.Events)
			slices.Reverse(want)
			if len(want) != 7 || !want[6].Acknowledged() || !strings.Contains(want[6].ActorRef, "\x1f") || !strings.Contains(want[6].AckNote, "\x1f") {
				t.Fatalf("history %d events, the last %+v", len(want), want[len(want)-1])
			}
			r := w.request(t, w.MgrA, w.A, doorledger.ReportCSV, from, to)
			w.claim(t, r.ID)
			if err := w.reports.GatherReport(gen(), r.ID, func(rep *doorledger.AuditReport) error {
				for walk := 1; walk <= 3; walk++ {
					i := 0
					if err := rep.Events(func(e *doorledger.UnlockEvent) error {
						if i >= len(want) {
							t.Fatalf("walk %d: more than %d events", walk, len(want))
						}
						if !reflect.DeepEqual(e, want[i]) {
							t.Errorf("walk %d, event %d:\n got %+v\nwant %+v", walk, i, e, want[i])
						}
						i++
						return nil
					}); err != nil {
						t.Fatal(err)
					}
					if i != len(want) {
						t.Errorf("walk %d: %d events, want %d", walk, i, len(want))
					}
				}
				return nil
			}); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// FuzzReportTime checks the report's time parser against parseTime: the
// same instant, the same representation, whatever the text.
func FuzzReportTime(f *testing.F) {
	for _, s := range []string{"2026-11-22T09:30:00.123456Z", "0001-01-01T00:00:00.000000Z", "9999-12-31T23:59:59.999999Z",
		"2024-02-29T12:00:00.000000Z", "2026-02-29T12:00:00.000000Z", "2026-13-01T00:00:00.000000Z", "2026-11-22T24:00:00.000000Z",
		"2026-11-22T09:30:60.000000Z", "2026-11-22T09:30:00Z", "2026-11-22T09:30:00.12345+Z", "", "x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if got, want := sqlite.ParseDBTime(s), sqlite.ParseTime(s); got != want {
			t.Errorf("%q: %#v, parseTime %#v", s, got, want)
		}
		if u, err := time.Parse(time.RFC3339Nano, s); err == nil {
			s = sqlite.FormatTime(u)
			if got, want := sqlite.ParseDBTime(s), sqlite.ParseTime(s); got != want {
				t.Errorf("%q: %#v, parseTime %#v", s, got, want)
			}
		}
	})
}

func TestReportLifecycle(t *testing.T) {
	w := newReportWorld(t, "UTC")
	today := day(*w.Now, time.UTC, 0)
	a := w.request(t, w.MgrA, w.A, doorledger.ReportPDF, today, today)
	*w.Now = w.Now.Add(time.Second)
	b := w.request(t, w.MgrA, w.A, doorledger.ReportCSV, today, today)
	*w.Now = w.Now.Add(time.Second)
	c := w.request(t, w.MgrB, w.B, doorledger.ReportBundle, today, today)

	// Claimed oldest first, each once.
	w.claim(t, a.ID)
	w.claim(t, b.ID)
	wantCode(t, "progress of a queued report", w.reports.ReportProgress(gen(), c.ID, 1, 2), doorledger.ECONFLICT)
	if err := w.reports.ReportProgress(gen(), a.ID, 40, 100); err != nil {
		t.Fatal(err)
	}
	wantCode(t, "negative progress", w.reports.ReportProgress(gen(), a.ID, -1, 100), doorledger.EINVALID)
	if r, _ := w.reports.FindReport(uctx(w.MgrA), a.ID); r.Status != doorledger.ReportRunning || r.Done != 40 || r.Total != 100 || !r.StartedAt.Equal(*w.Now) {
		t.Errorf("running: %+v", r)
	}

	// A portal killed while generating: its running reports go back to the queue.
	if n, err := w.reports.RequeueInterrupted(gen()); err != nil || n != 2 {
		t.Fatalf("requeued %d, %v", n, err)
	}
	if r, _ := w.reports.FindReport(uctx(w.MgrA), a.ID); r.Status != doorledger.ReportQueued || r.Done != 0 || !r.StartedAt.IsZero() {
		t.Errorf("requeued: %+v", r)
	}
	w.claim(t, a.ID)

	// Bad results are refused and change nothing.
	head, err := w.logs.SignHead(gen())
	if err != nil {
		t.Fatal(err)
	}
	wantCode(t, "bad hash", w.reports.FinishReport(gen(), a.ID, "abc", 10, head, doorledger.ReportHolds{}), doorledger.EINVALID)
	wantCode(t, "empty file", w.reports.FinishReport(gen(), a.ID, strings.Repeat("a", 64), 0, head, doorledger.ReportHolds{}), doorledger.EINVALID)
	forged := *head
	forged.Root[0] ^= 1
	wantCode(t, "unsigned head", w.reports.FinishReport(gen(), a.ID, strings.Repeat("a", 64), 10, &forged, doorledger.ReportHolds{}), doorledger.EINVALID)
	wantCode(t, "open anomalies above the anomalies", w.reports.FinishReport(gen(), a.ID, strings.Repeat("a", 64), 10, head, doorledger.ReportHolds{Anomalies: 1, OpenAnomalies: 2}), doorledger.EINVALID)
	wantCode(t, "a negative count", w.reports.FinishReport(gen(), a.ID, strings.Repeat("a", 64), 10, head, doorledger.ReportHolds{Consents: -1}), doorledger.EINVALID)
	wantCode(t, "finish a queued report", w.reports.FinishReport(gen(), b.ID, strings.Repeat("a", 64), 10, head, doorledger.ReportHolds{}), doorledger.ECONFLICT)

	sum := strings.Repeat("0123456789abcdef", 4)
	if err := w.reports.FinishReport(gen(), a.ID, strings.ToUpper(sum), 5000, head, doorledger.ReportHolds{}); err != nil {
		t.Fatal(err)
	}
	r, _ := w.reports.FindReport(uctx(w.MgrA), a.ID)
	if r.Status != doorledger.ReportDone || r.SHA256 != sum || r.Bytes != 5000 || r.HeadSize != head.Size || r.HeadRoot != head.Root ||
		r.HeadNote != head.Note || !r.DoneAt.Equal(*w.Now) {
		t.Errorf("done: %+v", r)
	}
	if j := w.journal(t, w.A, "report.generate"); len(j) != 1 || !strings.Contains(j[0].Detail, sum) || !strings.Contains(j[0].Detail, a.ID) {
		t.Errorf("journal: %+v", j)
	}
	wantCode(t, "finish twice", w.reports.FinishReport(gen(), a.ID, sum, 5000, head, doorledger.ReportHolds{}), doorledger.ECONFLICT)
	wantCode(t, "fail a done report", w.reports.FailReport(gen(), a.ID, "late"), doorledger.ECONFLICT)
	// Not a monthly report: no mail.
	if n := w.count(t, `SELECT COUNT(*) FROM outbox WHERE kind = 'report'`); n != 0 {
		t.Errorf("%d report mails for a requested report", n)
	}

	// A report without a head (the log was empty) is registered without one.
	w.claim(t, b.ID)
	if err := w.reports.FinishReport(gen(), b.ID, sum, 10, nil, doorledger.ReportHolds{}); err != nil {
		t.Fatal(err)
	}
	if r, _ := w.reports.FindReport(uctx(w.MgrA), b.ID); r.HeadSize != 0 || r.HeadRoot != (doorledger.LogHash{}) || r.HeadNote != "" {
		t.Errorf("no head: %+v", r)
	}

	// Failing records the reason, for people, and journals it.
	w.claim(t, c.ID)
	if err := w.reports.FailReport(gen(), c.ID, "  the disk is full  "); err != nil {
		t.Fatal(err)
	}
	if r, _ := w.reports.FindReport(uctx(w.MgrB), c.ID); r.Status != doorledger.ReportFailed || r.Error != "the disk is full" {
		t.Errorf("failed: %+v", r)
	}
	if j := w.journal(t, w.B, "report.fail"); len(j) != 1 || !strings.Contains(j[0].Detail, "the disk is full") {
		t.Errorf("journal: %+v", j)
	}
	if r, err := w.reports.NextReport(gen()); r != nil || err != nil {
		t.Errorf("empty queue: %+v, %v", r, err)
	}
	if n, err := w.reports.RequeueInterrupted(gen()); n != 0 || err != nil {
		t.Errorf("requeue with nothing running: %d, %v", n, err)
	}
	// Listed newest first.
	list, err := w.reports.FindReports(uctx(w.Admin), w.A, 10)
	if err != nil || len(list) != 2 || list[0].ID != b.ID || list[1].ID != a.ID {
		t.Errorf("list: %v", err)
	}
}

// TestReportRegistryImmutable goes around the service: the database itself
// refuses to change a finished report's identity, hash or head, or to delete
// any report.
func TestReportRegistryImmutable(t *testing.T) {
	w := newReportWorld(t, "UTC")
	today := day(*w.Now, time.UTC, 0)
	done := w.request(t, w.MgrA, w.A, doorledger.ReportPDF, today, today)
	*w.Now = w.Now.Add(time.Second)
	open := w.request(t, w.MgrA, w.A, doorledger.ReportPDF, today, today)
	w.finish(t, done.ID)
	const msg = "a finished report is never changed"
	for _, set := range []string{
		`sha256 = '` + strings.Repeat("f", 64) + `'`, `bytes = bytes + 1`, `head_size = head_size - 1`, `head_root = zeroblob(32)`,
		`head_note = 'forged'`, `from_date = '2000-01-01'`, `to_date = '2000-01-01'`, `building_id = ` + fmt.Sprint(w.B),
		`status = 'failed'`, `id = 'AR-forged'`, `format = 'csv'`, `requested_name = 'someone'`,
	} {
		_, err := w.d.Writer().Exec(`UPDATE reports SET `+set+` WHERE id = ?`, done.ID)
		wantRefused(t, set, err, msg)
	}
	for _, id := range []string{done.ID, open.ID} {
		_, err := w.d.Writer().Exec(`DELETE FROM reports WHERE id = ?`, id)
		wantRefused(t, "delete", err, "reports are never deleted")
	}
	// A report is done only with its file's hash and size.
	_, err := w.d.Writer().Exec(`UPDATE reports SET status = 'done', done_at = '2026-01-01T00:00:00.000000Z' WHERE id = ?`, open.ID)
	wantRefused(t, "done without a hash", err, "CHECK constraint failed")
	_, err = w.d.Writer().Exec(`UPDATE reports SET sha256 = 'not hex' WHERE id = ?`, open.ID)
	wantRefused(t, "malformed hash", err, "CHECK constraint failed")
	if n := w.count(t, `SELECT COUNT(*) FROM reports`); n != 2 {
		t.Errorf("%d reports left", n)
	}
}

func TestReportSubscribeAndMonthly(t *testing.T) {
	w := newReportWorld(t, "America/New_York")
	ny := mustLoc(t, "America/New_York")
	if err := w.reports.Subscribe(uctx(w.BoardA), w.A, true); err != nil {
		t.Fatal(err)
	}
	if err := w.reports.Subscribe(uctx(w.BoardA), w.A, true); err != nil { // again: no change
		t.Fatal(err)
	}
	if on, err := w.reports.Subscribed(uctx(w.BoardA), w.A); !on || err != nil {
		t.Errorf("board subscribed: %v, %v", on, err)
	}
	if on, err := w.reports.Subscribed(uctx(w.MgrA), w.A); on || err != nil {
		t.Errorf("manager subscribed: %v, %v", on, err)
	}
	if j := w.journal(t, w.A, "report.subscribe"); len(j) != 1 || j[0].Actor != w.BoardA.Email {
		t.Errorf("journal: %+v", j)
	}
	// The manager of B subscribes and changes their mind: B has no subscriber.
	if err := w.reports.Subscribe(uctx(w.MgrB), w.B, true); err != nil {
		t.Fatal(err)
	}
	if err := w.reports.Subscribe(uctx(w.MgrB), w.B, false); err != nil {
		t.Fatal(err)
	}
	if j := w.journal(t, w.B, "report.unsubscribe"); len(j) != 1 {
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
		n, err := w.reports.QueueMonthlyReports(gen(), at)
		if err != nil || n != want {
			t.Fatalf("QueueMonthlyReports(%v) = %d, %v; want %d", at, n, err, want)
		}
		list, err := w.reports.FindReports(sys(), w.A, 100)
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
	if reps, _ := w.reports.FindReports(sys(), w.B, 10); len(reps) != 0 {
		t.Errorf("building without a subscriber: %d reports", len(reps))
	}

	// Finishing a monthly report mails its subscriber a link, in the same transaction.
	older, newer := list[1], list[0]
	sum := w.finish(t, older.ID)
	msgs, err := sqlite.NewOutboxService(w.d).PendingMessages(sys(), 100, 100)
	if err != nil {
		t.Fatal(err)
	}
	var mails []*doorledger.Message
	for _, m := range msgs {
		if m.Kind == "report" {
			mails = append(mails, m)
		}
	}
	month, _ := time.Parse("2006-01-02", older.From)
	if len(mails) != 1 || mails[0].To != w.BoardA.Email || mails[0].BuildingID != w.A {
		t.Fatalf("mails %+v", mails)
	}
	for _, s := range []string{"Alder Court", month.Format("January 2006"), older.ID, sum, dbtest.BaseURL + "/reports/" + older.ID} {
		if !strings.Contains(mails[0].Subject+"\n"+mails[0].Body, s) {
			t.Errorf("mail lacks %q:\n%s\n%s", s, mails[0].Subject, mails[0].Body)
		}
	}

	// A subscriber who lost access no longer counts.
	if err := sqlite.NewBuildingService(w.d).RevokeAccess(sys(), w.A, w.BoardA.ID); err != nil {
		t.Fatal(err)
	}
	queue(next.AddDate(0, 1, 0).Add(6*time.Hour), 0)
	w.claim(t, newer.ID)
	head, _ := w.logs.SignHead(gen())
	if err := w.reports.FinishReport(gen(), newer.ID, sum, 10, head, doorledger.ReportHolds{}); err != nil {
		t.Fatal(err)
	}
	if n := w.count(t, `SELECT COUNT(*) FROM outbox WHERE kind = 'report'`); n != 1 {
		t.Errorf("%d report mails, want only the one before access was revoked", n)
	}
}

// TestReportMonthlyTooManyEvents: a month with more events than a report
// holds is registered as failed, saying why, and not queued again.
func TestReportMonthlyTooManyEvents(t *testing.T) {
	w := newReportWorld(t, "UTC")
	w.reports.MaxEvents = 2
	w.unlocksAt(t, w.B, *w.Now, *w.Now, *w.Now)
	if err := w.reports.Subscribe(uctx(w.MgrB), w.B, true); err != nil {
		t.Fatal(err)
	}
	utc := w.Now.UTC()
	next := time.Date(utc.Year(), utc.Month()+1, 1, 1, 0, 0, 0, time.UTC)
	for i := 0; i < 2; i++ {
		if n, err := w.reports.QueueMonthlyReports(gen(), next); n != 0 || err != nil {
			t.Fatalf("queued %d, %v", n, err)
		}
	}
	list, err := w.reports.FindReports(uctx(w.MgrB), w.B, 10)
	if err != nil || len(list) != 1 {
		t.Fatalf("%d reports, %v", len(list), err)
	}
	if r := list[0]; r.Status != doorledger.ReportFailed || !strings.Contains(r.Error, "has 3 unlock events") || r.Total != 3 {
		t.Errorf("registered %+v", r)
	}
	if r, err := w.reports.NextReport(gen()); r != nil || err != nil {
		t.Errorf("queue: %+v, %v", r, err)
	}
}

var day = dbtest.Day
