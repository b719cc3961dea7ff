package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"image"
	"image/color"
	"image/png"
	"math"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/input"
	"github.com/chromedp/chromedp"

	"github.com/doorledger/doorledger/internal/browsertest"
	"github.com/doorledger/doorledger/internal/testtool"
)

// TestBrowserConsentFlow is the consent story in headless Chromium: the
// installer asks for consent at phone size with a photo, the signer opens the
// link from the outbox, is told to draw when they did not, draws with real
// mouse events and signs, and the manager sees the consent signed with its
// evidence and downloads the certificate.
func TestBrowserConsentFlow(t *testing.T) {
	browsertest.Require(t)
	pdftotext := testtool.Require(t, "pdftotext")
	t0 := time.Now()
	lap := func(what string) {
		t.Logf("%-28s done at %v", what, time.Since(t0).Round(time.Millisecond))
	}

	const (
		buildingName = "Harbor View"
		signerName   = "Zoë Nuñez"
		serial       = "SN-7Q-4821"
		instEmail    = "lukasz@fastkey.example"
		instPass     = "installer passphrase"
		mgrEmail     = "mia@example.com"
		mgrPass      = "correct horse battery"
	)

	// Set-up over HTTP: a building with a roster, a manager with a grant,
	// and an installer who accepted the manager's invitation.
	p := MustStartPortal(t, "")
	admin := NewClient(t, p.URL)
	admin.MustLogin(testAdminEmail, p.AdminPass)
	status, building, body := admin.Post("/buildings/new", "/buildings", url.Values{"name": {buildingName}, "address": {"1 Harbor St"}, "timezone": {"America/New_York"}})
	if status != http.StatusSeeOther || !regexp.MustCompile(`^/buildings/\d+$`).MatchString(building) {
		t.Fatalf("create building: %d %q\n%s", status, building, body)
	}
	if status, _, body := admin.Post(building, building+"/signers", url.Values{"signer_name": {signerName}, "signer_title": {"Board president"}, "signer_email": {"zoe@example.com"}}); status != http.StatusSeeOther {
		t.Fatalf("add signer: %d\n%s", status, body)
	}
	if status, _, body := admin.Post("/users/new", "/users", url.Values{"name": {"Mia Manager"}, "email": {mgrEmail}, "role": {"manager"}, "password": {mgrPass}}); status != http.StatusSeeOther {
		t.Fatalf("create manager: %d\n%s", status, body)
	}
	_, body = admin.Get("/users")
	m := regexp.MustCompile(`href="/users/(\d+)">Mia Manager`).FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("manager not listed:\n%s", body)
	}
	if status, _, body := admin.Post(building, building+"/grants", url.Values{"user_id": {m[1]}}); status != http.StatusSeeOther {
		t.Fatalf("grant: %d\n%s", status, body)
	}
	mgr := NewClient(t, p.URL)
	mgr.MustLogin(mgrEmail, mgrPass)
	if status, _, body := mgr.Post(building, building+"/invitations", url.Values{"invite_name": {"Łukasz Wróbel"}, "invite_company": {"FastKey"}, "invite_email": {instEmail}}); status != http.StatusSeeOther {
		t.Fatalf("invite: %d\n%s", status, body)
	}
	invite := outboxLink(t, admin, "/invite/")
	if status, loc, body := NewClient(t, p.URL).Post(invite, invite, url.Values{"password": {instPass}}); status != http.StatusSeeOther || loc != "/buildings" {
		t.Fatalf("accept invitation: %d %q\n%s", status, loc, body)
	}
	photo := filepath.Join(t.TempDir(), "intercom-panel.png")
	writeTestPhoto(t, photo)
	lap("set-up over HTTP")

	// The installer, on a phone, asks for consent.
	var consentPath string
	{
		ctx := browsertest.NewTab(t, browsertest.Options{Viewport: browsertest.Phone})
		browsertest.Navigate(t, ctx, p.URL+"/login")
		if resp := browserSignIn(t, ctx, instEmail, instPass); resp.Status != http.StatusOK || readPage(t, ctx).Path != "/buildings" {
			t.Fatalf("installer sign-in: status %d, page %+v", resp.Status, readPage(t, ctx))
		}
		browsertest.AwaitNavigation(t, ctx, browsertest.Click(`main table a[href="`+building+`"]`))
		if got := readPage(t, ctx); got.Path != building || got.H1 != buildingName {
			t.Fatalf("installer's building page: %+v", got)
		}
		resp := browsertest.AwaitNavigation(t, ctx, browsertest.Click(`//main//a[normalize-space(.)="Request consent for a device"]`))
		if got := readPage(t, ctx); resp.Status != http.StatusOK || got.Path != building+"/consents/new" || got.H1 != "Request consent" {
			t.Fatalf("request form: status %d, page %+v", resp.Status, got)
		}
		browsertest.Do(t, ctx,
			browsertest.SendKeys("#vendor", "Acme Access"),
			browsertest.SendKeys("#model", "KeyBox 2"),
			browsertest.SendKeys("#serial", serial),
			browsertest.SendKeys("#location", "main lobby intercom panel"),
			browsertest.SendKeys("#opens", "lobby door, for couriers"),
		)
		// Choose the signer by the option's text, as a person does.
		signerID := browsertest.Eval[string](t, ctx, `(() => {
			const o = [...document.querySelectorAll("#signer_id option")].find(o => o.textContent.startsWith(`+jsString(signerName)+`));
			return o ? o.value : "";
		})()`)
		if signerID == "" {
			t.Fatalf("no option for %s in the signer list\n%s", signerName, browsertest.Describe(ctx))
		}
		browsertest.Do(t, ctx,
			browsertest.SetValue("#signer_id", signerID),
			browsertest.SetUploadFiles("#photos", []string{photo}),
		)
		type formState struct {
			Serial string   `json:"serial"`
			Signer string   `json:"signer"`
			Mode   string   `json:"mode"`
			Files  []string `json:"files"`
		}
		fs := browsertest.Eval[formState](t, ctx, `({serial: document.getElementById("serial").value,
			signer: document.getElementById("signer_id").selectedOptions[0].textContent.trim(),
			mode: document.querySelector("input[name=mode]:checked").value,
			files: [...document.getElementById("photos").files].map(f => f.name)})`)
		if fs.Serial != serial || !strings.HasPrefix(fs.Signer, signerName) || fs.Mode != "link" || len(fs.Files) != 1 || fs.Files[0] != "intercom-panel.png" {
			t.Errorf("filled request form: %+v", fs)
		}
		o := browsertest.MeasureOverflow(t, ctx)
		t.Logf("request form at phone size: scrollWidth %d, innerWidth %d, clientWidth %d", o.ScrollWidth, o.InnerWidth, o.ClientWidth)
		browsertest.CheckNoHorizontalOverflow(t, ctx, browsertest.Phone.Width)

		resp = browsertest.AwaitNavigation(t, ctx, browsertest.Click(`form[action="`+building+`/consents"] button[type="submit"]`))
		got := readPage(t, ctx)
		if resp.Status != http.StatusOK || !regexp.MustCompile(`^/consents/\d+$`).MatchString(got.Path) {
			t.Fatalf("after Submit request: status %d, page %+v\n%s", resp.Status, got, browsertest.Describe(ctx))
		}
		consentPath = got.Path
		if badge := browsertest.Eval[string](t, ctx, `document.querySelector("main h1 .badge").textContent.trim()`); badge != "Awaiting signature" {
			t.Errorf("new consent page: badge %q, want \"Awaiting signature\" (h1 %q)", badge, got.H1)
		}
		if !strings.Contains(got.Lead, serial) {
			t.Errorf("new consent page lead %q lacks the serial %s", got.Lead, serial)
		}
		if n := browsertest.Eval[int](t, ctx, `document.querySelectorAll("main .photos img").length`); n != 1 {
			t.Errorf("new consent page shows %d installation photos, want 1", n)
		}
		browsertest.CheckNoHorizontalOverflow(t, ctx, browsertest.Phone.Width)
		lap("installer (phone)")
	}

	// The signer opens the link mailed to them, on their phone: the pad's
	// backing store is then 3x its CSS size, drawn on with mouse events.
	sign := outboxLink(t, admin, "/sign/")
	var terms string
	{
		ctx := browsertest.NewTab(t, browsertest.Options{Viewport: browsertest.Phone})
		if resp := browsertest.Navigate(t, ctx, p.URL+sign); resp.Status != http.StatusOK {
			t.Fatalf("signing page: status %d\n%s", resp.Status, browsertest.Describe(ctx))
		}
		if got := readPage(t, ctx); got.H1 != "Consent for a delivery device at "+buildingName || !strings.Contains(got.Lead, signerName) {
			t.Fatalf("signing page: %+v", got)
		}
		terms = browsertest.Eval[string](t, ctx, `document.querySelector("input[name=terms_sha256]").value`)
		if !regexp.MustCompile(`^[0-9a-f]{64}$`).MatchString(terms) {
			t.Fatalf("terms hash on the signing page: %q", terms)
		}
		if txt := browsertest.Eval[string](t, ctx, `document.getElementById("terms").textContent`); !strings.Contains(txt, serial) {
			t.Errorf("the terms do not name the serial %s", serial)
		}
		browsertest.CheckNoHorizontalOverflow(t, ctx, browsertest.Phone.Width)
		browsertest.Do(t, ctx,
			browsertest.Click(`#sign-form input[name="agree"]`),
			browsertest.SendKeys("#typed_name", signerName),
		)

		// Signing without drawing is refused, with the rest kept.
		resp := browsertest.AwaitNavigation(t, ctx, browsertest.Click("#sign-submit"))
		type signForm struct {
			TypedName string `json:"typedName"`
			Agree     bool   `json:"agree"`
			SigError  string `json:"sigError"`
			Hidden    string `json:"hidden"`
		}
		const signFormJS = `({typedName: document.getElementById("typed_name").value,
			agree: document.querySelector("#sign-form input[name=agree]").checked,
			sigError: (document.getElementById("signature-error") || {textContent: ""}).textContent.trim(),
			hidden: document.getElementById("signature-data").value})`
		sf := browsertest.Eval[signForm](t, ctx, signFormJS)
		if resp.Status != http.StatusUnprocessableEntity || sf.SigError != "Draw your signature in the box." {
			t.Errorf("sign without drawing: status %d, signature error %q; want 422 and \"Draw your signature in the box.\"\n%s",
				resp.Status, sf.SigError, browsertest.Describe(ctx))
		}
		if sf.TypedName != signerName || !sf.Agree || sf.Hidden != "" {
			t.Errorf("after sign without drawing: typed name %q, agree %v, signature field %.40q; want %q kept, the box still ticked and no signature",
				sf.TypedName, sf.Agree, sf.Hidden, signerName)
		}
		if blank := canvasInk(t, ctx); blank.Ink != 0 {
			t.Errorf("canvas after the refused submit has %d inked pixels, want a blank pad", blank.Ink)
		}

		drawSignature(t, ctx)
		ink := canvasInk(t, ctx)
		t.Logf("canvas %dx%d backing pixels: %d inked, spanning x %d..%d, y %d..%d", ink.W, ink.H, ink.Ink, ink.MinX, ink.MaxX, ink.MinY, ink.MaxY)
		if ink.Ink < 500 || ink.MaxX-ink.MinX < ink.W/2 || ink.MaxY-ink.MinY < ink.H/4 {
			t.Errorf("the drawn signature left too little ink on the canvas: %+v", ink)
		}
		dir := browsertest.ScreenshotDir(t)
		browsertest.Screenshot(t, ctx, filepath.Join(dir, "signing-drawn.png"))
		browsertest.ScreenshotElement(t, ctx, ".signature-box", filepath.Join(dir, "signing-pad.png"))

		resp = browsertest.AwaitNavigation(t, ctx, browsertest.Click("#sign-submit"))
		if got := readPage(t, ctx); resp.Status != http.StatusOK || got.H1 != "Thank you: consent signed" {
			t.Fatalf("sign: status %d, page %+v\n%s", resp.Status, got, browsertest.Describe(ctx))
		}
		lap("signer (phone)")
	}

	// The manager sees it signed and downloads the certificate.
	{
		ctx := browsertest.NewTab(t, browsertest.Options{Viewport: browsertest.Desktop})
		browsertest.Navigate(t, ctx, p.URL+"/login")
		if resp := browserSignIn(t, ctx, mgrEmail, mgrPass); resp.Status != http.StatusOK || readPage(t, ctx).Path != "/" {
			t.Fatalf("manager sign-in: status %d, page %+v", resp.Status, readPage(t, ctx))
		}
		// The first screen is the attention list (nothing needs the manager
		// here: the consent is signed); the building from the navigation.
		browsertest.AwaitNavigation(t, ctx, browsertest.Click(`header nav a[href="/buildings"]`))
		browsertest.AwaitNavigation(t, ctx, browsertest.Click(`main table a[href="`+building+`"]`))
		// The building's consents, grouped under status headings.
		groups := browsertest.Eval[map[string][]string](t, ctx, `(() => {
			const out = {};
			for (const h of document.querySelectorAll("#consents h3:has(.badge)")) {
				const status = h.querySelector(".badge").textContent.trim();
				let el = h.nextElementSibling;
				out[status] = el ? [...el.querySelectorAll("tbody tr")].map(tr =>
					tr.querySelector("a").getAttribute("href") + " " + tr.querySelector("code").textContent.trim()) : [];
			}
			return out;
		})()`)
		if want := consentPath + " " + serial; len(groups) != 1 || len(groups["Signed"]) != 1 || groups["Signed"][0] != want {
			t.Fatalf("building page consents by status: %q, want only %q under Signed", groups, want)
		}
		resp := browsertest.AwaitNavigation(t, ctx, browsertest.Click(`#consents a[href="`+consentPath+`"]`))
		if got := readPage(t, ctx); resp.Status != http.StatusOK || got.Path != consentPath {
			t.Fatalf("consent page: status %d, page %+v", resp.Status, got)
		}
		if badge := browsertest.Eval[string](t, ctx, `document.querySelector("main h1 .badge").textContent.trim()`); badge != "Signed" {
			t.Errorf("consent page badge %q, want Signed", badge)
		}
		evidence := browsertest.Eval[map[string]string](t, ctx, `Object.fromEntries([...document.querySelectorAll("#evidence dt")].map(dt =>
			[dt.textContent.trim(), dt.nextElementSibling.textContent.trim()]))`)
		if evidence["Typed name"] != signerName || evidence["Terms SHA-256"] != terms {
			t.Errorf("evidence: %q; want typed name %q and terms SHA-256 %s", evidence, signerName, terms)
		}
		// The signature image loads.
		sigSize := browsertest.WaitFor[[]int](t, ctx, "the signature image to load", `(() => {
			const i = document.querySelector("#evidence img.signature-img");
			return i && i.complete && i.naturalWidth > 0 ? [i.naturalWidth, i.naturalHeight] : null;
		})()`)
		t.Logf("signature image on the consent page: %dx%d", sigSize[0], sigSize[1])

		// Download the certificate with the manager's session (its cookie is
		// HttpOnly, so the page fetches it).
		href := browsertest.Eval[string](t, ctx, `(() => {
			const a = [...document.querySelectorAll("main a")].find(a => a.textContent.trim() === "Download certificate (PDF)");
			return a ? a.getAttribute("href") : "";
		})()`)
		if want := consentPath + "/certificate.pdf"; href != want {
			t.Errorf("certificate link %q, want %q", href, want)
		}
		type download struct {
			Status      int    `json:"status"`
			Type        string `json:"type"`
			Disposition string `json:"disposition"`
			Base64      string `json:"base64"`
		}
		fetchJS := `(async () => {
			const r = await fetch(` + jsString(href) + `);
			const b = new Uint8Array(await r.arrayBuffer());
			let s = "";
			for (let i = 0; i < b.length; i += 0x8000) s += String.fromCharCode(...b.subarray(i, i + 0x8000));
			return {status: r.status, type: r.headers.get("Content-Type") || "", disposition: r.headers.get("Content-Disposition") || "", base64: btoa(s)};
		})()`
		dl := browsertest.Run(t, ctx, chromedp.Evaluate[download](fetchJS, chromedp.EvalAwaitPromise))
		pdf, err := base64.StdEncoding.DecodeString(dl.Base64)
		if err != nil {
			t.Fatalf("certificate bytes: %v", err)
		}
		if dl.Status != http.StatusOK || dl.Type != "application/pdf" || !strings.Contains(dl.Disposition, "attachment") || !bytes.HasPrefix(pdf, []byte("%PDF")) {
			t.Fatalf("certificate: status %d, type %q, disposition %q, starts %q", dl.Status, dl.Type, dl.Disposition, pdf[:min(len(pdf), 16)])
		}
		file := filepath.Join(t.TempDir(), "certificate.pdf")
		if err := os.WriteFile(file, pdf, 0o600); err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command(pdftotext, "-layout", file, "-").Output()
		if err != nil {
			t.Fatalf("pdftotext: %v", err)
		}
		text := strings.Join(strings.Fields(string(out)), " ")
		for _, want := range []string{signerName, serial} {
			if !strings.Contains(text, want) {
				t.Errorf("certificate text lacks %q:\n%s", want, text)
			}
		}
		t.Logf("certificate: %d bytes of PDF", len(pdf))
		lap("manager (desktop)")
	}

	// The stored signature is the drawing: ink on a transparent or white ground.
	resp, err := mgr.http.Get(p.URL + consentPath + "/signature.png")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	img, err := png.Decode(resp.Body)
	if err != nil {
		t.Fatalf("stored signature: %v", err)
	}
	if n := inkedPixels(img); n < 200 {
		t.Errorf("stored signature %v has only %d inked pixels", img.Bounds().Size(), n)
	}
}

