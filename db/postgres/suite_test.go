package postgres_test

import (
	"bytes"
	"testing"

	"github.com/doorledger/doorledger"
	"github.com/doorledger/doorledger/db/dbtest"
	"github.com/doorledger/doorledger/db/postgres"
)

// implemented are the groups of the behavioural suite whose services
// PostgreSQL implements so far (issue 15 is under way): TestServices runs
// them and says which it does not run yet.
var implemented = []string{"users", "sessions", "buildings", "outbox", "consents", "policies", "papers", "leases", "devices", "attention", "text", "residents", "unlocks", "logs", "witnesses", "reports", "vendors", "ops", "webhooks", "webhookevents", "secondfactors"}

// TestServices runs the backend-agnostic behavioural suite on PostgreSQL:
// the groups implemented so far.
func TestServices(t *testing.T) {
	t.Logf("dbtest groups not run on PostgreSQL yet (services not ported): %v", dbtest.Missing(implemented...))
	dbtest.RunGroups(t, newPostgresServices, implemented...)
}

func newPostgresServices(t *testing.T) dbtest.Services {
	s, _ := openServices(t)
	return s
}

// sealKey seals the vendor keys of the tests' databases.
var sealKey = bytes.Repeat([]byte{7}, postgres.SealKeySize)

// openServices opens a database (MustOpenDB) and the services ported so
// far, as the suite sees them (the rest are nil), and returns the database
// too for the tests that must reach it.
func openServices(tb testing.TB) (dbtest.Services, *postgres.DB) {
	tb.Helper()
	d, now := MustOpenDB(tb)
	buildings := postgres.NewBuildingService(d)
	buildings.BaseURL = dbtest.BaseURL
	consents := postgres.NewConsentService(d, dbtest.BaseURL)
	devices := postgres.NewDeviceService(d)
	unlocks := postgres.NewUnlockService(d)
	logs := postgres.NewLogService(d, mustLogKey(tb))
	reports := postgres.NewReportService(d, logs, dbtest.BaseURL)
	vendors, err := postgres.NewVendorService(d, unlocks, sealKey)
	if err != nil {
		tb.Fatal(err)
	}
	return dbtest.Services{
		Users:           postgres.NewUserService(d),
		Buildings:       buildings,
		Invitations:     postgres.NewInvitationService(d, dbtest.BaseURL),
		Consents:        consents,
		Devices:         devices,
		DeviceReports:   devices,
		Controller:      devices,
		Audit:           postgres.NewAuditService(d),
		Policies:        postgres.NewPolicyService(d),
		Papers:          consents,
		Residents:       postgres.NewResidentService(d, dbtest.BaseURL),
		Privacy:         postgres.NewPrivacyService(d),
		Outbox:          postgres.NewOutboxService(d),
		Attention:       postgres.NewAttentionService(d),
		Unlocks:         unlocks,
		Leases:          postgres.NewLeaseService(d),
		Ops:             postgres.NewOpsService(d),
		Logs:            logs,
		Reports:         reports,
		Vendors:         vendors,
		Witnesses:       postgres.NewWitnessService(d),
		Now:             now,
		OnMail:          func(f func()) { d.OnMail = f },
		OnDesired:       func(f func([]doorledger.DesiredState)) { d.OnDesired = f },
		MaxReportEvents: func(n int64) { reports.MaxEvents = n },
		Webhooks:        postgres.NewWebhookService(d),
		SecondFactors:   postgres.NewSecondFactorService(d),
		OnEvent:         func(f func()) { d.OnEvent = f },
	}, d
}
