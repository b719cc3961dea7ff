package main

import (
	"context"
	"log/slog"
	"time"

	"github.com/doorledger/doorledger"
	"github.com/doorledger/doorledger/devicectl"
)

// Several instances on one external broker share the devices' traffic through
// a shared subscription group (-mqtt-share-group); each has its own account,
// which is its client id (-mqtt-user). An instance that stops keeps its share
// queued in its persistent session, and Mosquitto does not hand it to the
// rest of the group. So each instance holds a lease named after its own
// session for as long as it runs, and watches the sessions of its peers
// (-mqtt-peers): a peer whose lease lapsed is gone, and the first instance to
// take its lease drains its session (devicectl.Drain: commit what was queued,
// then end the session so the broker queues nothing more for it) and gives
// the lease back. A peer that comes back takes its own lease again and starts
// a fresh session.

// sessionLease names the lease of an instance's broker session.
func sessionLease(user string) string { return "mqtt session " + user }

// awaitSessionLease takes this instance's own session lease before its client
// connects: while another instance drains the session (after a crash), a
// connection with the same client id would take the session from under it.
func awaitSessionLease(ctx context.Context, leases doorledger.LeaseService, user, instance string, ttl time.Duration, log *slog.Logger) error {
	for {
		held, until, err := leases.AcquireLease(ctx, sessionLease(user), instance, ttl)
		if err == nil && held {
			return nil
		}
		if err != nil {
			log.Warn("broker session lease", "user", user, "err", err)
		} else {
			log.Info("waiting for this instance's broker session: another instance is draining it", "user", user, "until", until)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(ttl / 3):
		}
	}
}

// watchPeers drains the broker session of each peer whose lease lapsed,
// until ctx ends.
func watchPeers(ctx context.Context, leases doorledger.LeaseService, instance string, ttl time.Duration, peers []string, cfg devicectl.ClientConfig, log *slog.Logger) {
	t := time.NewTicker(ttl / 3)
	defer t.Stop()
	for {
		for _, peer := range peers {
			if peer == cfg.Username {
				continue
			}
			held, _, err := leases.AcquireLease(ctx, sessionLease(peer), instance, ttl)
			if err != nil || !held {
				continue
			}
			pc := cfg
			pc.Username, pc.ClientID = peer, peer
			dctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
			st, err := devicectl.Drain(dctx, pc, time.Second)
			cancel()
			if err != nil {
				log.Error("drain a stopped instance's broker session", "peer", peer, "err", err)
			} else if st.Events+st.Reports > 0 {
				log.Info("drained a stopped instance's broker session", "peer", peer, "events", st.Events, "reports", st.Reports)
			}
			rctx, rcancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			if err := leases.ReleaseLease(rctx, sessionLease(peer), instance); err != nil {
				log.Warn("release a peer's session lease", "peer", peer, "err", err)
			}
			rcancel()
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
