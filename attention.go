package doorledger

import (
	"cmp"
	"context"
	"slices"
	"strings"
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

// AttentionBound is the bound in time a kind is counted against at now:
// lapsing consents end within AttentionLapsingWithin, ended ones ended
// within AttentionEndedWithin; the other kinds are judged at now.
func AttentionBound(kind AttentionKind, now time.Time) time.Time {
	switch kind {
	case AttentionLapsing:
		return now.Add(AttentionLapsingWithin)
	case AttentionEnded:
		return now.Add(-AttentionEndedWithin)
	}
	return now
}

// WithDefaults fills in the options left 0.
func (o AttentionOptions) WithDefaults() AttentionOptions {
	if o.MaxBuildings <= 0 {
		o.MaxBuildings = 50
	}
	if o.ItemsPerKind <= 0 {
		o.ItemsPerKind = 5
	}
	return o
}

// Sum adds every building's counts to a.Totals (the oldest awaiting
// signature is the oldest of all) and returns the buildings' ids.
func (a *Attention) Sum(counts map[int64]*AttentionCounts) []int64 {
	ids := make([]int64, 0, len(counts))
	for id, bc := range counts {
		ids = append(ids, id)
		for kind, n := range bc.Counts {
			a.Totals.Add(kind, n)
		}
		if !bc.OldestAwaiting.IsZero() && (a.Totals.OldestAwaiting.IsZero() || bc.OldestAwaiting.Before(a.Totals.OldestAwaiting)) {
			a.Totals.OldestAwaiting = bc.OldestAwaiting
		}
	}
	return ids
}

// RankAttention lists the buildings of counts, named by names (id: name and
// time zone), those needing the most first, then by name and id, at most max.
func RankAttention(counts map[int64]*AttentionCounts, names map[int64][2]string, max int) []*BuildingAttention {
	list := make([]*BuildingAttention, 0, len(counts))
	for id, c := range counts {
		n := names[id]
		list = append(list, &BuildingAttention{BuildingID: id, Name: n[0], Timezone: n[1], Counts: *c})
	}
	slices.SortFunc(list, func(x, y *BuildingAttention) int {
		if c := cmp.Compare(y.Counts.Total(), x.Counts.Total()); c != 0 {
			return c
		}
		if c := strings.Compare(x.Name, y.Name); c != 0 {
			return c
		}
		return cmp.Compare(x.BuildingID, y.BuildingID)
	})
	if len(list) > max {
		list = list[:max]
	}
	return list
}

// NewAttentionItem is an item of kind about the row id (a device, a consent
// or a resident's report, by kind), labelled with the device's words
// ("Acme K2, serial SN-1, at lobby panel") or, for a resident's report, its
// location.
func NewAttentionItem(kind AttentionKind, id int64, vendor, model, serial, location, status string, at time.Time) AttentionItem {
	it := AttentionItem{Kind: kind, Status: status, At: at}
	switch kind {
	case AttentionUnconsented, AttentionCommand, AttentionOffline:
		it.DeviceID = id
	case AttentionResidentReport:
		it.ReportID = id
	default:
		it.ConsentID = id
	}
	if kind == AttentionResidentReport {
		it.Label = location
		return it
	}
	it.Label = strings.TrimSpace(vendor + " " + model)
	if serial != "" {
		it.Label += ", serial " + serial
	}
	if location != "" {
		it.Label += ", at " + location
	}
	return it
}
