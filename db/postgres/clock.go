package postgres

import "time"

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

// now reads the DB's clock as stored: UTC, microseconds (timestamptz's
// precision).
func (db *DB) now() time.Time { return db.Now().UTC().Truncate(time.Microsecond) }
