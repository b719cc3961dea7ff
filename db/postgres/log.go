package postgres

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/doorledger/doorledger"
	"github.com/doorledger/doorledger/auditlog"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// LogService implements doorledger.LogService: the verifiable log of every
// audit entry, unlock event and retention purge, as package sqlite's.
//
// The log is a sequencer, as in Certificate Transparency: writers commit
// their rows as before, and Sequence, called every second by a background
// job and on demand, appends the rows committed since the last it
// appended, each kind in increasing id order (auditlog's checker refuses
// any other), in batches, each batch in its own transaction.
//
// Order under several writers (issue 15). SQLite has one writer, so its
// ids are committed in increasing order and the sequencer resumes after
// the largest id it logged. On PostgreSQL ids are not commit order: a
// transaction holding id 5 may commit after the one holding id 6, and a
// sequencer that logged 6 would skip 5 for good (or log it out of order).
// So each batch logs a kind's rows only up to its horizon, an id below
// which every id is settled, committed or rolled back (horizon, and
// migration 120); below the horizon "after the largest id logged" is
// right again. Nothing blocks a writer: a row committed above the horizon
// waits for the next run. One sequencer runs at a time across instances
// (logLock, an advisory lock held by each sequencing transaction and by
// the retention purge's).
type LogService struct {
	db  *DB
	key *auditlog.Key

	verifier    *auditlog.HeadVerifier
	verifierKey string

	// HeadEvery is how often Sequence signs a head while the log grows;
	// SignHead signs one at once.
	HeadEvery time.Duration
	// Batch bounds the entries one sequencing transaction appends.
	Batch int
}

// NewLogService returns the log on db, signing heads with key (nil: the log
// can be verified, with UseVerifierKey, but not extended).
func NewLogService(db *DB, key *auditlog.Key) *LogService {
	s := &LogService{db: db, key: key, HeadEvery: time.Minute, Batch: logBatch}
	if key != nil {
		s.verifier, s.verifierKey = key.HeadVerifier(), key.VerifierKey()
	}
	return s
}

// Origin is the log's origin line, which its checkpoints begin with ("":
// unknown, for a log opened with a verifier key only).
func (s *LogService) Origin() string {
	if s.verifier == nil {
		return ""
	}
	return s.verifier.Origin()
}

var _ doorledger.LogService = (*LogService)(nil)

const (
	logBatch    = 5000 // entries per sequencing transaction
	verifyBatch = 4096 // entries Verify reads at a time
)

// logLock is the advisory lock key of the sequencer: one appends at a time,
// across instances.
var logLock = lockKey("log", "sequencer")

// UseVerifierKey makes Verify check heads with vkey ("<name>+<hash>+<key>")
// rather than the key in the data directory. EINVALID when it is not one.
func (s *LogService) UseVerifierKey(vkey string) error {
	v, err := auditlog.NewVerifier(vkey)
	if err != nil {
		return doorledger.Errorf(doorledger.EINVALID, "%s", err.Error())
	}
	s.verifier, s.verifierKey = v.ForOrigin(s.Origin()), strings.TrimSpace(vkey)
	return nil
}

// VerifierKey returns the key that verifies the heads.
func (s *LogService) VerifierKey() string { return s.verifierKey }

// requireLogReader lets in any signed-in caller but installers: heads and
// proofs hold only hashes, for boards checking the reports they hold.
func requireLogReader(c caller) error {
	if err := c.requireSignedIn(); err != nil {
		return err
	}
	return doorledger.CheckLogReader(c.role())
}

// Sequence appends what was committed (up to the horizon) since the last
// run and, when the log grew and the latest head is older than HeadEvery,
// signs a new head.
func (s *LogService) Sequence(ctx context.Context) (int64, error) {
	if err := callerFrom(ctx).requireSignedIn(); err != nil {
		return 0, err
	}
	if busy, err := s.hasWork(ctx); err != nil || !busy {
		return 0, err
	}
	var total int64
	for {
		n, _, err := s.sequenceOnce(ctx, false)
		total += int64(n)
		if err != nil {
			return total, fmt.Errorf("sequence the log: %w", err)
		}
		if n < s.batch() {
			return total, nil
		}
	}
}

// SignHead appends everything committed (up to the horizon), then returns a
// head signed for the log's size now (the latest head if already of it).
func (s *LogService) SignHead(ctx context.Context) (*doorledger.LogHead, error) {
	if err := callerFrom(ctx).requireSignedIn(); err != nil {
		return nil, err
	}
	for {
		n, head, err := s.sequenceOnce(ctx, true)
		if err != nil {
			return nil, fmt.Errorf("sign the log's head: %w", err)
		}
		if n < s.batch() {
			if head == nil {
				return nil, doorledger.Errorf(doorledger.ENOTFOUND, "The audit log is empty.")
			}
			return head, nil
		}
	}
}

