package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"

	"github.com/doorledger/doorledger"
	"github.com/doorledger/doorledger/auditlog"
	"github.com/doorledger/doorledger/db/sqlite"
	"github.com/doorledger/doorledger/internal/atomicfile"
	"github.com/doorledger/doorledger/mail"
	"github.com/doorledger/doorledger/reports"
	"github.com/doorledger/doorledger/sso"
	"github.com/doorledger/doorledger/web"
	"github.com/doorledger/doorledger/witness"
)

// app is the wired portal: the database, its services and the web server.
// The services are the root's interfaces, on SQLite or PostgreSQL
// (backend.go).
type app struct {
	cfg         *config
	log         *slog.Logger
	db          backend
	users       doorledger.UserService
	buildings   doorledger.BuildingService
	audit       doorledger.AuditService
	consents    consentStore
	policies    doorledger.PolicyService
	privacy     doorledger.PrivacyService
	invitations doorledger.InvitationService
	outbox      doorledger.OutboxService
	devices     deviceStore
	unlocks     unlockStore
	vendors     vendorStore
	logs        logStore
	witnesses   doorledger.WitnessService
	reports     doorledger.ReportService
	residents   doorledger.ResidentService
	attention   doorledger.AttentionService
	leases      doorledger.LeaseService
	ops         opsStore
	factors     doorledger.SecondFactorService // second factors (issue 16), on either backend
	webhooks    doorledger.WebhookService
	sso         doorledger.SSOService // the domains allowed to sign up by SSO, and its sign-ins
	web         *web.Server

	// sessions ends devices' connections through the embedded broker once
	// it runs (devices.go).
	sessions brokerSessions
	// baseURLs are the services' base URLs for links in mail, set to the
	// address listened on when there is no public URL.
	baseURLs []*string
}

// openApp opens the data directory and the database (PostgreSQL with
// cfg.DatabaseURL, else SQLite in the data directory) and builds the services.
func openApp(cfg *config, stderr io.Writer) (*app, error) {
	a := &app{cfg: cfg}
	a.log = slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: cfg.LogLevel}))
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("data directory: %w", err)
	}
	sealKey := func() ([]byte, error) { return vendorSealKey(filepath.Join(cfg.DataDir, "vendor.key")) }
	open := openSQLite
	if cfg.DatabaseURL != "" {
		open = openPostgres
	}
	if err := open(a, sealKey); err != nil {
		if a.db != nil {
			a.db.Close()
		}
		return nil, err
	}
	return a, nil
}

func (a *app) Close() error { return a.db.Close() }

