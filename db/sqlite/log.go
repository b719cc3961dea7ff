package sqlite

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
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
	if c.role() == doorledger.RoleInstaller {
		return doorledger.Errorf(doorledger.EFORBIDDEN, "Installers do not see the audit log.")
	}
	return nil
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
	due := size > headSize && (headAt == "" || s.db.Now().Sub(parseTime(headAt)) >= s.HeadEvery)
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
	if caughtUp && grown && (force || head == nil || tx.now.Sub(head.At) >= s.HeadEvery) {
		if head, err = s.signHead(ctx, tx, tree); err != nil {
			return 0, nil, err
		}
	}
	return n, head, tx.Commit()
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

// Rows are read column by column as SQLite holds them, strictly: a value of
// the wrong type or a time not in the stored form makes the row unencodable,
// which verify reports as changed rather than failing.

const (
	logAuditColumns  = `id, at, actor_id, actor, action, building_id, object_type, object_id, ip, detail`
	logUnlockColumns = `id, building_id, COALESCE(device_id, 0), device_ref, event_id, occurred_at, received_at, method, actor_ref, result, anomalies, source`
	logPurgeColumns  = `id, at, actor, of_kind, building_id, cutoff, ids, leaves_hash`
)

func loadAuditRows(ctx context.Context, q querier, after, upto int64, limit int) ([]logRow, error) {
	return loadLogRows(ctx, q, `SELECT `+logAuditColumns+` FROM audit_entries WHERE id > ?1 AND id <= ?2 ORDER BY id LIMIT ?3`,
		after, upto, limit, func(c *logColumns) ([]byte, error) {
			a := doorledger.AuditEntry{ID: c.int(0), At: c.time(1), ActorID: c.int(2), Actor: c.text(3), Action: c.text(4),
				BuildingID: c.int(5), ObjectType: c.text(6), ObjectID: c.int(7), IP: c.text(8), Detail: c.text(9)}
			if c.err != nil {
				return nil, c.err
			}
			return auditlog.EncodeAudit(&a)
		})
}

func loadUnlockRows(ctx context.Context, q querier, after, upto int64, limit int) ([]logRow, error) {
	return loadLogRows(ctx, q, `SELECT `+logUnlockColumns+`, COALESCE(u.redaction_id, 0), r.leaf, r.redacted
		FROM unlock_events u LEFT JOIN unlock_redactions r ON r.unlock_id = u.id WHERE u.id > ?1 AND u.id <= ?2 ORDER BY u.id LIMIT ?3`,
		after, upto, limit, encodeUnlockColumns)
}

// unlockFromColumns reads an event from logUnlockColumns.
func unlockFromColumns(c *logColumns) (*doorledger.UnlockEvent, error) {
	u := doorledger.UnlockEvent{ID: c.int(0), BuildingID: c.int(1), DeviceID: c.int(2), DeviceRef: c.text(3), EventID: c.text(4),
		OccurredAt: c.time(5), ReceivedAt: c.time(6), Method: c.text(7), ActorRef: c.text(8),
		Result: doorledger.UnlockResult(c.text(9)), Source: c.text(11)}
	bits := c.int(10)
	if c.err != nil {
		return nil, c.err
	}
	if bits < 0 || bits > 63 {
		return nil, fmt.Errorf("anomalies: unknown flags %d", bits)
	}
	u.Anomalies = anomalyKinds(bits)
	return &u, nil
}

// encodeUnlockColumns encodes an event read as loadUnlockRows reads it,
// with what a redaction recorded of it.
func encodeUnlockColumns(c *logColumns) ([]byte, error) {
	if by := c.int(12); by != 0 && c.err == nil {
		x := &auditlog.LeafRedaction{By: by}
		l, ok1 := c.vals[13].([]byte)
		r, ok2 := c.vals[14].([]byte)
		if x.Recorded = ok1 && ok2 && len(l) == 32 && len(r) == 32; x.Recorded {
			copy(x.Logged[:], l)
			copy(x.Redacted[:], r)
		}
		c.red = x
	}
	u, err := unlockFromColumns(c)
	if err != nil {
		return nil, err
	}
	return auditlog.EncodeUnlock(u)
}

