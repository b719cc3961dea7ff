package main

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/doorledger/doorledger"
	"github.com/doorledger/doorledger/devicectl"
)

// consentedDevice walks the consent story over HTTP (building, roster, installer,
// request, signature) and issues the device a credential; it returns the
// manager's client, the device page path, the device id and its secret.
func consentedDevice(t *testing.T, p *Portal) (*Client, string, int64, string) {
	t.Helper()
	admin := NewClient(t, p.URL)
	admin.MustLogin(testAdminEmail, p.AdminPass)
	_, building, _ := admin.Post("/buildings/new", "/buildings", url.Values{"name": {"Elm Court"}, "address": {"2 Elm St"}, "timezone": {"America/Chicago"}})
	admin.Post(building, building+"/signers", url.Values{"signer_name": {"Ana Owner"}, "signer_title": {"Owner"}, "signer_email": {"ana@example.com"}})
	for _, u := range []url.Values{
		{"name": {"Mia Manager"}, "email": {"mia@example.com"}, "role": {"manager"}, "password": {"correct horse battery"}},
		{"name": {"Ivan Installer"}, "email": {"ivan@example.com"}, "role": {"installer"}, "company": {"FastKey"}, "password": {"correct horse battery"}},
	} {
		admin.Post("/users/new", "/users", u)
		_, body := admin.Get("/users")
		id := regexp.MustCompile(`href="/users/(\d+)">` + regexp.QuoteMeta(u.Get("name"))).FindStringSubmatch(body)[1]
		admin.Post(building, building+"/grants", url.Values{"user_id": {id}})
	}
	inst := NewClient(t, p.URL)
	inst.MustLogin("ivan@example.com", "correct horse battery")
	_, body := inst.Get(building + "/consents/new")
	signerID := regexp.MustCompile(`<option value="(\d+)"[^>]*>Ana Owner`).FindStringSubmatch(body)[1]
	status, _, body := inst.PostMultipart(building+"/consents/new", building+"/consents", url.Values{"vendor": {"Acme"}, "model": {"K2"}, "serial": {"SN-9"},
		"location": {"lobby panel"}, "opens": {"lobby door"}, "signer_id": {signerID}, "mode": {"link"}}, nil)
	if status != http.StatusSeeOther {
		t.Fatalf("request: %d\n%s", status, body)
	}
	sign := outboxLink(t, admin, "/sign/")
	signer := NewClient(t, p.URL)
	_, body = signer.Get(sign)
	terms := regexp.MustCompile(`name="terms_sha256" value="([0-9a-f]{64})"`).FindStringSubmatch(body)[1]
	if status, _, body := signer.Post(sign, sign, url.Values{"terms_sha256": {terms}, "typed_name": {"Ana Owner"}, "agree": {"1"}, "signature": {signatureDataURL(t)}}); status != http.StatusOK {
		t.Fatalf("sign: %d\n%s", status, body)
	}
	mgr := NewClient(t, p.URL)
	mgr.MustLogin("mia@example.com", "correct horse battery")
	_, body = mgr.Get(building)
	m := regexp.MustCompile(`href="(/devices/(\d+))"`).FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("no device on the building page:\n%s", body)
	}
	device := m[1]
	secret := mgr.MustIssueSecret(device)
	var id int64
	for _, c := range m[2] {
		id = id*10 + int64(c-'0')
	}
	return mgr, device, id, secret
}

func startSim(t *testing.T, p *Portal, id int64, secret, stateDir string) *devicectl.SimDevice {
	t.Helper()
	sim, err := devicectl.NewSimDevice(devicectl.SimConfig{BrokerURL: p.MQTT, DeviceID: id, Secret: secret, StateDir: stateDir,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	// Start's context is the device's lifetime, not a start-up deadline.
	if err := sim.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sim.Stop(context.Background()) })
	return sim
}

var lastPortal *Portal

func awaitApplied(t *testing.T, sim *devicectl.SimDevice, version int64, state doorledger.DeviceState) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	got, err := sim.AwaitVersion(ctx, version)
	if err != nil || got.State != state {
		t.Logf("portal log:\n%s", lastPortal.Stderr.String())
		t.Fatalf("device applied %+v (%v), want version %d %s", got, err, version, state)
	}
}

// awaitPage polls a page until it contains want.
func awaitPage(t *testing.T, c *Client, path, want string) string {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		_, body := c.Get(path)
		if strings.Contains(body, want) {
			return body
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s never showed %q:\n%s", path, want, body)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestEndToEndRevoke(t *testing.T) {
	dataDir := t.TempDir()
	p := MustStartPortal(t, dataDir)
	lastPortal = p
	mgr, device, id, secret := consentedDevice(t, p)
	simState := t.TempDir()

	// The device connects and receives the desired state the signature set: enabled.
	sim := startSim(t, p, id, secret, simState)
	awaitApplied(t, sim, 1, doorledger.StateEnabled)
	awaitPage(t, mgr, device, `data-status="confirmed"`)

	// Revoke: the device disables and the page shows it confirmed.
	if status, _, body := mgr.Post(device, device+"/revoke", nil); status != http.StatusSeeOther {
		t.Fatalf("revoke: %d\n%s", status, body)
	}
	awaitApplied(t, sim, 2, doorledger.StateDisabled)
	body := awaitPage(t, mgr, device, `data-status="confirmed"`)
	if !strings.Contains(body, "revoked by a manager") || !strings.Contains(body, "confirmed") {
		t.Fatalf("command history lacks the confirmed revoke:\n%s", body)
	}

	// Offline delivery: enable while the device is offline; it gets it on reconnect.
	ctx := context.Background()
	if err := sim.Offline(ctx); err != nil {
		t.Fatal(err)
	}
	mgr.Post(device, device+"/enable", nil)
	awaitPage(t, mgr, device, `data-status="pending"`)
	if err := sim.Online(); err != nil {
		t.Fatal(err)
	}
	awaitApplied(t, sim, 3, doorledger.StateEnabled)
	awaitPage(t, mgr, device, `data-status="confirmed"`)

	// A portal stopped mid-revoke resumes after restart and never shows
	// "confirmed" without the device's reply.
	if err := sim.Offline(ctx); err != nil {
		t.Fatal(err)
	}
	mgr.Post(device, device+"/revoke", nil)
	p.Stop(t)
	p = MustStartPortal(t, dataDir)
	mgr.base = p.URL // the session survives the restart: no sign-in needed
	awaitPage(t, mgr, device, `data-status="pending"`)
	sim.Stop(ctx)
	sim = startSim(t, p, id, secret, simState)
	awaitApplied(t, sim, 4, doorledger.StateDisabled)
	awaitPage(t, mgr, device, `data-status="confirmed"`)

	// A wrong secret is refused by the broker.
	bad, _ := devicectl.NewSimDevice(devicectl.SimConfig{BrokerURL: p.MQTT, DeviceID: id, Secret: "wrong", Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err := bad.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer bad.Stop(ctx)
	short, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if err := bad.AwaitConnected(short); err == nil {
		t.Fatal("a device with a wrong secret connected")
	}
}
