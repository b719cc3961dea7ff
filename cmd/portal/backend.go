package main

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"time"

	"github.com/doorledger/doorledger"
	"github.com/doorledger/doorledger/auditlog"
	"github.com/doorledger/doorledger/db/postgres"
	"github.com/doorledger/doorledger/db/sqlite"
	"github.com/doorledger/doorledger/devicectl"
	"github.com/doorledger/doorledger/metrics"
)

// backend is the database under the services: SQLite in the data directory
// (the default, one portal), or PostgreSQL (-database-url, several instances
// on one database). The portal reaches the services through the root's
// interfaces; backend is what else it needs of its database, which the two
// do differently.
type backend interface {
	// Now is the database's clock, the one it records by (tests set it).
	Now() time.Time
	// Ping reports whether the database answers (/healthz).
	Ping(ctx context.Context) error
	// Writable reports whether a write could start now (/readyz).
	Writable(ctx context.Context) error
	// OnDesired sets what runs after a commit that changed devices' desired
	// state, with the states to push; it must not block.
	OnDesired(fn func([]doorledger.DesiredState))
	// OnMail sets what runs after a commit that queued mail; it must not block.
	OnMail(fn func())
	OnEvent(fn func())
	// Pools read the database's connection pools, by name, for the
	// metrics: SQLite's writer and readers, PostgreSQL's one pgxpool.
	Pools() map[string]func() metrics.PoolStats
	// Space is the data disk's free-space guard; nil on PostgreSQL, whose
	// disk is the database server's.
	Space() diskSpace
	// LockInstances takes the database's instance lock for as long as it
	// is open: shared on an external broker (several instances), exclusive
	// with the embedded one (it runs alone). SQLite's is the data
	// directory's (lockDataDir).
	LockInstances(ctx context.Context, shared bool) error
	// Changes relays live pages' wake-ups between instances; nil on SQLite,
	// where one portal serves them all.
	Changes() changeRelay
	// OpenLog builds a's verifiable log under key (nil: heads cannot be
	// signed, only read) and the report registry that prints its heads.
	OpenLog(a *app, key *auditlog.Key)
	// MosquittoDevices lists the devices that may connect, with their
	// secrets' broker-format hashes (portal mosquitto-config).
	MosquittoDevices(ctx context.Context) ([]devicectl.MosquittoDevice, error)
	Close() error
}

// diskSpace keeps free space on the data disk (docs/reliability.md, "Disk
// full"): ingest is refused below the floor, the reserve is released when
// the disk fills up.
type diskSpace interface {
	Limit(floor, reserve int64)
	Full() bool
	Run(ctx context.Context, every time.Duration)
}

// changeRelay carries the web.Hub's keys from one instance to the others
// (db/postgres/notify.go).
type changeRelay interface {
	NotifyChanges(ctx context.Context, keys ...string) error
	ListenChanges(ctx context.Context, fn func(key string)) error
}

// The services as the portal wires them: the root's interfaces and what
// cmd/portal needs beyond them of each.
type (
	consentStore interface {
		doorledger.ConsentService
		doorledger.PaperService
	}
	deviceStore interface {
		doorledger.DeviceService
		doorledger.DeviceReports // what transports report to
		devicectl.Store          // what the controller pushes from
		// DeviceSeen records that a device connected to the embedded broker.
		DeviceSeen(ctx context.Context, deviceID int64, at time.Time) error
		// ReportStats are the report committer's totals (metrics).
		ReportStats() (groups, reports int64)
	}
	unlockStore interface {
		doorledger.UnlockService
		// CountDays dates again the daily counts a time zone change left stale.
		CountDays(ctx context.Context) (int64, error)
		// Stats are the event committer's totals (metrics).
		Stats() (groups, events int64)
		// Wait returns once the committer has written what it was given.
		Wait()
	}
	vendorStore interface {
		doorledger.VendorService
		devicectl.RouteLookup
	}
	opsStore interface {
		doorledger.OpsService
		// LogBacklog is how many committed rows wait for the log's
		// sequencer, and how long the oldest has waited (/readyz).
		LogBacklog(ctx context.Context) (pending int64, lag time.Duration, err error)
	}
	logStore interface {
		doorledger.LogService
		// UseVerifierKey checks heads with a key given on the command line.
		UseVerifierKey(vkey string) error
	}
)

