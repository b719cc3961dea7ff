package reports_test

import (
	"archive/zip"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/csv"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/doorledger/doorledger"
	"github.com/doorledger/doorledger/auditlog"
	"github.com/doorledger/doorledger/db/sqlite"
	"github.com/doorledger/doorledger/internal/testtool"
	"github.com/doorledger/doorledger/reports"
)

// runnerWorld is a real database with a building in Zurich, its manager,
// unlock events of yesterday (building time), the verifiable log and the
// report registry, and a runner writing into a temporary directory.
type runnerWorld struct {
	d        *sqlite.DB
	building *doorledger.Building
	manager  *doorledger.User
	logs     *sqlite.LogService
	svc      *hookedReports
	runner   *reports.Runner
	dir      string
	log      *syncBuffer
	from, to string
	events   int
}

func newRunnerWorld(t *testing.T, events int) *runnerWorld {
	t.Helper()
	d := sqlite.NewDB(filepath.Join(t.TempDir(), "test.db"))
	d.PasswordCost = 4
	if err := d.Open(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	sys := doorledger.NewSystemContext(context.Background(), "test")
	buildings := sqlite.NewBuildingService(d)
	b, err := buildings.CreateBuilding(sys, doorledger.BuildingInput{Name: "Οικία Παπαδοπούλου / Дом на Невском", Address: "Rue de l’Église 5, 8001 Zürich", Timezone: "Europe/Zurich"})
	if err != nil {
		t.Fatal(err)
	}
	mgr, err := sqlite.NewUserService(d).CreateUser(sys, doorledger.NewUser{Email: "manager@example.org", Name: "Mia Manager", Role: doorledger.RoleManager, Password: "correct horse battery"})
	if err != nil {
		t.Fatal(err)
	}
	if err := buildings.GrantAccess(sys, b.ID, mgr.ID); err != nil {
		t.Fatal(err)
	}

	// Events through yesterday, building time: in the range, never in the future.
	loc := b.Location()
	now := time.Now().In(loc)
	today := time.Date(now.Year(), now.Month(), now.Day(), 0, 0, 0, 0, loc)
	yesterday := today.AddDate(0, 0, -1)
	step := today.Sub(yesterday) / time.Duration(events+1)
	evs := make([]doorledger.UnlockEvent, events)
	for i := range evs {
		at := yesterday.Add(step * time.Duration(i+1)).Truncate(time.Millisecond)
		evs[i] = doorledger.UnlockEvent{BuildingID: b.ID, DeviceRef: "relay-Ω-9", EventID: fmt.Sprintf("e-%05d", i), OccurredAt: at, ReceivedAt: at,
			Method: doorledger.MethodKeypad, ActorRef: fmt.Sprintf("=PKG-%05d", i), Result: doorledger.UnlockDenied}
	}
	if events > 0 {
		if err := sqlite.NewUnlockService(d).RecordUnlocks(sys, evs); err != nil {
			t.Fatal(err)
		}
	}

	key, err := auditlog.LoadOrCreateKey(filepath.Join(t.TempDir(), auditlog.KeyFile), "doorledger.test/log")
	if err != nil {
		t.Fatal(err)
	}
	w := &runnerWorld{d: d, building: b, manager: mgr, logs: sqlite.NewLogService(d, key), dir: filepath.Join(t.TempDir(), "reports"),
		log: &syncBuffer{}, from: yesterday.Format("2006-01-02"), to: today.Format("2006-01-02"), events: events}
	w.svc = &hookedReports{ReportService: sqlite.NewReportService(d, w.logs, "https://portal.test/")}
	w.runner = reports.NewRunner(w.svc, w.logs, w.dir, slog.New(slog.NewTextHandler(w.log, nil)))
	if err := os.MkdirAll(w.dir, 0o700); err != nil {
		t.Fatal(err)
	}
	return w
}

// request asks for a report of the building's range, as its manager.
func (w *runnerWorld) request(t *testing.T, format string) *doorledger.ReportRecord {
	t.Helper()
	ctx := doorledger.NewContextWithUser(context.Background(), w.manager)
	rec, err := w.svc.RequestReport(ctx, doorledger.ReportRequest{BuildingID: w.building.ID, Format: format, From: w.from, To: w.to})
	if err != nil {
		t.Fatal(err)
	}
	return rec
}

// runOnce generates the next queued report, which must be rec, and returns
// its record as the registry has it then.
func (w *runnerWorld) runOnce(t *testing.T, rec *doorledger.ReportRecord) *doorledger.ReportRecord {
	t.Helper()
	did, err := w.runner.RunOnce(context.Background())
	if err != nil || !did {
		t.Fatalf("RunOnce = %v, %v; want a report generated", did, err)
	}
	return w.find(t, rec.ID)
}

func (w *runnerWorld) find(t *testing.T, id string) *doorledger.ReportRecord {
	t.Helper()
	rec, err := w.svc.FindReport(doorledger.NewContextWithUser(context.Background(), w.manager), id)
	if err != nil {
		t.Fatal(err)
	}
	return rec
}

// mustFile checks the finished report's file against the registry and
// returns its bytes.
func (w *runnerWorld) mustFile(t *testing.T, rec *doorledger.ReportRecord) []byte {
	t.Helper()
	if rec.Status != doorledger.ReportDone {
		t.Fatalf("report %s is %s (%s), want done", rec.ID, rec.Status, rec.Error)
	}
	path := filepath.Join(w.dir, rec.FileName())
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("%s has mode %v, want 0600", path, fi.Mode().Perm())
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if sum := sha256.Sum256(data); hex.EncodeToString(sum[:]) != rec.SHA256 || int64(len(data)) != rec.Bytes {
		t.Errorf("file: %d bytes, SHA-256 %x; registry: %d bytes, %s", len(data), sum, rec.Bytes, rec.SHA256)
	}
	if rec.HeadSize <= 0 || rec.HeadNote == "" {
		t.Errorf("registry head: size %d, note %q", rec.HeadSize, rec.HeadNote)
	}
	if rec.Total != int64(w.events) || rec.Done != rec.Total {
		t.Errorf("progress %d of %d, want %d of %d", rec.Done, rec.Total, w.events, w.events)
	}
	w.noTemps(t)
	return data
}

// noTemps checks that no temporary file is left in the directory.
func (w *runnerWorld) noTemps(t *testing.T) {
	t.Helper()
	tmps, _ := filepath.Glob(filepath.Join(w.dir, ".*"))
	if len(tmps) > 0 {
		t.Errorf("temporary files left: %q", tmps)
	}
}

// hookedReports is the real registry with hooks to make gathering fail and
// to watch progress.
type hookedReports struct {
	*sqlite.ReportService
	gatherErr error
	events    func(events func(yield func(*doorledger.UnlockEvent) error) error) func(yield func(*doorledger.UnlockEvent) error) error

	mu       sync.Mutex
	progress [][2]int64
}

func (h *hookedReports) GatherReport(ctx context.Context, id string, fn func(*doorledger.AuditReport) error) error {
	if h.gatherErr != nil {
		return h.gatherErr
	}
	return h.ReportService.GatherReport(ctx, id, func(r *doorledger.AuditReport) error {
		if h.events != nil {
			r.Events = h.events(r.Events)
		}
		return fn(r)
	})
}

func (h *hookedReports) ReportProgress(ctx context.Context, id string, done, total int64) error {
	h.mu.Lock()
	h.progress = append(h.progress, [2]int64{done, total})
	h.mu.Unlock()
	return h.ReportService.ReportProgress(ctx, id, done, total)
}

func (h *hookedReports) takeProgress() [][2]int64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	p := h.progress
	h.progress = nil
	return p
}

