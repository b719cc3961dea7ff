package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/doorledger/doorledger/db/pgmigrate"
	"github.com/doorledger/doorledger/db/postgres"
	"github.com/doorledger/doorledger/db/sqlite"
)

const migrateUsage = `Usage:
  portal migrate -to postgres://USER@HOST/DB [-data DIR]
      copy the data directory's SQLite database into an empty PostgreSQL database and prove the
      copy: row counts per table, every report's hash, the log's root and latest head equal, every
      rule the database enforces re-checked, and the log verified on the target. The portal must be
      stopped. The keys stay in the data directory: give it to the portals on PostgreSQL as their
      shared key directory (docs/deploy.md).
`

// migrateCommand is `portal migrate`: from SQLite to PostgreSQL, once, when
// a deployment outgrows one machine (docs/deploy.md). The copy and its proof
// are db/pgmigrate's; this opens both databases and reports.
func migrateCommand(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	flags := flag.NewFlagSet("migrate", flag.ContinueOnError)
	flags.SetOutput(stderr)
	dataDir := flags.String("data", envOr(getenv, "DOORLEDGER_DATA", "./data"), "data directory to copy from (env DOORLEDGER_DATA)")
	to := flags.String("to", "", "the empty PostgreSQL database to copy into: postgres://… or key=value pairs")
	if err := flags.Parse(args); err != nil {
		return err
	}
	if *to == "" || flags.NArg() > 0 {
		return fmt.Errorf("migrate: want -to URL\n%s", migrateUsage)
	}
	dir, err := filepath.Abs(*dataDir)
	if err != nil {
		return err
	}
	if _, err := os.Stat(filepath.Join(dir, dbFile)); err != nil {
		return fmt.Errorf("migrate: no database in %s (use -data)", dir)
	}
	// The portal must not write while the copy reads: what it wrote after
	// the copy's snapshot would be on SQLite only.
	unlock, err := lockDataDir(dir, false)
	if err != nil {
		return fmt.Errorf("migrate: stop the portal first: %w", err)
	}
	defer unlock()
	key, err := loadLogKey(dir)
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	src := sqlite.NewDB(filepath.Join(dir, dbFile))
	if err := src.Open(); err != nil {
		return fmt.Errorf("migrate: open %s: %w", dir, err)
	}
	defer src.Close()
	dst := postgres.NewDB(*to)
	if err := dst.Open(ctx); err != nil {
		return fmt.Errorf("migrate: open %s: %w", redactURL(*to), err)
	}
	defer dst.Close()

	res, err := pgmigrate.Migrate(ctx, src.Reader(), dst, key, stdout)
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	fmt.Fprintf(stdout, "Copied %s into %s: %d rows in %d tables in %s.\n", src.Path, redactURL(*to), res.Rows, len(res.Tables), res.Took.Round(time.Millisecond))
	fmt.Fprintf(stdout, "Row counts:   equal in all %d tables.\n", len(res.Tables))
	fmt.Fprintf(stdout, "Reports:      %d, every hash identical.\n", res.Reports)
	fmt.Fprintf(stdout, "Log:          %d entries, root %s, identical.\n", res.LogSize, res.LogRoot)
	if res.Head != nil {
		fmt.Fprintf(stdout, "Latest head:  %d entries, root %s, identical.\n", res.Head.Size, res.Head.Root)
	}
	fmt.Fprintf(stdout, "Rules:        %d re-checked on the copied rows, all hold; the target's triggers are on.\n", res.Rules)
	v := res.Verified
	fmt.Fprintf(stdout, "Audit verify: OK on the target: %d entries, %d signed heads checked", v.Entries, v.Heads)
	if v.Pending > 0 {
		fmt.Fprintf(stdout, " (%d rows not yet in the log: the first portal on PostgreSQL sequences them)", v.Pending)
	}
	fmt.Fprintln(stdout, ".")
	fmt.Fprintf(stdout, "Start the portals on PostgreSQL with this data directory's keys (docs/deploy.md); keep %s as it is, as the evidence of the copy.\n", dir)
	return nil
}

// redactURL hides a password in a postgres:// URL; key=value strings are
// named only as such.
func redactURL(s string) string {
	if u, err := url.Parse(s); err == nil && u.Scheme != "" {
		return u.Redacted()
	}
	if strings.Contains(s, "password") {
		return "the PostgreSQL database"
	}
	return s
}
