package dbtest

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/doorledger/doorledger"
	"github.com/doorledger/doorledger/internal/twofactor"
)

// Second factors (issue 16): the rules each backend keeps.
var secondFactorTests = []test{
	{"SecondFactorEnrol", testSecondFactorEnrol},
	{"SecondFactorVerify", testSecondFactorVerify},
	{"RecoveryCodeSingleUse", testRecoveryCodeSingleUse},
	{"SecondFactorThrottle", testSecondFactorThrottle},
	{"SecondFactorReset", testSecondFactorReset},
	{"SecondFactorPolicy", testSecondFactorPolicy},
	{"Passkeys", testPasskeys},
	{"RemoveOwnFactors", testRemoveOwnFactors},
}

// factorWorld is an admin, a manager and a board member.
type factorWorld struct {
	Services
	admin, manager, board *doorledger.User
}

func newFactorWorld(t *testing.T, newServices NewServices) *factorWorld {
	t.Helper()
	w := &factorWorld{Services: newServices(t)}
	user := func(email string, role doorledger.Role) *doorledger.User {
		u, err := w.Users.CreateUser(sys(), doorledger.NewUser{Email: email, Name: email, Role: role, Password: "correct horse battery"})
		if err != nil {
			t.Fatal(err)
		}
		return u
	}
	w.admin, w.manager, w.board = user("admin@example.com", doorledger.RoleAdmin), user("m@example.com", doorledger.RoleManager), user("b@example.com", doorledger.RoleBoard)
	return w
}

