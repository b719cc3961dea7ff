package reports

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"sync"
	"time"

	"github.com/doorledger/doorledger"
	"github.com/doorledger/doorledger/internal/atomicfile"
)

// Runner generates the reports queued in the registry, one at a time, into
// files in a directory: <dir>/<report id>.pdf, .csv or .zip (mode 0600).
// Each file is written to a temporary file first, hashed and measured as it
// is written, and renamed into place only when complete; then the registry
// records its SHA-256, size and log head (FinishReport). A report that cannot
// be made is marked failed with the reason (FailReport): a coded error's
// message, or "Internal error" with the details in the log; a panic while
// generating is recovered and fails the report, never the portal.
//
// Run loops until its context ends: it claims the oldest queued report,
// generates it, and when none is left waits for Notify (the web handler
// calls it after RequestReport) or the poll interval.
type Runner struct {
	svc  doorledger.ReportService
	logs Prover
	dir  string
	log  *slog.Logger

	// Poll is how often Run looks for queued reports without a Notify:
	// reports queued by another process (the monthly job of another
	// instance, the CLI) are picked up this late at most. 5 s.
	Poll time.Duration
	// ProgressEvery is the least time between two progress records. 250 ms.
	ProgressEvery time.Duration
	// Timeout bounds the generation of one report; past it the report fails
	// with a message asking for a shorter range. 10 minutes.
	Timeout time.Duration

	wake chan struct{}
	mu   sync.Mutex // one report at a time
}

// NewRunner returns a generator of svc's queued reports into dir, proving
// the evidence bundles' audit entries with logs (the db's LogService).
func NewRunner(svc doorledger.ReportService, logs Prover, dir string, log *slog.Logger) *Runner {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Runner{svc: svc, logs: logs, dir: dir, log: log,
		Poll: 5 * time.Second, ProgressEvery: 250 * time.Millisecond, Timeout: 10 * time.Minute,
		wake: make(chan struct{}, 1)}
}

