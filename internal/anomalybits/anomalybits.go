// Package anomalybits is how both databases (package sqlite and package
// postgres) keep an unlock event's anomalies: one bit a kind in
// unlock_events.anomalies, fixed forever. The report's copy of events
// (internal/eventcodec) keeps them the same way.
package anomalybits

import "github.com/doorledger/doorledger"

// The bits of each kind.
const (
	AfterRevocation int64 = 1 << iota
	WithoutConsent
	UnknownDevice
	OutsideHours
	Burst
	ClockSkew
)

var bits = []struct {
	kind string
	bit  int64
}{
	{doorledger.AnomalyAfterRevocation, AfterRevocation},
	{doorledger.AnomalyWithoutConsent, WithoutConsent},
	{doorledger.AnomalyUnknownDevice, UnknownDevice},
	{doorledger.AnomalyOutsideHours, OutsideHours},
	{doorledger.AnomalyBurst, Burst},
	{doorledger.AnomalyClockSkew, ClockSkew},
}

// Bit returns the bit of an anomaly kind (0: not a kind).
func Bit(kind string) int64 {
	for _, a := range bits {
		if a.kind == kind {
			return a.bit
		}
	}
	return 0
}

// Kinds names the anomalies of bits, in the kinds' fixed order; nil when
// none.
func Kinds(set int64) []string {
	var kinds []string
	for _, a := range bits {
		if set&a.bit != 0 {
			kinds = append(kinds, a.kind)
		}
	}
	return kinds
}
