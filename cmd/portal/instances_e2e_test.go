package main

import (
	"net/http"
	"path/filepath"
	"sort"
	"testing"
	"time"

	"github.com/doorledger/doorledger/db/sqlite"
)

// leaseHolders reads who holds each lease of the data directory's database.
func leaseHolders(t *testing.T, d *sqlite.DB) map[string]string {
	t.Helper()
	rows, err := d.Reader().Query(`SELECT name, holder FROM leases`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	held := map[string]string{}
	for rows.Next() {
		var name, holder string
		if err := rows.Scan(&name, &holder); err != nil {
			t.Fatal(err)
		}
		held[name] = holder
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return held
}

// Two portals on one data directory, as two instances behind a load
// balancer (on an external broker: one with the embedded broker runs alone):
// a browser signed in through one is signed in on the other, and signed out
// through the other on both; the first holds every piece of background work,
// and when it stops the second takes all of it over.
func TestEndToEndTwoInstances(t *testing.T) {
	dir := t.TempDir()
	broker := noBrokerURL(t)
	// The default term (6 s, renewed every 2 s): with 900 ms, a renewal of
	// A's delayed past its term on a loaded machine (load average 10) let B
	// take a lease while A ran, twice this session. A releases its leases
	// when it stops, so B's takeover below waits one renewal period, not a
	// term.
	a := MustStartPortal(t, dir, "-instance", "a", "-lease-ttl", "6s", "-mqtt-url", broker)
	b := MustStartPortal(t, dir, "-instance", "b", "-lease-ttl", "6s", "-mqtt-url", broker)

	onA := NewClient(t, a.URL)
	onA.MustLogin(testAdminEmail, a.AdminPass)
	onB := *onA // the same browser (cookies are per host, not port), sent to B
	onB.base = b.URL
	if status, _ := onB.Get("/buildings"); status != http.StatusOK {
		t.Fatalf("signed in on A, GET /buildings on B: %d, want 200", status)
	}
	if status, loc, _ := onB.Post("/buildings", "/logout", nil); status != http.StatusSeeOther || loc != "/login" {
		t.Fatalf("logout on B: %d %q", status, loc)
	}
	for _, c := range []*Client{onA, &onB} {
		if status, _ := c.Get("/buildings"); status != http.StatusSeeOther {
			t.Fatalf("signed out on B, GET /buildings on %s: %d, want 303 to sign in", c.base, status)
		}
	}

	d := sqlite.NewDB(filepath.Join(dir, "doorledger.db"))
	if err := d.Open(); err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	held := leaseHolders(t, d)
	var names []string
	for name, holder := range held {
		names = append(names, name)
		if holder != "a" {
			t.Errorf("lease %q held by %q, want a (started first)", name, holder)
		}
	}
	sort.Strings(names)
	for _, want := range []string{"command retries", "job audit log", "job consent lapse", "job offline devices", "job session purge", "mail dispatch", "report generation"} {
		if _, ok := held[want]; !ok {
			t.Errorf("no lease %q among %q", want, names)
		}
	}

	a.Stop(t)
	deadline := time.Now().Add(20 * time.Second)
	for {
		now := leaseHolders(t, d)
		moved := len(now) == len(held)
		for _, holder := range now {
			moved = moved && holder == "b"
		}
		if moved {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after A stopped, leases held %v; want all %d by b", now, len(held))
		}
		time.Sleep(20 * time.Millisecond)
	}
	onB.MustLogin(testAdminEmail, a.AdminPass)
	if status, _ := onB.Get("/buildings"); status != http.StatusOK {
		t.Fatalf("B alone: GET /buildings %d", status)
	}
}
