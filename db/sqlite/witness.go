package sqlite

import (
	"context"
	"fmt"
	"time"

	"github.com/doorledger/doorledger"
	"github.com/doorledger/doorledger/internal/notice"
	"github.com/doorledger/doorledger/witness"
)

// WitnessService implements doorledger.WitnessService on SQLite (migration
// 095): the witnesses an admin configured, the policy, and the cosignatures
// and refusals they answered with, both append-only.
type WitnessService struct {
	db *DB
}

// NewWitnessService returns the witness service on db.
func NewWitnessService(db *DB) *WitnessService { return &WitnessService{db: db} }

var _ doorledger.WitnessService = (*WitnessService)(nil)

const witnessColumns = `w.id, w.name, w.url, w.vkey, w.added_at,
	COALESCE((SELECT MAX(c.size) FROM witness_cosignatures c WHERE c.witness_id = w.id), 0),
	COALESCE((SELECT c.received_at FROM witness_cosignatures c WHERE c.witness_id = w.id ORDER BY c.size DESC LIMIT 1), ''),
	COALESCE(s.known_size, -1), COALESCE(s.failures, 0), COALESCE(s.next_attempt_at, ''), COALESCE(s.last_error, '')`

func findWitnesses(ctx context.Context, q querier, where string, args ...any) ([]*doorledger.Witness, error) {
	rows, err := q.QueryContext(ctx, `SELECT `+witnessColumns+` FROM witnesses w
		LEFT JOIN witness_state s ON s.witness_id = w.id
		WHERE w.removed_at IS NULL`+where+` ORDER BY w.name COLLATE NOCASE, w.id`, args...)
	if err != nil {
		return nil, err
	}
	var list []*doorledger.Witness
	for rows.Next() {
		var w doorledger.Witness
		if err := rows.Scan(&w.ID, &w.Name, &w.URL, &w.VerifierKey, nullTime{&w.AddedAt}, &w.Cosigned, nullTime{&w.CosignedAt},
			&w.KnownSize, &w.Failures, nullTime{&w.NextAttempt}, &w.LastError); err != nil {
			rows.Close()
			return nil, err
		}
		list = append(list, &w)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	// The alarm: a security refusal after the witness's latest cosignature.
	for _, w := range list {
		refs, err := findRefusals(ctx, q, ` AND r.witness_id = ? AND r.security = 1 AND r.size > ?`, 1, w.ID, w.Cosigned)
		if err != nil {
			return nil, err
		}
		if len(refs) > 0 {
			w.Alarm = refs[0]
		}
	}
	return list, nil
}

func findRefusals(ctx context.Context, q querier, where string, limit int, args ...any) ([]*doorledger.WitnessRefusal, error) {
	rows, err := q.QueryContext(ctx, `SELECT r.id, r.witness_id, w.name, r.size, r.status, r.reason, r.security, r.at
		FROM witness_refusals r JOIN witnesses w ON w.id = r.witness_id WHERE 1 = 1`+where+` ORDER BY r.id DESC LIMIT ?`, append(args, limit)...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []*doorledger.WitnessRefusal
	for rows.Next() {
		var r doorledger.WitnessRefusal
		if err := rows.Scan(&r.ID, &r.WitnessID, &r.Witness, &r.Size, &r.Status, &r.Reason, &r.Security, nullTime{&r.At}); err != nil {
			return nil, err
		}
		out = append(out, &r)
	}
	return out, rows.Err()
}

// Witnesses lists the configured witnesses (admins).
func (s *WitnessService) Witnesses(ctx context.Context) ([]*doorledger.Witness, error) {
	if err := callerFrom(ctx).requireAdmin(); err != nil {
		return nil, err
	}
	return findWitnesses(ctx, s.db.read, "")
}

// WitnessRefusals returns the latest refusals (admins).
func (s *WitnessService) WitnessRefusals(ctx context.Context, limit int) ([]*doorledger.WitnessRefusal, error) {
	if err := callerFrom(ctx).requireAdmin(); err != nil {
		return nil, err
	}
	return findRefusals(ctx, s.db.read, "", limit)
}

// validWitness checks an admin's input, field by field.
func validWitness(ctx context.Context, q querier, in *doorledger.WitnessInput) error {
	v := witness.CheckInput(in)
	for _, c := range []struct{ field, column, value, msg string }{
		{"name", "name", in.Name, "A witness of that name is configured already."},
		{"vkey", "vkey", in.VerifierKey, "That witness is configured already."},
	} {
		if _, bad := v[c.field]; bad {
			continue
		}
		var n int
		if err := q.QueryRowContext(ctx, `SELECT COUNT(*) FROM witnesses WHERE removed_at IS NULL AND `+c.column+` = ?`, c.value).Scan(&n); err != nil {
			return err
		}
		if n > 0 {
			v.Add(c.field, c.msg)
		}
	}
	return v.Err()
}

// AddWitness configures a witness (admins), journaled.
func (s *WitnessService) AddWitness(ctx context.Context, in doorledger.WitnessInput) (*doorledger.Witness, error) {
	if err := callerFrom(ctx).requireAdmin(); err != nil {
		return nil, err
	}
	tx, err := s.db.BeginTx(ctx)
	if err != nil {
		return nil, err
	}
	defer tx.Rollback()
	if err := validWitness(ctx, tx, &in); err != nil {
		return nil, err
	}
	res, err := tx.ExecContext(ctx, `INSERT INTO witnesses (name, url, vkey, added_at) VALUES (?, ?, ?, ?)`,
		in.Name, in.URL, in.VerifierKey, formatTime(tx.now))
	if err != nil {
		return nil, fmt.Errorf("add witness: %w", err)
	}
	id, _ := res.LastInsertId()
	if _, err := tx.ExecContext(ctx, `INSERT INTO witness_state (witness_id) VALUES (?)`, id); err != nil {
		return nil, fmt.Errorf("add witness: %w", err)
	}
	if err := tx.audit(ctx, "witness.add", 0, "witness", id, map[string]any{"witness": in.Name, "url": in.URL, "key": in.VerifierKey}); err != nil {
		return nil, err
	}
	list, err := findWitnesses(ctx, tx, ` AND w.id = ?`, id)
	if err != nil {
		return nil, err
	}
	return list[0], tx.Commit()
}

// RemoveWitness stops submitting to a witness (admins), journaled.
func (s *WitnessService) RemoveWitness(ctx context.Context, id int64) error {
	if err := callerFrom(ctx).requireAdmin(); err != nil {
		return err
	}
	tx, err := s.db.BeginTx(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	var name string
	if err := tx.QueryRowContext(ctx, `SELECT name FROM witnesses WHERE id = ? AND removed_at IS NULL`, id).Scan(&name); err != nil {
		return notFound(err, "Witness not found.")
	}
	p, err := witnessPolicy(ctx, tx)
	if err != nil {
		return err
	}
	if p.K > p.N-1 {
		return doorledger.Errorf(doorledger.ECONFLICT, "The policy asks for %d of %d witnesses: lower it before removing one.", p.K, p.N)
	}
	if _, err := tx.ExecContext(ctx, `UPDATE witnesses SET removed_at = ? WHERE id = ?`, formatTime(tx.now), id); err != nil {
		return err
	}
	if err := tx.audit(ctx, "witness.remove", 0, "witness", id, map[string]any{"witness": name}); err != nil {
		return err
	}
	return tx.Commit()
}

func witnessPolicy(ctx context.Context, q querier) (doorledger.WitnessPolicy, error) {
	var p doorledger.WitnessPolicy
	err := q.QueryRowContext(ctx, `SELECT k, (SELECT COUNT(*) FROM witnesses WHERE removed_at IS NULL) FROM witness_policy WHERE id = 1`).Scan(&p.K, &p.N)
	return p, err
}

// SetWitnessPolicy sets k of n (admins), journaled.
func (s *WitnessService) SetWitnessPolicy(ctx context.Context, k int) error {
	if err := callerFrom(ctx).requireAdmin(); err != nil {
		return err
	}
	tx, err := s.db.BeginTx(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	p, err := witnessPolicy(ctx, tx)
	if err != nil {
		return err
	}
	if k < 0 || k > p.N {
		v := doorledger.Validation{}
		v.Add("k", fmt.Sprintf("Between 0 and %d, the witnesses configured.", p.N))
		return v.Err()
	}
	if _, err := tx.ExecContext(ctx, `UPDATE witness_policy SET k = ? WHERE id = 1`, k); err != nil {
		return err
	}
	if err := tx.audit(ctx, "witness.policy", 0, "", 0, map[string]any{"k": k, "n": p.N, "previous_k": p.K}); err != nil {
		return err
	}
	return tx.Commit()
}

// WitnessPolicy returns k of n (log readers).
func (s *WitnessService) WitnessPolicy(ctx context.Context) (doorledger.WitnessPolicy, error) {
	if err := requireLogReader(callerFrom(ctx)); err != nil {
		return doorledger.WitnessPolicy{}, err
	}
	return witnessPolicy(ctx, s.db.read)
}

// DueWitnesses returns the witnesses due an attempt (the system).
func (s *WitnessService) DueWitnesses(ctx context.Context) ([]*doorledger.Witness, error) {
	if err := callerFrom(ctx).requireAdmin(); err != nil {
		return nil, err
	}
	return findWitnesses(ctx, s.db.read, ` AND COALESCE(s.next_attempt_at, '') <= ?`, formatTime(s.db.now()))
}

// RecordCosignature keeps a cosignature (the system), checked by the caller.
func (s *WitnessService) RecordCosignature(ctx context.Context, witnessID, size int64, line string, signedAt time.Time) error {
	if err := callerFrom(ctx).requireAdmin(); err != nil {
		return err
	}
	tx, err := s.db.BeginTx(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	var n int
	if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM log_heads WHERE size = ?`, size).Scan(&n); err != nil {
		return err
	} else if n == 0 {
		return doorledger.Errorf(doorledger.ENOTFOUND, "No signed head of size %d.", size)
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO witness_cosignatures (witness_id, size, line, signed_at, received_at)
		VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`, witnessID, size, line, formatTime(signedAt), formatTime(tx.now)); err != nil {
		return fmt.Errorf("record cosignature: %w", err)
	}
	if _, err := tx.ExecContext(ctx, `UPDATE witness_state SET known_size = -1, failures = 0, next_attempt_at = '', last_error = '' WHERE witness_id = ?`, witnessID); err != nil {
		return err
	}
	return tx.Commit()
}

// RecordFailure notes a failed attempt and when to try again (the system).
func (s *WitnessService) RecordFailure(ctx context.Context, witnessID int64, reason string, knownSize int64) error {
	if err := callerFrom(ctx).requireAdmin(); err != nil {
		return err
	}
	tx, err := s.db.BeginTx(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if err := tx.witnessFailed(ctx, witnessID, reason, knownSize); err != nil {
		return err
	}
	return tx.Commit()
}

func (tx *Tx) witnessFailed(ctx context.Context, witnessID int64, reason string, knownSize int64) error {
	if knownSize >= 0 {
		// A 409: routine, retry at once from the size it named.
		_, err := tx.ExecContext(ctx, `UPDATE witness_state SET known_size = ?, next_attempt_at = '', last_error = ? WHERE witness_id = ?`,
			knownSize, reason, witnessID)
		return err
	}
	var failures int
	if err := tx.QueryRowContext(ctx, `SELECT failures FROM witness_state WHERE witness_id = ?`, witnessID).Scan(&failures); err != nil {
		return notFound(err, "Witness not found.")
	}
	failures++
	_, err := tx.ExecContext(ctx, `UPDATE witness_state SET failures = ?, next_attempt_at = ?, last_error = ? WHERE witness_id = ?`,
		failures, formatTime(tx.now.Add(witness.Backoff(failures))), reason, witnessID)
	return err
}

// RecordRefusal keeps a refusal, journals it, mails the admins and backs
// off (the system). The mail is sent once per witness and checkpoint.
func (s *WitnessService) RecordRefusal(ctx context.Context, r *doorledger.WitnessRefusal) error {
	if err := callerFrom(ctx).requireAdmin(); err != nil {
		return err
	}
	tx, err := s.db.BeginTx(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	var name string
	if err := tx.QueryRowContext(ctx, `SELECT name FROM witnesses WHERE id = ?`, r.WitnessID).Scan(&name); err != nil {
		return notFound(err, "Witness not found.")
	}
	// One refusal kept, journaled and mailed per witness and answer until
	// it cosigns again: a witness that goes on refusing each new head
	// (every minute while the log grows) does not mail the admins each time.
	var seen int
	if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM witness_refusals WHERE witness_id = ?1 AND status = ?2
		AND size > COALESCE((SELECT MAX(size) FROM witness_cosignatures WHERE witness_id = ?1), 0)`,
		r.WitnessID, r.Status).Scan(&seen); err != nil {
		return err
	}
	if seen == 0 {
		res, err := tx.ExecContext(ctx, `INSERT INTO witness_refusals (witness_id, size, status, reason, security, at) VALUES (?, ?, ?, ?, ?, ?)`,
			r.WitnessID, r.Size, r.Status, r.Reason, r.Security, formatTime(tx.now))
		if err != nil {
			return fmt.Errorf("record refusal: %w", err)
		}
		id, _ := res.LastInsertId()
		if err := tx.audit(ctx, "witness.refused", 0, "witness", r.WitnessID, map[string]any{
			"witness": name, "size": r.Size, "status": r.Status, "reason": r.Reason, "security": r.Security}); err != nil {
			return err
		}
		if err := tx.alertAdmins(ctx, name, r, fmt.Sprintf("witness-refused:%d", id)); err != nil {
			return err
		}
	}
	if err := tx.witnessFailed(ctx, r.WitnessID, r.Reason, -1); err != nil {
		return err
	}
	return tx.Commit()
}

// alertAdmins mails every admin about a witness's refusal.
func (tx *Tx) alertAdmins(ctx context.Context, name string, r *doorledger.WitnessRefusal, dedupKey string) error {
	subject, body := notice.WitnessRefusedAlert(name, r)
	return tx.alertEach(ctx, &doorledger.Message{Subject: subject, Body: body, Kind: "alert"}, dedupKey,
		`SELECT email FROM users WHERE role = 'admin' AND disabled = 0 ORDER BY id`)
}

// Cosignatures returns the configured witnesses' cosignatures of heads of
// fromSize entries and more (log readers).
func (s *WitnessService) Cosignatures(ctx context.Context, fromSize int64) ([]doorledger.Cosignature, error) {
	if err := requireLogReader(callerFrom(ctx)); err != nil {
		return nil, err
	}
	return findCosignatures(ctx, s.db.read, ` AND c.size >= ?`, fromSize)
}

func findCosignatures(ctx context.Context, q querier, where string, args ...any) ([]doorledger.Cosignature, error) {
	rows, err := q.QueryContext(ctx, `SELECT c.witness_id, w.name, w.vkey, c.size, c.line, c.signed_at, c.received_at
		FROM witness_cosignatures c JOIN witnesses w ON w.id = c.witness_id
		WHERE w.removed_at IS NULL`+where+` ORDER BY c.size, w.name COLLATE NOCASE, w.id`, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []doorledger.Cosignature
	for rows.Next() {
		var c doorledger.Cosignature
		if err := rows.Scan(&c.WitnessID, &c.Witness, &c.VerifierKey, &c.Size, &c.Line, nullTime{&c.SignedAt}, nullTime{&c.ReceivedAt}); err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, rows.Err()
}

// LatestWitnessed returns the largest head of at most maxSize entries (0:
// any) that K configured witnesses cosigned (log readers); with K = 0, the
// largest any witness cosigned.
func (s *WitnessService) LatestWitnessed(ctx context.Context, maxSize int64) (*doorledger.WitnessedHead, error) {
	if err := requireLogReader(callerFrom(ctx)); err != nil {
		return nil, err
	}
	return latestWitnessed(ctx, s.db.read, maxSize)
}

func latestWitnessed(ctx context.Context, q querier, maxSize int64) (*doorledger.WitnessedHead, error) {
	p, err := witnessPolicy(ctx, q)
	if err != nil {
		return nil, err
	}
	out := &doorledger.WitnessedHead{Policy: p}
	// A witness vouches for nothing in this log when its latest
	// cosignature no longer verifies over the head the portal holds of that
	// size (the log was rewritten and re-signed since), or when it refused
	// a later checkpoint as inconsistent or wrongly signed: what it saw is
	// not this log.
	rows, err := q.QueryContext(ctx, `SELECT w.name, w.vkey,
			COALESCE((SELECT c.line FROM witness_cosignatures c WHERE c.witness_id = w.id ORDER BY c.size DESC LIMIT 1), ''),
			COALESCE((SELECT h.note FROM witness_cosignatures c JOIN log_heads h ON h.size = c.size WHERE c.witness_id = w.id ORDER BY c.size DESC LIMIT 1), ''),
			EXISTS (SELECT 1 FROM witness_refusals r WHERE r.witness_id = w.id AND r.security = 1
				AND r.size > COALESCE((SELECT MAX(c.size) FROM witness_cosignatures c WHERE c.witness_id = w.id), 0))
		FROM witnesses w WHERE w.removed_at IS NULL ORDER BY w.name COLLATE NOCASE, w.id`)
	if err != nil {
		return nil, err
	}
	disowned := map[string]bool{} // by key
	for rows.Next() {
		var k doorledger.WitnessKey
		var line, note string
		var alarm bool
		if err := rows.Scan(&k.Name, &k.VerifierKey, &line, &note, &alarm); err != nil {
			rows.Close()
			return nil, err
		}
		out.Configured = append(out.Configured, k)
		if alarm {
			disowned[k.VerifierKey] = true
		} else if line != "" {
			v, err := witness.ParseVerifierKey(k.VerifierKey)
			if err != nil {
				disowned[k.VerifierKey] = true
			} else if _, err := witness.CheckCosignature(v, note, line); err != nil {
				disowned[k.VerifierKey] = true
			}
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	if maxSize <= 0 {
		maxSize = 1<<63 - 1
	}
	// The latest heads with enough cosignatures stored, each checked: a
	// cosignature that does not verify over the head as stored now (the
	// head was re-signed since: the log was rewritten) does not count.
	candidates, err := loadLogHeads(ctx, q, `h WHERE h.size <= ?1 AND ?2 <= (
			SELECT COUNT(*) FROM witness_cosignatures c JOIN witnesses w ON w.id = c.witness_id
			WHERE c.size = h.size AND w.removed_at IS NULL)
		ORDER BY h.size DESC LIMIT 16`, maxSize, max(p.K, 1))
	if err != nil {
		return nil, err
	}
	for i := range candidates {
		h := &candidates[i]
		cosigs, err := findCosignatures(ctx, q, ` AND c.size = ?`, h.Size)
		if err != nil {
			return nil, err
		}
		var valid []doorledger.Cosignature
		for _, c := range cosigs {
			if disowned[c.VerifierKey] {
				continue
			}
			if v, err := witness.ParseVerifierKey(c.VerifierKey); err == nil {
				if _, err := witness.CheckCosignature(v, h.Note, c.Line); err == nil {
					valid = append(valid, c)
				}
			}
		}
		if len(valid) >= max(p.K, 1) {
			out.Head, out.Cosignatures = h, valid
			return out, nil
		}
	}
	return out, nil
}

// witnessedFor is what a report records of the witnesses: the latest head
// of at most head's size that met the policy, and the proof that head
// extends it.
func witnessedFor(ctx context.Context, q querier, logs doorledger.LogService, head *doorledger.LogHead) (*doorledger.WitnessedHead, *doorledger.LogConsistencyProof, error) {
	w, err := latestWitnessed(ctx, q, head.Size)
	if err != nil || w.Head == nil || w.Head.Size == head.Size {
		return w, nil, err
	}
	proof, err := logs.ProveConsistency(ctx, w.Head.Size, head.Size)
	if err != nil {
		return nil, nil, fmt.Errorf("consistency of the witnessed head %d with %d: %w", w.Head.Size, head.Size, err)
	}
	return w, proof, nil
}
