package main

// The building page benchmark, beside the history benchmark and on its seed
// (one building, 20 devices, 5M unlock events over two years, 1% flagged and
// half of those acknowledged):
//
//	DOORLEDGER_BENCH_CACHE=/var/tmp/doorledger-bench \
//	  go test ./cmd/portal/ -run '^$' -bench BuildingHTTP -benchtime 400x -timeout 90m
//
// A manager and a board member each GET /buildings/:id over a keep-alive
// connection of their own, as a browser tab would. Each timed request of the
// building page is followed by one of the same user's first history page
// (/buildings/:id/unlocks), the floor: a page of the same portal, session and
// layout with its own target (docs/benchmarks.md), measured interleaved in
// the same run so that the ratio of the two reads through the machine's
// noise. Figures (µs): the server's own time (Server-Timing app;dur=, the
// whole page rendered) and the client's, p50 and p95, of the page and of the
// floor. Then each query the page makes, alone, b.N times on the same file in
// the same process (the "query-…" metrics), so that a slow page names its
// slow query.
//
// Nothing here asserts on a duration: the figures are reported with
// b.ReportMetric and read by people (docs/benchmarks.md).

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/doorledger/doorledger"
	"github.com/doorledger/doorledger/db/sqlite"
)

// BenchmarkBuildingHTTP: see the top of the file.
func BenchmarkBuildingHTTP(b *testing.B) {
	w := histSeeded(b)
	p := MustStartPortal(b, w.DataDir)

	d := sqlite.NewDB(filepath.Join(w.DataDir, "doorledger.db"))
	if err := d.Open(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { d.Close() })
	sys := doorledger.NewSystemContext(context.Background(), "bench")
	users := sqlite.NewUserService(d)
	as := func(email string) context.Context {
		u, err := users.FindUserByEmail(sys, email)
		if err != nil {
			b.Fatal(err)
		}
		return doorledger.NewContextWithUser(context.Background(), u)
	}

	// The figures are of the daily counts read from unlock_daily, not of the
	// events counted while the catch-up is behind.
	var until string
	if err := openReader(b, w.DataDir).QueryRow(`SELECT counted_until FROM unlock_daily_zones WHERE building_id = ?`, w.Building).Scan(&until); err != nil || until != "9999" {
		b.Fatalf("the seed's daily counts are not current: counted until %q (%v)", until, err)
	}

	page := fmt.Sprintf("/buildings/%d", w.Building)
	floor := fmt.Sprintf("/buildings/%d/unlocks", w.Building)
	for _, who := range []struct{ name, email string }{{"manager", w.Manager}, {"board", w.Board}} {
		cl := NewClient(b, p.URL)
		cl.MustLogin(who.email, w.Password)
		tr := &http.Transport{MaxIdleConnsPerHost: 1, DisableCompression: true}
		b.Cleanup(tr.CloseIdleConnections)
		hc := &http.Client{Jar: cl.http.Jar, Transport: tr, CheckRedirect: cl.http.CheckRedirect, Timeout: time.Minute}
		get := func(b *testing.B, path, marker string) (client, server time.Duration) {
			t := time.Now()
			resp, err := hc.Get(p.URL + path)
			if err != nil {
				b.Fatal(err)
			}
			body, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			client = time.Since(t)
			if err != nil || resp.StatusCode != http.StatusOK {
				b.Fatalf("GET %s: %d %v\n%.500s", path, resp.StatusCode, err, body)
			}
			if !strings.Contains(string(body), marker) {
				b.Fatalf("GET %s: no %q in the page\n%.2000s", path, marker, body)
			}
			server, ok := serverTiming(resp.Header.Get("Server-Timing"))
			if !ok {
				b.Fatalf("GET %s: no Server-Timing app;dur= header (%q)", path, resp.Header.Get("Server-Timing"))
			}
			return client, server
		}
		b.Run(who.name+"_page", func(b *testing.B) {
			for range histWarmup {
				get(b, page, "History Court")
				get(b, floor, `<tr id="unlock-`)
			}
			pc, ps := make([]time.Duration, 0, b.N), make([]time.Duration, 0, b.N)
			fc, fs := make([]time.Duration, 0, b.N), make([]time.Duration, 0, b.N)
			before := readCPU()
			b.ResetTimer()
			for range b.N {
				c, s := get(b, page, "History Court")
				pc, ps = append(pc, c), append(ps, s)
				b.StopTimer()
				c, s = get(b, floor, `<tr id="unlock-`)
				fc, fs = append(fc, c), append(fs, s)
				b.StartTimer()
			}
			b.StopTimer()
			for _, x := range [][]time.Duration{pc, ps, fc, fs} {
				slices.Sort(x)
			}
			b.ReportMetric(histPct(ps, 0.50), "server-p50-µs")
			b.ReportMetric(histPct(ps, 0.95), "server-p95-µs")
			b.ReportMetric(histPct(pc, 0.50), "client-p50-µs")
			b.ReportMetric(histPct(pc, 0.95), "client-p95-µs")
			b.ReportMetric(histPct(fs, 0.50), "floor-server-p50-µs")
			b.ReportMetric(histPct(fs, 0.95), "floor-server-p95-µs")
			b.ReportMetric(histPct(ps, 0.95)/histPct(fs, 0.95), "p95/floor-p95")
			if b.N >= 20 {
				b.Logf("%s: %d pages and %d floor pages; %s", who.name, b.N, b.N, load(before, readCPU()))
			}
		})
		// Each query of the page alone, as this user, on the same file.
		ctx := as(who.email)
		b.Run(who.name+"_queries", func(b *testing.B) {
			for _, q := range buildingQueries(d, w.Building) {
				ts := make([]time.Duration, 0, b.N)
				for range b.N {
					t := time.Now()
					if err := q.run(ctx); err != nil {
						b.Fatalf("%s: %v", q.name, err)
					}
					ts = append(ts, time.Since(t))
				}
				slices.Sort(ts)
				b.ReportMetric(histPct(ts, 0.50), "query-"+q.name+"-p50-µs")
				b.ReportMetric(histPct(ts, 0.95), "query-"+q.name+"-p95-µs")
			}
		})
	}
}

