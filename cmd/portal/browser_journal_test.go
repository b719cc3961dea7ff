package main

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/doorledger/doorledger/internal/browsertest"
)

// TestBrowserJournalNotCutOff opens a building's journal in a real browser:
// every entry reads as a sentence, and none runs out of its column or makes
// the table wider than the page (the journal printed entries' JSON, whose
// long unbroken runs were cut off at the table's edge).
func TestBrowserJournalNotCutOff(t *testing.T) {
	browsertest.Require(t)
	p := MustStartPortal(t, "")
	admin := NewClient(t, p.URL)
	admin.MustLogin(testAdminEmail, p.AdminPass)
	status, building, _ := admin.Post("/buildings/new", "/buildings", url.Values{"name": {"Journal Court"},
		"address": {"Hauptstrasse 1, 8001 Zürich"}, "timezone": {"Europe/Zurich"}})
	if status != http.StatusSeeOther {
		t.Fatalf("create building: %d", status)
	}
	if status, _, body := admin.Post(building, building+"/signers", url.Values{"signer_name": {"Zoë Nuñez-Łukasz"}, "signer_title": {"Board president"},
		"signer_email": {"zoe.nunez-lukasz.board.president.of.the.cooperative@very-long-domain-name.example.org"}}); status != http.StatusSeeOther {
		t.Fatalf("add signer: %d\n%s", status, body)
	}
	// Exports journal their filter: once a run of JSON without a space.
	for _, q := range []string{"", "?result=denied&anomalies=1&from=2026-01-01&to=2026-11-30"} {
		if status, body := admin.Get(building + "/unlocks.csv" + q); status != http.StatusOK {
			t.Fatalf("export: %d\n%s", status, body)
		}
	}

	ctx := browsertest.NewTab(t, browsertest.Options{})
	browsertest.Navigate(t, ctx, p.URL+"/login")
	browserSignIn(t, ctx, testAdminEmail, p.AdminPass)
	browsertest.Navigate(t, ctx, p.URL+building+"/audit")
	type journal struct {
		Box  struct{ ScrollWidth, ClientWidth int } `json:"box"`
		Cut  []string                               `json:"cut"`  // cells whose text runs past their width
		What []string                               `json:"what"` // the sentences
	}
	j := browsertest.Eval[journal](t, ctx, `(() => {
		const box = document.querySelector("main .overflow-auto");
		const cells = [...box.querySelectorAll("tbody td")];
		return {box: {ScrollWidth: box.scrollWidth, ClientWidth: box.clientWidth},
			cut: cells.filter(td => td.scrollWidth > td.clientWidth).map(td => td.innerText),
			what: [...box.querySelectorAll("td.journal-what")].map(td => td.innerText)};
	})()`)
	if j.Box.ScrollWidth > j.Box.ClientWidth {
		t.Errorf("the journal's table is %d px wide in a %d px box: its right part is hidden", j.Box.ScrollWidth, j.Box.ClientWidth)
	}
	for _, c := range j.Cut {
		t.Errorf("cut off: %q", c)
	}
	if len(j.What) < 4 {
		t.Fatalf("%d journal entries read as sentences, want the building, the signer and two exports at least", len(j.What))
	}
	texts := j.What
	for _, c := range texts {
		if strings.ContainsAny(c, "{}") {
			t.Errorf("entry printed as JSON: %q", c)
		}
	}
	all := strings.Join(texts, "\n")
	for _, want := range []string{
		"exported 0 unlock events, 1 Jan – 30 Nov 2026, denied only, anomalies only, as CSV",
		"added “Zoë Nuñez-Łukasz” (Board president, zoe.nunez-lukasz.board.president.of.the.cooperative@very-long-domain-name.example.org)",
		"created the building “Journal Court”, Hauptstrasse 1, 8001 Zürich, time zone Europe/Zurich",
	} {
		if !strings.Contains(all, want) {
			t.Errorf("the journal lacks %q:\n%s", want, all)
		}
	}
	browsertest.CheckNoHorizontalOverflow(t, ctx, 0)
}
