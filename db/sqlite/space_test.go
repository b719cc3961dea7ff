package sqlite_test

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/doorledger/doorledger"
	"github.com/doorledger/doorledger/db/sqlite"
)

// TestIsDiskFull: SQLite's SQLITE_FULL (here from max_page_count, as a full
// disk gives it), ENOSPC and EDQUOT from the file system are disk full; other
// errors are not.
func TestIsDiskFull(t *testing.T) {
	d, _ := MustOpenDB(t)
	ctx := context.Background()
	if _, err := d.Writer().ExecContext(ctx, `CREATE TABLE filler (b BLOB)`); err != nil {
		t.Fatal(err)
	}
	if err := d.SetMaxPages(ctx, pageCount(t, d)+2); err != nil {
		t.Fatal(err)
	}
	var full error
	for i := 0; i < 100 && full == nil; i++ {
		_, full = d.Writer().ExecContext(ctx, `INSERT INTO filler VALUES (zeroblob(4000))`)
	}
	if full == nil {
		t.Fatal("the page limit was never reached")
	}
	_, unique := d.Writer().ExecContext(ctx, `INSERT INTO users (id, email, name, role, password_hash, created_at, updated_at)
		SELECT id, email, name, role, password_hash, created_at, updated_at FROM users LIMIT 1`)
	for _, c := range []struct {
		err  error
		want bool
	}{
		{full, true},
		{fmt.Errorf("commit unlocks: %w", full), true},
		{&fs.PathError{Op: "write", Path: "x", Err: syscall.ENOSPC}, true},
		{fmt.Errorf("reserve: %w", syscall.EDQUOT), true},
		{unique, false},
		{errors.New("no space left on device"), false}, // not SQLite's, no errno: not classified by text
		{nil, false},
	} {
		if got := sqlite.IsDiskFull(c.err); got != c.want {
			t.Errorf("IsDiskFull(%v) = %v, want %v", c.err, got, c.want)
		}
	}
}

