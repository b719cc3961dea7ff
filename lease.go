package doorledger

import (
	"context"
	"time"
)

// Background work runs once across instances: each piece (the log sequencer,
// the report generator, the mail dispatcher, each periodic job) has a named
// lease in the database, and an instance does the work only while it holds
// that lease. A holder renews well before the lease runs out; an instance that
// dies stops renewing, and another takes the work over once the lease lapses.

// LeaseService hands out named, time-limited leases. The database's clock
// decides when a lease has lapsed, read once per call.
type LeaseService interface {
	// AcquireLease takes the named lease for holder until ttl from now when it
	// is free, has lapsed, or is holder's already (a renewal), in one
	// compare-and-set. It reports whether holder holds the lease after the
	// call, and until when the lease runs: holder's new term, or the term of
	// the instance that holds it instead. A holder that lost the lease learns
	// it here (held false). EINVALID for an empty name or holder or a ttl not
	// above zero.
	AcquireLease(ctx context.Context, name, holder string, ttl time.Duration) (held bool, until time.Time, err error)
	// ReleaseLease gives the lease up when holder holds it, so that another
	// instance may take it at once; it does nothing otherwise.
	ReleaseLease(ctx context.Context, name, holder string) error
}

// CheckLeaseRequest checks a request for a lease: EINVALID without a name
// or a holder, or for a term not above zero.
func CheckLeaseRequest(name, holder string, ttl time.Duration) error {
	if name == "" || holder == "" || ttl <= 0 {
		return Errorf(EINVALID, "A lease needs a name, a holder and a term above zero.")
	}
	return nil
}
