package main

// The attention list's benchmark, over loopback HTTP against the real portal
// (started through run()) on a portfolio of 1,000 buildings, 10,000 devices
// and 5M unlock events, 2% of them flagged:
//
//	DOORLEDGER_BENCH_CACHE=/var/tmp/doorledger-bench \
//	  go test ./cmd/portal/ -run '^$' -bench AttentionHTTP -benchtime 200x -timeout 60m
//
// An admin (every building) and a manager of 10 buildings GET / (the
// attention list) and /buildings (the same counts per row), as a browser
// tab would (one keep-alive connection, cookies). Each case reports the
// server's time (its Server-Timing header), p50 and p95 in µs, over b.N
// requests after a warm-up, and the client's. The floor, measured in the
// same run and interleaved with the cases, is GET /account as the same user:
// a signed-in page that reads nothing but the session (HTTP, session,
// CSRF, layout). The service alone (AttentionService.Attention) is timed on
// the same file in the same process.
//
// Every building needs attention, the worst case for the page (50 buildings
// listed with their items): one device found without consent in each; a
// command not confirmed in every 10th; heartbeats of an hour with one device
// in 20 silent for two; a request waiting in every 4th; a consent lapsing
// within 30 days in every 10th; a dispute of the last 7 days in every 20th; a
// resident's report in every 7th; and of the 100,000 flagged events half
// acknowledged. The seed is cached like the history benchmark's
// (DOORLEDGER_BENCH_CACHE; DOORLEDGER_BENCH_EVENTS sets the event count).

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/doorledger/doorledger"
	"github.com/doorledger/doorledger/auditlog"
	"github.com/doorledger/doorledger/db/sqlite"
)

const (
	attBuildings   = 1000
	attDevicesEach = 10
	attSeedVersion = 2
	attPassword    = "correct horse battery"
	attAdmin       = "ada@bench.example"
	attManager     = "mo@bench.example" // of 10 buildings
)

type attWorld struct {
	DataDir   string
	Events    int
	Flagged   int
	SeedTaken time.Duration
	SizeMB    float64
	SeededAt  time.Time
}

func attSeeded(b *testing.B) *attWorld {
	b.Helper()
	n := histEvents(b)
	cache := os.Getenv("DOORLEDGER_BENCH_CACHE")
	if cache == "" {
		b.Logf("DOORLEDGER_BENCH_CACHE is not set: seeding %d events for this run only", n)
		return seedAttention(b, b.TempDir(), n)
	}
	dir := filepath.Join(cache, fmt.Sprintf("attention-%d-v%d", n, attSeedVersion))
	var w *attWorld
	if buf, err := os.ReadFile(filepath.Join(dir, "world.json")); err == nil {
		w = &attWorld{}
		if err := json.Unmarshal(buf, w); err != nil {
			b.Fatal(err)
		}
		b.Logf("using the cached seed %s (seeded %s in %s)", dir, w.SeededAt.Format(time.RFC3339), w.SeedTaken.Round(time.Second))
	} else {
		tmp := dir + ".partial"
		if err := os.RemoveAll(tmp); err != nil {
			b.Fatal(err)
		}
		if err := os.MkdirAll(tmp, 0o700); err != nil {
			b.Fatal(err)
		}
		w = seedAttention(b, tmp, n)
		buf, _ := json.Marshal(w)
		if err := os.WriteFile(filepath.Join(tmp, "world.json"), buf, 0o600); err != nil {
			b.Fatal(err)
		}
		if err := os.Rename(tmp, dir); err != nil {
			b.Fatal(err)
		}
		b.Logf("seeded %d events in %s, %.0f MB; cached in %s", n, w.SeedTaken.Round(time.Second), w.SizeMB, dir)
	}
	run := b.TempDir()
	for _, name := range []string{"doorledger.db", auditlog.KeyFile} {
		if err := copyFile(filepath.Join(dir, name), filepath.Join(run, name)); err != nil {
			b.Fatal(err)
		}
	}
	w.DataDir = run
	attPrepare(b, w)
	return w
}

