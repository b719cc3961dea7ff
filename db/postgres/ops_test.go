package postgres_test

import (
	"context"
	"testing"
	"time"

	"github.com/doorledger/doorledger"
	"github.com/doorledger/doorledger/db/postgres"
)

// The "ops" group of the behavioural suite needs the device world, which
// PostgreSQL has not ported yet; these tests write the tables the figures
// are read from directly and check each figure.

// TestOpsStats: commands by status, confirmed revokes (and only they) in
// the cumulative latency histogram, a revoke whose recorded times ran
// backwards counted as zero, mail queued and given up, reports queued or
// running; admins and the system only.
func TestOpsStats(t *testing.T) {
	d, now := MustOpenDB(t)
	ops := postgres.NewOpsService(d)
	ctx := context.Background()
	t0 := *now
	for _, stmt := range []struct {
		sql  string
		args []any
	}{
		{`INSERT INTO buildings (id, name, address, timezone, created_at, updated_at) VALUES (1, 'A', '1 A St', 'UTC', $1, $1)`, []any{t0}},
		{`INSERT INTO devices (id, building_id, vendor, model, serial, location, origin, created_at)
			VALUES (1, 1, 'Acme', 'K2', 'SN-1', 'lobby', 'found', $1)`, []any{t0}},
		{`INSERT INTO commands (device_id, building_id, state, version, requested_by, requested_at, confirmed_at, status, refused_at) VALUES
			(1, 1, 'enabled', 1, 'test', $1, $1::timestamptz + interval '10 ms', 'confirmed', NULL),
			(1, 1, 'disabled', 2, 'test', $1, $1::timestamptz + interval '40 ms', 'confirmed', NULL),
			(1, 1, 'disabled', 3, 'test', $1::timestamptz + interval '2 s', $1::timestamptz + interval '1900 ms', 'confirmed', NULL),
			(1, 1, 'disabled', 4, 'test', $1::timestamptz + interval '2 s', $1::timestamptz + interval '3 s', 'confirmed', NULL),
			(1, 1, 'enabled', 5, 'test', $1, NULL, 'superseded', NULL),
			(1, 1, 'disabled', 6, 'test', $1, NULL, 'refused', $1),
			(1, 1, 'disabled', 7, 'test', $1, NULL, 'pending', NULL)`, []any{t0}},
		{`INSERT INTO outbox (created_at, to_addr, subject, body, kind, sent_at, failed_at) VALUES
			($1, 'a@example.com', 's', '', 'k', NULL, NULL),
			($1, 'b@example.com', 's', '', 'k', NULL, NULL),
			($1, 'c@example.com', 's', '', 'k', $1, NULL),
			($1, 'd@example.com', 's', '', 'k', NULL, $1)`, []any{t0}},
		{`INSERT INTO reports (id, building_id, format, from_date, to_date, requested_name, requested_at, status, sha256, bytes, done_at) VALUES
			('AR-1', 1, 'pdf', '2026-11-01', '2026-11-30', 'test', $1, 'queued', NULL, 0, NULL),
			('AR-2', 1, 'pdf', '2026-11-01', '2026-11-30', 'test', $1, 'running', NULL, 0, NULL),
			('AR-3', 1, 'pdf', '2026-11-01', '2026-11-30', 'test', $1, 'done', repeat('a', 64), 10, $1),
			('AR-4', 1, 'csv', '2026-11-01', '2026-11-30', 'test', $1, 'failed', NULL, 0, NULL)`, []any{t0}},
	} {
		if _, err := d.Pool().Exec(ctx, stmt.sql, stmt.args...); err != nil {
			t.Fatalf("%s: %v", stmt.sql, err)
		}
	}

	mgr := doorledger.NewContextWithUser(ctx, &doorledger.User{ID: 7, Email: "mgr@example.com", Role: doorledger.RoleManager})
	if _, err := ops.OpsStats(mgr); doorledger.ErrorCode(err) != doorledger.EFORBIDDEN {
		t.Errorf("a manager reads the operator's figures: %v, want EFORBIDDEN", err)
	}
	if _, _, err := ops.LogBacklog(mgr); doorledger.ErrorCode(err) != doorledger.EFORBIDDEN {
		t.Errorf("a manager reads the log backlog: %v, want EFORBIDDEN", err)
	}
	if _, err := ops.OpsStats(ctx); doorledger.ErrorCode(err) != doorledger.EUNAUTHORIZED {
		t.Errorf("anonymous reads the operator's figures: %v, want EUNAUTHORIZED", err)
	}

	st, err := ops.OpsStats(sys())
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]int64{"confirmed": 4, "superseded": 1, "refused": 1, "pending": 1}
	if len(st.Commands) != len(want) {
		t.Errorf("commands by status: %v, want %v", st.Commands, want)
	}
	for status, n := range want {
		if st.Commands[status] != n {
			t.Errorf("commands %s = %d, want %d (%v)", status, st.Commands[status], n, st.Commands)
		}
	}
	// Revokes confirmed after 40 ms, 0 (its times ran backwards) and 1 s.
	h := st.RevokeLatency
	wantCounts := []int64{1, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3}
	if h.Count != 3 || h.Sum != 1040*time.Millisecond || len(h.Bounds) != len(doorledger.RevokeLatencyBounds) {
		t.Errorf("revoke latency: count %d sum %v bounds %v; want 3, 1.04s", h.Count, h.Sum, h.Bounds)
	}
	if len(h.Counts) != len(wantCounts) {
		t.Fatalf("revoke latency buckets %v, want %v", h.Counts, wantCounts)
	}
	for i := range wantCounts {
		if h.Counts[i] != wantCounts[i] {
			t.Errorf("revoke latency buckets %v, want %v (bounds %v)", h.Counts, wantCounts, h.Bounds)
			break
		}
	}
	if st.OutboxQueued != 2 || st.OutboxFailed != 1 {
		t.Errorf("outbox: %d queued, %d failed; want 2, 1", st.OutboxQueued, st.OutboxFailed)
	}
	if st.ReportsQueued != 2 {
		t.Errorf("reports queued or running = %d, want 2", st.ReportsQueued)
	}
}

