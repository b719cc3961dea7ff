package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/doorledger/doorledger"
	"github.com/doorledger/doorledger/internal/seal"
)

// OutboxService implements doorledger.OutboxService.
//
// Mail bodies carry one-time links and codes, and none is kept usable at rest
// (migrations/023_outbox_sealed.sql): a body is sealed (seal.go, the DB's seal
// key) when queued, opened only to be sent, and dropped once sent.
type OutboxService struct {
	db *DB
	// LogOnly says mail is only logged, not delivered (no SMTP server: the
	// development setup). Sent bodies then stay, sealed, and FindMessages
	// opens them for admins, who follow the links from the Outbox page.
	// Without it (SMTP) a body is dropped once sent and FindMessages shows none.
	LogOnly bool
}

// NewOutboxService returns the SQLite outbox.
func NewOutboxService(db *DB) *OutboxService { return &OutboxService{db: db} }

var _ doorledger.OutboxService = (*OutboxService)(nil)

// queueMail writes a message to the outbox in tx, its body sealed. A non-empty
// dedupKey sends at most one message per key (alerts about the same thing).
//
// The subject is made one line whatever it was built from (a building name
// stored before names were checked could hold a line break): the mail package
// refuses a subject with CR or LF, which would leave the mail unsent.
func (tx *Tx) queueMail(ctx context.Context, m *doorledger.Message, dedupKey string) error {
	var id int64
	err := tx.QueryRowContext(ctx, `
		INSERT INTO outbox (created_at, to_addr, subject, body, kind, building_id, dedup_key)
		VALUES (?, ?, ?, '', ?, ?, ?) ON CONFLICT DO NOTHING RETURNING id`,
		formatTime(tx.now), m.To, doorledger.ScrubText(m.Subject, false), m.Kind, m.BuildingID, nullString(dedupKey)).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return nil // de-duplicated: sent already
	} else if err != nil {
		return fmt.Errorf("queue mail: %w", err)
	}
	sealed, err := tx.db.sealer.Seal([]byte(m.Body), seal.MailBody(id, m.To))
	if err != nil {
		return fmt.Errorf("queue mail: %w", err)
	}
	if _, err := tx.ExecContext(ctx, `UPDATE outbox SET body_sealed = ? WHERE id = ?`, sealed, id); err != nil {
		return fmt.Errorf("queue mail: %w", err)
	}
	tx.mailed = true
	return nil
}

// alertManagers mails every manager of the building (and its board when
// board is true) about something that needs them.
func (tx *Tx) alertManagers(ctx context.Context, buildingID int64, board bool, subject, body, dedupKey string) error {
	roles := "'manager'"
	if board {
		roles = "'manager', 'board'"
	}
	return tx.alertEach(ctx, &doorledger.Message{Subject: subject, Body: body, Kind: "alert", BuildingID: buildingID}, dedupKey,
		`SELECT u.email FROM grants g JOIN users u ON u.id = g.user_id
		WHERE g.building_id = ? AND u.disabled = 0 AND u.role IN (`+roles+`) ORDER BY u.id`, buildingID)
}

