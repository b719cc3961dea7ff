package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/doorledger/doorledger"
)

// userCommand is `portal user add|disable|reset-password|reset-2fa`: account recovery for
// operators without SQL. It works on the data directory directly (the portal may
// be running; SQLite's locking keeps both consistent) and is audited as "cli".
func userCommand(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return fmt.Errorf("user: want add, disable, reset-password or reset-2fa\n%s", usage)
	}
	sub := args[0]
	fs := flag.NewFlagSet("user "+sub, flag.ContinueOnError)
	fs.SetOutput(stderr)
	dataDir := fs.String("data", envOr(getenv, "DOORLEDGER_DATA", "./data"), "data directory (env DOORLEDGER_DATA)")
	dbURL := fs.String("database-url", getenv("DOORLEDGER_DATABASE_URL"), databaseURLUsage)
	email := fs.String("email", "", "the account's email")
	name := fs.String("name", "", "full name (add)")
	role := fs.String("role", "", "admin, manager, board or installer (add)")
	company := fs.String("company", "", "company (add, installers)")
	rest, positional := args[1:], ""
	if len(rest) > 0 && !strings.HasPrefix(rest[0], "-") { // the email first: portal user reset-2fa EMAIL [-data DIR]
		positional, rest = rest[0], rest[1:]
	}
	if err := fs.Parse(rest); err != nil {
		return err
	}
	if positional == "" && fs.NArg() == 1 { // or last
		positional = fs.Arg(0)
	}
	if *email == "" {
		*email = positional
	}
	cfg := &config{DataDir: *dataDir, DatabaseURL: *dbURL}
	a, err := openApp(cfg, stderr)
	if err != nil {
		return err
	}
	defer a.Close()
	ctx = doorledger.NewSystemContext(ctx, "cli")

	switch sub {
	case "add":
		pass := newPassword()
		u, err := a.users.CreateUser(ctx, doorledger.NewUser{Email: *email, Name: *name, Role: doorledger.Role(*role), Company: *company, Password: pass})
		if err != nil {
			return userError(err)
		}
		fmt.Fprintf(stdout, "Created %s (%s). Password: %s\n", u.Email, u.Role, pass)
	case "disable":
		u, err := a.users.FindUserByEmail(ctx, *email)
		if err != nil {
			return userError(err)
		}
		yes := true
		if _, err := a.users.UpdateUser(ctx, u.ID, doorledger.UserUpdate{Disabled: &yes}); err != nil {
			return userError(err)
		}
		fmt.Fprintf(stdout, "Disabled %s; every session ended.\n", u.Email)
	case "reset-password":
		u, err := a.users.FindUserByEmail(ctx, *email)
		if err != nil {
			return userError(err)
		}
		pass := newPassword()
		if err := a.users.SetPassword(ctx, u.ID, "", pass); err != nil {
			return userError(err)
		}
		// A locked-out admin may also be disabled: enable the account again.
		no := false
		if _, err := a.users.UpdateUser(ctx, u.ID, doorledger.UserUpdate{Disabled: &no}); err != nil {
			return userError(err)
		}
		fmt.Fprintf(stdout, "New password for %s: %s (every session ended; the account is enabled)\n", u.Email, pass)
	case "reset-2fa":
		u, err := a.users.FindUserByEmail(ctx, *email)
		if err != nil {
			return userError(err)
		}
		if err := a.factors.ResetSecondFactor(ctx, u.ID); err != nil {
			return userError(err)
		}
		fmt.Fprintf(stdout, "Second factor of %s reset: authenticator app and recovery codes removed; they set up a new one at their next sign-in if their role requires it.\n", u.Email)
	default:
		return fmt.Errorf("user: unknown command %q\n%s", sub, usage)
	}
	return nil
}

// userError turns a coded error into a plain message for the terminal.
func userError(err error) error {
	if fields := doorledger.ErrorFields(err); len(fields) > 0 {
		msg := doorledger.ErrorMessage(err)
		for k, v := range fields {
			msg += fmt.Sprintf("\n  -%s: %s", k, v)
		}
		return fmt.Errorf("%s", msg)
	}
	if doorledger.ErrorCode(err) != doorledger.EINTERNAL {
		return fmt.Errorf("%s", doorledger.ErrorMessage(err))
	}
	return err
}
