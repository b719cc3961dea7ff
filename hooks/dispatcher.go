// Package hooks posts the portal's outbound events (doorledger.Event) to the
// systems admins subscribed, as signed HTTPS webhooks.
//
// The deliveries are queued by the storage in the same transaction as the
// change they report (an outbox); the Dispatcher here sends what is due,
// signs each request as the portal signs its vendor webhooks
// (devicectl.Sign: HMAC-SHA256 over "<unix time>.<body>" with the
// subscription's secret, in the Doorledger-Signature header, so a receiver
// verifies it as a vendor does, with devicectl.VerifySignature or its few
// lines), and records each attempt's answer. Delivery is at least once: a
// receiver keeps the event ids it has seen (the Doorledger-Event-Id header
// and the body's "id", the same in every attempt and replay).
package hooks

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/doorledger/doorledger"
	"github.com/doorledger/doorledger/devicectl"
)

// Dispatcher defaults.
const (
	DefaultInterval      = 5 * time.Second
	DefaultRetryDelay    = 30 * time.Second
	DefaultMaxRetryDelay = time.Hour
	batchSize            = 100
	// parallel bounds the subscriptions posted to at once in a pass: one slow
	// receiver does not hold up the others.
	parallel = 8
	// maxResponseRead bounds what is read of an answer; the rest is dropped
	// with the connection.
	maxResponseRead = 64 << 10
	// pruneEvery is how often Run deletes deliveries past
	// doorledger.WebhookDeliveryRetention.
	pruneEvery = time.Hour
)

// Dispatcher sends due deliveries. After a failure a delivery is due again
// after RetryDelay, then twice as long after each further failure up to
// MaxRetryDelay (30 s, 1, 2, 4, … 32 min, then hourly with the defaults:
// about 30 attempts in 24 hours), or after the receiver's Retry-After when it
// asks for longer. The wait is stored with the delivery (RecordWebhookAttempt),
// so a dispatcher started again during an outage keeps to it. A delivery
// still failing when its doorledger.WebhookRetryWindow ends is given up on
// ("failed"), for an admin to see and replay.
type Dispatcher struct {
	Webhooks      doorledger.WebhookService
	Client        *http.Client  // nil: NewClient(false)
	Logger        *slog.Logger  // nil: slog.Default()
	Interval      time.Duration // between polls; 0: DefaultInterval
	RetryDelay    time.Duration // the wait after a first failure; 0: DefaultRetryDelay
	MaxRetryDelay time.Duration // 0: DefaultMaxRetryDelay
	// Now is the signature's clock; nil: time.Now. A receiver compares the
	// signed time with its own clock, so this is the machine's.
	Now func() time.Time

	once sync.Once
	wake chan struct{}
	mu   sync.Mutex // one pass at a time, whether from Run or Flush
}