type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func TestRunner_PDF(t *testing.T) {
	w := newRunnerWorld(t, 600)
	rec := w.runOnce(t, w.request(t, doorledger.ReportPDF))
	pdf := w.mustFile(t, rec)
	MustQPDFCheck(t, testtool.Require(t, "qpdf"), pdf)
	text := MustLayoutText(t, pdf)
	for _, want := range []string{"Report id " + rec.ID, w.building.Name, "Every event, oldest first (600)", "unregistered: relay-Ω-9",
		fmt.Sprintf("Entries covered %d", rec.HeadSize)} {
		if !containsText(text, want) {
			t.Errorf("the PDF lacks %q", want)
		}
	}
	if did, err := w.runner.RunOnce(context.Background()); did || err != nil {
		t.Errorf("RunOnce with nothing queued = %v, %v", did, err)
	}

	// Open serves the file while it is the one registered.
	f, err := w.runner.Open(rec)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(f)
	f.Close()
	if !bytes.Equal(got, pdf) {
		t.Error("Open read other bytes than the file's")
	}
	path := filepath.Join(w.dir, rec.FileName())
	changed := bytes.Clone(pdf)
	changed[len(changed)/2] ^= 1
	os.WriteFile(path, changed, 0o600)
	if _, err := w.runner.Open(rec); err == nil || doorledger.ErrorCode(err) != doorledger.EINTERNAL || !strings.Contains(err.Error(), "not the one registered") {
		t.Errorf("Open of a changed file: %v", err)
	}
	os.Remove(path)
	if _, err := w.runner.Open(rec); doorledger.ErrorCode(err) != doorledger.ENOTFOUND {
		t.Errorf("Open of a removed file: %v, want ENOTFOUND", err)
	}
	queued := w.request(t, doorledger.ReportPDF)
	if _, err := w.runner.Open(queued); doorledger.ErrorCode(err) != doorledger.ECONFLICT {
		t.Errorf("Open of a queued report: %v, want ECONFLICT", err)
	}
	bad := *rec
	bad.ID = "../../etc/passwd"
	if _, err := w.runner.Open(&bad); doorledger.ErrorCode(err) != doorledger.EINVALID {
		t.Errorf("Open of a report id that is a path: %v, want EINVALID", err)
	}
}

