package doorledger

import (
	"strings"
	"testing"
	"time"
)

func TestUserUpdateApply(t *testing.T) {
	str := func(s string) *string { return &s }
	yes := true
	admin, bad := RoleAdmin, Role("owner")
	for _, tc := range []struct {
		name  string
		upd   UserUpdate
		self  bool
		field string // the field refused, "" for none
	}{
		{"name trimmed", UserUpdate{Name: str("  Ana  ")}, false, ""},
		{"empty name", UserUpdate{Name: str("  ")}, false, "name"},
		{"long name", UserUpdate{Name: str(strings.Repeat("a", 201))}, false, "name"},
		{"bad role", UserUpdate{Role: &bad}, false, "role"},
		{"role", UserUpdate{Role: &admin}, false, ""},
		{"long company", UserUpdate{Company: str(strings.Repeat("c", 201))}, false, "company"},
		{"disable other", UserUpdate{Disabled: &yes}, false, ""},
		{"disable self", UserUpdate{Disabled: &yes}, true, "disabled"},
	} {
		u := &User{Name: "Old", Role: RoleManager}
		err := tc.upd.Apply(u, tc.self)
		if got := ErrorFields(err)[tc.field]; (tc.field == "") != (err == nil) || (tc.field != "" && got == "") {
			t.Errorf("%s: Apply = %v, want a message for %q", tc.name, err, tc.field)
		}
		if tc.name == "name trimmed" && u.Name != "Ana" {
			t.Errorf("name trimmed: Name = %q, want Ana", u.Name)
		}
	}
}

func TestSessionEnded(t *testing.T) {
	now := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		created, seen time.Duration // before now
		ended         bool
	}{
		{time.Hour, time.Minute, false},
		{SessionMaxAge + time.Second, time.Minute, true},
		{time.Hour * 3, SessionIdleTimeout + time.Second, true},
		{SessionMaxAge, SessionIdleTimeout, false},
	} {
		s := &Session{CreatedAt: now.Add(-tc.created), LastSeenAt: now.Add(-tc.seen)}
		if got := s.Ended(now); got != tc.ended {
			t.Errorf("created %v ago, seen %v ago: Ended = %v, want %v", tc.created, tc.seen, got, tc.ended)
		}
	}
}

func TestLoginWait(t *testing.T) {
	now := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	if got, want := LoginWait(now.Add(-5*time.Minute-400*time.Millisecond), now), 10*time.Minute; got != want {
		t.Errorf("LoginWait = %v, want %v", got, want)
	}
	if got, want := LoginWait(now.Add(-LoginWindow), now), time.Second; got != want {
		t.Errorf("LoginWait at the window's end = %v, want %v", got, want)
	}
}
