package devicectl

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	mathrand "math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/doorledger/doorledger"
)

// SignatureHeader carries the HMAC signature of a webhook body, both ways.
const SignatureHeader = "Doorledger-Signature"

// DefaultSignatureWindow is how far a signature's timestamp may be from now.
const DefaultSignatureWindow = 300 * time.Second

// Sign returns the SignatureHeader value for body sent at t:
// "t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">".
func Sign(secret []byte, t time.Time, body []byte) string {
	ts := strconv.FormatInt(t.Unix(), 10)
	return "t=" + ts + ",v1=" + hex.EncodeToString(mac(secret, ts, body))
}

func mac(secret []byte, ts string, body []byte) []byte {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(ts))
	m.Write([]byte{'.'})
	m.Write(body)
	return m.Sum(nil)
}

// VerifySignature checks a SignatureHeader value against body. It accepts a
// v1 signature made with any of secrets (the active one and, during a key
// rotation, the previous one), compared in constant time, whose timestamp is
// within window of now (DefaultSignatureWindow when window ≤ 0), past or
// future. A replay inside the window passes: the ingest endpoint makes it
// harmless by ignoring event ids it already has.
//
// Errors: EUNAUTHORIZED for a missing header, a stale timestamp or a bad
// signature; EINVALID for a malformed header.
func VerifySignature(header string, body []byte, secrets [][]byte, now time.Time, window time.Duration) error {
	sig, err := ParseSignature(header, now, window)
	if err != nil {
		return err
	}
	return sig.Verify(body, secrets)
}

// Signature is a SignatureHeader value, parsed, whose timestamp was within the
// window when it was parsed.
type Signature struct {
	Timestamp int64 // t=, Unix seconds
	ts        string
	v1        [][]byte
}

// ParseSignature reads a SignatureHeader value and checks its timestamp
// against the window as VerifySignature does, without the body: a receiver
// refuses a missing, malformed or stale header before it reads the body.
// Errors as VerifySignature's.
func ParseSignature(header string, now time.Time, window time.Duration) (*Signature, error) {
	if window <= 0 {
		window = DefaultSignatureWindow
	}
	header = strings.TrimSpace(header)
	if header == "" {
		return nil, doorledger.Errorf(doorledger.EUNAUTHORIZED, "Missing %s header.", SignatureHeader)
	}
	var s Signature
	for _, part := range strings.Split(header, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok {
			return nil, doorledger.Errorf(doorledger.EINVALID, "Malformed %s header: %q is not key=value.", SignatureHeader, part)
		}
		switch k {
		case "t":
			if s.ts != "" {
				return nil, doorledger.Errorf(doorledger.EINVALID, "Malformed %s header: more than one timestamp.", SignatureHeader)
			}
			s.ts = v
		case "v1":
			sig, err := hex.DecodeString(v)
			if err != nil || len(sig) != sha256.Size {
				return nil, doorledger.Errorf(doorledger.EINVALID, "Malformed %s header: v1 is not a hex SHA-256 HMAC.", SignatureHeader)
			}
			s.v1 = append(s.v1, sig)
		default:
			// Other schemes (a future v2) are ignored, as Stripe does.
		}
	}
	if s.ts == "" {
		return nil, doorledger.Errorf(doorledger.EINVALID, "Malformed %s header: no timestamp (t=).", SignatureHeader)
	}
	if len(s.v1) == 0 {
		return nil, doorledger.Errorf(doorledger.EINVALID, "Malformed %s header: no v1 signature.", SignatureHeader)
	}
	unix, err := strconv.ParseInt(s.ts, 10, 64)
	if err != nil || unix <= 0 {
		return nil, doorledger.Errorf(doorledger.EINVALID, "Malformed %s header: timestamp %q is not Unix seconds.", SignatureHeader, s.ts)
	}
	if skew := now.Sub(time.Unix(unix, 0)); skew > window || skew < -window {
		return nil, doorledger.Errorf(doorledger.EUNAUTHORIZED, "Stale %s: timestamp is %s from now, outside the %s window.", SignatureHeader, skew.Round(time.Second), window)
	}
	s.Timestamp = unix
	return &s, nil
}

// Verify checks that one of the signature's v1 values is the HMAC of body
// under one of secrets, in constant time: EUNAUTHORIZED when none is.
func (s *Signature) Verify(body []byte, secrets [][]byte) error {
	if len(secrets) == 0 {
		return errors.New("verify signature: no secret configured")
	}
	ok := false
	for _, secret := range secrets {
		want := mac(secret, s.ts, body)
		for _, sig := range s.v1 {
			if hmac.Equal(want, sig) {
				ok = true
			}
		}
	}
	if !ok {
		return doorledger.Errorf(doorledger.EUNAUTHORIZED, "Bad %s: no signature matches.", SignatureHeader)
	}
	return nil
}

