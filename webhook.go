package doorledger

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"net"
	"net/netip"
	"slices"
	"strings"
	"time"
	"unicode/utf8"
)

// Outbound events: admins subscribe other systems (property-management
// software, a SIEM) to the portal's events by type. Each event is POSTed to
// the subscription's URL as JSON, signed as the portal signs its vendor
// webhooks (HMAC-SHA256 over "<timestamp>.<body>" with the subscription's
// secret, in the Doorledger-Signature header), and retried with backoff for
// WebhookRetryWindow. Delivery is at least once: a receiver tells a repeat by
// the event id, the same in every attempt and replay (the Doorledger-Event-Id
// header and the body's "id").
//
// Events are made from what the portal records in the same transaction as the
// change: the journal's entries and anomalous unlock events. A delivery is
// queued in that transaction, so a committed change is never lost between
// commit and send, and a change rolled back sends nothing.

// Event types a subscription may choose.
const (
	EventDeviceEnabled    = "device.enabled"    // a device's enable was requested (desired state enabled)
	EventDeviceRevoked    = "device.revoked"    // a device's disable was requested (one device, or a building's lockdown)
	EventDeviceConfirmed  = "device.confirmed"  // a device confirmed a command: it applied the state
	EventDeviceRefused    = "device.refused"    // a device refused a command
	EventConsentSigned    = "consent.signed"    // a signer signed a consent
	EventConsentWithdrawn = "consent.withdrawn" // a signer withdrew a consent
	EventConsentDisputed  = "consent.disputed"  // a signer disputed a consent
	EventUnlockAnomaly    = "unlock.anomaly"    // an unlock event was recorded with anomaly flags
	EventReportReady      = "report.ready"      // an audit report was generated
)

// EventTypes lists every event type, in display order.
var EventTypes = []string{EventDeviceEnabled, EventDeviceRevoked, EventDeviceConfirmed, EventDeviceRefused,
	EventConsentSigned, EventConsentWithdrawn, EventConsentDisputed, EventUnlockAnomaly, EventReportReady}

// EventTypeForAction returns the event type a journal action is delivered
// as, and false for an action no subscription can receive.
func EventTypeForAction(action string) (string, bool) {
	switch action {
	case "device.enable":
		return EventDeviceEnabled, true
	case "device.disable", "device.disable_many":
		return EventDeviceRevoked, true
	case "command.confirmed":
		return EventDeviceConfirmed, true
	case "command.refused":
		return EventDeviceRefused, true
	case "consent.sign":
		return EventConsentSigned, true
	case "consent.withdrawn":
		return EventConsentWithdrawn, true
	case "consent.disputed":
		return EventConsentDisputed, true
	case "report.generate":
		return EventReportReady, true
	}
	return "", false
}

// Event is what a subscription receives, the JSON body of the request.
type Event struct {
	ID         string    `json:"id"` // "evt_" and 32 hex digits: the same in every attempt and replay
	Type       string    `json:"type"`
	CreatedAt  time.Time `json:"created_at"`
	BuildingID int64     `json:"building_id,omitempty"`
	// Action, ObjectType and ObjectID, Actor and JournalEntry name the
	// journal entry the event was made from (none for an anomaly, which is an
	// unlock event: ObjectType "unlock_event").
	Action       string          `json:"action,omitempty"`
	ObjectType   string          `json:"object_type,omitempty"`
	ObjectID     int64           `json:"object_id,omitempty"`
	Actor        string          `json:"actor,omitempty"`
	JournalEntry int64           `json:"journal_entry,omitempty"`
	Data         json.RawMessage `json:"data,omitempty"` // the journal entry's detail, or the unlock event's fields
}

// NewEventID returns a fresh event id: "evt_" and 32 random hex digits.
func NewEventID() (string, error) {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return "evt_" + hex.EncodeToString(b), nil
}

