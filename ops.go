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

// OpsService reads the operator's figures. Admins and the system only.
type OpsService interface {
	OpsStats(ctx context.Context) (*OpsStats, error)
}
