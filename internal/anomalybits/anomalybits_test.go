package anomalybits

import (
	"slices"
	"testing"

	"github.com/doorledger/doorledger"
)

// TestBits: the stored bits never change, and every kind has one.
func TestBits(t *testing.T) {
	want := map[string]int64{doorledger.AnomalyAfterRevocation: 1, doorledger.AnomalyWithoutConsent: 2, doorledger.AnomalyUnknownDevice: 4,
		doorledger.AnomalyOutsideHours: 8, doorledger.AnomalyBurst: 16, doorledger.AnomalyClockSkew: 32}
	for _, kind := range doorledger.AnomalyKinds {
		if got := Bit(kind); got != want[kind] {
			t.Errorf("Bit(%s) = %d, want %d", kind, got, want[kind])
		}
	}
	if Bit("ghost") != 0 || Kinds(0) != nil {
		t.Error("an unknown kind has a bit, or no bits name kinds")
	}
	if got := Kinds(Burst | AfterRevocation | 64); !slices.Equal(got, []string{doorledger.AnomalyAfterRevocation, doorledger.AnomalyBurst}) {
		t.Errorf("Kinds = %v", got)
	}
}