// openSQLite opens the data directory's SQLite database and builds the services on it.
func openSQLite(a *app, sealKey func() ([]byte, error)) error {
	cfg := a.cfg
	db := sqlite.NewDB(filepath.Join(cfg.DataDir, "doorledger.db"))
	if cfg.BcryptCost != 0 {
		db.PasswordCost = cfg.BcryptCost
	}
	if err := db.Open(); err != nil {
		return fmt.Errorf("open database: %w", err)
	}
	lite := &liteBackend{db: db}
	a.db = lite
	key, err := sealKey()
	if err != nil {
		return err
	}
	// The same key seals mail bodies until they are sent.
	if err := db.SetSealKey(key); err != nil {
		return err
	}
	a.users = sqlite.NewUserService(db)
	buildings := sqlite.NewBuildingService(db)
	buildings.BaseURL = cfg.PublicURL
	a.buildings = buildings
	a.audit = sqlite.NewAuditService(db)
	consents := sqlite.NewConsentService(db, cfg.PublicURL)
	a.consents = consents
	a.policies = sqlite.NewPolicyService(db)
	a.privacy = sqlite.NewPrivacyService(db)
	invitations := sqlite.NewInvitationService(db, cfg.PublicURL)
	a.invitations = invitations
	outbox := sqlite.NewOutboxService(db)
	outbox.LogOnly = cfg.SMTPURL == ""
	a.outbox = outbox
	devices := sqlite.NewDeviceService(db)
	devices.BrokerHash = devicectl.MosquittoHash
	devices.Sessions = &a.sessions
	a.devices = devices
	lite.devices = devices
	unlocks := sqlite.NewUnlockService(db)
	a.unlocks = unlocks
	residents := sqlite.NewResidentService(db, cfg.PublicURL)
	a.residents = residents
	if a.vendors, err = sqlite.NewVendorService(db, unlocks, key); err != nil {
		return err
	}
	a.witnesses = sqlite.NewWitnessService(db)
	a.factors = sqlite.NewSecondFactorService(db) // sealed with the key SetSealKey sets
	a.webhooks = sqlite.NewWebhookService(db)
	a.sso = sqlite.NewSSOService(db)
	a.attention = sqlite.NewAttentionService(db)
	a.leases = sqlite.NewLeaseService(db)
	a.ops = sqlite.NewOpsService(db)
	a.baseURLs = []*string{&consents.BaseURL, &invitations.BaseURL, &residents.BaseURL}
	return nil
}

// liteBackend is the SQLite database.
type liteBackend struct {
	db      *sqlite.DB
	devices *sqlite.DeviceService
}

func (b *liteBackend) Now() time.Time { return b.db.Now() }
func (b *liteBackend) Ping(ctx context.Context) error {
	_, err := b.db.Reader().ExecContext(ctx, `SELECT 1`)
	return err
}
func (b *liteBackend) Writable(ctx context.Context) error           { return b.db.Writable(ctx) }
func (b *liteBackend) OnDesired(fn func([]doorledger.DesiredState)) { b.db.OnDesired = fn }
func (b *liteBackend) OnMail(fn func())                             { b.db.OnMail = fn }
func (b *liteBackend) OnEvent(fn func())                            { b.db.OnEvent = fn }
func (b *liteBackend) Pools() map[string]func() metrics.PoolStats {
	return map[string]func() metrics.PoolStats{"sqlite_write": metrics.SQLPool(b.db.Writer()), "sqlite_read": metrics.SQLPool(b.db.Reader())}
}
func (b *liteBackend) Space() diskSpace                          { return liteSpace{b.db.Space()} }
func (b *liteBackend) Changes() changeRelay                      { return nil }
func (b *liteBackend) LockInstances(context.Context, bool) error { return nil }
func (b *liteBackend) OpenLog(a *app, key *auditlog.Key) {
	logs := sqlite.NewLogService(b.db, key)
	reports := sqlite.NewReportService(b.db, logs, a.cfg.PublicURL)
	a.logs, a.reports = logs, reports
	a.baseURLs = append(a.baseURLs, &reports.BaseURL)
}
func (b *liteBackend) MosquittoDevices(ctx context.Context) ([]devicectl.MosquittoDevice, error) {
	creds, err := b.devices.MosquittoCredentials(ctx)
	var list []devicectl.MosquittoDevice
	for _, c := range creds {
		list = append(list, devicectl.MosquittoDevice{ID: c.DeviceID, Hash: c.Hash})
	}
	return list, err
}
func (b *liteBackend) Close() error { return b.db.Close() }

// liteSpace is SQLite's guard of its data disk.
type liteSpace struct{ *sqlite.Space }

func (s liteSpace) Limit(floor, reserve int64) { s.Floor, s.Reserve = floor, reserve }

