package twofactor

import (
	"strings"
	"testing"
	"time"

	"github.com/pquerna/otp"
)

func TestCheckTOTP(t *testing.T) {
	s := NewTOTP("a@example.com")
	k, err := otp.NewKeyFromURL(s.URL)
	if err != nil || k.Secret() != s.Secret || k.AccountName() != "a@example.com" || k.Issuer() != "Doorledger" {
		t.Fatalf("the URL %q does not carry the secret, account and issuer: %v", s.URL, err)
	}
	now := time.Date(2026, 12, 7, 20, 0, 10, 0, time.UTC)
	code := func(at time.Time) string {
		c, err := CodeAt(s.Secret, at)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	step := now.Unix() / 30
	for _, tc := range []struct {
		name     string
		code     string
		last     int64
		want     bool
		wantStep int64
	}{
		{"now", code(now), 0, true, step},
		{"a step early (the phone's clock behind)", code(now.Add(-30 * time.Second)), 0, true, step - 1},
		{"a step late", code(now.Add(30 * time.Second)), 0, true, step + 1},
		{"two steps off", code(now.Add(-60 * time.Second)), 0, false, 0},
		{"used already", code(now), step, false, 0},
		{"older than the last used", code(now.Add(-30 * time.Second)), step, false, 0},
		{"not six digits", "12345", 0, false, 0},
	} {
		got, ok := CheckTOTP(s.Secret, tc.code, now, tc.last)
		if ok != tc.want || got != tc.wantStep {
			t.Errorf("%s: CheckTOTP = %d, %v; want %d, %v", tc.name, got, ok, tc.wantStep, tc.want)
		}
	}
}

func TestRecoveryCodes(t *testing.T) {
	codes, hashes := NewRecoveryCodes(10)
	seen := map[string]bool{}
	for i, c := range codes {
		if len(c) != 19 || strings.Count(c, "-") != 3 {
			t.Errorf("code %q: want four groups of four", c)
		}
		if HashRecoveryCode(c) != hashes[i] || HashRecoveryCode(strings.ToUpper(strings.ReplaceAll(c, "-", " "))) != hashes[i] {
			t.Errorf("code %q does not hash to its stored hash as typed another way", c)
		}
		if seen[c] {
			t.Errorf("code %q twice", c)
		}
		seen[c] = true
	}
}
