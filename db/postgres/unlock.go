package postgres

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/doorledger/doorledger"
	"github.com/doorledger/doorledger/internal/groupcommit"
)

// UnlockService implements doorledger.UnlockService, ported from package
// sqlite (issue 15): durable, idempotent ingest of unlock events with group
// commit, anomaly flags and alerts, and the building's history, charts,
// export, retention and heartbeat watch.
//
// Group commit (internal/groupcommit): RecordUnlocks queues the caller's events and
// waits; the committer takes everything waiting, up to MaxBatch events, and
// writes it in ONE transaction (one commit, one WAL flush), its events in
// one INSERT … SELECT FROM unnest(…) ON CONFLICT DO NOTHING, then answers
// each caller. Several instances (and so several committers) write at once;
// PostgreSQL orders them (see unlock_write.go for how they keep out of each
// other's way).
//
// Each caller's batch is all or nothing: lookups that can refuse a batch
// (unknown device id, device of another building) happen before anything is
// written, and refuse only that caller. Should a write fail, the transaction
// is rolled back and each caller's batch is retried alone in its own, so one
// caller's failure never loses or half-writes another's.
type UnlockService struct {
	db *DB
	// MaxBatch bounds the events of one group-commit transaction (one caller's
	// batch is never split).
	MaxBatch int
	// MaxQueued bounds the events of devices and vendors (RecordUnlocks)
	// waiting for the next group-commit transaction; 0: no bound. Beyond it
	// a batch is refused at once with doorledger.ErrIngestBusy, to be sent
	// again, rather than held until its sender times out and sends it again
	// meanwhile: without the bound, a cluster that fell behind (stopped for
	// 40 s in the portfolio rig) had 158 MB of such copies queued in the
	// portal (docs/benchmarks.md, "Portal RSS"). As in package sqlite,
	// imports of a manager's file are not refused.
	MaxQueued int

	group *groupcommit.Committer[*ingestReq, doorledger.ImportResult]

	cache ingestCache // used by the committer only
}

// DefaultMaxQueued is UnlockService.MaxQueued's default, package sqlite's:
// under a second of ingest on this backend (docs/benchmarks.md: 1,246–3,166
// events/s on a shared 2-core machine).
const DefaultMaxQueued = 1000

// IngestBusy reports whether events beyond MaxQueued wait for the next
// ingest transaction: transports refuse device messages unread meanwhile
// (devicectl).
func (s *UnlockService) IngestBusy() bool {
	return s.MaxQueued > 0 && s.group.Queued() >= s.MaxQueued
}

// Stats returns how many group-commit transactions were committed and how many
// events they carried (their ratio is the batching achieved).
func (s *UnlockService) Stats() (groups, events int64) { return s.group.Stats() }

// NewUnlockService returns the PostgreSQL unlock service.
func NewUnlockService(db *DB) *UnlockService {
	s := &UnlockService{db: db, MaxBatch: 10000, MaxQueued: DefaultMaxQueued}
	s.group = groupcommit.New("unlock ingest", func() int { return s.MaxBatch }, func(r *ingestReq) int { return len(r.events) }, s.writeGroup)
	s.group.Failed = func() { s.cache.reset(-1) } // the group's changes to it were rolled back
	return s
}

// Wait returns when the committer has written everything queued, even
// batches whose callers stopped waiting: at shutdown, after the transports
// stopped and before the log is sequenced a last time.
func (s *UnlockService) Wait() { s.group.Wait() }

var _ doorledger.UnlockService = (*UnlockService)(nil)
var _ doorledger.BusySink = (*UnlockService)(nil)

// ingestReq is one caller's batch waiting for the committer.
type ingestReq struct {
	ctx    context.Context // the caller's (set by writeGroup)
	in     []doorledger.UnlockEvent
	events []doorledger.UnlockEvent // in, as one attempt at writing it resolves it
	lines  []int                    // file lines, for messages (imports)
	imp    *doorledger.UnlockImport // a manager's import: audited with its counts
}

// label names event i of the request in messages: "event 3" (from 0) or "line 14".
func (r *ingestReq) label(i int) string {
	if i < len(r.lines) && r.lines[i] > 0 {
		return "line " + strconv.Itoa(r.lines[i])
	}
	return "event " + strconv.Itoa(i)
}

