package dbtest

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/doorledger/doorledger"
)

// Outbound events. The group "webhooks" needs only the consent world's
// services; "webhookevents", every event source (devices, their reports,
// unlocks), so a backend runs it once it has them all.
var webhookTests = []test{
	{"WebhookSubscriptionsAdminsOnly", testWebhookSubscriptionsAdminsOnly},
	{"WebhookBackoffWindowAndReplay", testWebhookBackoffWindowAndReplay},
	{"WebhookDisableStopsDeliveries", testWebhookDisableStopsDeliveries},
	{"WebhookStats", testWebhookStats},
}

var webhookEventTests = []test{
	{"WebhookEventsQueuedWithTheirChange", testWebhookEventsQueuedWithTheirChange},
}

// hookWorld is a world with an admin, who manages subscriptions.
type hookWorld struct {
	Services
	Admin *doorledger.User
}

func newHookWorld(t testing.TB, s Services, admin *doorledger.User) hookWorld {
	t.Helper()
	if admin == nil {
		var err error
		if admin, err = s.Users.CreateUser(sys(), doorledger.NewUser{Email: "hooks-admin@example.com", Name: "Admin",
			Role: doorledger.RoleAdmin, Password: "correct horse battery"}); err != nil {
			t.Fatal(err)
		}
	}
	return hookWorld{Services: s, Admin: admin}
}

// subscribe subscribes a receiver to types as the admin.
func (w hookWorld) subscribe(t testing.TB, name string, types ...string) (*doorledger.WebhookSubscription, string) {
	t.Helper()
	sub, secret, err := w.Webhooks.CreateWebhookSubscription(as(w.Admin), doorledger.WebhookSubscriptionInput{
		Name: name, URL: "https://pms.example.com/hooks/" + name, EventTypes: types})
	if err != nil {
		t.Fatal(err)
	}
	return sub, secret
}

// deliveries lists the deliveries f selects, oldest first.
func (w hookWorld) deliveries(t testing.TB, f doorledger.WebhookDeliveryFilter) []*doorledger.WebhookDelivery {
	t.Helper()
	list, err := w.Webhooks.FindWebhookDeliveries(as(w.Admin), f)
	if err != nil {
		t.Fatal(err)
	}
	for i, j := 0, len(list)-1; i < j; i, j = i+1, j-1 {
		list[i], list[j] = list[j], list[i]
	}
	return list
}

func (w hookWorld) pendingDeliveries(t testing.TB) []*doorledger.WebhookDelivery {
	t.Helper()
	list, err := w.Webhooks.PendingWebhookDeliveries(context.Background(), 100)
	if err != nil {
		t.Fatal(err)
	}
	return list
}

// Only admins see and change subscriptions; the secret is returned once,
// with its prefix, and never listed; bad input is refused per field.
func testWebhookSubscriptionsAdminsOnly(t *testing.T, newServices NewServices) {
	cw := NewConsentWorld(t, newServices(t))
	w := newHookWorld(t, cw.Services, nil)
	mgr := cw.Manager
	in := doorledger.WebhookSubscriptionInput{Name: "PMS", URL: "https://pms.example.com/in", EventTypes: []string{doorledger.EventDeviceRevoked}}
	_, _, err := w.Webhooks.CreateWebhookSubscription(as(mgr), in)
	WantCode(t, "a manager subscribes", err, doorledger.EFORBIDDEN)
	_, err = w.Webhooks.FindWebhookSubscriptions(as(mgr))
	WantCode(t, "a manager lists subscriptions", err, doorledger.EFORBIDDEN)
	_, err = w.Webhooks.FindWebhookDeliveries(as(mgr), doorledger.WebhookDeliveryFilter{})
	WantCode(t, "a manager lists deliveries", err, doorledger.EFORBIDDEN)

	_, _, err = w.Webhooks.CreateWebhookSubscription(as(w.Admin), doorledger.WebhookSubscriptionInput{
		Name: " ", URL: "http://pms.example.com/in", EventTypes: []string{"device.exploded"}})
	var e *doorledger.Error
	if !errors.As(err, &e) || e.Fields["name"] == "" || !strings.Contains(e.Fields["url"], "https") || !strings.Contains(e.Fields["event_types"], "device.exploded") {
		t.Fatalf("bad input: %v", err)
	}

	sub, secret, err := w.Webhooks.CreateWebhookSubscription(as(w.Admin), in)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(secret, doorledger.WebhookSecretPrefix) || len(secret) < 40 || sub.SecretFingerprint == "" || !sub.Active() {
		t.Fatalf("created %+v with secret %q", sub, secret)
	}
	if got := w.JournalEntry(t, 0, "webhook.subscribe"); got.ObjectID != sub.ID || strings.Contains(got.Detail, secret) {
		t.Fatalf("journal %+v", got)
	}
	subs, err := w.Webhooks.FindWebhookSubscriptions(as(w.Admin))
	if err != nil || len(subs) != 1 || subs[0].URL != in.URL || strings.Join(subs[0].EventTypes, ",") != doorledger.EventDeviceRevoked {
		t.Fatalf("listed %+v, %v", subs, err)
	}
}

