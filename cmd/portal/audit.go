package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/doorledger/doorledger"
	"github.com/doorledger/doorledger/auditlog"
)

const auditUsage = `Usage:
  portal audit verify [-data DIR] [-key KEY]   recompute the audit log from the database and check
                                               every signed head; exits non-zero naming the first
                                               entry that does not match, or the rows committed more
                                               than a minute before the newest row and still not in
                                               the log (judged by the rows' times, not the clock's)
  portal audit head [-data DIR]                print the log's origin, its verifier key and the latest
                                               signed head (a C2SP checkpoint)
Both take -database-url (env DOORLEDGER_DATABASE_URL) for a portal on PostgreSQL.
`

// auditCommand is `portal audit verify|head`: the verifiable log from the
// command line. verify works on the data directory directly (the portal may
// be running: it reads one consistent snapshot) and writes nothing to the
// log, so it can be run on a copy kept as evidence. -key checks the heads
// with a verifier key printed in an earlier report instead of the key in the
// data directory, which whoever could rewrite the database could replace too.
func auditCommand(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return fmt.Errorf("audit: want verify or head\n%s", auditUsage)
	}
	sub := args[0]
	flags := flag.NewFlagSet("audit "+sub, flag.ContinueOnError)
	flags.SetOutput(stderr)
	dataDir := flags.String("data", envOr(getenv, "DOORLEDGER_DATA", "./data"), "data directory (env DOORLEDGER_DATA)")
	dbURL := flags.String("database-url", getenv("DOORLEDGER_DATABASE_URL"), databaseURLUsage)
	vkey := flags.String("key", "", "verifier key to check the heads with, as printed in a report (default: the data directory's)")
	if err := flags.Parse(args[1:]); err != nil {
		return err
	}
	if flags.NArg() > 0 {
		return fmt.Errorf("audit %s: unexpected argument %q", sub, flags.Arg(0))
	}
	if sub != "verify" && sub != "head" {
		return fmt.Errorf("audit: unknown command %q\n%s", sub, auditUsage)
	}
	dir, err := filepath.Abs(*dataDir)
	if err != nil {
		return err
	}
	if _, err := os.Stat(filepath.Join(dir, "doorledger.db")); err != nil && *dbURL == "" {
		return fmt.Errorf("audit: no database in %s (use -data)", dir)
	}
	key, err := loadLogKey(dir)
	if err != nil {
		return fmt.Errorf("audit: %w", err)
	}
	a, err := openApp(&config{DataDir: dir, DatabaseURL: *dbURL}, stderr)
	if err != nil {
		return err
	}
	defer a.Close()
	a.db.OpenLog(a, key)
	logs := a.logs
	if *vkey != "" {
		if err := logs.UseVerifierKey(*vkey); err != nil {
			return fmt.Errorf("audit: -key: %s", doorledger.ErrorMessage(err))
		}
	}
	ctx = doorledger.NewSystemContext(ctx, "cli")

	keyLine := logs.VerifierKey()
	if keyLine == "" {
		keyLine = "none (the portal creates " + auditlog.KeyFile + " on its first start; or give -key)"
	}
	originLine := logs.Origin()
	if originLine == "" {
		originLine = "not known (the portal chooses it on its first start, in " + auditlog.OriginFile + ")"
	}
	if sub == "head" {
		fmt.Fprintf(stdout, "Log origin:   %s\n", originLine)
		fmt.Fprintf(stdout, "Verifier key: %s\n", keyLine)
		h, err := logs.Head(ctx, 0)
		if doorledger.ErrorCode(err) == doorledger.ENOTFOUND {
			fmt.Fprintln(stdout, "No signed head yet.")
			return nil
		} else if err != nil {
			return err
		}
		format := "a C2SP checkpoint (c2sp.org/tlog-checkpoint) of " + h.Origin()
		if h.Origin() == "" {
			format = `signed before checkpoints ("go.sum database tree" format)`
		}
		fmt.Fprintf(stdout, "Latest head:  %d entries, root %s, signed %s,\n              %s\n\n%s",
			h.Size, h.Root, h.At.Format(time.RFC3339), format, h.Note)
		return nil
	}

	v, err := logs.Verify(ctx)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "Audit log in %s\n", dir)
	fmt.Fprintf(stdout, "Log origin:   %s\n", originLine)
	fmt.Fprintf(stdout, "Verifier key: %s\n", keyLine)
	fmt.Fprintf(stdout, "Entries:      %d", v.Entries)
	if v.Purged > 0 {
		fmt.Fprintf(stdout, " (%d unlock events among them deleted by logged retention purges)", v.Purged)
	}
	fmt.Fprintln(stdout)
	if v.Pending > 0 {
		fmt.Fprintf(stdout, "Not yet logged: %d rows committed within %s of the newest row (%s): the sequencer's delay, not checked\n",
			v.Pending, doorledger.LogMergeDelay, v.Newest.Format(time.RFC3339))
	}
	if v.Head != nil {
		fmt.Fprintf(stdout, "Signed heads: %d checked; latest: %d entries, root %s, signed %s\n", v.Heads, v.Head.Size, v.Head.Root, v.Head.At.Format(time.RFC3339))
	} else {
		fmt.Fprintln(stdout, "Signed heads: none yet")
	}
	if v.Problem != nil {
		fmt.Fprintf(stdout, "FAILED: %s\n", v.Problem)
		return fmt.Errorf("audit log does not verify: %s", v.Problem)
	}
	fmt.Fprintln(stdout, "OK: every entry matches the database, and every head its entries and signature.")
	return nil
}

// loadLogKey reads the data directory's log key, named for the log's
// origin; nil when the directory has none yet (the portal creates it on its
// first start).
func loadLogKey(dir string) (*auditlog.Key, error) {
	key, err := auditlog.LoadKey(filepath.Join(dir, auditlog.KeyFile))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	// The log's checkpoints are signed under its origin (a data directory
	// from before checkpoints has none yet: its heads name no log).
	if origin, err := auditlog.LoadOrigin(filepath.Join(dir, auditlog.OriginFile)); err == nil && key != nil {
		if key, err = key.Named(origin); err != nil {
			return nil, err
		}
	} else if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	return key, nil
}
