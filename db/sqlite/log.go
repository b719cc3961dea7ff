package sqlite

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/doorledger/doorledger"
	"github.com/doorledger/doorledger/auditlog"
)

// LogService implements doorledger.LogService: the verifiable log of every
// audit entry, unlock event and retention purge.
//
// The log is a sequencer, as in Certificate Transparency: writers commit
// their rows as before (the ingest hot path and the audit journal do not
// change), and Sequence, called every second by a background job and on
// demand, appends every row committed since the last one it appended, in
// order, in batches, each batch in its own transaction. A row's leaf is the
// tree hash of its canonical encoding (auditlog); the tree's hashes are
// stored so that any proof reads O(log n) of them; heads are signed with the
// portal's Ed25519 key.
//
// Order: SQLite has one writer, so a table's ids are committed in increasing
// order, and never reused (audit entries are never deleted; unlock_events and
// log_purges are AUTOINCREMENT): the sequencer resumes each kind after the
// largest id it logged. (A store with concurrent writers, such as
// PostgreSQL, would need a commit sequence instead.) The retention purge
// records what it deletes with Tx.LogUnlockPurge, in the purge's transaction.
type LogService struct {
	db  *DB
	key *auditlog.Key

	verifier    *auditlog.HeadVerifier
	verifierKey string

	// HeadEvery is how often Sequence signs a head while the log grows;
	// SignHead signs one at once.
	HeadEvery time.Duration
	// Batch bounds the entries one sequencing transaction appends, so that
	// writers wait for the writer connection milliseconds, not a whole backlog.
	Batch int

	// signed is the monotonic reading (DB.Mono) when this service last signed
	// a head, if hasSigned.
	signedMu  sync.Mutex
	signed    time.Duration
	hasSigned bool
}

// headDue reports whether a head signed at wall time at is old enough
// (HeadEvery) for the next, at the wall time now and monotonic reading mono:
// by the monotonic clock when this service signed it, so that setting the
// machine's clock back does not hold the next head back by as much; else by
// the wall clock, and at once when the head is dated after now.
func (s *LogService) headDue(at, now time.Time, mono time.Duration) bool {
	s.signedMu.Lock()
	signed, ok := s.signed, s.hasSigned
	s.signedMu.Unlock()
	if ok {
		return mono-signed >= s.HeadEvery
	}
	d := now.Sub(at)
	return d < 0 || d >= s.HeadEvery
}

// NewLogService returns the log on db, signing heads with key (nil: the log
// can be verified, with UseVerifierKey, but not extended). Heads are C2SP
// checkpoints whose origin is the key's name (auditlog.Key.Named); heads
// signed before checkpoints verify too.
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

