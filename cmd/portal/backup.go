package main

import (
	"archive/tar"
	"compress/gzip"
	"context"
	"database/sql"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	"github.com/doorledger/doorledger/db/sqlite"
)

const backupUsage = `Usage:
  portal backup -out FILE [-data DIR]    a consistent copy of the data directory while the portal runs:
                                         the database (one snapshot), the keys and the report files,
                                         as a gzip'd tar readable only by its owner (it holds the keys)
  portal restore -in FILE -data DIR      unpack a backup into a new, empty data directory
`

// dbFile is the database's name inside the data directory and the backup.
const dbFile = "doorledger.db"

// backupCommand is `portal backup`: the database through SQLite's VACUUM INTO
// (a snapshot; writers are not held), then every other file of the data
// directory (the keys, which the database cannot be read without, and the
// report PDFs whose hashes the registry holds). Files are read after the
// snapshot, so every report the snapshot registers is already on disk.
func backupCommand(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	flags := flag.NewFlagSet("backup", flag.ContinueOnError)
	flags.SetOutput(stderr)
	dataDir := flags.String("data", envOr(getenv, "DOORLEDGER_DATA", "./data"), "data directory (env DOORLEDGER_DATA)")
	out := flags.String("out", "", "backup file to create (must not exist)")
	dbURL := flags.String("database-url", getenv("DOORLEDGER_DATABASE_URL"), databaseURLUsage)
	if err := flags.Parse(args); err != nil {
		return err
	}
	if err := refuseBackupOnPostgres(*dbURL); err != nil {
		return err
	}
	if *out == "" || flags.NArg() > 0 {
		return fmt.Errorf("backup: want -out FILE\n%s", backupUsage)
	}
	dir, err := filepath.Abs(*dataDir)
	if err != nil {
		return err
	}
	if _, err := os.Stat(filepath.Join(dir, dbFile)); err != nil {
		return fmt.Errorf("backup: no database in %s (use -data)", dir)
	}
	start := time.Now()
	// The snapshot is written beside the backup file, not in the data
	// directory, so a full data disk does not stop a backup elsewhere.
	tmp, err := os.MkdirTemp(filepath.Dir(*out), ".doorledger-backup-")
	if err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	defer os.RemoveAll(tmp)
	snap := filepath.Join(tmp, dbFile)
	if err := sqlite.Snapshot(ctx, filepath.Join(dir, dbFile), snap); err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	f, err := os.OpenFile(*out, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	n, err := writeBackup(f, dir, snap)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(*out)
		return fmt.Errorf("backup: %w", err)
	}
	fmt.Fprintf(stdout, "Backed up %s to %s: the database and %d files, in %s.\n", dir, *out, n, time.Since(start).Round(time.Millisecond))
	return nil
}

// refuseBackupOnPostgres is `portal backup`'s answer when the portal's
// database is PostgreSQL (-database-url or DOORLEDGER_DATABASE_URL: the
// command asks this first): nil for the SQLite database of the data
// directory. PostgreSQL is backed up by its own tools, which know its
// consistency and replication; the data directory then holds only the keys
// and report files, backed up beside it (docs/deploy.md, "Backup and
// restore").
func refuseBackupOnPostgres(databaseURL string) error {
	if databaseURL == "" {
		return nil
	}
	return errors.New("backup: the portal's database is PostgreSQL (-database-url), which portal backup does not copy: " +
		"back it up with PostgreSQL's own tools (pg_dump for a snapshot, pg_basebackup with WAL archiving or a replica " +
		"for point-in-time recovery) and copy the shared key directory (session.keys, log.key, log.origin, vendor.key, reports/) " +
		"beside it, as docs/deploy.md says under \"Backup and restore\"")
}

// writeBackup writes the snapshot and the data directory's other files to w.
func writeBackup(w io.Writer, dir, snap string) (files int, err error) {
	zw := gzip.NewWriter(w)
	tw := tar.NewWriter(zw)
	if err := addFile(tw, snap, dbFile); err != nil {
		return 0, err
	}
	err = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil || rel == "." {
			return err
		}
		name := filepath.ToSlash(rel)
		switch {
		case d.IsDir():
			return nil
		case name == dbFile || strings.HasPrefix(name, dbFile+"-"):
			return nil // the live database, its WAL and shared memory: the snapshot stands for them
		case !d.Type().IsRegular(), name == lockFile:
			return nil
		}
		files++
		return addFile(tw, p, name)
	})
	if err != nil {
		return files, err
	}
	if err := tw.Close(); err != nil {
		return files, err
	}
	return files, zw.Close()
}