func serve(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	cfg, err := parseServe(args, getenv, stderr)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return fmt.Errorf("data directory: %w", err)
	}
	unlock, err := lockDataDir(cfg.DataDir, cfg.MQTTURL != "")
	if err != nil {
		return err
	}
	defer unlock()
	a, err := openApp(cfg, stderr)
	if err != nil {
		return err
	}
	defer a.Close()
	if err := a.db.LockInstances(ctx, cfg.MQTTURL != ""); err != nil {
		return err
	}
	// Free space (docs/reliability.md, "Disk full"): ingest is refused below
	// the floor; the reserve is released when the disk fills up. SQLite only.
	space := a.db.Space()
	if space != nil {
		space.Limit(cfg.DiskFloor, cfg.DiskReserve)
	}
	if hook, ok := ctx.Value(appHookKey{}).(func(*app)); ok {
		hook(a) // tests: e.g. a controllable clock, before anything runs
	}

	// Mail bodies carry one-time links: with SMTP they are dropped once sent,
	// without it (mail only logged) they stay sealed for admins to read on the
	// Outbox page. Bodies stored in the clear by an older version, or kept
	// while mail was only logged, are sealed or dropped now.
	if err := a.secureStoredMail(ctx); err != nil {
		return err
	}

	key, err := logKey(cfg)
	if err != nil {
		return err
	}
	a.db.OpenLog(a, key)
	// Registered before every other deferred stop, so it runs after them all,
	// just before the database closes: everything committed is sequenced.
	defer a.sequenceAtShutdown()
	// Reports: the registry, and the generator that writes the queued ones
	// into <data>/reports, one at a time, for as long as the portal runs.
	reportDir := filepath.Join(cfg.DataDir, "reports")
	if err := os.MkdirAll(reportDir, 0o700); err != nil {
		return fmt.Errorf("report directory: %w", err)
	}
	runner := reports.NewRunner(a.reports, a.logs, reportDir, a.log)

	sysctx := doorledger.NewSystemContext(ctx, "system")
	if err := a.firstStart(sysctx, stdout); err != nil {
		return err
	}
	if cfg.Demo {
		if err := seedDemo(sysctx, a, stdout); err != nil {
			return fmt.Errorf("demo: %w", err)
		}
	}
	// Background work runs once across the instances sharing the database:
	// each piece under its lease (jobs.go).
	leases := &leaser{leases: a.leases, instance: cfg.Instance, ttl: cfg.LeaseTTL, log: a.log}
	a.log.Info("instance", "name", cfg.Instance, "lease_ttl", cfg.LeaseTTL)
	hub := web.NewHub()
	// Instances on one database wake each other's live pages.
	if changes := a.db.Changes(); changes != nil {
		relayCtx, stopRelay := context.WithCancel(sysctx)
		waitRelay := relayChanges(relayCtx, changes, hub, a.log)
		defer func() { stopRelay(); waitRelay() }()
	}
	devctx, stopDevices := context.WithCancel(sysctx)
	dc, err := startDeviceControl(devctx, a, hub, leases, stdout)
	if err != nil {
		stopDevices()
		return err
	}
	// Unconfirmed commands are retried by the instance holding their lease.
	var retrying atomic.Bool
	dc.ctl.Retrying = retrying.Load
	retriesDone := make(chan struct{})
	go func() {
		defer close(retriesDone)
		leases.hold(devctx, "command retries", func(ctx context.Context) error {
			retrying.Store(true)
			defer retrying.Store(false)
			<-ctx.Done()
			return nil
		})
	}()
	defer func() { stopDevices(); <-retriesDone; dc.Close(a.log) }()
	if cfg.Demo {
		sims, err := startDemoDevices(devctx, a, dc, stdout)
		if err != nil {
			return fmt.Errorf("demo devices: %w", err)
		}
		defer func() {
			for _, sim := range sims {
				sim.Stop(context.Background())
			}
		}()
	}

	keys, err := sessionKeys(filepath.Join(cfg.DataDir, "session.keys"))
	if err != nil {
		return err
	}
	var observe func(route, method string, code int, took time.Duration)
	if cfg.MetricsAddr != "" {
		m := newMetrics(a, dc)
		mctx, stopMetrics := context.WithCancel(sysctx)
		addr, wait, err := serveMetrics(mctx, a.log, cfg.MetricsAddr, cfg.MetricsToken, m)
		if err != nil {
			stopMetrics()
			return err
		}
		defer func() { stopMetrics(); wait() }()
		observe = m.ObserveRequest
		fmt.Fprintf(stdout, "Metrics: http://%s/metrics\n", addr)
	}
	provider, stopSSO, err := startSSO(sysctx, cfg, a.db.Now, a.log)
	if err != nil {
		return err
	}
	defer stopSSO()
	a.web = web.NewServer(web.Config{
		Users: a.users, Buildings: a.buildings, Audit: a.audit,
		Consents: a.consents, Papers: a.consents, Policies: a.policies, Invitations: a.invitations, Outbox: a.outbox, Devices: a.devices, Vendors: a.vendors, Unlocks: a.unlocks, Logs: a.logs,
		Reports: a.reports, ReportFiles: runner, Residents: a.residents, Privacy: a.privacy,
		Attention: a.attention, Witnesses: a.witnesses, Webhooks: a.webhooks, SecondFactors: a.factors, PublicURL: cfg.PublicURL,
		SSO: provider, SSOAccounts: a.sso,
		Health:         a.db.Ping,
		Ready:          func(ctx context.Context) error { return ready(ctx, a, dc) },
		BrokerUp:       func() bool { return dc.client == nil || dc.client.Connected() },
		ObserveRequest: observe,
		DiskFull:       diskFull(space),
		SessionKeys:    keys,
		SMTP:           cfg.SMTPURL != "",
		Hub:            hub, CommandTimeout: cfg.CommandTimeout,
		Secure:     cfg.secure(),
		TrustProxy: cfg.TrustProxy,
		Logger:     a.log,
		Timeouts:   cfg.webTimeouts,
		Now:        a.db.Now,
	})
	if err := a.web.Listen(cfg.Addr); err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	scheme := "http"
	if cfg.TLSCert != "" {
		scheme = "https"
	}
	if cfg.PublicURL == "" {
		for _, u := range a.baseURLs {
			*u = scheme + "://" + a.web.Addr()
		}
		if provider != nil {
			provider.SetRedirectURL(scheme + "://" + a.web.Addr() + sso.CallbackPath)
		}
	}
	fmt.Fprintf(stdout, "Doorledger is listening on %s://%s (data in %s)\n", scheme, a.web.Addr(), cfg.DataDir)
	a.log.Info("listening", "addr", a.web.Addr(), "data", cfg.DataDir)
	if provider != nil {
		fmt.Fprintf(stdout, "Single sign-on through %s (redirect URL to register there: %s)\n", provider.Issuer(), provider.RedirectURL())
	}

	// Mail: the dispatcher sends what the outbox holds (or logs it without SMTP);
	// the database wakes it after each commit that queued mail.
	var mailer doorledger.Mailer = mail.LogMailer{Logger: a.log}
	if cfg.SMTPURL != "" {
		smtpCfg, err := mail.ParseSMTPURL(cfg.SMTPURL)
		if err != nil {
			return fmt.Errorf("DOORLEDGER_SMTP_URL: %w", err)
		}
		if mailer, err = mail.NewSMTPMailer(smtpCfg); err != nil {
			return fmt.Errorf("DOORLEDGER_SMTP_URL: %w", err)
		}
	}
	disp := &mail.Dispatcher{Outbox: a.outbox, Mailer: mailer, Logger: a.log}
	a.db.OnMail(disp.Notify)
	mailCtx, stopMail := context.WithCancel(sysctx)
	mailDone := make(chan struct{})
	go func() { defer close(mailDone); leases.hold(mailCtx, "mail dispatch", disp.Run) }()
	defer func() { stopMail(); <-mailDone }()
	defer startEventDispatcher(sysctx, a, leases, cfg.WebhooksAllowPrivate)()

	// The report generator, started after the mail dispatcher so that a
	// monthly report's mail is sent as soon as it is committed; stopped (its
	// report in progress left to be requeued by the instance that holds the
	// generator next) before the database closes.
	runnerCtx, stopRunner := context.WithCancel(sysctx)
	runnerDone := make(chan struct{})
	go func() { defer close(runnerDone); leases.hold(runnerCtx, "report generation", runner.Run) }()
	defer func() { stopRunner(); <-runnerDone }()

	// The check of free space: once a second, and at once when a write
	// finds the disk full; it alerts the admins once per episode (through
	// the dispatcher above) and lets ingest in again when space returns.
	if space != nil {
		spaceCtx, stopSpace := context.WithCancel(sysctx)
		spaceDone := make(chan struct{})
		go func() { defer close(spaceDone); space.Run(spaceCtx, time.Second) }()
		defer func() { stopSpace(); <-spaceDone }()
	}

	jobs, stopJobs := context.WithCancel(sysctx)
	var waitJobs func()
	defer func() { stopJobs(); waitJobs() }()
	waitJobs = runJobs(jobs, leases,
		job{name: "consent lapse", every: time.Minute, run: func(ctx context.Context) error {
			n, err := a.consents.LapseDue(ctx)
			if n > 0 {
				a.log.Info("consents lapsed", "count", n)
			}
			return err
		}},
		job{name: "consent reminders and expiry", every: time.Minute, run: a.remindJob},
		job{name: "audit log", every: time.Second, run: func(ctx context.Context) error {
			_, err := a.logs.Sequence(ctx)
			return err
		}},
		// Witnesses: each new signed head goes to every witness due an
		// attempt (docs/witnesses.md); failures back off in the service.
		job{name: "witnesses", every: 2 * time.Second, run: (&witness.Submitter{Log: a.logs, Witnesses: a.witnesses,
			HTTP: &http.Client{Timeout: 20 * time.Second}}).Run},
		job{name: "unlock retention purge", every: 24 * time.Hour, run: func(ctx context.Context) error {
			n, err := a.unlocks.Purge(ctx, a.db.Now())
			if n > 0 {
				a.log.Info("unlock events purged", "count", n)
			}
			if err != nil {
				return err
			}
			// Under the privacy profile, identifiable data goes after 90 days.
			n, err = a.privacy.RedactUnlocks(ctx, a.db.Now())
			if n > 0 {
				a.log.Info("unlock events redacted", "count", n)
			}
			return err
		}},
		// Daily unlock counts dated again after a time zone change (and,
		// once, the events recorded before migration 050), in small
		// transactions (db/sqlite/unlock_daily.go).
		job{name: "daily unlock counts", every: 5 * time.Second, run: func(ctx context.Context) error {
			n, err := a.unlocks.CountDays(ctx)
			if n > 0 {
				a.log.Info("unlock events counted by day", "count", n)
			}
			return err
		}},
		job{name: "monthly reports", every: time.Hour, run: func(ctx context.Context) error {
			n, err := a.reports.QueueMonthlyReports(ctx, a.db.Now())
			if n > 0 {
				a.log.Info("monthly reports queued", "count", n)
				runner.Notify()
			}
			return err
		}},
		// Residents hear of a change to their building's devices within
		// seconds of its journal entry (db/sqlite/resident_notify.go).
		job{name: "resident notices", every: 2 * time.Second, run: func(ctx context.Context) error {
			_, err := a.residents.NotifyResidents(ctx)
			return err
		}},
		// Sessions past their lifetime or idle time go (they are refused anyway).
		job{name: "session purge", every: time.Hour, run: func(ctx context.Context) error {
			n, err := a.users.PurgeSessions(ctx)
			if n > 0 {
				a.log.Info("expired sessions purged", "count", n)
			}
			return err
		}},
		job{name: "offline devices", every: time.Minute, run: func(ctx context.Context) error {
			_, err := a.unlocks.OfflineDevices(ctx, a.db.Now())
			return err
		}},
	)

	errc := make(chan error, 1)
	go func() { errc <- a.web.Serve(cfg.TLSCert, cfg.TLSKey) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	a.log.Info("shutting down")
	shutdown, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := a.web.Shutdown(shutdown); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	return <-errc
}

