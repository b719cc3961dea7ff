package sqlite

import (
	"context"
	"fmt"
	"strconv"

	"github.com/doorledger/doorledger"
	"github.com/doorledger/doorledger/internal/groupcommit"
)

// UnlockService implements doorledger.UnlockService: durable, idempotent
// ingest of unlock events with group commit, anomaly flags and alerts, and the
// building's history, charts, export, retention and heartbeat watch.
//
// Group commit (internal/groupcommit): RecordUnlocks queues the caller's events and
// waits; the committer takes everything waiting, up to MaxBatch events, and
// writes it in ONE transaction on the DB's single writer connection, then
// answers each caller.
//
// Each caller's batch is all or nothing: lookups that can refuse a batch
// (unknown device id, device of another building) happen before anything is
// written, and refuse only that caller. Should a write fail, the transaction
// is rolled back and each caller's batch is retried alone in its own, so one
// caller's failure never loses or half-writes another's.
type UnlockService struct {
	db *DB
	// MaxBatch bounds the events of one group-commit transaction (one caller's
	// batch is never split): DefaultMaxBatch.
	MaxBatch int
	// MaxQueued bounds the events of devices and vendors (RecordUnlocks)
	// waiting for the next group-commit transaction; 0: no bound. Beyond it a
	// batch is refused at once with doorledger.ErrIngestBusy (a negative
	// PUBACK, HTTP 503), to be sent again, rather than held until it times out: a device
	// sends one message at a time, so its report confirming a revoke would
	// wait behind its events (docs/reliability.md, Load). (MaxBatch bounds
	// an ingest transaction, which every other write waits for: writeGate.)
	// Imports of a manager's file are not refused.
	MaxQueued int

	group *groupcommit.Committer[*ingestReq, doorledger.ImportResult]

	cache ingestCache // used by the committer only
}

// DefaultMaxBatch is UnlockService.MaxBatch's default. An urgent write (a
// revoke's transaction, a device's report) waits for the event transaction
// already holding the single writer (writeGate): of 100 events it lasts a
// few milliseconds, about a commit, where one of the 1,000 that MaxQueued
// lets queue lasted 250 ms under the portfolio's load (docs/benchmarks.md,
// "Portfolio scale on one machine").
const DefaultMaxBatch = 100

// DefaultMaxQueued is UnlockService.MaxQueued's default: about a tenth of a
// second of ingest on a quiet machine (docs/benchmarks.md: 12k events/s).
const DefaultMaxQueued = 1000

// IngestBusy reports whether events beyond MaxQueued wait for the next
// ingest transaction: transports refuse device messages unread meanwhile
// (devicectl).
func (s *UnlockService) IngestBusy() bool {
	if s.MaxQueued <= 0 {
		return false
	}
	return s.group.Queued() >= s.MaxQueued
}

// Stats returns how many group-commit transactions were committed and how many
// events they carried (their ratio is the batching achieved).
func (s *UnlockService) Stats() (groups, events int64) { return s.group.Stats() }

// NewUnlockService returns the SQLite unlock service.
func NewUnlockService(db *DB) *UnlockService {
	s := &UnlockService{db: db, MaxBatch: DefaultMaxBatch, MaxQueued: DefaultMaxQueued}
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
	events []doorledger.UnlockEvent
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
	if err := checkManage(ctx, s.db.read, callerFrom(ctx), imp.BuildingID); err != nil {
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
	r := &ingestReq{events: make([]doorledger.UnlockEvent, len(in)), lines: lines, imp: imp}
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
		r.events[i] = ev
	}
	if err := p.err(); err != nil {
		return nil, err
	}
	// Below the free-space floor ingest is refused (EUNAVAILABLE), leaving
	// the last of the disk to revokes (space.go).
	if err := s.db.space.Admit(ctx); err != nil {
		return nil, err
	}
	// If ctx ends first, the committer may still commit the batch: the
	// caller does not acknowledge, the source sends it again, and the repeat
	// is a no-op.
	limit := s.MaxQueued
	if imp != nil {
		limit = 0
	}
	res, err := s.group.SubmitWithin(ctx, r, limit, doorledger.ErrIngestBusy)
	if err != nil {
		return nil, s.db.space.failed(err)
	}
	return &res, nil
}
