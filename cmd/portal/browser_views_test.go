package main

import (
	"context"
	"net/http"
	"regexp"
	"strings"
	"testing"

	"github.com/doorledger/doorledger/internal/browsertest"
)

// demoPortal starts a portal seeded by -demo and returns it with the
// sign-ins it printed, by role.
func demoPortal(t *testing.T) (*Portal, map[string][2]string) {
	t.Helper()
	p := MustStartPortal(t, "", "-demo")
	out := p.Stdout.String()
	users := map[string][2]string{"admin": {testAdminEmail, p.AdminPass}}
	for _, role := range []string{"manager", "board", "installer"} {
		m := regexp.MustCompile(role + `\s+(\S+)\s+(\S+)`).FindStringSubmatch(out)
		if m == nil {
			t.Fatalf("the demo printed no %s sign-in:\n%s", role, out)
		}
		users[role] = [2]string{m[1], m[2]}
	}
	return p, users
}

// checkAxe fails the test on a critical or serious axe-core violation.
func checkAxe(t *testing.T, ctx context.Context, what string) {
	t.Helper()
	for _, v := range browsertest.Axe(t, ctx) {
		if v.Blocking() {
			t.Errorf("%s: %s", what, v)
		}
	}
}

// TestBrowserBuildingPagePhone is the building page as a manager meets it on
// a phone: nothing scrolls sideways, the header is one
// row with a menu, a skip link, in-page navigation, the devices table
// stacked with the device, state and consent first and each row a link as a
// whole, tap targets of at least 44x44 px, one time zone (the building's,
// labelled), and no serious accessibility violation.
func TestBrowserBuildingPagePhone(t *testing.T) {
	p, users := demoPortal(t)
	ctx := browsertest.NewTab(t, browsertest.Options{Viewport: browsertest.Phone})
	browsertest.Navigate(t, ctx, p.URL+"/login")
	browserSignIn(t, ctx, users["manager"][0], users["manager"][1])
	browsertest.AwaitNavigation(t, ctx, browsertest.Click(`main a[href^="/buildings/"]`))
	if got := readPage(t, ctx); got.H1 != demoBuilding {
		t.Fatalf("building page: %+v", got)
	}
	browsertest.CheckNoHorizontalOverflow(t, ctx, browsertest.Phone.Width)

	type layout struct {
		HeaderHeight float64  `json:"headerHeight"`
		MenuVisible  bool     `json:"menuVisible"`
		WideVisible  bool     `json:"wideVisible"`
		Skip         string   `json:"skip"`
		PageNav      []string `json:"pageNav"`
		Small        []string `json:"small"`
		Zone         string   `json:"zone"`
		UTC          bool     `json:"utc"`
	}
	got := browsertest.Eval[layout](t, ctx, `(() => {
		const vis = (el) => !!el && el.checkVisibility();
		const name = (el) => el.tagName.toLowerCase() + (el.id ? "#" + el.id : "") + " " + JSON.stringify(el.textContent.trim().slice(0, 30));
		const small = [];
		const targets = document.querySelectorAll("header a, header button, header summary, nav.page-nav a, main button, main summary, main [role=button], main table a.row-link");
		for (const el of targets) {
			if (!vis(el)) continue;
			let r = el.getBoundingClientRect();
			if (el.classList.contains("row-link")) r = el.closest("tr").getBoundingClientRect();
			if (r.width < 44 || r.height < 44) small.push(name(el) + " " + Math.round(r.width) + "x" + Math.round(r.height));
		}
		const skip = document.querySelector("body > a.skip-link");
		return {
			headerHeight: document.querySelector("header nav").getBoundingClientRect().height,
			menuVisible: vis(document.querySelector("header details.menu summary")),
			wideVisible: vis(document.querySelector("header .nav-wide")),
			skip: skip && skip === document.querySelector("a[href]") ? skip.getAttribute("href") + " " + skip.textContent.trim() : "",
			pageNav: [...document.querySelectorAll("nav.page-nav a")].map(a => a.getAttribute("href")),
			small,
			zone: (document.getElementById("timezone") || {textContent: ""}).textContent.trim(),
			utc: /\bUTC\b/.test(document.querySelector("main").innerText),
		};
	})()`)
	if got.HeaderHeight > 80 || !got.MenuVisible || got.WideVisible {
		t.Errorf("header at phone size: %.0f px high, menu visible %v, wide links visible %v; want one row with a Menu", got.HeaderHeight, got.MenuVisible, got.WideVisible)
	}
	if got.Skip != "#main Skip to content" {
		t.Errorf("skip link %q, want the page's first link to #main", got.Skip)
	}
	for _, want := range []string{"#devices", "#unlocks", "#open-anomalies", "#consents", "#roster", "#reports"} {
		if !strings.Contains(strings.Join(got.PageNav, " "), want) {
			t.Errorf("in-page navigation %q lacks %s", got.PageNav, want)
		}
	}
	if len(got.Small) > 0 {
		t.Errorf("tap targets smaller than 44x44 px: %q", got.Small)
	}
	if !strings.Contains(got.Zone, "America/New_York") || got.UTC {
		t.Errorf("time zone: note %q, UTC on the page %v; want every time in the building's zone, labelled", got.Zone, got.UTC)
	}

	// The devices table, stacked: device, state and consent first, and a tap
	// anywhere on the row (here on its location) lands on the row's link.
	type row struct {
		Labels []string `json:"labels"`
		Hit    string   `json:"hit"`
		Href   string   `json:"href"`
	}
	rows := browsertest.Eval[[]row](t, ctx, `[...document.querySelectorAll("#devices table tbody tr")].map(tr => {
		const cells = [...tr.cells].filter(td => td.checkVisibility()).sort((a, b) => a.getBoundingClientRect().top - b.getBoundingClientRect().top);
		const loc = tr.cells[2];
		loc.scrollIntoView({block: "center", behavior: "instant"});
		const r = loc.getBoundingClientRect();
		const hit = document.elementFromPoint(r.left + r.width - 4, r.top + r.height / 2);
		const a = hit && hit.closest("a");
		return {labels: cells.map(td => td.getAttribute("data-label")), hit: a ? a.getAttribute("href") : (hit ? hit.tagName : ""),
			href: tr.querySelector("a.row-link").getAttribute("href")};
	})`)
	if len(rows) != 3 {
		t.Fatalf("devices rows: %+v, want the demo's three", rows)
	}
	for _, r := range rows {
		if len(r.Labels) < 3 || r.Labels[0] != "Device" || r.Labels[1] != "State" || r.Labels[2] != "Consent" {
			t.Errorf("stacked device row shows %q first, want Device, State, Consent", r.Labels)
		}
		if r.Hit != r.Href {
			t.Errorf("a tap on the row's location lands on %q, want the row's link %q", r.Hit, r.Href)
		}
	}
	checkAxe(t, ctx, "building page at phone size")

	// A tap on the row opens the device.
	resp := browsertest.AwaitNavigation(t, ctx, browsertest.Click(`#devices table tbody tr a.row-link`))
	if resp.Status != http.StatusOK || !strings.HasPrefix(readPage(t, ctx).Path, "/devices/") {
		t.Errorf("row link: status %d, page %+v", resp.Status, readPage(t, ctx))
	}
}