func TestRunner_CSV(t *testing.T) {
	w := newRunnerWorld(t, 600)
	rec := w.runOnce(t, w.request(t, doorledger.ReportCSV))
	rows, err := csv.NewReader(bytes.NewReader(w.mustFile(t, rec))).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 601 {
		t.Fatalf("%d rows, want the header and 600 events", len(rows))
	}
	if got, want := rows[1][4], "'=PKG-00000"; got != want {
		t.Errorf("first actor_ref = %q, want %q (defused)", got, want)
	}
	if got, want := rows[600][7], "e-00599"; got != want {
		t.Errorf("last event id = %q, want %q", got, want)
	}
}

// TestRunner_Bundle checks a bundle made from the database: its audit
// entries are proved against the head the registry recorded.
func TestRunner_Bundle(t *testing.T) {
	w := newRunnerWorld(t, 300)
	rec := w.runOnce(t, w.request(t, doorledger.ReportBundle))
	data := w.mustFile(t, rec)
	zr, err := zip.NewReader(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	files := zipFiles(t, zr)
	if got := string(files["log-head.txt"]); got != rec.HeadNote {
		t.Errorf("log-head.txt is not the registry's head note:\n%s\n%s", got, rec.HeadNote)
	}
	cp := openHead(t, files)
	if cp.Size != rec.HeadSize || cp.Root != rec.HeadRoot {
		t.Errorf("log-head.txt signs %d %s; the registry has %d %s", cp.Size, cp.Root, rec.HeadSize, rec.HeadRoot)
	}
	lines := auditLines(t, files["audit.jsonl"])
	var actions []string
	for _, a := range lines {
		enc, _ := base64.StdEncoding.DecodeString(a.Encoding)
		e, err := auditlog.Decode(enc)
		if err != nil || !a.Proved {
			t.Errorf("audit #%d: proved %v (%s), %v", a.ID, a.Proved, a.Reason, err)
			continue
		}
		actions = append(actions, e.Audit.Action)
	}
	for _, want := range []string{"building.create", "report.request"} {
		found := false
		for _, a := range actions {
			found = found || a == want
		}
		if !found {
			t.Errorf("audit.jsonl lacks %q among %q", want, actions)
		}
	}
	// Every event proved against the database's log, and the bundle's own
	// verifier agrees.
	p := readLogProof(t, files["log-proof.jsonl"])
	for _, e := range p.events {
		if e.Index == nil || e.Reason != "" {
			t.Errorf("unlock #%d: no proof: %s", e.Unlock, e.Reason)
		}
	}
	if out, err := runVerifier(t, files); err != nil || !strings.Contains(out, "unlock events: 300 proved in the signed log, 0 without a proof") {
		t.Errorf("verify.go on a bundle from the database: %v\n%s", err, out)
	}
	MustQPDFCheck(t, testtool.Require(t, "qpdf"), files["report.pdf"])
	if text := MustLayoutText(t, files["report.pdf"]); !containsText(text, "Report id "+rec.ID) {
		t.Error("report.pdf does not name the report id")
	}
	if n := strings.Count(string(files["events.csv"]), "\n"); n != 301 {
		t.Errorf("events.csv has %d lines, want 301", n)
	}
}

// TestRunner_Progress checks what the runner records: the total as soon as
// the first walk counted it, then the printing pass, never going back.
func TestRunner_Progress(t *testing.T) {
	w := newRunnerWorld(t, 1500)
	for _, format := range []string{doorledger.ReportPDF, doorledger.ReportCSV, doorledger.ReportBundle} {
		t.Run(format, func(t *testing.T) {
			w.runner.ProgressEvery = 0 // every 256 events
			w.runOnce(t, w.request(t, format))
			p := w.svc.takeProgress()
			if len(p) < 1500/256 {
				t.Fatalf("%d progress records for 1500 events: %v", len(p), p)
			}
			if p[0] != [2]int64{0, 1500} || p[len(p)-1] != [2]int64{1500, 1500} {
				t.Errorf("progress from %v to %v, want from 0 to 1500 of 1500", p[0], p[len(p)-1])
			}
			for i := 1; i < len(p); i++ {
				if p[i][0] < p[i-1][0] || p[i][1] != 1500 {
					t.Errorf("progress went from %v to %v", p[i-1], p[i])
				}
			}

			w.runner.ProgressEvery = time.Hour // the total, and the end
			w.runOnce(t, w.request(t, format))
			if p := w.svc.takeProgress(); len(p) != 2 || p[0] != [2]int64{0, 1500} || p[1] != [2]int64{1500, 1500} {
				t.Errorf("progress with an hour between records: %v", p)
			}
		})
	}
}

func TestRunner_Failures(t *testing.T) {
	w := newRunnerWorld(t, 600)
	walkFails := func(after int, fail func() error) func(events func(yield func(*doorledger.UnlockEvent) error) error) func(yield func(*doorledger.UnlockEvent) error) error {
		return func(events func(yield func(*doorledger.UnlockEvent) error) error) func(yield func(*doorledger.UnlockEvent) error) error {
			return func(yield func(*doorledger.UnlockEvent) error) error {
				n := 0
				return events(func(ev *doorledger.UnlockEvent) error {
					if n++; n > after {
						return fail()
					}
					return yield(ev)
				})
			}
		}
	}
	for _, tt := range []struct {
		name      string
		format    string
		setup     func()
		reason    string
		logged    string
		cleanedUp func()
	}{
		{"coded error", doorledger.ReportPDF, func() {
			w.svc.gatherErr = doorledger.Errorf(doorledger.EINVALID, "The building's time zone cannot be read.")
		}, "The building's time zone cannot be read.", "time zone cannot be read", nil},
		{"events fail", doorledger.ReportCSV, func() {
			w.svc.events = walkFails(300, func() error { return errors.New("disk I/O error (522)") })
		}, "Internal error: the report could not be generated. The portal's log has the details.", "disk I/O error (522)", nil},
		{"panic in the PDF", doorledger.ReportPDF, func() {
			w.svc.events = walkFails(300, func() error { var s []int; _ = s[len(s)]; return nil })
		}, "Internal error: the report generator failed. The portal's log has the details.", "index out of range", nil},
		{"panic in the bundle", doorledger.ReportBundle, func() {
			w.svc.events = walkFails(300, func() error { panic("bundle exploded") })
		}, "Internal error: the report generator failed. The portal's log has the details.", "bundle exploded", nil},
		{"time-out", doorledger.ReportPDF, func() {
			w.runner.Timeout = time.Nanosecond
		}, "Generating the report took longer than 1ns. Choose a shorter range.", "deadline exceeded", func() { w.runner.Timeout = 10 * time.Minute }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			w.svc.gatherErr, w.svc.events = nil, nil
			tt.setup()
			rec := w.runOnce(t, w.request(t, tt.format))
			if tt.cleanedUp != nil {
				tt.cleanedUp()
			}
			if rec.Status != doorledger.ReportFailed || rec.Error != tt.reason {
				t.Errorf("report %s: %q, want failed: %q", rec.Status, rec.Error, tt.reason)
			}
			if !strings.Contains(w.log.String(), tt.logged) {
				t.Errorf("the log lacks %q:\n%s", tt.logged, w.log.String())
			}
			if _, err := os.Stat(filepath.Join(w.dir, rec.FileName())); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("a failed report left its file: %v", err)
			}
			w.noTemps(t)
		})
	}

	// The runner goes on: the next report is made.
	w.svc.gatherErr, w.svc.events = nil, nil
	w.mustFile(t, w.runOnce(t, w.request(t, doorledger.ReportPDF)))
}