// Notify wakes Run to look for queued reports now. It never blocks.
func (r *Runner) Notify() {
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// requeuer is implemented by a registry that can put back in the queue the
// reports a killed portal left running (db.ReportService).
type requeuer interface {
	RequeueInterrupted(ctx context.Context) (int, error)
}

// Run creates the directory, requeues reports left running by an earlier
// process and removes its temporary files, then generates queued reports
// until ctx ends. It returns nil when ctx ends, and an error only when it
// cannot create the directory. A report being generated when ctx ends is left running,
// for the next start to requeue.
func (r *Runner) Run(ctx context.Context) error {
	if err := os.MkdirAll(r.dir, 0o700); err != nil {
		return fmt.Errorf("reports: %w", err)
	}
	sys := doorledger.NewSystemContext(ctx, "reports")
	if q, ok := r.svc.(requeuer); ok {
		n, err := q.RequeueInterrupted(sys)
		if err != nil {
			r.log.Error("reports: cannot requeue reports interrupted by a restart", "err", err)
		} else if n > 0 {
			r.log.Info("reports: requeued reports interrupted by a restart", "count", n)
		}
	}
	if tmps, err := filepath.Glob(filepath.Join(r.dir, ".*.tmp")); err == nil {
		for _, t := range tmps {
			os.Remove(t)
		}
	}
	timer := time.NewTimer(r.Poll)
	defer timer.Stop()
	for {
		did, err := r.RunOnce(ctx)
		if err != nil && ctx.Err() == nil {
			r.log.Error("reports: cannot claim a queued report", "err", err)
		}
		if ctx.Err() != nil {
			return nil
		}
		if did {
			continue
		}
		timer.Reset(r.Poll)
		select {
		case <-ctx.Done():
			return nil
		case <-r.wake:
		case <-timer.C:
		}
	}
}

// RunOnce claims the oldest queued report, if any, and generates it; it
// reports whether there was one. A report that fails is marked failed, not
// returned as an error: the error is claiming one.
func (r *Runner) RunOnce(ctx context.Context) (bool, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	ctx = doorledger.NewSystemContext(ctx, "reports")
	rec, err := r.svc.NextReport(ctx)
	if err != nil || rec == nil {
		return false, err
	}
	r.generate(ctx, rec)
	return true, nil
}

// generate makes one claimed report and records the outcome.
func (r *Runner) generate(ctx context.Context, rec *doorledger.ReportRecord) {
	log := r.log.With("report", rec.ID, "format", rec.Format)
	start := time.Now()
	defer func() { // a panic outside write (the registry's): the portal goes on
		if v := recover(); v != nil {
			err := &panicError{value: v, stack: debug.Stack()}
			log.Error("report failed", "err", err)
			if ferr := r.svc.FailReport(ctx, rec.ID, failure(err, r.Timeout)); ferr != nil {
				log.Error("cannot record that the report failed", "err", ferr)
			}
		}
	}()
	out, err := r.write(ctx, rec)
	if err == nil {
		if err = r.svc.FinishReport(ctx, rec.ID, out.sum, out.size, out.head, out.holds); err != nil {
			os.Remove(out.path)
			err = fmt.Errorf("finish: %w", err)
		}
	}
	if err == nil {
		log.Info("report generated", "bytes", out.size, "sha256", out.sum, "events", out.events, "took", time.Since(start).Round(time.Millisecond))
		return
	}
	if ctx.Err() != nil {
		log.Info("report interrupted; it is queued again at the next start", "err", err)
		return
	}
	reason := failure(err, r.Timeout)
	log.Error("report failed", "err", err, "reason", reason, "took", time.Since(start).Round(time.Millisecond))
	if ferr := r.svc.FailReport(ctx, rec.ID, reason); ferr != nil {
		log.Error("cannot record that the report failed", "err", ferr)
	}
}

// failure is the reason a report failed, for people.
func failure(err error, timeout time.Duration) string {
	var p *panicError
	switch {
	case errors.As(err, &p):
		return "Internal error: the report generator failed. The portal's log has the details."
	case errors.Is(err, context.DeadlineExceeded):
		limit := timeout.String()
		if timeout >= time.Minute && timeout%time.Minute == 0 {
			limit = fmt.Sprintf("%d minutes", timeout/time.Minute)
		}
		return fmt.Sprintf("Generating the report took longer than %s. Choose a shorter range.", limit)
	case doorledger.ErrorCode(err) != doorledger.EINTERNAL:
		var e *doorledger.Error
		errors.As(err, &e)
		return e.Message
	}
	return "Internal error: the report could not be generated. The portal's log has the details."
}

// panicError is a panic recovered while generating a report.
type panicError struct {
	value any
	stack []byte
}

func (p *panicError) Error() string { return fmt.Sprintf("panic: %v\n%s", p.value, p.stack) }

// written is a report file in place.
type written struct {
	path   string
	sum    string
	size   int64
	events int64
	holds  doorledger.ReportHolds // what the file holds besides its events
	head   *doorledger.LogHead
}

// write gathers the report and writes its file, returning where it is, its
// SHA-256 and size, and the head it printed.
func (r *Runner) write(ctx context.Context, rec *doorledger.ReportRecord) (out written, err error) {
	if out.path, err = r.Path(rec); err != nil {
		return out, err
	}
	tmp, err := os.CreateTemp(r.dir, "."+rec.ID+".*.tmp") // 0600
	if err != nil {
		return out, err
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	defer func() { // runs first: a panic becomes err, and the file goes
		if v := recover(); v != nil {
			err = &panicError{value: v, stack: debug.Stack()}
		}
	}()

	gctx, cancel := context.WithTimeout(ctx, r.Timeout)
	defer cancel()
	h := sha256.New()
	bw := bufio.NewWriterSize(io.MultiWriter(tmp, h), 256<<10)
	cw := &countingWriter{w: bw}
	err = r.svc.GatherReport(gctx, rec.ID, func(rep *doorledger.AuditReport) error {
		out.head = rep.LogHead
		p := &progress{ctx: gctx, r: r, id: rec.ID, walks: walks(rec.Format)}
		wrapped := *rep
		wrapped.Events = p.wrap(rep.Events)
		var err error
		switch rec.Format {
		case doorledger.ReportPDF:
			err = AuditReportPDF(cw, &wrapped)
		case doorledger.ReportCSV:
			if err = count(&wrapped); err == nil {
				err = AuditReportCSV(cw, &wrapped)
			}
		case doorledger.ReportBundle:
			err = EvidenceBundle(gctx, cw, &wrapped, r.logs)
		default:
			err = doorledger.Errorf(doorledger.EINVALID, "Unknown report format %q.", rec.Format)
		}
		out.events = p.total
		out.holds = doorledger.ReportHolds{Anomalies: p.anomalies, OpenAnomalies: p.open,
			Consents: int64(len(rep.Consents)), Devices: int64(len(rep.Devices))}
		return err
	})
	if err != nil {
		return out, err
	}
	if err = bw.Flush(); err != nil {
		return out, err
	}
	if err = tmp.Sync(); err != nil {
		return out, err
	}
	if err = tmp.Close(); err != nil {
		return out, err
	}
	if err = os.Rename(tmp.Name(), out.path); err != nil {
		return out, err
	}
	if err := atomicfile.SyncDir(r.dir); err != nil {
		return out, err
	}
	out.sum, out.size = hex.EncodeToString(h.Sum(nil)), cw.n
	return out, nil
}

// walks is how many times a format's generation walks the events: the
// first walk counts them (the PDF's first pass, or the runner's own count
// for the CSV), the others write them.
func walks(format string) int {
	switch format {
	case doorledger.ReportCSV:
		return 2 // the count, then the CSV
	case doorledger.ReportBundle:
		return 4 // the PDF's two passes, events.csv hashed, then written
	}
	return 2 // the PDF's count, then its table
}

// progress records how far a report got, from the events its generation
// walks: the first walk's count is the total, and the events written since
// (over all the later walks) are the progress, scaled to the total.
type progress struct {
	ctx   context.Context
	r     *Runner
	id    string
	walks int

	walk            int   // walks started
	total           int64 // events of the first walk
	anomalies, open int64 // of those, flagged with an anomaly; and not acknowledged
	written         int64 // events yielded in the later walks
	done            int64 // the last progress recorded
	last            time.Time
	failed          bool // a progress record failed: logged once
}

// wrap counts the events events yields, records progress, and stops when
// the context ends (the runner's time-out, or the portal stopping).
func (p *progress) wrap(events func(yield func(*doorledger.UnlockEvent) error) error) func(yield func(*doorledger.UnlockEvent) error) error {
	if events == nil {
		return nil
	}
	return func(yield func(*doorledger.UnlockEvent) error) error {
		p.walk++
		first := p.walk == 1
		var n int64
		err := events(func(ev *doorledger.UnlockEvent) error {
			n++
			if first && len(ev.Anomalies) > 0 {
				p.anomalies++
				if ev.OpenAnomaly() {
					p.open++
				}
			}
			if n%256 == 0 {
				if err := p.ctx.Err(); err != nil {
					return err
				}
			}
			if !first {
				p.written++
				if n%256 == 0 {
					p.maybeRecord(false)
				}
			}
			return yield(ev)
		})
		if err != nil {
			return err
		}
		if first {
			p.total = n
			p.record(0) // the total is known
		} else {
			p.maybeRecord(p.walk >= p.walks)
		}
		return nil
	}
}

// count is the first walk, for a format that walks the events only once.
func count(r *doorledger.AuditReport) error {
	if r.Events == nil {
		return nil
	}
	return r.Events(func(*doorledger.UnlockEvent) error { return nil })
}

// maybeRecord records the progress when ProgressEvery has passed since the
// last record, or now.
func (p *progress) maybeRecord(now bool) {
	if !now && time.Since(p.last) < p.r.ProgressEvery {
		return
	}
	later := int64(p.walks - 1)
	done := p.written / max(later, 1)
	if done > p.total {
		done = p.total
	}
	if done != p.done {
		p.record(done)
	}
}

func (p *progress) record(done int64) {
	p.done, p.last = done, time.Now()
	if err := p.r.svc.ReportProgress(p.ctx, p.id, done, p.total); err != nil && !p.failed && p.ctx.Err() == nil {
		p.failed = true
		p.r.log.Warn("reports: cannot record progress", "report", p.id, "err", err)
	}
}

// Path returns where the file of report rec is (or will be) kept.
// EINVALID for a record whose id or format cannot name a file.
func (r *Runner) Path(rec *doorledger.ReportRecord) (string, error) {
	if !validReportID(rec.ID) {
		return "", doorledger.Errorf(doorledger.EINVALID, "A report id is letters, digits and dashes, not %q.", rec.ID)
	}
	name := rec.FileName()
	if name == rec.ID {
		return "", doorledger.Errorf(doorledger.EINVALID, "Unknown report format %q.", rec.Format)
	}
	return filepath.Join(r.dir, name), nil
}

func validReportID(id string) bool {
	if id == "" || len(id) > 100 || id[0] == '-' {
		return false
	}
	return strings.IndexFunc(id, func(c rune) bool {
		return !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_')
	}) < 0
}

// Open opens the file of the finished report rec for reading, after
// checking that its size and SHA-256 are still those the registry recorded,
// so that a file damaged or altered on disk is never served as the report.
// The check reads the file once more, which costs little beside sending the
// file to a browser (BenchmarkOpen; figures in docs/benchmarks.md). The file is positioned at its start; the caller closes it.
// ECONFLICT while the report is not done, ENOTFOUND when its file is no
// longer kept, EINTERNAL when the file does not match the registry.
func (r *Runner) Open(rec *doorledger.ReportRecord) (*os.File, error) {
	if rec.Status != doorledger.ReportDone {
		return nil, doorledger.Errorf(doorledger.ECONFLICT, "Report %s is %s, not ready to download.", rec.ID, rec.Status)
	}
	path, err := r.Path(rec)
	if err != nil {
		return nil, err
	}
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, doorledger.Errorf(doorledger.ENOTFOUND, "The file of report %s is no longer kept.", rec.ID)
	} else if err != nil {
		return nil, err
	}
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err == nil {
		_, err = f.Seek(0, io.SeekStart)
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("report %s: %w", rec.ID, err)
	}
	if sum := hex.EncodeToString(h.Sum(nil)); n != rec.Bytes || sum != rec.SHA256 {
		f.Close()
		return nil, fmt.Errorf("report %s: the file %s (%d bytes, SHA-256 %s) is not the one registered (%d bytes, SHA-256 %s)",
			rec.ID, path, n, sum, rec.Bytes, rec.SHA256)
	}
	return f, nil
}

// countingWriter counts the bytes written through it.
type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}