// WebhookTarget is where, and with which secret, a device's desired state goes.
type WebhookTarget struct {
	URL    string
	Secret []byte
}

// WebhookConfig configures the webhook transport.
type WebhookConfig struct {
	// Target looks up a device's vendor endpoint and signing secret (per
	// device or per vendor). An error ends the push without a request.
	Target func(ctx context.Context, deviceID int64) (WebhookTarget, error)
	// HTTPClient defaults to a client with a 10 s timeout per attempt.
	HTTPClient *http.Client
	// MaxAttempts bounds the requests per push (default 5).
	MaxAttempts int
	// BaseDelay is the backoff before the second attempt (default 500 ms);
	// it doubles each time up to MaxDelay (default 30 s), with jitter.
	BaseDelay time.Duration
	MaxDelay  time.Duration
	Logger    *slog.Logger
	// Now is the clock used to sign (default time.Now).
	Now func() time.Time
}

// Webhook pushes desired state to vendor clouds over HTTPS.
type Webhook struct {
	cfg WebhookConfig
}

var _ doorledger.Transport = (*Webhook)(nil)

// NewWebhook returns a webhook transport.
func NewWebhook(cfg WebhookConfig) (*Webhook, error) {
	if cfg.Target == nil {
		return nil, errors.New("new webhook: Target is required")
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{Timeout: 10 * time.Second}
	}
	if cfg.MaxAttempts <= 0 {
		cfg.MaxAttempts = 5
	}
	if cfg.BaseDelay <= 0 {
		cfg.BaseDelay = 500 * time.Millisecond
	}
	if cfg.MaxDelay <= 0 {
		cfg.MaxDelay = 30 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Webhook{cfg: cfg}, nil
}

// Push POSTs d as JSON (the same body as the MQTT desired payload) to the
// device's vendor endpoint, signed in SignatureHeader. A 2xx answer means
// sent. Network errors, 5xx, 408 and 429 are retried with exponential backoff
// and jitter, up to MaxAttempts and while ctx lasts; any other 4xx is final.
func (w *Webhook) Push(ctx context.Context, d doorledger.DesiredState) error {
	body, err := MarshalDesired(d)
	if err != nil {
		return err
	}
	target, err := w.cfg.Target(ctx, d.DeviceID)
	if err != nil {
		return fmt.Errorf("webhook push device %d: target: %w", d.DeviceID, err)
	}
	var last error
	for attempt := 0; attempt < w.cfg.MaxAttempts; attempt++ {
		if attempt > 0 {
			delay := backoff(w.cfg.BaseDelay, w.cfg.MaxDelay, attempt-1)
			w.cfg.Logger.Warn("webhook push failed; will retry", "device", d.DeviceID, "attempt", attempt, "delay", delay, "error", last)
			t := time.NewTimer(delay)
			select {
			case <-ctx.Done():
				t.Stop()
				return fmt.Errorf("webhook push device %d: %w (last: %v)", d.DeviceID, ctx.Err(), last)
			case <-t.C:
			}
		}
		retry, err := w.post(ctx, target, body)
		if err == nil {
			return nil
		}
		last = err
		if !retry {
			return fmt.Errorf("webhook push device %d: %w", d.DeviceID, err)
		}
	}
	return fmt.Errorf("webhook push device %d: gave up after %d attempts: %w", d.DeviceID, w.cfg.MaxAttempts, last)
}

// post makes one signed request; retry says whether another attempt may help.
func (w *Webhook) post(ctx context.Context, target WebhookTarget, body []byte) (retry bool, err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target.URL, bytes.NewReader(body))
	if err != nil {
		return false, fmt.Errorf("new request: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "Doorledger-Webhook/1")
	req.Header.Set(SignatureHeader, Sign(target.Secret, w.cfg.Now(), body))
	resp, err := w.cfg.HTTPClient.Do(req)
	if err != nil {
		return ctx.Err() == nil, fmt.Errorf("post: %w", err)
	}
	defer resp.Body.Close()
	snippet, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10)) // let the connection be reused
	switch c := resp.StatusCode; {
	case c >= 200 && c < 300:
		return false, nil
	case c >= 500, c == http.StatusRequestTimeout, c == http.StatusTooManyRequests:
		return true, fmt.Errorf("vendor answered %s: %s", resp.Status, bytes.TrimSpace(snippet))
	default:
		return false, fmt.Errorf("vendor refused with %s: %s", resp.Status, bytes.TrimSpace(snippet))
	}
}

// backoff returns base·2^n capped at max, with "equal jitter" (between half
// and all of it), so many pushes failing together do not retry in step.
func backoff(base, max time.Duration, n int) time.Duration {
	d := base << min(n, 20)
	if d <= 0 || d > max {
		d = max
	}
	return d/2 + mathrand.N(d/2+1)
}
