package dbtest

import (
	"context"
	"testing"
	"time"

	"github.com/doorledger/doorledger"
)

var attentionTests = []test{
	{"AttentionThroughServices", testAttentionThroughServices},
}

// The attention list counts, per building the caller sees, what the
// services left needing a manager, and its items point at it: a device
// found without consent, a command the device refused and one it never
// confirmed, a request awaiting its signature, a withdrawn consent, a
// resident's report. Boards see their buildings, installers nothing.
func testAttentionThroughServices(t *testing.T, newServices NewServices) {
	w := NewDeviceWorld(t, newServices(t))
	mgr := as(w.MgrA)
	ctx := context.Background()
	enabled, disabled := doorledger.StateEnabled, doorledger.StateDisabled

	found, err := w.Devices.RecordFoundDevice(mgr, w.A, doorledger.DeviceDetails{Vendor: "Ghost", Model: "G1", Serial: "FOUND-1", Location: "boiler room"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Devices.RecordFoundDevice(as(w.MgrB), w.B, doorledger.DeviceDetails{Vendor: "Ghost", Serial: "FOUND-B", Location: "roof"}); err != nil {
		t.Fatal(err)
	}
	refused := w.enabledConfirmed(t)
	if _, err := w.Devices.SetDesiredState(mgr, refused, disabled, "revoke"); err != nil {
		t.Fatal(err)
	}
	w.Report(t, refused, enabled, 2)
	silent, _ := w.ConsentedDevice(t)
	if _, err := w.Devices.SetDesiredState(mgr, silent, enabled, ""); err != nil {
		t.Fatal(err)
	}
	*w.Now = w.Now.Add(10 * time.Minute)
	if _, err := w.Controller.ExpireUnconfirmed(ctx, 5*time.Minute); err != nil {
		t.Fatal(err)
	}
	awaitingAt := *w.Now
	awaiting, err := w.Consents.RequestConsent(as(w.InstA), w.A, Request("SN-AWAIT", w.SignerA))
	if err != nil {
		t.Fatal(err)
	}
	_, withdrawn, withdraw := w.signedDevice(t)
	if _, err := w.Consents.EndByToken(ctx, withdraw, "changed my mind"); err != nil {
		t.Fatal(err)
	}
	notice, err := w.Residents.NoticeSettings(mgr, w.A)
	if err != nil {
		t.Fatal(err)
	}
	report, err := w.Residents.ReportDevice(ctx, notice.Slug, doorledger.ResidentReportInput{Location: "behind the mailboxes"})
	if err != nil {
		t.Fatal(err)
	}

	want := map[doorledger.AttentionKind]int{
		doorledger.AttentionUnconsented: 1, doorledger.AttentionCommand: 2, doorledger.AttentionAwaiting: 1,
		doorledger.AttentionEnded: 1, doorledger.AttentionResidentReport: 1,
	}
	check := func(who string, c doorledger.AttentionCounts) {
		t.Helper()
		for _, k := range doorledger.AttentionKinds {
			if got := c.Of(k); got != want[k] {
				t.Errorf("%s: %s = %d, want %d", who, k, got, want[k])
			}
		}
		if !c.OldestAwaiting.Equal(awaitingAt) {
			t.Errorf("%s: oldest awaiting %v, want %v", who, c.OldestAwaiting, awaitingAt)
		}
	}
	for _, u := range []*doorledger.User{w.MgrA, w.BoardA, w.Admin} {
		counts, err := w.Attention.AttentionCounts(as(u))
		if err != nil {
			t.Fatalf("%s: %v", u.Email, err)
		}
		check(u.Email, counts[w.A])
		if _, seesB := counts[w.B]; seesB != (u == w.Admin) {
			t.Errorf("%s sees building B: %v", u.Email, seesB)
		}
	}
	if counts, err := w.Attention.AttentionCounts(as(w.MgrB)); err != nil || len(counts) != 1 || counts[w.B].Of(doorledger.AttentionUnconsented) != 1 {
		t.Errorf("B's manager: %+v, %v; want B's found device only", counts, err)
	}
	_, err = w.Attention.AttentionCounts(as(w.InstA))
	WantCode(t, "installer", err, doorledger.EFORBIDDEN)
	_, err = w.Attention.Attention(ctx, doorledger.AttentionOptions{})
	WantCode(t, "nobody signed in", err, doorledger.EUNAUTHORIZED)

	a, err := w.Attention.Attention(as(w.Admin), doorledger.AttentionOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if a.Buildings != 2 || a.Needing != 2 || len(a.Listed) != 2 || a.Listed[0].BuildingID != w.A || a.Listed[0].Name != "Alder Court" {
		t.Fatalf("admin's attention: %d buildings, %d needing, listed %+v; want A first of 2", a.Buildings, a.Needing, a.Listed)
	}
	if a.Totals.Of(doorledger.AttentionUnconsented) != 2 {
		t.Errorf("totals: %+v, want 2 unconsented", a.Totals)
	}
	type item struct {
		kind       doorledger.AttentionKind
		id, status string
	}
	var items []item
	for _, it := range a.Listed[0].Items {
		id := itoa(it.DeviceID + it.ConsentID + it.ReportID)
		items = append(items, item{it.Kind, id, it.Status})
	}
	wantItems := []item{
		{doorledger.AttentionUnconsented, itoa(found.ID), ""},
		{doorledger.AttentionCommand, itoa(refused), "refused"},
		{doorledger.AttentionCommand, itoa(silent), "not_confirmed"},
		{doorledger.AttentionAwaiting, itoa(awaiting.ID), ""},
		{doorledger.AttentionEnded, itoa(withdrawn), "withdrawn"},
		{doorledger.AttentionResidentReport, itoa(report.ID), ""},
	}
	if len(items) != len(wantItems) {
		t.Fatalf("items of A: %+v\nwant %+v", items, wantItems)
	}
	for _, wi := range wantItems {
		found := false
		for _, it := range items {
			found = found || it == wi
		}
		if !found {
			t.Errorf("items of A lack %+v: %+v", wi, items)
		}
	}
	for _, it := range a.Listed[0].Items {
		if it.Kind == doorledger.AttentionUnconsented && it.Label != "Ghost G1, serial FOUND-1, at boiler room" {
			t.Errorf("unconsented item label %q", it.Label)
		}
	}

	// Resolved: the refused revoke confirmed, the silent device answering.
	w.Report(t, refused, disabled, 2)
	w.Report(t, silent, enabled, 1)
	counts, err := w.Attention.AttentionCounts(mgr)
	if err != nil {
		t.Fatal(err)
	}
	if n := counts[w.A].Of(doorledger.AttentionCommand); n != 0 {
		t.Errorf("commands needing attention after the devices answered: %d", n)
	}
}
