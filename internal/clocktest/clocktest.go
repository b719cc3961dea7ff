// Package clocktest holds a wall clock that tests can set forward or back
// while the portal runs, as an operator or NTP sets the machine's clock. The
// machine's own clock is shared and never moved.
package clocktest

import (
	"sync"
	"time"
)

// Jumpable is the machine's clock plus an offset that Jump moves. Give its
// Now to what reads the portal's wall clock (sqlite.DB.Now, which web and
// mail read through the portal's wiring); the monotonic clock
// (sqlite.DB.Mono, time.Since) keeps running as if nothing happened, as it
// does on a machine whose clock is set.
type Jumpable struct {
	mu     sync.Mutex
	offset time.Duration
}

// Now is the machine's time plus the offset, without a monotonic reading:
// a difference of two readings goes by the wall, jumps included, as a
// difference of two times read back from the database does.
func (c *Jumpable) Now() time.Time {
	c.mu.Lock()
	off := c.offset
	c.mu.Unlock()
	return time.Now().Add(off).Round(0)
}

// Jump sets the clock d forward (or back, for a negative d).
func (c *Jumpable) Jump(d time.Duration) {
	c.mu.Lock()
	c.offset += d
	c.mu.Unlock()
}

// Offset is the sum of the jumps so far.
func (c *Jumpable) Offset() time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.offset
}
