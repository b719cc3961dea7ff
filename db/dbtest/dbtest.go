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
	"strconv"
	"testing"
	"time"

	"github.com/doorledger/doorledger"
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

	// Now is the services' clock, read once per transaction; a test moves it.
	// It starts at the real time truncated to the second: a backend's rules
	// compare consent expiry with the database's own clock, so it must not
	// start in the past.
	Now *time.Time
	// OnMail sets the hook called after a commit that queued mail.
	OnMail func(func())
	// OnDesired sets the hook handing committed desired states to the
	// device controller.
	OnDesired func(func([]doorledger.DesiredState))
}

// NewServices makes a fresh Services for one test; it cleans up after itself
// with t.Cleanup. Passwords may be hashed at a low cost.
type NewServices func(t *testing.T) Services

// test is one behavioural test of the suite.
type test struct {
	name string
	fn   func(t *testing.T, newServices NewServices)
}

// Run runs the whole suite, one subtest per behaviour, each on services of
// its own from newServices.
func Run(t *testing.T, newServices NewServices) {
	for _, group := range [][]test{
		userTests,
		sessionTests,
		consentTests,
		paperTests,
		textTests,
		residentTests,
		outboxTests,
		policyTests,
		unlockTests,
		reportTests,
		vendorTests,
		logTests,
		deviceTests,
		leaseTests,
		opsTests,
	} {
		for _, tc := range group {
			t.Run(tc.name, func(t *testing.T) { tc.fn(t, newServices) })
		}
	}
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
