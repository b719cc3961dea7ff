package main

import (
	"bytes"
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/doorledger/doorledger"
	"github.com/doorledger/doorledger/db/postgres"
	"github.com/doorledger/doorledger/db/sqlite"
	"github.com/doorledger/doorledger/internal/pgtest"
	"github.com/doorledger/doorledger/web"
)

// pgCluster is the package's throw-away PostgreSQL cluster (started by the
// first test that asks for a database, stopped by TestMain); its template
// holds every migration.
var pgCluster = pgtest.Cluster{Template: func(ctx context.Context, url string) error {
	db := postgres.NewDB(url)
	if err := db.Open(ctx); err != nil {
		return err
	}
	return db.Close()
}}

// sqliteDB is the app's SQLite database, for tests that reach under the
// services (a clock they control, the disk's limits, rows read directly).
func (a *app) sqliteDB() *sqlite.DB { return a.db.(*liteBackend).db }

// A page open on one instance wakes when a change is notified through
// another instance on the same PostgreSQL database, and an instance does
// not take back its own keys (it woke its pages when it sent them).
func TestRelayChangesBetweenInstances(t *testing.T) {
	url := pgCluster.Database(t)
	open := func() *postgres.DB {
		db := postgres.NewDB(url)
		if err := db.Open(context.Background()); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		return db
	}
	ctx, cancel := context.WithCancel(context.Background())
	hubA, hubB := web.NewHub(), web.NewHub()
	waitA := relayChanges(ctx, open(), hubA, discardLog)
	waitB := relayChanges(ctx, open(), hubB, discardLog)
	defer func() { cancel(); waitA(); waitB() }()

	onA, unsubscribe := hubA.Subscribe(web.DeviceKey(7))
	defer unsubscribe()
	// B notifies until A's page wakes: a key sent before A listens is lost
	// (the page's tick covers that).
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(30 * time.Second)
	for woken := false; !woken; {
		hubB.Notify(web.DeviceKey(7))
		select {
		case <-onA:
			woken = true
		case <-tick.C:
		case <-deadline:
			t.Fatal("a change notified on instance B never woke the page on instance A")
		}
	}

	// Keys come back to their sender through PostgreSQL; it skips them.
	r := &pageRelay{origin: "aaaa"}
	for msg, want := range map[string]bool{"aaaa device:7": false, "bbbb device:7": true, "bbbb ": false, "": false, "device:7": false} {
		if key, ok := r.fromOthers(msg); ok != want || ok && key != "device:7" {
			t.Errorf("fromOthers(%q) = %q, %v; want %v", msg, key, ok, want)
		}
	}
}

// On PostgreSQL, instances with their own data directories still meet in
// the database: portals on an external broker run together; one with the
// embedded broker runs alone, either way round.
func TestPostgresEmbeddedBrokerRunsAlone(t *testing.T) {
	url := pgCluster.Database(t)
	env := map[string]string{"DOORLEDGER_DATABASE_URL": url}
	noBroker := noBrokerURL(t)
	serve := func(args ...string) error {
		var out, errb bytes.Buffer
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		return run(ctx, append([]string{"serve", "-addr", "127.0.0.1:0", "-mqtt-addr", "127.0.0.1:0", "-data", t.TempDir()}, args...),
			func(k string) string { return env[k] }, &out, &errb)
	}

	embedded := MustStartPortalEnv(t, "", env)
	if err := serve("-mqtt-url", noBroker); err == nil || !strings.Contains(err.Error(), "embedded MQTT broker runs on this database") {
		t.Errorf("an external-broker portal beside an embedded one: %v", err)
	}
	if err := serve(); err == nil || !strings.Contains(err.Error(), "another portal runs on this database") {
		t.Errorf("a second embedded-broker portal: %v", err)
	}
	embedded.Stop(t)

	a := MustStartPortalEnv(t, "", env, "-mqtt-url", noBroker)
	b := MustStartPortalEnv(t, "", env, "-mqtt-url", noBroker)
	if err := serve(); err == nil || !strings.Contains(err.Error(), "another portal runs on this database") {
		t.Errorf("an embedded-broker portal beside external-broker ones: %v", err)
	}
	a.Stop(t)
	b.Stop(t)
}

// The portal on PostgreSQL, as one instance with the embedded broker: the
// consent story, a device enabled by the signature and revoked by its
// manager, and `portal audit verify` on the database afterwards.
func TestEndToEndPostgres(t *testing.T) {
	url := pgCluster.Database(t)
	p := MustStartPortalEnv(t, "", map[string]string{"DOORLEDGER_DATABASE_URL": url})
	lastPortal = p
	mgr, device, id, secret := consentedDevice(t, p)
	sim := startSim(t, p, id, secret, t.TempDir())
	awaitApplied(t, sim, 1, doorledger.StateEnabled)
	awaitPage(t, mgr, device, `data-status="confirmed"`)
	if status, _, body := mgr.Post(device, device+"/revoke", nil); status != http.StatusSeeOther {
		t.Fatalf("revoke: %d\n%s", status, body)
	}
	awaitApplied(t, sim, 2, doorledger.StateDisabled)
	awaitPage(t, mgr, device, `data-status="confirmed"`)
	p.Stop(t)

	var out, errb bytes.Buffer
	if err := run(context.Background(), []string{"audit", "verify", "-data", p.DataDir, "-database-url", url}, func(string) string { return "" }, &out, &errb); err != nil {
		t.Fatalf("audit verify: %v\n%s%s", err, out.String(), errb.String())
	}
	if !strings.Contains(out.String(), "OK: every entry matches") {
		t.Errorf("audit verify:\n%s", out.String())
	}
}