func loadPurgeRows(ctx context.Context, q querier, after, upto int64, limit int) ([]logRow, error) {
	return loadLogRows(ctx, q, `SELECT `+logPurgeColumns+` FROM log_purges WHERE id > ?1 AND id <= ?2 ORDER BY id LIMIT ?3`,
		after, upto, limit, func(c *logColumns) ([]byte, error) {
			p, err := c.purge()
			if err != nil {
				return nil, err
			}
			return auditlog.EncodePurge(p)
		})
}

func loadLogRows(ctx context.Context, q querier, query string, after, upto int64, limit int, encode func(*logColumns) ([]byte, error)) ([]logRow, error) {
	return loadLogRowsArgs(ctx, q, query, []any{after, upto, limit}, encode)
}

// loadLogRowsArgs is loadLogRows for a query of any arguments.
func loadLogRowsArgs(ctx context.Context, q querier, query string, args []any, encode func(*logColumns) ([]byte, error)) ([]logRow, error) {
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	names, err := rows.Columns()
	if err != nil {
		return nil, err
	}
	c := &logColumns{names: names, vals: make([]any, len(names))}
	ptrs := make([]any, len(names))
	for i := range ptrs {
		ptrs[i] = &c.vals[i]
	}
	var out []logRow
	for rows.Next() {
		if err := rows.Scan(ptrs...); err != nil {
			return nil, err
		}
		c.err = nil
		id, ok := c.vals[0].(int64)
		if !ok {
			return nil, fmt.Errorf("row id %v is not an integer", c.vals[0])
		}
		c.red = nil
		enc, err := encode(c)
		out = append(out, logRow{id: id, enc: enc, err: err, red: c.red})
	}
	return out, rows.Err()
}

type logColumns struct {
	names []string
	vals  []any
	err   error
	red   *auditlog.LeafRedaction // set by encodeUnlockColumns
}

func (c *logColumns) fail(i int, want string) {
	if c.err == nil {
		c.err = fmt.Errorf("%s: %T is not %s", c.names[i], c.vals[i], want)
	}
}

func (c *logColumns) int(i int) int64 {
	v, ok := c.vals[i].(int64)
	if !ok {
		c.fail(i, "an integer")
	}
	return v
}

func (c *logColumns) text(i int) string {
	v, ok := c.vals[i].(string)
	if !ok {
		c.fail(i, "text")
	}
	return v
}

func (c *logColumns) time(i int) time.Time {
	s := c.text(i)
	if s == "" {
		return time.Time{}
	}
	t, err := time.Parse(timeLayout, s)
	if err != nil || t.Format(timeLayout) != s {
		if c.err == nil {
			c.err = fmt.Errorf("%s: %q is not a stored time", c.names[i], s)
		}
		return time.Time{}
	}
	return t
}

func (c *logColumns) purge() (*doorledger.LogPurge, error) {
	p := &doorledger.LogPurge{ID: c.int(0), At: c.time(1), Actor: c.text(2), Of: c.text(3), BuildingID: c.int(4), Before: c.time(5)}
	ids := c.text(6)
	hash, ok := c.vals[7].([]byte)
	if !ok || len(hash) != len(p.LeavesHash) {
		c.fail(7, "a hash")
	}
	if c.err != nil {
		return nil, c.err
	}
	copy(p.LeavesHash[:], hash)
	var err error
	if p.IDs, err = auditlog.ParseIDRanges(ids); err != nil {
		return nil, fmt.Errorf("ids: %w", err)
	}
	return p, nil
}