// jsString quotes s as a JavaScript string literal.
func jsString(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`, "<", `\x3c`).Replace(s) + `"`
}

// writeTestPhoto writes a small PNG "photo" of an intercom panel.
func writeTestPhoto(tb testing.TB, path string) {
	tb.Helper()
	img := image.NewNRGBA(image.Rect(0, 0, 320, 240))
	for y := range 240 {
		for x := range 320 {
			c := color.NRGBA{uint8(60 + x/4), uint8(70 + y/4), 90, 255}
			if x > 110 && x < 210 && y > 50 && y < 190 {
				c = color.NRGBA{30, 30, 35, 255} // the panel
			}
			img.Set(x, y, c)
		}
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		tb.Fatal(err)
	}
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		tb.Fatal(err)
	}
}

// drawSignature draws a looping scrawl across #signature-pad with real mouse
// events: press, moves with the left button held, release; then a short
// second stroke under it.
func drawSignature(tb testing.TB, ctx context.Context) {
	tb.Helper()
	type rect struct{ X, Y, W, H float64 }
	r := browsertest.Eval[rect](tb, ctx, `(() => {
		const c = document.getElementById("signature-pad");
		c.scrollIntoView({block: "center"});
		const b = c.getBoundingClientRect();
		return {X: b.left, Y: b.top, W: b.width, H: b.height};
	})()`)
	if r.W < 100 || r.H < 50 {
		tb.Fatalf("signature pad is %vx%v CSS pixels: too small to draw on", r.W, r.H)
	}
	held := func(p *input.DispatchMouseEventParams) {
		p.Button, p.Buttons, p.PointerType = input.MouseButtonLeft, 1, input.DispatchMouseEventPointerTypeMouse
	}
	pressed := func(p *input.DispatchMouseEventParams) { held(p); p.ClickCount = 1 }
	released := func(p *input.DispatchMouseEventParams) { held(p); p.Buttons = 0; p.ClickCount = 1 }
	stroke := func(points [][2]float64) []chromedp.Action[chromedp.Void] {
		at := func(i int) (float64, float64) { return r.X + points[i][0]*r.W, r.Y + points[i][1]*r.H }
		x, y := at(0)
		acts := []chromedp.Action[chromedp.Void]{
			chromedp.MouseEvent(chromedp.MouseMoved, x, y, chromedp.ButtonNone),
			chromedp.MouseEvent(chromedp.MousePressed, x, y, pressed),
		}
		for i := 1; i < len(points); i++ {
			x, y = at(i)
			// signature_pad throttles moves to one per 16 ms: pace them so
			// each one becomes a point of the stroke.
			acts = append(acts, chromedp.MouseEvent(chromedp.MouseMoved, x, y, held), chromedp.Sleep(18*time.Millisecond))
		}
		return append(acts, chromedp.MouseEvent(chromedp.MouseReleased, x, y, released))
	}
	// A cursive-like scrawl from 10% to 85% of the width, loops riding a sine.
	var scrawl [][2]float64
	for i := range 40 {
		f := float64(i) / 39
		x := 0.10 + 0.75*f + 0.04*math.Sin(f*6*2*math.Pi)
		y := 0.50 - 0.25*math.Cos(f*6*2*math.Pi)*(0.6+0.4*f)
		scrawl = append(scrawl, [2]float64{x, y})
	}
	underline := [][2]float64{{0.15, 0.85}, {0.35, 0.82}, {0.55, 0.84}, {0.75, 0.80}, {0.88, 0.82}}
	browsertest.Do(tb, ctx, stroke(scrawl)...)
	browsertest.Do(tb, ctx, stroke(underline)...)
}

