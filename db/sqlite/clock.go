package sqlite

import "time"

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
