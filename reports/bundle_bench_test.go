package reports_test

import (
	"archive/zip"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/doorledger/doorledger"
	"github.com/doorledger/doorledger/auditlog"
	"github.com/doorledger/doorledger/reports"
)

// Environment of TestEvidenceBundleChild: what to write ("pdf" or
// "bundle"), of how many events (default benchEvents), logged among how
// many other buildings' events each (default 0: the building alone).
const (
	bundleChildEnv  = "DOORLEDGER_BUNDLE_CHILD"
	bundleEventsEnv = "DOORLEDGER_BUNDLE_EVENTS"
	bundleOthersEnv = "DOORLEDGER_BENCH_OTHERS"
)

// bundleChild runs TestEvidenceBundleChild in a fresh process (this test
// binary) and returns what it printed: seconds, CPU seconds, peak RSS (MB),
// file size (MB).
func bundleChild(b *testing.B, kind string, env ...string) [4]float64 {
	cmd := exec.Command(os.Args[0], "-test.run=^TestEvidenceBundleChild$", "-test.count=1", "-test.v", "-test.timeout=30m")
	cmd.Env = append(append(os.Environ(), bundleChildEnv+"="+kind), env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		b.Fatalf("child: %v\n%s", err, out)
	}
	for line := range strings.Lines(string(out)) {
		if strings.HasPrefix(line, "BUNDLEFILE ") || strings.HasPrefix(line, "BUNDLELOG ") {
			b.Log(strings.TrimSpace(line))
		}
		if rest, ok := strings.CutPrefix(strings.TrimSpace(line), "BUNDLECHILD "); ok {
			var f [4]float64
			if _, err := fmt.Sscanf(rest, "seconds=%g cpu_seconds=%g peak_mb=%g file_mb=%g", &f[0], &f[1], &f[2], &f[3]); err != nil {
				b.Fatalf("child: %q: %v", line, err)
			}
			b.Log(strings.TrimSpace(line))
			return f
		}
	}
	b.Fatalf("child printed no result:\n%s", out)
	return [4]float64{}
}

// BenchmarkEvidenceBundle100k makes the evidence bundle of 100,000 events
// and, in the same run, the PDF alone, each in a fresh child process
// (TestEvidenceBundleChild) so that its peak resident set (VmHWM) is its
// own. It reports each one's wall and CPU seconds, peak RSS and file size.
func BenchmarkEvidenceBundle100k(b *testing.B) {
	for b.Loop() {
		for _, kind := range []string{"pdf", "bundle"} {
			f := bundleChild(b, kind)
			b.ReportMetric(f[0], kind+"-s")
			b.ReportMetric(f[1], kind+"-CPU-s")
			b.ReportMetric(f[2], kind+"-peak-RSS-MB")
			b.ReportMetric(f[3], kind+"-file-MB")
		}
	}
}

// BenchmarkEvidenceBundle250k makes the evidence bundle of the largest
// report allowed, doorledger.MaxReportEvents (250,000) unlock events, each
// proved in the log, in a fresh child process, with each event logged after
// DOORLEDGER_BENCH_OTHERS (default 4) events of other buildings: the more
// buildings share the log, the more tree nodes the proof needs. It reports
// the bundle's size, which must stay under the verify page's upload limit
// (64 MB), and its time and peak RSS (the in-memory log the child builds
// first included).
func BenchmarkEvidenceBundle250k(b *testing.B) {
	others := os.Getenv(bundleOthersEnv)
	if others == "" {
		others = "4"
	}
	for b.Loop() {
		f := bundleChild(b, "bundle", bundleEventsEnv+"="+strconv.Itoa(doorledger.MaxReportEvents), bundleOthersEnv+"="+others)
		b.ReportMetric(f[0], "bundle-s")
		b.ReportMetric(f[1], "bundle-CPU-s")
		b.ReportMetric(f[2], "bundle-peak-RSS-MB")
		b.ReportMetric(f[3], "bundle-file-MB")
		if f[3] >= 64 {
			b.Errorf("the bundle of %d events is %.1f MB: over the verify page's 64 MB upload limit", doorledger.MaxReportEvents, f[3])
		}
	}
}

// TestEvidenceBundleChild writes a PDF or a bundle of DOORLEDGER_BUNDLE_EVENTS
// events to a file and says how long it took and the process's peak resident
// set. For a bundle, every event is in the log, each after
// DOORLEDGER_BENCH_OTHERS events of other buildings. It runs only as the
// benchmarks' child.
func TestEvidenceBundleChild(t *testing.T) {
	kind := os.Getenv(bundleChildEnv)
	if kind == "" {
		t.Skip("run by BenchmarkEvidenceBundle100k and BenchmarkEvidenceBundle250k")
	}
	n, others := benchEvents, 0
	if v := os.Getenv(bundleEventsEnv); v != "" {
		n, _ = strconv.Atoi(v)
	}
	if v := os.Getenv(bundleOthersEnv); v != "" {
		others, _ = strconv.Atoi(v)
	}
	r := SampleAuditReport(t)
	r.From, r.To = "2025-11-22", "2026-11-21"
	r.Events = SampleEvents(r, n)
	l := newMemLog(t)
	if kind == "bundle" {
		if err := r.Events(func(ev *doorledger.UnlockEvent) error {
			l.filler(t, others)
			enc, err := auditlog.EncodeUnlock(ev)
			if err != nil {
				return err
			}
			l.append(t, doorledger.LogKindUnlock, ev.ID, enc)
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		r.LogHead = l.head(t, l.n)
		r.VerifierKey = l.key.VerifierKey()
	}
	path := filepath.Join(t.TempDir(), "out")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	cpu0 := cpuTime(t)
	start := time.Now()
	w := &lineCounter{w: f}
	if kind == "pdf" {
		err = reports.AuditReportPDF(w, r)
	} else {
		err = reports.EvidenceBundle(context.Background(), w, r, l)
	}
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	elapsed, cpu := time.Since(start), cpuTime(t)-cpu0
	peak := procStatusKB(t, "self", "VmHWM")
	if kind == "bundle" {
		// What the bundle is made of: each file's size in the zip.
		zr, err := zip.OpenReader(path)
		if err != nil {
			t.Fatal(err)
		}
		for _, zf := range zr.File {
			if zf.CompressedSize64 > 1<<20 {
				fmt.Printf("BUNDLEFILE %s %d bytes (%d unzipped)\n", zf.Name, zf.CompressedSize64, zf.UncompressedSize64)
			}
		}
		zr.Close()
		fmt.Printf("BUNDLELOG %d entries in the log, %d events of the building\n", l.n, n)
	}
	fmt.Printf("BUNDLECHILD seconds=%g cpu_seconds=%g peak_mb=%g file_mb=%g\n", elapsed.Seconds(), cpu.Seconds(), float64(peak)/1024, float64(w.bytes)/(1<<20))
}
