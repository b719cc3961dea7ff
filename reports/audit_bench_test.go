package reports_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"html"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	cdpio "github.com/chromedp/cdproto/io"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"

	"github.com/doorledger/doorledger"
	"github.com/doorledger/doorledger/internal/browsertest"
	"github.com/doorledger/doorledger/reports"
)

func TestMain(m *testing.M) {
	code := m.Run()
	browsertest.Shutdown()
	os.Exit(code)
}

// benchEvents is the history the benchmark prints: a year of a busy building.
const benchEvents = 100_000

// benchReport is SampleAuditReport over a year with n events.
func benchReport(tb testing.TB, n int) *doorledger.AuditReport {
	r := SampleAuditReport(tb)
	r.From, r.To = "2025-11-22", "2026-11-21"
	r.Events = SampleEvents(r, n)
	return r
}

// BenchmarkAuditReport100k prints the audit report of 100,000 unlock events
// and, in the same run, the same events as an HTML table printed to PDF by
// headless Chromium. It reports:
//
//   - ns/op: one report, in this process;
//   - report-s, report-CPU-s and report-peak-RSS-MB: one report in a fresh
//     child process (this test binary, TestAuditReportChild), its wall time,
//     its user and system CPU time (which a busy machine does not inflate)
//     and its peak resident set (VmHWM, the whole process), and
//     report-base-RSS-MB, the child's resident set before it started;
//   - chromium-s: serving the HTML and printing it with page.PrintToPDF
//     (the browser already started, its tab open), and chromium-RSS-MB,
//     the peak of the browser's processes' summed proportional set size
//     (Pss), sampled every 200 ms;
//   - speedup-x: chromium-s over report-s.
//
// Run: go test ./reports -run '^$' -bench AuditReport100k -benchtime 3x
func BenchmarkAuditReport100k(b *testing.B) {
	r := benchReport(b, benchEvents)
	var size int64
	runs := 0
	for b.Loop() {
		var w countingWriter
		if err := reports.AuditReportPDF(&w, r); err != nil {
			b.Fatal(err)
		}
		size = w.n
		runs++
	}
	b.ReportMetric(float64(size)/1e6, "PDF-MB")

	child := runAuditChild(b, benchEvents)
	b.ReportMetric(child.seconds, "report-s")
	b.ReportMetric(child.cpuSeconds, "report-CPU-s")
	b.ReportMetric(child.peakMB, "report-peak-RSS-MB")
	b.ReportMetric(child.baseMB, "report-base-RSS-MB")

	if _, ok := browsertest.Find(); !ok {
		b.Logf("fpdf: %.2f s, peak RSS %.0f MB; Chromium skipped: %s", child.seconds, child.peakMB, browsertest.SkipMessage)
		return
	}
	chrome := printWithChromium(b, r)
	b.ReportMetric(chrome.seconds, "chromium-s")
	b.ReportMetric(chrome.peakMB, "chromium-RSS-MB")
	b.ReportMetric(chrome.seconds/child.seconds, "speedup-x")
	b.Logf("%d events: fpdf %.2f s, peak RSS %.0f MB (%.0f MB before the report), %.1f MB PDF; Chromium %.2f s, peak %.0f MB (its processes' Pss), %.1f MB PDF; %.1f× faster",
		benchEvents, child.seconds, child.peakMB, child.baseMB, float64(size)/1e6, chrome.seconds, chrome.peakMB, float64(chrome.size)/1e6, chrome.seconds/child.seconds)
}

type countingWriter struct{ n int64 }

func (w *countingWriter) Write(p []byte) (int, error) { w.n += int64(len(p)); return len(p), nil }

// childEnv asks TestAuditReportChild for a report of that many events.
const childEnv = "DOORLEDGER_AUDIT_CHILD_EVENTS"

type childResult struct {
	seconds, cpuSeconds, peakMB, baseMB float64
}

// runAuditChild runs TestAuditReportChild in a fresh process, so that its
// peak resident set is the report's and not the benchmark's.
func runAuditChild(tb testing.TB, n int) childResult {
	tb.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestAuditReportChild$", "-test.count=1", "-test.v")
	cmd.Env = append(os.Environ(), childEnv+"="+strconv.Itoa(n))
	out, err := cmd.CombinedOutput()
	if err != nil {
		tb.Fatalf("child: %v\n%s", err, out)
	}
	var res childResult
	for line := range strings.Lines(string(out)) {
		if rest, ok := strings.CutPrefix(strings.TrimSpace(line), "AUDITCHILD "); ok {
			if _, err := fmt.Sscanf(rest, "seconds=%g cpu_seconds=%g peak_mb=%g base_mb=%g", &res.seconds, &res.cpuSeconds, &res.peakMB, &res.baseMB); err != nil {
				tb.Fatalf("child: %q: %v", line, err)
			}
			return res
		}
	}
	tb.Fatalf("child printed no result:\n%s", out)
	return res
}

