package sqlite_test

import (
	"fmt"
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

// TestReportGather checks what a report prints of a world written by SQL
// (dbtest's ReportGatherSnapshot checks the rest through the services): its
// devices, retired ones too, and consents with their evidence and status.
func TestReportGather(t *testing.T) {
	w := newReportWorld(t, "America/New_York")
	ny := mustLoc(t, "America/New_York")
	from, to := day(*w.Now, ny, -10), day(*w.Now, ny, -5)
	start, _ := time.ParseInLocation("2006-01-02", from, ny)

	dev, consent := w.consentedDevice(t)
	retired, _ := w.consentedDevice(t)
	w.exec(t, `UPDATE devices SET desired_state = 'disabled', retired = 1 WHERE id = ?`, retired)
	w.enabledDevice(t, w.B)
	w.revoke(t, dev, consent, start.Add(36*time.Hour)) // a command inside the range

	r := w.request(t, w.BoardA, w.A, doorledger.ReportPDF, from, to)
	w.claim(t, r.ID)
	var got *doorledger.AuditReport
	if err := w.reports.GatherReport(gen(), r.ID, func(rep *doorledger.AuditReport) error { got = rep; return nil }); err != nil {
		t.Fatal(err)
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
}

// TestReportEventsAsHistory checks that a report's events, from the
// database and then from the copy later walks replay (or not: kept3), are
// exactly History's, written around the services too (a separator inside a
// text or a note). dbtest's test of the same name runs on both backends.
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
				dbtest.WantWalks(t, rep, want, 3)
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

var day = dbtest.Day