// padInk is what canvasInk measures on the signature pad's backing store.
type padInk struct {
	W, H                   int
	Ink                    int // pixels with any opacity
	MinX, MaxX, MinY, MaxY int
}

func canvasInk(tb testing.TB, ctx context.Context) padInk {
	tb.Helper()
	return browsertest.Eval[padInk](tb, ctx, `(() => {
		const c = document.getElementById("signature-pad");
		const d = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
		const r = {W: c.width, H: c.height, Ink: 0, MinX: c.width, MaxX: -1, MinY: c.height, MaxY: -1};
		for (let y = 0; y < c.height; y++) for (let x = 0; x < c.width; x++) {
			if (d[(y * c.width + x) * 4 + 3] > 0) {
				r.Ink++;
				r.MinX = Math.min(r.MinX, x); r.MaxX = Math.max(r.MaxX, x);
				r.MinY = Math.min(r.MinY, y); r.MaxY = Math.max(r.MaxY, y);
			}
		}
		return r;
	})()`)
}

// inkedPixels counts the pixels of img that are neither transparent nor near white.
func inkedPixels(img image.Image) int {
	n := 0
	b := img.Bounds()
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			r, g, bl, a := img.At(x, y).RGBA()
			if a > 0x4000 && (r < 0xC000 || g < 0xC000 || bl < 0xC000) {
				n++
			}
		}
	}
	return n
}
