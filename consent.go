package doorledger

import (
	"context"
	"fmt"
	"sort"
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
	// ConsentExpired: a request that was not signed, by as many signers as
	// its policy requires, within its period. Stored as an awaiting request
	// with its expiry recorded (expired_at); it can be re-sent as a new one.
	ConsentExpired ConsentStatus = "expired"
)

// ConsentStatuses lists every status in the order pages group them.
var ConsentStatuses = []ConsentStatus{ConsentAwaiting, ConsentSigned, ConsentDeclined, ConsentWithdrawn, ConsentDisputed, ConsentLapsed, ConsentExpired}

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
	// Signer is the roster entry asked (as it is now): a single-signer
	// request's signer; under a policy of several, the first named until the
	// consent is signed, then the signer whose signature satisfied it.
	Signer      Signer
	Status      ConsentStatus
	InPerson    bool // signed on the installer's screen with a mailed code
	RequestedAt time.Time
	ExpiresAt   time.Time // lapse time once signed
	RenewalOf   int64     // the consent this one renews, if any
	ResendOf    int64     // the expired request this one sends again, if any

	// Policy is the building's consent policy in force when the request was
	// made, recorded with it (DefaultPolicy for requests made before
	// policies existed).
	Policy *ConsentPolicy
	// Signers are the signers the request names, in order, each with their
	// signature once they signed; Need is what the request still needs.
	Signers []RequestSigner
	Need    Need
	// RequestExpiresAt: an unsigned request expires then (zero for requests
	// made before requests expired); ExpiredAt is when it was marked expired.
	RequestExpiresAt time.Time
	ExpiredAt        time.Time
	// Terms and TermsSHA256 are the stored terms: a policy request's are
	// fixed when it is made and signed by each signer; an older request's
	// are stored when it is signed.
	Terms       string
	TermsSHA256 string

	// Evidence, set once at signing and never changed: the signature that
	// made the consent signed (its policy's last one). Every signature is in
	// Signers.
	Signature  *ConsentSignature
	StatusNote string // decline/withdrawal/dispute reason
	StatusAt   time.Time

	// Paper is the signed paper form attached to the request, if any (its
	// files without their data); loaded with one consent, not with lists.
	Paper *PaperForm
}

// Signatures returns the signatures recorded on the request, in the order
// they were given.
func (c *Consent) Signatures() []*ConsentSignature {
	var out []*ConsentSignature
	for _, rs := range c.Signers {
		if rs.Signature != nil {
			out = append(out, rs.Signature)
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].SignedAt.Before(out[j].SignedAt) })
	return out
}

// RequestSigner returns the named signer with the roster id, or nil.
func (c *Consent) RequestSigner(signerID int64) *RequestSigner {
	for i := range c.Signers {
		if c.Signers[i].Signer.ID == signerID {
			return &c.Signers[i]
		}
	}
	return nil
}

// WaitingFor returns, under ordered signing, the earlier signers who must
// sign before the signer with the roster id (nil when it is their turn).
func (c *Consent) WaitingFor(signerID int64) []Signer {
	var out []Signer
	for _, rs := range c.Signers {
		if rs.Signer.ID == signerID {
			if rs.State != SignerWaiting {
				return nil
			}
			return out
		}
		if rs.State == SignerToSign || rs.State == SignerWaiting {
			out = append(out, rs.Signer)
		}
	}
	return nil
}

// SignerOf returns the named signer with the roster id (the request's one
// signer when id is 0 or the request predates named signers).
func (c *Consent) SignerOf(id int64) *RequestSigner {
	if id == 0 {
		id = c.SignerID
	}
	if rs := c.RequestSigner(id); rs != nil {
		return rs
	}
	return &RequestSigner{Signer: c.Signer, Position: 1, State: SignerToSign}
}

// WaitingWords names the signers a turn waits for: "the President (Paula Prez)".
func WaitingWords(list []Signer) string {
	words := make([]string, len(list))
	for i, s := range list {
		words[i] = "the " + s.Title + " (" + s.Name + ")"
	}
	return JoinAnd(words)
}

// WaitingError answers a signer who would sign before their turn
// (ECONFLICT); waiting is c.WaitingFor(them).
func (c *Consent) WaitingError(waiting []Signer) error {
	return Errorf(ECONFLICT, "Consent #%d is signed in order: it is waiting for %s to sign first. You will be mailed when it is your turn.", c.ID, WaitingWords(waiting))
}