// problems collects what is wrong with a batch, by event, into one EINVALID.
type problems struct {
	fields map[string]string
	first  string
	n      int
}

const maxProblems = 100

func (p *problems) add(where, msg string) {
	p.n++
	if p.first == "" {
		p.first = where + ": " + msg
	}
	if len(p.fields) < maxProblems {
		if p.fields == nil {
			p.fields = map[string]string{}
		}
		if _, ok := p.fields[where]; !ok {
			p.fields[where] = msg
		}
	}
}

func (p *problems) err() error {
	if p.n == 0 {
		return nil
	}
	msg := p.first
	if p.n > 1 {
		msg = fmt.Sprintf("%d problems; nothing was recorded. %s", p.n, p.first)
	}
	return &doorledger.Error{Code: doorledger.EINVALID, Message: msg, Fields: p.fields}
}

// RecordUnlocks implements doorledger.EventSink for transports: it returns
// once the events are committed (or refused, all of them). An empty Source is
// SourceMQTT; a zero ReceivedAt is the time of recording.
func (s *UnlockService) RecordUnlocks(ctx context.Context, events []doorledger.UnlockEvent) error {
	_, err := s.record(ctx, events, nil, nil)
	return err
}

// RecordUnlocksResult is RecordUnlocks that also says what was new.
func (s *UnlockService) RecordUnlocksResult(ctx context.Context, events []doorledger.UnlockEvent) (*doorledger.ImportResult, error) {
	return s.record(ctx, events, nil, nil)
}

// ImportUnlocks records a vendor's export into a building (its managers): all
// or nothing, audited with the file's name, hash and counts. EINVALID lists the
// rows that cannot be recorded by line (Fields: "line 14" → message).
func (s *UnlockService) ImportUnlocks(ctx context.Context, imp doorledger.UnlockImport) (*doorledger.ImportResult, error) {
	if err := checkManage(ctx, s.db.pool, callerFrom(ctx), imp.BuildingID); err != nil {
		return nil, err
	}
	if len(imp.Events) == 0 {
		return nil, doorledger.Errorf(doorledger.EINVALID, "The file holds no events.")
	}
	events := make([]doorledger.UnlockEvent, len(imp.Events))
	for i, ev := range imp.Events {
		ev.BuildingID, ev.Source = imp.BuildingID, doorledger.SourceCSV
		events[i] = ev
	}
	return s.record(ctx, events, imp.Lines, &imp)
}

func (s *UnlockService) record(ctx context.Context, in []doorledger.UnlockEvent, lines []int, imp *doorledger.UnlockImport) (*doorledger.ImportResult, error) {
	if len(in) == 0 {
		return &doorledger.ImportResult{}, nil
	}
	r := &ingestReq{in: make([]doorledger.UnlockEvent, len(in)), lines: lines, imp: imp}
	var p problems
	for i, ev := range in {
		if err := ev.Validate(); err != nil {
			p.add(r.label(i), doorledger.ErrorMessage(err))
			continue
		}
		if ev.Source == "" {
			ev.Source = doorledger.SourceMQTT
		}
		ev.ID, ev.Anomalies = 0, nil
		// As stored (timestamptz: microseconds), so that what is judged
		// is what is recorded.
		ev.OccurredAt = ev.OccurredAt.UTC().Truncate(time.Microsecond)
		if !ev.ReceivedAt.IsZero() {
			ev.ReceivedAt = ev.ReceivedAt.UTC().Truncate(time.Microsecond)
		}
		r.in[i] = ev
	}
	if err := p.err(); err != nil {
		return nil, err
	}
	r.events = slices.Clone(r.in)
	// If ctx ends first, the committer may still commit the batch: the
	// caller does not acknowledge, the source sends it again, and the repeat
	// is a no-op.
	limit := s.MaxQueued
	if imp != nil {
		limit = 0
	}
	res, err := s.group.SubmitWithin(ctx, r, limit, doorledger.ErrIngestBusy)
	if err != nil {
		return nil, err
	}
	return &res, nil
}