// LogUnlockPurge records in the log that the retention purge deletes the
// unlock events ids of a building, those older than before. Call it in the
// purge's transaction, BEFORE the DELETE, with exactly the ids the DELETE
// removes. It first logs any of them not yet logged (with everything committed
// before them), then writes a purge record naming the ids and the hash of
// their leaves, and logs that record too: the rows' leaves stay in the log,
// and Verify accepts these rows, and only these, being gone. No ids: nothing.
func (tx *Tx) LogUnlockPurge(ctx context.Context, buildingID int64, before time.Time, ids []int64) (*doorledger.LogPurge, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	ranges := auditlog.IDRanges(ids)
	unique := slices.Compact(slices.Sorted(slices.Values(ids)))
	if err := tx.logUntil(ctx, doorledger.LogKindUnlock, unique[len(unique)-1]); err != nil {
		return nil, err
	}

	type leaf struct {
		idx  int64
		hash doorledger.LogHash
	}
	found := map[int64]leaf{}
	for _, part := range chunks(slices.Clone(unique), 500) {
		marks, args := inList(part)
		rows, err := tx.QueryContext(ctx, `SELECT idx, ref_id, hash FROM log_leaves WHERE kind = 'unlock' AND ref_id IN (`+marks+`)`, args...)
		if err != nil {
			return nil, err
		}
		for rows.Next() {
			var l leaf
			var ref int64
			var h []byte
			if err := rows.Scan(&l.idx, &ref, &h); err != nil {
				rows.Close()
				return nil, err
			}
			copy(l.hash[:], h)
			found[ref] = l
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, err
		}
	}
	leaves := make([]leaf, 0, len(unique))
	for _, id := range unique {
		l, ok := found[id]
		if !ok {
			return nil, fmt.Errorf("log purge: unlock event %d is not in the log; it cannot be purged", id)
		}
		leaves = append(leaves, l)
	}
	slices.SortFunc(leaves, func(a, b leaf) int { return cmp.Compare(a.idx, b.idx) })
	var sum auditlog.PurgeHasher
	for _, l := range leaves {
		sum.Add(l.idx, l.hash)
	}

	p := &doorledger.LogPurge{At: tx.now, Actor: callerFrom(ctx).label(), Of: doorledger.LogKindUnlock, BuildingID: buildingID,
		Before: before.UTC().Truncate(time.Microsecond), IDs: ranges, LeavesHash: sum.Sum()}
	text, err := auditlog.FormatIDRanges(ranges)
	if err != nil {
		return nil, fmt.Errorf("log purge: %w", err)
	}
	res, err := tx.ExecContext(ctx, `INSERT INTO log_purges (at, actor, of_kind, building_id, cutoff, ids, leaves_hash) VALUES (?, ?, ?, ?, ?, ?, ?)`,
		formatTime(p.At), p.Actor, p.Of, p.BuildingID, formatTime(p.Before), text, p.LeavesHash[:])
	if err != nil {
		return nil, fmt.Errorf("log purge: %w", err)
	}
	if p.ID, err = res.LastInsertId(); err != nil {
		return nil, err
	}
	if _, err := auditlog.EncodePurge(p); err != nil {
		return nil, fmt.Errorf("log purge: %w", err)
	}
	if err := tx.logUntil(ctx, doorledger.LogKindPurge, p.ID); err != nil {
		return nil, err
	}
	return p, nil
}

// logUntil appends to the log, in tx, until the row id of kind is in it.
func (tx *Tx) logUntil(ctx context.Context, kind string, id int64) error {
	for {
		last, err := lastLogged(ctx, tx, kind)
		if err != nil || last >= id {
			return err
		}
		n, _, err := tx.appendLog(ctx, logBatch)
		if err != nil {
			return err
		} else if n == 0 {
			return fmt.Errorf("log: %s #%d is not committed", kind, id)
		}
	}
}

// Head returns the signed head of size entries, or the latest for 0.
func (s *LogService) Head(ctx context.Context, size int64) (*doorledger.LogHead, error) {
	if err := requireLogReader(callerFrom(ctx)); err != nil {
		return nil, err
	}
	var heads []doorledger.LogHead
	var err error
	if size == 0 {
		heads, err = loadLogHeads(ctx, s.db.read, `ORDER BY size DESC LIMIT 1`)
	} else {
		heads, err = loadLogHeads(ctx, s.db.read, `WHERE size = ?`, size)
	}
	if err != nil {
		return nil, err
	} else if len(heads) == 0 {
		return nil, doorledger.Errorf(doorledger.ENOTFOUND, "No signed head of the audit log of that size.")
	}
	return &heads[0], nil
}