// openPostgres connects to the PostgreSQL database at cfg.DatabaseURL
// (applying its migrations) and builds the services on it.
func openPostgres(a *app, sealKey func() ([]byte, error)) error {
	cfg := a.cfg
	db := postgres.NewDB(cfg.DatabaseURL)
	if cfg.BcryptCost != 0 {
		db.PasswordCost = cfg.BcryptCost
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := db.Open(ctx); err != nil {
		return fmt.Errorf("open database %s: %w", redactURL(cfg.DatabaseURL), err)
	}
	pg := &pgBackend{db: db}
	a.db = pg
	key, err := sealKey()
	if err != nil {
		return err
	}
	if err := db.SetSealKey(key); err != nil {
		return err
	}
	a.users = postgres.NewUserService(db)
	buildings := postgres.NewBuildingService(db)
	buildings.BaseURL = cfg.PublicURL
	a.buildings = buildings
	a.audit = postgres.NewAuditService(db)
	consents := postgres.NewConsentService(db, cfg.PublicURL)
	a.consents = consents
	a.policies = postgres.NewPolicyService(db)
	a.privacy = postgres.NewPrivacyService(db)
	invitations := postgres.NewInvitationService(db, cfg.PublicURL)
	a.invitations = invitations
	outbox := postgres.NewOutboxService(db)
	outbox.LogOnly = cfg.SMTPURL == ""
	a.outbox = outbox
	devices := postgres.NewDeviceService(db)
	devices.BrokerHash = devicectl.MosquittoHash
	devices.Sessions = &a.sessions
	a.devices = devices
	pg.devices = devices
	unlocks := postgres.NewUnlockService(db)
	a.unlocks = unlocks
	residents := postgres.NewResidentService(db, cfg.PublicURL)
	a.residents = residents
	if a.vendors, err = postgres.NewVendorService(db, unlocks, key); err != nil {
		return err
	}
	a.witnesses = postgres.NewWitnessService(db)
	a.webhooks = postgres.NewWebhookService(db)
	a.sso = postgres.NewSSOService(db)
	a.factors = postgres.NewSecondFactorService(db) // sealed with the key SetSealKey set above
	a.attention = postgres.NewAttentionService(db)
	a.leases = postgres.NewLeaseService(db)
	a.ops = postgres.NewOpsService(db)
	a.baseURLs = []*string{&consents.BaseURL, &invitations.BaseURL, &residents.BaseURL}
	return nil
}

// pgBackend is the PostgreSQL database.
type pgBackend struct {
	db      *postgres.DB
	devices *postgres.DeviceService
}

func (b *pgBackend) Now() time.Time                               { return b.db.Now() }
func (b *pgBackend) Ping(ctx context.Context) error               { return b.db.Pool().Ping(ctx) }
func (b *pgBackend) Writable(ctx context.Context) error           { return b.db.Writable(ctx) }
func (b *pgBackend) OnDesired(fn func([]doorledger.DesiredState)) { b.db.OnDesired = fn }
func (b *pgBackend) OnMail(fn func())                             { b.db.OnMail = fn }
func (b *pgBackend) OnEvent(fn func())                            { b.db.OnEvent = fn }
func (b *pgBackend) Pools() map[string]func() metrics.PoolStats {
	return map[string]func() metrics.PoolStats{"postgres": metrics.PgxPool(b.db.Pool())}
}
func (b *pgBackend) Space() diskSpace     { return nil }
func (b *pgBackend) Changes() changeRelay { return b.db }
func (b *pgBackend) LockInstances(ctx context.Context, shared bool) error {
	ok, err := b.db.LockInstances(ctx, shared)
	switch {
	case err != nil:
		return fmt.Errorf("database instance lock: %w", err)
	case !ok && shared:
		return errors.New("a portal with the embedded MQTT broker runs on this database, and runs alone: " +
			"stop it, and run every instance on an external broker (-mqtt-url; docs/operations.md)")
	case !ok:
		return errors.New("another portal runs on this database: a portal with the embedded MQTT broker runs alone; " +
			"several instances share an external broker (-mqtt-url) and one database (docs/operations.md)")
	}
	return nil
}
func (b *pgBackend) OpenLog(a *app, key *auditlog.Key) {
	logs := postgres.NewLogService(b.db, key)
	reports := postgres.NewReportService(b.db, logs, a.cfg.PublicURL)
	a.logs, a.reports = logs, reports
	a.baseURLs = append(a.baseURLs, &reports.BaseURL)
}
func (b *pgBackend) MosquittoDevices(ctx context.Context) ([]devicectl.MosquittoDevice, error) {
	creds, err := b.devices.MosquittoCredentials(ctx)
	var list []devicectl.MosquittoDevice
	for _, c := range creds {
		list = append(list, devicectl.MosquittoDevice{ID: c.DeviceID, Hash: c.Hash})
	}
	return list, err
}
func (b *pgBackend) Close() error { return b.db.Close() }

// secureStoredMail seals or drops the mail bodies the database keeps, as
// the outbox's LogOnly says (serve), where the backend has bodies of an
// older version to secure.
func (a *app) secureStoredMail(ctx context.Context) error {
	s, ok := a.outbox.(interface {
		SecureStoredMail(ctx context.Context) (int, error)
	})
	if !ok {
		return nil
	}
	n, err := s.SecureStoredMail(ctx)
	if err != nil {
		return fmt.Errorf("secure stored mail: %w", err)
	} else if n > 0 {
		a.log.Info("stored mail bodies sealed or dropped", "count", n)
	}
	return nil
}

// diskFull is space's Full, or nil without a guard of the disk.
func diskFull(space diskSpace) func() bool {
	if space == nil {
		return nil
	}
	return space.Full
}
