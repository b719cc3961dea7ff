package dbtest

import (
	"strings"
	"testing"

	"github.com/doorledger/doorledger"
)

// Single sign-on: the domains allowed to sign up, and the sign-in by a
// provider's verified identity.
var ssoTests = []test{
	{"SSODomainsAdminsOnly", testSSODomainsAdminsOnly},
	{"SSOSignInByVerifiedEmail", testSSOSignInByVerifiedEmail},
	{"SSOSignUpOnlyForAllowedDomain", testSSOSignUpOnlyForAllowedDomain},
	{"SSOThrottledWithPasswordSignIns", testSSOThrottledWithPasswordSignIns},
	{"SSOStateUsedOnce", testSSOStateUsedOnce},
}

const testIssuer = "https://idp.example.com"

// ssoWorld is an admin, a manager, and the services.
type ssoWorld struct {
	Services
	Admin, Manager *doorledger.User
}

func newSSOWorld(t testing.TB, s Services) ssoWorld {
	t.Helper()
	w := ssoWorld{Services: s}
	var err error
	if w.Admin, err = s.Users.CreateUser(sys(), doorledger.NewUser{Email: "sso-admin@example.com", Name: "Admin",
		Role: doorledger.RoleAdmin, Password: "correct horse battery"}); err != nil {
		t.Fatal(err)
	}
	if w.Manager, err = s.Users.CreateUser(sys(), doorledger.NewUser{Email: "Alice@Example.com", Name: "Alice",
		Role: doorledger.RoleManager, Password: "correct horse battery"}); err != nil {
		t.Fatal(err)
	}
	return w
}

// lastEntry returns the newest journal entry.
func (w ssoWorld) lastEntry(t testing.TB) *doorledger.AuditEntry {
	t.Helper()
	entries, err := w.Audit.FindAuditEntries(sys(), doorledger.AuditFilter{Limit: 1})
	if err != nil || len(entries) != 1 {
		t.Fatalf("journal: %v, %d entries", err, len(entries))
	}
	return entries[0]
}

func identity(email string, verified bool) doorledger.SSOIdentity {
	return doorledger.SSOIdentity{Issuer: testIssuer, Subject: "sub-" + email, Email: email, EmailVerified: verified, Name: "Pat Example"}
}

func testSSODomainsAdminsOnly(t *testing.T, newServices NewServices) {
	w := newSSOWorld(t, newServices(t))
	if _, err := w.SSO.SSODomains(as(w.Manager)); doorledger.ErrorCode(err) != doorledger.EFORBIDDEN {
		t.Fatalf("manager lists domains: %v, want EFORBIDDEN", err)
	}
	if _, err := w.SSO.AllowSSODomain(as(w.Manager), doorledger.SSODomain{Domain: "example.org", Role: doorledger.RoleBoard}); doorledger.ErrorCode(err) != doorledger.EFORBIDDEN {
		t.Fatalf("manager allows a domain: %v, want EFORBIDDEN", err)
	}
	for _, bad := range []doorledger.SSODomain{
		{Domain: "example.org", Role: doorledger.RoleAdmin},
		{Domain: "example", Role: doorledger.RoleBoard},
		{Domain: "exa mple.org", Role: doorledger.RoleBoard},
	} {
		_, err := w.SSO.AllowSSODomain(as(w.Admin), bad)
		if doorledger.ErrorCode(err) != doorledger.EINVALID {
			t.Errorf("allow %+v: %v, want EINVALID", bad, err)
		}
	}
	d, err := w.SSO.AllowSSODomain(as(w.Admin), doorledger.SSODomain{Domain: " @Example.ORG ", Role: doorledger.RoleBoard})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := d.Domain, "example.org"; got != want {
		t.Errorf("domain %q, want %q", got, want)
	}
	if e := w.lastEntry(t); e.Action != "sso.domain_allow" || !strings.Contains(doorledger.AuditSentence(e), "example.org as board") {
		t.Errorf("journal: %s %q", e.Action, doorledger.AuditSentence(e))
	}
	// Allowing it again changes its role.
	if _, err := w.SSO.AllowSSODomain(as(w.Admin), doorledger.SSODomain{Domain: "example.org", Role: doorledger.RoleInstaller}); err != nil {
		t.Fatal(err)
	}
	list, err := w.SSO.SSODomains(as(w.Admin))
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 1 || list[0].Domain != "example.org" || list[0].Role != doorledger.RoleInstaller || list[0].CreatedBy != w.Admin.Email || list[0].CreatedAt.IsZero() {
		t.Fatalf("domains: %+v", list)
	}
	if err := w.SSO.RemoveSSODomain(as(w.Manager), "example.org"); doorledger.ErrorCode(err) != doorledger.EFORBIDDEN {
		t.Fatalf("manager removes: %v", err)
	}
	if err := w.SSO.RemoveSSODomain(as(w.Admin), "Example.org"); err != nil {
		t.Fatal(err)
	}
	if e := w.lastEntry(t); e.Action != "sso.domain_remove" || !strings.Contains(doorledger.AuditSentence(e), "example.org") {
		t.Errorf("journal: %s %q", e.Action, doorledger.AuditSentence(e))
	}
	if err := w.SSO.RemoveSSODomain(as(w.Admin), "example.org"); doorledger.ErrorCode(err) != doorledger.ENOTFOUND {
		t.Fatalf("remove again: %v, want ENOTFOUND", err)
	}
	if list, _ := w.SSO.SSODomains(as(w.Admin)); len(list) != 0 {
		t.Fatalf("domains after removal: %+v", list)
	}
}

