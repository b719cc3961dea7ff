package doorledger

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"net"
	"net/url"
	"slices"
	"strings"
	"time"
)

// VendorIntegration is a vendor's cloud that controls some of the portal's
// devices over HTTPS. The portal pushes a device's desired state to the
// integration's webhook; the vendor posts unlock events and confirmations of
// the state its devices applied to the portal's API. Every request, both ways,
// is signed with HMAC-SHA256 over its timestamp and body with one of the
// integration's keys: the current one, or during a rotation the previous one.
type VendorIntegration struct {
	ID          int64
	Name        string
	WebhookURL  string        // where desired state is POSTed
	BuildingIDs []int64       // the buildings it may report for, by name
	Buildings   []string      // their names, in the same order
	DeviceIDs   []int64       // the devices it controls, sorted
	Key         VendorKeyInfo // the current key: the portal signs with it
	PreviousKey VendorKeyInfo // still accepted until removed; zero when none
	Retired     bool          // its keys no longer work
	RetiredAt   time.Time
	CreatedAt   time.Time
}

// CoversBuilding reports whether the integration may report for the building.
func (v *VendorIntegration) CoversBuilding(id int64) bool { return slices.Contains(v.BuildingIDs, id) }

// VendorKeyInfo tells a key apart without revealing it.
type VendorKeyInfo struct {
	Fingerprint string // the first 8 hex digits of the key's SHA-256; "" when there is no key
	CreatedAt   time.Time
}

// VendorKeyPrefix starts every vendor key, so that secret scanners and people
// recognize one. The whole key, prefix included, is the HMAC secret.
const VendorKeyPrefix = "dlvk_"

// NewVendorKey returns a fresh key: the prefix and 32 random bytes, base64url.
// The whole text is the HMAC secret.
func NewVendorKey() (string, error) {
	buf := make([]byte, 32)
	if _, err := rand.Read(buf); err != nil {
		return "", err
	}
	return VendorKeyPrefix + base64.RawURLEncoding.EncodeToString(buf), nil
}

// VendorKeyFingerprint is how a key is told apart without revealing it
// (VendorKeyInfo.Fingerprint): the first 8 hex digits of its SHA-256.
func VendorKeyFingerprint(key string) string {
	sum := sha256.Sum256([]byte(key))
	return hex.EncodeToString(sum[:4])
}

// VendorIntegrationInput is what an admin types to create an integration.
type VendorIntegrationInput struct {
	Name        string
	WebhookURL  string
	BuildingIDs []int64
}

// Validate trims and checks the input; EINVALID with a message per field.
func (in *VendorIntegrationInput) Validate() error {
	v := Validation{}
	in.Name = strings.TrimSpace(in.Name)
	in.WebhookURL = strings.TrimSpace(in.WebhookURL)
	if in.Name == "" {
		v.Add("name", "Enter the vendor's name.")
	} else if len(in.Name) > 200 {
		v.Add("name", "Keep the name under 200 characters.")
	}
	ValidateLine(v, "name", in.Name)
	ValidateLine(v, "webhook_url", in.WebhookURL)
	if err := ValidateWebhookURL(in.WebhookURL); err != nil {
		v.Add("webhook_url", ErrorMessage(err))
	}
	slices.Sort(in.BuildingIDs)
	in.BuildingIDs = slices.Compact(in.BuildingIDs)
	if len(in.BuildingIDs) == 0 {
		v.Add("buildings", "Choose at least one building the vendor reports for.")
	}
	return v.Err()
}

// ValidateWebhookURL accepts an https URL, or an http one to a loopback
// address only (a local simulator, tests): desired state and its signature
// must not cross a network in clear. Credentials in the URL are refused (the
// signature authenticates the portal). EINVALID.
func ValidateWebhookURL(raw string) error {
	return validateSignedURL(raw, "Enter the vendor's webhook URL.", "https://api.vendor.example/doorledger")
}