// EntryIndex returns a row's position in the log (admins and the system).
func (s *LogService) EntryIndex(ctx context.Context, kind string, refID int64) (int64, error) {
	if err := callerFrom(ctx).requireAdmin(); err != nil {
		return 0, err
	}
	var idx int64
	err := s.db.read.QueryRowContext(ctx, `SELECT idx FROM log_leaves WHERE kind = ? AND ref_id = ?`, kind, refID).Scan(&idx)
	if err != nil {
		return 0, notFound(err, fmt.Sprintf("%s #%d is not in the audit log (yet).", kind, refID))
	}
	return idx, nil
}

func (s *LogService) hashReader(ctx context.Context) auditlog.HashReader {
	return func(idx []int64) ([]doorledger.LogHash, error) { return readLogHashes(ctx, s.db.read, idx) }
}

// ProveInclusion proves entry index is in the tree of size entries (0: the latest head's).
func (s *LogService) ProveInclusion(ctx context.Context, index, size int64) (*doorledger.LogInclusionProof, error) {
	if err := requireLogReader(callerFrom(ctx)); err != nil {
		return nil, err
	}
	if size == 0 {
		h, err := s.Head(ctx, 0)
		if err != nil {
			return nil, err
		}
		size = h.Size
	}
	n, err := logSize(ctx, s.db.read)
	if err != nil {
		return nil, err
	}
	if index < 0 || index >= size || size > n {
		return nil, doorledger.Errorf(doorledger.EINVALID, "Entry %d is not in a log of %d entries (the log has %d).", index, size, n)
	}
	return auditlog.ProveInclusion(index, size, s.hashReader(ctx))
}

// ProveConsistency proves the tree of newSize entries extends that of oldSize.
func (s *LogService) ProveConsistency(ctx context.Context, oldSize, newSize int64) (*doorledger.LogConsistencyProof, error) {
	if err := requireLogReader(callerFrom(ctx)); err != nil {
		return nil, err
	}
	n, err := logSize(ctx, s.db.read)
	if err != nil {
		return nil, err
	}
	if oldSize < 1 || oldSize > newSize || newSize > n {
		return nil, doorledger.Errorf(doorledger.EINVALID, "Cannot prove a log of %d entries extends one of %d (the log has %d).", newSize, oldSize, n)
	}
	return auditlog.ProveConsistency(oldSize, newSize, s.hashReader(ctx))
}

// LogLeaves returns where rows of kind are in the log, in the order of ids
// (those not in it left out): the evidence bundle's entries.
func (s *LogService) LogLeaves(ctx context.Context, kind string, ids []int64) ([]doorledger.LogLeaf, error) {
	if err := requireLogReader(callerFrom(ctx)); err != nil {
		return nil, err
	}
	found := make(map[int64]doorledger.LogLeaf, len(ids))
	for _, part := range chunks(slices.Clone(ids), 500) {
		marks, args := inList(part)
		rows, err := s.db.read.QueryContext(ctx, `SELECT ref_id, idx, hash FROM log_leaves WHERE kind = ? AND ref_id IN (`+marks+`)`,
			append([]any{kind}, args...)...)
		if err != nil {
			return nil, err
		}
		for rows.Next() {
			l := doorledger.LogLeaf{Kind: kind}
			var h []byte
			if err := rows.Scan(&l.RefID, &l.Index, &h); err != nil {
				rows.Close()
				return nil, err
			}
			copy(l.Hash[:], h)
			found[l.RefID] = l
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, err
		}
	}
	out := make([]doorledger.LogLeaf, 0, len(found))
	for _, id := range ids {
		if l, ok := found[id]; ok {
			out = append(out, l)
		}
	}
	return out, nil
}

