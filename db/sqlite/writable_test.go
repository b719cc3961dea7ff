package sqlite_test

import (
	"context"
	"database/sql"
	"path/filepath"
	"testing"
	"time"

	"github.com/doorledger/doorledger/db/sqlite"
)

// TestWritable: the readiness check takes the write lock and lets it go; while
// another connection (as another process would) holds the lock, it fails when
// its context ends instead of waiting out the busy timeout.
func TestWritable(t *testing.T) {
	path := filepath.Join(t.TempDir(), "w.db")
	d := sqlite.NewDB(path)
	if err := d.Open(); err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	ctx := context.Background()
	if err := d.Writable(ctx); err != nil {
		t.Fatalf("Writable on an idle database: %v", err)
	}
	if err := d.Writable(ctx); err != nil { // the lock was let go
		t.Fatalf("Writable twice: %v", err)
	}

	other, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	conn, err := other.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, `BEGIN IMMEDIATE`); err != nil {
		t.Fatal(err)
	}
	short, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	if err := d.Writable(short); err == nil {
		t.Fatal("Writable while another connection holds the write lock: nil, want an error")
	}
	// The writer's connection has its usual wait for locks back.
	var wait int
	if err := d.Writer().QueryRowContext(ctx, `PRAGMA busy_timeout`).Scan(&wait); err != nil || wait != 5000 {
		t.Errorf("the writer's busy_timeout after the check: %d, %v; want 5000", wait, err)
	}
	if _, err := conn.ExecContext(ctx, `ROLLBACK`); err != nil {
		t.Fatal(err)
	}
	if err := d.Writable(ctx); err != nil {
		t.Fatalf("Writable once the lock is gone: %v", err)
	}
}
