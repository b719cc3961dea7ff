package main

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/doorledger/doorledger"
	"github.com/doorledger/doorledger/devicectl"
	"github.com/jackc/pgx/v5"
)

// TestMigrateToPostgres: a data directory made by the portal (a consent
// signed through its link, a device enabled, a simulated device's unlocks,
// a PDF report, the log sequenced at shutdown) goes to PostgreSQL with
// `portal migrate`, which proves the copy; the copy holds the same rows,
// report hash and log, its sequences go on past the copied ids and its
// triggers are on. A second run is refused (the target is not empty), and
// copies of the directory with a rule broken behind SQLite's back are
// refused and leave their target empty.
func TestMigrateToPostgres(t *testing.T) {
	p := MustStartPortal(t, "")
	lastPortal = p
	mgr, device, id, secret := consentedDevice(t, p)
	sim := startSim(t, p, id, secret, t.TempDir())
	awaitApplied(t, sim, 1, doorledger.StateEnabled)
	building := buildingOf(t, mgr, device)
	chicago, _ := time.LoadLocation("America/Chicago")
	now := time.Now()
	const events = 40
	for i := range events {
		res := doorledger.UnlockGranted
		if i%7 == 0 {
			res = doorledger.UnlockDenied
		}
		if _, err := sim.Unlock(devicectl.EventMessage{ActorRef: fmt.Sprintf("parcel-%d", i), Result: res,
			OccurredAt: now.Add(time.Duration(i-60) * time.Minute).UTC()}); err != nil {
			t.Fatal(err)
		}
	}
	reader := openReader(t, p.DataDir)
	awaitCount(t, reader, events, `SELECT count(*) FROM unlock_events`)
	today := now.In(chicago).Format("2006-01-02")
	page := awaitReport(t, mgr, requestReport(t, mgr, building, "pdf", now.In(chicago).AddDate(0, 0, -1).Format("2006-01-02"), today))
	m := reportSHA256RE.FindStringSubmatch(page)
	if m == nil {
		t.Fatalf("no hash on the report's page:\n%s", page)
	}
	reportHash := m[1]
	p.Stop(t)
	reader.Close()

	// Broken rules first, each on a copy of the directory: the SQLite
	// triggers dropped, then a row changed as the target's rules forbid.
	for _, c := range []struct{ name, tamper, want string }{
		{"consent expired under an enabled device", `UPDATE consents SET expires_at = '2020-01-01T00:00:00.000000Z' WHERE status = 'signed'`,
			fmt.Sprintf("no device is enabled without an active consent of its building, signed as its policy requires (trigger devices_enable_needs_consent, consents_end_needs_devices_disabled, consents_signed_needs_quorum, consents_signed_only_from_awaiting): device %d", id)},
		{"open anomalies miscounted", `UPDATE building_open_anomalies SET n = n + 3`,
			"each building's open anomalies are its anomalous unlock events not acknowledged"},
		{"an event of a device that does not exist", `UPDATE unlock_events SET device_id = 9999 WHERE id = (SELECT max(id) FROM unlock_events)`,
			"the copy breaks unlock_events's foreign key unlock_events_device_id_fkey"},
		{"an event's effective time moved", `UPDATE unlock_events SET effective_at = '2026-01-01T00:00:00.000000Z' WHERE id = (SELECT max(id) FROM unlock_events)`,
			"an unlock event's effective time is its received time when flagged clock_skew, else its occurred time"},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := copyDataDir(t, p.DataDir)
			tamper(t, filepath.Join(dir, dbFile), c.tamper)
			url := pgCluster.Database(t)
			var out, errb bytes.Buffer
			err := run(context.Background(), []string{"migrate", "-data", dir, "-to", url}, noEnv, &out, &errb)
			if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "rolled back") {
				t.Fatalf("migrate: %v, want it refused with %q\n%s", err, c.want, out.String())
			}
			if n := pgCount(t, url, `SELECT count(*) FROM users`); n != 0 {
				t.Errorf("the refused copy left %d users on the target", n)
			}
			if n := pgCount(t, url, `SELECT count(*) FROM pg_trigger WHERE NOT tgisinternal AND tgenabled <> 'O'`); n != 0 {
				t.Errorf("the refused copy left %d triggers off", n)
			}
		})
	}

	url := pgCluster.Database(t)
	var out, errb bytes.Buffer
	if err := run(context.Background(), []string{"migrate", "-data", p.DataDir, "-to", url}, noEnv, &out, &errb); err != nil {
		t.Fatalf("migrate: %v\n%s\n%s", err, out.String(), errb.String())
	}
	t.Logf("portal migrate:\n%s", out.String())
	for _, want := range []string{"Row counts:   equal in all", "Reports:      1, every hash identical.", "Audit verify: OK on the target"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}

	src, err := sql.Open("sqlite", "file:"+filepath.Join(p.DataDir, dbFile)+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	for _, table := range []string{"users", "consents", "consent_signatures", "devices", "commands", "unlock_events", "audit_entries", "log_leaves", "log_heads", "reports", "outbox"} {
		var want int64
		if err := src.QueryRow(`SELECT count(*) FROM ` + table).Scan(&want); err != nil {
			t.Fatal(err)
		}
		if got := pgCount(t, url, `SELECT count(*) FROM `+table); got != want || want == 0 {
			t.Errorf("%s: %d rows on PostgreSQL, %d on SQLite", table, got, want)
		}
	}
	if n := pgCount(t, url, `SELECT count(*) FROM reports WHERE sha256 = '`+reportHash+`' AND status = 'done'`); n != 1 {
		t.Errorf("the report of hash %s is not on PostgreSQL, done", reportHash)
	}
	if n := pgCount(t, url, `SELECT count(*) FROM pg_trigger WHERE NOT tgisinternal AND tgenabled <> 'O'`); n != 0 {
		t.Errorf("%d triggers left off after the copy", n)
	}
	for _, table := range []string{"users", "audit_entries", "unlock_events", "consents", "devices", "commands"} {
		next := pgCount(t, url, `SELECT nextval(pg_get_serial_sequence('`+table+`', 'id'))`)
		if max := pgCount(t, url, `SELECT max(id) FROM `+table); next <= max {
			t.Errorf("%s: the next id %d is not past the copied ids (up to %d)", table, next, max)
		}
	}
	// The target's rules hold again: the core rule refuses an enable
	// without consent, as on any database db/postgres made.
	conn, err := pgx.Connect(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	_, err = conn.Exec(context.Background(), `UPDATE devices SET desired_state = 'enabled', consent_id = NULL WHERE id = $1`, id)
	conn.Close(context.Background())
	if err == nil || !strings.Contains(err.Error(), "no device is enabled without an active consent") {
		t.Errorf("enabling a device without consent on the copy: %v", err)
	}

	out.Reset()
	err = run(context.Background(), []string{"migrate", "-data", p.DataDir, "-to", url}, noEnv, &out, &errb)
	if err == nil || !strings.Contains(err.Error(), "the target database is not empty: ") || !strings.Contains(err.Error(), "users") ||
		!strings.Contains(err.Error(), "create a new database") {
		t.Errorf("second migrate into the same database: %v", err)
	}
}

// TestMigrateRefusesARunningPortal: the copy reads one snapshot; a portal
// writing meanwhile would leave rows on SQLite only.
func TestMigrateRefusesARunningPortal(t *testing.T) {
	p := MustStartPortal(t, "")
	var out, errb bytes.Buffer
	err := run(context.Background(), []string{"migrate", "-data", p.DataDir, "-to", "postgres://nobody@127.0.0.1:1/none"}, noEnv, &out, &errb)
	if err == nil || !strings.Contains(err.Error(), "stop the portal first") {
		t.Errorf("migrate beside a running portal: %v", err)
	}
	if err := run(context.Background(), []string{"migrate", "-data", p.DataDir}, noEnv, &out, &errb); err == nil || !strings.Contains(err.Error(), "want -to URL") {
		t.Errorf("migrate without -to: %v", err)
	}
}

func noEnv(string) string { return "" }

func pgCount(tb testing.TB, url, query string) int64 {
	tb.Helper()
	conn, err := pgx.Connect(context.Background(), url)
	if err != nil {
		tb.Fatal(err)
	}
	defer conn.Close(context.Background())
	var n *int64
	if err := conn.QueryRow(context.Background(), query).Scan(&n); err != nil {
		tb.Fatalf("%s: %v", query, err)
	}
	if n == nil {
		return 0
	}
	return *n
}

// copyDataDir copies a stopped portal's data directory.
func copyDataDir(tb testing.TB, dir string) string {
	tb.Helper()
	to := tb.TempDir()
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		if err := os.MkdirAll(filepath.Dir(filepath.Join(to, rel)), 0o700); err != nil {
			return err
		}
		return copyFile(p, filepath.Join(to, rel))
	})
	if err != nil {
		tb.Fatal(err)
	}
	return to
}

// tamper drops every trigger of the SQLite database at path, then runs
// stmt: what no code path of the portal could write.
func tamper(tb testing.TB, path, stmt string) {
	tb.Helper()
	db, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		tb.Fatal(err)
	}
	defer db.Close()
	rows, err := db.Query(`SELECT name FROM sqlite_master WHERE type = 'trigger'`)
	if err != nil {
		tb.Fatal(err)
	}
	var names []string
	for rows.Next() {
		var n string
		rows.Scan(&n)
		names = append(names, n)
	}
	rows.Close()
	for _, n := range names {
		if _, err := db.Exec(`DROP TRIGGER "` + n + `"`); err != nil {
			tb.Fatal(err)
		}
	}
	if res, err := db.Exec(stmt); err != nil {
		tb.Fatalf("%s: %v", stmt, err)
	} else if n, _ := res.RowsAffected(); n == 0 {
		tb.Fatalf("%s changed nothing", stmt)
	}
}