// code is the authenticator app's code for secret at the services' time plus d.
func (w *factorWorld) code(t *testing.T, secret string, d time.Duration) string {
	t.Helper()
	c, err := twofactor.CodeAt(secret, w.Now.Add(d))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// enrol sets up an authenticator app for u and returns its secret and the
// recovery codes.
func (w *factorWorld) enrol(t *testing.T, u *doorledger.User) (string, []string) {
	t.Helper()
	setup, err := w.SecondFactors.StartTOTP(as(u))
	if err != nil {
		t.Fatal(err)
	}
	codes, err := w.SecondFactors.ConfirmTOTP(as(u), w.code(t, setup.Secret, 0), "192.0.2.1")
	if err != nil {
		t.Fatal(err)
	}
	// The code confirming it is used: the next try is a step later.
	*w.Now = w.Now.Add(30 * time.Second)
	return setup.Secret, codes
}

// journal returns the journal's actions about user u, oldest first, and fails
// t when any entry's detail holds one of secrets.
func (w *factorWorld) journal(t *testing.T, u *doorledger.User, secrets ...string) []string {
	t.Helper()
	entries, err := w.Audit.FindAuditEntries(sys(), doorledger.AuditFilter{Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	var actions []string
	for i := len(entries) - 1; i >= 0; i-- {
		e := entries[i]
		for _, s := range secrets {
			if s != "" && strings.Contains(strings.ToLower(e.Detail), strings.ToLower(doorledger.NormalizeCode(s))) {
				t.Errorf("journal entry %s holds a secret or code: %s", e.Action, e.Detail)
			}
		}
		if e.ObjectType == "user" && e.ObjectID == u.ID && strings.HasPrefix(e.Action, "user.2fa") {
			actions = append(actions, e.Action)
		}
	}
	return actions
}

// Enrolment: a secret is pending until a code of it is confirmed; then the
// user has an app and ten recovery codes, and the journal says so without
// the secret or a code. Boards may not enrol.
func testSecondFactorEnrol(t *testing.T, newServices NewServices) {
	w := newFactorWorld(t, newServices)
	sf := w.SecondFactors
	_, err := sf.StartTOTP(as(w.board))
	wantCode(t, "a board member starts", err, doorledger.EFORBIDDEN)
	_, err = sf.PendingTOTP(as(w.manager))
	wantCode(t, "pending before any start", err, doorledger.ENOTFOUND)

	first, err := sf.StartTOTP(as(w.manager))
	if err != nil {
		t.Fatal(err)
	}
	setup, err := sf.StartTOTP(as(w.manager)) // started again: a new secret replaces the pending one
	if err != nil {
		t.Fatal(err)
	}
	if setup.Secret == first.Secret || !strings.HasPrefix(setup.URL, "otpauth://totp/") || !strings.Contains(setup.URL, setup.Secret) {
		t.Fatalf("setup %+v after %+v: want a new secret in an otpauth URL", setup, first)
	}
	pending, err := sf.PendingTOTP(as(w.manager))
	if err != nil || pending.Secret != setup.Secret || pending.URL != setup.URL {
		t.Fatalf("pending = %+v, %v; want %+v", pending, err, setup)
	}
	if f, err := sf.SecondFactors(as(w.manager), w.manager.ID); err != nil || f.Any() {
		t.Fatalf("before confirming: %+v, %v; want none", f, err)
	}
	_, err = sf.ConfirmTOTP(as(w.manager), w.code(t, first.Secret, 0), "192.0.2.1")
	wantCode(t, "the replaced secret's code", err, doorledger.EINVALID)
	if doorledger.ErrorFields(err)["code"] == "" {
		t.Fatalf("a wrong code: %v, want a message beside the code field", err)
	}
	codes, err := sf.ConfirmTOTP(as(w.manager), w.code(t, setup.Secret, 0), "192.0.2.1")
	if err != nil {
		t.Fatal(err)
	}
	if len(codes) != doorledger.RecoveryCodeCount {
		t.Fatalf("%d recovery codes, want %d", len(codes), doorledger.RecoveryCodeCount)
	}
	f, err := sf.SecondFactors(as(w.manager), w.manager.ID)
	if err != nil || !f.TOTP || f.RecoveryLeft != doorledger.RecoveryCodeCount || !f.TOTPAt.Equal(*w.Now) {
		t.Fatalf("after confirming: %+v, %v", f, err)
	}
	_, err = sf.StartTOTP(as(w.manager))
	wantCode(t, "start with an app enrolled", err, doorledger.ECONFLICT)
	_, err = sf.SecondFactors(as(w.board), w.manager.ID)
	wantCode(t, "a board member reads another's", err, doorledger.ENOTFOUND)
	if f, err := sf.SecondFactors(as(w.admin), w.manager.ID); err != nil || !f.TOTP {
		t.Fatalf("the admin reads the manager's: %+v, %v", f, err)
	}
	// New recovery codes end the old ones.
	fresh, err := sf.NewRecoveryCodes(as(w.manager))
	if err != nil || len(fresh) != doorledger.RecoveryCodeCount {
		t.Fatalf("new recovery codes: %d, %v", len(fresh), err)
	}
	_, err = sf.VerifySecondFactor(sys(), w.manager.ID, codes[0], "192.0.2.1")
	wantCode(t, "an old recovery code", err, doorledger.EUNAUTHORIZED)
	_, err = sf.NewRecoveryCodes(as(w.admin))
	wantCode(t, "recovery codes without a second factor", err, doorledger.EINVALID)

	got := w.journal(t, w.manager, append(append([]string{setup.Secret, first.Secret}, codes...), fresh...)...)
	want := []string{"user.2fa_failed", "user.2fa_enrolled", "user.2fa_recovery_codes", "user.2fa_failed"}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("journal %v, want %v", got, want)
	}
}

// A code of the app is good within a step of now, and once.
func testSecondFactorVerify(t *testing.T, newServices NewServices) {
	w := newFactorWorld(t, newServices)
	sf := w.SecondFactors
	secret, _ := w.enrol(t, w.manager)
	code := w.code(t, secret, 0)
	kind, err := sf.VerifySecondFactor(sys(), w.manager.ID, code, "192.0.2.1")
	if err != nil || kind != doorledger.FactorTOTP {
		t.Fatalf("the app's code: %q, %v", kind, err)
	}
	_, err = sf.VerifySecondFactor(sys(), w.manager.ID, code, "192.0.2.1")
	wantCode(t, "the same code again", err, doorledger.EUNAUTHORIZED)
	// The phone's clock a step behind the portal's: its code is taken.
	*w.Now = w.Now.Add(time.Minute)
	if _, err := sf.VerifySecondFactor(sys(), w.manager.ID, w.code(t, secret, -30*time.Second), "192.0.2.1"); err != nil {
		t.Fatalf("a step behind: %v", err)
	}
	// Two steps off is refused.
	*w.Now = w.Now.Add(time.Minute)
	_, err = sf.VerifySecondFactor(sys(), w.manager.ID, w.code(t, secret, -time.Minute), "192.0.2.1")
	wantCode(t, "two steps behind", err, doorledger.EUNAUTHORIZED)
	_, err = sf.VerifySecondFactor(sys(), w.board.ID, w.code(t, secret, 0), "192.0.2.1")
	wantCode(t, "another user's code", err, doorledger.EUNAUTHORIZED)
	got := w.journal(t, w.manager, secret, code)
	want := []string{"user.2fa_enrolled", "user.2fa_used", "user.2fa_failed", "user.2fa_used", "user.2fa_failed"}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("journal %v, want %v", got, want)
	}
}

// A recovery code stands in for the app once, typed any way.
func testRecoveryCodeSingleUse(t *testing.T, newServices NewServices) {
	w := newFactorWorld(t, newServices)
	sf := w.SecondFactors
	_, codes := w.enrol(t, w.manager)
	typed := strings.ToUpper(strings.ReplaceAll(codes[3], "-", " "))
	kind, err := sf.VerifySecondFactor(sys(), w.manager.ID, typed, "192.0.2.1")
	if err != nil || kind != doorledger.FactorRecovery {
		t.Fatalf("a recovery code: %q, %v", kind, err)
	}
	_, err = sf.VerifySecondFactor(sys(), w.manager.ID, codes[3], "192.0.2.1")
	wantCode(t, "the same recovery code again", err, doorledger.EUNAUTHORIZED)
	f, err := sf.SecondFactors(as(w.manager), w.manager.ID)
	if err != nil || f.RecoveryLeft != doorledger.RecoveryCodeCount-1 {
		t.Fatalf("after one used: %+v, %v", f, err)
	}
	// Another user's code is not this one's.
	_, other := w.enrol(t, w.admin)
	_, err = sf.VerifySecondFactor(sys(), w.manager.ID, other[0], "192.0.2.1")
	wantCode(t, "another user's recovery code", err, doorledger.EUNAUTHORIZED)
	got := w.journal(t, w.manager, codes...)
	want := []string{"user.2fa_enrolled", "user.2fa_recovery", "user.2fa_failed", "user.2fa_failed"}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("journal %v, want %v", got, want)
	}
}