// TestRunner_Run starts the loop as the portal does: a report left running
// by a killed portal is queued again and made, a stale temporary file goes,
// and a report requested later is made as soon as Notify says so (the poll
// is an hour).
func TestRunner_Run(t *testing.T) {
	w := newRunnerWorld(t, 100)
	interrupted := w.request(t, doorledger.ReportCSV)
	if claimed, err := w.svc.NextReport(doorledger.NewSystemContext(context.Background(), "killed portal")); err != nil || claimed.ID != interrupted.ID {
		t.Fatalf("claim: %v, %v", claimed, err)
	}
	stale := filepath.Join(w.dir, "."+interrupted.ID+".12345.tmp")
	os.WriteFile(stale, []byte("half a report"), 0o600)

	w.runner.Poll = time.Hour
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.runner.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run = %v, want nil when its context ends", err)
		}
	}()
	waitDone := func(id string) *doorledger.ReportRecord {
		t.Helper()
		for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
			if rec := w.find(t, id); rec.Status == doorledger.ReportDone || rec.Status == doorledger.ReportFailed {
				return rec
			}
		}
		t.Fatalf("report %s not made within a minute", id)
		return nil
	}
	w.mustFile(t, waitDone(interrupted.ID))
	if _, err := os.Stat(stale); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("stale temporary file: %v", err)
	}
	if !strings.Contains(w.log.String(), "requeued") {
		t.Errorf("the log does not say a report was requeued:\n%s", w.log.String())
	}

	later := w.request(t, doorledger.ReportPDF)
	w.runner.Notify()
	w.mustFile(t, waitDone(later.ID))
}