// attPrepare brings the run's copy of the seed up to date before the portal
// starts on it: the migrations newer than the seed (timed here, outside the
// portal's start deadline); the daily counts' catch-up (migration 050: the
// portal's background job would count 5M events during the measurement
// otherwise); and the devices' last-heard times moved forward by the seed's
// age, so that the world is the one seeded — one device in 20 past its hour,
// the others heard a minute ago — whenever the run is, not every device
// offline an hour after seeding.
func attPrepare(b *testing.B, w *attWorld) {
	b.Helper()
	start := time.Now()
	d := sqlite.NewDB(filepath.Join(w.DataDir, "doorledger.db"))
	if err := d.Open(); err != nil {
		b.Fatal(err)
	}
	defer d.Close()
	migrated := time.Since(start)
	n, err := sqlite.NewUnlockService(d).CountDays(doorledger.NewSystemContext(context.Background(), "bench"))
	if err != nil {
		b.Fatal(err)
	}
	counted := time.Since(start) - migrated
	age := int64(time.Since(w.SeededAt) / time.Second)
	if _, err := d.Writer().Exec(`UPDATE devices SET last_seen_at = strftime('%Y-%m-%dT%H:%M:%S', substr(last_seen_at, 1, 19), '+' || ? || ' seconds')
		|| substr(last_seen_at, 20) WHERE last_seen_at IS NOT NULL`, age); err != nil {
		b.Fatal(err)
	}
	b.Logf("the seed's copy: migrated in %s, %d events' daily counts caught up in %s, devices heard %ds later",
		migrated.Round(time.Millisecond), n, counted.Round(time.Millisecond), age)
}