func (s *LogService) batch() int {
	if s.Batch <= 0 {
		return logBatch
	}
	return s.Batch
}

// hasWork reports whether a row waits to be logged or a head is due.
func (s *LogService) hasWork(ctx context.Context) (bool, error) {
	var pending bool
	var size, headSize int64
	var headAt time.Time
	err := s.db.pool.QueryRow(ctx, `SELECT
		EXISTS (SELECT 1 FROM audit_entries WHERE id > (SELECT COALESCE(MAX(ref_id), 0) FROM log_leaves WHERE kind = 'audit'))
		OR EXISTS (SELECT 1 FROM unlock_events WHERE id > (SELECT COALESCE(MAX(ref_id), 0) FROM log_leaves WHERE kind = 'unlock'))
		OR EXISTS (SELECT 1 FROM log_purges WHERE id > (SELECT COALESCE(MAX(ref_id), 0) FROM log_leaves WHERE kind = 'purge')),
		(SELECT COALESCE(MAX(idx) + 1, 0) FROM log_leaves),
		COALESCE((SELECT size FROM log_heads ORDER BY size DESC LIMIT 1), 0),
		(SELECT at FROM log_heads ORDER BY size DESC LIMIT 1)`).Scan(&pending, &size, &headSize, at(&headAt))
	if err != nil {
		return false, err
	}
	due := size > headSize && (headAt.IsZero() || s.db.Now().Sub(headAt) >= s.HeadEvery)
	return pending || due, nil
}

// sequenceOnce appends one batch in one transaction and signs a head when due
// (always with force, once the backlog is done). It returns how many entries
// it appended and the latest head.
func (s *LogService) sequenceOnce(ctx context.Context, force bool) (int, *doorledger.LogHead, error) {
	tx, err := s.db.BeginTx(ctx)
	if err != nil {
		return 0, nil, err
	}
	defer tx.Rollback()
	if err := tx.lockLog(ctx); err != nil {
		return 0, nil, err
	}
	n, tree, err := tx.appendLog(ctx, s.batch())
	if err != nil {
		return 0, nil, err
	}
	head, err := latestLogHead(ctx, tx)
	if err != nil {
		return 0, nil, err
	}
	caughtUp := n < s.batch()
	grown := tree.Size() > 0 && (head == nil || head.Size < tree.Size())
	if caughtUp && grown && (force || head == nil || tx.now.Sub(head.At) >= s.HeadEvery) {
		if head, err = s.signHead(ctx, tx, tree); err != nil {
			return 0, nil, err
		}
	}
	return n, head, tx.Commit(ctx)
}

// lockLog makes tx the one sequencer, until it ends.
func (tx *Tx) lockLog(ctx context.Context) error {
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, logLock); err != nil {
		return fmt.Errorf("lock the log: %w", err)
	}
	return nil
}

func (s *LogService) signHead(ctx context.Context, tx *Tx, tree *auditlog.Frontier) (*doorledger.LogHead, error) {
	if s.key == nil {
		return nil, errors.New("no key to sign the log's head with")
	}
	h := &doorledger.LogHead{Size: tree.Size(), Root: tree.Root(), At: tx.now}
	var err error
	if h.Note, err = auditlog.SignHead(s.key.Signer(), h.Size, h.Root); err != nil {
		return nil, err
	}
	if _, err := tx.Exec(ctx, `INSERT INTO log_heads (size, root, note, at) VALUES ($1, $2, $3, $4)`,
		h.Size, h.Root[:], h.Note, h.At); err != nil {
		return nil, fmt.Errorf("record head of %d: %w", h.Size, err)
	}
	return h, nil
}

// logSource is a table whose rows the log holds.
type logSource struct {
	kind, table string
	// load returns the rows with after < id <= upto, by id, at most limit
	// (-1: all), each canonically encoded.
	load func(ctx context.Context, q querier, after, upto int64, limit int) ([]logRow, error)
	// at is the column of the time the row was committed, as the portal
	// recorded it (an unlock event's received_at, not the device's clock).
	at string
	// seq is the sequence its ids come from (migration 120).
	seq string
	// locked: its rows are written only by the holder of logLock (the
	// purge's records), so its ids are commit order and the horizon is the
	// sequence's last value: no writer elsewhere holds it back.
	locked bool
}

// logRow is a row, encoded; err says why it could not be.
type logRow struct {
	id  int64
	enc []byte
	err error
	red *auditlog.LeafRedaction // an unlock event a redaction emptied: what it recorded
}

