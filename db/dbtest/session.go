package dbtest

import (
	"context"
	"testing"
	"time"

	"github.com/doorledger/doorledger"
)

// Sessions live in the database so that every instance of the portal sees
// the same ones: these are the rules each backend keeps.
var sessionTests = []test{
	{"SessionRenewedAtSignIn", testSessionRenewedAtSignIn},
	{"SessionEnded", testSessionEnded},
	{"SessionsEndedEverywhere", testSessionsEndedEverywhere},
	{"SessionsEndedByDisable", testSessionsEndedByDisable},
	{"SessionsEndedByPassword", testSessionsEndedByPassword},
	{"SessionCheckDoesNotTouch", testSessionCheckDoesNotTouch},
	{"SessionPurge", testSessionPurge},
}

// sessionWorld is an admin and two board members, a and b.
type sessionWorld struct {
	Services
	admin, a, b *doorledger.User
}

func newSessionWorld(t *testing.T, newServices NewServices) *sessionWorld {
	t.Helper()
	w := &sessionWorld{Services: newServices(t)}
	user := func(email string, role doorledger.Role) *doorledger.User {
		u, err := w.Users.CreateUser(sys(), doorledger.NewUser{Email: email, Name: email, Role: role, Password: "correct horse battery"})
		if err != nil {
			t.Fatal(err)
		}
		return u
	}
	w.admin, w.a, w.b = user("admin@example.com", doorledger.RoleAdmin), user("a@example.com", doorledger.RoleBoard), user("b@example.com", doorledger.RoleBoard)
	return w
}