// BenchmarkOpen measures what re-checking a report's SHA-256 before a
// download costs, for a 25 MB file: Open, and reading the file once without
// hashing it, in the same run.
func BenchmarkOpen(b *testing.B) {
	dir := b.TempDir()
	data := make([]byte, 25<<20)
	for i := range data {
		data[i] = byte(i * 7)
	}
	rec := &doorledger.ReportRecord{ID: "AR-1-20261122T093000Z-beef", Format: doorledger.ReportPDF, Status: doorledger.ReportDone, Bytes: int64(len(data))}
	sum := sha256.Sum256(data)
	rec.SHA256 = hex.EncodeToString(sum[:])
	path := filepath.Join(dir, rec.FileName())
	if err := os.WriteFile(path, data, 0o600); err != nil {
		b.Fatal(err)
	}
	r := reports.NewRunner(nil, nil, dir, nil)
	b.Run("open", func(b *testing.B) {
		b.SetBytes(int64(len(data)))
		for b.Loop() {
			f, err := r.Open(rec)
			if err != nil {
				b.Fatal(err)
			}
			f.Close()
		}
	})
	b.Run("read", func(b *testing.B) {
		b.SetBytes(int64(len(data)))
		for b.Loop() {
			f, err := os.Open(path)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := io.Copy(io.Discard, f); err != nil {
				b.Fatal(err)
			}
			f.Close()
		}
	})
}

// TestRunner_RecordsWhatTheReportHolds: the registry keeps what each format's
// file holds — the anomalies among its events, how many were still open, the
// consents and devices it lists — counted as the file was written, for the
// report page to say first.
func TestRunner_RecordsWhatTheReportHolds(t *testing.T) {
	w := newRunnerWorld(t, 30) // every event from an unregistered device: each an anomaly
	ids := make([]int64, 0, 10)
	rows, err := w.d.Reader().Query(`SELECT id FROM unlock_events ORDER BY id LIMIT 10`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	rows.Close()
	ctx := doorledger.NewContextWithUser(context.Background(), w.manager)
	if _, err := sqlite.NewUnlockService(w.d).AcknowledgeAnomalies(ctx, w.building.ID, ids, "The courier's relay, known to the manager"); err != nil {
		t.Fatal(err)
	}
	for _, format := range []string{doorledger.ReportPDF, doorledger.ReportCSV, doorledger.ReportBundle} {
		rec := w.runOnce(t, w.request(t, format))
		want := doorledger.ReportHolds{Anomalies: 30, OpenAnomalies: 20}
		if rec.Status != doorledger.ReportDone || rec.Total != 30 || rec.Holds == nil || *rec.Holds != want {
			t.Errorf("%s: status %s, total %d, holds %+v; want done, 30, %+v", format, rec.Status, rec.Total, rec.Holds, want)
		}
		// The database keeps them as the file was written.
		for _, col := range []string{"held_anomalies", "held_open_anomalies", "held_consents", "held_devices"} {
			_, err := w.d.Writer().Exec(`UPDATE reports SET `+col+` = `+col+` + 1 WHERE id = ?`, rec.ID)
			if err == nil || !strings.Contains(err.Error(), "a finished report is never changed") {
				t.Errorf("%s: changing %s of a finished report: %v", format, col, err)
			}
		}
	}
}