// SignerRemovedError answers a signer taken off the roster who would sign
// (ECONFLICT): they cannot sign it, and the request says who still can.
func (c *Consent) SignerRemovedError(sg Signer) error {
	when := ""
	if !sg.RemovedAt.IsZero() {
		when = " on " + sg.RemovedAt.UTC().Format("2006-01-02")
	}
	if len(c.Signers) > 1 && c.Need.Satisfiable {
		return Errorf(ECONFLICT, "%s was removed from the roster of authorized signers of %s%s, so they can no longer sign consent #%d, by link or by code. The request still needs %s from its other signers.",
			sg.Name, c.BuildingName, when, c.ID, c.Need.Describe())
	}
	return Errorf(ECONFLICT, "%s was removed from the roster of authorized signers of %s%s, so consent #%d can no longer be signed, by link or by code. Nothing was enabled. The building's managers can ask a current signer instead.",
		sg.Name, c.BuildingName, when, c.ID)
}

// InPersonSigner returns the named signer of request c to sign in person
// on the installer's screen (signerID 0: the next whose turn it is), or why
// they cannot: c no longer awaits signatures (ECONFLICT), does not name
// them (ENOTFOUND), they left the roster, signed already, or wait for
// their turn (ECONFLICT).
func (c *Consent) InPersonSigner(signerID int64) (*RequestSigner, error) {
	if c.Status != ConsentAwaiting {
		return nil, Errorf(ECONFLICT, "This consent is %s; there is nothing to sign.", strings.ReplaceAll(string(c.Status), "_", " "))
	}
	var me *RequestSigner
	if signerID == 0 {
		for i := range c.Signers {
			if c.Signers[i].State == SignerToSign {
				me = &c.Signers[i]
				break
			}
		}
		if me == nil {
			me = c.SignerOf(0)
		}
	} else if me = c.RequestSigner(signerID); me == nil {
		return nil, Errorf(ENOTFOUND, "This request does not name that signer.")
	}
	switch {
	case !me.Signer.Active:
		return nil, c.SignerRemovedError(me.Signer)
	case me.Signature != nil:
		return nil, Errorf(ECONFLICT, "%s signed consent #%d already: one person signs once.", me.Signer.Name, c.ID)
	}
	if waiting := c.WaitingFor(me.Signer.ID); len(waiting) > 0 {
		return nil, c.WaitingError(waiting)
	}
	return me, nil
}

// ReminderDay is the latest day of its policy's reminder schedule that
// request c has reached at now (0: none yet).
func (c *Consent) ReminderDay(now time.Time) int {
	day := 0
	for _, d := range c.Policy.ReminderDays {
		if !c.RequestedAt.Add(time.Duration(d) * 24 * time.Hour).After(now) {
			day = d
		}
	}
	return day
}

// Endable reports whether a signer's withdraw or dispute link can end c: a
// signed consent, or a request awaiting further signatures.
func (c *Consent) Endable() bool {
	return c.Status == ConsentSigned || c.Status == ConsentAwaiting
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
	Signer       Signer // the roster entry that signed (as it is now)
	Address      string // the registered address verified
	// NameDiffers: the typed name differs from the roster name (namecheck's
	// rule) and the signer confirmed signing with it. Only the roster address
	// is verified, never the name; pages and reports print both names then.
	NameDiffers bool
}

// ConsentRequest is what an installer submits for a building.
type ConsentRequest struct {
	Device DeviceDetails
	// SignerIDs name the signers asked, from the roster (never an address
	// typed by the installer), in the order they sign when the policy is
	// ordered. SignerID is the one signer of a single-signer request.
	SignerIDs []int64
	SignerID  int64
	InPerson  bool    // sign on the installer's screen with a mailed 6-digit code
	Photos    []Photo // validated and re-encoded by the caller
	// Paper is the signed paper form the installer arrived with, if any:
	// the signers it names must be named by the request and satisfy the
	// building's policy; each is asked to confirm it.
	Paper *PaperFormInput
}