// ProveInclusions proves the entries at indexes are in the tree of size entries, at once.
func (s *LogService) ProveInclusions(ctx context.Context, indexes []int64, size int64) (*doorledger.LogMultiProof, error) {
	if err := requireLogReader(callerFrom(ctx)); err != nil {
		return nil, err
	}
	n, err := logSize(ctx, s.db.read)
	if err != nil {
		return nil, err
	}
	if size < 0 || size > n {
		return nil, doorledger.Errorf(doorledger.EINVALID, "Cannot prove entries in a log of %d entries (the log has %d).", size, n)
	}
	for i, x := range indexes {
		if x < 0 || x >= size || (i > 0 && x <= indexes[i-1]) {
			return nil, doorledger.Errorf(doorledger.EINVALID, "Entry %d is not in a log of %d entries, or the entries are not ascending.", x, size)
		}
	}
	return auditlog.ProveInclusions(indexes, size, s.hashReader(ctx))
}

// Verify recomputes the whole log from the rows, in one read transaction (a
// consistent snapshot while the portal goes on writing), and reports the first
// entry that does not match, and the first signed head that does not. Admins
// and the system; a person's verification is itself audited.
func (s *LogService) Verify(ctx context.Context) (*doorledger.LogVerification, error) {
	c := callerFrom(ctx)
	if err := c.requireAdmin(); err != nil {
		return nil, err
	}
	v, err := s.verify(ctx)
	if err != nil {
		return nil, fmt.Errorf("verify the log: %w", err)
	}
	if c.user != nil {
		tx, err := s.db.BeginTx(ctx)
		if err != nil {
			return nil, err
		}
		defer tx.Rollback()
		detail := map[string]any{"ok": v.OK(), "entries": v.Entries}
		if v.Problem != nil {
			detail["problem"] = v.Problem.String()
		}
		if err := tx.audit(ctx, "log.verify", 0, "log", 0, detail); err != nil {
			return nil, err
		}
		if err := tx.Commit(); err != nil {
			return nil, err
		}
	}
	return v, nil
}

func (s *LogService) verify(ctx context.Context) (*doorledger.LogVerification, error) {
	rtx, err := s.db.read.BeginTx(ctx, nil)
	if err != nil {
		return nil, err
	}
	defer rtx.Rollback()
	v := &doorledger.LogVerification{VerifierKey: s.verifierKey}
	if v.Entries, err = logSize(ctx, rtx); err != nil {
		return nil, err
	}
	heads, err := loadLogHeads(ctx, rtx, `ORDER BY size`)
	if err != nil {
		return nil, err
	}
	if len(heads) > 0 {
		v.Head = &heads[len(heads)-1]
	}
	purges, err := loadPurgeLeaves(ctx, rtx)
	if err != nil {
		return nil, err
	}
	chk := auditlog.NewChecker(s.verifier, heads, purges)
	redactions, err := loadRedactionLeaves(ctx, rtx)
	if err != nil {
		return nil, err
	}
	chk.AddRedactions(redactions)
	last := map[string]int64{}
	for next := int64(0); ; {
		stored, err := loadStoredLeaves(ctx, rtx, next)
		if err != nil {
			return nil, err
		}
		if len(stored) == 0 {
			break
		}
		batch, err := logLeafBatch(ctx, rtx, stored, last)
		if err != nil {
			return nil, err
		}
		if v.Problem = chk.Check(batch); v.Problem != nil {
			break
		}
		next = stored[len(stored)-1].idx + 1
	}
	if v.Problem == nil {
		v.Problem = chk.Finish()
	}
	v.Purged, v.Redacted, v.Heads = chk.Purged(), chk.Redacted(), chk.Heads()
	if err := checkUnsequenced(ctx, rtx, v); err != nil {
		return nil, err
	}
	return v, nil
}

// maxOverdue bounds the unsequenced rows a verification names.
const maxOverdue = 10

