package postgres_test

import (
	"bytes"
	"testing"

	"github.com/doorledger/doorledger"
	"github.com/doorledger/doorledger/db/dbtest"
	"github.com/doorledger/doorledger/db/postgres"
)

// TestServices runs the whole backend-agnostic behavioural suite on
// PostgreSQL, as db/sqlite's TestServices does on SQLite: every service is
// ported (issue 15).
func TestServices(t *testing.T) { dbtest.Run(t, newPostgresServices) }

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
		SSO:             postgres.NewSSOService(d),
	}, d
}