// TestBrowserSignerPage is the signer's page: the terms in full
// on the page (no inner scroll box) in readable type, the format line and
// the hash under a "details" disclosure, focus on the first message after an
// error, and each message gone once its field is fixed.
func TestBrowserSignerPage(t *testing.T) {
	p, users := demoPortal(t)
	admin := NewClient(t, p.URL)
	admin.MustLogin(users["admin"][0], users["admin"][1])
	_, body := admin.Get("/outbox")
	var link string
	for _, l := range regexp.MustCompile(`/sign/[A-Za-z0-9_-]+`).FindAllString(body, -1) {
		if _, page := NewClient(t, p.URL).Get(l); strings.Contains(page, `id="sign-form"`) {
			link = l
		}
	}
	if link == "" {
		t.Fatal("no signing link awaiting a signature in the demo's outbox")
	}
	for _, size := range []struct {
		name string
		vp   browsertest.Viewport
	}{{"phone", browsertest.Phone}, {"desktop", browsertest.Desktop}} {
		t.Run(size.name, func(t *testing.T) {
			ctx := browsertest.NewTab(t, browsertest.Options{Viewport: size.vp})
			browsertest.Navigate(t, ctx, p.URL+link)
			browsertest.CheckNoHorizontalOverflow(t, ctx, size.vp.Width)
			type terms struct {
				Scrolls  bool    `json:"scrolls"`
				Font     float64 `json:"font"`
				Mono     bool    `json:"mono"`
				Start    string  `json:"start"`
				Open     bool    `json:"open"`
				Details  string  `json:"details"`
				Expected string  `json:"expected"`
			}
			got := browsertest.Eval[terms](t, ctx, `(() => {
				const el = document.getElementById("terms"), cs = getComputedStyle(el), d = document.getElementById("terms-details");
				return {scrolls: el.scrollHeight > el.clientHeight + 1 || ["auto", "scroll"].includes(cs.overflowY),
					font: parseFloat(cs.fontSize), mono: /mono/i.test(cs.fontFamily), start: el.textContent.slice(0, 40),
					open: d.open, details: d.textContent.replace(/\s+/g, " "),
					expected: document.querySelector("input[name=terms_sha256]").value};
			})()`)
			if got.Scrolls || got.Font < 16 || got.Mono {
				t.Errorf("terms: scroll box %v, font %.1f px, monospace %v; want the whole text in the page's type (≥ 16 px)", got.Scrolls, got.Font, got.Mono)
			}
			if strings.HasPrefix(got.Start, "doorledger-consent-terms") || !strings.HasPrefix(got.Start, "CONSENT TO INSTALL") {
				t.Errorf("terms start %q, want the document's title, the format line under details", got.Start)
			}
			if got.Open || !strings.Contains(got.Details, "doorledger-consent-terms/") || !strings.Contains(got.Details, got.Expected) {
				t.Errorf("details (open %v): %q, want closed, with the format line and SHA-256 %s", got.Open, got.Details, got.Expected)
			}
			checkAxe(t, ctx, "signer's page")

			// Sign with nothing filled in: refused, the focus on the first message.
			resp := browsertest.AwaitNavigation(t, ctx, browsertest.Click("#sign-submit"))
			if resp.Status != http.StatusUnprocessableEntity {
				t.Fatalf("empty signature: status %d, want 422", resp.Status)
			}
			type focus struct {
				Focused string   `json:"focused"`
				First   string   `json:"first"`
				Shown   []string `json:"shown"`
			}
			const focusJS = `(() => {
				const first = document.querySelector("main .form-error, main .field-error");
				return {focused: document.activeElement ? (document.activeElement.id || document.activeElement.className) + ": " + document.activeElement.textContent.trim() : "",
					first: first ? (first.id || first.className) + ": " + first.textContent.trim() : "",
					shown: [...document.querySelectorAll("main .form-error, main .field-error")].filter(e => e.checkVisibility()).map(e => e.id || e.className)};
			})()`
			f := browsertest.Eval[focus](t, ctx, focusJS)
			if f.First == "" || f.Focused != f.First {
				t.Errorf("after the error the focus is on %q, want the first message %q", f.Focused, f.First)
			}
			if !strings.Contains(strings.Join(f.Shown, " "), "agree-error") || !strings.Contains(strings.Join(f.Shown, " "), "typed_name-error") {
				t.Fatalf("messages shown: %q, want the agreement's and the name's", f.Shown)
			}
			// Fixing a field clears its message, and only its message.
			browsertest.Do(t, ctx, browsertest.Click("#agree"))
			f = browsertest.WaitFor[focus](t, ctx, "the agreement's message to go", `(() => { const f = `+focusJS+`; return f.shown.includes("agree-error") ? null : f; })()`)
			if !strings.Contains(strings.Join(f.Shown, " "), "typed_name-error") {
				t.Errorf("after ticking the agreement the messages shown are %q, want the name's still", f.Shown)
			}
			browsertest.Do(t, ctx, browsertest.SendKeys("#typed_name", "Zoë Nuñez"))
			browsertest.WaitFor[focus](t, ctx, "the name's message to go", `(() => { const f = `+focusJS+`; return f.shown.includes("typed_name-error") ? null : f; })()`)
		})
	}
}
