package postgres

import "context"

// instancesLease is the lease every portal instance holds on the database
// for as long as it runs.
const instancesLease = "instances"

// LockInstances takes the database's instance lock, as the data directory's
// flock does for package sqlite: shared by portals on an external MQTT
// broker (several may run on one database), exclusive for a portal with the
// embedded broker (it runs alone: a second would split the devices between
// two brokers). ok is false when the lock conflicts with a portal running.
// It is held by a session of its own until Close, or the process's death.
func (db *DB) LockInstances(ctx context.Context, shared bool) (ok bool, err error) {
	query := `SELECT pg_try_advisory_lock($1)`
	if shared {
		query = `SELECT pg_try_advisory_lock_shared($1)`
	}
	_, ok, err = db.tryLock(ctx, instancesLease, query)
	return ok, err
}
