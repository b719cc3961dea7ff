package postgres

import (
	"sync"
	"time"

	"github.com/doorledger/doorledger"
)

// The clock, as in package sqlite (its clock.go says why):
//
//   - Go code takes the time from the DB's clock, DB.Now, read once per
//     transaction (Tx.now) or through db.now(); never from time.Now. Tests
//     set DB.Now.
//   - The triggers that enforce the core rules compare against PostgreSQL's
//     own clock (now(): the server's real time at the start of the
//     transaction, which nothing in Go can set): no device is enabled under
//     a consent expired by it, no unlock event is deleted before its
//     retention by it. Go's checks by Tx.now come in addition to the
//     triggers, never instead of them.
//   - How long something takes within one run of the portal (a command
//     waiting for its device, its confirmation's latency) is read on the
//     monotonic clock, DB.Mono (Tx.mono), which does not jump when the
//     machine's clock is set; across a restart the recorded wall times'
//     difference, never below zero, stands in.

// now reads the DB's clock as stored: UTC, microseconds (timestamptz's
// precision).
func (db *DB) now() time.Time { return db.Now().UTC().Truncate(time.Microsecond) }

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

// measureCommands sets how long each pending or sent command has waited
// (Command.Waited), at the DB's clocks now.
func (db *DB) measureCommands(cmds []*doorledger.Command) {
	now, mono := db.now(), db.Mono()
	for _, c := range cmds {
		if c.Status == doorledger.CommandPending || c.Status == doorledger.CommandSent {
			c.Waited = db.waited(commandKey{c.DeviceID, c.Version}, c.RequestedAt, now, mono)
		}
	}
}

// measureDevices sets how long each device's pending or sent command has
// waited (Device.CommandWaited), at the wall time now and the DB's monotonic
// clock now.
func (db *DB) measureDevices(now time.Time, devices ...*doorledger.Device) {
	mono := db.Mono()
	for _, d := range devices {
		if d.CommandStatus == doorledger.CommandPending || d.CommandStatus == doorledger.CommandSent {
			d.CommandWaited = db.waited(commandKey{d.ID, d.DesiredVersion}, d.CommandAt, now, mono)
		}
	}
}
