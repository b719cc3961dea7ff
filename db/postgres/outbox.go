package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/doorledger/doorledger"
	"github.com/doorledger/doorledger/internal/seal"
	"github.com/jackc/pgx/v5"
)

// OutboxService implements doorledger.OutboxService.
//
// Mail bodies carry one-time links and codes, and none is kept usable at
// rest: a body is sealed (seal.go, the DB's seal key) when queued, opened
// only to be sent, and dropped once sent. (PostgreSQL never held a body in
// the clear, so package sqlite's SecureStoredMail, which seals bodies
// written before its migration 023, has no counterpart here.)
type OutboxService struct {
	db *DB
	// LogOnly says mail is only logged, not delivered (no SMTP server: the
	// development setup). Sent bodies then stay, sealed, and FindMessages
	// opens them for admins. Without it a body is dropped once sent.
	LogOnly bool
}

// NewOutboxService returns the PostgreSQL outbox.
func NewOutboxService(db *DB) *OutboxService { return &OutboxService{db: db} }

var _ doorledger.OutboxService = (*OutboxService)(nil)

// queueMail writes a message to the outbox in tx, its body sealed. A non-empty
// dedupKey sends at most one message per key (alerts about the same thing).
// The subject is made one line whatever it was built from.
func (tx *Tx) queueMail(ctx context.Context, m *doorledger.Message, dedupKey string) error {
	var id int64
	err := tx.QueryRow(ctx, `
		INSERT INTO outbox (created_at, to_addr, subject, body, kind, building_id, dedup_key)
		VALUES ($1, $2, $3, '', $4, $5, $6) ON CONFLICT DO NOTHING RETURNING id`,
		tx.now, m.To, doorledger.ScrubText(m.Subject, false), m.Kind, m.BuildingID, nullString(dedupKey)).Scan(&id)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil // de-duplicated: sent already
	} else if err != nil {
		return fmt.Errorf("queue mail: %w", err)
	}
	sealed, err := tx.db.sealer.Seal([]byte(m.Body), seal.MailBody(id, m.To))
	if err != nil {
		return fmt.Errorf("queue mail: %w", err)
	}
	if _, err := tx.Exec(ctx, `UPDATE outbox SET body_sealed = $1 WHERE id = $2`, sealed, id); err != nil {
		return fmt.Errorf("queue mail: %w", err)
	}
	tx.mailed = true
	return nil
}

// alertManagers mails every manager of the building (and its board when
// board is true) about something that needs them.
func (tx *Tx) alertManagers(ctx context.Context, buildingID int64, board bool, subject, body, dedupKey string) error {
	roles := []string{string(doorledger.RoleManager)}
	if board {
		roles = append(roles, string(doorledger.RoleBoard))
	}
	return tx.alertEach(ctx, &doorledger.Message{Subject: subject, Body: body, Kind: "alert", BuildingID: buildingID}, dedupKey,
		`SELECT u.email FROM grants g JOIN users u ON u.id = g.user_id
		WHERE g.building_id = $1 AND NOT u.disabled AND u.role = ANY ($2) ORDER BY u.id`, buildingID, roles)
}

// alertEach queues m to every address query returns, at most once per
// address for dedupKey ("": no de-duplication).
func (tx *Tx) alertEach(ctx context.Context, m *doorledger.Message, dedupKey, query string, args ...any) error {
	rows, err := tx.Query(ctx, query, args...)
	if err != nil {
		return err
	}
	to, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return err
	}
	for _, addr := range to {
		key := ""
		if dedupKey != "" {
			key = dedupKey + ":" + addr
		}
		msg := *m
		msg.To = addr
		if err := tx.queueMail(ctx, &msg, key); err != nil {
			return err
		}
	}
	return nil
}

const messageColumns = `id, created_at, to_addr, subject, body, body_sealed, kind, building_id, sent_at, attempts, last_error, failed_at`

// storedMessage is a row of the outbox, its body as stored.
type storedMessage struct {
	doorledger.Message
	sealed []byte // nil when the body is dropped
}

func scanMessages(ctx context.Context, q querier, query string, args ...any) ([]*storedMessage, error) {
	return queryAll(ctx, q, func(row interface{ Scan(...any) error }) (*storedMessage, error) {
		var m storedMessage
		err := row.Scan(&m.ID, at(&m.CreatedAt), &m.To, &m.Subject, &m.Body, &m.sealed, &m.Kind, &m.BuildingID,
			at(&m.SentAt), &m.Attempts, &m.LastError, at(&m.FailedAt))
		return &m, err
	}, query, args...)
}

// open returns m's body: opened when sealed, as stored otherwise (dropped).
func (s *OutboxService) open(m *storedMessage) (string, error) {
	if m.sealed == nil {
		return m.Body, nil
	}
	body, err := s.db.sealer.Open(m.sealed, seal.MailBody(m.ID, m.To))
	if err != nil {
		return "", fmt.Errorf("body of mail %d: %w", m.ID, err)
	}
	return string(body), nil
}

