package web_test

import (
	"fmt"
	"html"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/doorledger/doorledger"
	"github.com/doorledger/doorledger/db/sqlite"
)

// subscribe makes a subscription to anomalies (for the access matrix).
func (f *fixture) subscribe(t *testing.T) *doorledger.WebhookSubscription {
	t.Helper()
	sub, _, err := sqlite.NewWebhookService(f.db).CreateWebhookSubscription(sys(), doorledger.WebhookSubscriptionInput{
		Name: fmt.Sprintf("SIEM %d", nextID()), URL: "https://siem.example/hooks", EventTypes: []string{doorledger.EventUnlockAnomaly}})
	if err != nil {
		t.Fatal(err)
	}
	return sub
}

// An admin subscribes a system: bad input comes back beside its field with
// what was typed; the secret is shown once, in the answer that made it; a
// delivery shows the receiver's answer and can be replayed; the
// subscription can be disabled.
func TestWebhooksPage(t *testing.T) {
	f := newFixture(t)
	admin := f.client()
	admin.login(f.admin.Email)

	resp, page := admin.post("/webhooks", url.Values{"name": {"Building PMS"}, "url": {"http://pms.example.com/in"}, "event_type": {doorledger.EventConsentSigned}}, "")
	if resp.StatusCode != http.StatusUnprocessableEntity && resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("bad URL: %d", resp.StatusCode)
	}
	urlField := regexp.MustCompile(`(?s)<input[^>]*name="url"[^>]*>.{0,400}?field-error[^>]*>([^<]*)<`).FindStringSubmatch(page)
	if urlField == nil || !strings.Contains(urlField[0], `value="http://pms.example.com/in"`) || !strings.Contains(urlField[1], "https") ||
		!strings.Contains(page, `value="Building PMS"`) || !regexp.MustCompile(`value="consent.signed"\s+checked`).MatchString(page) {
		t.Fatalf("the form was not re-rendered with the error beside the URL and the input kept:\n%s", page)
	}
	resp, page = admin.post("/webhooks", url.Values{"name": {"Building PMS"}, "url": {"https://pms.example.com/in"}}, "")
	if resp.StatusCode == http.StatusOK || !strings.Contains(page, "Choose at least one event type.") {
		t.Fatalf("no event type: %d\n%s", resp.StatusCode, page)
	}

	resp, page = admin.post("/webhooks", url.Values{"name": {"Building PMS"}, "url": {"https://pms.example.com/in"},
		"event_type": {doorledger.EventUnlockAnomaly, doorledger.EventDeviceRevoked}}, "")
	secret := regexp.MustCompile(`dlwh_[A-Za-z0-9_-]{43}`).FindString(page)
	if resp.StatusCode != http.StatusOK || secret == "" || !strings.Contains(page, "shown once") {
		t.Fatalf("created: %d, secret %q\n%s", resp.StatusCode, secret, page)
	}
	if _, page := admin.get("/webhooks"); strings.Contains(page, secret) || !strings.Contains(page, "Building PMS") ||
		!strings.Contains(page, "device.revoked, unlock.anomaly") {
		t.Fatalf("the listing shows the secret, or not the subscription:\n%s", page)
	}

	// An event, a failed attempt with the receiver's answer.
	hooks := sqlite.NewWebhookService(f.db)
	must(sqlite.NewUnlockService(f.db).RecordUnlocksResult(sys(), []doorledger.UnlockEvent{{BuildingID: f.A.ID, DeviceRef: "GHOST-9",
		EventID: "page-1", OccurredAt: time.Now(), Method: "keypad", Result: doorledger.UnlockGranted}}))(t)
	d := must(hooks.PendingWebhookDeliveries(sys(), 10))(t)[0]
	must(hooks.RecordWebhookAttempt(sys(), d.ID, doorledger.WebhookAttempt{Status: 502, Excerpt: "<h1>Bad gateway</h1>", Err: "HTTP 502"}, time.Minute))(t)
	_, page = admin.get("/webhooks?state=retrying")
	row := regexp.MustCompile(`(?s)<tr id="delivery-` + fmt.Sprint(d.ID) + `".*?</tr>`).FindString(page)
	for _, want := range []string{"unlock.anomaly", d.EventID, "retrying", "HTTP 502", html.EscapeString("<h1>Bad gateway</h1>"), fmt.Sprintf(`action="/webhooks/deliveries/%d/replay"`, d.ID)} {
		if !strings.Contains(row, want) {
			t.Errorf("the delivery row lacks %q:\n%s", want, row)
		}
	}
	if _, page := admin.get("/webhooks?state=delivered"); strings.Contains(page, d.EventID) {
		t.Error("a retrying delivery is listed as delivered")
	}
	if resp, _ := admin.post(fmt.Sprintf("/webhooks/deliveries/%d/replay", d.ID), nil, ""); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("replay: %d", resp.StatusCode)
	}
	if p := must(hooks.PendingWebhookDeliveries(sys(), 10))(t); len(p) != 1 || p[0].Attempts != 0 || p[0].EventID != d.EventID {
		t.Fatalf("after the replay: %+v", p)
	}
	if resp, _ := admin.post(fmt.Sprintf("/webhooks/deliveries/%d/replay", d.ID), url.Values{}, "-"); resp.StatusCode != http.StatusForbidden {
		t.Fatalf("a replay without the CSRF token: %d", resp.StatusCode)
	}

	if resp, _ := admin.post(fmt.Sprintf("/webhooks/%d/disable", d.SubscriptionID), nil, ""); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("disable: %d", resp.StatusCode)
	}
	resp, page = admin.post(fmt.Sprintf("/webhooks/%d/disable", d.SubscriptionID), nil, "")
	if resp.StatusCode != http.StatusConflict || !strings.Contains(page, "disabled already") {
		t.Fatalf("disabled twice: %d", resp.StatusCode)
	}
}
