package main

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/doorledger/doorledger"
	"github.com/doorledger/doorledger/devicectl"
)

// TestEndToEndOutboundEvents is an admin subscribing a property-management
// system to device and consent events through the real portal: the consent
// story and a revoke reach the receiver, signed with the secret the admin
// was shown once, each event once, and the deliveries page shows them
// delivered. The portal runs with -webhooks-allow-private: the receiver is
// on this machine.
func TestEndToEndOutboundEvents(t *testing.T) {
	var (
		mu     sync.Mutex
		secret []byte
		got    []doorledger.Event
		forged int
	)
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		defer mu.Unlock()
		if err := devicectl.VerifySignature(r.Header.Get(devicectl.SignatureHeader), body, [][]byte{secret}, time.Now(), 0); err != nil {
			forged++
			http.Error(w, err.Error(), http.StatusUnauthorized)
			return
		}
		var ev doorledger.Event
		if err := json.Unmarshal(body, &ev); err != nil || ev.ID != r.Header.Get(doorledger.EventIDHeader) {
			http.Error(w, "bad event", http.StatusBadRequest)
			return
		}
		got = append(got, ev)
	}))
	defer recv.Close()

	p := MustStartPortal(t, "", "-webhooks-allow-private")
	admin := NewClient(t, p.URL)
	admin.MustLogin(testAdminEmail, p.AdminPass)
	status, _, body := admin.Post("/webhooks", "/webhooks", url.Values{"name": {"Building PMS"}, "url": {recv.URL + "/doorledger"},
		"event_type": {doorledger.EventConsentSigned, doorledger.EventDeviceEnabled, doorledger.EventDeviceRevoked}})
	m := regexp.MustCompile(`\(shown once\):</strong> <code class="hash">(dlwh_[A-Za-z0-9_-]+)</code>`).FindStringSubmatch(body)
	if status != http.StatusOK || m == nil {
		t.Fatalf("subscribe: %d\n%s", status, body)
	}
	mu.Lock()
	secret = []byte(m[1])
	mu.Unlock()

	mgr, device, id, _ := consentedDevice(t, p)
	if status, _, body := mgr.Post(device, device+"/revoke", nil); status != http.StatusSeeOther {
		t.Fatalf("revoke: %d\n%s", status, body)
	}
	want := []string{doorledger.EventConsentSigned, doorledger.EventDeviceEnabled, doorledger.EventDeviceRevoked}
	var types []string
	for deadline := time.Now().Add(20 * time.Second); ; {
		mu.Lock()
		types = types[:0]
		for _, ev := range got {
			types = append(types, ev.Type)
		}
		n := len(got)
		mu.Unlock()
		if n >= len(want) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the receiver got %v; want %v", types, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
	slices.Sort(types)
	sorted := slices.Clone(want)
	slices.Sort(sorted)
	mu.Lock()
	defer mu.Unlock()
	if !slices.Equal(types, sorted) || forged != 0 {
		t.Fatalf("the receiver got %v (%d forged); want %v once each", types, forged, want)
	}
	for _, ev := range got {
		if ev.Type == doorledger.EventDeviceRevoked && ev.ObjectID != id {
			t.Fatalf("revoke event %+v; want device %d", ev, id)
		}
	}
	mu.Unlock()
	// The answer is recorded just after the receiver has it.
	delivered := regexp.MustCompile(`<tr id="delivery-\d+" class="delivery delivery-delivered">`)
	for deadline := time.Now().Add(10 * time.Second); ; {
		_, page := admin.Get("/webhooks?state=delivered")
		n := len(delivered.FindAllString(page, -1))
		if n == len(want) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d delivered on the page; want %d\n%s", n, len(want), page)
		}
		time.Sleep(20 * time.Millisecond)
	}
	mu.Lock()
}
