package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/doorledger/doorledger"
	"github.com/doorledger/doorledger/internal/logrows"
)

// redactChunk bounds the events one redaction names (and one transaction changes).
const redactChunk = 1000

// RedactUnlocks empties the identifiable fields of the unlock events of
// buildings under the privacy profile whose effective time is older than
// doorledger.RedactAfter at now (the system's job; admins may run it too),
// in chunks, each under one journal entry that records what it removed, so
// the log still verifies. now is capped at the real time: the database
// judges age by its own clock.
func (s *PrivacyService) RedactUnlocks(ctx context.Context, now time.Time) (int64, error) {
	if err := callerFrom(ctx).requireAdmin(); err != nil {
		return 0, err
	}
	if real := time.Now(); now.After(real) {
		now = real
	}
	buildings, err := queryAll(ctx, s.db.pool, scanID, `SELECT id FROM buildings WHERE privacy_profile = $1 ORDER BY id`, doorledger.PrivacyProfileTDPA)
	if err != nil {
		return 0, err
	}
	cutoff := now.Add(-doorledger.RedactAfter).UTC().Truncate(time.Microsecond)
	var total int64
	for _, b := range buildings {
		for {
			n, more, err := s.redactChunk(ctx, b, cutoff)
			total += n
			if err != nil {
				return total, fmt.Errorf("redact unlock events of building %d: %w", b, err)
			}
			if !more {
				break
			}
		}
	}
	return total, nil
}

// redactChunk redacts up to redactChunk of a building's events older than
// cutoff, under one journal entry. Only events already in the log, whose
// row still encodes to their leaf, are redacted: a redaction never hides a
// change verify would name. The rows are held (FOR UPDATE) so that two
// instances do not redact one event twice: the second skips it.
func (s *PrivacyService) redactChunk(ctx context.Context, buildingID int64, cutoff time.Time) (n int64, more bool, err error) {
	tx, err := s.db.BeginTx(ctx)
	if err != nil {
		return 0, false, err
	}
	defer tx.Rollback()
	rows, err := loadLogRowsArgs(ctx, tx, `SELECT `+logUnlockColumns+`, l.hash FROM unlock_events u
		JOIN log_leaves l ON l.kind = 'unlock' AND l.ref_id = u.id
		WHERE u.building_id = $1 AND u.actor_ref <> '' AND u.redaction_id IS NULL AND u.effective_at < $2
		ORDER BY u.id LIMIT $3 FOR UPDATE OF u`, []any{buildingID, cutoff, redactChunk}, logrows.RedactLeaves)
	if err != nil {
		return 0, false, err
	}
	more = len(rows) == redactChunk
	var red logrows.Redactions
	for _, r := range rows {
		if r.err == nil { // verify names the others
			red.Add(r.id, r.enc)
		}
	}
	if len(red.Leaves) == 0 {
		return 0, false, nil
	}
	detail, err := red.Detail(cutoff.Format(logTimeLayout))
	if err != nil {
		return 0, false, err
	}
	sysctx := doorledger.NewSystemContext(ctx, "system")
	if err := tx.audit(sysctx, "unlock.redact", buildingID, "building", buildingID, detail); err != nil {
		return 0, false, err
	}
	var entry int64 // the journal entry just written (its id came from its sequence in this session)
	if err := tx.QueryRow(ctx, `SELECT currval('audit_entries_id_seq')`).Scan(&entry); err != nil {
		return 0, false, err
	}
	for _, x := range red.Leaves {
		if _, err := tx.Exec(ctx, `INSERT INTO unlock_redactions (unlock_id, redaction_id, leaf, redacted) VALUES ($1, $2, $3, $4)`,
			x.UnlockID, entry, x.Logged[:], x.Redacted[:]); err != nil {
			return 0, false, err
		}
		if _, err := tx.Exec(ctx, `UPDATE unlock_events SET actor_ref = '', redaction_id = $1, redacted_at = $2 WHERE id = $3`,
			entry, tx.now, x.UnlockID); err != nil {
			return 0, false, fmt.Errorf("redact unlock #%d: %w", x.UnlockID, err)
		}
	}
	return int64(len(red.Leaves)), more, tx.Commit(ctx)
}
