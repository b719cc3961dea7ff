package doorledger

import (
	"context"
	"fmt"
	"strings"
	"time"
)

// ConsentStatus is where a consent stands. Signed consents are immutable; the
// later facts (withdrawal, dispute, lapse) are recorded beside them.
type ConsentStatus string

const (
	ConsentAwaiting  ConsentStatus = "awaiting_signature" // requested, not yet signed
	ConsentSigned    ConsentStatus = "signed"             // signed and verified: the only active status
	ConsentDeclined  ConsentStatus = "declined"           // the signer said no
	ConsentWithdrawn ConsentStatus = "withdrawn"          // the signer took it back
	ConsentDisputed  ConsentStatus = "disputed"           // the signer says "I did not sign this"
	ConsentLapsed    ConsentStatus = "lapsed"             // its period ran out without renewal
)

// ConsentStatuses lists every status in the order pages group them.
var ConsentStatuses = []ConsentStatus{ConsentAwaiting, ConsentSigned, ConsentDeclined, ConsentWithdrawn, ConsentDisputed, ConsentLapsed}

// Active reports whether a consent in this status permits enabling its devices.
func (s ConsentStatus) Active() bool { return s == ConsentSigned }

// VerificationMethod is how the signer proved they hold the registered address.
type VerificationMethod string

const (
	VerifyLink VerificationMethod = "link" // opened the one-time link mailed to them
	VerifyCode VerificationMethod = "code" // typed the 6-digit code mailed to them, on the installer's screen
)

// DeviceDetails describe the device a consent is for.
type DeviceDetails struct {
	Vendor   string
	Model    string
	Serial   string
	Location string // e.g. "main lobby intercom panel"
	Opens    string // which door(s) it opens, and for whom
}

// Consent is a request to an authorized signer and, once signed, the signer's
// consent with its evidence.
type Consent struct {
	ID           int64
	BuildingID   int64
	BuildingName string
	Device       DeviceDetails
	DeviceID     int64
	InstallerID  int64
	Installer    string // name
	Company      string // installer's company
	SignerID     int64
	Signer       Signer // the roster entry asked (as it was)
	Status       ConsentStatus
	InPerson     bool // signed on the installer's screen with a mailed code
	RequestedAt  time.Time
	ExpiresAt    time.Time // lapse time once signed
	RenewalOf    int64     // the consent this one renews, if any

	// Evidence, set once at signing and never changed.
	Signature  *ConsentSignature
	StatusNote string // decline/withdrawal/dispute reason
	StatusAt   time.Time
}

// ConsentSignature is the evidence captured when the signer signed.
type ConsentSignature struct {
	TermsSHA256  string // hex SHA-256 of the exact canonical terms shown
	Terms        string // the canonical terms document itself
	TypedName    string
	SignaturePNG []byte // validated and re-encoded
	SignedAt     time.Time
	Timezone     string // the building's, for display beside UTC
	IP           string
	UserAgent    string
	Method       VerificationMethod
	SignerID     int64
	// NameDiffers: the typed name differs from the roster name (namecheck's
	// rule) and the signer confirmed signing with it. Only the roster address
	// is verified, never the name; pages and reports print both names then.
	NameDiffers bool
}

// ConsentRequest is what an installer submits for a building.
type ConsentRequest struct {
	Device   DeviceDetails
	SignerID int64   // chosen from the roster; never an address typed by the installer
	InPerson bool    // sign on the installer's screen with a mailed 6-digit code
	Photos   []Photo // validated and re-encoded by the caller
}

// Photo is an installation photo.
type Photo struct {
	ID          int64
	ContentType string // image/jpeg or image/png
	Data        []byte
	SHA256      string
}

// Validate checks and normalizes the request's fields.
func (r *ConsentRequest) Validate() error {
	v := Validation{}
	d := &r.Device
	for _, f := range []struct {
		name, label string
		val         *string
	}{
		{"vendor", "the vendor", &d.Vendor}, {"model", "the model", &d.Model}, {"serial", "the serial number", &d.Serial},
		{"location", "where it is installed", &d.Location}, {"opens", "which door it opens, and for whom", &d.Opens},
	} {
		*f.val = strings.TrimSpace(*f.val)
		if *f.val == "" {
			v.Add(f.name, "Enter "+f.label+".")
		} else if len(*f.val) > 300 {
			v.Add(f.name, "Keep this under 300 characters.")
		}
		ValidateLine(v, f.name, *f.val)
	}
	if r.SignerID <= 0 {
		v.Add("signer_id", "Choose who is asked to sign.")
	}
	if len(r.Photos) > MaxPhotos {
		v.Add("photos", fmt.Sprintf("Attach at most %d photos.", MaxPhotos))
	}
	return v.Err()
}