// seedAttention writes the portfolio straight into the tables (the services
// would take hours for 5M events), the people through the services.
func seedAttention(tb testing.TB, dir string, n int) *attWorld {
	tb.Helper()
	start := time.Now()
	ctx := context.Background()
	sys := doorledger.NewSystemContext(ctx, "bench seed")
	w := &attWorld{DataDir: dir, Events: n, SeededAt: start.UTC()}
	d := sqlite.NewDB(filepath.Join(dir, "doorledger.db"))
	d.PasswordCost = 4
	if err := d.Open(); err != nil {
		tb.Fatal(err)
	}
	defer d.Close()
	wr := d.Writer()
	if _, err := wr.ExecContext(ctx, `PRAGMA cache_size = -262144`); err != nil {
		tb.Fatal(err)
	}
	const layout = "2006-01-02T15:04:05.000000Z"
	now := time.Now().UTC().Truncate(time.Second)
	ts := func(t time.Time) string { return t.Format(layout) }
	users := sqlite.NewUserService(d)
	var inst, mgr *doorledger.User
	for _, u := range []struct {
		email string
		role  doorledger.Role
		p     **doorledger.User
	}{{attAdmin, doorledger.RoleAdmin, nil}, {attManager, doorledger.RoleManager, &mgr}, {"ivo@bench.example", doorledger.RoleInstaller, &inst}} {
		nu, err := users.CreateUser(sys, doorledger.NewUser{Email: u.email, Name: u.email, Role: u.role, Password: attPassword})
		if err != nil {
			tb.Fatal(err)
		}
		if u.p != nil {
			*u.p = nu
		}
	}
	tx, err := wr.BeginTx(ctx, nil)
	if err != nil {
		tb.Fatal(err)
	}
	exec := func(q string, args ...any) int64 {
		tb.Helper()
		res, err := tx.ExecContext(ctx, q, args...)
		if err != nil {
			tb.Fatalf("%.80s: %v", q, err)
		}
		id, _ := res.LastInsertId()
		return id
	}
	var devices, deviceBuilding []int64
	for i := range attBuildings {
		bid := exec(`INSERT INTO buildings (name, address, timezone, created_at, updated_at, heartbeat_seconds) VALUES (?, ?, 'America/New_York', ?, ?, 3600)`,
			fmt.Sprintf("Building %04d", i+1), fmt.Sprintf("%d Bench St", i+1), ts(now), ts(now))
		sid := exec(`INSERT INTO signers (building_id, name, title, email, created_at) VALUES (?, 'Pat Owner', 'Board president', ?, ?)`,
			bid, fmt.Sprintf("pat%d@bench.example", bid), ts(now))
		if i < 10 {
			exec(`INSERT INTO grants (building_id, user_id, created_at) VALUES (?, ?, ?)`, bid, mgr.ID, ts(now))
		}
		exec(`INSERT INTO grants (building_id, user_id, created_at) VALUES (?, ?, ?)`, bid, inst.ID, ts(now))
		for j := range attDevicesEach {
			serial := fmt.Sprintf("B%04d-%02d", i+1, j)
			lastSeen := now.Add(-time.Minute)
			if (i*attDevicesEach+j)%20 == 7 {
				lastSeen = now.Add(-2 * time.Hour) // offline
			}
			did := exec(`INSERT INTO devices (building_id, vendor, model, serial, location, installer_id, origin, unconsented, created_at, last_seen_at)
				VALUES (?, 'Acme', 'K2', ?, 'lobby panel', ?, ?, ?, ?, ?)`, bid, serial, inst.ID,
				map[bool]string{true: "found", false: "consent_request"}[j == 0], map[bool]int{true: 1, false: 0}[j == 0], ts(now.AddDate(0, -1, 0)), ts(lastSeen))
			if j >= 2 { // signed consents under devices 2..9
				expires := now.AddDate(1, 0, 0)
				if j == 2 && i%10 == 0 {
					expires = now.Add(10 * 24 * time.Hour) // lapsing
				}
				cid := exec(`INSERT INTO consents (building_id, installer_id, signer_id, device_id, vendor, model, serial, location, opens, mode, requested_at, status, status_at,
					terms, terms_sha256, typed_name, signature_png, signed_at, signed_tz, signed_ip, signed_ua, method, expires_at)
					VALUES (?, ?, ?, ?, 'Acme', 'K2', ?, 'lobby panel', 'front door', 'link', ?, 'awaiting_signature', ?,
					'the terms', 'abc123', 'Pat Owner', x'89504e47', ?, 'UTC', '192.0.2.1', 'bench', 'link', ?)`,
					bid, inst.ID, sid, did, serial, ts(now.AddDate(0, -1, 0)), ts(now.AddDate(0, -1, 0)), ts(now.AddDate(0, -1, 0)), ts(expires))
				exec(`INSERT INTO consent_signers (consent_id, signer_id, position, address_key) SELECT c.id, c.signer_id, 1, lower(s.email) FROM consents c JOIN signers s ON s.id = c.signer_id WHERE c.id = ?`, cid)
				exec(`INSERT INTO consent_signatures (consent_id, signer_id, address, address_key, terms_sha256, typed_name, signature_png, signed_at, signed_tz, signed_ip, signed_ua, method)
					SELECT c.id, c.signer_id, s.email, lower(s.email), c.terms_sha256, c.typed_name, c.signature_png, c.signed_at, c.signed_tz, c.signed_ip, c.signed_ua, c.method
					FROM consents c JOIN signers s ON s.id = c.signer_id WHERE c.id = ?`, cid)
				exec(`UPDATE consents SET status = 'signed' WHERE id = ?`, cid)
				if j == 3 && i%20 == 0 { // disputed yesterday
					exec(`UPDATE consents SET status = 'disputed', status_at = ? WHERE id = ?`, ts(now.Add(-24*time.Hour)), cid)
					exec(`INSERT INTO consent_events (consent_id, at, kind, note) VALUES (?, ?, 'disputed', 'not me')`, cid, ts(now.Add(-24*time.Hour)))
				}
				exec(`UPDATE devices SET consent_id = ? WHERE id = ?`, cid, did)
			}
			// Each device's command history: enabled then confirmed; the
			// last device of every 10th building not confirmed.
			status := "confirmed"
			if j == 9 && i%10 == 0 {
				status = "not_confirmed"
			}
			exec(`INSERT INTO commands (device_id, building_id, state, version, requested_by, requested_at, status, confirmed_at) VALUES (?, ?, 'disabled', 1, 'bench', ?, ?, ?)`,
				did, bid, ts(now.Add(-time.Hour)), status, map[bool]any{true: ts(now.Add(-time.Hour)), false: nil}[status == "confirmed"])
			exec(`UPDATE devices SET desired_version = 1 WHERE id = ?`, did)
			devices, deviceBuilding = append(devices, did), append(deviceBuilding, bid)
		}
		if i%4 == 0 { // a request waiting for signatures
			exec(`INSERT INTO consents (building_id, installer_id, signer_id, vendor, model, serial, location, opens, mode, requested_at, status, status_at)
				VALUES (?, ?, ?, 'Acme', 'K3', ?, 'garage', 'garage door', 'link', ?, 'awaiting_signature', ?)`, bid, inst.ID, sid, fmt.Sprintf("REQ-%04d", i), ts(now.Add(-50*time.Hour)), ts(now.Add(-50*time.Hour)))
		}
		if i%7 == 0 {
			exec(`INSERT INTO resident_reports (building_id, created_at, location) VALUES (?, ?, 'behind the mailboxes')`, bid, ts(now.Add(-3*time.Hour)))
		}
	}
	if err := tx.Commit(); err != nil {
		tb.Fatal(err)
	}

	// The events, oldest first over the last year, 50,000 a transaction;
	// 2% flagged outside_hours. effective_at is written where the schema
	// has it (a cached seed may predate the column).
	var hasEffective int
	if err := wr.QueryRowContext(ctx, `SELECT COUNT(*) FROM pragma_table_info('unlock_events') WHERE name = 'effective_at'`).Scan(&hasEffective); err != nil {
		tb.Fatal(err)
	}
	insert := `INSERT INTO unlock_events (building_id, device_id, event_id, occurred_at, received_at, method, actor_ref, result, anomalies, source)
		VALUES (?1, ?2, ?3, ?4, ?4, 'courier_app', ?5, ?6, ?7, 'mqtt')`
	if hasEffective == 1 {
		insert = `INSERT INTO unlock_events (building_id, device_id, event_id, occurred_at, received_at, method, actor_ref, result, anomalies, source, effective_at)
			VALUES (?1, ?2, ?3, ?4, ?4, 'courier_app', ?5, ?6, ?7, 'mqtt', ?4)`
	}
	span := 365 * 24 * time.Hour
	step := span / time.Duration(n)
	base := now.Add(-span - time.Hour)
	const chunk = 50000
	for lo := 0; lo < n; lo += chunk {
		tx, err := wr.BeginTx(ctx, nil)
		if err != nil {
			tb.Fatal(err)
		}
		st, err := tx.PrepareContext(ctx, insert)
		if err != nil {
			tb.Fatal(err)
		}
		for i := lo; i < min(n, lo+chunk); i++ {
			k := (i * 7919) % len(devices)
			dev, bid := devices[k], deviceBuilding[k]
			bits, result := 0, "granted"
			if i%50 == 3 {
				bits = 8
				w.Flagged++
			}
			if i%10 == 0 {
				result = "denied"
			}
			if _, err := st.ExecContext(ctx, bid, dev, fmt.Sprintf("a-%09d", i), base.Add(time.Duration(i)*step).Format(layout), fmt.Sprintf("pkg-%d", i), result, bits); err != nil {
				tb.Fatal(err)
			}
		}
		st.Close()
		if err := tx.Commit(); err != nil {
			tb.Fatal(err)
		}
	}
	// Half the flagged events acknowledged (every other one, straight into
	// the table: the service's journal entries are not what is measured).
	if _, err := wr.ExecContext(ctx, `INSERT INTO anomaly_acks (event_id, building_id, acked_at, actor, note)
		SELECT id, building_id, ?, 'bench', 'false alarm' FROM unlock_events WHERE anomalies <> 0 AND (id / 50) % 2 = 0`, ts(now)); err != nil {
		tb.Fatal(err)
	}
	if _, err := wr.ExecContext(ctx, `UPDATE outbox SET sent_at = ?, attempts = 1 WHERE sent_at IS NULL`, ts(now)); err != nil {
		tb.Fatal(err)
	}
	key, err := auditlog.LoadOrCreateKey(filepath.Join(dir, auditlog.KeyFile), "doorledger")
	if err != nil {
		tb.Fatal(err)
	}
	if _, err := sqlite.NewLogService(d, key).SignHead(sys); err != nil {
		tb.Fatal(err)
	}
	if _, err := wr.ExecContext(ctx, `PRAGMA wal_checkpoint(TRUNCATE)`); err != nil {
		tb.Fatal(err)
	}
	if fi, err := os.Stat(filepath.Join(dir, "doorledger.db")); err == nil {
		w.SizeMB = float64(fi.Size()) / (1 << 20)
	}
	w.SeedTaken = time.Since(start)
	return w
}

