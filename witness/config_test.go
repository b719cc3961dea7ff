package witness

import (
	"testing"
	"time"

	"github.com/doorledger/doorledger"
)

func TestBackoff(t *testing.T) {
	for failures, want := range map[int]time.Duration{0: 2 * time.Second, 1: 2 * time.Second, 2: 4 * time.Second, 5: 32 * time.Second,
		9: 512 * time.Second, 10: RetryMax, 1000: RetryMax} {
		if got := Backoff(failures); got != want {
			t.Errorf("Backoff(%d) = %v, want %v", failures, got, want)
		}
	}
}

func TestCheckInput(t *testing.T) {
	in := doorledger.WitnessInput{Name: "  Board's lawyer ", URL: "ftp://x", VerifierKey: "nonsense"}
	v := CheckInput(&in)
	if in.Name != "Board's lawyer" || v["url"] == "" || v["vkey"] == "" || v["name"] != "" {
		t.Errorf("CheckInput = %v, name %q", v, in.Name)
	}
	if v := CheckInput(&doorledger.WitnessInput{URL: "https://user:pw@w.example.org"}); v["name"] == "" || v["url"] == "" {
		t.Errorf("no name and a URL with credentials: %v", v)
	}
}