// NewWebhookSecret returns a fresh subscription secret: WebhookSecretPrefix
// and 32 random bytes, base64url; and its fingerprint (the first 8 hex
// digits of its SHA-256), which tells it apart without revealing it.
func NewWebhookSecret() (secret, fingerprint string, err error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", "", err
	}
	secret = WebhookSecretPrefix + base64.RawURLEncoding.EncodeToString(b)
	sum := sha256.Sum256([]byte(secret))
	return secret, hex.EncodeToString(sum[:4]), nil
}

// NewJournalEvent is the event a journal entry makes (ID and CreatedAt are
// set when it is queued); false when its action makes none.
func NewJournalEvent(entryID int64, actor, action string, buildingID int64, objectType string, objectID int64, detail string) (*Event, bool) {
	typ, ok := EventTypeForAction(action)
	if !ok {
		return nil, false
	}
	return &Event{Type: typ, BuildingID: buildingID, Action: action, ObjectType: objectType, ObjectID: objectID,
		Actor: actor, JournalEntry: entryID, Data: json.RawMessage(detail)}, true
}

// NewAnomalyEvent is the event of an anomalous unlock event just recorded
// (ID and CreatedAt are set when it is queued).
func NewAnomalyEvent(ev *UnlockEvent) (*Event, error) {
	data, err := json.Marshal(map[string]any{
		"device_id": ev.DeviceID, "device_ref": ev.DeviceRef, "event_id": ev.EventID, "occurred_at": ev.OccurredAt.UTC(),
		"received_at": ev.ReceivedAt.UTC(), "method": ev.Method, "result": ev.Result, "anomalies": ev.Anomalies, "source": ev.Source,
	})
	if err != nil {
		return nil, err
	}
	return &Event{Type: EventUnlockAnomaly, BuildingID: ev.BuildingID, ObjectType: "unlock_event", ObjectID: ev.ID, Data: data}, nil
}

// Webhook headers besides the signature (devicectl.SignatureHeader).
const (
	EventIDHeader      = "Doorledger-Event-Id"
	EventTypeHeader    = "Doorledger-Event-Type"
	EventAttemptHeader = "Doorledger-Delivery-Attempt"
)

// WebhookRetryWindow is how long a delivery is retried before it is given up
// on ("failed"), from when it was queued or last replayed.
const WebhookRetryWindow = 24 * time.Hour

// WebhookSecretPrefix starts every subscription secret, so that secret
// scanners and people recognize one. The whole text is the HMAC secret.
const WebhookSecretPrefix = "dlwh_"

// MaxResponseExcerpt bounds the part of a receiver's answer kept with a
// delivery (bytes).
const MaxResponseExcerpt = 1024

// WebhookSubscription is another system subscribed to some event types.
type WebhookSubscription struct {
	ID                int64
	Name              string
	URL               string
	EventTypes        []string // from EventTypes, in its order
	SecretFingerprint string   // the first 8 hex digits of the secret's SHA-256
	CreatedAt         time.Time
	CreatedBy         string
	DisabledAt        time.Time // zero while active
}

// Active reports whether events are still queued for the subscription.
func (s *WebhookSubscription) Active() bool { return s.DisabledAt.IsZero() }

// WebhookSubscriptionInput is what an admin types to subscribe a system.
type WebhookSubscriptionInput struct {
	Name       string
	URL        string
	EventTypes []string
}

// Validate trims and checks the input; EINVALID with a message per field
// (name, url, event_types).
func (in *WebhookSubscriptionInput) Validate() error {
	v := Validation{}
	in.Name = strings.TrimSpace(in.Name)
	in.URL = strings.TrimSpace(in.URL)
	if in.Name == "" {
		v.Add("name", "Enter a name for the receiving system.")
	} else if len(in.Name) > 200 {
		v.Add("name", "Keep the name under 200 characters.")
	}
	ValidateLine(v, "name", in.Name)
	if err := ValidateEventURL(in.URL); err != nil {
		v.Add("url", ErrorMessage(err))
	}
	var types []string
	for _, t := range EventTypes {
		if slices.Contains(in.EventTypes, t) {
			types = append(types, t)
		}
	}
	for _, t := range in.EventTypes {
		if !slices.Contains(EventTypes, t) {
			v.Add("event_types", "Unknown event type "+ScrubText(t, false)+".")
		}
	}
	if len(types) == 0 {
		v.Add("event_types", "Choose at least one event type.")
	}
	in.EventTypes = types
	return v.Err()
}

