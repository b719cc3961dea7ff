package main

import (
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
)

// The attention list through the portal: the first screen after
// sign-in says "Nothing needs you" with when it was checked; a device found
// without consent appears on it for the building's manager and the admin,
// with a link to the device's page, and on the buildings list's row; a
// manager of another building sees none of it; installers are sent to their
// buildings and their stream is not found.
func TestAttentionEndToEnd(t *testing.T) {
	p := MustStartPortal(t, "")
	admin := NewClient(t, p.URL)
	admin.MustLogin(testAdminEmail, p.AdminPass)

	if status, body := admin.Get("/"); status != http.StatusOK || !strings.Contains(body, "<h1>What needs attention</h1>") ||
		!strings.Contains(body, "Nothing needs you.") || !regexp.MustCompile(`Last checked <time datetime="[0-9T:Z-]+">`).MatchString(body) {
		t.Fatalf("first screen of an empty portal: %d\n%s", status, body)
	}
	var paths []string
	for _, name := range []string{"Oak Court", "Pine House"} {
		status, loc, _ := admin.Post("/buildings/new", "/buildings", url.Values{"name": {name}, "address": {"1 " + name}, "timezone": {"America/Chicago"}})
		if status != http.StatusSeeOther {
			t.Fatalf("create %s: %d", name, status)
		}
		paths = append(paths, loc)
	}
	userID := func(name string) string {
		_, body := admin.Get("/users")
		m := regexp.MustCompile(`href="/users/(\d+)">` + name).FindStringSubmatch(body)
		if m == nil {
			t.Fatalf("%s not listed", name)
		}
		return m[1]
	}
	for _, u := range []struct{ name, email, role, building string }{
		{"Mia Manager", "mia@example.com", "manager", paths[0]},
		{"Max Other", "max@example.com", "manager", paths[1]},
		{"Bo Board", "bo@example.com", "board", paths[0]},
		{"Ivy Installer", "ivy@example.com", "installer", paths[0]},
	} {
		if status, _, body := admin.Post("/users/new", "/users", url.Values{"name": {u.name}, "email": {u.email}, "role": {u.role}, "password": {"correct horse battery"}}); status != http.StatusSeeOther {
			t.Fatalf("create %s: %d\n%s", u.email, status, body)
		}
		if status, _, _ := admin.Post(u.building, u.building+"/grants", url.Values{"user_id": {userID(u.name)}}); status != http.StatusSeeOther {
			t.Fatalf("grant %s: %d", u.email, status)
		}
	}
	client := func(email string) *Client {
		c := NewClient(t, p.URL)
		c.MustLogin(email, "correct horse battery")
		return c
	}
	mgr, other, board, inst := client("mia@example.com"), client("max@example.com"), client("bo@example.com"), client("ivy@example.com")

	status, loc, body := mgr.Post(paths[0], paths[0]+"/devices/found", url.Values{"vendor": {"Ghost"}, "model": {"G1"}, "serial": {"GH-1"}, "location": {"boiler room"}})
	if status != http.StatusSeeOther || !strings.HasPrefix(loc, "/devices/") {
		t.Fatalf("record found device: %d %q\n%s", status, loc, body)
	}
	devicePath := loc
	link := `<a href="` + devicePath + `">Device ` + strings.TrimPrefix(devicePath, "/devices/") + `: Ghost G1, serial GH-1, at boiler room`
	for who, c := range map[string]*Client{"manager": mgr, "admin": admin, "board": board} {
		status, body := c.Get("/")
		if status != http.StatusOK || !strings.Contains(body, "1 device found without consent") || !strings.Contains(body, link) ||
			!strings.Contains(body, `sse-connect="/attention/events"`) || !strings.Contains(body, "1 building needs you") {
			t.Errorf("%s's first screen: %d\n%s", who, status, body)
		}
		if status, _ := c.Get(devicePath); status != http.StatusOK {
			t.Errorf("%s follows the item's link %s: %d", who, devicePath, status)
		}
		_, body = c.Get("/buildings")
		row := regexp.MustCompile(`(?s)<td class="attention-cells" data-building="` + strings.TrimPrefix(paths[0], "/buildings/") + `">(.*?)</td>`).FindStringSubmatch(body)
		if row == nil || !strings.Contains(row[1], "1 found without consent") {
			t.Errorf("%s's buildings list: Oak Court's row has no count\n%s", who, body)
		}
	}
	if _, body := board.Get("/"); !strings.Contains(body, "the building's managers resolve them") {
		t.Errorf("the board's first screen does not say it is read-only")
	}
	if _, body := other.Get("/"); !strings.Contains(body, "Nothing needs you.") || strings.Contains(body, "Oak Court") {
		t.Errorf("a manager of another building sees Oak Court's attention:\n%s", body)
	}
	if status, body := inst.Get("/"); status != http.StatusSeeOther || strings.Contains(body, "What needs attention") {
		t.Errorf("installer's first screen: %d, want a redirect to their buildings", status)
	}
	resp, err := inst.http.Get(p.URL + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if loc := resp.Header.Get("Location"); loc != "/buildings" {
		t.Errorf("installer's first screen redirects to %q, want /buildings", loc)
	}
	if status, _ := inst.Get("/attention/events"); status != http.StatusNotFound {
		t.Errorf("installer's attention stream: %d, want 404", status)
	}
	if _, body := inst.Get("/buildings"); strings.Contains(body, "Needs attention") {
		t.Errorf("the installer's buildings list shows attention counts")
	}
}