func addFile(tw *tar.Writer, p, name string) error {
	f, err := os.Open(p)
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o600, Size: st.Size(), ModTime: st.ModTime(), Typeflag: tar.TypeReg}); err != nil {
		return err
	}
	if _, err := io.CopyN(tw, f, st.Size()); err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	return nil
}

// restoreCommand is `portal restore`: it unpacks into a directory that does
// not exist or is empty, and refuses anything else — above all a live data
// directory, whose database the portal has open.
func restoreCommand(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	flags := flag.NewFlagSet("restore", flag.ContinueOnError)
	flags.SetOutput(stderr)
	in := flags.String("in", "", "backup file made by 'portal backup'")
	dataDir := flags.String("data", "", "new data directory to restore into (must not exist or be empty)")
	if err := flags.Parse(args); err != nil {
		return err
	}
	if *in == "" || *dataDir == "" || flags.NArg() > 0 {
		return fmt.Errorf("restore: want -in FILE -data DIR\n%s", backupUsage)
	}
	dir, err := filepath.Abs(*dataDir)
	if err != nil {
		return err
	}
	if entries, err := os.ReadDir(dir); err == nil && len(entries) > 0 {
		if _, err := os.Stat(filepath.Join(dir, dbFile)); err == nil {
			return fmt.Errorf("restore: %s holds a database already; restore into a new directory, never over a live one", dir)
		}
		return fmt.Errorf("restore: %s is not empty; restore into a new directory", dir)
	} else if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("restore: %w", err)
	}
	f, err := os.Open(*in)
	if err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	defer f.Close()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	n, err := readBackup(f, dir)
	if err == nil {
		err = sqlite.CheckFile(ctx, filepath.Join(dir, dbFile))
	}
	if err != nil {
		// Leave nothing half-restored that a portal could be started on.
		os.RemoveAll(dir)
		return fmt.Errorf("restore: %w", err)
	}
	fmt.Fprintf(stdout, "Restored %s into %s: the database and %d files.\n", *in, dir, n-1)
	if size, witnesses, err := restoredLog(ctx, filepath.Join(dir, dbFile)); err == nil && size > 0 {
		fmt.Fprintf(stdout, "WARNING: the restored log ends at its head of %d entries. Anyone who kept a later head sees the restored\n"+
			"log as a fork once it grows past that: boards' reports", size)
		if witnesses > 0 {
			fmt.Fprintf(stdout, " and the %d outside witnesses configured, which refuse a checkpoint that does not extend the\n"+
				"last one they cosigned", witnesses)
		}
		fmt.Fprintln(stdout, ". Restore only to recover from a loss, and say so to the boards.")
	}
	fmt.Fprintf(stdout, "Check it with: portal audit verify -data %s\n", dir)
	return nil
}

// restoredLog reads the restored database's latest signed head size and how
// many outside witnesses it has configured.
func restoredLog(ctx context.Context, path string) (size, witnesses int64, err error) {
	db, err := sql.Open("sqlite", "file:"+path+"?mode=ro")
	if err != nil {
		return 0, 0, err
	}
	defer db.Close()
	if err := db.QueryRowContext(ctx, `SELECT COALESCE(MAX(size), 0) FROM log_heads`).Scan(&size); err != nil {
		return 0, 0, err
	}
	if err := db.QueryRowContext(ctx, `SELECT count(*) FROM witnesses`).Scan(&witnesses); err != nil {
		return size, 0, nil // a database from before witnesses
	}
	return size, witnesses, nil
}

// readBackup unpacks a backup into dir: regular files only, each name a
// clean relative path inside dir.
func readBackup(r io.Reader, dir string) (files int, err error) {
	zr, err := gzip.NewReader(r)
	if err != nil {
		return 0, fmt.Errorf("not a Doorledger backup: %w", err)
	}
	tr := tar.NewReader(zr)
	sawDB := false
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		} else if err != nil {
			return files, fmt.Errorf("not a Doorledger backup: %w", err)
		}
		name := h.Name
		if h.Typeflag != tar.TypeReg || !fs.ValidPath(name) || path.Clean(name) != name {
			return files, fmt.Errorf("backup holds an unexpected entry %q", name)
		}
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			return files, err
		}
		out, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return files, err
		}
		_, err = io.Copy(out, tr)
		if cerr := out.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return files, fmt.Errorf("%s: %w", name, err)
		}
		sawDB = sawDB || name == dbFile
		files++
	}
	if !sawDB {
		return files, errors.New("not a Doorledger backup: no " + dbFile + " in it")
	}
	return files, nil
}
