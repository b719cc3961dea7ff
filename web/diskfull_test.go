package web_test

import (
	"bytes"
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/doorledger/doorledger/devicectl"
)

// TestDiskFullAnswers: while the disk is full (here: free space below a floor
// no disk reaches), a vendor's batch is refused with 503, Retry-After and the
// reason "unavailable", nothing written; admins and managers see the banner on
// every page, installers do not. Once space returns, the banner goes and the
// same batch is recorded.
func TestDiskFullAnswers(t *testing.T) {
	r := newVendorRig(t)
	ctx := context.Background()
	space := r.db.Space()
	space.Floor = 1 << 62
	body := batchJSON(t, apiEvent(r.device.ID, "full-1"), apiEvent(r.device.ID, "full-2"))
	before := r.written(t)

	req, _ := http.NewRequest(http.MethodPost, r.http.URL+r.eventsPath(), bytes.NewReader(body))
	req.Header.Set(devicectl.SignatureHeader, sign(r.key, 0, body))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") != "30" {
		t.Fatalf("batch on a full disk: %d, Retry-After %q; want 503 and 30", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	a := r.call(t, r.eventsPath(), bytes.NewReader(body), sign(r.key, time.Second, body))
	if a.Status != http.StatusServiceUnavailable || a.Reason != "unavailable" || !strings.Contains(a.Error, "disk is full") {
		t.Fatalf("batch on a full disk: %d %s", a.Status, a.raw)
	}
	if after := r.written(t); after != before {
		t.Errorf("a refused batch wrote: %s, was %s", after, before)
	}

	banner := `id="portal-notice"`
	for _, who := range []struct {
		email string
		sees  bool
	}{{r.admin.Email, true}, {r.managerA.Email, true}, {r.instA.Email, false}} {
		c := r.client()
		c.login(who.email)
		_, page := c.get("/buildings")
		if strings.Contains(page, banner) != who.sees {
			t.Errorf("%s: banner shown %v, want %v", who.email, !who.sees, who.sees)
		}
	}

	space.Floor = 0
	if err := space.Check(ctx); err != nil {
		t.Fatal(err)
	}
	c := r.client()
	c.login(r.managerA.Email)
	if _, page := c.get("/buildings"); strings.Contains(page, banner) {
		t.Error("the banner is still shown once space returned")
	}
	if a := r.call(t, r.eventsPath(), bytes.NewReader(body), sign(r.key, 2*time.Second, body)); a.Status != http.StatusOK || a.Inserted != 2 {
		t.Errorf("batch once space returned: %d %s", a.Status, a.raw)
	}
}
