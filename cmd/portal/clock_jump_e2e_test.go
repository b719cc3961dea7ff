package main

import (
	"context"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/doorledger/doorledger"
	"github.com/doorledger/doorledger/internal/clocktest"
)

// TestEndToEndClockJump sets the portal's wall clock an hour forward and then
// an hour back while it runs, with a revoke and an enable waiting for their
// device across each jump (issue 19, clock jump; docs/reliability.md). The
// clock is the database's (DB.Now), which the pages and the mail dispatcher
// read too; the machine's clock is not moved, and the monotonic clock keeps
// running.
func TestEndToEndClockJump(t *testing.T) {
	const timeout = 5 * time.Second
	clock := &clocktest.Jumpable{}
	var a *app
	p := mustStartPortalHook(t, "", func(app *app) { app.sqliteDB().Now, a = clock.Now, app }, nil, "-command-timeout", timeout.String())
	lastPortal = p
	mgr, device, id, secret := consentedDevice(t, p)
	sim := startSim(t, p, id, secret, t.TempDir())
	awaitApplied(t, sim, 1, doorledger.StateEnabled)
	awaitPage(t, mgr, device, `data-status="confirmed"`)
	ctx := context.Background()
	sysctx := doorledger.NewSystemContext(ctx, "test")
	first, err := a.logs.SignHead(sysctx)
	if err != nil {
		t.Fatal(err)
	}

	command := func(version int64) *doorledger.Command {
		t.Helper()
		cmds, err := a.devices.FindCommands(sysctx, doorledger.CommandFilter{DeviceID: id})
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range cmds {
			if c.Version == version {
				return c
			}
		}
		t.Fatalf("no command of version %d", version)
		return nil
	}
	// latency reads the journal's and the page's latency of a confirmation.
	latency := func(version int64, body string) (journal time.Duration, page string) {
		t.Helper()
		var ms int64
		if err := a.sqliteDB().Reader().QueryRow(`SELECT json_extract(detail, '$.latency_ms') FROM audit_entries
			WHERE action = 'command.confirmed' AND json_extract(detail, '$.version') = ?`, version).Scan(&ms); err != nil {
			t.Fatal(err)
		}
		m := regexp.MustCompile(`confirmed by the device in ([^<.]+)`).FindStringSubmatch(body)
		if m == nil {
			t.Fatalf("page shows no latency:\n%s", body)
		}
		return time.Duration(ms) * time.Millisecond, m[1]
	}

	// An hour forward, a revoke waiting for its device (offline): not timed
	// out by the jump, on the page or in the database.
	if err := sim.Offline(ctx); err != nil {
		t.Fatal(err)
	}
	if status, _, body := mgr.Post(device, device+"/revoke", nil); status != http.StatusSeeOther {
		t.Fatalf("revoke: %d\n%s", status, body)
	}
	clock.Jump(time.Hour)
	_, body := mgr.Get(device)
	if strings.Contains(body, `data-status="not_confirmed"`) || strings.Contains(body, "not confirmed: the device has not answered") {
		t.Errorf("an hour forward, the revoke just made is shown not confirmed:\n%s", body)
	}
	if _, err := a.devices.ExpireUnconfirmed(sysctx, timeout); err != nil {
		t.Fatal(err)
	}
	if c := command(2); c.Status != doorledger.CommandPending && c.Status != doorledger.CommandSent {
		t.Errorf("an hour forward, the revoke just made is %s in the database", c.Status)
	}
	if err := sim.Online(); err != nil {
		t.Fatal(err)
	}
	awaitApplied(t, sim, 2, doorledger.StateDisabled)
	body = awaitPage(t, mgr, device, `data-status="confirmed"`)
	if j, pg := latency(2, body); j < 0 || j > time.Minute || strings.HasPrefix(pg, "-") || strings.Contains(pg, "h") {
		t.Errorf("revoke confirmed across an hour forward: latency %s in the journal, %q on the page; want what it took", j, pg)
	}
	ahead, err := a.logs.SignHead(sysctx) // dated an hour ahead
	if err != nil {
		t.Fatal(err)
	}

	// An hour back, an enable waiting for its device: timed out after the
	// time-out, not an hour later; its latency is not negative.
	if err := sim.Offline(ctx); err != nil {
		t.Fatal(err)
	}
	if status, _, body := mgr.Post(device, device+"/enable", nil); status != http.StatusSeeOther {
		t.Fatalf("enable: %d\n%s", status, body)
	}
	clock.Jump(-time.Hour)
	// The manager's session, last used "an hour from now", still works.
	awaitPage(t, mgr, device, `data-status="pending"`)
	awaitPage(t, mgr, device, `data-status="not_confirmed"`)
	deadline := time.Now().Add(30 * time.Second)
	for command(3).Status != doorledger.CommandNotConfirmed {
		if time.Now().After(deadline) {
			t.Fatalf("the enable is still %s 30 s after an hour back (time-out %s)", command(3).Status, timeout)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err := sim.Online(); err != nil {
		t.Fatal(err)
	}
	awaitApplied(t, sim, 3, doorledger.StateEnabled)
	body = awaitPage(t, mgr, device, `data-status="confirmed"`)
	if j, pg := latency(3, body); j < timeout || j > time.Minute || strings.HasPrefix(pg, "-") {
		t.Errorf("enable confirmed across an hour back: latency %s in the journal, %q on the page; want what it took (over %s)", j, pg, timeout)
	}

	// The log's heads keep their order in time, and the log verifies.
	last, err := a.logs.SignHead(sysctx)
	if err != nil {
		t.Fatal(err)
	}
	if last.Size <= ahead.Size || last.At.Before(ahead.At) || ahead.At.Before(first.At) {
		t.Errorf("heads of %d, %d and %d dated %s, %s and %s: want them in order", first.Size, ahead.Size, last.Size, first.At, ahead.At, last.At)
	}
	if v, err := a.logs.Verify(sysctx); err != nil || !v.OK() {
		t.Errorf("verify: %+v %v", v, err)
	}
}