// Named returns the signer ids the request names: SignerIDs, or SignerID.
func (r *ConsentRequest) Named() []int64 {
	if len(r.SignerIDs) > 0 {
		return r.SignerIDs
	}
	if r.SignerID > 0 {
		return []int64{r.SignerID}
	}
	return nil
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
	if len(r.Named()) == 0 {
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
	// ConfirmPaper: "I signed this paper form", required of a signer the
	// request's paper form names; PaperSHA256 is the digest of the form the
	// page showed, recorded with the signature.
	ConfirmPaper bool
	PaperSHA256  string
}

// ConsentEvent is one fact on a consent's timeline.
type ConsentEvent struct {
	At   time.Time
	Kind string // requested, mailed, opened, code_sent, code_failed, signed, declined, withdrawn, disputed, lapsed,
	// links_withdrawn (the signer left the roster), links_mailed (withdraw/dispute links sent again), renewal_requested,
	// signature (one signer of several signed), turn_mailed, reminded, unsatisfiable, expired, resent
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
	// Me is the named signer this link or code is for. Under ordered
	// signing, WaitingFor lists the earlier signers who must sign first: the
	// page says so and takes no signature until then.
	Me         *RequestSigner
	WaitingFor []Signer
	// SignedByMe: this signer signed already and the request awaits others.
	SignedByMe bool
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
	out.Terms = c.MaskAddresses(c.Terms)
	mask := func(sig *ConsentSignature) *ConsentSignature {
		if sig == nil {
			return nil
		}
		s := *sig
		s.Terms = c.MaskAddresses(s.Terms)
		s.IP, s.UserAgent, s.SignaturePNG, s.Address, s.Signer.Email = "", "", nil, MaskedAddress, MaskedAddress
		return &s
	}
	out.Signature = mask(c.Signature)
	out.Paper = c.Paper.Masked()
	out.Signers = make([]RequestSigner, len(c.Signers))
	for i, rs := range c.Signers {
		rs.Signer.Email = MaskedAddress
		rs.Signature = mask(rs.Signature)
		out.Signers[i] = rs
	}
	return &out
}

// MaskAddresses masks the address of the consent's signer and of every
// signer it names in text.
func (c *Consent) MaskAddresses(text string) string {
	text = MaskAddress(text, c.Signer.Email)
	for _, rs := range c.Signers {
		text = MaskAddress(text, rs.Signer.Email)
	}
	return text
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
	out.Policy, out.Need, out.RequestExpiresAt, out.ExpiredAt = c.Policy, c.Need, c.RequestExpiresAt, c.ExpiredAt
	out.Paper = c.Paper.Masked()
	for _, rs := range c.Signers { // who signs and who signed: names and titles only
		named := RequestSigner{Position: rs.Position, State: rs.State,
			Signer: Signer{ID: rs.Signer.ID, Name: rs.Signer.Name, Title: rs.Signer.Title, Active: rs.Signer.Active}}
		if rs.Signature != nil {
			named.Signature = &ConsentSignature{SignedAt: rs.Signature.SignedAt, Timezone: rs.Signature.Timezone, Method: rs.Signature.Method}
		}
		out.Signers = append(out.Signers, named)
	}
	return &out
}

// SignedByRemovedSigner reports whether c was signed by someone since taken
// off the roster. The consent stays valid (they were authorized when they
// signed), but pages and reports flag it, and managers may ask a current
// signer to renew.
func (c *Consent) SignedByRemovedSigner() bool {
	for _, s := range c.Signatures() {
		if !s.Signer.Active {
			return true
		}
	}
	return c.Signature != nil && !c.Signer.Active
}

// Stranded reports whether c awaits signatures that the signers still on the
// roster cannot give (a signer it needs was taken off the roster): managers
// may ask current signers instead.
func (c *Consent) Stranded() bool {
	if c.Status != ConsentAwaiting {
		return false
	}
	if len(c.Signers) == 0 {
		return !c.Signer.Active
	}
	return !c.Need.Satisfiable
}

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

	// SendCode mails a named signer a 6-digit code for signing in person
	// (installer). signerID 0 is the next signer whose turn it is.
	SendCode(ctx context.Context, consentID, signerID int64) error
	// SignInPerson signs on the installer's screen with the mailed code: 5 tries,
	// 10 minutes; ETOOMANY after that, EINVALID for a wrong code (and as Sign).
	// SendCode, InPersonSession and SignInPerson answer ECONFLICT when the
	// signer is no longer on the roster.
	SignInPerson(ctx context.Context, consentID, signerID int64, code string, in SignInput) (*Consent, error)
	// InPersonSession is the signing page's content for the installer's
	// screen, for one named signer (0: the next whose turn it is).
	InPersonSession(ctx context.Context, consentID, signerID int64) (*SigningSession, error)

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

	// ResendRequest sends an expired request again as a new request for the
	// same device under the building's policy now (its installer, or the
	// building's managers): the same signers where they are still on the
	// roster, completed with the portal's proposal. ECONFLICT unless expired.
	ResendRequest(ctx context.Context, consentID int64) (*Consent, error)
	// RemindAndExpire is the reminders job: it expires requests past their
	// period (telling the installer and the managers) and then mails each
	// named signer who has not signed, whose turn it is and who is on the
	// roster, the reminder due by the request's schedule with a fresh link.
	// It returns how many requests expired and how many reminders went out.
	RemindAndExpire(ctx context.Context) (expired, reminded int, err error)
}

// Consent flow limits.
const (
	SigningLinkTTL     = 7 * 24 * time.Hour // a signing link of a request without an expiry works this long, once; others work until the request expires
	CodeTTL            = 10 * time.Minute   // an in-person code works this long
	CodeMaxAttempts    = 5                  // wrong codes allowed per code
	CodesPerHour       = 3                  // codes mailed per consent per hour
	MaxSignatureSize   = 1 << 20            // bytes of the drawn signature PNG
	MaxPhotoSize       = 10 << 20           // bytes of one installation photo
	EndLinkMailsPerDay = 3                  // withdraw/dispute links mailed again per consent per day
)