// The sequencer takes the kinds in this order within a batch.
var logSources = []logSource{
	{doorledger.LogKindAudit, "audit_entries", loadAuditRows, "at", "audit_entries_id_seq", false},
	{doorledger.LogKindUnlock, "unlock_events", loadUnlockRows, "received_at", "unlock_events_id_seq", false},
	{doorledger.LogKindPurge, "log_purges", loadPurgeRows, "at", "log_purges_id_seq", true},
}

// appendLog appends to the log, in tx (which holds logLock), up to max rows
// committed since the last ones it holds and below each kind's horizon, and
// returns how many and the tree after them.
func (tx *Tx) appendLog(ctx context.Context, max int) (int, *auditlog.Frontier, error) {
	size, err := logSize(ctx, tx)
	if err != nil {
		return 0, nil, err
	}
	tree, err := loadFrontier(ctx, tx, size)
	if err != nil {
		return 0, nil, err
	}
	upto, err := tx.db.horizon.settled(ctx, tx.db.pool, tx)
	if err != nil {
		return 0, nil, err
	}
	type pending struct {
		kind string
		row  logRow
	}
	var rows []pending
	for _, src := range logSources {
		if len(rows) >= max {
			break
		}
		last, err := lastLogged(ctx, tx, src.kind)
		if err != nil {
			return 0, nil, err
		}
		if upto[src.kind] <= last {
			continue
		}
		list, err := src.load(ctx, tx, last, upto[src.kind], max-len(rows))
		if err != nil {
			return 0, nil, fmt.Errorf("read %s: %w", src.table, err)
		}
		for _, r := range list {
			if r.err != nil {
				return 0, nil, fmt.Errorf("%s #%d cannot be logged: %w", src.kind, r.id, r.err)
			}
			rows = append(rows, pending{src.kind, r})
		}
	}
	if len(rows) == 0 {
		return 0, tree, nil
	}
	// Two statements of arrays, whatever the batch: unnest turns them into rows.
	var (
		idx, refs, encs []int64
		kinds           []string
		leafs           [][]byte
		hidx            []int64
		hashes          [][]byte
	)
	for i, r := range rows {
		at := size + int64(i)
		leaf := auditlog.LeafHash(r.row.enc)
		idx, kinds, refs, encs, leafs = append(idx, at), append(kinds, r.kind), append(refs, r.row.id), append(encs, auditlog.Version), append(leafs, leaf[:])
		first := auditlog.StoredHashIndex(0, at)
		for j, h := range tree.Append(leaf) {
			hidx, hashes = append(hidx, first+int64(j)), append(hashes, h[:])
		}
	}
	if _, err := tx.Exec(ctx, `INSERT INTO log_leaves (idx, kind, ref_id, enc, hash)
		SELECT * FROM unnest($1::bigint[], $2::text[], $3::bigint[], $4::integer[], $5::bytea[]) ORDER BY 1`,
		idx, kinds, refs, encs, leafs); err != nil {
		return 0, nil, fmt.Errorf("append to log_leaves: %w", err)
	}
	if _, err := tx.Exec(ctx, `INSERT INTO log_hashes (idx, hash) SELECT * FROM unnest($1::bigint[], $2::bytea[]) ORDER BY 1`,
		hidx, hashes); err != nil {
		return 0, nil, fmt.Errorf("append to log_hashes: %w", err)
	}
	return len(rows), tree, nil
}

// logHorizon finds, for each kind, an id below which every id is settled
// (committed or rolled back), so that the sequencer never logs a row while a
// lower id may still commit. Ids come from logged_id() (migration 120): a
// transaction has its transaction id before it takes a row id, and
// transaction ids are handed out in time order. A candidate is each
// sequence's last value L, then a transaction id X assigned after reading
// it: whoever took an id <= L has a transaction id below X. Once no
// transaction below X is in progress (by a snapshot, as the rows will be
// read), every id <= L is settled. Candidates are kept (per instance) until
// one settles, so a writer in flight holds the horizon back without
// blocking anyone, and a run under steady load logs what the previous run
// saw.
type logHorizon struct {
	mu         sync.Mutex
	candidates []horizonCandidate // oldest first
	reached    map[string]int64   // the latest settled candidate's
}

type horizonCandidate struct {
	upto map[string]int64
	xid  string // X, an xid8 as text
}

// maxHorizonCandidates bounds the candidates kept while a long transaction
// is in flight: the newest are kept (they settle no sooner than the oldest).
const maxHorizonCandidates = 64

