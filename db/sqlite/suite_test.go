package sqlite_test

import (
	"testing"

	"github.com/doorledger/doorledger"
	"github.com/doorledger/doorledger/auditlog"
	"github.com/doorledger/doorledger/db/dbtest"
	"github.com/doorledger/doorledger/db/sqlite"
)

// TestServices runs the backend-agnostic behavioural suite on SQLite.
func TestServices(t *testing.T) { dbtest.Run(t, newSQLiteServices) }

func newSQLiteServices(t *testing.T) dbtest.Services {
	s, _ := openServices(t)
	return s
}

// openServices opens a database (MustOpenDB) and every service on it, as the
// suite sees them, and returns the database too for the tests that must
// reach it.
func openServices(tb testing.TB) (dbtest.Services, *sqlite.DB) {
	tb.Helper()
	return openServicesWithKey(tb, mustLogKey(tb))
}

// openServicesWithKey is openServices with the log signed by key.
func openServicesWithKey(tb testing.TB, key *auditlog.Key) (dbtest.Services, *sqlite.DB) {
	tb.Helper()
	d, now := MustOpenDB(tb)
	logs := sqlite.NewLogService(d, key)
	unlocks := sqlite.NewUnlockService(d)
	vendors, err := sqlite.NewVendorService(d, unlocks, sealKey)
	if err != nil {
		tb.Fatal(err)
	}
	buildings := sqlite.NewBuildingService(d)
	consents := sqlite.NewConsentService(d, dbtest.BaseURL)
	devices := sqlite.NewDeviceService(d)
	reports := sqlite.NewReportService(d, logs, dbtest.BaseURL)
	buildings.BaseURL = dbtest.BaseURL
	return dbtest.Services{
		Users:           sqlite.NewUserService(d),
		Buildings:       buildings,
		Invitations:     sqlite.NewInvitationService(d, dbtest.BaseURL),
		Consents:        consents,
		Devices:         devices,
		DeviceReports:   devices,
		Controller:      devices,
		Unlocks:         unlocks,
		Logs:            logs,
		Reports:         reports,
		Audit:           sqlite.NewAuditService(d),
		Policies:        sqlite.NewPolicyService(d),
		Privacy:         sqlite.NewPrivacyService(d),
		Papers:          consents,
		Residents:       sqlite.NewResidentService(d, dbtest.BaseURL),
		Vendors:         vendors,
		Outbox:          sqlite.NewOutboxService(d),
		Attention:       sqlite.NewAttentionService(d),
		Leases:          sqlite.NewLeaseService(d),
		Ops:             sqlite.NewOpsService(d),
		Witnesses:       sqlite.NewWitnessService(d),
		Now:             now,
		OnMail:          func(f func()) { d.OnMail = f },
		OnDesired:       func(f func([]doorledger.DesiredState)) { d.OnDesired = f },
		MaxReportEvents: func(n int64) { reports.MaxEvents = n },
		Webhooks:        sqlite.NewWebhookService(d),
		OnEvent:         func(f func()) { d.OnEvent = f },
		SSO:             sqlite.NewSSOService(d),
		SecondFactors:   sqlite.NewSecondFactorService(d),
	}, d
}