// ValidateEventURL accepts an https URL, or an http one to a loopback address
// (a receiver on this machine, tests): events and their signatures must not
// cross a network in clear. Credentials and fragments are refused. Whether
// the address it resolves to may be reached (private networks) is decided
// when it is called (WebhookAddressAllowed). EINVALID.
func ValidateEventURL(raw string) error {
	return validateSignedURL(raw, "Enter the URL events are posted to.", "https://pms.example.com/doorledger/events")
}

// WebhookAddressAllowed reports whether an event may be posted to ip: a
// public unicast address, or any address when allowPrivate (the operator's
// flag for receivers on the portal's own network). Loopback, private,
// link-local (cloud metadata at 169.254.169.254), carrier-grade NAT,
// unspecified and multicast addresses are otherwise refused, so that a
// subscription cannot make the portal reach what only it can reach (SSRF).
func WebhookAddressAllowed(ip net.IP, allowPrivate bool) bool {
	if allowPrivate {
		return true
	}
	addr, ok := netip.AddrFromSlice(ip)
	if !ok {
		return false
	}
	addr = addr.Unmap()
	switch {
	case addr.IsLoopback(), addr.IsPrivate(), addr.IsLinkLocalUnicast(), addr.IsLinkLocalMulticast(),
		addr.IsInterfaceLocalMulticast(), addr.IsMulticast(), addr.IsUnspecified():
		return false
	}
	for _, p := range nonPublicPrefixes {
		if p.Contains(addr) {
			return false
		}
	}
	return true
}

// nonPublicPrefixes are ranges net/netip does not call private but that are
// not the public internet either.
var nonPublicPrefixes = []netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/8"),     // "this network"
	netip.MustParsePrefix("100.64.0.0/10"), // carrier-grade NAT
	netip.MustParsePrefix("192.0.0.0/24"),  // IETF protocol assignments
	netip.MustParsePrefix("198.18.0.0/15"), // benchmarking
	netip.MustParsePrefix("240.0.0.0/4"),   // reserved, broadcast
	netip.MustParsePrefix("64:ff9b::/96"),  // NAT64: may embed a private IPv4 address
}

// Delivery states.
const (
	DeliveryPending   = "pending"   // not tried yet, or due again after a replay
	DeliveryRetrying  = "retrying"  // failed, to be tried again at NextAttemptAt
	DeliveryDelivered = "delivered" // the receiver answered 2xx
	DeliveryFailed    = "failed"    // given up on: WebhookRetryWindow passed, or its subscription was disabled
)

// WebhookDelivery is one event on its way to one subscription.
type WebhookDelivery struct {
	ID               int64
	SubscriptionID   int64
	SubscriptionName string
	URL              string // the subscription's
	EventID          string
	EventType        string
	BuildingID       int64
	CreatedAt        time.Time
	Payload          []byte // the request body, the Event as JSON
	Attempts         int
	GiveUpAt         time.Time // when a failure is final
	NextAttemptAt    time.Time // zero: due now
	LastAttemptAt    time.Time
	DeliveredAt      time.Time
	FailedAt         time.Time
	ResponseStatus   int    // the last attempt's HTTP status; 0: no answer
	ResponseExcerpt  string // the last answer's first MaxResponseExcerpt bytes
	LastError        string // why the last attempt failed ("" after a success)
	// Secret is the subscription's signing secret: set only for the
	// dispatcher (PendingWebhookDeliveries).
	Secret []byte
}

// State is the delivery's state (DeliveryPending, …).
func (d *WebhookDelivery) State() string {
	switch {
	case !d.DeliveredAt.IsZero():
		return DeliveryDelivered
	case !d.FailedAt.IsZero():
		return DeliveryFailed
	case d.Attempts > 0:
		return DeliveryRetrying
	}
	return DeliveryPending
}

