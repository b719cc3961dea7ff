package devicectl

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/doorledger/doorledger"
)

// Stats counts what a transport saw since it started. The connection and ACL
// counts are the embedded broker's; a Client leaves them zero (the external
// broker refuses devices itself).
type Stats struct {
	Connects          int64 // device connections accepted
	RefusedUsername   int64 // username is not a device id
	RefusedClientID   int64 // client id is not device-{id}
	RefusedCredential int64 // AuthenticateDevice said EUNAUTHORIZED: unknown id, wrong secret, retired
	AuthErrors        int64 // AuthenticateDevice failed otherwise; refused as "server unavailable"
	DeniedSubscribe   int64 // subscriptions refused by the ACL
	DeniedPublish     int64 // publishes refused by the ACL
	WillsDropped      int64 // last-will messages stripped at connect
	CredentialCuts    int64 // connections ended because the device's credential changed (DisconnectDevice)

	Reports      int64 // reported states committed (ReportState returned nil)
	Events       int64 // unlock events committed (RecordUnlocks returned nil)
	Invalid      int64 // messages refused for good: malformed, or the service refused them as invalid
	CommitErrors int64 // ReportState/RecordUnlocks failures: the message was not acknowledged
	Busy         int64 // event messages refused unread while the portal had too many waiting (not acknowledged)
}

type counters struct {
	connects, refusedUsername, refusedClientID, refusedCredential, authErrors atomic.Int64
	deniedSubscribe, deniedPublish, willsDropped, credentialCuts              atomic.Int64
	reports, events, invalid, commitErrors, busy                              atomic.Int64
}

func (c *counters) snapshot() Stats {
	return Stats{
		Connects:          c.connects.Load(),
		RefusedUsername:   c.refusedUsername.Load(),
		RefusedClientID:   c.refusedClientID.Load(),
		RefusedCredential: c.refusedCredential.Load(),
		AuthErrors:        c.authErrors.Load(),
		DeniedSubscribe:   c.deniedSubscribe.Load(),
		DeniedPublish:     c.deniedPublish.Load(),
		WillsDropped:      c.willsDropped.Load(),
		CredentialCuts:    c.credentialCuts.Load(),
		Reports:           c.reports.Load(),
		Events:            c.events.Load(),
		Invalid:           c.invalid.Load(),
		CommitErrors:      c.commitErrors.Load(),
		Busy:              c.busy.Load(),
	}
}

// ingester hands device messages to the portal's services, the same way for
// the embedded broker and the external-broker client.
type ingester struct {
	devices doorledger.DeviceReports
	events  doorledger.EventSink
	timeout time.Duration
	stats   *counters
}

// outcome is what a transport does with a message after ingest.
type outcome int

const (
	committed outcome = iota // durable: acknowledge
	rejected                 // can never be accepted: acknowledge as refused, do not retry
	failed                   // not durable: do not acknowledge; the message must come again
)

// ingest commits one message from device id on a topic of the given kind, and
// says whether the transport may acknowledge it.
func (in *ingester) ingest(ctx context.Context, id int64, kind string, payload []byte) (outcome, error) {
	ctx, cancel := context.WithTimeout(ctx, in.timeout)
	defer cancel()

	var err error
	switch kind {
	case KindReported:
		var r doorledger.ReportedState
		if r, err = ParseReport(id, payload); err != nil {
			in.stats.invalid.Add(1)
			return rejected, err
		}
		if err = in.devices.ReportState(ctx, r); err == nil {
			in.stats.reports.Add(1)
			return committed, nil
		}
		err = fmt.Errorf("report state of device %d: %w", id, err)
	case KindEvents:
		// Refused before the payload is even parsed: a busy portal must not
		// spend on messages it will not keep what it lacks for the others.
		// The device's report, which it sends before its next events, then
		// does not wait behind them.
		if b, ok := in.events.(doorledger.BusySink); ok && b.IngestBusy() {
			in.stats.busy.Add(1)
			return failed, doorledger.ErrIngestBusy
		}
		var evs []doorledger.UnlockEvent
		// Received at the database's clock, the portal's (zero: stamped
		// when committed), not the machine's read here.
		if evs, err = ParseEvents(id, payload, time.Time{}); err != nil {
			in.stats.invalid.Add(1)
			return rejected, err
		}
		if err = in.events.RecordUnlocks(ctx, evs); err == nil {
			in.stats.events.Add(int64(len(evs)))
			return committed, nil
		}
		err = fmt.Errorf("record %d unlocks of device %d: %w", len(evs), id, err)
	default:
		in.stats.invalid.Add(1)
		return rejected, doorledger.Errorf(doorledger.EINVALID, "Devices do not publish on %q topics.", kind)
	}
	if permanent(err) {
		in.stats.invalid.Add(1)
		return rejected, err
	}
	in.stats.commitErrors.Add(1)
	return failed, err
}

// permanent reports whether a service error would come back unchanged on retry.
func permanent(err error) bool {
	switch doorledger.ErrorCode(err) {
	case doorledger.EINVALID, doorledger.ENOTFOUND, doorledger.EFORBIDDEN, doorledger.EUNAUTHORIZED:
		return true
	}
	return false
}