// Every event type comes from a change's own transaction, once per
// subscription that takes it, with one event id per event, and a receiver
// can tell what happened from the body; a type nobody took queues nothing.
func testWebhookEventsQueuedWithTheirChange(t *testing.T, newServices NewServices) {
	w := NewDeviceWorld(t, newServices(t))
	h := newHookWorld(t, w.Services, w.Admin)
	all, _ := h.subscribe(t, "siem", doorledger.EventTypes...)
	revokes, _ := h.subscribe(t, "pms", doorledger.EventDeviceRevoked)
	woken := 0
	w.OnEvent(func() { woken++ })

	id, consent, _ := w.signedDevice(t) // consent.signed, device.enabled
	w.Report(t, id, doorledger.StateEnabled, 1)
	if _, err := w.Devices.SetDesiredState(as(w.MgrA), id, doorledger.StateDisabled, "moved out"); err != nil {
		t.Fatal(err)
	}
	w.Record(t, GhostEv(w.A, "ghost-1", w.UnlockWorld)) // unknown_device: an anomaly

	var types []string
	for _, d := range h.deliveries(t, doorledger.WebhookDeliveryFilter{SubscriptionID: all.ID}) {
		types = append(types, d.EventType)
		var ev doorledger.Event
		if err := json.Unmarshal(d.Payload, &ev); err != nil {
			t.Fatal(err)
		}
		if ev.ID != d.EventID || !strings.HasPrefix(ev.ID, "evt_") || ev.Type != d.EventType || ev.BuildingID != w.A || ev.CreatedAt.IsZero() || d.State() != doorledger.DeliveryPending {
			t.Fatalf("delivery %+v carries %+v", d, ev)
		}
		switch ev.Type {
		case doorledger.EventConsentSigned:
			if ev.ObjectID != consent || ev.JournalEntry == 0 || ev.Action != "consent.sign" {
				t.Fatalf("consent event %+v", ev)
			}
		case doorledger.EventDeviceRevoked:
			if ev.ObjectID != id || ev.Actor != w.MgrAEmail || !strings.Contains(string(ev.Data), "moved out") {
				t.Fatalf("revoke event %+v (%s)", ev, ev.Data)
			}
		case doorledger.EventUnlockAnomaly:
			if ev.ObjectType != "unlock_event" || !strings.Contains(string(ev.Data), doorledger.AnomalyUnknownDevice) || !strings.Contains(string(ev.Data), "ghost-1") {
				t.Fatalf("anomaly event %+v (%s)", ev, ev.Data)
			}
		}
	}
	want := []string{doorledger.EventConsentSigned, doorledger.EventDeviceEnabled, doorledger.EventDeviceConfirmed,
		doorledger.EventDeviceRevoked, doorledger.EventUnlockAnomaly}
	if got := strings.Join(types, " "); got != strings.Join(want, " ") {
		t.Fatalf("events of the subscription to every type: %s; want %s", got, strings.Join(want, " "))
	}
	pms := h.deliveries(t, doorledger.WebhookDeliveryFilter{SubscriptionID: revokes.ID})
	if len(pms) != 1 || pms[0].EventType != doorledger.EventDeviceRevoked {
		t.Fatalf("deliveries to the revoke subscription: %+v", pms)
	}
	for _, d := range h.deliveries(t, doorledger.WebhookDeliveryFilter{SubscriptionID: all.ID}) {
		if d.EventType == doorledger.EventDeviceRevoked && d.EventID != pms[0].EventID {
			t.Fatalf("one revoke, two event ids: %s and %s", d.EventID, pms[0].EventID)
		}
	}
	if woken == 0 {
		t.Fatal("the dispatcher was not woken after a commit that queued events")
	}
	pending := h.pendingDeliveries(t)
	if len(pending) != 6 || string(pending[0].Secret) == "" || !strings.HasPrefix(string(pending[0].Secret), doorledger.WebhookSecretPrefix) {
		t.Fatalf("pending: %d, the first with secret %q", len(pending), pending[0].Secret)
	}

	// A change refused (rolled back) queues nothing.
	before := len(h.deliveries(t, doorledger.WebhookDeliveryFilter{}))
	_, err := w.Devices.SetDesiredState(as(w.BoardA), id, doorledger.StateEnabled, "")
	WantCode(t, "a board member enables", err, doorledger.EFORBIDDEN)
	if after := len(h.deliveries(t, doorledger.WebhookDeliveryFilter{})); after != before {
		t.Fatalf("a refused change queued %d deliveries", after-before)
	}
}