// MaxPhotos bounds the photos of one request.
const MaxPhotos = 6

// SignInput is what the signer submits on the signing page.
type SignInput struct {
	TypedName    string
	AgreeESign   bool   // "I agree to sign electronically"
	SignaturePNG []byte // validated and re-encoded by the caller
	TermsSHA256  string // hash of the terms the page showed; signing refuses if they changed
	IP           string
	UserAgent    string
	// ConfirmNameDiffers: "sign with this name anyway". A typed name that
	// differs from the roster name is refused (EINVALID on typed_name and
	// name_confirm) unless the signer confirms it.
	ConfirmNameDiffers bool
}

// ConsentEvent is one fact on a consent's timeline.
type ConsentEvent struct {
	At   time.Time
	Kind string // requested, mailed, opened, code_sent, code_failed, signed, declined, withdrawn, disputed, lapsed,
	// links_withdrawn (the signer left the roster), links_mailed (withdraw/dispute links sent again), renewal_requested
	Note string
}

// ConsentFilter selects consents of one building (and optionally one installer).
type ConsentFilter struct {
	BuildingID  int64
	InstallerID int64
}

// SigningSession is what the signing page shows: the consent, its building, and
// the exact terms the signer will sign.
type SigningSession struct {
	Consent     *Consent
	Building    *Building
	Terms       string // as shown: on the installer's screen, with the signer's address masked
	TermsSHA256 string // of the exact terms signed (with the address), which the form posts back
	// Done: the link's consent is past signing (signed, declined, or ended
	// since). The page says what happened and when instead of asking for a
	// signature; Consent holds only what the signer saw (see ForSigner), and
	// Terms is empty.
	Done bool
}

// MaskedAddress stands for a signer's address where installers read: their
// consent page, its timeline and the terms shown on their screen.
const MaskedAddress = "[registered address, hidden from installers]"

// ForInstaller returns a copy of c as an installer may see it: no contact data
// of the signer (the address is masked, in the terms too), no IP address, user
// agent or signature image. The terms' SHA-256 stays that of the bytes signed.
func (c *Consent) ForInstaller() *Consent {
	out := *c
	out.Signer.Email = MaskedAddress
	if c.Signature != nil {
		sig := *c.Signature
		sig.Terms = MaskAddress(sig.Terms, c.Signer.Email)
		sig.IP, sig.UserAgent, sig.SignaturePNG = "", "", nil
		out.Signature = &sig
	}
	return &out
}

// MaskAddress replaces every occurrence of addr in text with MaskedAddress.
func MaskAddress(text, addr string) string {
	if addr == "" {
		return text
	}
	return strings.ReplaceAll(text, addr, MaskedAddress)
}

// ForSigner returns what the holder of a link mailed to the signer may see of
// c once it is past signing: the request as they read it, its status and the
// dates; none of the evidence (typed name, image, IP, user agent), no notes.
func (c *Consent) ForSigner() *Consent {
	out := Consent{ID: c.ID, BuildingID: c.BuildingID, BuildingName: c.BuildingName, Device: c.Device,
		Installer: c.Installer, Company: c.Company, Status: c.Status, InPerson: c.InPerson,
		RequestedAt: c.RequestedAt, ExpiresAt: c.ExpiresAt, StatusAt: c.StatusAt,
		Signer: Signer{Name: c.Signer.Name, Title: c.Signer.Title, Active: c.Signer.Active}}
	if c.Signature != nil {
		out.Signature = &ConsentSignature{SignedAt: c.Signature.SignedAt, Timezone: c.Signature.Timezone, Method: c.Signature.Method}
	}
	return &out
}

// SignedByRemovedSigner reports whether c was signed by someone since taken
// off the roster. The consent stays valid (they were authorized when they
// signed), but pages and reports flag it, and managers may ask a current
// signer to renew.
func (c *Consent) SignedByRemovedSigner() bool { return c.Signature != nil && !c.Signer.Active }

// Stranded reports whether c awaits the signature of someone since taken off
// the roster: nobody can sign it; managers may ask a current signer instead.
func (c *Consent) Stranded() bool { return c.Status == ConsentAwaiting && !c.Signer.Active }