// UseVerifierKey makes Verify check heads with vkey ("<name>+<hash>+<key>"),
// for example the key printed in an earlier report, rather than the key in
// the data directory. EINVALID when it is not a verifier key.
func (s *LogService) UseVerifierKey(vkey string) error {
	v, err := auditlog.NewVerifier(vkey)
	if err != nil {
		return doorledger.Errorf(doorledger.EINVALID, "%s", err.Error())
	}
	// The key is the one given; the origin stays the log's, if known.
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

// Sequence appends what was committed since the last run and, when the log
// grew and the latest head is older than HeadEvery, signs a new head. A call
// with nothing to do reads a few indexes and writes nothing.
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

// SignHead appends everything committed, then returns a head signed for the
// log's size now (the latest head if it is already of that size).
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

// hasWork reports, from the read pool, whether a row waits to be logged or
// a head is due.
func (s *LogService) hasWork(ctx context.Context) (bool, error) {
	var pending bool
	var size, headSize int64
	var headAt string
	err := s.db.read.QueryRowContext(ctx, `SELECT
		EXISTS (SELECT 1 FROM audit_entries WHERE id > (SELECT COALESCE(MAX(ref_id), 0) FROM log_leaves WHERE kind = 'audit'))
		OR EXISTS (SELECT 1 FROM unlock_events WHERE id > (SELECT COALESCE(MAX(ref_id), 0) FROM log_leaves WHERE kind = 'unlock'))
		OR EXISTS (SELECT 1 FROM log_purges WHERE id > (SELECT COALESCE(MAX(ref_id), 0) FROM log_leaves WHERE kind = 'purge')),
		(SELECT COALESCE(MAX(idx) + 1, 0) FROM log_leaves),
		COALESCE((SELECT size FROM log_heads ORDER BY size DESC LIMIT 1), 0),
		COALESCE((SELECT at FROM log_heads ORDER BY size DESC LIMIT 1), '')`).Scan(&pending, &size, &headSize, &headAt)
	if err != nil {
		return false, err
	}
	due := size > headSize && (headAt == "" || s.headDue(parseTime(headAt), s.db.Now(), s.db.Mono()))
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
	signed := false
	if caughtUp && grown && (force || head == nil || s.headDue(head.At, tx.now, tx.mono)) {
		if head, err = s.signHead(ctx, tx, tree, head); err != nil {
			return 0, nil, err
		}
		signed = true
	}
	if err := tx.Commit(); err != nil {
		return 0, nil, err
	}
	if signed {
		s.signedMu.Lock()
		s.signed, s.hasSigned = tx.mono, true
		s.signedMu.Unlock()
	}
	return n, head, nil
}

// signHead signs and records the head of tree, after the latest head prev
// (nil: none). Its time is the transaction's, but never before prev's: with
// the machine's clock set back, heads keep their order in time as in size.
func (s *LogService) signHead(ctx context.Context, tx *Tx, tree *auditlog.Frontier, prev *doorledger.LogHead) (*doorledger.LogHead, error) {
	if s.key == nil {
		return nil, errors.New("no key to sign the log's head with")
	}
	at := tx.now
	if prev != nil && prev.At.After(at) {
		at = prev.At
	}
	h := &doorledger.LogHead{Size: tree.Size(), Root: tree.Root(), At: at}
	var err error
	if h.Note, err = auditlog.SignHead(s.key.Signer(), h.Size, h.Root); err != nil {
		return nil, err
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO log_heads (size, root, note, at) VALUES (?, ?, ?, ?)`,
		h.Size, h.Root[:], h.Note, formatTime(h.At)); err != nil {
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
	{doorledger.LogKindAudit, "audit_entries", loadAuditRows, "at"},
	{doorledger.LogKindUnlock, "unlock_events", loadUnlockRows, "received_at"},
	{doorledger.LogKindPurge, "log_purges", loadPurgeRows, "at"},
}

// appendLog appends to the log, in tx, up to max rows committed since the last
// ones it holds, and returns how many and the tree after them.
func (tx *Tx) appendLog(ctx context.Context, max int) (int, *auditlog.Frontier, error) {
	size, err := logSize(ctx, tx)
	if err != nil {
		return 0, nil, err
	}
	tree, err := loadFrontier(ctx, tx, size)
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
		list, err := src.load(ctx, tx, last, math.MaxInt64, max-len(rows))
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
	leaves := newLogInsert(tx, "log_leaves (idx, kind, ref_id, enc, hash)", 5)
	hashes := newLogInsert(tx, "log_hashes (idx, hash)", 2)
	for i, r := range rows {
		idx := size + int64(i)
		leaf := auditlog.LeafHash(r.row.enc)
		if err := leaves.add(ctx, idx, r.kind, r.row.id, auditlog.Version, leaf[:]); err != nil {
			return 0, nil, err
		}
		at := auditlog.StoredHashIndex(0, idx)
		for j, h := range tree.Append(leaf) {
			if err := hashes.add(ctx, at+int64(j), h[:]); err != nil {
				return 0, nil, err
			}
		}
	}
	if err := leaves.flush(ctx); err != nil {
		return 0, nil, err
	}
	if err := hashes.flush(ctx); err != nil {
		return 0, nil, err
	}
	return len(rows), tree, nil
}

// logInsert writes rows many to a statement: one INSERT per row would
// spend most of the sequencer's time in SQLite's statement overhead.
type logInsert struct {
	tx   *Tx
	into string
	cols int
	args []any
}

const logInsertRows = 100

func newLogInsert(tx *Tx, into string, cols int) *logInsert {
	return &logInsert{tx: tx, into: into, cols: cols}
}

func (b *logInsert) add(ctx context.Context, vals ...any) error {
	b.args = append(b.args, vals...)
	if len(b.args) >= logInsertRows*b.cols {
		return b.flush(ctx)
	}
	return nil
}

func (b *logInsert) flush(ctx context.Context) error {
	n := len(b.args) / b.cols
	if n == 0 {
		return nil
	}
	row := "(" + strings.TrimSuffix(strings.Repeat("?,", b.cols), ",") + ")"
	if _, err := b.tx.exec(ctx, "INSERT INTO "+b.into+" VALUES "+strings.TrimSuffix(strings.Repeat(row+",", n), ","), b.args...); err != nil {
		return fmt.Errorf("append to %s: %w", b.into, err)
	}
	b.args = b.args[:0]
	return nil
}

func logSize(ctx context.Context, q querier) (int64, error) {
	var n int64
	err := q.QueryRowContext(ctx, `SELECT COALESCE(MAX(idx) + 1, 0) FROM log_leaves`).Scan(&n)
	return n, err
}

// lastLogged is the largest id of kind in the log (0: none).
func lastLogged(ctx context.Context, q querier, kind string) (int64, error) {
	var id int64
	err := q.QueryRowContext(ctx, `SELECT COALESCE(MAX(ref_id), 0) FROM log_leaves WHERE kind = ?`, kind).Scan(&id)
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
	for _, part := range chunks(slices.Clone(idx), 500) {
		marks, args := inList(part)
		rows, err := q.QueryContext(ctx, `SELECT idx, hash FROM log_hashes WHERE idx IN (`+marks+`)`, args...)
		if err != nil {
			return nil, err
		}
		for rows.Next() {
			var i int64
			var b []byte
			if err := rows.Scan(&i, &b); err != nil {
				rows.Close()
				return nil, err
			}
			var h doorledger.LogHash
			copy(h[:], b)
			found[i] = h
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, err
		}
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
	rows, err := q.QueryContext(ctx, `SELECT size, root, note, at FROM log_heads `+tail, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []doorledger.LogHead
	for rows.Next() {
		var h doorledger.LogHead
		var root []byte
		var at string
		if err := rows.Scan(&h.Size, &root, &h.Note, &at); err != nil {
			return nil, err
		}
		copy(h.Root[:], root)
		h.At = parseTime(at)
		out = append(out, h)
	}
	return out, rows.Err()
}
