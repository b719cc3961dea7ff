package main

import (
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"testing"

	"github.com/doorledger/doorledger/internal/browsertest"
)

// The signer's page with a paper form, on their phone (390x844):
// "Did you sign this form?" beside the terms, with the photographed form
// inline and no sideways scroll; they confirm it and sign.
func TestBrowserSignerPaperFormPhone(t *testing.T) {
	browsertest.Require(t)
	w := newRosterWorld(t, "Paula Prez <paula@example.com>")
	paula := w.signerID(t, "Paula Prez")
	newReq := w.building + "/consents/new"
	status, consent, body := w.inst.PostMultipart(newReq, w.building+"/consents", url.Values{"vendor": {"Acme"}, "model": {"K2"}, "serial": {"SN-PAPER"},
		"location": {"lobby panel"}, "opens": {"lobby door"}, "signer_id": {paula}, "mode": {"link"}, "paper_signed_by": {paula}, "paper_date": {"2026-11-20"}},
		map[string]map[string][]byte{"paper_photos": {"form.png": paperPNG(t)}})
	if status != http.StatusSeeOther {
		t.Fatalf("request: %d\n%s", status, body)
	}
	link := (&boardWorld{rosterWorld: w}).linkTo(t, "paula@example.com", "/sign/")

	ctx := browsertest.NewTab(t, browsertest.Options{Viewport: browsertest.Phone})
	if resp := browsertest.Navigate(t, ctx, w.p.URL+link); resp.Status != http.StatusOK {
		t.Fatalf("signing page: %d\n%s", resp.Status, browsertest.Describe(ctx))
	}
	type page struct {
		Question string `json:"question"`
		ImgWidth int    `json:"imgWidth"`
		Loaded   bool   `json:"loaded"`
		Confirm  bool   `json:"confirm"`
		Dispute  bool   `json:"dispute"`
	}
	browsertest.WaitFor[bool](t, ctx, "the paper form photo to load", `(() => { const i = document.querySelector("#paper-form img"); return !!i && i.complete && i.naturalWidth > 0 })()`)
	got := browsertest.Eval[page](t, ctx, `(() => { const i = document.querySelector("#paper-form img");
		return {question: (document.querySelector("#paper-form header") || {textContent: ""}).textContent.trim(),
			imgWidth: i ? Math.round(i.getBoundingClientRect().width) : 0, loaded: !!i && i.naturalWidth > 0,
			confirm: !!document.querySelector('#sign-form input[name="paper_confirm"]'),
			dispute: !!document.querySelector("#paper-dispute")} })()`)
	if got.Question != "Did you sign this form?" || !got.Loaded || got.ImgWidth == 0 || int64(got.ImgWidth) > browsertest.Phone.Width || !got.Confirm || !got.Dispute {
		t.Fatalf("signing page with a paper form: %+v\n%s", got, browsertest.Describe(ctx))
	}
	browsertest.CheckNoHorizontalOverflow(t, ctx, browsertest.Phone.Width)
	browsertest.Screenshot(t, ctx, filepath.Join(browsertest.ScreenshotDir(t), "signer-paper-form.png"))

	browsertest.Do(t, ctx,
		browsertest.Click(`#sign-form input[name="paper_confirm"]`),
		browsertest.Click(`#sign-form input[name="agree"]`),
		browsertest.SendKeys("#typed_name", "Paula Prez"),
	)
	drawSignature(t, ctx)
	resp := browsertest.AwaitNavigation(t, ctx, browsertest.Click("#sign-submit"))
	if h1 := readPage(t, ctx).H1; resp.Status != http.StatusOK || h1 != "Thank you: consent signed" {
		t.Fatalf("sign: %d %q\n%s", resp.Status, h1, browsertest.Describe(ctx))
	}
	if _, page := w.mgr.Get(consent); !strings.Contains(page, "confirmed by the signer on") {
		t.Error("the consent page does not show the confirmed paper form")
	}
}