// ConsentService runs the consent flow. Installer methods read the signed-in
// installer from ctx; signer methods take the one-time token (signers have no
// account) and answer ENOTFOUND for any token that is unknown, used or expired,
// alike, so a guessed token learns nothing.
type ConsentService interface {
	// RequestConsent records the request, registers its device as awaiting
	// consent, and mails the signer a one-time link (or, in person, a code).
	// Installers only, for buildings they were invited to (ENOTFOUND otherwise).
	RequestConsent(ctx context.Context, buildingID int64, r ConsentRequest) (*Consent, error)
	// FindConsentByID: the building's managers, board and admins; an installer only their own.
	FindConsentByID(ctx context.Context, id int64) (*Consent, error)
	// FindConsents lists a building's consents (installers: only their own).
	FindConsents(ctx context.Context, f ConsentFilter) ([]*Consent, error)
	// FindMySubmissions lists the signed-in installer's requests in every building.
	FindMySubmissions(ctx context.Context) ([]*Consent, error)
	// ConsentTimeline returns the consent's facts in order.
	ConsentTimeline(ctx context.Context, id int64) ([]ConsentEvent, error)
	// ConsentPhotos returns the installation photos.
	ConsentPhotos(ctx context.Context, id int64) ([]Photo, error)

	// OpenSigning resolves a signing link and records that it was opened. Once
	// the consent is past signing (signed, declined, ended), the link answers a
	// session with Done set, whether or not the link itself was used, so the
	// signer learns what happened instead of "not found". ECONFLICT when the
	// signer was taken off the roster: nobody can sign it.
	OpenSigning(ctx context.Context, token string) (*SigningSession, error)
	// Sign signs by link. EINVALID for a missing name, agreement or signature,
	// or a typed name that differs from the roster's and is not confirmed;
	// ECONFLICT when the signer is no longer on the roster.
	Sign(ctx context.Context, token string, in SignInput) (*Consent, error)
	// Decline refuses by link; the managers are told.
	Decline(ctx context.Context, token, reason string) error

	// SendCode mails the signer a 6-digit code for signing in person (installer).
	SendCode(ctx context.Context, consentID int64) error
	// SignInPerson signs on the installer's screen with the mailed code: 5 tries,
	// 10 minutes; ETOOMANY after that, EINVALID for a wrong code (and as Sign).
	// SendCode, InPersonSession and SignInPerson answer ECONFLICT when the
	// signer is no longer on the roster.
	SignInPerson(ctx context.Context, consentID int64, code string, in SignInput) (*Consent, error)
	// InPersonSession is the signing page's content for the installer's screen.
	InPersonSession(ctx context.Context, consentID int64) (*SigningSession, error)

	// OpenAfterSigning resolves a withdraw or dispute link from the confirmation
	// mail and says which it is. Once the consent has ended (or the link was
	// used), the session has Done set, as OpenSigning's.
	OpenAfterSigning(ctx context.Context, token string) (*SigningSession, string, error)
	// MailEndLinks mails the signer, at their registered address, new withdraw
	// and "I did not sign this" links for a signed consent. Any link mailed for
	// the consent reaches it (a used signing link too): it can only send the
	// signer mail, never end the consent itself. ETOOMANY past EndLinkMailsPerDay,
	// ECONFLICT when the consent is no longer signed.
	MailEndLinks(ctx context.Context, token string) error
	// EndByToken withdraws or disputes ("I did not sign this") by link: every
	// device under the consent is disabled at once and the managers are alerted.
	EndByToken(ctx context.Context, token, reason string) (*Consent, error)
	// LapseDue lapses signed consents whose period ran out (as withdrawal), and
	// returns how many.
	LapseDue(ctx context.Context) (int, error)
	// RequestRenewal asks a signer on the roster to sign a consent again
	// (managers): a new consent for the same device, which moves onto it when
	// signed. signerID 0 asks the consent's own signer. A signed consent can be
	// renewed, and a request whose signer was taken off the roster can be asked
	// of a current signer instead. EINVALID for a signer not on the roster,
	// ECONFLICT for a consent in another state.
	RequestRenewal(ctx context.Context, consentID, signerID int64) (*Consent, error)
}

// Consent flow limits.
const (
	SigningLinkTTL     = 7 * 24 * time.Hour // a signing link works this long, once
	CodeTTL            = 10 * time.Minute   // an in-person code works this long
	CodeMaxAttempts    = 5                  // wrong codes allowed per code
	CodesPerHour       = 3                  // codes mailed per consent per hour
	MaxSignatureSize   = 1 << 20            // bytes of the drawn signature PNG
	MaxPhotoSize       = 10 << 20           // bytes of one installation photo
	EndLinkMailsPerDay = 3                  // withdraw/dispute links mailed again per consent per day
)