// TestOpsLogBacklogOutOfOrder: the backlog is every committed row not in the
// log, with ids not in commit order. A transaction holds a low audit id open
// while a later one commits and the sequencer runs: the later one waits
// (above the sequencer's horizon) and is counted; once the low one commits
// it is counted too, its wait the lag; sequenced, nothing is left.
func TestOpsLogBacklogOutOfOrder(t *testing.T) {
	d, now := MustOpenDB(t)
	ops := postgres.NewOpsService(d)
	logs := postgres.NewLogService(d, mustLogKey(t))
	ctx := context.Background()
	logs.SignHead(sys()) // the migrations' entries, if any
	backlog := func() (int64, time.Duration) {
		t.Helper()
		n, lag, err := ops.LogBacklog(sys())
		if err != nil {
			t.Fatal(err)
		}
		st, err := ops.OpsStats(sys())
		if err != nil {
			t.Fatal(err)
		}
		if st.LogPending != n || st.LogLag != lag {
			t.Errorf("OpsStats' backlog %d rows, lag %v; LogBacklog's %d, %v", st.LogPending, st.LogLag, n, lag)
		}
		return n, lag
	}
	if n, lag := backlog(); n != 0 || lag != 0 {
		t.Fatalf("backlog of a sequenced log: %d rows, lag %v", n, lag)
	}

	write := func(at time.Time, action string) (commit func()) {
		t.Helper()
		tx, err := d.Pool().Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { tx.Rollback(context.Background()) })
		if _, err := tx.Exec(ctx, `INSERT INTO audit_entries (at, actor, action) VALUES ($1, 'test', $2)`, at, action); err != nil {
			t.Fatal(err)
		}
		return func() {
			t.Helper()
			if err := tx.Commit(ctx); err != nil {
				t.Fatal(err)
			}
		}
	}
	commitSlow := write(now.Add(-time.Minute), "test.slow") // the lower id, still open
	write(now.Add(-10*time.Second), "test.later")()
	if _, err := logs.Sequence(sys()); err != nil {
		t.Fatal(err)
	}
	if n, lag := backlog(); n != 1 || lag != 10*time.Second {
		t.Errorf("backlog while a lower id is in flight: %d rows, lag %v; want 1, 10s", n, lag)
	}
	commitSlow()
	if n, lag := backlog(); n != 2 || lag != time.Minute {
		t.Errorf("backlog once the lower id committed: %d rows, lag %v; want 2, 1m", n, lag)
	}
	if _, err := logs.Sequence(sys()); err != nil {
		t.Fatal(err)
	}
	if n, lag := backlog(); n != 0 || lag != 0 {
		t.Errorf("backlog after sequencing: %d rows, lag %v", n, lag)
	}
}