// A failed delivery is due again after the wait it was given on the
// services' clock (stored: a restarted dispatcher keeps to it), never past
// its give-up time, and is given up on once an attempt fails at or after
// it; a replay sends it again with the same event id for another window.
func testWebhookBackoffWindowAndReplay(t *testing.T, newServices NewServices) {
	cw := NewConsentWorld(t, newServices(t))
	w := newHookWorld(t, cw.Services, nil)
	w.subscribe(t, "pms", doorledger.EventConsentSigned)
	start := *w.Now
	cw.Signed(t, "SN-HOOK-1")
	pending := w.pendingDeliveries(t)
	if len(pending) != 1 {
		t.Fatalf("pending %d", len(pending))
	}
	d := pending[0]
	if !d.GiveUpAt.Equal(start.Add(doorledger.WebhookRetryWindow)) {
		t.Fatalf("give up at %s; want %s", d.GiveUpAt, start.Add(doorledger.WebhookRetryWindow))
	}
	fail := doorledger.WebhookAttempt{Status: 503, Excerpt: strings.Repeat("é", doorledger.MaxResponseExcerpt), Err: "HTTP 503"}
	if state, err := w.Webhooks.RecordWebhookAttempt(context.Background(), d.ID, fail, time.Minute); err != nil || state != doorledger.DeliveryRetrying {
		t.Fatalf("record: %s, %v", state, err)
	}
	if p := w.pendingDeliveries(t); len(p) != 0 {
		t.Fatal("due again before its wait")
	}
	*w.Now = w.Now.Add(time.Minute)
	p := w.pendingDeliveries(t)
	if len(p) != 1 || p[0].Attempts != 1 || p[0].ResponseStatus != 503 || len(p[0].ResponseExcerpt) > doorledger.MaxResponseExcerpt ||
		!strings.HasPrefix(p[0].ResponseExcerpt, "éé") || strings.ContainsRune(p[0].ResponseExcerpt, '\uFFFD') || p[0].State() != doorledger.DeliveryRetrying {
		t.Fatalf("after the wait: %+v", p)
	}
	// A wait past the window is cut to its end: the last attempt is made then.
	if _, err := w.Webhooks.RecordWebhookAttempt(context.Background(), d.ID, fail, 48*time.Hour); err != nil {
		t.Fatal(err)
	}
	*w.Now = start.Add(doorledger.WebhookRetryWindow - time.Second)
	if p := w.pendingDeliveries(t); len(p) != 0 {
		t.Fatal("due before the window's end")
	}
	*w.Now = start.Add(doorledger.WebhookRetryWindow)
	if p := w.pendingDeliveries(t); len(p) != 1 {
		t.Fatal("not due at the window's end")
	}
	if state, _ := w.Webhooks.RecordWebhookAttempt(context.Background(), d.ID, fail, time.Minute); state != doorledger.DeliveryFailed {
		t.Fatalf("after the window: %s", state)
	}
	if p := w.pendingDeliveries(t); len(p) != 0 {
		t.Fatal("a failed delivery is pending")
	}
	failed := w.deliveries(t, doorledger.WebhookDeliveryFilter{State: doorledger.DeliveryFailed})
	if len(failed) != 1 || failed[0].Attempts != 3 || failed[0].LastError != "HTTP 503" || failed[0].FailedAt.IsZero() {
		t.Fatalf("failed: %+v", failed)
	}

	WantCode(t, "a manager replays", w.Webhooks.ReplayWebhookDelivery(as(cw.Manager), d.ID), doorledger.EFORBIDDEN)
	WantCode(t, "an unknown delivery replayed", w.Webhooks.ReplayWebhookDelivery(as(w.Admin), 9999), doorledger.ENOTFOUND)
	if err := w.Webhooks.ReplayWebhookDelivery(as(w.Admin), d.ID); err != nil {
		t.Fatal(err)
	}
	p = w.pendingDeliveries(t)
	if len(p) != 1 || p[0].EventID != d.EventID || string(p[0].Payload) != string(d.Payload) || p[0].Attempts != 0 ||
		!p[0].GiveUpAt.Equal(w.Now.Add(doorledger.WebhookRetryWindow)) {
		t.Fatalf("replayed: %+v", p)
	}
	if e := w.JournalEntry(t, cw.A.ID, "webhook.replay"); e.ObjectID != d.ID || e.Actor != w.Admin.Email {
		t.Fatalf("journal %+v", e)
	}
	if state, _ := w.Webhooks.RecordWebhookAttempt(context.Background(), d.ID, doorledger.WebhookAttempt{Status: 204}, time.Minute); state != doorledger.DeliveryDelivered {
		t.Fatalf("delivered: %s", state)
	}
	done := w.deliveries(t, doorledger.WebhookDeliveryFilter{State: doorledger.DeliveryDelivered})
	if len(done) != 1 || done[0].ResponseStatus != 204 || done[0].LastError != "" || done[0].DeliveredAt.IsZero() {
		t.Fatalf("delivered: %+v", done)
	}
	// A delivered event may be replayed too (the receiver lost it).
	if err := w.Webhooks.ReplayWebhookDelivery(as(w.Admin), d.ID); err != nil {
		t.Fatal(err)
	}
	if p := w.pendingDeliveries(t); len(p) != 1 || p[0].EventID != d.EventID {
		t.Fatalf("replayed after delivery: %+v", p)
	}
	// A delivery still to make is never pruned, however old.
	*w.Now = w.Now.Add(2 * doorledger.WebhookDeliveryRetention)
	if n, err := w.Webhooks.PruneWebhookDeliveries(context.Background(), doorledger.WebhookDeliveryRetention); err != nil || n != 0 {
		t.Fatalf("pruned %d pending, %v", n, err)
	}
}

