package main

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/doorledger/doorledger"
	"github.com/doorledger/doorledger/devicectl"
)

// A refused revoke end to end: a device on the embedded broker takes the revoke's
// version but stays enabled. Every page that shows the device says so, in
// red and in the same words; "Told to be" says disabled; the managers are
// mailed at once.
func TestEndToEndRefusedRevoke(t *testing.T) {
	p := MustStartPortal(t, t.TempDir())
	lastPortal = p
	mgr, device, id, secret := consentedDevice(t, p)
	sim, err := devicectl.NewSimDevice(devicectl.SimConfig{BrokerURL: p.MQTT, DeviceID: id, Secret: secret,
		Stuck: doorledger.StateEnabled, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	if err := sim.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sim.Stop(context.Background()) })
	awaitApplied(t, sim, 1, doorledger.StateEnabled)
	awaitPage(t, mgr, device, `data-status="confirmed"`)

	if status, _, body := mgr.Post(device, device+"/revoke", nil); status != http.StatusSeeOther {
		t.Fatalf("revoke: %d\n%s", status, body)
	}
	awaitApplied(t, sim, 2, doorledger.StateEnabled) // version 2 taken, still enabled

	const label = "disabled · device refused: still enabled"
	badge := regexp.MustCompile(`<span class="badge badge-danger"[^>]*data-status="refused"[^>]*>` + regexp.QuoteMeta(label) + `</span>`)
	body := awaitPage(t, mgr, device, `data-status="refused"`)
	if !badge.MatchString(body) {
		t.Errorf("device page lacks the red %q badge:\n%s", label, body)
	}
	told := regexp.MustCompile(`<dt>Told to be</dt>\s*<dd>\s*<span class="badge[^"]*"[^>]*>([^<]*)</span>\s*<small>version 2</small>`).FindStringSubmatch(body)
	if told == nil || !strings.HasPrefix(told[1], "disabled · ") {
		t.Errorf("\"Told to be\" = %q, want the desired state, disabled", told)
	}
	for _, want := range []string{
		`data-status="refused">device refused: still enabled after it received version 2; managers alerted</span>`,
		`data-command-status="refused">REFUSED by the device: still enabled</span>`,
		`the device refused it at`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("device page lacks %q", want)
		}
	}
	for _, wrong := range []string{`data-status="confirmed"`, "enabled · confirmed", `id="enable"`} {
		if strings.Contains(body, wrong) {
			t.Errorf("device page still shows %q", wrong)
		}
	}
	if !strings.Contains(body, `id="revoke"`) {
		t.Error("device page offers no Revoke button for a device that is still enabled")
	}

	// The building page's row and the Devices list: the same badge.
	building := regexp.MustCompile(`<a href="(/buildings/\d+)">`).FindStringSubmatch(body)[1]
	for _, page := range []string{building, "/devices"} {
		_, html := mgr.Get(page)
		if !badge.MatchString(html) {
			t.Errorf("%s lacks the red %q badge", page, label)
		}
		if strings.Contains(html, "enabled · confirmed") || strings.Contains(html, "disabled · confirmed") {
			t.Errorf("%s says confirmed", page)
		}
	}

	// The managers were mailed at once, well before the 30 s time-out.
	admin := NewClient(t, p.URL)
	admin.MustLogin(testAdminEmail, p.AdminPass)
	if _, outbox := admin.Get("/outbox"); !strings.Contains(outbox, "REFUSED to disable") {
		t.Errorf("no refusal alert in the outbox:\n%s", outbox)
	} else if strings.Contains(outbox, "did not confirm") {
		t.Errorf("the refusal was alerted as a time-out")
	}

	// A lockdown: the device takes version 3 and stays enabled; the
	// progress says so in red.
	lockdown := building + "/lockdown"
	if status, loc, body := mgr.Post(lockdown, lockdown, nil); status != http.StatusSeeOther || !strings.HasPrefix(loc, lockdown) {
		t.Fatalf("lockdown: %d %s\n%s", status, loc, body)
	}
	awaitApplied(t, sim, 3, doorledger.StateEnabled)
	deadline := time.Now().Add(20 * time.Second)
	for {
		_, html := mgr.Get(lockdown + "?started=1")
		if strings.Contains(html, `data-refused="1"`) && badge.MatchString(html) && strings.Contains(html, `data-confirmed="0"`) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the lockdown's progress never showed the refusal:\n%s", html)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// A command past its time-out reads the same on every list as on
// the device page: red "not confirmed", never amber "pending" (before, the
// device page said "not confirmed after 1m13s; managers alerted" while the
// building page and the Devices list said "enabled · pending").
func TestEndToEndNotConfirmedSameEverywhere(t *testing.T) {
	p := MustStartPortal(t, t.TempDir(), "-command-timeout", "1s")
	lastPortal = p
	mgr, device, _, _ := consentedDevice(t, p) // no device connects: the enable is never confirmed

	const label = "enabled · not confirmed"
	badge := regexp.MustCompile(`<span class="badge badge-danger"[^>]*data-status="not_confirmed"[^>]*>` + regexp.QuoteMeta(label) + `</span>`)
	body := awaitPage(t, mgr, device, `data-status="not_confirmed"`)
	if !badge.MatchString(body) {
		t.Errorf("device page lacks the red %q badge:\n%s", label, body)
	}
	building := regexp.MustCompile(`<a href="(/buildings/\d+)">`).FindStringSubmatch(body)[1]
	for _, page := range []string{building, "/devices"} {
		_, html := mgr.Get(page)
		if !badge.MatchString(html) || !strings.Contains(html, "not confirmed after ") {
			t.Errorf("%s lacks the red %q badge and its account:\n%s", page, label, html)
		}
		if strings.Contains(html, "enabled · pending") {
			t.Errorf("%s says pending", page)
		}
	}
}
