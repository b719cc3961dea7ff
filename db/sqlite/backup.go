package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
)

// Snapshot writes a consistent copy of the database file at path to out while
// other processes (a running portal) keep writing to it: VACUUM INTO reads one
// read transaction's snapshot, so every committed transaction is in the copy
// whole or not at all, and nothing is locked for writers in WAL mode. out must
// not exist. The copy is checked with integrity_check before Snapshot returns.
func Snapshot(ctx context.Context, path, out string) error {
	if _, err := os.Stat(path); err != nil {
		return fmt.Errorf("snapshot: %w", err)
	}
	if _, err := os.Lstat(out); err == nil {
		return fmt.Errorf("snapshot: %s already exists", out)
	}
	out, err := filepath.Abs(out)
	if err != nil {
		return err
	}
	// Not dsn's read-only pool: query_only refuses VACUUM INTO, though it
	// writes only the new file. The busy timeout waits out a checkpoint.
	src, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout("+strconv.Itoa(busyTimeoutMS)+")")
	if err != nil {
		return fmt.Errorf("snapshot: %w", err)
	}
	defer src.Close()
	if _, err := src.ExecContext(ctx, `VACUUM INTO ?`, out); err != nil {
		os.Remove(out)
		return fmt.Errorf("snapshot: %w", err)
	}
	if err := os.Chmod(out, 0o600); err != nil {
		return err
	}
	return CheckFile(ctx, out)
}

// CheckFile runs integrity_check on the database file at path.
func CheckFile(ctx context.Context, path string) error {
	c, err := sql.Open("sqlite", "file:"+path+"?mode=ro")
	if err != nil {
		return err
	}
	defer c.Close()
	var result string
	if err := c.QueryRowContext(ctx, `PRAGMA integrity_check`).Scan(&result); err != nil {
		return fmt.Errorf("integrity check of %s: %w", path, err)
	}
	if result != "ok" {
		return errors.New("integrity check of " + path + ": " + result)
	}
	return nil
}