// NewClient returns the client events are posted with: bounded timeouts, no
// proxy from the environment, no redirect followed (a 3xx is a failed
// attempt: a signed event must not be forwarded where the admin did not
// point it), and every connection's address checked when it is dialled,
// after name resolution (doorledger.WebhookAddressAllowed): loopback,
// private and link-local addresses are refused unless allowPrivate, so that
// neither a URL nor a DNS answer makes the portal reach its own network.
func NewClient(allowPrivate bool) *http.Client {
	dialer := &net.Dialer{
		Timeout: 5 * time.Second,
		Control: func(network, address string, _ syscall.RawConn) error {
			host, _, err := net.SplitHostPort(address)
			if err != nil {
				return err
			}
			if ip := net.ParseIP(host); ip == nil || !doorledger.WebhookAddressAllowed(ip, allowPrivate) {
				return &refusedAddrError{addr: host}
			}
			return nil
		},
	}
	return &http.Client{
		Transport: &http.Transport{
			Proxy:                 nil,
			DialContext:           dialer.DialContext,
			TLSHandshakeTimeout:   5 * time.Second,
			ResponseHeaderTimeout: 10 * time.Second,
			MaxIdleConnsPerHost:   2,
			IdleConnTimeout:       90 * time.Second,
			ForceAttemptHTTP2:     true,
		},
		Timeout:       15 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// refusedAddrError is a dial refused because of the address it reached.
type refusedAddrError struct{ addr string }

func (e *refusedAddrError) Error() string {
	return "refused to connect to " + e.addr + ": a loopback, private or link-local address (the portal's -webhooks-allow-private flag allows them)"
}

// Notify wakes Run so that deliveries just committed go out now. It never
// blocks, so it can be the database's OnEvent hook; it may be called before
// Run starts.
func (d *Dispatcher) Notify() {
	select {
	case d.wakeChan() <- struct{}{}:
	default:
	}
}

func (d *Dispatcher) wakeChan() chan struct{} {
	d.once.Do(func() { d.wake = make(chan struct{}, 1) })
	return d.wake
}

// Run sends due deliveries until ctx ends, then returns nil: at every
// Interval and when notified. An attempt cut short by ctx is not recorded.
func (d *Dispatcher) Run(ctx context.Context) error {
	if d.Webhooks == nil {
		return errors.New("event dispatcher: Webhooks required")
	}
	wake := d.wakeChan()
	var pruned time.Time // by this process's monotonic clock
	for {
		d.pass(ctx)
		if pruned.IsZero() || time.Since(pruned) > pruneEvery {
			if n, err := d.Webhooks.PruneWebhookDeliveries(ctx, doorledger.WebhookDeliveryRetention); err != nil && ctx.Err() == nil {
				d.logger().Error("event dispatcher: prune deliveries", "err", err)
			} else if n > 0 {
				d.logger().Info("pruned old deliveries", "deleted", n)
			}
			pruned = time.Now()
		}
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

// Flush makes one pass over the due deliveries and returns the errors of the
// attempts that failed (for tests).
func (d *Dispatcher) Flush(ctx context.Context) error {
	if d.Webhooks == nil {
		return errors.New("event dispatcher: Webhooks required")
	}
	return d.pass(ctx)
}

// pass tries every due delivery at most once. Deliveries are grouped by
// subscription; subscriptions are posted to side by side (up to parallel),
// each one's deliveries in order, and a subscription whose receiver failed
// is left for the next pass: one attempt per pass finds a receiver down,
// rather than one per queued event.
func (d *Dispatcher) pass(ctx context.Context) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	var (
		errsMu sync.Mutex
		errs   []error
	)
	tried := map[int64]bool{}   // deliveries tried in this pass
	skipped := map[int64]bool{} // subscriptions whose receiver failed in this pass
	for {
		due, err := d.Webhooks.PendingWebhookDeliveries(ctx, batchSize)
		if err != nil {
			if ctx.Err() != nil {
				return errors.Join(errs...)
			}
			err = fmt.Errorf("pending deliveries: %w", err)
			d.logger().Error("event dispatcher", "err", err)
			return errors.Join(append(errs, err)...)
		}
		bySub := map[int64][]*doorledger.WebhookDelivery{}
		var order []int64
		for _, dl := range due {
			if tried[dl.ID] || skipped[dl.SubscriptionID] {
				continue
			}
			tried[dl.ID] = true
			if bySub[dl.SubscriptionID] == nil {
				order = append(order, dl.SubscriptionID)
			}
			bySub[dl.SubscriptionID] = append(bySub[dl.SubscriptionID], dl)
		}
		if len(order) == 0 {
			return errors.Join(errs...)
		}
		var wg sync.WaitGroup
		sem := make(chan struct{}, parallel)
		failed := make(chan int64, len(order))
		for _, sub := range order {
			wg.Add(1)
			sem <- struct{}{}
			go func(list []*doorledger.WebhookDelivery) {
				defer func() { <-sem; wg.Done() }()
				for _, dl := range list {
					if err := d.send(ctx, dl); err != nil {
						errsMu.Lock()
						errs = append(errs, err)
						errsMu.Unlock()
						failed <- dl.SubscriptionID
						return
					}
				}
			}(bySub[sub])
		}
		wg.Wait()
		close(failed)
		for sub := range failed {
			skipped[sub] = true
		}
		if ctx.Err() != nil || len(due) < batchSize {
			return errors.Join(errs...)
		}
	}
}

// send posts one delivery and records the outcome; it returns the attempt's
// failure.
func (d *Dispatcher) send(ctx context.Context, dl *doorledger.WebhookDelivery) error {
	log := d.logger().With("delivery", dl.ID, "event", dl.EventID, "type", dl.EventType, "subscription", dl.SubscriptionID)
	attempt, retryAfter := d.post(ctx, dl)
	if ctx.Err() != nil && !attempt.OK() {
		return nil // shutting down: this attempt does not count
	}
	delay := max(d.retryDelay(dl.Attempts+1), min(retryAfter, doorledger.WebhookRetryWindow))
	// Record the outcome even if shutdown has begun, or a delivered event
	// would be posted again.
	markCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	state, err := d.Webhooks.RecordWebhookAttempt(markCtx, dl.ID, attempt, delay)
	if err != nil {
		err = fmt.Errorf("record attempt of delivery %d: %w", dl.ID, err)
		log.Error("event dispatcher", "err", err)
		return err
	}
	if attempt.OK() {
		log.Debug("event delivered", "status", attempt.Status)
		return nil
	}
	failure := fmt.Errorf("deliver event %s to subscription %d: %s", dl.EventID, dl.SubscriptionID, attempt.Err)
	if state == doorledger.DeliveryFailed {
		log.Error("event could not be delivered in the retry window; giving up", "attempts", dl.Attempts+1, "err", attempt.Err)
	} else {
		log.Warn("event delivery failed; will retry", "attempts", dl.Attempts+1, "retry_in", delay, "err", attempt.Err)
	}
	return failure
}

// post makes one attempt: the answer, and how long the receiver asked to be
// left alone (Retry-After in seconds; 0 when it did not say).
func (d *Dispatcher) post(ctx context.Context, dl *doorledger.WebhookDelivery) (doorledger.WebhookAttempt, time.Duration) {
	if err := checkScheme(dl.URL); err != nil {
		return doorledger.WebhookAttempt{Err: err.Error()}, 0
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, dl.URL, bytes.NewReader(dl.Payload))
	if err != nil {
		return doorledger.WebhookAttempt{Err: "bad URL: " + err.Error()}, 0
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "Doorledger-Webhooks/1")
	req.Header.Set(devicectl.SignatureHeader, devicectl.Sign(dl.Secret, d.now(), dl.Payload))
	req.Header.Set(doorledger.EventIDHeader, dl.EventID)
	req.Header.Set(doorledger.EventTypeHeader, dl.EventType)
	req.Header.Set(doorledger.EventAttemptHeader, strconv.Itoa(dl.Attempts+1))
	resp, err := d.client().Do(req)
	if err != nil {
		var refused *refusedAddrError
		if errors.As(err, &refused) {
			return doorledger.WebhookAttempt{Err: refused.Error()}, 0
		}
		return doorledger.WebhookAttempt{Err: err.Error()}, 0
	}
	defer resp.Body.Close()
	body, readErr := io.ReadAll(io.LimitReader(resp.Body, maxResponseRead))
	a := doorledger.WebhookAttempt{Status: resp.StatusCode, Excerpt: string(body[:min(len(body), doorledger.MaxResponseExcerpt)])}
	switch {
	case resp.StatusCode >= 300 && resp.StatusCode < 400:
		a.Err = fmt.Sprintf("HTTP %d: redirects are not followed (to %q)", resp.StatusCode, resp.Header.Get("Location"))
	case resp.StatusCode < 200 || resp.StatusCode >= 300:
		a.Err = fmt.Sprintf("HTTP %d", resp.StatusCode)
	case readErr != nil:
		// The receiver answered 2xx: it has the event, whatever happened to
		// the rest of its answer.
	}
	var wait time.Duration
	if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && s > 0 && a.Err != "" {
		wait = time.Duration(s) * time.Second
	}
	return a, wait
}

// checkScheme refuses to post in clear anywhere but to this machine, as
// doorledger.ValidateEventURL does when a subscription is made: checked
// again here for a URL that reached the database some other way.
func checkScheme(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("bad URL: %w", err)
	}
	if u.Scheme == "https" {
		return nil
	}
	if u.Scheme == "http" && doorledger.ValidateEventURL(raw) == nil {
		return nil
	}
	return fmt.Errorf("refused to post to %s: only https, or http to this machine", u.Redacted())
}

// retryDelay is the wait after the given number of failed attempts.
func (d *Dispatcher) retryDelay(attempts int) time.Duration {
	delay, top := d.RetryDelay, d.MaxRetryDelay
	if delay <= 0 {
		delay = DefaultRetryDelay
	}
	if top <= 0 {
		top = DefaultMaxRetryDelay
	}
	for i := 1; i < attempts && delay < top; i++ {
		delay *= 2
	}
	return min(delay, top)
}

func (d *Dispatcher) interval() time.Duration {
	if d.Interval > 0 {
		return d.Interval
	}
	return DefaultInterval
}

func (d *Dispatcher) now() time.Time {
	if d.Now != nil {
		return d.Now()
	}
	return time.Now()
}

func (d *Dispatcher) client() *http.Client {
	if d.Client != nil {
		return d.Client
	}
	return defaultClient
}

var defaultClient = NewClient(false)

func (d *Dispatcher) logger() *slog.Logger {
	if d.Logger != nil {
		return d.Logger
	}
	return slog.Default()
}
