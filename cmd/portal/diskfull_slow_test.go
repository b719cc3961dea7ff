//go:build slow

package main

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/doorledger/doorledger"
	"github.com/doorledger/doorledger/db/sqlite"
	"github.com/doorledger/doorledger/devicectl"
)

// Sizes of the disk-full test: a 64 MiB filesystem, ingest refused below
// 4 MiB free, a 4 MiB reserve.
const (
	diskSize      = 64 << 20
	diskFloorMB   = 4
	diskReserveMB = 4
)

// bannerMark is the disk-full banner on a page (views.DiskFullNotice).
const bannerMark = `id="portal-notice"`

// The disk full (docs/reliability.md): the data directory is on a 64 MiB
// tmpfs the test mounts (SQLite's max_page_count where mounting is refused).
// A file fills it to the last byte. Device (MQTT) and vendor (HTTP) events
// are then refused, with a negative PUBACK and 503 + Retry-After, and kept by
// their senders; a manager's revoke commits and the device confirms it; pages
// still serve and show admins and managers the banner; the admins get one
// alert. Once the file is deleted, ingest resumes without a restart, every
// event acknowledged is stored once and `portal audit verify` passes.
func TestSlowDiskFull(t *testing.T) {
	mnt := t.TempDir()
	mode := "tmpfs"
	if os.Getenv("DOORLEDGER_TEST_NO_MOUNT") != "" { // to run the fallback where mounting works
		mode = "max_page_count"
		t.Log("DOORLEDGER_TEST_NO_MOUNT is set: not mounting")
	} else if out, err := exec.Command("mount", "-t", "tmpfs", "-o", fmt.Sprintf("size=%d", diskSize), "tmpfs", mnt).CombinedOutput(); err != nil {
		mode = "max_page_count"
		t.Logf("mount refused (%v: %s)", err, strings.TrimSpace(string(out)))
	} else {
		// Registered before the portal starts, so it runs after the portal stopped.
		t.Cleanup(func() {
			if out, err := exec.Command("umount", mnt).CombinedOutput(); err != nil {
				t.Errorf("umount %s: %v: %s", mnt, err, out)
			}
		})
	}
	t.Logf("mode: %s", mode)
	dataDir := filepath.Join(mnt, "data")
	var appDB *sqlite.DB
	p := mustStartPortalHook(t, dataDir, func(a *app) { appDB = a.sqliteDB() }, nil,
		"-disk-floor-mb", fmt.Sprint(diskFloorMB), "-disk-reserve-mb", fmt.Sprint(diskReserveMB))
	lastPortal = p
	mgr, device, id, secret := consentedDevice(t, p)
	admin := NewClient(t, p.URL)
	admin.MustLogin(testAdminEmail, p.AdminPass)
	_, body := admin.Get(device)
	building := regexp.MustCompile(`href="/buildings/(\d+)"`).FindStringSubmatch(body)[1]
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer hook.Close()
	vendorID, vendorKey := createIntegration(t, admin, building, hook.URL+"/doorledger")

	reader, err := sql.Open("sqlite", "file:"+filepath.Join(dataDir, "doorledger.db")+"?_pragma=busy_timeout(5000)&_pragma=query_only(1)")
	if err != nil {
		t.Fatal(err)
	}
	defer reader.Close()
	count := func(q string, args ...any) int {
		t.Helper()
		var n int
		if err := reader.QueryRow(q, args...).Scan(&n); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		return n
	}
	reserve := filepath.Join(dataDir, "space.reserve")
	awaitFile := func(want bool) {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for {
			_, err := os.Stat(reserve)
			if (err == nil) == want {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("reserve file there: %v, want %v", err == nil, want)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	awaitFile(true)

	// Before: a device's and a vendor's events are acknowledged and stored.
	sim := startSim(t, p, id, secret, t.TempDir())
	awaitApplied(t, sim, 1, doorledger.StateEnabled)
	unlock := func(n int) {
		t.Helper()
		for range n {
			if _, err := sim.Unlock(devicectl.EventMessage{}); err != nil {
				t.Fatal(err)
			}
		}
	}
	delivered := func(within time.Duration) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), within)
		defer cancel()
		if err := sim.AwaitDelivered(ctx); err != nil {
			t.Fatalf("%d events undelivered: %v\nportal log:\n%s", sim.Undelivered(), err, p.Stderr.String())
		}
	}
	unlock(20)
	delivered(20 * time.Second)
	vendorBatch := func(from, n int) string {
		var evs []string
		for i := from; i < from+n; i++ {
			evs = append(evs, fmt.Sprintf(`{"device_id":%d,"event_id":"acme-%d","occurred_at":%q,"method":"courier_app","actor_ref":"pkg %d","result":"granted"}`,
				id, i, time.Now().UTC().Format(time.RFC3339), i))
		}
		return `{"events":[` + strings.Join(evs, ",") + `]}`
	}
	if status, answer, _ := postVendor(t, p, vendorID, vendorKey, vendorBatch(0, 5)); status != http.StatusOK {
		t.Fatalf("vendor events before: %d %s", status, answer)
	}
	const before = 25
	if n := count(`SELECT count(*) FROM unlock_events WHERE device_id = ?`, id); n != before {
		t.Fatalf("%d events stored before the disk filled, want %d", n, before)
	}

	// The disk fills up: a file takes every byte left (or the database may
	// grow by 1 MiB only, under the floor).
	filler := filepath.Join(mnt, "filler")
	filled := time.Now()
	switch mode {
	case "tmpfs":
		n, err := fill(filler)
		if !errors.Is(err, syscall.ENOSPC) {
			t.Fatalf("filler: %d bytes, then %v; want ENOSPC", n, err)
		}
		t.Logf("filler took %d bytes in %v", n, time.Since(filled).Round(time.Millisecond))
	default:
		var pages int64
		reader.QueryRow(`PRAGMA page_count`).Scan(&pages)
		if err := appDB.SetMaxPages(context.Background(), pages+256); err != nil {
			t.Fatal(err)
		}
	}
	// Managers and admins see the banner, within a check's second.
	awaitPage(t, mgr, device, bannerMark)
	bannerAt := time.Since(filled)
	awaitFile(false) // the reserve was released

	// The vendor's batch: 503 with Retry-After and a JSON reason.
	status, answer, header := postVendor(t, p, vendorID, vendorKey, vendorBatch(5, 5))
	if status != http.StatusServiceUnavailable || header.Get("Retry-After") == "" || !strings.Contains(answer, `"reason":"unavailable"`) {
		t.Fatalf("vendor events on a full disk: %d Retry-After %q %s", status, header.Get("Retry-After"), answer)
	}
	t.Logf("vendor on a full disk: %d, Retry-After: %s, %s", status, header.Get("Retry-After"), strings.TrimSpace(answer))

	// The device's events: not acknowledged, kept by the device.
	unlock(10)
	for end := time.Now().Add(3 * time.Second); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
		if u := sim.Undelivered(); u != 10 {
			t.Fatalf("%d events undelivered on a full disk, want all 10 kept by the device", u)
		}
	}
	if n := count(`SELECT count(*) FROM unlock_events WHERE device_id = ?`, id); n != before {
		t.Fatalf("%d events stored while the disk was full, want %d", n, before)
	}

	// The revoke commits, and the device's confirmation too.
	start := time.Now()
	if status, _, body := mgr.Post(device, device+"/revoke", nil); status != http.StatusSeeOther {
		t.Fatalf("revoke on a full disk: %d\n%s\nportal log:\n%s", status, body, p.Stderr.String())
	}
	revokeTook := time.Since(start)
	awaitApplied(t, sim, 2, doorledger.StateDisabled)
	awaitConfirmed(t, reader, id, 2)
	confirmedAfter := time.Since(start)
	awaitPage(t, mgr, device, `data-status="confirmed"`)

	// Pages serve, with the banner for managers and admins.
	for _, c := range []struct {
		who  *Client
		path string
	}{{mgr, "/"}, {mgr, "/buildings/" + building}, {mgr, "/devices"}, {admin, "/"}, {admin, "/outbox"}} {
		status, body := c.who.Get(c.path)
		if status != http.StatusOK || !strings.Contains(body, bannerMark) {
			t.Errorf("GET %s on a full disk: %d, banner %v", c.path, status, strings.Contains(body, bannerMark))
		}
	}
	if status, _ := get(t, p.URL+"/healthz"); status != http.StatusOK {
		t.Errorf("/healthz on a full disk: %d", status)
	}
	// One alert per admin for the episode.
	alerts := `SELECT count(*) FROM outbox WHERE kind = 'alert' AND subject LIKE '%data disk is full%'`
	admins := count(`SELECT count(*) FROM users WHERE role = 'admin' AND disabled = 0`)
	if n := count(alerts); n != admins {
		t.Fatalf("%d disk-full alerts for %d admins", n, admins)
	}

	// Space returns.
	freed := time.Now()
	switch mode {
	case "tmpfs":
		if err := os.Remove(filler); err != nil {
			t.Fatal(err)
		}
	default:
		if err := appDB.SetMaxPages(context.Background(), 0); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		_, body := mgr.Get(device)
		if !strings.Contains(body, bannerMark) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the banner is still shown 20 s after space returned")
		}
		time.Sleep(50 * time.Millisecond)
	}
	bannerGone := time.Since(freed)
	awaitFile(true) // the reserve is back
	if status, answer, _ := postVendor(t, p, vendorID, vendorKey, vendorBatch(5, 5)); status != http.StatusOK || !strings.Contains(answer, `"inserted":5`) {
		t.Fatalf("vendor events after space returned: %d %s", status, answer)
	}
	vendorAfter := time.Since(freed)
	delivered(30 * time.Second)
	deviceAfter := time.Since(freed)
	unlock(5)
	delivered(20 * time.Second)

	const total = before + 5 + 10 + 5
	if n, distinct := count(`SELECT count(*) FROM unlock_events WHERE device_id = ?`, id),
		count(`SELECT count(DISTINCT event_id) FROM unlock_events WHERE device_id = ?`, id); n != total || distinct != total {
		t.Fatalf("%d events stored (%d distinct), want %d: every acknowledged event once", n, distinct, total)
	}
	if n := count(alerts); n != admins {
		t.Fatalf("%d disk-full alerts after the episode, want %d", n, admins)
	}
	if n := count(`SELECT count(*) FROM disk_full_episodes WHERE ended_at IS NOT NULL`); n != 1 {
		t.Fatalf("%d ended disk-full episodes, want 1", n)
	}
	t.Logf("disk filled → banner %v; revoke answered in %v, confirmed by the device %v after it was asked",
		bannerAt.Round(time.Millisecond), revokeTook.Round(time.Millisecond), confirmedAfter.Round(time.Millisecond))
	t.Logf("space freed → banner gone %v, vendor batch accepted %v, device's 10 kept events delivered %v",
		bannerGone.Round(time.Millisecond), vendorAfter.Round(time.Millisecond), deviceAfter.Round(time.Millisecond))
	t.Logf("%d events acknowledged, %d stored, each once; %d alert(s) to %d admin(s)", total, total, admins, admins)

	reader.Close()
	p.Stop(t)
	var out, errb strings.Builder
	if err := run(context.Background(), []string{"audit", "verify", "-data", dataDir}, func(string) string { return "" }, &out, &errb); err != nil {
		t.Fatalf("audit verify: %v\n%s%s", err, out.String(), errb.String())
	}
	t.Logf("audit verify: %s", strings.TrimSpace(out.String()))
}

