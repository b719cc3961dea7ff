package unlockburst

import (
	"testing"
	"time"
)

func TestCheckCountAdd(t *testing.T) {
	var c Check
	for _, at := range []int64{50, 10, 30, 30, 20} {
		c.Add(at)
	}
	if got := c.Times; len(got) != 5 || got[0] != 10 || got[4] != 50 {
		t.Fatalf("times %v, want sorted", got)
	}
	for _, tc := range []struct {
		t, window int64
		want      int
	}{
		{30, 10, 2},  // (20, 30]: 30, 30
		{30, 11, 3},  // (19, 30]: 20, 30, 30
		{9, 100, 0},  // before all
		{50, 100, 5}, // all
		{50, 1, 1},   // (49, 50]
	} {
		if got := c.Count(tc.t, tc.window); got != tc.want {
			t.Errorf("Count(%d, %d) = %d, want %d", tc.t, tc.window, got, tc.want)
		}
	}
}

// TestPlan: the bound of a group (recorded around it plus its own most in a
// window) chooses no check, counting in memory, or a count per event; a
// skewed event is counted but not checked.
func TestPlan(t *testing.T) {
	base := time.Date(2026, 12, 7, 9, 0, 0, 0, time.UTC)
	us := func(s int) int64 { return base.Add(time.Duration(s) * time.Second).UnixMicro() }
	at := func(s int) time.Time { return base.Add(time.Duration(s) * time.Second) }
	var p Plan
	// Building 1: three granted within 10 s, one skewed (received at 5 s,
	// its device clock a day off).
	p.Add(1, us(0), at(0), false)
	p.Add(1, us(9), at(9), false)
	p.Add(1, us(5), at(-86400), true)
	// Building 2: one a minute apart from the next.
	p.Add(2, us(0), at(0), false)
	p.Add(2, us(60), at(60), false)
	// Building 3: only a skewed one: nothing to check.
	p.Add(3, us(0), at(0), true)

	checks := p.Checks()
	if len(checks) != 2 || checks[3] != nil {
		t.Fatalf("checks %v, want buildings 1 and 2", checks)
	}
	if c := checks[1]; !c.MinT.Equal(at(0)) || !c.MaxT.Equal(at(9)) {
		t.Errorf("building 1: [%v, %v], want the checked events' device times", c.MinT, c.MaxT)
	}
	window := 10 * time.Second
	// Building 1's own: 3 in [t-10s, t] at t = 9 s. With 2 recorded: 5.
	for _, tc := range []struct {
		n, limit, memoryMax int
		want                Mode
	}{
		{2, 5, 1000, None},
		{2, 4, 1000, Memory},
		{2, 4, 1, Query},      // more recorded than memory may hold
		{200, 4, 1000, Query}, // more than 64 per event checked
		{128, 4, 1000, Memory},
	} {
		if got := p.Choose(1, tc.n, tc.limit, window, tc.memoryMax); got != (tc.want == Memory) || checks[1].Mode != tc.want {
			t.Errorf("Choose(n %d, limit %d, memory %d) = %v, mode %v; want %v", tc.n, tc.limit, tc.memoryMax, got, checks[1].Mode, tc.want)
		}
	}
	// Building 2: one of its own in any window.
	if p.Choose(2, 0, 1, window, 1000); checks[2].Mode != None {
		t.Errorf("building 2: mode %v, want None", checks[2].Mode)
	}
	if p.Choose(2, 1, 1, window, 1000); checks[2].Mode != Memory {
		t.Errorf("building 2 with one recorded: mode %v, want Memory", checks[2].Mode)
	}
}
