package doorledger

import "time"

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
	ID          int64
	BuildingID  int64
	Device      DeviceDetails
	DeviceID    int64
	InstallerID int64
	Installer   string // name
	Company     string // installer's company
	SignerID    int64
	Signer      Signer // the roster entry asked (as it was)
	Status      ConsentStatus
	RequestedAt time.Time
	ExpiresAt   time.Time // lapse time once signed

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
}