// settled adds a candidate and returns the horizon: the newest settled
// candidate's ids. The caller's transaction q does not hold anyone back
// (its own rows are visible to it and commit with what it logs). The
// candidate is taken in a short transaction of its own, whose transaction
// id is X: q may have had one since before L was read.
func (h *logHorizon) settled(ctx context.Context, pool *pgxpool.Pool, q querier) (map[string]int64, error) {
	var caller *string
	if err := q.QueryRow(ctx, `SELECT pg_current_xact_id_if_assigned()::text`).Scan(&caller); err != nil {
		return nil, fmt.Errorf("log horizon: %w", err)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		c := horizonCandidate{upto: map[string]int64{}}
		for _, src := range logSources {
			var v int64
			if err := tx.QueryRow(ctx, `SELECT COALESCE(pg_sequence_last_value($1::regclass), 0)`, src.seq).Scan(&v); err != nil {
				return err
			}
			c.upto[src.kind] = v
		}
		if err := tx.QueryRow(ctx, `SELECT pg_current_xact_id()::text`).Scan(&c.xid); err != nil {
			return err
		}
		h.candidates = append(h.candidates, c)
		if n := len(h.candidates); n > maxHorizonCandidates {
			h.candidates = h.candidates[n-maxHorizonCandidates:]
		}
		for i := len(h.candidates) - 1; i >= 0; i-- {
			// xids at or above the snapshot's xmax count as in progress.
			var done bool
			if err := tx.QueryRow(ctx, `SELECT pg_snapshot_xmax(s) >= $1::xid8 AND NOT EXISTS (SELECT 1 FROM pg_snapshot_xip(s) x
				WHERE x < $1::xid8 AND x IS DISTINCT FROM $2::xid8) FROM (SELECT pg_current_snapshot() s) c`,
				h.candidates[i].xid, caller).Scan(&done); err != nil {
				return err
			}
			if done {
				h.reached = h.candidates[i].upto
				h.candidates = h.candidates[i+1:]
				break
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("log horizon: %w", err)
	}
	out := make(map[string]int64, len(logSources))
	for _, src := range logSources {
		if src.locked {
			var v int64
			if err := q.QueryRow(ctx, `SELECT COALESCE(MAX(id), 0) FROM `+src.table).Scan(&v); err != nil {
				return nil, fmt.Errorf("log horizon: %w", err)
			}
			out[src.kind] = v
		} else {
			out[src.kind] = h.reached[src.kind]
		}
	}
	return out, nil
}

func logSize(ctx context.Context, q querier) (int64, error) {
	var n int64
	err := q.QueryRow(ctx, `SELECT COALESCE(MAX(idx) + 1, 0) FROM log_leaves`).Scan(&n)
	return n, err
}

// lastLogged is the largest id of kind in the log (0: none).
func lastLogged(ctx context.Context, q querier, kind string) (int64, error) {
	var id int64
	err := q.QueryRow(ctx, `SELECT COALESCE(MAX(ref_id), 0) FROM log_leaves WHERE kind = $1`, kind).Scan(&id)
	return id, err
}

func loadFrontier(ctx context.Context, q querier, size int64) (*auditlog.Frontier, error) {
	hashes, err := readLogHashes(ctx, q, auditlog.FrontierIndexes(size))
	if err != nil {
		return nil, err
	}
	return auditlog.NewFrontier(size, hashes)
}

// readLogHashes reads stored tree hashes, in the order asked.
func readLogHashes(ctx context.Context, q querier, idx []int64) ([]doorledger.LogHash, error) {
	if len(idx) == 0 {
		return nil, nil
	}
	found := map[int64]doorledger.LogHash{}
	rows, err := q.Query(ctx, `SELECT idx, hash FROM log_hashes WHERE idx = ANY($1)`, idx)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	for rows.Next() {
		var i int64
		var b []byte
		if err := rows.Scan(&i, &b); err != nil {
			return nil, err
		}
		var h doorledger.LogHash
		copy(h[:], b)
		found[i] = h
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	out := make([]doorledger.LogHash, len(idx))
	for i, x := range idx {
		h, ok := found[x]
		if !ok {
			return nil, fmt.Errorf("the log has no tree hash %d", x)
		}
		out[i] = h
	}
	return out, nil
}

func latestLogHead(ctx context.Context, q querier) (*doorledger.LogHead, error) {
	heads, err := loadLogHeads(ctx, q, `ORDER BY size DESC LIMIT 1`)
	if err != nil || len(heads) == 0 {
		return nil, err
	}
	return &heads[0], nil
}

func loadLogHeads(ctx context.Context, q querier, tail string, args ...any) ([]doorledger.LogHead, error) {
	return queryAll(ctx, q, func(row interface{ Scan(...any) error }) (doorledger.LogHead, error) {
		var h doorledger.LogHead
		var root []byte
		err := row.Scan(&h.Size, &root, &h.Note, at(&h.At))
		copy(h.Root[:], root)
		return h, err
	}, `SELECT size, root, note, at FROM log_heads `+tail, args...)
}