// TestAuditReportChild prints one report to a file and says how long it
// took and the process's peak resident set. It runs only as
// BenchmarkAuditReport100k's child.
func TestAuditReportChild(t *testing.T) {
	n, _ := strconv.Atoi(os.Getenv(childEnv))
	if n <= 0 {
		t.Skip("run by BenchmarkAuditReport100k")
	}
	r := benchReport(t, n)
	base := procStatusKB(t, "self", "VmRSS")
	f, err := os.Create(filepath.Join(t.TempDir(), "report.pdf"))
	if err != nil {
		t.Fatal(err)
	}
	cpu0 := cpuTime(t)
	start := time.Now()
	w := bufio.NewWriter(f)
	if err := reports.AuditReportPDF(w, r); err != nil {
		t.Fatal(err)
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	elapsed := time.Since(start)
	cpu := cpuTime(t) - cpu0
	peak := procStatusKB(t, "self", "VmHWM")
	fmt.Printf("AUDITCHILD seconds=%g cpu_seconds=%g peak_mb=%g base_mb=%g\n", elapsed.Seconds(), cpu.Seconds(), float64(peak)/1024, float64(base)/1024)
}

// cpuTime is the user and system time this process has used.
func cpuTime(tb testing.TB) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		tb.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// procStatusKB reads a field in kB from /proc/PID/status.
func procStatusKB(tb testing.TB, pid, field string) int64 {
	tb.Helper()
	kb, ok := fieldKB("/proc/"+pid+"/status", field)
	if !ok {
		tb.Fatalf("no %s in /proc/%s/status", field, pid)
	}
	return kb
}

type chromiumResult struct {
	seconds, peakMB float64
	size            int
}

// printWithChromium serves r's events as one HTML table and prints it to PDF
// with the shared headless Chromium.
func printWithChromium(b testing.TB, r *doorledger.AuditReport) chromiumResult {

	b.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		bw := bufio.NewWriter(w)
		if err := historyHTML(bw, r); err != nil {
			b.Error(err)
		}
		bw.Flush()
	}))
	defer srv.Close()

	ctx := browsertest.NewTab(b, browsertest.Options{Timeout: 15 * time.Minute, StepTimeout: 15 * time.Minute})
	if err := chromedp.Do(ctx, chromedp.Navigate("about:blank")); err != nil {
		b.Fatal(err)
	}
	var stop func() int64
	if p := chromedp.FromContext(ctx).Browser.Process(); p != nil {
		stop = sampleMemory(p.Pid, 200*time.Millisecond)
	}
	start := time.Now()
	if err := chromedp.Do(ctx, chromedp.Navigate(srv.URL)); err != nil {
		b.Fatal(err)
	}
	res, err := chromedp.Call(ctx, page.PrintToPDF, page.PrintToPDFParams{
		PaperWidth: 8.27, PaperHeight: 11.69, TransferMode: page.PrintToPDFTransferModeReturnAsStream,
	})
	if err != nil {
		b.Fatalf("after %v: %v", time.Since(start).Round(time.Second), err)
	}
	pdf, err := readStream(ctx, res.Stream)
	if err != nil {
		b.Fatal(err)
	}
	elapsed := time.Since(start)
	if !bytes.HasPrefix(pdf, []byte("%PDF-")) {
		b.Fatalf("Chromium printed %d bytes that are not a PDF", len(pdf))
	}
	var peakKB int64
	if stop != nil {
		peakKB = stop()
	}
	return chromiumResult{seconds: elapsed.Seconds(), peakMB: float64(peakKB) / 1024, size: len(pdf)}
}

