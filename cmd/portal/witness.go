package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/doorledger/doorledger/witness"
)

const witnessUsage = `Usage:
  portal witness serve -dir DIR -log LOGKEY [-name NAME] [-addr HOST:PORT]
      run a witness of a Doorledger portal's log (c2sp.org/tlog-witness): it
      cosigns each checkpoint the portal submits only if it is consistent with
      the last one it cosigned. DIR holds its key and state and nothing else;
      it needs no access to the portal. LOGKEY is the portal's log verifier key
      (Admin > Audit log, or 'portal audit head'). On start it prints its own
      verifier key, which the portal's admin and the boards enter to trust it.
  portal witness key -dir DIR [-name NAME]
      print the witness's verifier key (creating the key on first use)
`

// witnessCommand is `portal witness serve|key`: a witness that a board
// member or a co-op's lawyer runs with nothing but this binary
// (docs/witnesses.md).
func witnessCommand(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 || (args[0] != "serve" && args[0] != "key") {
		return fmt.Errorf("witness: want serve or key\n%s", witnessUsage)
	}
	sub := args[0]
	flags := flag.NewFlagSet("witness "+sub, flag.ContinueOnError)
	flags.SetOutput(stderr)
	dir := flags.String("dir", envOr(getenv, "DOORLEDGER_WITNESS_DIR", "./witness"), "state directory: the witness's key and what it cosigned (env DOORLEDGER_WITNESS_DIR)")
	name := flags.String("name", envOr(getenv, "DOORLEDGER_WITNESS_NAME", "doorledger-witness"), "the witness's name in its key, chosen at first start (no spaces, no '+')")
	addr := flags.String("addr", envOr(getenv, "DOORLEDGER_WITNESS_ADDR", "localhost:8090"), "address to listen on (env DOORLEDGER_WITNESS_ADDR)")
	var logKeys []string
	flags.Func("log", "the portal's log verifier key (repeat for several logs; a log followed once stays followed)", func(s string) error {
		logKeys = append(logKeys, s)
		return nil
	})
	if err := flags.Parse(args[1:]); err != nil {
		return err
	}
	if flags.NArg() > 0 {
		return fmt.Errorf("witness %s: unexpected argument %q", sub, flags.Arg(0))
	}
	log := slog.New(slog.NewTextHandler(stderr, nil))
	w, err := witness.Open(*dir, *name, log)
	if err != nil {
		return err
	}
	if sub == "key" {
		fmt.Fprintln(stdout, w.VerifierKey())
		return nil
	}
	for _, k := range logKeys {
		origin, err := w.Follow(k)
		if err != nil {
			return fmt.Errorf("witness: %w", err)
		}
		fmt.Fprintf(stdout, "Following log %s\n", origin)
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return fmt.Errorf("witness: %w", err)
	}
	srv := &http.Server{Handler: w, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second, WriteTimeout: 30 * time.Second}
	fmt.Fprintf(stdout, "Witness listening on http://%s (state in %s)\nWitness key: %s\n", ln.Addr(), *dir, w.VerifierKey())
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	shutdown, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdown); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// witnessKeyLine finds the witness's key in what `portal witness serve`
// printed (tests and scripts read it back).
func witnessKeyLine(out string) string {
	for _, l := range strings.Split(out, "\n") {
		if k, ok := strings.CutPrefix(l, "Witness key: "); ok {
			return k
		}
	}
	return ""
}