// fill writes zeros to path until the file system refuses, and returns how
// many bytes it took and the error that stopped it.
func fill(path string) (int64, error) {
	f, err := os.Create(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	buf := make([]byte, 1<<20)
	var n int64
	for {
		w, err := f.Write(buf)
		n += int64(w)
		if err != nil {
			return n, err
		}
	}
}

// TestSlowDiskFullExternalBroker: with an external Mosquitto, events the
// portal refuses for a full disk (here SQLite's page limit) wait in the
// portal's session, but the device's report behind them goes through: a
// revoke made during the episode is confirmed during it. Once space returns
// the events are stored, each once.
func TestSlowDiskFullExternalBroker(t *testing.T) {
	dir := t.TempDir()
	p := MustStartPortal(t, dir)
	mgr, device, id, secret := consentedDevice(t, p)
	p.Stop(t)
	m := startMosquitto(t, dir)
	var appDB *sqlite.DB
	p = mustStartPortalHook(t, dir, func(a *app) { appDB = a.sqliteDB() }, m.env, "-mqtt-url", "mqtt://"+m.addr, "-disk-floor-mb", "4")
	p.MQTT = "mqtt://" + m.addr
	lastPortal = p
	mgr.base = p.URL
	reader, err := sql.Open("sqlite", "file:"+filepath.Join(dir, "doorledger.db")+"?_pragma=busy_timeout(5000)&_pragma=query_only(1)")
	if err != nil {
		t.Fatal(err)
	}
	defer reader.Close()
	sim := startSim(t, p, id, secret, t.TempDir())
	awaitApplied(t, sim, 1, doorledger.StateEnabled)

	var pages int64
	reader.QueryRow(`PRAGMA page_count`).Scan(&pages)
	if err := appDB.SetMaxPages(context.Background(), pages+256); err != nil {
		t.Fatal(err)
	}
	awaitPage(t, mgr, device, bannerMark)
	const openings = 3
	for range openings {
		if _, err := sim.Unlock(devicectl.EventMessage{}); err != nil {
			t.Fatal(err)
		}
	}
	// The broker took them (the device's PUBACK is Mosquitto's); the portal
	// refuses them until space returns.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := sim.AwaitDelivered(ctx); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if status, _, body := mgr.Post(device, device+"/revoke", nil); status != http.StatusSeeOther {
		t.Fatalf("revoke on a full disk: %d\n%s", status, body)
	}
	awaitApplied(t, sim, 2, doorledger.StateDisabled)
	awaitConfirmed(t, reader, id, 2)
	t.Logf("revoke confirmed %v after it was asked, with %d refused events ahead of the report", time.Since(start).Round(time.Millisecond), openings)
	var stored int
	reader.QueryRow(`SELECT count(*) FROM unlock_events WHERE device_id = ?`, id).Scan(&stored)
	if stored != 0 {
		t.Fatalf("%d events stored on a full disk", stored)
	}

	freed := time.Now()
	if err := appDB.SetMaxPages(context.Background(), 0); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		var n, distinct int
		reader.QueryRow(`SELECT count(*), count(DISTINCT event_id) FROM unlock_events WHERE device_id = ?`, id).Scan(&n, &distinct)
		if n == openings && distinct == openings {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d events (%d distinct) stored 30 s after space returned, want %d", n, distinct, openings)
		}
	}
	t.Logf("space returned → the %d events stored %v later", openings, time.Since(freed).Round(time.Millisecond))
}
