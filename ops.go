package doorledger

import (
	"context"
	"time"
)

// OpsStats are the figures an operator watches, read from the database at
// once: what waits, what failed, how long doors take to obey. They are the
// same from every instance (they live in the database), unlike a process's
// own counters.
type OpsStats struct {
	Commands      map[string]int64 // every command by status (pending, sent, confirmed, not_confirmed, refused, superseded)
	RevokeLatency Histogram        // click → confirmed, of every confirmed revoke
	OutboxQueued  int64            // mail not yet sent and not given up
	OutboxFailed  int64            // mail given up ("could not deliver")
	ReportsQueued int64            // reports queued or running
	LogPending    int64            // committed rows not yet in the verifiable log
	LogLag        time.Duration    // how long the oldest of them has waited; 0 when none
}

// Histogram is a cumulative histogram: Counts[i] values were ≤ Bounds[i];
// Count and Sum are over every value.
type Histogram struct {
	Bounds []time.Duration
	Counts []int64
	Count  int64
	Sum    time.Duration
}

// RevokeLatencyBounds are the revoke latency histogram's buckets: the
// benchmark's click → confirmed is tens of milliseconds on one machine;
// the command time-out is 30 s by default.
var RevokeLatencyBounds = []time.Duration{
	25 * time.Millisecond, 50 * time.Millisecond, 100 * time.Millisecond, 250 * time.Millisecond,
	500 * time.Millisecond, time.Second, 2500 * time.Millisecond, 5 * time.Second,
	10 * time.Second, 30 * time.Second, time.Minute,
}

// WebhookStats are the outbound events' figures: what waits to be
// delivered, which receivers fail and why, what was given up on.
type WebhookStats struct {
	Pending       int64         // deliveries not delivered nor given up on: due, or waiting to retry
	OldestPending time.Duration // how long the oldest of them has waited since queued or replayed; 0 when none
	// Failing are the deliveries waiting to retry after a failed attempt,
	// by subscription and the reason of that attempt (WebhookFailureReason).
	Failing []WebhookFailures
	// GivenUp are the deliveries given up on (after retrying for
	// WebhookRetryWindow, or a secret sealed under another key) and still
	// listed, until replayed or pruned, by subscription id; only of active
	// subscriptions (a disabled one gave up its own: nothing to replay).
	GivenUp map[int64]int64
}

// AddFailing counts n deliveries of a subscription waiting to retry after
// an attempt answered with status (0: no answer), under its reason.
func (st *WebhookStats) AddFailing(subscriptionID int64, status int, n int64) {
	reason := WebhookFailureReason(status)
	for i := range st.Failing {
		if f := &st.Failing[i]; f.SubscriptionID == subscriptionID && f.Reason == reason {
			f.Deliveries += n
			return
		}
	}
	st.Failing = append(st.Failing, WebhookFailures{SubscriptionID: subscriptionID, Reason: reason, Deliveries: n})
}

// SetOldestPending sets OldestPending at now from the earliest give-up time
// of the pending deliveries (each is given up WebhookRetryWindow after it
// was queued or replayed); zero: none pending.
func (st *WebhookStats) SetOldestPending(now, earliestGiveUp time.Time) {
	st.OldestPending = 0
	if st.Pending > 0 && !earliestGiveUp.IsZero() {
		st.OldestPending = max(0, now.Sub(earliestGiveUp.Add(-WebhookRetryWindow)))
	}
}

// WebhookFailures counts one subscription's failing deliveries of one reason.
type WebhookFailures struct {
	SubscriptionID int64
	Reason         string
	Deliveries     int64
}

// WebhookFailureReason names why an attempt failed by its answer's status,
// one of a few words (a metric's label, never a receiver's text):
// "no_answer" (none came: refused, timed out, a private address),
// "redirect" (3xx, never followed), "client_error" (4xx), "server_error"
// (5xx), or "other" (a 1xx or 2xx counted as failed, such as a body that
// could not be read).
func WebhookFailureReason(status int) string {
	switch {
	case status == 0:
		return "no_answer"
	case status >= 300 && status < 400:
		return "redirect"
	case status >= 400 && status < 500:
		return "client_error"
	case status >= 500 && status < 600:
		return "server_error"
	}
	return "other"
}

// OpsService reads the operator's figures. Admins and the system only.
type OpsService interface {
	OpsStats(ctx context.Context) (*OpsStats, error)
	// WebhookStats reads the outbound events' figures from one snapshot.
	// EFORBIDDEN for other callers than admins and the system.
	WebhookStats(ctx context.Context) (*WebhookStats, error)
}