// sampleMemory sums the proportional set size (Pss: shared pages split
// between the processes sharing them) of pid and its descendants every
// interval until stop, which returns the largest sum seen, in kB.
func sampleMemory(pid int, interval time.Duration) (stop func() int64) {
	done, result := make(chan struct{}), make(chan int64)
	go func() {
		var peak int64
		tick := time.NewTicker(interval)
		defer tick.Stop()
		for {
			var sum int64
			for _, p := range processTree(pid) {
				if kb, ok := fieldKB(fmt.Sprintf("/proc/%d/smaps_rollup", p), "Pss"); ok {
					sum += kb
				}
			}
			peak = max(peak, sum)
			select {
			case <-done:
				result <- peak
				return
			case <-tick.C:
			}
		}
	}()
	return func() int64 { close(done); return <-result }
}

func readStream(ctx context.Context, h cdpio.StreamHandle) ([]byte, error) {
	var out []byte
	for {
		chunk, err := chromedp.Call(ctx, cdpio.Read, cdpio.ReadParams{Handle: h, Size: 4 << 20})
		if err != nil {
			return nil, err
		}
		out = append(out, chunk.Data...)
		if chunk.EOF {
			break
		}
	}
	_, err := chromedp.Call(ctx, cdpio.Close, cdpio.CloseParams{Handle: h})
	return out, err
}

// processTree returns pid and its descendants.
func processTree(pid int) []int {
	children := map[int][]int{}
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if pp, ok := fieldKB("/proc/"+e.Name()+"/status", "PPid"); ok {
			children[int(pp)] = append(children[int(pp)], p)
		}
	}
	tree := []int{pid}
	for i := 0; i < len(tree); i++ {
		tree = append(tree, children[tree[i]]...)
	}
	return tree
}

// fieldKB reads a number (in kB, for sizes) from a /proc file of
// "Field: value" lines.
func fieldKB(path, field string) (int64, bool) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, false
	}
	for line := range strings.Lines(string(b)) {
		if rest, ok := strings.CutPrefix(line, field+":"); ok {
			n, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return n, err == nil
		}
	}
	return 0, false
}

// historyRowsPerTable splits the HTML history into tables of this many rows:
// Chromium runs out of memory laying out one table of tens of thousands of
// rows for print and then fails ("Printing failed"; docs/benchmarks.md), so the comparison uses the usual
// workaround.
const historyRowsPerTable = 1000

// historyHTML writes r's events as the HTML history page would show them
// all: tables of historyRowsPerTable rows, every time in the building's zone,
// with a print style that repeats each table's header on every page.
func historyHTML(w io.Writer, r *doorledger.AuditReport) error {
	loc := r.Building.Location()
	labels := map[int64]string{}
	for _, d := range r.Devices {
		labels[d.ID] = fmt.Sprintf("#%d %s", d.ID, d.Serial)
	}
	fmt.Fprintf(w, `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Unlock history – %s</title>
<style>
@page { size: A4; margin: 18mm 18mm 22mm }
body { font: 7pt "DejaVu Sans", sans-serif }
table { width: 100%%; border-collapse: collapse }
thead { display: table-header-group }
th { text-align: left; background: #e8e8e8 }
th, td { padding: 0.5mm 1mm; vertical-align: top }
tr:nth-child(even) td { background: #f6f6f6 }
</style></head><body><h1>Unlock history</h1><p>%s, %s to %s</p>
`, html.EscapeString(r.Building.Name), html.EscapeString(r.Building.Name), r.From, r.To)
	const head = `<table><thead><tr><th>Time</th><th>Device</th><th>Method</th><th>Actor reference</th><th>Result</th><th>Anomalies</th></tr></thead><tbody>` + "\n"
	rows := 0
	err := r.Events(func(ev *doorledger.UnlockEvent) error {
		if rows%historyRowsPerTable == 0 {
			if rows > 0 {
				io.WriteString(w, "</tbody></table>\n")
			}
			io.WriteString(w, head)
		}
		rows++
		device := labels[ev.DeviceID]
		if ev.DeviceID == 0 {
			device = "unregistered: " + ev.DeviceRef
		}
		flags := strings.ReplaceAll(strings.Join(ev.Anomalies, ", "), "_", " ")
		_, err := fmt.Fprintf(w, "<tr><td>%s</td><td>%s</td><td>%s</td><td>%s</td><td>%s</td><td>%s</td></tr>\n",
			ev.OccurredAt.In(loc).Format("2006-01-02 15:04:05 MST"), html.EscapeString(device), html.EscapeString(ev.Method),
			html.EscapeString(ev.ActorRef), ev.Result, flags)
		return err
	})
	if err != nil {
		return err
	}
	if rows > 0 {
		io.WriteString(w, "</tbody></table>\n")
	}
	_, err = io.WriteString(w, "</body></html>\n")
	return err
}