// validateSignedURL is ValidateWebhookURL's check, which the portal's other
// signed requests (outbound events) share: empty says what is missing,
// example is a full URL to show.
func validateSignedURL(raw, empty, example string) error {
	u, err := url.Parse(raw)
	switch {
	case raw == "":
		return Errorf(EINVALID, "%s", empty)
	case len(raw) > 2000:
		return Errorf(EINVALID, "Keep the URL under 2000 characters.")
	case err != nil || u.Host == "" || u.Opaque != "":
		return Errorf(EINVALID, "Enter a full URL, such as %s.", example)
	case u.User != nil:
		return Errorf(EINVALID, "Put no user name or password in the URL; requests are signed instead.")
	case u.Fragment != "":
		return Errorf(EINVALID, "Remove the #fragment from the URL.")
	case u.Scheme == "https":
		return nil
	case u.Scheme == "http" && isLoopback(u.Hostname()):
		return nil
	case u.Scheme == "http":
		return Errorf(EINVALID, "Use https; plain http is allowed only to this machine (localhost).")
	}
	return Errorf(EINVALID, "Use an https URL.")
}

func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// VendorRequest identifies one signed request of a vendor integration, so that
// a replay of it (the same signed timestamp and body) is refused: a vendor
// re-sends by signing again, which is always safe because unlock events are
// idempotent by their event ids.
type VendorRequest struct {
	VendorID int64
	SignedAt time.Time // the signature's timestamp
	Digest   [32]byte  // SHA-256 of what the signature covers, "<t>.<body>"
	// Until is when the signature goes stale: after it, the record that it was
	// used may be dropped, since the signature is refused anyway.
	Until time.Time
}

// DeviceRoute says how desired state reaches a device: over MQTT when
// VendorID is 0, otherwise POSTed to its vendor integration's webhook, signed
// with the integration's current key.
type DeviceRoute struct {
	VendorID   int64
	WebhookURL string
	Key        []byte
}

// VendorService keeps vendor integrations (admins manage them) and serves
// their signed machine API. The machine methods run with no user in ctx: the
// caller has proved it holds one of the integration's keys.
type VendorService interface {
	// FindVendorIntegrations lists every integration, active ones first (admins).
	FindVendorIntegrations(ctx context.Context) ([]*VendorIntegration, error)
	// FindVendorIntegrationByID returns one (admins). ENOTFOUND.
	FindVendorIntegrationByID(ctx context.Context, id int64) (*VendorIntegration, error)
	// CreateVendorIntegration creates one with its first key, returned once
	// (admins). EINVALID, ECONFLICT when an active integration has the name.
	CreateVendorIntegration(ctx context.Context, in VendorIntegrationInput) (*VendorIntegration, string, error)
	// RotateVendorKey makes a new current key, returned once; the current key
	// becomes the previous one and stays valid until removed (an older previous
	// key is dropped). ECONFLICT for a retired integration.
	RotateVendorKey(ctx context.Context, id int64) (string, error)
	// RemovePreviousVendorKey stops accepting the previous key. ECONFLICT when there is none.
	RemovePreviousVendorKey(ctx context.Context, id int64) error
	// RetireVendorIntegration stops accepting its keys at once. Its devices
	// keep it until moved, and pushes to them fail visibly meanwhile.
	RetireVendorIntegration(ctx context.Context, id int64) error
	// SetDeviceVendor puts a device under an integration, or back on MQTT with
	// vendorID 0 (admins). EINVALID when the integration does not cover the
	// device's building, ECONFLICT when it is retired or the device is.
	SetDeviceVendor(ctx context.Context, deviceID, vendorID int64) error

	// VendorKeys returns the integration's active keys, current first, to
	// verify a signature with. EUNAUTHORIZED for an unknown or retired one.
	VendorKeys(ctx context.Context, vendorID int64) ([][]byte, error)
	// RecordVendorEvents records a vendor's batch of unlock events, all or
	// nothing, once committed. Each event must be for a device of one of the
	// integration's buildings (a device named only by its reference in such a
	// building is recorded as unknown_device). EINVALID names the first bad
	// event ("event 3: …", Fields per event); ECONFLICT for a replayed request.
	RecordVendorEvents(ctx context.Context, req VendorRequest, events []UnlockEvent) (*ImportResult, error)
	// ReportVendorState records the state a device of the integration says it
	// applied, confirming its command (DeviceReports.ReportState). EINVALID for
	// a malformed report or a device the integration does not control;
	// ECONFLICT for a replayed request.
	ReportVendorState(ctx context.Context, req VendorRequest, r ReportedState) error
}