// checkUnsequenced counts the rows committed but not in the log. Judged by
// the rows' own times, not the clock's (a copy verified days later says the
// same): those within LogMergeDelay of the database's newest row are
// Pending, the sequencer's ordinary delay (or a crash's: the next start
// sequences them); older ones are Overdue, and a problem when the log is
// otherwise intact.
func checkUnsequenced(ctx context.Context, q querier, v *doorledger.LogVerification) error {
	var newest string
	for _, src := range logSources {
		var t sql.NullString
		if err := q.QueryRowContext(ctx, `SELECT MAX(`+src.at+`) FROM `+src.table).Scan(&t); err != nil {
			return err
		}
		newest = max(newest, t.String)
	}
	if newest == "" {
		return nil
	}
	v.Newest = parseTime(newest)
	cutoff := formatTime(v.Newest.Add(-doorledger.LogMergeDelay))
	var overdue int64
	for _, src := range logSources {
		after, err := lastLogged(ctx, q, src.kind)
		if err != nil {
			return err
		}
		var n, late int64
		if err := q.QueryRowContext(ctx, `SELECT COUNT(*), COALESCE(SUM(`+src.at+` < ?), 0) FROM `+src.table+` WHERE id > ?`,
			cutoff, after).Scan(&n, &late); err != nil {
			return err
		}
		v.Pending += n - late
		overdue += late
		if late == 0 {
			continue
		}
		rows, err := q.QueryContext(ctx, `SELECT id, `+src.at+` FROM `+src.table+` WHERE id > ? AND `+src.at+` < ? ORDER BY id LIMIT ?`,
			after, cutoff, maxOverdue)
		if err != nil {
			return err
		}
		for rows.Next() {
			r := doorledger.LogRowRef{Kind: src.kind}
			var at string
			if err := rows.Scan(&r.ID, &at); err != nil {
				rows.Close()
				return err
			}
			r.At = parseTime(at)
			v.Overdue = append(v.Overdue, r)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
	}
	if overdue == 0 {
		return nil
	}
	slices.SortStableFunc(v.Overdue, func(a, b doorledger.LogRowRef) int { return a.At.Compare(b.At) })
	v.Overdue = v.Overdue[:min(len(v.Overdue), maxOverdue)]
	names := make([]string, len(v.Overdue))
	for i, r := range v.Overdue {
		names[i] = fmt.Sprintf("%s (%s)", r, formatTime(r.At))
	}
	list := strings.Join(names, ", ")
	if overdue > int64(len(names)) {
		list += fmt.Sprintf(" and %d more", overdue-int64(len(names)))
	}
	if v.Problem == nil {
		first := v.Overdue[0]
		v.Problem = &doorledger.LogProblem{What: doorledger.LogUnsequenced, Index: v.Entries, Kind: first.Kind, RefID: first.ID,
			Detail: fmt.Sprintf("%d rows committed more than %s before the database's newest row (%s) are not in the log: %s",
				overdue, doorledger.LogMergeDelay, newest, list)}
	}
	return nil
}

// storedLogLeaf is a row of log_leaves.
type storedLogLeaf struct {
	idx  int64
	kind string
	ref  int64
	enc  int64
	hash doorledger.LogHash
}

func loadStoredLeaves(ctx context.Context, q querier, from int64) ([]storedLogLeaf, error) {
	rows, err := q.QueryContext(ctx, `SELECT idx, kind, ref_id, enc, hash FROM log_leaves WHERE idx >= ? ORDER BY idx LIMIT ?`, from, verifyBatch)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []storedLogLeaf
	for rows.Next() {
		var l storedLogLeaf
		var h []byte
		if err := rows.Scan(&l.idx, &l.kind, &l.ref, &l.enc, &h); err != nil {
			return nil, err
		}
		copy(l.hash[:], h)
		out = append(out, l)
	}
	return out, rows.Err()
}

// logLeafBatch joins stored leaves with their rows as they are now and their
// stored tree hashes. last holds, by kind, the largest id of the leaves
// before; the rows in between are read by id range, so that a row slipped in
// among logged ones is seen.
func logLeafBatch(ctx context.Context, q querier, stored []storedLogLeaf, last map[string]int64) ([]auditlog.Leaf, error) {
	upto := map[string]int64{}
	for _, l := range stored {
		upto[l.kind] = max(upto[l.kind], l.ref)
	}
	rows := map[string][]logRow{}
	for _, src := range logSources {
		if upto[src.kind] <= last[src.kind] {
			continue
		}
		list, err := src.load(ctx, q, last[src.kind], upto[src.kind], -1)
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", src.table, err)
		}
		rows[src.kind] = list
	}
	lo := auditlog.StoredHashIndex(0, stored[0].idx)
	hi := auditlog.StoredHashCount(stored[len(stored)-1].idx + 1)
	tree := map[int64]doorledger.LogHash{}
	hrows, err := q.QueryContext(ctx, `SELECT idx, hash FROM log_hashes WHERE idx >= ? AND idx < ?`, lo, hi)
	if err != nil {
		return nil, err
	}
	for hrows.Next() {
		var i int64
		var b []byte
		if err := hrows.Scan(&i, &b); err != nil {
			hrows.Close()
			return nil, err
		}
		var h doorledger.LogHash
		copy(h[:], b)
		tree[i] = h
	}
	hrows.Close()
	if err := hrows.Err(); err != nil {
		return nil, err
	}

	pos := map[string]int{}
	batch := make([]auditlog.Leaf, len(stored))
	for i, s := range stored {
		l := auditlog.Leaf{Index: s.idx, Kind: s.kind, RefID: s.ref, Hash: s.hash}
		for x := auditlog.StoredHashIndex(0, s.idx); x < auditlog.StoredHashCount(s.idx+1); x++ {
			l.Tree = append(l.Tree, tree[x])
		}
		list, p := rows[s.kind], pos[s.kind]
		for ; p < len(list) && list[p].id < s.ref; p++ {
			if list[p].id > last[s.kind] {
				l.Unlogged = append(l.Unlogged, list[p].id)
			}
		}
		if p < len(list) && list[p].id == s.ref {
			l.Row, l.RowErr, l.Redaction = list[p].enc, list[p].err, list[p].red
			if s.enc != auditlog.Version {
				l.Row, l.RowErr = nil, fmt.Errorf("unknown encoding version %d", s.enc)
			}
			p++
		}
		pos[s.kind] = p
		last[s.kind] = max(last[s.kind], s.ref)
		batch[i] = l
	}
	return batch, nil
}

