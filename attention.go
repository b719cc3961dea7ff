package doorledger

import (
	"context"
	"time"
)

// The attention list: what needs a manager, across every building
// they can see, is the first screen after sign-in. Each kind below is counted
// per building; the buildings with something are listed with their items,
// each linking to where it is resolved.

// AttentionKind is one kind of thing that needs a manager.
type AttentionKind string

const (
	// AttentionUnconsented: a device found (or reporting) without consent,
	// in service. Resolved by a signed consent or by retiring the device.
	AttentionUnconsented AttentionKind = "unconsented"
	// AttentionCommand: a device's current command that the device did not
	// confirm within the time-out, or refused. Resolved when it confirms, or
	// by a new command.
	AttentionCommand AttentionKind = "command"
	// AttentionOffline: a device in service silent for longer than its
	// heartbeat (its own, else its building's). Resolved when it is heard
	// from, or retired.
	AttentionOffline AttentionKind = "offline"
	// AttentionAnomalies: anomalous unlock events not acknowledged.
	AttentionAnomalies AttentionKind = "anomalies"
	// AttentionAwaiting: a consent request waiting for signatures (not
	// expired). Resolved when signed, declined or expired.
	AttentionAwaiting AttentionKind = "awaiting"
	// AttentionLapsing: a signed consent a device in service rests on that
	// lapses within AttentionLapsingWithin. Resolved by a signed renewal.
	AttentionLapsing AttentionKind = "lapsing"
	// AttentionEnded: a consent or request withdrawn or disputed by a signer
	// within AttentionEndedWithin.
	AttentionEnded AttentionKind = "ended"
	// AttentionResidentReport: a resident's report of an unlisted device,
	// not yet resolved.
	AttentionResidentReport AttentionKind = "resident_report"
)

// AttentionKinds lists the kinds in the order pages show them: what may be
// opening a door without consent first.
var AttentionKinds = []AttentionKind{AttentionUnconsented, AttentionCommand, AttentionEnded, AttentionResidentReport,
	AttentionAnomalies, AttentionOffline, AttentionAwaiting, AttentionLapsing}

// The windows of the dated kinds.
const (
	AttentionLapsingWithin = 30 * 24 * time.Hour
	AttentionEndedWithin   = 7 * 24 * time.Hour
)

// AttentionCounts counts what needs attention in one building (or in all).
type AttentionCounts struct {
	Counts map[AttentionKind]int
	// OldestAwaiting is when the longest-waiting request was made (zero when
	// none waits).
	OldestAwaiting time.Time
}

// Of returns the count of kind.
func (c AttentionCounts) Of(kind AttentionKind) int { return c.Counts[kind] }

// Total is the sum of every kind.
func (c AttentionCounts) Total() int {
	n := 0
	for _, v := range c.Counts {
		n += v
	}
	return n
}

// Add adds n of kind.
func (c *AttentionCounts) Add(kind AttentionKind, n int) {
	if n == 0 {
		return
	}
	if c.Counts == nil {
		c.Counts = map[AttentionKind]int{}
	}
	c.Counts[kind] += n
}

// AttentionItem is one thing that needs attention. Exactly one of DeviceID,
// ConsentID and ReportID is set, except for AttentionAnomalies, which is one
// item per building (its count) with none set.
type AttentionItem struct {
	Kind      AttentionKind
	DeviceID  int64
	ConsentID int64
	ReportID  int64
	// What it is about, in words: "Acme K2, serial SN-1, at lobby panel".
	Label string
	// When it began: found, command requested, last heard from, request
	// made, consent lapses, withdrawn or disputed, reported.
	At time.Time
	// Status: the command's status (not_confirmed, refused), or the consent's
	// end (withdrawn, disputed).
	Status string
}

// BuildingAttention is what needs attention in one building.
type BuildingAttention struct {
	BuildingID int64
	Name       string
	Timezone   string
	Counts     AttentionCounts
	// Items: at most AttentionOptions.ItemsPerKind of each kind, oldest
	// first; the counts say how many there are.
	Items []AttentionItem
}

// Location returns the building's time zone (UTC if the name does not load).
func (b *BuildingAttention) Location() *time.Location {
	return (&Building{Timezone: b.Timezone}).Location()
}

// ItemsOf returns the building's items of kind.
func (b *BuildingAttention) ItemsOf(kind AttentionKind) []AttentionItem {
	var out []AttentionItem
	for _, it := range b.Items {
		if it.Kind == kind {
			out = append(out, it)
		}
	}
	return out
}

// Attention is what needs the caller, across the buildings they see.
type Attention struct {
	CheckedAt time.Time // the database's clock when it was read
	Buildings int       // how many buildings the caller sees
	// Listed: the buildings with something to attend to, those with the
	// most first (then by name), at most AttentionOptions.MaxBuildings.
	Listed []*BuildingAttention
	// Needing is how many buildings have something (Listed may be cut).
	Needing int
	Totals  AttentionCounts
}

// AttentionOptions bounds what Attention lists (the counts are always whole).
type AttentionOptions struct {
	MaxBuildings int // 0: 50
	ItemsPerKind int // per building; 0: 5
}

// AttentionService reads what needs attention.
type AttentionService interface {
	// Attention returns what needs attention in the buildings the caller
	// sees: every building for admins, their granted ones for managers and
	// board members. EFORBIDDEN for installers, EUNAUTHORIZED signed out.
	Attention(ctx context.Context, opts AttentionOptions) (*Attention, error)
	// AttentionCounts returns the counts of every building the caller sees
	// that has something (absent: nothing), for the buildings list. Same
	// errors as Attention.
	AttentionCounts(ctx context.Context) (map[int64]AttentionCounts, error)
}
