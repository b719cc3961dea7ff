// Package unlockburst is the burst check of unlock ingest that both storage
// backends (package sqlite and package postgres) share: which of a group's
// events may be a burst, and counting an event's window in memory. An event
// is a burst when its building's granted unlocks recorded before it in its
// window, plus itself, exceed the building's limit. Each backend counts in
// its own database.
//
// Burst detection without a query per event: an event of the group is a
// burst at most when the count recorded around the whole group (one query)
// plus the most of the group's own granted unlocks in any one window ending
// at an event checked exceeds the limit. When that bound is within the
// limit, no event of the group is a burst (the usual case: live traffic
// arrives in the order it happens, a group spans seconds). Otherwise the
// times recorded around the group are read once, and each event's window is
// counted in memory as the group records its own; only when they are too
// many is each counted in the database. A vendor's batch or a device's
// backlog holds more than the limit, spread over hours: it costs one or two
// queries a building, not one an event.
package unlockburst

import (
	"slices"
	"time"
)

// Mode is how a building's events of a group are checked.
type Mode int

const (
	None   Mode = iota // no event of the group can be a burst
	Memory             // count each event's window in Check.Times
	Query              // count each event's window in the database (the backend says what Times then holds)
)

// Check is a building's burst check within one group.
type Check struct {
	Mode       Mode
	MinT, MaxT time.Time // of the group's events checked (their device times)
	// Memory: the occurrence times (Unix µs, sorted) of the building's
	// granted unlocks recorded in (MinT - window, MaxT], the group's own
	// added as they are recorded (Add).
	Times []int64
}

// Count returns how many of the times fall in (t - window, t].
func (c *Check) Count(t, window int64) int {
	lo, _ := slices.BinarySearch(c.Times, t-window+1)
	hi, _ := slices.BinarySearch(c.Times, t+1)
	return hi - lo
}

// Add records a granted unlock's time.
func (c *Check) Add(t int64) {
	i, _ := slices.BinarySearch(c.Times, t)
	c.Times = slices.Insert(c.Times, i, t)
}

// Plan gathers a group's granted unlocks by building to choose each
// building's Mode. The zero value is empty and ready.
type Plan struct {
	checks map[int64]*Check
	times  map[int64]*groupTimes
}

// groupTimes are the effective times (Unix µs) of a group's granted unlocks
// in one building: all of them, and those checked for a burst.
type groupTimes struct{ all, checked []int64 }

// Add adds a granted unlock of building to the plan, of effective time at
// (Unix µs, as stored) and device time occurred; a skewed one (its device
// clock is not to be trusted) is not checked, but counted at the time it was
// received (at).
func (p *Plan) Add(building int64, at int64, occurred time.Time, skewed bool) {
	if p.times == nil {
		p.times, p.checks = map[int64]*groupTimes{}, map[int64]*Check{}
	}
	gt := p.times[building]
	if gt == nil {
		gt = &groupTimes{}
		p.times[building] = gt
	}
	gt.all = append(gt.all, at)
	if skewed {
		return
	}
	gt.checked = append(gt.checked, at)
	c := p.checks[building]
	if c == nil {
		c = &Check{MinT: occurred, MaxT: occurred}
		p.checks[building] = c
	}
	if occurred.Before(c.MinT) {
		c.MinT = occurred
	}
	if occurred.After(c.MaxT) {
		c.MaxT = occurred
	}
}

// Checks returns the checks by building: those with an event checked. The
// backend counts each building's granted unlocks recorded in
// (MinT - window, MaxT] and calls Choose.
func (p *Plan) Checks() map[int64]*Check {
	if p.checks == nil {
		return map[int64]*Check{}
	}
	return p.checks
}

// Choose sets the Mode of building's check, given the n granted unlocks
// recorded around the group, the building's limit and window, and how many
// times a check may keep in memory (past it, or past 64 times the events
// checked, each event is counted in the database). It reports whether the
// backend is to read those times into Times (Memory).
func (p *Plan) Choose(building int64, n, limit int, window time.Duration, memoryMax int) bool {
	c, gt := p.checks[building], p.times[building]
	switch {
	case n+gt.mostInWindow(window.Microseconds()) <= limit:
		c.Mode = None
	case n > memoryMax || n > 64*len(gt.checked):
		c.Mode = Query // reading them all would cost more than a count each
	default:
		c.Mode = Memory
	}
	return c.Mode == Memory
}

// mostInWindow returns the most of all's times within [t-window, t] for a
// checked time t (one µs wider than a burst's window (t-window, t]: a bound).
func (gt *groupTimes) mostInWindow(window int64) int {
	slices.Sort(gt.all)
	slices.Sort(gt.checked)
	most, lo, hi := 0, 0, 0
	for _, t := range gt.checked {
		for hi < len(gt.all) && gt.all[hi] <= t {
			hi++
		}
		for lo < hi && gt.all[lo] < t-window {
			lo++
		}
		most = max(most, hi-lo)
	}
	return most
}
