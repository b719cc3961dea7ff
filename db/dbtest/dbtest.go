// Package dbtest is the behavioural suite every storage backend passes: tests
// that speak only through the root's service interfaces, in the shape of
// litestream's shared replica-client tests. A backend runs it from one test:
//
//	func TestServices(t *testing.T) { dbtest.Run(t, newServices) }
//
// Tests of a backend's own rules (triggers refusing writes the services
// would not make, pragmas, migrations) stay beside that backend.
package dbtest

import (
	"context"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/doorledger/doorledger"
	"github.com/doorledger/doorledger/devicectl"
)

// BaseURL is the portal address the services must put in the links they mail
// (consents, invitations, residents, buildings).
const BaseURL = "http://portal.test"

// Services is one fresh, empty database behind every service, as a backend
// hands it to the suite, with what the suite needs to set up a world through
// the interfaces.
type Services struct {
	Users         doorledger.UserService
	Buildings     doorledger.BuildingService
	Invitations   doorledger.InvitationService
	Consents      doorledger.ConsentService
	Devices       doorledger.DeviceService
	DeviceReports doorledger.DeviceReports
	Unlocks       doorledger.UnlockService
	Logs          doorledger.LogService
	Reports       doorledger.ReportService
	Audit         doorledger.AuditService
	Policies      doorledger.PolicyService
	Privacy       doorledger.PrivacyService
	Papers        doorledger.PaperService
	Residents     doorledger.ResidentService
	Vendors       doorledger.VendorService
	Outbox        doorledger.OutboxService
	Attention     doorledger.AttentionService
	Leases        doorledger.LeaseService
	Ops           doorledger.OpsService
	Witnesses     doorledger.WitnessService
	// Controller is what the device controller needs of the database
	// (delivery records, time-outs, the states to publish at start-up):
	// the device service on both backends.
	Controller    devicectl.Store
	Webhooks      doorledger.WebhookService
	SecondFactors doorledger.SecondFactorService
	SSO           doorledger.SSOService

	// Now is the services' clock, read once per transaction; a test moves it.
	// It starts at the real time truncated to the second: a backend's rules
	// compare consent expiry with the database's own clock, so it must not
	// start in the past.
	Now *time.Time
	// OnMail sets the hook called after a commit that queued mail.
	OnMail func(func())
	// OnEvent sets the hook called after a commit that queued webhook deliveries.
	OnEvent func(func())
	// OnDesired sets the hook handing committed desired states to the
	// device controller.
	OnDesired func(func([]doorledger.DesiredState))
	// MaxReportEvents lowers the report service's bound on the unlock
	// events of one report (doorledger.MaxReportEvents).
	MaxReportEvents func(int64)
}

// NewServices makes a fresh Services for one test; it cleans up after itself
// with t.Cleanup. Passwords may be hashed at a low cost.
type NewServices func(t *testing.T) Services

// test is one behavioural test of the suite.
type test struct {
	name string
	fn   func(t *testing.T, newServices NewServices)
}

// Groups names the suite's groups of tests, in the order Run runs them.
// A backend that does not implement every service yet runs those it does
// with RunGroups.
var Groups = []string{
	"users", "sessions", "buildings", "consents", "papers", "text", "residents", "outbox",
	"policies", "unlocks", "reports", "vendors", "logs", "witnesses", "devices", "attention", "leases", "ops", "webhooks", "webhookevents", "secondfactors",
	"sso",
}

// groups are the tests of each group.
var groups = map[string][]test{
	"users":         userTests,
	"sessions":      sessionTests,
	"leases":        leaseTests,
	"ops":           opsTests,
	"buildings":     buildingTests,
	"consents":      consentTests,
	"papers":        paperTests,
	"text":          textTests,
	"residents":     residentTests,
	"outbox":        outboxTests,
	"policies":      policyTests,
	"unlocks":       append(unlockTests, unlockIngestTests...),
	"reports":       reportTests,
	"vendors":       vendorTests,
	"logs":          logTests,
	"witnesses":     witnessTests,
	"devices":       deviceTests,
	"attention":     attentionTests,
	"webhooks":      webhookTests,
	"webhookevents": webhookEventTests,
	"secondfactors": secondFactorTests,
	"sso":           ssoTests,
}

// Run runs the whole suite, one subtest per behaviour, each on services of
// its own from newServices.
func Run(t *testing.T, newServices NewServices) { RunGroups(t, newServices, Groups...) }

// RunGroups runs the named groups of the suite (Groups), one subtest per
// behaviour as Run does: for a backend that implements some services yet.
// An unknown name fails the test.
func RunGroups(t *testing.T, newServices NewServices, names ...string) {
	for _, name := range names {
		group, ok := groups[name]
		if !ok {
			t.Fatalf("dbtest: no group %q (groups: %v)", name, Groups)
		}
		for _, tc := range group {
			newServices := newServices
			if mailGoldenGroups[name] {
				newServices = withMailGolden(tc.name, newServices)
			}
			t.Run(tc.name, func(t *testing.T) { tc.fn(t, newServices) })
		}
	}
}

// Missing returns the groups of Groups not among names, in order: what a
// backend running RunGroups(names...) does not run yet, for it to say so.
func Missing(names ...string) []string {
	var missing []string
	for _, g := range Groups {
		if !slices.Contains(names, g) {
			missing = append(missing, g)
		}
	}
	return missing
}

// System is the context of the portal itself (no signed-in user).
func System() context.Context { return doorledger.NewSystemContext(context.Background(), "test") }

// As is the context of a signed-in user.
func As(u *doorledger.User) context.Context {
	return doorledger.NewContextWithUser(context.Background(), u)
}

// The suite's own short names for them.
var sys, as = System, As

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// must returns what a call returned once t checks it did not fail:
// must(f())(t).
func must[T any](v T, err error) func(t testing.TB) T {
	return func(t testing.TB) T {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
}
