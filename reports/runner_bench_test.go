package reports_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime/pprof"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/doorledger/doorledger"
	"github.com/doorledger/doorledger/auditlog"
	"github.com/doorledger/doorledger/db/sqlite"
	"github.com/doorledger/doorledger/imagecheck"
	"github.com/doorledger/doorledger/internal/browsertest"
	"github.com/doorledger/doorledger/reports"
)

// BenchmarkReportFromDB100k is the report benchmark on the real
// path: a database holding a year of one building's unlock events (100,000
// by default; DOORLEDGER_BENCH_EVENTS sets it), recorded through the ingest
// service (so they carry the flags it computes), with four devices whose
// consents were signed through the signing flow with drawn signatures, a
// device disabled a month ago, an unregistered relay, and anomalies
// acknowledged in bulk and one by one. One iteration is one report as a
// manager gets it: RequestReport, then the generator (reports.Runner)
// claims it, gathers it from one read snapshot, prints the PDF to its file,
// hashes it and registers it (FinishReport). It reports:
//
//   - ns/op: request → file done and registered, in this process;
//     request-ms, its request; gather+PDF-s, then as many times, the same
//     report's data and PDF alone (GatherReport and AuditReportPDF, written
//     nowhere): the rest is the generator's file, hash and registry;
//   - report-s, report-CPU-s, report-peak-RSS-MB, report-base-RSS-MB: the
//     same in a fresh child process (this test binary, TestReportRunnerChild,
//     on the same database file): wall time, user+system CPU time, the
//     process's peak resident set (VmHWM), and its resident set before the
//     request (DOORLEDGER_REPORT_CHILD_CPUPROFILE=file profiles the child);
//   - chromium-s, chromium-RSS-MB: headless Chromium printing the same events
//     (the same report's snapshot) as the HTML history to PDF, as
//     BenchmarkAuditReport100k measures it; speedup-x: chromium-s over
//     report-s. DOORLEDGER_BENCH_CHROMIUM=skip leaves Chromium out (it
//     takes minutes and many GB: docs/benchmarks.md).
//
// Seeding is not timed.
//
//	go test ./reports -run '^$' -bench ReportFromDB100k -benchtime 3x -timeout 30m
func BenchmarkReportFromDB100k(b *testing.B) {
	n := benchEvents
	if s := os.Getenv("DOORLEDGER_BENCH_EVENTS"); s != "" {
		var err error
		if n, err = strconv.Atoi(s); err != nil || n < 1000 {
			b.Fatalf("DOORLEDGER_BENCH_EVENTS=%q: want a number >= 1000", s)
		}
	}
	w := seedReportBench(b, b.TempDir(), n)
	g := openReportBench(b, w, b.TempDir())
	var last *doorledger.ReportRecord
	var request time.Duration
	for b.Loop() {
		var took time.Duration
		last, took = g.report(b)
		request += took
	}
	b.ReportMetric(float64(last.Bytes)/1e6, "PDF-MB")
	b.ReportMetric(request.Seconds()*1e3/float64(b.N), "request-ms")
	// The same report's data and PDF alone, written nowhere, as many times:
	// what the generator adds (the file, its hash, fsync, the registry) is
	// the rest.
	t := time.Now()
	for range b.N {
		if err := g.reports.GatherReport(g.sys, last.ID, func(r *doorledger.AuditReport) error {
			return reports.AuditReportPDF(io.Discard, r)
		}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(time.Since(t).Seconds()/float64(b.N), "gather+PDF-s")

	child := runReportChild(b, w)
	b.ReportMetric(child.seconds, "report-s")
	b.ReportMetric(child.cpuSeconds, "report-CPU-s")
	b.ReportMetric(child.peakMB, "report-peak-RSS-MB")
	b.ReportMetric(child.baseMB, "report-base-RSS-MB")

	if _, ok := browsertest.Find(); !ok || os.Getenv("DOORLEDGER_BENCH_CHROMIUM") == "skip" {
		b.Logf("%d events from the database: %.2f s request → file done, peak RSS %.0f MB; Chromium skipped", w.Events, child.seconds, child.peakMB)
		return
	}
	var chrome chromiumResult
	if err := g.reports.GatherReport(g.sys, last.ID, func(r *doorledger.AuditReport) error {
		chrome = printWithChromium(b, r)
		return nil
	}); err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(chrome.seconds, "chromium-s")
	b.ReportMetric(chrome.peakMB, "chromium-RSS-MB")
	b.ReportMetric(chrome.seconds/child.seconds, "speedup-x")
	b.Logf("%d events from the database: request → file done %.2f s (CPU %.2f s), peak RSS %.0f MB (%.0f MB before), %.1f MB PDF; Chromium %.2f s, peak %.0f MB (its processes' Pss), %.1f MB PDF; %.1f× faster",
		w.Events, child.seconds, child.cpuSeconds, child.peakMB, child.baseMB, float64(last.Bytes)/1e6, chrome.seconds, chrome.peakMB, float64(chrome.size)/1e6, chrome.seconds/child.seconds)
}

// reportBenchWorld is a seeded data directory, as the child process needs it.
type reportBenchWorld struct {
	DB, Key    string // the database file and the log's key file
	BuildingID int64
	Manager    string // the manager's email
	From, To   string
	Events     int
}

// reportBenchGen is the report service and generator on a seeded database.
type reportBenchGen struct {
	w       *reportBenchWorld
	d       *sqlite.DB
	reports *sqlite.ReportService
	runner  *reports.Runner
	manager context.Context
	sys     context.Context
}

func openReportBench(tb testing.TB, w *reportBenchWorld, dir string) *reportBenchGen {
	tb.Helper()
	d := sqlite.NewDB(w.DB)
	if err := d.Open(); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { d.Close() })
	key, err := auditlog.LoadOrCreateKey(w.Key, "doorledger.bench/log")
	if err != nil {
		tb.Fatal(err)
	}
	sys := doorledger.NewSystemContext(context.Background(), "bench")
	mgr, err := sqlite.NewUserService(d).FindUserByEmail(sys, w.Manager)
	if err != nil {
		tb.Fatal(err)
	}
	logs := sqlite.NewLogService(d, key)
	svc := sqlite.NewReportService(d, logs, "https://portal.bench")
	return &reportBenchGen{w: w, d: d, reports: svc, runner: reports.NewRunner(svc, logs, dir, nil),
		manager: doorledger.NewContextWithUser(context.Background(), mgr), sys: sys}
}

// report requests the year's PDF as the manager and generates it; it
// returns the record and how long the request took.
func (g *reportBenchGen) report(tb testing.TB) (*doorledger.ReportRecord, time.Duration) {
	tb.Helper()
	t := time.Now()
	rec, err := g.reports.RequestReport(g.manager, doorledger.ReportRequest{BuildingID: g.w.BuildingID, Format: doorledger.ReportPDF, From: g.w.From, To: g.w.To})
	if err != nil {
		tb.Fatal(err)
	}
	request := time.Since(t)
	if rec.Total != int64(g.w.Events) {
		tb.Fatalf("report of %d events, want %d", rec.Total, g.w.Events)
	}
	if did, err := g.runner.RunOnce(context.Background()); err != nil || !did {
		tb.Fatalf("RunOnce = %v, %v", did, err)
	}
	if rec, err = g.reports.FindReport(g.manager, rec.ID); err != nil {
		tb.Fatal(err)
	}
	if rec.Status != doorledger.ReportDone {
		tb.Fatalf("report %s is %s: %s", rec.ID, rec.Status, rec.Error)
	}
	return rec, request
}

var benchSignLink = regexp.MustCompile(`/sign/([A-Za-z0-9_-]+)`)

// seedReportBench seeds dir through the services: a building in Zurich
// (delivery hours every day, 7:00 to 21:00) with two signers, its
// manager and installer; four devices whose consents were signed 380 days ago
// (for 36 months) with a drawn signature; the second device disabled by the
// manager 30 days ago; then n unlock events over the last year up to
// yesterday, by day, in the day from 07:00 to 20:00 building time but one in
// 40 at night, recorded through the ingest service 1,000 at a time, one in
// 97 from an unregistered relay, one in ten denied;
// then 400 of the flagged ones acknowledged with one note and 20 one by one,
// and the log caught up (the portal's sequencer runs every second).
func seedReportBench(tb testing.TB, dir string, n int) *reportBenchWorld {
	tb.Helper()
	t0 := time.Now()
	w := &reportBenchWorld{DB: filepath.Join(dir, "doorledger.db"), Key: filepath.Join(dir, auditlog.KeyFile), Manager: "mia@bench.example", Events: n}
	d := sqlite.NewDB(w.DB)
	d.PasswordCost = 4
	wall := time.Now().UTC().Truncate(time.Second)
	clock := wall.AddDate(0, 0, -380)
	d.Now = func() time.Time { return clock }
	if err := d.Open(); err != nil {
		tb.Fatal(err)
	}
	defer d.Close()
	ctx := context.Background()
	sys := doorledger.NewSystemContext(ctx, "bench seed")
	users, buildings := sqlite.NewUserService(d), sqlite.NewBuildingService(d)
	consents, devices, unlocks := sqlite.NewConsentService(d, "https://portal.bench"), sqlite.NewDeviceService(d), sqlite.NewUnlockService(d)

	bl, err := buildings.CreateBuilding(sys, doorledger.BuildingInput{Name: "Οικία Παπαδοπούλου / Дом на Невском", Address: "Rue de l’Église 5, 8001 Zürich",
		Timezone: "Europe/Zurich", ConsentMonths: 36})
	if err != nil {
		tb.Fatal(err)
	}
	w.BuildingID = bl.ID
	var signers []*doorledger.Signer
	for _, s := range []doorledger.SignerInput{
		{Name: "Zoë Nuñez", Title: "Board president", Email: "zoe@bench.example"},
		{Name: "Ana Θεοδώρου", Title: "Treasurer", Email: "ana@bench.example"},
	} {
		sg, err := buildings.AddSigner(sys, bl.ID, s)
		if err != nil {
			tb.Fatal(err)
		}
		signers = append(signers, sg)
	}
	mgr, err := users.CreateUser(sys, doorledger.NewUser{Email: w.Manager, Name: "Mia Manager", Role: doorledger.RoleManager, Password: "correct horse battery"})
	if err != nil {
		tb.Fatal(err)
	}
	inst, err := users.CreateUser(sys, doorledger.NewUser{Email: "lukasz@bench.example", Name: "Łukasz Wróbel", Role: doorledger.RoleInstaller,
		Company: "Wróbel & Sons", Password: "correct horse battery"})
	if err != nil {
		tb.Fatal(err)
	}
	for _, u := range []int64{mgr.ID, inst.ID} {
		if err := buildings.GrantAccess(sys, bl.ID, u); err != nil {
			tb.Fatal(err)
		}
	}
	mgrCtx, instCtx := doorledger.NewContextWithUser(ctx, mgr), doorledger.NewContextWithUser(ctx, inst)
	sig, err := imagecheck.Signature(SampleConsent(tb).Signature.SignaturePNG)
	if err != nil {
		tb.Fatal(err)
	}
	var devs []int64
	for i := range 4 {
		signer := signers[i%2]
		c, err := consents.RequestConsent(instCtx, bl.ID, doorledger.ConsentRequest{SignerID: signer.ID, Device: doorledger.DeviceDetails{
			Vendor: "Acme Access", Model: "DX-9 Courier", Serial: fmt.Sprintf("SN-4F2A-%04d-ZX", i+1), Location: fmt.Sprintf("lobby panel %d", i+1), Opens: "the lobby door"}})
		if err != nil {
			tb.Fatal(err)
		}
		var body string
		if err := d.Reader().QueryRowContext(ctx, `SELECT body FROM outbox WHERE kind = 'signing_link' ORDER BY id DESC LIMIT 1`).Scan(&body); err != nil {
			tb.Fatal(err)
		}
		m := benchSignLink.FindStringSubmatch(body)
		if m == nil {
			tb.Fatalf("no signing link in:\n%s", body)
		}
		sess, err := consents.OpenSigning(ctx, m[1])
		if err != nil {
			tb.Fatal(err)
		}
		if _, err := consents.Sign(ctx, m[1], doorledger.SignInput{TypedName: signer.Name, AgreeESign: true, SignaturePNG: sig,
			TermsSHA256: doorledger.TermsSHA256(sess.Terms), IP: "203.0.113.7", UserAgent: "bench"}); err != nil {
			tb.Fatalf("sign consent %d: %v", c.ID, err)
		}
		devs = append(devs, c.DeviceID)
	}
	clock = wall.AddDate(0, 0, -30)
	if _, err := devices.SetDesiredState(mgrCtx, devs[1], doorledger.StateDisabled, "panel rewired; the vendor is asked to remove the unit"); err != nil {
		tb.Fatal(err)
	}
	clock = wall
	if _, err := unlocks.UpdateUnlockSettings(mgrCtx, bl.ID, doorledger.UnlockSettings{RetentionDays: doorledger.DefaultRetentionDays,
		DeliveryHours: mustSchedule(tb, "mon-sun 07:00-21:00"), BurstCount: doorledger.DefaultBurstCount, BurstMinutes: doorledger.DefaultBurstMinutes}); err != nil {
		tb.Fatal(err)
	}

	loc := bl.Location()
	today := wall.In(loc)
	start := time.Date(today.Year(), today.Month(), today.Day()-364, 0, 0, 0, 0, loc)
	w.From, w.To = start.Format("2006-01-02"), today.Format("2006-01-02")
	methods := []string{doorledger.MethodCourierApp, doorledger.MethodCourierApp, doorledger.MethodKeypad, doorledger.MethodRemote}
	batch := make([]doorledger.UnlockEvent, 0, 1000)
	for i := range n {
		// Day by day, 07:00 to 20:00 building time, one in 40 at night.
		minute := 7*60 + (i*7919)%(13*60)
		if i%40 == 7 {
			minute = 60 + i%240
		}
		at := time.Date(start.Year(), start.Month(), start.Day()+i*364/n, 0, minute, i%60, 0, loc)
		ev := doorledger.UnlockEvent{DeviceID: devs[i%len(devs)], EventID: fmt.Sprintf("e-%06d", i), OccurredAt: at, ReceivedAt: at.Add(700 * time.Millisecond),
			Method: methods[i%len(methods)], ActorRef: fmt.Sprintf("AMZ-%08d", 4000000+i*37), Result: doorledger.UnlockGranted, Source: doorledger.SourceMQTT}
		switch {
		case i%97 == 13:
			ev.DeviceID, ev.DeviceRef, ev.BuildingID = 0, "relay-Ω-9", bl.ID
		case i%10 == 3:
			ev.Result = doorledger.UnlockDenied
		}
		if i%13 == 5 {
			ev.ActorRef = oddActor
		}
		batch = append(batch, ev)
		if len(batch) == cap(batch) || i == n-1 {
			if err := unlocks.RecordUnlocks(sys, batch); err != nil {
				tb.Fatal(err)
			}
			batch = batch[:0]
		}
	}
	var flagged []int64
	rows, err := d.Reader().QueryContext(ctx, `SELECT id FROM unlock_events WHERE building_id = ? AND anomalies <> 0 ORDER BY id LIMIT 420`, bl.ID)
	if err != nil {
		tb.Fatal(err)
	}
	for rows.Next() {
		var id int64
		rows.Scan(&id)
		flagged = append(flagged, id)
	}
	rows.Close()
	if len(flagged) < 420 {
		tb.Fatalf("only %d flagged events", len(flagged))
	}
	if _, err := unlocks.AcknowledgeAnomalies(mgrCtx, bl.ID, flagged[:400], "Наш курьер, доставка по графику · ο διαχειριστής ενημερώθηκε"); err != nil {
		tb.Fatal(err)
	}
	for _, id := range flagged[400:] {
		if _, err := unlocks.AcknowledgeAnomaly(mgrCtx, id, fmt.Sprintf("Checked the camera for event %d: a neighbour's parcel.", id)); err != nil {
			tb.Fatal(err)
		}
	}
	t1 := time.Now()
	key, err := auditlog.LoadOrCreateKey(w.Key, "doorledger.bench/log")
	if err != nil {
		tb.Fatal(err)
	}
	if _, err := sqlite.NewLogService(d, key).SignHead(sys); err != nil {
		tb.Fatal(err)
	}
	if _, err := d.Writer().ExecContext(ctx, `ANALYZE`); err != nil {
		tb.Fatal(err)
	}
	var anomalous int
	d.Reader().QueryRowContext(ctx, `SELECT COUNT(*) FROM unlock_events WHERE building_id = ? AND anomalies <> 0`, bl.ID).Scan(&anomalous)
	tb.Logf("seeded %d events (%d flagged, 420 acknowledged) in %s, the log in %s", n, anomalous, t1.Sub(t0).Round(time.Millisecond), time.Since(t1).Round(time.Millisecond))
	return w
}

func mustSchedule(tb testing.TB, s string) doorledger.DeliverySchedule {
	tb.Helper()
	sch, err := doorledger.ParseDeliverySchedule(s)
	if err != nil {
		tb.Fatal(err)
	}
	return sch
}

// reportChildEnv hands TestReportRunnerChild the seeded world, as JSON.
const reportChildEnv = "DOORLEDGER_REPORT_CHILD"

// runReportChild runs TestReportRunnerChild in a fresh process, so that its
// peak resident set is the report's and not the benchmark's.
func runReportChild(tb testing.TB, w *reportBenchWorld) childResult {
	tb.Helper()
	js, err := json.Marshal(w)
	if err != nil {
		tb.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestReportRunnerChild$", "-test.count=1", "-test.v")
	cmd.Env = append(os.Environ(), reportChildEnv+"="+string(js))
	out, err := cmd.CombinedOutput()
	if err != nil {
		tb.Fatalf("child: %v\n%s", err, out)
	}
	var res childResult
	for line := range strings.Lines(string(out)) {
		if rest, ok := strings.CutPrefix(strings.TrimSpace(line), "REPORTCHILD "); ok {
			if _, err := fmt.Sscanf(rest, "seconds=%g cpu_seconds=%g peak_mb=%g base_mb=%g", &res.seconds, &res.cpuSeconds, &res.peakMB, &res.baseMB); err != nil {
				tb.Fatalf("child: %q: %v", line, err)
			}
			return res
		}
	}
	tb.Fatalf("child printed no result:\n%s", out)
	return res
}

// TestReportRunnerChild requests one report of the seeded building and
// generates it, and says how long that took from the request to the
// registered file and the process's peak resident set. It runs only as
// BenchmarkReportFromDB100k's child.
func TestReportRunnerChild(t *testing.T) {
	js := os.Getenv(reportChildEnv)
	if js == "" {
		t.Skip("run by BenchmarkReportFromDB100k")
	}
	var w reportBenchWorld
	if err := json.Unmarshal([]byte(js), &w); err != nil {
		t.Fatal(err)
	}
	g := openReportBench(t, &w, t.TempDir())
	base := procStatusKB(t, "self", "VmRSS")
	if path := os.Getenv("DOORLEDGER_REPORT_CHILD_CPUPROFILE"); path != "" {
		f, err := os.Create(path)
		if err != nil {
			t.Fatal(err)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			t.Fatal(err)
		}
		defer pprof.StopCPUProfile()
	}
	cpu0 := cpuTime(t)
	start := time.Now()
	rec, _ := g.report(t)
	elapsed := time.Since(start)
	cpu := cpuTime(t) - cpu0
	peak := procStatusKB(t, "self", "VmHWM")
	// The file is the report: it opens, and says what it covers.
	f, err := g.runner.Open(rec)
	if err != nil {
		t.Fatal(err)
	}
	head := make([]byte, 5)
	if _, err := bufio.NewReader(f).Read(head); err != nil || string(head) != "%PDF-" {
		t.Fatalf("the report's file starts %q (%v)", head, err)
	}
	f.Close()
	fmt.Printf("REPORTCHILD seconds=%g cpu_seconds=%g peak_mb=%g base_mb=%g\n", elapsed.Seconds(), cpu.Seconds(), float64(peak)/1024, float64(base)/1024)
}