// Wrong codes are throttled as passwords are: past the limit even the right
// code is refused, until the window has passed.
func testSecondFactorThrottle(t *testing.T, newServices NewServices) {
	w := newFactorWorld(t, newServices)
	sf := w.SecondFactors
	secret, codes := w.enrol(t, w.manager)
	for i := range doorledger.LoginFailureLimit {
		_, err := sf.VerifySecondFactor(sys(), w.manager.ID, "000000", "192.0.2.7")
		wantCode(t, "wrong code "+itoa(int64(i+1)), err, doorledger.EUNAUTHORIZED)
	}
	_, err := sf.VerifySecondFactor(sys(), w.manager.ID, w.code(t, secret, 0), "192.0.2.8")
	wantCode(t, "the right code past the limit", err, doorledger.ETOOMANY)
	if !strings.Contains(doorledger.ErrorMessage(err), "Try again in") {
		t.Fatalf("throttled: %q, want the retry time", doorledger.ErrorMessage(err))
	}
	_, err = sf.VerifySecondFactor(sys(), w.manager.ID, codes[0], "192.0.2.8")
	wantCode(t, "a recovery code past the limit", err, doorledger.ETOOMANY)
	*w.Now = w.Now.Add(doorledger.LoginWindow + time.Minute)
	if _, err := sf.VerifySecondFactor(sys(), w.manager.ID, w.code(t, secret, 0), "192.0.2.8"); err != nil {
		t.Fatalf("after the window: %v", err)
	}
	got := w.journal(t, w.manager, secret)
	if n := strings.Count(strings.Join(got, " "), "user.2fa_throttled"); n != 2 {
		t.Fatalf("journal %v: want two throttled tries", got)
	}
}

