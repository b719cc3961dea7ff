//go:build slow

package main

import (
	"context"
	"html"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/doorledger/doorledger/internal/browsertest"
)

// TestSlowBrowserAxe runs axe-core on every page each role reaches from its first
// screen by links (one page per kind: /devices/1 and /devices/2 are one), and
// on the public pages (sign-in, the signer's page, the building's notice), at
// desktop and phone size, in the package's one browser. A critical or serious
// violation fails the test; the others are logged.
//
// It runs under the slow build tag (.ci/run runs it): the whole sweep, about
// 65 pages at each size, takes minutes on a shared machine.
func TestSlowBrowserAxe(t *testing.T) {
	browsertest.Require(t)
	p, users := demoPortal(t)
	admin := NewClient(t, p.URL)
	admin.MustLogin(users["admin"][0], users["admin"][1])
	// The signer's pages: the demo's signed consent and the one awaiting
	// her signature (the demo's mail has no host in its links).
	public := []string{"/login"}
	_, body := admin.Get("/outbox")
	public = append(public, regexp.MustCompile(`/sign/[A-Za-z0-9_-]+`).FindAllString(body, -1)...)
	if len(public) != 3 {
		t.Fatalf("signing links in the demo's outbox: %q, want two", public[1:])
	}

	// A report, so that the report page is among the pages a board reaches.
	board := NewClient(t, p.URL)
	board.MustLogin(users["board"][0], users["board"][1])
	_, body = board.Get("/buildings")
	building := regexp.MustCompile(`href="(/buildings/\d+)"`).FindStringSubmatch(body)
	if building == nil {
		t.Fatalf("the board member sees no building:\n%s", body)
	}
	// Up to yesterday by this machine's clock: "today" here may be tomorrow in
	// the building's zone (from 00:00 UTC the demo's building is still on the
	// day before), and a range may not end after the building's today.
	if status, loc, body := board.Post(building[1]+"/reports", building[1]+"/reports", url.Values{"format": {"pdf"},
		"from": {time.Now().AddDate(0, 0, -30).Format(time.DateOnly)}, "to": {time.Now().AddDate(0, 0, -1).Format(time.DateOnly)}}); status != http.StatusSeeOther {
		t.Fatalf("report request: %d %q\n%s", status, loc, body)
	}

	pages := map[string][]string{}
	for _, role := range []string{"admin", "manager", "board", "installer"} {
		c := NewClient(t, p.URL)
		c.MustLogin(users[role][0], users[role][1])
		pages[role] = crawlPages(t, c, "/buildings", 80)
		t.Logf("%s reaches %d kinds of page: %v", role, len(pages[role]), pages[role])
		for _, pg := range pages[role] {
			if strings.HasPrefix(pg, "/notice/") {
				public = append(public, pg)
			}
		}
	}

	check := func(t *testing.T, ctx context.Context, who, path string) {
		t.Helper()
		browsertest.Navigate(t, ctx, p.URL+path)
		// Nothing scrolls sideways at either size, and no table cell cuts
		// its content off (the journal's sentences).
		if o := browsertest.MeasureOverflow(t, ctx); o.ScrollWidth > o.ClientWidth {
			t.Errorf("%s, %s: the page scrolls sideways (%d > %d px): %v", who, path, o.ScrollWidth, o.ClientWidth, o.Widest)
		}
		if cut := browsertest.Eval[[]string](t, ctx, `[...document.querySelectorAll("main td")].filter(td => td.scrollWidth > td.clientWidth + 1 && getComputedStyle(td).overflowX !== "visible").map(td => td.textContent.trim().slice(0, 60))`); len(cut) > 0 {
			t.Errorf("%s, %s: table cells cut off: %q", who, path, cut)
		}
		for _, v := range browsertest.Axe(t, ctx) {
			if v.Blocking() {
				t.Errorf("%s, %s: %s", who, path, v)
			} else {
				t.Logf("%s, %s: %s (%d)", who, path, v.ID, len(v.Nodes))
			}
		}
	}
	for _, size := range []struct {
		name string
		vp   browsertest.Viewport
	}{{"desktop", browsertest.Desktop}, {"phone", browsertest.Phone}} {
		t.Run(size.name, func(t *testing.T) {
			opts := browsertest.Options{Viewport: size.vp, Timeout: 10 * time.Minute}
			ctx := browsertest.NewTab(t, opts)
			for _, path := range public {
				check(t, ctx, "anyone", path)
			}
			for _, role := range []string{"admin", "manager", "board", "installer"} {
				ctx := browsertest.NewTab(t, opts)
				browsertest.Navigate(t, ctx, p.URL+"/login")
				browserSignIn(t, ctx, users[role][0], users[role][1])
				for _, path := range pages[role] {
					check(t, ctx, role, path)
				}
			}
		})
	}
}

// crawlPages follows the links of the HTML pages the client reaches from
// start, one page of each kind (a path with its numbers taken out, and its
// query's names), up to limit pages. It leaves out files (PDF, CSV, images),
// live streams and downloads.
func crawlPages(t *testing.T, c *Client, start string, limit int) []string {
	t.Helper()
	href := regexp.MustCompile(`href="([^"]+)"`)
	skip := regexp.MustCompile(`^/static/|/events$|/download$|/status$|\.(pdf|csv|png|jpg|svg|json|zip)$|/photos?(/|$)`)
	base, _ := url.Parse(c.base)
	seen := map[string]bool{}
	if u, err := base.Parse(start); err == nil {
		seen[pageKind(u)] = true
	}
	var pages []string
	queue := []string{start}
	for len(queue) > 0 && len(pages) < limit {
		path := queue[0]
		queue = queue[1:]
		resp, err := c.http.Get(c.base + path)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
			continue
		}
		pages = append(pages, path)
		for _, m := range href.FindAllStringSubmatch(string(b), -1) {
			u, err := base.Parse(html.UnescapeString(m[1]))
			if err != nil || u.Host != base.Host || skip.MatchString(u.Path) {
				continue
			}
			u.Fragment = ""
			if k := pageKind(u); !seen[k] {
				seen[k] = true
				queue = append(queue, u.RequestURI())
			}
		}
	}
	return pages
}

var digits = regexp.MustCompile(`\d+`)

func pageKind(u *url.URL) string {
	keys := make([]string, 0, len(u.Query()))
	for k := range u.Query() {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return digits.ReplaceAllString(u.Path, "N") + "?" + strings.Join(keys, "&")
}