// signIn starts a session for u, replacing the one named (if any).
func (w *sessionWorld) signIn(t *testing.T, u *doorledger.User, replaces string) *doorledger.Session {
	t.Helper()
	s, err := w.Users.CreateSession(context.Background(), u, replaces, "192.0.2.1", "test")
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// live fails t unless the session is live (want) or ended (!want), as both
// SessionUser and CheckSession see it.
func (w *sessionWorld) live(t *testing.T, what string, s *doorledger.Session, want bool) {
	t.Helper()
	ctx := context.Background()
	err := w.Users.CheckSession(ctx, s.ID)
	_, _, err2 := w.Users.SessionUser(ctx, s.ID)
	for _, err := range []error{err, err2} {
		switch {
		case want && err != nil:
			t.Fatalf("%s: %v, want a live session", what, err)
		case !want && doorledger.ErrorCode(err) != doorledger.EUNAUTHORIZED:
			t.Fatalf("%s: %v, want EUNAUTHORIZED", what, err)
		}
	}
}

// A sign-in gives a new id and ends the session it replaces.
func testSessionRenewedAtSignIn(t *testing.T, newServices NewServices) {
	w := newSessionWorld(t, newServices)
	first := w.signIn(t, w.a, "")
	second := w.signIn(t, w.a, first.ID)
	if second.ID == first.ID || len(second.ID) < 32 {
		t.Fatalf("session ids %q then %q: want a new random one", first.ID, second.ID)
	}
	w.live(t, "the replaced session", first, false)
	w.live(t, "the new session", second, true)
	if u, s, err := w.Users.SessionUser(context.Background(), second.ID); err != nil || u.ID != w.a.ID || s.UserID != w.a.ID {
		t.Fatalf("SessionUser: %v, %v, %v; want user %d", u, s, err, w.a.ID)
	}
}

// Signing out ends that session only.
func testSessionEnded(t *testing.T, newServices NewServices) {
	w := newSessionWorld(t, newServices)
	phone, laptop := w.signIn(t, w.a, ""), w.signIn(t, w.a, "")
	if err := w.Users.EndSession(as(w.a), phone.ID); err != nil {
		t.Fatal(err)
	}
	w.live(t, "the session signed out", phone, false)
	w.live(t, "the user's other session", laptop, true)
}

// Signing out everywhere ends every session of the user, no one else's;
// only the user or an admin may.
func testSessionsEndedEverywhere(t *testing.T, newServices NewServices) {
	w := newSessionWorld(t, newServices)
	a1, a2, b1 := w.signIn(t, w.a, ""), w.signIn(t, w.a, ""), w.signIn(t, w.b, "")
	if err := w.Users.EndAllSessions(as(w.b), w.a.ID); doorledger.ErrorCode(err) != doorledger.ENOTFOUND {
		t.Fatalf("b ending a's sessions: %v, want ENOTFOUND", err)
	}
	w.live(t, "a's session after b tried", a1, true)
	if err := w.Users.EndAllSessions(as(w.a), w.a.ID); err != nil {
		t.Fatal(err)
	}
	w.live(t, "a's first session", a1, false)
	w.live(t, "a's second session", a2, false)
	w.live(t, "b's session", b1, true)
	b2 := w.signIn(t, w.b, "")
	if err := w.Users.EndAllSessions(as(w.admin), w.b.ID); err != nil {
		t.Fatal(err)
	}
	w.live(t, "b's sessions ended by an admin", b2, false)
}

// Disabling a user ends their sessions for good: enabled again, they sign
// in anew.
func testSessionsEndedByDisable(t *testing.T, newServices NewServices) {
	w := newSessionWorld(t, newServices)
	a1, b1 := w.signIn(t, w.a, ""), w.signIn(t, w.b, "")
	yes, no := true, false
	if _, err := w.Users.UpdateUser(as(w.admin), w.a.ID, doorledger.UserUpdate{Disabled: &yes}); err != nil {
		t.Fatal(err)
	}
	w.live(t, "a disabled", a1, false)
	w.live(t, "b", b1, true)
	if _, err := w.Users.UpdateUser(as(w.admin), w.a.ID, doorledger.UserUpdate{Disabled: &no}); err != nil {
		t.Fatal(err)
	}
	w.live(t, "a enabled again", a1, false)
}

// A new password ends every session of the user, the one that set it too.
func testSessionsEndedByPassword(t *testing.T, newServices NewServices) {
	w := newSessionWorld(t, newServices)
	a1, a2, b1 := w.signIn(t, w.a, ""), w.signIn(t, w.a, ""), w.signIn(t, w.b, "")
	if err := w.Users.SetPassword(as(w.a), w.a.ID, "correct horse battery", "another long password"); err != nil {
		t.Fatal(err)
	}
	w.live(t, "the session that set the password", a1, false)
	w.live(t, "a's other session", a2, false)
	w.live(t, "b", b1, true)
	b2 := w.signIn(t, w.b, "")
	if err := w.Users.SetPassword(as(w.admin), w.b.ID, "", "a password set by the admin"); err != nil {
		t.Fatal(err)
	}
	w.live(t, "b after an admin set the password", b2, false)
}

// CheckSession (live pages) does not keep a session alive; SessionUser
// (a request) does.
func testSessionCheckDoesNotTouch(t *testing.T, newServices NewServices) {
	w := newSessionWorld(t, newServices)
	checked, used := w.signIn(t, w.a, ""), w.signIn(t, w.a, "")
	ctx := context.Background()
	step := doorledger.SessionIdleTimeout/2 + time.Second
	for i := 0; i < 3; i++ {
		*w.Now = w.Now.Add(step)
		err := w.Users.CheckSession(ctx, checked.ID)
		if i < 1 && err != nil || i >= 1 && doorledger.ErrorCode(err) != doorledger.EUNAUTHORIZED {
			t.Fatalf("CheckSession after %v: %v", time.Duration(i+1)*step, err)
		}
		if _, _, err := w.Users.SessionUser(ctx, used.ID); err != nil {
			t.Fatalf("SessionUser after %v: %v", time.Duration(i+1)*step, err)
		}
	}
}

// Sessions past their lifetime or idle timeout are deleted by the purge;
// live ones stay.
func testSessionPurge(t *testing.T, newServices NewServices) {
	w := newSessionWorld(t, newServices)
	ctx := context.Background()
	idle := w.signIn(t, w.a, "")
	old := w.signIn(t, w.b, "")
	for i := 0; i < 6; i++ { // old is used every 110 minutes until past its lifetime
		*w.Now = w.Now.Add(110 * time.Minute)
		if _, _, err := w.Users.SessionUser(ctx, old.ID); err != nil {
			t.Fatalf("old session after %d uses: %v", i, err)
		}
	}
	// A sign-in sweeps too (the idle one goes now): the purge finds only old,
	// once past its lifetime.
	fresh := w.signIn(t, w.a, "")
	*w.Now = w.Now.Add(doorledger.SessionMaxAge - 11*time.Hour + time.Second)
	n, err := w.Users.PurgeSessions(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if n != 1 {
		t.Errorf("purged %d sessions, want 1 (the one past its lifetime)", n)
	}
	w.live(t, "the idle session", idle, false)
	w.live(t, "the session past its lifetime", old, false)
	w.live(t, "the fresh session", fresh, true)
	if n, err := w.Users.PurgeSessions(ctx); err != nil || n != 0 {
		t.Errorf("second purge: %d, %v; want 0", n, err)
	}
}