// loadPurgeLeaves reads every logged purge record with its leaf, for the
// checker to know up front which missing rows are accounted for.
func loadPurgeLeaves(ctx context.Context, q querier) ([]auditlog.PurgeLeaf, error) {
	rows, err := q.QueryContext(ctx, `SELECT idx, ref_id, hash FROM log_leaves WHERE kind = 'purge' ORDER BY idx`)
	if err != nil {
		return nil, err
	}
	var leaves []auditlog.PurgeLeaf
	var refs []int64
	for rows.Next() {
		var l auditlog.PurgeLeaf
		var ref int64
		var h []byte
		if err := rows.Scan(&l.Index, &ref, &h); err != nil {
			rows.Close()
			return nil, err
		}
		copy(l.Hash[:], h)
		leaves = append(leaves, l)
		refs = append(refs, ref)
	}
	rows.Close()
	if err := rows.Err(); err != nil || len(leaves) == 0 {
		return nil, err
	}
	records, err := loadPurgeRows(ctx, q, 0, math.MaxInt64, -1)
	if err != nil {
		return nil, err
	}
	byID := map[int64][]byte{}
	for _, r := range records {
		if r.err == nil {
			byID[r.id] = r.enc
		}
	}
	idx := make([]int64, len(leaves))
	for i, l := range leaves {
		idx[i] = auditlog.StoredHashIndex(0, l.Index)
	}
	tree0, err := readLogHashesLenient(ctx, q, idx)
	if err != nil {
		return nil, err
	}
	for i := range leaves {
		leaves[i].Row, leaves[i].Tree0 = byID[refs[i]], tree0[i]
	}
	return leaves, nil
}

