//go:build slow

package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/doorledger/doorledger"
	"github.com/doorledger/doorledger/devicectl"
	"github.com/doorledger/doorledger/internal/testtool"
)

const (
	backupHold = 20 * time.Second // how long the long read transaction is held open
	walLimit   = 16 << 20         // the portal's journal_size_limit (db/sqlite/db.go dsn)
)

// The database held by a backup (docs/reliability.md): while a device
// reports unlocks without pause and a manager revokes and enables its device
// again and again, Debian's sqlite3 runs `.backup` against the live file
// several times, then holds a read transaction open for backupHold. Every
// write answers (a revoke or enable is a redirect, never a blank error),
// every backup and the live file pass PRAGMA integrity_check, every
// acknowledged event is in the database once, `portal audit verify` passes,
// and the WAL the reader pinned is checkpointed and cut back once it goes.
func TestSlowDatabaseHeldByBackup(t *testing.T) {
	sqlite3 := testtool.Require(t, "sqlite3")
	p := MustStartPortal(t, "")
	lastPortal = p
	mgr, device, id, secret := consentedDevice(t, p)
	sim := startSim(t, p, id, secret, t.TempDir())
	awaitApplied(t, sim, 1, doorledger.StateEnabled)
	dbPath := filepath.Join(p.DataDir, "doorledger.db")
	walSize := func() int64 {
		fi, err := os.Stat(dbPath + "-wal")
		if err != nil {
			return 0
		}
		return fi.Size()
	}
	cli := func(args ...string) string {
		t.Helper()
		out, err := exec.Command(sqlite3, args...).CombinedOutput()
		if err != nil {
			t.Fatalf("sqlite3 %q: %v\n%s", args, err, out)
		}
		return strings.TrimSpace(string(out))
	}

	// The load: unlocks every 5 ms, a revoke or enable every 100 ms.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var sent atomic.Int64
	wg.Add(2)
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
			sent.Add(1)
		}
	}()
	type write struct {
		status int
		took   time.Duration
		body   string
	}
	var mu sync.Mutex
	var writes []write
	go func() {
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-time.After(100 * time.Millisecond):
			}
			action := "/revoke"
			if i%2 == 1 {
				action = "/enable"
			}
			csrf := mgr.CSRF(device)
			start := time.Now()
			resp, err := mgr.http.PostForm(mgr.base+device+action, map[string][]string{"_csrf": {csrf}})
			took := time.Since(start)
			if err != nil {
				t.Errorf("POST %s: %v", action, err)
				return
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			mu.Lock()
			writes = append(writes, write{resp.StatusCode, took, string(b)})
			mu.Unlock()
		}
	}()
	defer func() {
		select {
		case <-stop:
		default:
			close(stop)
		}
		wg.Wait()
	}()

	// Backups of the live file, one after another, while the load runs.
	for i := range 3 {
		time.Sleep(time.Second)
		backup := filepath.Join(t.TempDir(), fmt.Sprintf("backup-%d.db", i))
		start := time.Now()
		cli(dbPath, ".backup "+backup)
		fi, _ := os.Stat(backup)
		t.Logf("backup %d: %d bytes in %v, WAL %d bytes", i, fi.Size(), time.Since(start).Round(time.Millisecond), walSize())
		if got := cli("-readonly", backup, "PRAGMA integrity_check"); got != "ok" {
			t.Fatalf("backup %d integrity_check: %s", i, got)
		}
	}

	// A long read transaction, held through a pipe.
	reader := exec.Command(sqlite3, dbPath)
	stdin, _ := reader.StdinPipe()
	stdout, _ := reader.StdoutPipe()
	if err := reader.Start(); err != nil {
		t.Fatal(err)
	}
	io.WriteString(stdin, "BEGIN;\nSELECT count(*) FROM unlock_events;\n")
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		t.Fatalf("reader: %v", err)
	}
	walAtBegin := walSize()
	t.Logf("reader holds a snapshot of %s events; WAL %d bytes", strings.TrimSpace(line), walAtBegin)
	sentAtBegin := sent.Load()
	walMax := walAtBegin
	held := time.Now()
	for time.Since(held) < backupHold {
		time.Sleep(500 * time.Millisecond)
		walMax = max(walMax, walSize())
	}
	sentHeld := sent.Load() - sentAtBegin
	io.WriteString(stdin, "COMMIT;\n.quit\n")
	stdin.Close()
	if err := reader.Wait(); err != nil {
		t.Fatalf("reader: %v", err)
	}
	t.Logf("while the reader held it (%v, %d events sent): WAL grew from %d to %d bytes (%.0f bytes per event)",
		backupHold, sentHeld, walAtBegin, walMax, float64(walMax-walAtBegin)/float64(max(sentHeld, 1)))
	if walMax <= walLimit {
		t.Fatalf("the WAL grew only to %d bytes while a reader held it: the test did not hold the database long enough", walMax)
	}

	// Once the reader has gone, the portal's checkpoints resume and the
	// WAL is cut back to the journal size limit, while the load goes on.
	released := time.Now()
	deadline := released.Add(60 * time.Second)
	var walAfter int64
	for {
		walAfter = walSize()
		if walAfter <= walLimit {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the WAL is still %d bytes (%d at most while held) a minute after the reader went", walAfter, walMax)
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Logf("after the reader went: WAL %d bytes", walAfter)
	close(stop)
	wg.Wait()

	// Every write answered; every acknowledged event is in.
	var worst time.Duration
	for _, w := range writes {
		worst = max(worst, w.took)
		if w.status != http.StatusSeeOther {
			if w.status < 400 || strings.TrimSpace(w.body) == "" {
				t.Errorf("a write answered %d with %q", w.status, w.body)
			}
			t.Logf("a write answered %d: %.200s", w.status, w.body)
		}
	}
	t.Logf("%d revokes/enables, slowest %v", len(writes), worst.Round(time.Millisecond))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := sim.AwaitDelivered(ctx); err != nil {
		t.Fatalf("%d events still undelivered: %v", sim.Undelivered(), err)
	}
	if got, want := cli("-readonly", dbPath, fmt.Sprintf("SELECT count(*) FROM unlock_events WHERE device_id = %d", id)), fmt.Sprint(sent.Load()); got != want {
		t.Fatalf("%s events in the database, %s acknowledged", got, want)
	}
	if got := cli("-readonly", dbPath, "PRAGMA integrity_check"); got != "ok" {
		t.Fatalf("live database integrity_check: %s", got)
	}
	t.Logf("%d events acknowledged, all in the database", sent.Load())
	p.Stop(t)
	var out, errb strings.Builder
	if err := run(context.Background(), []string{"audit", "verify", "-data", p.DataDir}, func(string) string { return "" }, &out, &errb); err != nil {
		t.Fatalf("audit verify: %v\n%s%s", err, out.String(), errb.String())
	}
}
