package postgres

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/doorledger/doorledger"
	"github.com/doorledger/doorledger/auditlog"
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
		ORDER BY u.id LIMIT $3 FOR UPDATE OF u`, []any{buildingID, cutoff, redactChunk}, func(c *logColumns) ([]byte, error) {
		u, err := unlockFromColumns(c)
		if err != nil {
			return nil, err
		}
		logged, ok := c.vals[12].([]byte)
		if !ok || len(logged) != 32 {
			return nil, errors.New("no leaf")
		}
		enc, err := auditlog.EncodeUnlock(u)
		if err != nil {
			return nil, err
		}
		var leaf doorledger.LogHash
		copy(leaf[:], logged)
		if auditlog.LeafHash(enc) != leaf {
			return nil, errors.New("the row does not match its leaf")
		}
		red := auditlog.RedactUnlock(*u)
		renc, err := auditlog.EncodeUnlock(&red)
		if err != nil {
			return nil, err
		}
		r := auditlog.LeafHash(renc)
		return append(leaf[:], r[:]...), nil
	})
	if err != nil {
		return 0, false, err
	}
	more = len(rows) == redactChunk
	var h auditlog.RedactionHasher
	var ids []int64
	var recs []doorledger.RedactedLeaf
	for _, r := range rows {
		if r.err != nil {
			continue // verify names it
		}
		x := doorledger.RedactedLeaf{UnlockID: r.id}
		copy(x.Logged[:], r.enc[:32])
		copy(x.Redacted[:], r.enc[32:])
		h.Add(x.UnlockID, x.Logged, x.Redacted)
		ids = append(ids, r.id)
		recs = append(recs, x)
	}
	if len(ids) == 0 {
		return 0, false, nil
	}
	digest, err := h.Sum()
	if err != nil {
		return 0, false, err
	}
	ranges, err := auditlog.FormatIDRanges(auditlog.IDRanges(ids))
	if err != nil {
		return 0, false, err
	}
	sysctx := doorledger.NewSystemContext(ctx, "system")
	if err := tx.audit(sysctx, "unlock.redact", buildingID, "building", buildingID, auditlog.MarshalRedactionDetail(auditlog.RedactionDetail{
		Events: int64(len(ids)), IDs: ranges, Before: cutoff.Format(logTimeLayout), Fields: strings.Join(doorledger.RedactedFields, ","), Digest: digest.String()})); err != nil {
		return 0, false, err
	}
	var entry int64 // the journal entry just written (its id came from its sequence in this session)
	if err := tx.QueryRow(ctx, `SELECT currval('audit_entries_id_seq')`).Scan(&entry); err != nil {
		return 0, false, err
	}
	for _, x := range recs {
		if _, err := tx.Exec(ctx, `INSERT INTO unlock_redactions (unlock_id, redaction_id, leaf, redacted) VALUES ($1, $2, $3, $4)`,
			x.UnlockID, entry, x.Logged[:], x.Redacted[:]); err != nil {
			return 0, false, err
		}
		if _, err := tx.Exec(ctx, `UPDATE unlock_events SET actor_ref = '', redaction_id = $1, redacted_at = $2 WHERE id = $3`,
			entry, tx.now, x.UnlockID); err != nil {
			return 0, false, fmt.Errorf("redact unlock #%d: %w", x.UnlockID, err)
		}
	}
	return int64(len(ids)), more, tx.Commit(ctx)
}