func testSSOSignInByVerifiedEmail(t *testing.T, newServices NewServices) {
	w := newSSOWorld(t, newServices(t))
	u, err := w.SSO.SSOSignIn(sys(), identity("ALICE@example.com", true), "192.0.2.1")
	if err != nil {
		t.Fatal(err)
	}
	if u.ID != w.Manager.ID || u.Role != doorledger.RoleManager {
		t.Fatalf("signed in %+v, want the manager", u)
	}
	e := w.lastEntry(t)
	if got, want := doorledger.AuditSentence(e), "signed in via "+testIssuer; e.Action != "user.login_sso" || got != want || e.ActorID != u.ID {
		t.Errorf("journal: %s by %d %q, want %q", e.Action, e.ActorID, got, want)
	}
	// An unverified address signs no one in, even an existing account's.
	_, err = w.SSO.SSOSignIn(sys(), identity("alice@example.com", false), "192.0.2.1")
	if doorledger.ErrorCode(err) != doorledger.EUNAUTHORIZED || !strings.Contains(doorledger.ErrorMessage(err), "not verified") {
		t.Fatalf("unverified: %v", err)
	}
	if e := w.lastEntry(t); e.Action != "user.login_sso_failed" || !strings.Contains(doorledger.AuditSentence(e), "not verified") {
		t.Errorf("journal: %s %q", e.Action, doorledger.AuditSentence(e))
	}
	// A disabled account cannot sign in by SSO.
	yes := true
	if _, err := w.Users.UpdateUser(as(w.Admin), w.Manager.ID, doorledger.UserUpdate{Disabled: &yes}); err != nil {
		t.Fatal(err)
	}
	_, err = w.SSO.SSOSignIn(sys(), identity("alice@example.com", true), "192.0.2.1")
	if doorledger.ErrorCode(err) != doorledger.EUNAUTHORIZED || !strings.Contains(doorledger.ErrorMessage(err), "disabled") {
		t.Fatalf("disabled: %v", err)
	}
	if e := w.lastEntry(t); e.Action != "user.login_sso_failed" || !strings.Contains(doorledger.AuditSentence(e), "disabled") {
		t.Errorf("journal: %s %q", e.Action, doorledger.AuditSentence(e))
	}
}

func testSSOSignUpOnlyForAllowedDomain(t *testing.T, newServices NewServices) {
	w := newSSOWorld(t, newServices(t))
	n0, _ := w.Users.CountUsers(sys())
	_, err := w.SSO.SSOSignIn(sys(), identity("pat@board.example.net", true), "192.0.2.2")
	if doorledger.ErrorCode(err) != doorledger.EUNAUTHORIZED || !strings.Contains(doorledger.ErrorMessage(err), "No account") {
		t.Fatalf("unknown address: %v", err)
	}
	if n, _ := w.Users.CountUsers(sys()); n != n0 {
		t.Fatalf("an account was made: %d users, had %d", n, n0)
	}
	if _, err := w.SSO.AllowSSODomain(as(w.Admin), doorledger.SSODomain{Domain: "board.example.net", Role: doorledger.RoleBoard}); err != nil {
		t.Fatal(err)
	}
	// Still no account for an unverified address of the allowed domain.
	if _, err := w.SSO.SSOSignIn(sys(), identity("pat@board.example.net", false), "192.0.2.2"); doorledger.ErrorCode(err) != doorledger.EUNAUTHORIZED {
		t.Fatalf("unverified: %v", err)
	}
	if n, _ := w.Users.CountUsers(sys()); n != n0 {
		t.Fatalf("an account was made for an unverified address")
	}
	u, err := w.SSO.SSOSignIn(sys(), identity("Pat@Board.example.net", true), "192.0.2.2")
	if err != nil {
		t.Fatal(err)
	}
	if u.Email != "pat@board.example.net" || u.Role != doorledger.RoleBoard || u.Name != "Pat Example" {
		t.Fatalf("made %+v", u)
	}
	found, err := w.Users.FindUserByEmail(sys(), "pat@board.example.net")
	if err != nil || found.ID != u.ID || found.Role != doorledger.RoleBoard {
		t.Fatalf("stored: %+v, %v", found, err)
	}
	entries, err := w.Audit.FindAuditEntries(sys(), doorledger.AuditFilter{Limit: 2})
	if err != nil || len(entries) != 2 {
		t.Fatal(err)
	}
	if entries[1].Action != "user.create_sso" || !strings.Contains(doorledger.AuditSentence(entries[1]), "as board") ||
		entries[0].Action != "user.login_sso" {
		t.Errorf("journal: %s %q, then %s", entries[1].Action, doorledger.AuditSentence(entries[1]), entries[0].Action)
	}
	// The account made has no password: it cannot sign in with one.
	if _, err := w.Users.Authenticate(sys(), "pat@board.example.net", "", "192.0.2.2"); doorledger.ErrorCode(err) != doorledger.EUNAUTHORIZED {
		t.Fatalf("password sign-in of an SSO account: %v", err)
	}
	// The next sign-in finds the account.
	again, err := w.SSO.SSOSignIn(sys(), identity("pat@board.example.net", true), "192.0.2.2")
	if err != nil || again.ID != u.ID {
		t.Fatalf("again: %+v, %v", again, err)
	}
}

