package doorledger

import (
	"context"
	"time"
)

// Message is a mail in the outbox. It is written in the same transaction as the
// fact it reports, then sent by the dispatcher (or only logged, without SMTP).
type Message struct {
	ID         int64
	CreatedAt  time.Time
	To         string
	Subject    string
	Body       string
	Kind       string // invitation, signing_link, signing_code, signed, declined, alert, …
	BuildingID int64
	SentAt     time.Time
	Attempts   int
	LastError  string
}

// OutboxService reads and updates the outbox.
type OutboxService interface {
	// FindMessages lists the newest messages (admins).
	FindMessages(ctx context.Context, limit int) ([]*Message, error)
	// PendingMessages returns unsent messages with fewer than maxAttempts tries (the dispatcher).
	PendingMessages(ctx context.Context, maxAttempts, limit int) ([]*Message, error)
	// MarkSent records delivery; MarkFailed records a failed attempt.
	MarkSent(ctx context.Context, id int64) error
	MarkFailed(ctx context.Context, id int64, reason string) error
}

// Mailer delivers one message (SMTP, or a log line).
type Mailer interface {
	Send(ctx context.Context, m *Message) error
}