// logKey loads the log's signing key and origin from the data directory,
// creating them on first start, and returns the key named after the origin:
// the name its checkpoints are signed under. The origin is the public URL's
// host (or this machine's name) and a random suffix, chosen once.
func logKey(cfg *config) (*auditlog.Key, error) {
	base, err := auditlog.LoadOrCreateKey(filepath.Join(cfg.DataDir, auditlog.KeyFile), "doorledger")
	if err != nil {
		return nil, fmt.Errorf("log signing key: %w", err)
	}
	host := ""
	if u, err := url.Parse(cfg.PublicURL); err == nil {
		host = u.Hostname()
	}
	if host == "" {
		host, _ = os.Hostname()
	}
	origin, err := auditlog.LoadOrCreateOrigin(filepath.Join(cfg.DataDir, auditlog.OriginFile), host)
	if err != nil {
		return nil, err
	}
	return base.Named(origin)
}

// sequenceAtShutdown appends to the log everything committed and signs a
// head of it, once every writer has stopped (the web server, device
// control, mail, the report generator and the background jobs) and the
// unlock committer has written what it was given: the last second before a
// SIGTERM is in the log, not left "not yet logged" until the next start.
func (a *app) sequenceAtShutdown() {
	ctx, cancel := context.WithTimeout(doorledger.NewSystemContext(context.Background(), "system"), time.Minute)
	defer cancel()
	a.unlocks.Wait()
	h, err := a.logs.SignHead(ctx)
	switch {
	case doorledger.ErrorCode(err) == doorledger.ENOTFOUND: // an empty log
	case err != nil:
		a.log.Error("audit log: sequencing at shutdown", "err", err)
	default:
		a.log.Info("audit log sequenced at shutdown", "entries", h.Size)
	}
}

