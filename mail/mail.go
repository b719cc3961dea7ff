// Package mail delivers the outbox: a Dispatcher takes pending messages from a
// doorledger.OutboxService and hands them to a doorledger.Mailer, either an
// SMTPMailer (github.com/wneessen/go-mail) or, when no SMTP server is
// configured, a LogMailer that only records that a message was due.
package mail

import (
	"context"
	"log/slog"

	"github.com/doorledger/doorledger"
)

// LogMailer is the Mailer used when no SMTP server is configured. It logs that a
// message would have gone out, never its body: bodies carry one-time signing and
// invitation links, which are secrets. Admins read bodies on the outbox page.
type LogMailer struct {
	Logger *slog.Logger // nil: slog.Default()
}

var _ doorledger.Mailer = LogMailer{}

// Send logs the message's id, recipient, subject and kind at Info.
func (l LogMailer) Send(ctx context.Context, m *doorledger.Message) error {
	logger := l.Logger
	if logger == nil {
		logger = slog.Default()
	}
	logger.LogAttrs(ctx, slog.LevelInfo, "mail (not sent: no SMTP configured)",
		slog.Int64("id", m.ID),
		slog.String("to", m.To),
		slog.String("subject", m.Subject),
		slog.String("kind", m.Kind))
	return nil
}
