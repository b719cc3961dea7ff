package mail

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/doorledger/doorledger"
)

// Dispatcher defaults.
const (
	DefaultInterval    = 5 * time.Second
	DefaultMaxAttempts = 10
	DefaultRetryDelay  = 30 * time.Second
	maxRetryDelay      = time.Hour
	batchSize          = 50
)

// Dispatcher sends the outbox. Mail is written to the outbox in the same
// transaction as the fact it reports; the Dispatcher delivers it afterwards, at
// least once: a message whose delivery succeeded but could not be marked sent is
// sent again on the next pass.
//
// A failed message is retried on later passes, after RetryDelay and then twice
// as long after each further failure (at most an hour), until it has been tried
// MaxAttempts times: with the defaults, 10 attempts over about three hours
// (30 s, 1, 2, 4, 8, 16, 32, 60, 60 min apart), so a mail server down for an
// hour or two costs no mail. The dispatcher then gives up on it: it stays in
// the outbox as "could not deliver" (FailedAt) with its last error, for an
// admin to see and retry. A refusal for good (an SMTP 5xx reply, see
// IsPermanent) is given up on at once: the same request would be refused
// again. When a message is next due is stored with it (MarkFailed), and the
// outbox hands out only messages that are due, so a dispatcher started again
// during an outage keeps to the backoff rather than trying every message at once.
type Dispatcher struct {
	Outbox      doorledger.OutboxService
	Mailer      doorledger.Mailer
	Logger      *slog.Logger  // nil: slog.Default()
	Interval    time.Duration // between polls of the outbox; 0: DefaultInterval
	MaxAttempts int           // 0: DefaultMaxAttempts
	RetryDelay  time.Duration // wait after the first failure; 0: DefaultRetryDelay

	once sync.Once
	wake chan struct{}

	mu sync.Mutex // one pass at a time, whether from Run or Flush
}

// Notify wakes Run so that mail just committed goes out now rather than at the
// next poll. It never blocks, so it can be DB.OnMail; it may be called before
// Run starts.
func (d *Dispatcher) Notify() {
	select {
	case d.wakeChan() <- struct{}{}:
	default: // a wake-up is already due
	}
}

func (d *Dispatcher) wakeChan() chan struct{} {
	d.once.Do(func() { d.wake = make(chan struct{}, 1) })
	return d.wake
}

// Run sends pending mail until ctx is done, then returns nil. It polls every
// Interval and when Notify is called, so a failed message goes out again at
// most Interval after it is due. A message being sent when ctx ends is not
// counted as a failed attempt.
func (d *Dispatcher) Run(ctx context.Context) error {
	if d.Outbox == nil || d.Mailer == nil {
		return errors.New("mail dispatcher: Outbox and Mailer required")
	}
	wake := d.wakeChan()
	for {
		d.pass(ctx)
		t := time.NewTimer(d.interval())
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-wake:
			t.Stop()
		case <-t.C:
		}
	}
}

// Flush tries every message that is due once and returns the errors of
// those that failed (for tests).
func (d *Dispatcher) Flush(ctx context.Context) error {
	if d.Outbox == nil || d.Mailer == nil {
		return errors.New("mail dispatcher: Outbox and Mailer required")
	}
	return d.pass(ctx)
}

// pass sends what is due, batch by batch, each message at most once.
func (d *Dispatcher) pass(ctx context.Context) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	var errs []error
	tried := make(map[int64]bool)
	for {
		msgs, err := d.Outbox.PendingMessages(ctx, d.maxAttempts(), batchSize)
		if err != nil {
			if ctx.Err() != nil {
				return errors.Join(errs...)
			}
			err = fmt.Errorf("pending mail: %w", err)
			d.logger().Error("mail dispatcher", "err", err)
			return errors.Join(append(errs, err)...)
		}
		attempted := 0
		for _, m := range msgs {
			if tried[m.ID] {
				continue // failed in this pass and due again already (a tiny RetryDelay), or not marked
			}
			tried[m.ID] = true
			attempted++
			if err := d.send(ctx, m); err != nil {
				errs = append(errs, err)
			}
			if ctx.Err() != nil {
				return errors.Join(errs...)
			}
		}
		if len(msgs) < batchSize || attempted == 0 {
			return errors.Join(errs...)
		}
	}
}

// send delivers one message and records the outcome.
func (d *Dispatcher) send(ctx context.Context, m *doorledger.Message) error {
	log := d.logger().With("id", m.ID, "kind", m.Kind)
	sendErr := d.Mailer.Send(ctx, m)
	if sendErr == nil {
		// Record the delivery even if shutdown has begun, or it would be sent twice.
		markCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		if err := d.Outbox.MarkSent(markCtx, m.ID); err != nil {
			err = fmt.Errorf("mark mail %d sent: %w", m.ID, err)
			log.Error("mail sent but not marked; it will be sent again", "err", err)
			return err
		}
		log.Debug("mail sent")
		return nil
	}
	if ctx.Err() != nil {
		return nil // shutting down: this attempt does not count
	}
	permanent := IsPermanent(sendErr)
	sendErr = fmt.Errorf("send mail %d: %w", m.ID, sendErr)
	attempts := m.Attempts + 1
	final := permanent || attempts >= d.maxAttempts()
	delay := d.retryDelay(attempts)
	if err := d.Outbox.MarkFailed(ctx, m.ID, sendErr.Error(), final, delay); err != nil {
		log.Error("mail failed and not marked", "err", sendErr, "mark_err", err)
		return errors.Join(sendErr, err)
	}
	if final {
		log.Error("mail could not be delivered; giving up", "attempts", attempts, "permanent", permanent, "err", sendErr)
		return sendErr
	}
	log.Warn("mail failed; will retry", "attempts", attempts, "retry_in", delay, "err", sendErr)
	return sendErr
}

// retryDelay is the wait after the given number of failed attempts.
func (d *Dispatcher) retryDelay(attempts int) time.Duration {
	delay := d.RetryDelay
	if delay <= 0 {
		delay = DefaultRetryDelay
	}
	for i := 1; i < attempts && delay < maxRetryDelay; i++ {
		delay *= 2
	}
	return min(delay, maxRetryDelay)
}

func (d *Dispatcher) interval() time.Duration {
	if d.Interval > 0 {
		return d.Interval
	}
	return DefaultInterval
}

func (d *Dispatcher) maxAttempts() int {
	if d.MaxAttempts > 0 {
		return d.MaxAttempts
	}
	return DefaultMaxAttempts
}

func (d *Dispatcher) logger() *slog.Logger {
	if d.Logger != nil {
		return d.Logger
	}
	return slog.Default()
}