// readLogHashesLenient is readLogHashes with the zero hash for one not stored.
func readLogHashesLenient(ctx context.Context, q querier, idx []int64) ([]doorledger.LogHash, error) {
	out := make([]doorledger.LogHash, len(idx))
	for i, x := range idx {
		var b []byte
		err := q.QueryRowContext(ctx, `SELECT hash FROM log_hashes WHERE idx = ?`, x).Scan(&b)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return nil, err
		}
		copy(out[i][:], b)
	}
	return out, nil
}

// loadRedactionLeaves reads every logged redaction entry with its leaf and
// the digest of what the database recorded of the events it names, for the
// checker to know up front how to check redacted rows.
func loadRedactionLeaves(ctx context.Context, q querier) ([]auditlog.RedactionLeaf, error) {
	rows, err := q.QueryContext(ctx, `SELECT l.idx, l.ref_id, l.hash FROM log_leaves l JOIN audit_entries a ON a.id = l.ref_id
		WHERE l.kind = 'audit' AND a.action = ? ORDER BY l.idx`, doorledger.RedactAction)
	if err != nil {
		return nil, err
	}
	var leaves []auditlog.RedactionLeaf
	var refs []int64
	for rows.Next() {
		var l auditlog.RedactionLeaf
		var ref int64
		var h []byte
		if err := rows.Scan(&l.Index, &ref, &h); err != nil {
			rows.Close()
			return nil, err
		}
		copy(l.Hash[:], h)
		leaves = append(leaves, l)
		refs = append(refs, ref)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	idx := make([]int64, len(leaves))
	for i, l := range leaves {
		idx[i] = auditlog.StoredHashIndex(0, l.Index)
	}
	tree0, err := readLogHashesLenient(ctx, q, idx)
	if err != nil {
		return nil, err
	}
	// And those committed but not yet sequenced (the merge delay).
	last, err := lastLogged(ctx, q, doorledger.LogKindAudit)
	if err != nil {
		return nil, err
	}
	pending, err := queryAll(ctx, q, func(r interface{ Scan(...any) error }) (int64, error) {
		var id int64
		return id, r.Scan(&id)
	}, `SELECT id FROM audit_entries WHERE id > ? AND action = ? ORDER BY id`, last, doorledger.RedactAction)
	if err != nil {
		return nil, err
	}
	for _, id := range pending {
		leaves = append(leaves, auditlog.RedactionLeaf{Index: -1, Pending: true})
		refs = append(refs, id)
		tree0 = append(tree0, doorledger.LogHash{})
	}
	for i := range leaves {
		l := &leaves[i]
		l.Tree0 = tree0[i]
		entry, err := loadAuditRows(ctx, q, refs[i]-1, refs[i], 1)
		if err != nil {
			return nil, err
		}
		if len(entry) == 1 && entry[0].err == nil {
			l.Row = entry[0].enc
		}
		recs, err := redactedLeaves(ctx, q, refs[i])
		if err != nil {
			return nil, err
		}
		var h auditlog.RedactionHasher
		for _, r := range recs {
			h.Add(r.UnlockID, r.Logged, r.Redacted)
		}
		l.Count = h.Count()
		l.Recorded, l.Err = h.Sum()
	}
	return leaves, nil
}

// redactedLeaves reads what a redaction recorded of each event it names, by id.
func redactedLeaves(ctx context.Context, q querier, redactionID int64) ([]doorledger.RedactedLeaf, error) {
	rows, err := q.QueryContext(ctx, `SELECT unlock_id, leaf, redacted FROM unlock_redactions WHERE redaction_id = ? ORDER BY unlock_id`, redactionID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []doorledger.RedactedLeaf
	for rows.Next() {
		var r doorledger.RedactedLeaf
		var l, d []byte
		if err := rows.Scan(&r.UnlockID, &l, &d); err != nil {
			return nil, err
		}
		copy(r.Logged[:], l)
		copy(r.Redacted[:], d)
		out = append(out, r)
	}
	return out, rows.Err()
}