// appHookKey carries, in run's context, a function called with the opened
// app before anything starts: the end-to-end tests give the database a
// clock they control (db.DB.Now) this way, without moving the machine's.
type appHookKey struct{}

// remindJob expires the consent requests past their period and mails the
// reminders due, at the database's clock.
func (a *app) remindJob(ctx context.Context) error {
	expired, reminded, err := a.consents.RemindAndExpire(ctx)
	if expired+reminded > 0 {
		a.log.Info("consent requests", "expired", expired, "reminders", reminded)
	}
	return err
}

// firstStart creates the first admin when there is no account yet, and says once
// how to sign in.
func (a *app) firstStart(ctx context.Context, stdout io.Writer) error {
	n, err := a.users.CountUsers(ctx)
	if err != nil || n > 0 {
		return err
	}
	pass, generated := a.cfg.AdminPass, false
	if pass == "" {
		pass, generated = newPassword(), true
	}
	u, err := a.users.CreateUser(ctx, doorledger.NewUser{Email: a.cfg.AdminEmail, Name: "Administrator", Role: doorledger.RoleAdmin, Password: pass})
	if err != nil {
		return fmt.Errorf("create first admin: %w", err)
	}
	fmt.Fprintf(stdout, "\nFirst start: created the administrator account.\n  email:    %s\n", u.Email)
	if generated {
		fmt.Fprintf(stdout, "  password: %s\n  (shown once; change it under Account after signing in)\n\n", pass)
	} else {
		fmt.Fprintf(stdout, "  password: the one in DOORLEDGER_ADMIN_PASSWORD\n\n")
	}
	return nil
}