func testSSOThrottledWithPasswordSignIns(t *testing.T, newServices NewServices) {
	w := newSSOWorld(t, newServices(t))
	// The account's failed passwords lock its SSO sign-in too.
	for i := 0; i < doorledger.LoginFailureLimit; i++ {
		if _, err := w.Users.Authenticate(sys(), "alice@example.com", "wrong password!", "198.51.100."+itoa(int64(i))); doorledger.ErrorCode(err) != doorledger.EUNAUTHORIZED {
			t.Fatalf("attempt %d: %v", i, err)
		}
	}
	if _, err := w.SSO.SSOSignIn(sys(), identity("alice@example.com", true), "192.0.2.9"); doorledger.ErrorCode(err) != doorledger.ETOOMANY {
		t.Fatalf("locked account by SSO: %v, want ETOOMANY", err)
	}
	// Failed callbacks from one address lock that address, not others.
	const ip = "203.0.113.7"
	if err := w.SSO.CheckSSOThrottle(sys(), ip); err != nil {
		t.Fatal(err)
	}
	for i := 0; ; i++ {
		if err := w.SSO.SSOFailed(sys(), testIssuer, "", ip, "state not started in this browser"); err != nil {
			t.Fatal(err)
		}
		if err := w.SSO.CheckSSOThrottle(sys(), ip); doorledger.ErrorCode(err) == doorledger.ETOOMANY {
			break
		} else if err != nil || i > 100 {
			t.Fatalf("after %d failures: %v", i+1, err)
		}
	}
	if e := w.lastEntry(t); e.Action != "user.login_sso_failed" || !strings.Contains(doorledger.AuditSentence(e), "not started in this browser") {
		t.Errorf("journal: %s %q", e.Action, doorledger.AuditSentence(e))
	}
	if _, err := w.SSO.SSOSignIn(sys(), identity("sso-admin@example.com", true), ip); doorledger.ErrorCode(err) != doorledger.ETOOMANY {
		t.Fatalf("sign-in from the locked address: %v", err)
	}
	if err := w.SSO.CheckSSOThrottle(sys(), "203.0.113.8"); err != nil {
		t.Fatalf("another address: %v", err)
	}
	if _, err := w.SSO.SSOSignIn(sys(), identity("sso-admin@example.com", true), "203.0.113.8"); err != nil {
		t.Fatalf("another address signs in: %v", err)
	}
}

func testSSOStateUsedOnce(t *testing.T, newServices NewServices) {
	s := newServices(t)
	if err := s.SSO.UseSSOState(sys(), "state-one"); err != nil {
		t.Fatal(err)
	}
	if err := s.SSO.UseSSOState(sys(), "state-one"); doorledger.ErrorCode(err) != doorledger.ECONFLICT {
		t.Fatalf("replayed state: %v, want ECONFLICT", err)
	}
	if err := s.SSO.UseSSOState(sys(), "state-two"); err != nil {
		t.Fatal(err)
	}
	// Used states are forgotten after their lifetime (a state that old is
	// refused by its age before it gets here).
	*s.Now = s.Now.Add(doorledger.SSOStateLifetime + 1e9)
	if err := s.SSO.UseSSOState(sys(), "state-three"); err != nil {
		t.Fatal(err)
	}
	if err := s.SSO.UseSSOState(sys(), "state-three"); doorledger.ErrorCode(err) != doorledger.ECONFLICT {
		t.Fatalf("replayed state after a purge: %v", err)
	}
}