// WebhookAttempt is the outcome of one attempt to deliver.
type WebhookAttempt struct {
	Status  int    // HTTP status; 0 when no answer came
	Excerpt string // the answer's first bytes (cut to MaxResponseExcerpt)
	Err     string // why it failed ("" when the receiver answered 2xx)
}

// Cut bounds the attempt for storage: the excerpt and the error to
// MaxResponseExcerpt bytes each, cut at a character, valid UTF-8, control
// characters other than line breaks and tabs replaced.
func (a WebhookAttempt) Cut() WebhookAttempt {
	a.Excerpt, a.Err = cutExcerpt(a.Excerpt), cutExcerpt(a.Err)
	return a
}

func cutExcerpt(s string) string {
	if len(s) > MaxResponseExcerpt {
		i := MaxResponseExcerpt
		for i > 0 && !utf8.RuneStart(s[i]) {
			i--
		}
		s = s[:i]
	}
	s = strings.ToValidUTF8(s, "\uFFFD")
	return strings.Map(func(r rune) rune {
		if r < 0x20 && r != '\n' && r != '\t' || r == 0x7f {
			return '\uFFFD'
		}
		return r
	}, s)
}

// OK reports whether the attempt delivered the event.
func (a WebhookAttempt) OK() bool { return a.Err == "" && a.Status >= 200 && a.Status < 300 }

// WebhookDeliveryFilter selects deliveries for the admins' list.
type WebhookDeliveryFilter struct {
	SubscriptionID int64  // 0: every subscription
	State          string // a Delivery state; "": any
	Limit          int    // ≤ 0 or > 500: 100
}

// WebhookService keeps subscriptions and their deliveries (admins), and
// hands the dispatcher what is due.
type WebhookService interface {
	// FindWebhookSubscriptions lists every subscription, active ones first (admins).
	FindWebhookSubscriptions(ctx context.Context) ([]*WebhookSubscription, error)
	// CreateWebhookSubscription subscribes a system and returns its signing
	// secret, shown this once (admins); journaled. EINVALID per field.
	CreateWebhookSubscription(ctx context.Context, in WebhookSubscriptionInput) (*WebhookSubscription, string, error)
	// DisableWebhookSubscription stops queuing events for a subscription and
	// gives up on its undelivered ones (admins); journaled. ENOTFOUND;
	// ECONFLICT when it is disabled already.
	DisableWebhookSubscription(ctx context.Context, id int64) error
	// FindWebhookDeliveries lists deliveries, newest first (admins).
	FindWebhookDeliveries(ctx context.Context, f WebhookDeliveryFilter) ([]*WebhookDelivery, error)
	// ReplayWebhookDelivery sends a delivery again, with the same event id,
	// from now on for another WebhookRetryWindow (admins), whatever its
	// state; journaled. ENOTFOUND; ECONFLICT when its subscription is disabled.
	ReplayWebhookDelivery(ctx context.Context, id int64) error

	// PendingWebhookDeliveries returns up to limit deliveries that are due
	// (not delivered, not given up on, next attempt not after the services'
	// clock) of active subscriptions, oldest first, with their secrets (the
	// dispatcher).
	PendingWebhookDeliveries(ctx context.Context, limit int) ([]*WebhookDelivery, error)
	// RecordWebhookAttempt records one attempt: delivered when a.OK();
	// otherwise due again retryAfter from now (the services' clock; stored,
	// so a restarted portal keeps to it) but never after GiveUpAt, and given
	// up on (FailedAt) when the attempt was made at or after GiveUpAt. It
	// returns the delivery's state afterwards. ENOTFOUND.
	RecordWebhookAttempt(ctx context.Context, id int64, a WebhookAttempt, retryAfter time.Duration) (string, error)
	// PruneWebhookDeliveries deletes the deliveries done with (delivered or
	// given up on) that were queued more than keep ago by the services'
	// clock, and returns how many (the dispatcher, now and then).
	PruneWebhookDeliveries(ctx context.Context, keep time.Duration) (int64, error)
}

// WebhookDeliveryRetention is how long a delivery done with stays listed.
const WebhookDeliveryRetention = 30 * 24 * time.Hour