func pageCount(t *testing.T, d *sqlite.DB) int64 {
	t.Helper()
	var n int64
	if err := d.Reader().QueryRow(`PRAGMA page_count`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestSpaceDiskFull: when the database cannot grow (the page limit stands for
// the disk), ingest is refused as EUNAVAILABLE, from the floor on, while a
// manager's revoke still commits; the episode is recorded and mailed to the
// admins once; the reserve file is released at the start and written back
// when space returns, and ingest then resumes without a restart.
func TestSpaceDiskFull(t *testing.T) {
	w := newUnlockWorld(t, "UTC", time.Time{})
	ctx := context.Background()
	dev, _ := w.enabledDevice(t, w.A)
	sp := w.d.Space()
	sp.Floor, sp.Reserve = 256<<10, 64<<10
	if err := sp.Check(ctx); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(sp.ReservePath()); err != nil || fi.Size() != sp.Reserve {
		t.Fatalf("reserve file with room to spare: %v, %v; want %d bytes", fi, err, sp.Reserve)
	}

	// 600 KiB of room: ingest runs until the floor, then is refused.
	if err := w.d.SetMaxPages(ctx, pageCount(t, w.d)+150); err != nil {
		t.Fatal(err)
	}
	now := *w.Now
	stored, n := 0, 0
	var refused error
	for refused == nil {
		var batch []doorledger.UnlockEvent
		for range 50 {
			n++
			ev := unlockEv(dev, fmt.Sprintf("ev-%05d", n), now.Add(-time.Duration(n)*time.Millisecond), doorledger.UnlockGranted)
			ev.ActorRef = strings.Repeat("x", 200)
			batch = append(batch, ev)
		}
		if _, refused = w.svc.RecordUnlocksResult(ctx, batch); refused == nil {
			stored += len(batch)
		}
		if n > 100000 {
			t.Fatal("ingest was never refused")
		}
	}
	if code := doorledger.ErrorCode(refused); code != doorledger.EUNAVAILABLE {
		t.Fatalf("ingest on a full disk: %v (code %q), want EUNAVAILABLE", refused, code)
	}
	if !sp.Full() {
		t.Fatal("Full() = false after ingest was refused")
	}
	if _, err := os.Stat(sp.ReservePath()); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("the reserve file is still there: %v", err)
	}
	if got := w.count(t, `SELECT count(*) FROM unlock_events`); got != stored {
		t.Fatalf("%d events stored, %d acknowledged", got, stored)
	}

	// The revoke commits: the floor is left to it.
	cmd, err := w.Devices.SetDesiredState(uctx(w.MgrA), dev, doorledger.StateDisabled, "disk full test")
	if err != nil {
		t.Fatalf("revoke on a full disk: %v", err)
	}
	if cmd.State != doorledger.StateDisabled {
		t.Fatalf("revoke: %+v", cmd)
	}

	// One episode, one alert to each admin however often it is checked.
	for range 3 {
		if err := sp.Check(ctx); err != nil {
			t.Fatal(err)
		}
	}
	admins := w.count(t, `SELECT count(*) FROM users WHERE role = 'admin' AND disabled = 0`)
	if got := w.count(t, `SELECT count(*) FROM outbox WHERE kind = 'alert' AND subject LIKE '%disk is full%'`); got != admins || admins == 0 {
		t.Fatalf("%d disk-full alerts for %d admins", got, admins)
	}
	if got := w.count(t, `SELECT count(*) FROM disk_full_episodes WHERE ended_at IS NULL`); got != 1 {
		t.Fatalf("%d open episodes, want 1", got)
	}
	if _, err := w.svc.RecordUnlocksResult(ctx, []doorledger.UnlockEvent{unlockEv(dev, "during", now, doorledger.UnlockGranted)}); doorledger.ErrorCode(err) != doorledger.EUNAVAILABLE {
		t.Fatalf("ingest while still full: %v", err)
	}

	// Space returns: the next check ends the episode, writes the reserve
	// back, and ingest resumes.
	if err := w.d.SetMaxPages(ctx, 0); err != nil {
		t.Fatal(err)
	}
	if err := sp.Check(ctx); err != nil {
		t.Fatal(err)
	}
	if sp.Full() {
		t.Fatal("still full after space returned")
	}
	if fi, err := os.Stat(sp.ReservePath()); err != nil || fi.Size() != sp.Reserve {
		t.Fatalf("reserve file after space returned: %v", err)
	}
	if got := w.count(t, `SELECT count(*) FROM disk_full_episodes WHERE ended_at IS NOT NULL`); got != 1 {
		t.Fatalf("%d ended episodes, want 1", got)
	}
	if _, err := w.svc.RecordUnlocksResult(ctx, []doorledger.UnlockEvent{unlockEv(dev, "after", now, doorledger.UnlockGranted)}); err != nil {
		t.Fatalf("ingest after space returned: %v", err)
	}
}

// TestSpaceWithoutFloorStaysFull: with neither floor nor reserve, a write
// that found the disk full starts an episode that the next check does not end
// while nothing is free (it ended at once, and started again with the next
// write, once a second: the banner came and went).
func TestSpaceWithoutFloorStaysFull(t *testing.T) {
	w := newUnlockWorld(t, "UTC", time.Time{})
	ctx := context.Background()
	dev, _ := w.enabledDevice(t, w.A)
	sp := w.d.Space()
	sp.Floor, sp.Reserve = 0, 0
	if err := w.d.SetMaxPages(ctx, pageCount(t, w.d)+20); err != nil {
		t.Fatal(err)
	}
	var err error
	for n := 0; err == nil; n++ {
		if n > 10000 {
			t.Fatal("the page limit was never reached")
		}
		ev := unlockEv(dev, fmt.Sprintf("ev-%05d", n), (*w.Now).Add(-time.Duration(n)*time.Millisecond), doorledger.UnlockGranted)
		ev.ActorRef = strings.Repeat("x", 250)
		_, err = w.svc.RecordUnlocksResult(ctx, []doorledger.UnlockEvent{ev})
	}
	if doorledger.ErrorCode(err) != doorledger.EUNAVAILABLE || !sp.Full() {
		t.Fatalf("ingest past the page limit: %v, Full %v; want EUNAVAILABLE and full", err, sp.Full())
	}
	if err := sp.Check(ctx); err != nil && doorledger.ErrorCode(err) != doorledger.EUNAVAILABLE {
		t.Fatal(err)
	}
	if !sp.Full() {
		t.Fatal("the check ended the episode with the database still full")
	}
}
