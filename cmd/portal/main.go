// Command portal runs Doorledger: the web portal, its embedded SQLite database
// and its embedded MQTT broker, on one machine.
//
//	portal [serve] [flags]                 start the portal (default)
//	portal user add|disable|reset-password|reset-2fa operators' account recovery
//	portal backup|restore                  online backup of the data directory
//	portal migrate -to postgres://…        copy the SQLite database into PostgreSQL
//	portal witness serve|key               a witness that cosigns a portal's log
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "portal:", err)
		os.Exit(1)
	}
}

// run is the whole program; main and the end-to-end tests call it.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) > 0 {
		switch args[0] {
		case "serve":
			return serve(ctx, args[1:], getenv, stdout, stderr)
		case "user":
			return userCommand(ctx, args[1:], getenv, stdout, stderr)
		case "mosquitto-config":
			return mosquittoCommand(ctx, args[1:], getenv, stdout, stderr)
		case "audit":
			return auditCommand(ctx, args[1:], getenv, stdout, stderr)
		case "backup":
			return backupCommand(ctx, args[1:], getenv, stdout, stderr)
		case "restore":
			return restoreCommand(ctx, args[1:], getenv, stdout, stderr)
		case "migrate":
			return migrateCommand(ctx, args[1:], getenv, stdout, stderr)
		case "witness":
			return witnessCommand(ctx, args[1:], getenv, stdout, stderr)
		case "help", "-h", "--help":
			fmt.Fprint(stdout, usage)
			return nil
		}
	}
	return serve(ctx, args, getenv, stdout, stderr)
}

const usage = `Doorledger portal.

Usage:
  portal [serve] [flags]                       start the portal (see 'portal serve -h')
  portal user add -email E -name N -role R     create an account (prints a generated password)
  portal user disable -email E                 disable an account and end its sessions
  portal audit verify [-data DIR] [-key VKEY]  re-compute the tamper-evident log; exit 1 at the first mismatch
  portal audit head                            print the latest signed log head
  portal backup -out FILE [-data DIR]          a consistent backup (database, keys, reports) while the portal runs
  portal restore -in FILE -data NEWDIR         unpack a backup into a new, empty data directory
  portal migrate -to postgres://… [-data DIR]  copy the SQLite database into an empty PostgreSQL database, and prove it
  portal witness serve -dir DIR -log LOGKEY   run a witness of a portal's log (see 'portal witness')
  portal mosquitto-config -out DIR             write an external Mosquitto's config, password and ACL files
  portal user reset-password -email E          set a new generated password, end its sessions
  portal user reset-2fa EMAIL                  remove the account's second factor (a lost phone)
`