// Disabling a subscription gives up on its undelivered events and queues no
// more; it cannot be replayed to.
func testWebhookDisableStopsDeliveries(t *testing.T, newServices NewServices) {
	cw := NewConsentWorld(t, newServices(t))
	w := newHookWorld(t, cw.Services, nil)
	sub, _ := w.subscribe(t, "pms", doorledger.EventConsentSigned)
	cw.Signed(t, "SN-HOOK-1")
	if err := w.Webhooks.DisableWebhookSubscription(as(w.Admin), sub.ID); err != nil {
		t.Fatal(err)
	}
	WantCode(t, "disabled twice", w.Webhooks.DisableWebhookSubscription(as(w.Admin), sub.ID), doorledger.ECONFLICT)
	WantCode(t, "an unknown subscription disabled", w.Webhooks.DisableWebhookSubscription(as(w.Admin), 9999), doorledger.ENOTFOUND)
	cw.Signed(t, "SN-HOOK-2")
	list := w.deliveries(t, doorledger.WebhookDeliveryFilter{})
	if len(list) != 1 || list[0].State() != doorledger.DeliveryFailed || !strings.Contains(list[0].LastError, "disabled") {
		t.Fatalf("after disabling: %+v", list)
	}
	if len(w.pendingDeliveries(t)) != 0 {
		t.Fatal("a disabled subscription's delivery is pending")
	}
	WantCode(t, "a replay to a disabled subscription", w.Webhooks.ReplayWebhookDelivery(as(w.Admin), list[0].ID), doorledger.ECONFLICT)
	// Done with, it is kept for the retention period, then pruned.
	if n, err := w.Webhooks.PruneWebhookDeliveries(context.Background(), doorledger.WebhookDeliveryRetention); err != nil || n != 0 {
		t.Fatalf("pruned %d at once, %v", n, err)
	}
	*w.Now = w.Now.Add(doorledger.WebhookDeliveryRetention + time.Second)
	if n, err := w.Webhooks.PruneWebhookDeliveries(context.Background(), doorledger.WebhookDeliveryRetention); err != nil || n != 1 {
		t.Fatalf("pruned %d after the retention, %v", n, err)
	}
	subs, _ := w.Webhooks.FindWebhookSubscriptions(as(w.Admin))
	if len(subs) != 1 || subs[0].Active() {
		t.Fatalf("subscriptions: %+v", subs)
	}
}

