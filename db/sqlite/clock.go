package sqlite

import (
	"sync"
	"time"

	"github.com/doorledger/doorledger"
)

// The clock. Two clocks meet in this package, and the rule between them is:
//
//   - Go code takes the time from the DB's clock, DB.Now, read once per
//     transaction (Tx.now) or through db.now(); never from time.Now. A time a
//     service method takes from its caller (Purge's, OfflineDevices', a
//     device's sign of life) is the caller's reading of that same clock, and
//     a zero one means the DB's clock. Tests set DB.Now, so they need not run
//     at the real time.
//   - The triggers that enforce the core rules compare against SQLite's own
//     clock (strftime('now'): the machine's real time, which nothing in Go can
//     set): no device is enabled under a consent expired by it, no unlock
//     event is deleted before its retention by it. The checks Go makes by
//     Tx.now come in addition to the triggers, never instead of them: a time
//     passed in can only make the database stricter (refuse what SQLite's
//     clock would allow), never looser, or the database would stop enforcing
//     consent expiry on its own. TestClockInThePastCannotEnable holds that.
//
// Where Go code must bound itself by what the triggers will accept (a purge
// asked for at a time ahead of the real one), it reads the database's clock
// with sqliteNow.

// now reads the DB's clock as stored: UTC, microseconds.
func (db *DB) now() time.Time { return db.Now().UTC().Truncate(time.Microsecond) }

// sqliteNow is SQLite's own clock, strftime('now') in SQL: the machine's real
// time. Only bounds on what the triggers accept read it.
func sqliteNow() time.Time { return time.Now() }

// The monotonic clock. DB.Now is a wall clock: it is what the portal records
// and what dates are judged by, and it jumps when the machine's clock is set
// (by an operator, by NTP stepping it). How long something has taken within
// one run of the portal must not jump with it: DB.Mono is read for that,
// once per transaction (Tx.mono) beside Tx.now. So far the durations are a
// command's: how long it has waited for its device (the time-out that calls
// it "not confirmed" and alerts) and how long its confirmation took. A
// duration across a restart has no monotonic reading to go by and falls back
// to the difference of the two recorded wall times, never below zero.
//
// NewDB sets Mono to the machine's monotonic clock. Tests whose wall clock
// stands still and is moved to mean "time passes" move Mono with it
// (MustOpenDB); a test of a clock jump moves only Now.

// machineMono reads the machine's monotonic clock: time since the process
// first asked.
func machineMono() func() time.Duration {
	start := time.Now()
	return func() time.Duration { return time.Since(start) }
}

// commandKey names a command by its device and version, as the transports
// and the device's report do.
type commandKey struct{ device, version int64 }

// openedCommands holds, for each command this process recorded and whose
// device has not answered, the monotonic reading of its transaction.
type openedCommands struct {
	mu sync.Mutex
	m  map[commandKey]time.Duration
}

func (o *openedCommands) add(states []doorledger.DesiredState, mono time.Duration) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.m == nil {
		o.m = map[commandKey]time.Duration{}
	}
	for _, s := range states {
		k := commandKey{s.DeviceID, s.Version}
		if _, ok := o.m[k]; !ok {
			o.m[k] = mono
		}
	}
}

func (o *openedCommands) get(k commandKey) (time.Duration, bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	m, ok := o.m[k]
	return m, ok
}

// keep forgets every command but those in open.
func (o *openedCommands) keep(open map[commandKey]bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	for k := range o.m {
		if !open[k] {
			delete(o.m, k)
		}
	}
}

// waited is how long the command k, requested at the wall time requested,
// has waited at the transaction's time: on the monotonic clock when this
// process recorded it, else by the wall clock; never below zero.
func (tx *Tx) waited(k commandKey, requested time.Time) time.Duration {
	return tx.db.waited(k, requested, tx.now, tx.mono)
}

func (db *DB) waited(k commandKey, requested, now time.Time, mono time.Duration) time.Duration {
	d := now.Sub(requested)
	if m, ok := db.opened.get(k); ok {
		d = mono - m
	}
	return max(d, 0)
}
