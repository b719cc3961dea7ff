package db

import (
	"context"
	"fmt"

	"github.com/doorledger/doorledger"
)

// OutboxService implements doorledger.OutboxService.
type OutboxService struct{ db *DB }

// NewOutboxService returns the SQLite outbox.
func NewOutboxService(db *DB) *OutboxService { return &OutboxService{db: db} }

var _ doorledger.OutboxService = (*OutboxService)(nil)

// queueMail writes a message to the outbox in tx. A non-empty dedupKey sends at
// most one message per key (alerts about the same thing).
//
// The subject is made one line whatever it was built from (a building name
// stored before names were checked could hold a line break): the mail package
// refuses a subject with CR or LF, which would leave the mail unsent.
func (tx *Tx) queueMail(ctx context.Context, m *doorledger.Message, dedupKey string) error {
	_, err := tx.ExecContext(ctx, `
		INSERT INTO outbox (created_at, to_addr, subject, body, kind, building_id, dedup_key)
		VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`,
		formatTime(tx.now), m.To, doorledger.ScrubText(m.Subject, false), m.Body, m.Kind, m.BuildingID, nullString(dedupKey))
	if err != nil {
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
	rows, err := tx.QueryContext(ctx, `SELECT u.email FROM grants g JOIN users u ON u.id = g.user_id
		WHERE g.building_id = ? AND u.disabled = 0 AND u.role IN (`+roles+`) ORDER BY u.id`, buildingID)
	if err != nil {
		return err
	}
	var to []string
	for rows.Next() {
		var e string
		if err := rows.Scan(&e); err != nil {
			rows.Close()
			return err
		}
		to = append(to, e)
	}
	rows.Close()
	for _, addr := range to {
		key := ""
		if dedupKey != "" {
			key = dedupKey + ":" + addr
		}
		if err := tx.queueMail(ctx, &doorledger.Message{To: addr, Subject: subject, Body: body, Kind: "alert", BuildingID: buildingID}, key); err != nil {
			return err
		}
	}
	return nil
}

const messageColumns = `id, created_at, to_addr, subject, body, kind, building_id, sent_at, attempts, last_error`

func scanMessages(ctx context.Context, q querier, query string, args ...any) ([]*doorledger.Message, error) {
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var list []*doorledger.Message
	for rows.Next() {
		var m doorledger.Message
		var created string
		if err := rows.Scan(&m.ID, &created, &m.To, &m.Subject, &m.Body, &m.Kind, &m.BuildingID, nullTime{&m.SentAt}, &m.Attempts, &m.LastError); err != nil {
			return nil, err
		}
		m.CreatedAt = parseTime(created)
		list = append(list, &m)
	}
	return list, rows.Err()
}

func (s *OutboxService) FindMessages(ctx context.Context, limit int) ([]*doorledger.Message, error) {
	if err := callerFrom(ctx).requireAdmin(); err != nil {
		return nil, err
	}
	if limit <= 0 || limit > 500 {
		limit = 100
	}
	return scanMessages(ctx, s.db.read, `SELECT `+messageColumns+` FROM outbox ORDER BY id DESC LIMIT ?`, limit)
}

func (s *OutboxService) PendingMessages(ctx context.Context, maxAttempts, limit int) ([]*doorledger.Message, error) {
	return scanMessages(ctx, s.db.read, `SELECT `+messageColumns+` FROM outbox WHERE sent_at IS NULL AND attempts < ? ORDER BY id LIMIT ?`, maxAttempts, limit)
}

func (s *OutboxService) MarkSent(ctx context.Context, id int64) error {
	_, err := s.db.write.ExecContext(ctx, `UPDATE outbox SET sent_at = ?, attempts = attempts + 1, last_error = '' WHERE id = ?`, formatTime(s.db.Now()), id)
	return err
}

func (s *OutboxService) MarkFailed(ctx context.Context, id int64, reason string) error {
	if len(reason) > 500 {
		reason = reason[:500]
	}
	_, err := s.db.write.ExecContext(ctx, `UPDATE outbox SET attempts = attempts + 1, last_error = ? WHERE id = ?`, reason, id)
	return err
}
