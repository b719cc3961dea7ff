package web_test

// The public notice's server time for a building with 50 devices:
//
//	go test ./web -run '^$' -bench PublicNotice -benchtime 3000x
//
// In process, through the Echo handler the portal serves (every middleware:
// recovery, headers, request log, rate limit, CSRF, session), on a real
// SQLite file: 50 devices (40 enabled on signed consents, 5 disabled in the
// last 90 days, 2 disabled earlier, 2 found, 1 awaiting consent) and 4,000
// granted door openings in the last week. Each request is timed around
// ServeHTTP (the whole server's work, no network), and the handler's own
// Server-Timing header is read too; p50 and p95 are reported after a
// warm-up, with the process's CPU time per request (which the machine's
// other load does not inflate). Nothing here asserts on a duration:
// docs/benchmarks.md records the figures.

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/doorledger/doorledger"
	"github.com/doorledger/doorledger/db/sqlite"
	"github.com/doorledger/doorledger/web"
)

func BenchmarkPublicNotice(b *testing.B) {
	f := newFixture(b)
	ctx := sys()
	devices, unlocks := sqlite.NewDeviceService(f.db), sqlite.NewUnlockService(f.db)
	mgr := doorledger.NewContextWithUser(context.Background(), f.managerA)
	now := time.Now().UTC()
	var ids []int64
	for i := range 47 {
		c, _ := f.signedConsent(b)
		ids = append(ids, c.DeviceID)
		if i >= 40 {
			if _, err := devices.SetDesiredState(mgr, c.DeviceID, doorledger.StateDisabled, "bench"); err != nil {
				b.Fatal(err)
			}
		}
	}
	for i := range 2 {
		if _, err := devices.RecordFoundDevice(mgr, f.A.ID, doorledger.DeviceDetails{Vendor: "Ghost", Serial: fmt.Sprintf("G-%d", i), Location: "panel"}); err != nil {
			b.Fatal(err)
		}
	}
	f.requestConsent(b, false) // awaiting
	// Two of the disabled ones went off the list 100 days ago.
	if _, err := f.db.Writer().Exec(`UPDATE commands SET requested_at = ? WHERE device_id IN (?, ?) AND state = 'disabled'`,
		now.AddDate(0, 0, -100).Format("2006-01-02T15:04:05.000000Z"), ids[45], ids[46]); err != nil {
		b.Fatal(err)
	}
	var events []doorledger.UnlockEvent
	for i := range 4000 {
		events = append(events, doorledger.UnlockEvent{DeviceID: ids[i%40], EventID: fmt.Sprintf("e-%d", i),
			OccurredAt: now.Add(-time.Duration(i) * 2 * time.Minute), Method: doorledger.MethodCourierApp, ActorRef: "PKG-" + strconv.Itoa(i), Result: doorledger.UnlockGranted})
	}
	if err := unlocks.RecordUnlocks(ctx, events); err != nil {
		b.Fatal(err)
	}
	n, err := f.residents.PublicNotice(context.Background(), f.noticeSlug(b))
	if err != nil {
		b.Fatal(err)
	}
	if len(n.Devices) != 48 || n.OpeningsLastWeek != 4000 {
		b.Fatalf("the notice lists %d devices and %d openings, want 48 and 4000", len(n.Devices), n.OpeningsLastWeek)
	}

	// The portal's server, with the per-client limit out of the way (every
	// request comes from one address here).
	srv := web.NewServer(web.Config{
		Users: f.users, Buildings: f.buildings, Residents: f.residents,
		SessionKeys: [][]byte{[]byte(strings.Repeat("h", 64)), []byte(strings.Repeat("b", 32))},
		Logger:      slog.New(slog.NewTextHandler(io.Discard, nil)),
		NoticeRate:  web.RateLimit{Every: time.Nanosecond, Burst: 1 << 30},
	})
	h := srv.Handler()
	path := doorledger.NoticePath + n.Slug
	serveAt := func(path string) (time.Duration, time.Duration) {
		req := httptest.NewRequest(http.MethodGet, path, nil)
		req.RemoteAddr = "192.0.2.10:5555"
		rec := httptest.NewRecorder()
		t0 := time.Now()
		h.ServeHTTP(rec, req)
		d := time.Since(t0)
		if rec.Code != http.StatusOK {
			b.Fatalf("GET %s: %d", path, rec.Code)
		}
		if path == floorPath {
			return d, 0
		}
		app, _ := strings.CutPrefix(rec.Header().Get("Server-Timing"), "app;dur=")
		ms, err := strconv.ParseFloat(app, 64)
		if err != nil {
			b.Fatalf("Server-Timing %q", rec.Header().Get("Server-Timing"))
		}
		return d, time.Duration(ms * float64(time.Millisecond))
	}
	serve := func() (time.Duration, time.Duration) { return serveAt(path) }
	for range 200 {
		serve()
	}
	// The floor, interleaved with the notice in the same run: the sign-in
	// page, the smallest server-rendered page, through the same middleware
	// (its CPU is taken out of cpu-µs/req).
	total := make([]time.Duration, 0, b.N)
	app := make([]time.Duration, 0, b.N)
	floor := make([]time.Duration, 0, b.N)
	var floorCPU time.Duration
	cpu0 := processCPU(b)
	b.ResetTimer()
	for range b.N {
		d, a := serve()
		total, app = append(total, d), append(app, a)
		c0 := processCPU(b)
		d, _ = serveAt(floorPath)
		floor, floorCPU = append(floor, d), floorCPU+processCPU(b)-c0
	}
	b.StopTimer()
	cpu0 += floorCPU
	// The process's CPU time per request: what the page costs, whatever the
	// machine's other load does to the wall-clock percentiles.
	b.ReportMetric(float64((processCPU(b)-cpu0).Microseconds())/float64(b.N), "cpu-µs/req")
	pct := func(ds []time.Duration, p float64) float64 {
		slices.Sort(ds)
		return float64(ds[min(len(ds)-1, int(p*float64(len(ds))))].Microseconds())
	}
	b.ReportMetric(pct(total, 0.50), "server-p50-µs")
	b.ReportMetric(pct(total, 0.95), "server-p95-µs")
	b.ReportMetric(pct(app, 0.50), "timing-p50-µs")
	b.ReportMetric(pct(app, 0.95), "timing-p95-µs")
	b.ReportMetric(pct(floor, 0.95), "floor-p95-µs")
}

// floorPath is the page BenchmarkPublicNotice measures its floor with.
const floorPath = "/login"

// processCPU is the process's user and system CPU time so far.
func processCPU(tb testing.TB) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		tb.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