// alertEach queues m to every address query returns, at most once per
// address for dedupKey ("": no de-duplication).
func (tx *Tx) alertEach(ctx context.Context, m *doorledger.Message, dedupKey, query string, args ...any) error {
	to, err := tx.emails(ctx, query, args...)
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

// emails returns the addresses query selects (one column), in its order.
func (tx *Tx) emails(ctx context.Context, query string, args ...any) ([]string, error) {
	rows, err := tx.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var to []string
	for rows.Next() {
		var e string
		if err := rows.Scan(&e); err != nil {
			return nil, err
		}
		to = append(to, e)
	}
	return to, rows.Err()
}

const messageColumns = `id, created_at, to_addr, subject, body, body_sealed, kind, building_id, sent_at, attempts, last_error, failed_at`

// storedMessage is a row of the outbox, its body as stored.
type storedMessage struct {
	doorledger.Message
	sealed []byte // nil when the body is dropped (or, before 023, in the clear)
}

func scanMessages(ctx context.Context, q querier, query string, args ...any) ([]*storedMessage, error) {
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var list []*storedMessage
	for rows.Next() {
		var m storedMessage
		var created string
		if err := rows.Scan(&m.ID, &created, &m.To, &m.Subject, &m.Body, &m.sealed, &m.Kind, &m.BuildingID, nullTime{&m.SentAt}, &m.Attempts, &m.LastError, nullTime{&m.FailedAt}); err != nil {
			return nil, err
		}
		m.CreatedAt = parseTime(created)
		list = append(list, &m)
	}
	return list, rows.Err()
}

// open returns m's body: opened when sealed, as stored otherwise (dropped, or
// a row from before 023 that SecureStoredMail has not reached yet).
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
	stored, err := scanMessages(ctx, s.db.read, `SELECT `+messageColumns+` FROM outbox ORDER BY id DESC LIMIT ?`, limit)
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
// due (next_attempt_at, migration 105, not after the DB's clock). A
// body that does not open (the data directory's key was replaced) can never
// be sent: it is marked failed for good, with the reason, and left out.
func (s *OutboxService) PendingMessages(ctx context.Context, maxAttempts, limit int) ([]*doorledger.Message, error) {
	stored, err := scanMessages(ctx, s.db.read, `SELECT `+messageColumns+` FROM outbox
		WHERE sent_at IS NULL AND failed_at IS NULL AND attempts < ? AND (next_attempt_at IS NULL OR next_attempt_at <= ?)
		ORDER BY id LIMIT ?`, maxAttempts, formatTime(s.db.now()), limit)
	if err != nil {
		return nil, err
	}
	list := make([]*doorledger.Message, 0, len(stored))
	for _, m := range stored {
		body, err := s.open(m)
		if err != nil {
			if _, uerr := s.db.write.ExecContext(ctx, `UPDATE outbox SET attempts = ?, last_error = ?, failed_at = ? WHERE id = ?`,
				maxAttempts, "Not sent: the body "+seal.ErrSealedElsewhere.Error()+".", formatTime(s.db.now()), m.ID); uerr != nil {
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
// body stays, sealed (one stored in the clear before 023 is sealed now).
func (s *OutboxService) MarkSent(ctx context.Context, id int64) error {
	tx, err := s.db.BeginTx(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	var to, body string
	if err := tx.QueryRowContext(ctx, `SELECT to_addr, body FROM outbox WHERE id = ?`, id).Scan(&to, &body); err != nil {
		return notFound(err, "Mail not found.")
	}
	switch {
	case !s.LogOnly:
		_, err = tx.ExecContext(ctx, `UPDATE outbox SET sent_at = ?, attempts = attempts + 1, last_error = '', body = '', body_sealed = NULL WHERE id = ?`, formatTime(tx.now), id)
	case body != "":
		var sealed []byte
		if sealed, err = s.db.sealer.Seal([]byte(body), seal.MailBody(id, to)); err == nil {
			_, err = tx.ExecContext(ctx, `UPDATE outbox SET sent_at = ?, attempts = attempts + 1, last_error = '', body = '', body_sealed = ? WHERE id = ?`, formatTime(tx.now), sealed, id)
		}
	default:
		_, err = tx.ExecContext(ctx, `UPDATE outbox SET sent_at = ?, attempts = attempts + 1, last_error = '' WHERE id = ?`, formatTime(tx.now), id)
	}
	if err != nil {
		return fmt.Errorf("mark mail %d sent: %w", id, err)
	}
	return tx.Commit()
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
	var failedAt, nextAt any // failed_at NULL unless final, next_attempt_at unless not
	if final {
		failedAt = formatTime(now)
	} else {
		nextAt = formatTime(now.Add(max(retryAfter, 0)))
	}
	_, err := s.db.write.ExecContext(ctx, `UPDATE outbox SET attempts = attempts + 1, last_error = ?, failed_at = ?, next_attempt_at = ? WHERE id = ? AND sent_at IS NULL`,
		reason, failedAt, nextAt, id)
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
	var sent sql.NullString
	if err := tx.QueryRowContext(ctx, `SELECT to_addr, kind, building_id, sent_at FROM outbox WHERE id = ?`, id).Scan(&to, &kind, &buildingID, &sent); err != nil {
		return notFound(err, "Mail not found.")
	}
	if sent.Valid {
		return doorledger.Errorf(doorledger.ECONFLICT, "This mail was sent already.")
	}
	if _, err := tx.ExecContext(ctx, `UPDATE outbox SET attempts = 0, failed_at = NULL, next_attempt_at = NULL WHERE id = ?`, id); err != nil {
		return fmt.Errorf("retry mail %d: %w", id, err)
	}
	if err := tx.audit(ctx, "mail.retry", buildingID, "mail", id, map[string]string{"to": to, "kind": kind}); err != nil {
		return err
	}
	tx.mailed = true
	return tx.Commit()
}

// SecureStoredMail brings stored bodies in line with the outbox's mode; the
// portal runs it at start, before the dispatcher. A body stored in the clear
// (written before migration 023, which could not seal without the key) is
// sealed when its mail is unsent or LogOnly, and dropped otherwise; without
// LogOnly, the sealed bodies of sent mail (kept while mail was only logged)
// are dropped too. Freed pages are overwritten (secure_delete) and the WAL
// truncated, so the clear text does not linger in the database's files. It
// returns how many rows it changed.
func (s *OutboxService) SecureStoredMail(ctx context.Context) (int, error) {
	conn, err := s.db.write.Conn(ctx) // the one writer: the pragma must be set on it
	if err != nil {
		return 0, err
	}
	defer conn.Close()
	var was int
	if err := conn.QueryRowContext(ctx, `PRAGMA secure_delete`).Scan(&was); err != nil {
		return 0, err
	}
	if _, err := conn.ExecContext(ctx, `PRAGMA secure_delete = 1`); err != nil {
		return 0, err
	}
	defer conn.ExecContext(context.WithoutCancel(ctx), `PRAGMA secure_delete = `+strconv.Itoa(was))
	n, err := s.secureStoredMail(ctx, conn)
	if err != nil || n == 0 {
		return n, err
	}
	if _, err := conn.ExecContext(ctx, `PRAGMA wal_checkpoint(TRUNCATE)`); err != nil {
		return n, fmt.Errorf("checkpoint after securing mail: %w", err)
	}
	return n, nil
}

func (s *OutboxService) secureStoredMail(ctx context.Context, conn *sql.Conn) (int, error) {
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		return 0, err
	}
	defer tx.Rollback()
	rows, err := tx.QueryContext(ctx, `SELECT id, to_addr, body, sent_at IS NOT NULL FROM outbox WHERE body <> ''`)
	if err != nil {
		return 0, err
	}
	type clear struct {
		id       int64
		to, body string
		sent     bool
	}
	var found []clear
	for rows.Next() {
		var c clear
		if err := rows.Scan(&c.id, &c.to, &c.body, &c.sent); err != nil {
			rows.Close()
			return 0, err
		}
		found = append(found, c)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, err
	}
	for _, c := range found {
		var sealed []byte
		if !c.sent || s.LogOnly {
			if sealed, err = s.db.sealer.Seal([]byte(c.body), seal.MailBody(c.id, c.to)); err != nil {
				return 0, err
			}
		}
		if _, err := tx.ExecContext(ctx, `UPDATE outbox SET body = '', body_sealed = ? WHERE id = ?`, sealed, c.id); err != nil {
			return 0, fmt.Errorf("secure mail %d: %w", c.id, err)
		}
	}
	n := len(found)
	if !s.LogOnly {
		res, err := tx.ExecContext(ctx, `UPDATE outbox SET body_sealed = NULL WHERE sent_at IS NOT NULL AND body_sealed IS NOT NULL`)
		if err != nil {
			return 0, fmt.Errorf("drop sent mail bodies: %w", err)
		}
		dropped, _ := res.RowsAffected()
		n += int(dropped)
	}
	return n, tx.Commit()
}
