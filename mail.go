package doorledger

import (
	"context"
	"time"
)

// Message is a mail in the outbox. It is written in the same transaction as the
// fact it reports, then sent by the dispatcher (or only logged, without SMTP).
// Bodies carry one-time links and codes, so none is kept at rest in the clear:
// a body waiting to be sent is sealed with a key kept outside the database, and
// is dropped once sent, unless mail is only logged (no SMTP), when it stays
// sealed for admins to read on the Outbox page.
type Message struct {
	ID         int64
	CreatedAt  time.Time
	To         string
	Subject    string
	Body       string // "" once dropped, or where the reader may not see it
	Kind       string // invitation, signing_link, signing_code, signed, declined, alert, …
	BuildingID int64
	SentAt     time.Time
	Attempts   int
	LastError  string
	// FailedAt is when the dispatcher gave up: the retry budget was spent, or
	// the server refused the mail for good (an SMTP 5xx). Zero while it is
	// queued, being retried, or sent. Such a mail could not be delivered and
	// is sent again only when an admin retries it (RetryMessage).
	FailedAt time.Time
}

// OutboxService reads and updates the outbox.
type OutboxService interface {
	// FindMessages lists the newest messages (admins): to, subject, state,
	// attempts and last error; bodies only while mail is only logged (no SMTP).
	FindMessages(ctx context.Context, limit int) ([]*Message, error)
	// PendingMessages returns unsent messages with fewer than maxAttempts tries
	// that were not given up on and are due (their next attempt not after the
	// services' clock), bodies opened (the dispatcher).
	PendingMessages(ctx context.Context, maxAttempts, limit int) ([]*Message, error)
	// MarkSent records delivery (and drops the body); MarkFailed records a
	// failed attempt and that the message is next due retryAfter from now (the
	// services' clock; stored, so a restarted portal keeps to it), or with
	// final set that the dispatcher gives up on the message (FailedAt: "could
	// not deliver").
	MarkSent(ctx context.Context, id int64) error
	MarkFailed(ctx context.Context, id int64, reason string, final bool, retryAfter time.Duration) error
	// RetryMessage sends an unsent message again from its first attempt
	// (admins), e.g. after the dispatcher gave up on it: FailedAt is cleared
	// and the message is due now.
	// ENOTFOUND for an unknown message, ECONFLICT for one already sent.
	RetryMessage(ctx context.Context, id int64) error
}

// Mailer delivers one message (SMTP, or a log line).
type Mailer interface {
	Send(ctx context.Context, m *Message) error
}
