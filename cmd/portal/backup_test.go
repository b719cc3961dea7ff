package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"database/sql"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/doorledger/doorledger"
	"github.com/doorledger/doorledger/devicectl"
)

// TestBackupUnderWriteLoad: `portal backup` runs against the live data
// directory while a device reports unlocks every 5 ms; the backup is readable
// only by its owner, `portal restore` refuses the live directory and a
// non-empty one, and the restored directory passes `portal audit verify` with
// a signed head the running portal signed too, holding every event committed
// before the backup began.
func TestBackupUnderWriteLoad(t *testing.T) {
	p := MustStartPortal(t, "")
	_, _, id, secret := consentedDevice(t, p)
	sim := startSim(t, p, id, secret, t.TempDir())
	awaitApplied(t, sim, 1, doorledger.StateEnabled)

	live, err := sql.Open("sqlite", "file:"+filepath.Join(p.DataDir, dbFile)+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer live.Close()
	count := func(db *sql.DB) (n int64) {
		t.Helper()
		if err := db.QueryRow(`SELECT count(*) FROM unlock_events`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}

	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(5 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			if _, err := sim.Unlock(devicectl.EventMessage{}); err != nil {
				t.Errorf("unlock: %v", err)
				return
			}
		}
	}()
	defer func() { close(stop); wg.Wait() }()
	heads := func() (n int64) {
		if err := live.QueryRow(`SELECT count(*) FROM log_heads`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	for deadline := time.Now().Add(30 * time.Second); count(live) < 100 || heads() == 0; {
		if time.Now().After(deadline) {
			t.Fatal("the device's unlocks did not reach the database, or no log head was signed")
		}
		time.Sleep(20 * time.Millisecond)
	}

	ctx := context.Background()
	getenv := func(string) string { return "" }
	var out, errb bytes.Buffer
	backup := filepath.Join(t.TempDir(), "doorledger.backup")
	before := count(live)
	if err := run(ctx, []string{"backup", "-data", p.DataDir, "-out", backup}, getenv, &out, &errb); err != nil {
		t.Fatalf("backup under load: %v\n%s", err, errb.String())
	}
	after := count(live)
	t.Logf("%s(events in the live database: %d before the backup, %d after)", out.String(), before, after)
	fi, err := os.Stat(backup)
	if err != nil {
		t.Fatal(err)
	}
	if got := fi.Mode().Perm(); got != 0o600 {
		t.Errorf("backup file mode %v, want 0600: it holds the keys", got)
	}
	if err := run(ctx, []string{"backup", "-data", p.DataDir, "-out", backup}, getenv, &out, &errb); err == nil {
		t.Error("a second backup over an existing file was not refused")
	}

	// Restore refuses the live directory and a non-empty one.
	err = run(ctx, []string{"restore", "-in", backup, "-data", p.DataDir}, getenv, &out, &errb)
	if err == nil || !strings.Contains(err.Error(), "holds a database already") {
		t.Errorf("restore over the live directory: %v", err)
	}
	full := t.TempDir()
	if err := os.WriteFile(filepath.Join(full, "notes.txt"), []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := run(ctx, []string{"restore", "-in", backup, "-data", full}, getenv, &out, &errb); err == nil || !strings.Contains(err.Error(), "not empty") {
		t.Errorf("restore into a non-empty directory: %v", err)
	}

	restored := filepath.Join(t.TempDir(), "restored")
	out.Reset()
	if err := run(ctx, []string{"restore", "-in", backup, "-data", restored}, getenv, &out, &errb); err != nil {
		t.Fatalf("restore: %v\n%s", err, errb.String())
	}
	if !strings.Contains(out.String(), "WARNING: the restored log ends at its head of ") {
		t.Errorf("restore does not warn that the log rolls back:\n%s", out.String())
	}
	for _, name := range []string{"vendor.key", "session.keys", "log.key", "log.origin"} {
		a, err1 := os.ReadFile(filepath.Join(p.DataDir, name))
		b, err2 := os.ReadFile(filepath.Join(restored, name))
		if err1 != nil || err2 != nil || !bytes.Equal(a, b) {
			t.Errorf("%s not restored as it was (%v, %v)", name, err1, err2)
		}
	}
	back, err := sql.Open("sqlite", "file:"+filepath.Join(restored, dbFile)+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer back.Close()
	if n := count(back); n < before || n > after {
		t.Errorf("restored %d events; the live database held %d when the backup began and %d when it ended", n, before, after)
	}
	var dup int64
	if err := back.QueryRow(`SELECT count(*) - count(DISTINCT event_id) FROM unlock_events`).Scan(&dup); err != nil || dup != 0 {
		t.Errorf("restored events doubled: %d (%v)", dup, err)
	}

	out.Reset()
	if err := run(ctx, []string{"audit", "verify", "-data", restored}, getenv, &out, &errb); err != nil {
		t.Fatalf("audit verify on the restored directory: %v\n%s", err, out.String())
	}
	// The restored head is one the live portal signed: same size, same root.
	var size int64
	var root []byte
	if err := back.QueryRow(`SELECT size, root FROM log_heads ORDER BY size DESC LIMIT 1`).Scan(&size, &root); err != nil {
		t.Fatalf("restored log head: %v", err)
	}
	var liveRoot []byte
	if err := live.QueryRow(`SELECT root FROM log_heads WHERE size = ?`, size).Scan(&liveRoot); err != nil || !bytes.Equal(root, liveRoot) {
		t.Errorf("restored head (size %d) not the live log's head of that size: %x vs %x (%v)", size, root, liveRoot, err)
	}
}

// TestRestoreRefusesHostileArchive: a backup whose entries would land outside
// the data directory, or that holds no database, is refused and leaves nothing.
func TestRestoreRefusesHostileArchive(t *testing.T) {
	ctx := context.Background()
	getenv := func(string) string { return "" }
	for name, entries := range map[string]map[string]string{
		"escape":      {dbFile: "x", "../outside": "x"},
		"absolute":    {dbFile: "x", "/tmp/abs": "x"},
		"no database": {"vendor.key": "x"},
	} {
		t.Run(name, func(t *testing.T) {
			var buf bytes.Buffer
			mustWriteTarGz(t, &buf, entries)
			in := filepath.Join(t.TempDir(), "b")
			if err := os.WriteFile(in, buf.Bytes(), 0o600); err != nil {
				t.Fatal(err)
			}
			dir := filepath.Join(t.TempDir(), "restored")
			var out, errb bytes.Buffer
			if err := run(ctx, []string{"restore", "-in", in, "-data", dir}, getenv, &out, &errb); err == nil {
				t.Fatal("restored")
			}
			if _, err := os.Stat(dir); !os.IsNotExist(err) {
				t.Errorf("a refused restore left %s behind (%v)", dir, err)
			}
			if _, err := os.Stat(filepath.Join(filepath.Dir(dir), "outside")); !os.IsNotExist(err) {
				t.Errorf("an entry escaped the data directory")
			}
		})
	}
}

func mustWriteTarGz(t *testing.T, w *bytes.Buffer, entries map[string]string) {
	t.Helper()
	zw := gzip.NewWriter(w)
	tw := tar.NewWriter(zw)
	for name, body := range entries {
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o600, Size: int64(len(body)), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write([]byte(body)); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestBackupRefusedOnPostgres: on PostgreSQL `portal backup` refuses and
// points to PostgreSQL's tools and docs/deploy.md; on SQLite it goes on.
func TestBackupRefusedOnPostgres(t *testing.T) {
	if err := refuseBackupOnPostgres(""); err != nil {
		t.Errorf("refused without a database URL: %v", err)
	}
	// Through the command, as an operator runs it: the URL from the
	// environment, as the portal's units set it, and nothing is written.
	out := filepath.Join(t.TempDir(), "b.tar.gz")
	env := func(k string) string {
		if k == "DOORLEDGER_DATABASE_URL" {
			return "postgres://doorledger@db/doorledger"
		}
		return ""
	}
	err := backupCommand(context.Background(), []string{"-data", t.TempDir(), "-out", out}, env, io.Discard, io.Discard)
	if err == nil {
		t.Fatal("backup not refused on PostgreSQL")
	}
	if _, serr := os.Stat(out); serr == nil {
		t.Error("a refused backup wrote its file")
	}
	for _, want := range []string{"PostgreSQL", "pg_dump", "pg_basebackup", "docs/deploy.md", "vendor.key"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("refusal lacks %q: %v", want, err)
		}
	}
	doc, rerr := os.ReadFile("../../docs/deploy.md")
	if rerr != nil {
		t.Fatal(rerr)
	}
	if !strings.Contains(string(doc), "## Backup and restore") {
		t.Error(`docs/deploy.md has no "## Backup and restore", where the refusal points`)
	}
}
