package postgres_test

import (
	"context"
	"testing"

	"github.com/doorledger/doorledger"
	"github.com/doorledger/doorledger/db/dbtest"
	"github.com/doorledger/doorledger/db/postgres"
)

// implemented are the groups of the behavioural suite whose services
// PostgreSQL implements so far (issue 15 is under way): TestServices runs
// them and says which it does not run yet.
var implemented = []string{"users", "sessions", "buildings", "outbox", "consents", "policies", "papers", "leases", "webhooks"}

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

// openServices opens a database (MustOpenDB) and the services ported so
// far, as the suite sees them (the rest are nil), and returns the database
// too for the tests that must reach it.
func openServices(tb testing.TB) (dbtest.Services, *postgres.DB) {
	tb.Helper()
	d, now := MustOpenDB(tb)
	buildings := postgres.NewBuildingService(d)
	buildings.BaseURL = dbtest.BaseURL
	consents := postgres.NewConsentService(d, dbtest.BaseURL)
	return dbtest.Services{
		Users:       postgres.NewUserService(d),
		Buildings:   buildings,
		Invitations: postgres.NewInvitationService(d, dbtest.BaseURL),
		Consents:    consents,
		Devices:     deviceStates{d: d},
		Audit:       postgres.NewAuditService(d),
		Policies:    postgres.NewPolicyService(d),
		Papers:      consents,
		Residents:   postgres.NewResidentService(d, dbtest.BaseURL),
		Privacy:     postgres.NewPrivacyService(d),
		Outbox:      postgres.NewOutboxService(d),
		Leases:      postgres.NewLeaseService(d),
		Webhooks:    postgres.NewWebhookService(d),
		Ops:         postgres.NewOpsService(d), // its group needs the device world: ops_test.go checks it meanwhile
		Now:         now,
		OnMail:      func(f func()) { d.OnMail = f },
		OnEvent:     func(f func()) { d.OnEvent = f },
		OnDesired:   func(f func([]doorledger.DesiredState)) { d.OnDesired = f },
	}, d
}

// deviceStates stands in for the device service until its port (w9-pg3)
// lands: the consent groups read a device's desired state and consent
// (dbtest's ConsentWorld.Device) from the database itself. Any other
// method of doorledger.DeviceService panics on the nil interface.
type deviceStates struct {
	doorledger.DeviceService
	d *postgres.DB
}

func (s deviceStates) FindDeviceByID(ctx context.Context, id int64) (*doorledger.Device, error) {
	var dev doorledger.Device
	var consentID *int64
	err := s.d.Pool().QueryRow(ctx, `SELECT id, building_id, desired_state, consent_id FROM devices WHERE id = $1`, id).
		Scan(&dev.ID, &dev.BuildingID, &dev.DesiredState, &consentID)
	if consentID != nil {
		dev.ConsentID = *consentID
	}
	return &dev, err
}