// An admin (or an operator) resets a user's second factor: app and
// recovery codes gone, journaled; no one else may.
func testSecondFactorReset(t *testing.T, newServices NewServices) {
	w := newFactorWorld(t, newServices)
	sf := w.SecondFactors
	secret, codes := w.enrol(t, w.manager)
	wantCode(t, "a manager resets their own", sf.ResetSecondFactor(as(w.manager), w.manager.ID), doorledger.ENOTFOUND)
	wantCode(t, "an unknown user", sf.ResetSecondFactor(as(w.admin), 99999), doorledger.ENOTFOUND)
	if err := sf.ResetSecondFactor(as(w.admin), w.manager.ID); err != nil {
		t.Fatal(err)
	}
	if f, err := sf.SecondFactors(as(w.manager), w.manager.ID); err != nil || f.Any() || f.RecoveryLeft != 0 {
		t.Fatalf("after the reset: %+v, %v", f, err)
	}
	_, err := sf.VerifySecondFactor(sys(), w.manager.ID, w.code(t, secret, 0), "192.0.2.1")
	wantCode(t, "the app's code after the reset", err, doorledger.EUNAUTHORIZED)
	_, err = sf.VerifySecondFactor(sys(), w.manager.ID, codes[1], "192.0.2.1")
	wantCode(t, "a recovery code after the reset", err, doorledger.EUNAUTHORIZED)
	// They enrol again.
	w.enrol(t, w.manager)
	if err := sf.ResetSecondFactor(sys(), w.manager.ID); err != nil {
		t.Fatalf("the operator's reset: %v", err)
	}
	got := w.journal(t, w.manager, secret)
	want := []string{"user.2fa_enrolled", "user.2fa_reset", "user.2fa_failed", "user.2fa_failed", "user.2fa_enrolled", "user.2fa_reset"}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("journal %v, want %v", got, want)
	}
}

// Admins require a second factor of managers and admins, no other role.
func testSecondFactorPolicy(t *testing.T, newServices NewServices) {
	w := newFactorWorld(t, newServices)
	sf := w.SecondFactors
	if roles, err := sf.SecondFactorPolicy(sys()); err != nil || len(roles) != 0 {
		t.Fatalf("at first: %v, %v; want none", roles, err)
	}
	wantCode(t, "a manager sets it", sf.SetSecondFactorPolicy(as(w.manager), []doorledger.Role{doorledger.RoleManager}), doorledger.EFORBIDDEN)
	wantCode(t, "boards", sf.SetSecondFactorPolicy(as(w.admin), []doorledger.Role{doorledger.RoleBoard}), doorledger.EINVALID)
	if err := sf.SetSecondFactorPolicy(as(w.admin), []doorledger.Role{doorledger.RoleManager, doorledger.RoleAdmin}); err != nil {
		t.Fatal(err)
	}
	roles, err := sf.SecondFactorPolicy(sys())
	if err != nil || len(roles) != 2 || roles[0] != doorledger.RoleAdmin || roles[1] != doorledger.RoleManager {
		t.Fatalf("policy %v, %v; want admin and manager", roles, err)
	}
	if err := sf.SetSecondFactorPolicy(as(w.admin), nil); err != nil {
		t.Fatal(err)
	}
	if roles, err := sf.SecondFactorPolicy(sys()); err != nil || len(roles) != 0 {
		t.Fatalf("cleared: %v, %v", roles, err)
	}
}

// Passkeys: registered by managers and admins, found by credential id at
// sign-in, each use and failure recorded and journaled, removed by their
// owner or with a reset.
func testPasskeys(t *testing.T, newServices NewServices) {
	w := newFactorWorld(t, newServices)
	sf := w.SecondFactors
	_, err := sf.AddPasskey(as(w.board), "phone", []byte("cred-b"), []byte("{}"))
	wantCode(t, "a board member adds one", err, doorledger.EFORBIDDEN)
	_, err = sf.AddPasskey(as(w.manager), " ", []byte("cred-m"), []byte("{}"))
	wantCode(t, "no name", err, doorledger.EINVALID)
	p, err := sf.AddPasskey(as(w.manager), "work laptop", []byte("cred-m"), []byte(`{"n":0}`))
	if err != nil {
		t.Fatal(err)
	}
	_, err = sf.AddPasskey(as(w.admin), "same", []byte("cred-m"), []byte("{}"))
	wantCode(t, "a credential registered already", err, doorledger.ECONFLICT)
	if f, err := sf.SecondFactors(as(w.manager), w.manager.ID); err != nil || f.Passkeys != 1 || !f.Any() {
		t.Fatalf("factors with a passkey: %+v, %v", f, err)
	}
	found, u, err := sf.FindPasskey(context.Background(), []byte("cred-m"))
	if err != nil || found.ID != p.ID || u.ID != w.manager.ID || string(found.Data) != `{"n":0}` {
		t.Fatalf("find: %+v %+v %v", found, u, err)
	}
	_, _, err = sf.FindPasskey(context.Background(), []byte("nope"))
	wantCode(t, "an unknown credential", err, doorledger.ENOTFOUND)
	*w.Now = w.Now.Add(time.Minute)
	if err := sf.PasskeyUsed(context.Background(), p.ID, []byte(`{"n":1}`), "192.0.2.1"); err != nil {
		t.Fatal(err)
	}
	list, err := sf.Passkeys(as(w.manager), w.manager.ID)
	if err != nil || len(list) != 1 || string(list[0].Data) != `{"n":1}` || !list[0].LastUsedAt.Equal(*w.Now) || list[0].Name != "work laptop" {
		t.Fatalf("after a use: %+v, %v", list, err)
	}
	_, err = sf.Passkeys(as(w.board), w.manager.ID)
	wantCode(t, "a board member lists another's", err, doorledger.ENOTFOUND)
	wantCode(t, "a failed passkey", sf.PasskeyFailed(context.Background(), w.manager.ID, "192.0.2.1"), doorledger.EUNAUTHORIZED)
	wantCode(t, "another's passkey removed", sf.RemovePasskey(as(w.admin), p.ID), doorledger.ENOTFOUND)
	if err := sf.RemovePasskey(as(w.manager), p.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := sf.AddPasskey(as(w.manager), "phone", []byte("cred-m2"), []byte("{}")); err != nil {
		t.Fatal(err)
	}
	if err := sf.ResetSecondFactor(as(w.admin), w.manager.ID); err != nil {
		t.Fatal(err)
	}
	if f, err := sf.SecondFactors(as(w.manager), w.manager.ID); err != nil || f.Any() {
		t.Fatalf("after the reset: %+v, %v", f, err)
	}
	got := w.journal(t, w.manager)
	want := []string{"user.2fa_enrolled", "user.2fa_used", "user.2fa_failed", "user.2fa_removed", "user.2fa_enrolled", "user.2fa_reset"}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("journal %v, want %v", got, want)
	}
}