// The outbound events' figures follow the deliveries: the backlog and its
// oldest's age, the failing ones by subscription and reason, those given up
// on after the retry window (not those of a disabled subscription); a
// replay takes one back to the backlog. Admins and the system only.
func testWebhookStats(t *testing.T, newServices NewServices) {
	cw := NewConsentWorld(t, newServices(t))
	w := newHookWorld(t, cw.Services, nil)
	pms, _ := w.subscribe(t, "pms", doorledger.EventConsentSigned)
	siem, _ := w.subscribe(t, "siem", doorledger.EventConsentSigned)
	_, err := w.Ops.WebhookStats(as(cw.Manager))
	WantCode(t, "a manager reads the webhook figures", err, doorledger.EFORBIDDEN)
	read := func() *doorledger.WebhookStats { return must(w.Ops.WebhookStats(sys()))(t) }
	if st := read(); st.Pending != 0 || st.OldestPending != 0 || len(st.Failing) != 0 || len(st.GivenUp) != 0 {
		t.Fatalf("figures with nothing queued: %+v", st)
	}

	start := *w.Now
	cw.Signed(t, "SN-HOOK-STATS")
	*w.Now = start.Add(10 * time.Minute)
	if st := read(); st.Pending != 2 || st.OldestPending != 10*time.Minute {
		t.Fatalf("two deliveries queued 10 minutes ago: %d pending, oldest %v", st.Pending, st.OldestPending)
	}
	byTo := map[int64]*doorledger.WebhookDelivery{}
	for _, d := range w.pendingDeliveries(t) {
		byTo[d.SubscriptionID] = d
	}
	attempt := func(sub int64, a doorledger.WebhookAttempt) {
		t.Helper()
		if _, err := w.Webhooks.RecordWebhookAttempt(context.Background(), byTo[sub].ID, a, time.Minute); err != nil {
			t.Fatal(err)
		}
	}
	attempt(pms.ID, doorledger.WebhookAttempt{Status: 503, Err: "HTTP 503"})
	attempt(siem.ID, doorledger.WebhookAttempt{Err: "dial tcp: connection refused"})
	st := read()
	want := map[doorledger.WebhookFailures]bool{{SubscriptionID: pms.ID, Reason: "server_error", Deliveries: 1}: true,
		{SubscriptionID: siem.ID, Reason: "no_answer", Deliveries: 1}: true}
	if len(st.Failing) != len(want) || !want[st.Failing[0]] || !want[st.Failing[1]] || st.Pending != 2 {
		t.Fatalf("after a 503 and no answer: %+v", st)
	}

	// The window ends: the receiver's last failure gives the delivery up.
	*w.Now = start.Add(doorledger.WebhookRetryWindow)
	attempt(pms.ID, doorledger.WebhookAttempt{Status: 404, Err: "HTTP 404"})
	st = read()
	if st.Pending != 1 || st.GivenUp[pms.ID] != 1 || len(st.GivenUp) != 1 || len(st.Failing) != 1 || st.Failing[0].SubscriptionID != siem.ID ||
		st.OldestPending != doorledger.WebhookRetryWindow {
		t.Fatalf("after the window: %+v", st)
	}
	// A disabled subscription's deliveries are given up on, and not counted.
	if err := w.Webhooks.DisableWebhookSubscription(as(w.Admin), siem.ID); err != nil {
		t.Fatal(err)
	}
	if st := read(); st.Pending != 0 || st.OldestPending != 0 || len(st.Failing) != 0 || len(st.GivenUp) != 1 || st.GivenUp[pms.ID] != 1 {
		t.Fatalf("after disabling the other: %+v", st)
	}
	// Replayed, it waits again, from now.
	if err := w.Webhooks.ReplayWebhookDelivery(as(w.Admin), byTo[pms.ID].ID); err != nil {
		t.Fatal(err)
	}
	if st := read(); st.Pending != 1 || st.OldestPending != 0 || len(st.GivenUp) != 0 {
		t.Fatalf("after the replay: %+v", st)
	}
}