type buildingQuery struct {
	name string
	run  func(context.Context) error
}

// buildingQueries are the reads web.buildingView makes for the building page,
// one by one.
func buildingQueries(d *sqlite.DB, id int64) []buildingQuery {
	buildings, devices, unlocks := sqlite.NewBuildingService(d), sqlite.NewDeviceService(d), sqlite.NewUnlockService(d)
	consents, invitations, residents := sqlite.NewConsentService(d, "http://bench"), sqlite.NewInvitationService(d, "http://bench"), sqlite.NewResidentService(d, "http://bench")
	manage := func(ctx context.Context) bool { return doorledger.CanManage(doorledger.UserFromContext(ctx)) }
	return []buildingQuery{
		{"building", func(ctx context.Context) error { _, err := buildings.FindBuildingByID(ctx, id); return err }},
		{"consents", func(ctx context.Context) error {
			_, err := consents.FindConsents(ctx, doorledger.ConsentFilter{BuildingID: id})
			return err
		}},
		{"devices", func(ctx context.Context) error {
			_, err := devices.FindDevices(ctx, doorledger.DeviceFilter{BuildingID: id})
			return err
		}},
		{"daily_counts", func(ctx context.Context) error { _, err := unlocks.DailyCounts(ctx, id, 0, 30); return err }},
		{"open_anomalies_count", func(ctx context.Context) error { _, err := unlocks.CountOpenAnomalies(ctx, id, 1000); return err }},
		{"open_anomalies", func(ctx context.Context) error {
			_, err := unlocks.History(ctx, doorledger.UnlockFilter{BuildingID: id, OpenOnly: true, Limit: 10})
			return err
		}},
		{"last_unlocks", func(ctx context.Context) error { _, err := unlocks.LastUnlocks(ctx, id); return err }},
		{"residents", func(ctx context.Context) error {
			if !manage(ctx) {
				return nil
			}
			_, err := residents.NoticeSettings(ctx, id)
			return err
		}},
		{"invitations_grants", func(ctx context.Context) error {
			if !manage(ctx) {
				return nil
			}
			if _, err := invitations.FindInvitations(ctx, id); err != nil {
				return err
			}
			_, err := buildings.FindGrants(ctx, id)
			return err
		}},
	}
}