// A user removes their own authenticator app and passkeys, journaled, and
// the recovery codes go with the last; while their role requires a second
// factor, the last one stays (ECONFLICT) until they add another.
func testRemoveOwnFactors(t *testing.T, newServices NewServices) {
	w := newFactorWorld(t, newServices)
	sf := w.SecondFactors
	factors := func() *doorledger.SecondFactors { return must(sf.SecondFactors(sys(), w.manager.ID))(t) }
	wantCode(t, "an app removed before any", sf.RemoveTOTP(as(w.manager)), doorledger.ENOTFOUND)
	if _, err := sf.StartTOTP(as(w.manager)); err != nil {
		t.Fatal(err)
	}
	wantCode(t, "a pending app removed", sf.RemoveTOTP(as(w.manager)), doorledger.ENOTFOUND)
	w.enrol(t, w.manager)
	key := must(sf.AddPasskey(as(w.manager), "laptop", []byte("cred-rm"), []byte("{}")))(t)
	wantCode(t, "the signed-out remove an app", sf.RemoveTOTP(context.Background()), doorledger.EUNAUTHORIZED)

	// Managers must have one: the app goes (the passkey is left), the
	// passkey then stays.
	if err := sf.SetSecondFactorPolicy(as(w.admin), []doorledger.Role{doorledger.RoleManager}); err != nil {
		t.Fatal(err)
	}
	if err := sf.RemoveTOTP(as(w.manager)); err != nil {
		t.Fatal(err)
	}
	if f := factors(); f.TOTP || f.Passkeys != 1 || f.RecoveryLeft != doorledger.RecoveryCodeCount {
		t.Fatalf("after removing the app: %+v, want the passkey and the recovery codes left", f)
	}
	err := sf.RemovePasskey(as(w.manager), key.ID)
	wantCode(t, "the last factor of a required role removed", err, doorledger.ECONFLICT)
	if msg := doorledger.ErrorMessage(err); !strings.Contains(msg, "requires a second factor") {
		t.Errorf("refused with %q", msg)
	}
	if f := factors(); f.Passkeys != 1 || f.RecoveryLeft != doorledger.RecoveryCodeCount {
		t.Fatalf("after a refused removal: %+v", f)
	}
	// No longer required: the last goes, with the recovery codes.
	if err := sf.SetSecondFactorPolicy(as(w.admin), nil); err != nil {
		t.Fatal(err)
	}
	if err := sf.RemovePasskey(as(w.manager), key.ID); err != nil {
		t.Fatal(err)
	}
	if f := factors(); f.Any() || f.RecoveryLeft != 0 {
		t.Fatalf("after removing the last: %+v, want nothing left", f)
	}
	got := w.journal(t, w.manager)
	want := []string{"user.2fa_enrolled", "user.2fa_enrolled", "user.2fa_removed", "user.2fa_removed"}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("journal %v, want %v", got, want)
	}
}