// BenchmarkAttentionHTTP: see the top of the file.
func BenchmarkAttentionHTTP(b *testing.B) {
	w := attSeeded(b)
	p := MustStartPortal(b, w.DataDir)

	d := sqlite.NewDB(filepath.Join(w.DataDir, "doorledger.db"))
	if err := d.Open(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { d.Close() })
	svc := sqlite.NewAttentionService(d)

	for _, who := range []struct{ name, email, wantText string }{
		{"admin", attAdmin, "1000 buildings need you"},
		{"manager_10", attManager, "10 buildings need you"},
	} {
		c := NewClient(b, p.URL)
		c.MustLogin(who.email, attPassword)
		tr := &http.Transport{MaxIdleConnsPerHost: 1, DisableCompression: true}
		b.Cleanup(tr.CloseIdleConnections)
		hc := &http.Client{Jar: c.http.Jar, Transport: tr, CheckRedirect: c.http.CheckRedirect, Timeout: time.Minute}
		get := func(b *testing.B, path, want string) (client, server time.Duration) {
			t := time.Now()
			resp, err := hc.Get(p.URL + path)
			if err != nil {
				b.Fatal(err)
			}
			body, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			client = time.Since(t)
			if err != nil || resp.StatusCode != http.StatusOK || !strings.Contains(string(body), want) {
				b.Fatalf("GET %s: %d %v, want %q\n%.2000s", path, resp.StatusCode, err, want, body)
			}
			server, ok := serverTiming(resp.Header.Get("Server-Timing"))
			if !ok {
				b.Fatalf("GET %s: no Server-Timing", path)
			}
			return client, server
		}
		u, err := sqlite.NewUserService(d).FindUserByEmail(doorledger.NewSystemContext(context.Background(), "bench"), who.email)
		if err != nil {
			b.Fatal(err)
		}
		uctx := doorledger.NewContextWithUser(context.Background(), u)
		for _, page := range []struct{ name, path, want string }{
			{"attention", "/", who.wantText},
			{"buildings_list", "/buildings", `class="attention-cells"`},
		} {
			b.Run(who.name+"/"+page.name, func(b *testing.B) {
				for range histWarmup {
					get(b, page.path, page.want)
					get(b, "/account", "<h1")
				}
				var client, server, floor, query []time.Duration
				c0 := readCPU()
				b.ResetTimer()
				for range b.N {
					cl, sv := get(b, page.path, page.want)
					client, server = append(client, cl), append(server, sv)
					_, fl := get(b, "/account", "<h1")
					floor = append(floor, fl)
					if page.name == "attention" {
						t := time.Now()
						if _, err := svc.Attention(uctx, doorledger.AttentionOptions{MaxBuildings: 50, ItemsPerKind: 5}); err != nil {
							b.Fatal(err)
						}
						query = append(query, time.Since(t))
					}
				}
				b.StopTimer()
				for _, s := range [][]time.Duration{client, server, floor, query} {
					slices.Sort(s)
				}
				b.ReportMetric(histPct(server, 0.50), "server-p50-µs")
				b.ReportMetric(histPct(server, 0.95), "server-p95-µs")
				b.ReportMetric(histPct(client, 0.95), "client-p95-µs")
				b.ReportMetric(histPct(floor, 0.50), "floor-p50-µs")
				b.ReportMetric(histPct(floor, 0.95), "floor-p95-µs")
				if len(query) > 0 {
					b.ReportMetric(histPct(query, 0.50), "service-p50-µs")
					b.ReportMetric(histPct(query, 0.95), "service-p95-µs")
				}
				b.Logf("%s %s: %d events (%d flagged), %.0f MB; machine: %s", who.name, page.name, w.Events, w.Flagged, w.SizeMB, load(c0, readCPU()))
			})
		}
	}
}