// newPassword returns a random 20-character password.
func newPassword() string {
	b := make([]byte, 15)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

// sessionKeys loads the cookie keys, so that a restart keeps people signed in:
// a 64-byte hash key and a 32-byte block key (signed and encrypted cookies).
func sessionKeys(path string) ([][]byte, error) {
	buf, err := loadOrCreateKey(path, 96, "session keys")
	if err != nil {
		return nil, err
	}
	return [][]byte{buf[:64], buf[64:]}, nil
}

// vendorSealKey loads the key that seals vendor integrations' HMAC keys and
// unsent mail bodies in the database. It stays outside the database, so a copy
// of the database alone cannot sign as a vendor nor follow a mailed link;
// losing it means rotating every integration's key, and mail not yet sent is
// marked failed.
func vendorSealKey(path string) ([]byte, error) {
	return loadOrCreateKey(path, sqlite.SealKeySize, "vendor seal key") // the same size on PostgreSQL
}

// loadOrCreateKey reads a random key of size bytes from path, creating it
// (mode 0600, written whole and synced) on first start; portals starting on
// the data directory at once all read the one key written first.
func loadOrCreateKey(path string, size int, what string) ([]byte, error) {
	buf, err := atomicfile.LoadOrCreate(path, size, func(b []byte) error { _, err := rand.Read(b); return err })
	switch {
	case err != nil:
		return nil, fmt.Errorf("%s %s: %w", what, path, err)
	case len(buf) != size:
		return nil, fmt.Errorf("%s %s: want %d bytes, have %d (delete it to make a new one)", what, path, size, len(buf))
	}
	return buf, nil
}