// FindMessages lists the newest messages for an admin: bodies only when
// LogOnly (a body that does not open reads as a note saying so).
func (s *OutboxService) FindMessages(ctx context.Context, limit int) ([]*doorledger.Message, error) {
	if err := callerFrom(ctx).requireAdmin(); err != nil {
		return nil, err
	}
	if limit <= 0 || limit > 500 {
		limit = 100
	}
	stored, err := scanMessages(ctx, s.db.pool, `SELECT `+messageColumns+` FROM outbox ORDER BY id DESC LIMIT $1`, limit)
	if err != nil {
		return nil, err
	}
	list := make([]*doorledger.Message, len(stored))
	for i, m := range stored {
		body, err := s.open(m)
		switch {
		case !s.LogOnly:
			m.Body = ""
		case err != nil:
			m.Body = "(This body is sealed under another data directory's key and cannot be read.)"
		default:
			m.Body = body
		}
		list[i] = &m.Message
	}
	return list, nil
}

// PendingMessages returns what the dispatcher is to send, bodies opened: not
// sent, not given up on (failed_at), tried fewer than maxAttempts times, and
// due (next_attempt_at, migration 150, not after the DB's clock). A
// body that does not open (the data directory's key was replaced) can never
// be sent: it is marked failed for good, with the reason, and left out.
func (s *OutboxService) PendingMessages(ctx context.Context, maxAttempts, limit int) ([]*doorledger.Message, error) {
	stored, err := scanMessages(ctx, s.db.pool, `SELECT `+messageColumns+` FROM outbox
		WHERE sent_at IS NULL AND failed_at IS NULL AND attempts < $1 AND (next_attempt_at IS NULL OR next_attempt_at <= $2)
		ORDER BY id LIMIT $3`, maxAttempts, ts(s.db.now()), limit)
	if err != nil {
		return nil, err
	}
	list := make([]*doorledger.Message, 0, len(stored))
	for _, m := range stored {
		body, err := s.open(m)
		if err != nil {
			if _, uerr := s.db.pool.Exec(ctx, `UPDATE outbox SET attempts = $1, last_error = $2, failed_at = $3 WHERE id = $4`,
				maxAttempts, "Not sent: the body "+seal.ErrSealedElsewhere.Error()+".", s.db.now(), m.ID); uerr != nil {
				return nil, errors.Join(err, uerr)
			}
			continue
		}
		m.Body = body
		list = append(list, &m.Message)
	}
	return list, nil
}

// MarkSent records delivery and drops the body, unless LogOnly: then the
// body stays, sealed.
func (s *OutboxService) MarkSent(ctx context.Context, id int64) error {
	tx, err := s.db.BeginTx(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	var drop bool
	if err := tx.QueryRow(ctx, `SELECT true FROM outbox WHERE id = $1`, id).Scan(&drop); err != nil {
		return notFound(err, "Mail not found.")
	}
	if s.LogOnly {
		_, err = tx.Exec(ctx, `UPDATE outbox SET sent_at = $1, attempts = attempts + 1, last_error = '' WHERE id = $2`, tx.now, id)
	} else {
		_, err = tx.Exec(ctx, `UPDATE outbox SET sent_at = $1, attempts = attempts + 1, last_error = '', body = '', body_sealed = NULL WHERE id = $2`, tx.now, id)
	}
	if err != nil {
		return fmt.Errorf("mark mail %d sent: %w", id, err)
	}
	return tx.Commit(ctx)
}

// MarkFailed records a failed attempt and its reason, and that the mail is
// next due retryAfter from now (next_attempt_at, the DB's clock); with final
// set, that the dispatcher gives up on the mail (failed_at): it is not
// pending any more until an admin retries it.
func (s *OutboxService) MarkFailed(ctx context.Context, id int64, reason string, final bool, retryAfter time.Duration) error {
	if len(reason) > 500 {
		reason = reason[:500]
	}
	now := s.db.now()
	var failedAt, nextAt time.Time // NULL: failed_at unless final, next_attempt_at when final
	if final {
		failedAt = now
	} else {
		nextAt = now.Add(max(retryAfter, 0))
	}
	_, err := s.db.pool.Exec(ctx, `UPDATE outbox SET attempts = attempts + 1, last_error = $1, failed_at = $2, next_attempt_at = $3 WHERE id = $4 AND sent_at IS NULL`,
		reason, ts(failedAt), ts(nextAt), id)
	return err
}

// RetryMessage puts an unsent message back to its first attempt (admins),
// no longer given up on and due now, and wakes the dispatcher. Its last error stays until
// the next attempt.
func (s *OutboxService) RetryMessage(ctx context.Context, id int64) error {
	if err := callerFrom(ctx).requireAdmin(); err != nil {
		return err
	}
	tx, err := s.db.BeginTx(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	var to, kind string
	var buildingID int64
	var sent bool
	// FOR UPDATE: a dispatcher marking it sent meanwhile waits, or is waited for.
	if err := tx.QueryRow(ctx, `SELECT to_addr, kind, building_id, sent_at IS NOT NULL FROM outbox WHERE id = $1 FOR UPDATE`, id).
		Scan(&to, &kind, &buildingID, &sent); err != nil {
		return notFound(err, "Mail not found.")
	}
	if sent {
		return doorledger.Errorf(doorledger.ECONFLICT, "This mail was sent already.")
	}
	if _, err := tx.Exec(ctx, `UPDATE outbox SET attempts = 0, failed_at = NULL, next_attempt_at = NULL WHERE id = $1`, id); err != nil {
		return fmt.Errorf("retry mail %d: %w", id, err)
	}
	if err := tx.audit(ctx, "mail.retry", buildingID, "mail", id, map[string]string{"to": to, "kind": kind}); err != nil {
		return err
	}
	tx.mailed = true
	return tx.Commit(ctx)
}
