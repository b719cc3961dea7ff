package doorledger

import (
	"context"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// Residents have no account. They read their building's public device notice
// (a page reached by an unguessable address, printed as a QR code on a poster
// at the intercom), report a device that is not listed there, and subscribe
// by email to notices when a device of their building is enabled, disabled,
// found without consent, or its consent ends.
//
// What a resident reads never names a person: no signer's name or address,
// no installer, no IP address, serial number or courier reference. A
// consent is described by its signer's role on the roster ("Board
// president"). Subscribers' addresses are personal data: no page, report or
// export shows them, only their count.

// NoticePath is where a building's public notice is served, followed by its slug.
const NoticePath = "/notice/"

// Where the links mailed to subscribers lead, each followed by its token.
const (
	ResidentConfirmPath     = "/residents/confirm/"
	ResidentUnsubscribePath = "/residents/unsubscribe/"
)

// NoticeRetention is how long a disabled device stays on the public notice.
const NoticeRetention = 90 * 24 * time.Hour

// NoticeState is how the public notice describes a device.
type NoticeState string

const (
	NoticeEnabled     NoticeState = "enabled"          // may open the door
	NoticeDisabled    NoticeState = "disabled"         // told not to open the door
	NoticeAwaiting    NoticeState = "awaiting_consent" // installed or requested, not yet signed: disabled
	NoticeUnconsented NoticeState = "found_unconsented"
)

// NoticeDevice is one device as residents see it.
type NoticeDevice struct {
	ID     int64 // the device's number, as managers know it
	Vendor string
	Model  string
	Opens  string // which door(s) it opens, and for whom
	State  NoticeState
	Since  time.Time // when it entered that state
	// Unconfirmed: told to disable, but the device has not confirmed it yet,
	// so it may still open the door.
	Unconfirmed bool
	Consent     *NoticeConsent // nil: no consent was ever asked for it
}

// NoticeConsent is the consent behind a device, without the signer's name.
type NoticeConsent struct {
	Status      ConsentStatus
	RequestedAt time.Time
	SignedAt    time.Time // zero until signed
	SignerRole  string    // the signer's title on the roster, e.g. "Board president"
	ValidUntil  time.Time // zero until signed
	EndedAt     time.Time // withdrawn, disputed, lapsed or declined: when
}

// PublicNotice is the building's public device notice.
type PublicNotice struct {
	BuildingName string
	Timezone     string
	Slug         string
	Contact      string // how to reach the manager, as the manager typed it
	// PrivacyNoticeURL links the building's tenant privacy notice; "" when
	// the building publishes none here.
	PrivacyNoticeURL string
	// Devices: every device that can open a door now, awaits consent, or was
	// disabled or found within NoticeRetention; those that can open a door
	// first, then found, awaiting and disabled ones, each by number.
	Devices []*NoticeDevice
	// OpeningsLastWeek counts the doors opened (granted unlocks) in the
	// building over the last 7 days.
	OpeningsLastWeek int
	Now              time.Time
}

// Location returns the building's time zone (UTC if the name does not load).
func (n *PublicNotice) Location() *time.Location {
	return (&Building{Timezone: n.Timezone}).Location()
}

// NoticeSettings is what a building's managers see and set of the notice.
type NoticeSettings struct {
	BuildingID  int64
	Slug        string
	URL         string    // the notice's address, from the portal's public URL: the link and the poster's QR code
	SlugAt      time.Time // when the current address was made
	Contact     string
	Subscribers int               // confirmed subscribers: only ever a count
	Reports     []*ResidentReport // open ones first, then the last resolved ones
}

// ResidentReport is a resident's report of a device not listed on the notice.
type ResidentReport struct {
	ID         int64
	BuildingID int64
	CreatedAt  time.Time
	Location   string // where the resident saw it, as typed: printed, never linked
	HasPhoto   bool
	// Contact is how the resident may be reached, if they gave it; erased
	// when the report is resolved. Managers only.
	Contact       string
	Outcome       string // "" while open; one of the Report* outcomes
	FoundDeviceID int64  // with ReportFoundDevice
	Note          string
	ResolvedAt    time.Time
	ResolvedBy    string
}

// Open reports whether the report still waits for a manager.
func (r *ResidentReport) Open() bool { return r.ResolvedAt.IsZero() }

// Outcomes of a resident's report.
const (
	ReportFoundDevice = "found_device" // recorded as a found device
	ReportNotDelivery = "not_delivery" // not a delivery device
	ReportDuplicate   = "duplicate"    // already reported or listed
	ReportOther       = "other"        // see the note
)

// ReportOutcomes lists the outcomes in the order the form offers them.
var ReportOutcomes = []string{ReportFoundDevice, ReportNotDelivery, ReportDuplicate, ReportOther}

// ReportOutcomeLabel is how an outcome reads.
func ReportOutcomeLabel(outcome string, deviceID int64) string {
	switch outcome {
	case ReportFoundDevice:
		if deviceID != 0 {
			return "recorded as found device #" + strconv.FormatInt(deviceID, 10)
		}
		return "recorded as a found device"
	case ReportNotDelivery:
		return "not a delivery device"
	case ReportDuplicate:
		return "duplicate"
	case ReportOther:
		return "other (see the note)"
	}
	return outcome
}

// Limits of what a resident may send.
const (
	MaxReportLocation = 500 // characters of "where"
	MaxNoticeContact  = 300 // characters of the manager's contact line
	MaxResolveNote    = 500
)

// ResidentReportInput is what the report form sends.
type ResidentReportInput struct {
	Location string
	Contact  string // optional: an email address
	Photo    *Photo // optional: validated and re-encoded by the caller (imagecheck)
}

// Validate checks and normalizes the fields.
func (in *ResidentReportInput) Validate() error {
	v := Validation{}
	in.Location = strings.TrimSpace(in.Location)
	in.Contact = strings.TrimSpace(in.Contact)
	switch {
	case in.Location == "":
		v.Add("location", "Say where you saw the device, e.g. \"in the intercom panel by the main door\".")
	case utf8.RuneCountInString(in.Location) > MaxReportLocation:
		v.Add("location", "Keep this under 500 characters.")
	case hasControl(in.Location, true):
		v.Add("location", "Use plain text.")
	}
	if in.Contact != "" {
		in.Contact = strings.ToLower(in.Contact)
		ValidateEmail(v, "contact", in.Contact)
	}
	return v.Err()
}

// ReportResolution is how a manager closes a resident's report.
type ReportResolution struct {
	Outcome       string
	FoundDeviceID int64 // with ReportFoundDevice: a device recorded as found in this building
	Note          string
}

// Validate checks and normalizes the fields.
func (r *ReportResolution) Validate() error {
	v := Validation{}
	r.Note = strings.TrimSpace(r.Note)
	switch r.Outcome {
	case ReportFoundDevice:
		if r.FoundDeviceID <= 0 {
			v.Add("found_device", "Choose the found device it was recorded as (record it first below).")
		}
	case ReportNotDelivery, ReportDuplicate:
		r.FoundDeviceID = 0
	case ReportOther:
		r.FoundDeviceID = 0
		if r.Note == "" {
			v.Add("note", "Say what was done.")
		}
	default:
		v.Add("outcome", "Choose what came of the report.")
	}
	if utf8.RuneCountInString(r.Note) > MaxResolveNote {
		v.Add("note", "Keep the note under 500 characters.")
	} else if hasControl(r.Note, true) {
		v.Add("note", "Use plain text.")
	}
	return v.Err()
}

// ValidateNoticeContact checks the manager's contact line.
func ValidateNoticeContact(contact string) (string, error) {
	contact = strings.TrimSpace(contact)
	v := Validation{}
	if utf8.RuneCountInString(contact) > MaxNoticeContact {
		v.Add("contact", "Keep the contact line under 300 characters.")
	} else if hasControl(contact, false) {
		v.Add("contact", "Keep the contact line on one line, in plain text.")
	}
	return contact, v.Err()
}

// NormalizeSubscriber checks a subscriber's address.
func NormalizeSubscriber(email string) (string, error) {
	email = strings.ToLower(strings.TrimSpace(email))
	v := Validation{}
	ValidateEmail(v, "email", email)
	return email, v.Err()
}

// hasControl reports control characters (line breaks allowed when multiline)
// and bidirectional overrides, which could reorder text on the page.
func hasControl(s string, multiline bool) bool {
	for _, r := range s {
		switch {
		case multiline && (r == '\n' || r == '\r' || r == '\t'):
		case unicode.IsControl(r), r == '\u2028', r == '\u2029',
			r >= '\u202a' && r <= '\u202e', r >= '\u2066' && r <= '\u2069':
			return true
		}
	}
	return false
}

// ResidentLink is what a resident's mailed link opens: the building it is
// about and where its notice is now.
type ResidentLink struct {
	BuildingName string
	NoticeSlug   string
	Purpose      string // "confirm" or "unsubscribe"
	Done         bool   // confirmed already / not subscribed any more
}

// Resident mail kinds in the outbox.
const (
	MailResidentConfirm = "resident_confirm" // the double opt-in link
	MailResidentNotice  = "resident_notice"  // a change to the building's devices
)

// ResidentService serves the public notice and residents' reports and
// subscriptions. Methods by slug or token need no sign-in; a slug or token
// that is unknown (or was replaced) is ENOTFOUND. Manager methods read the
// caller from ctx like BuildingService.
type ResidentService interface {
	// PublicNotice returns the building's notice. ENOTFOUND.
	PublicNotice(ctx context.Context, slug string) (*PublicNotice, error)
	// ReportDevice records a resident's report and alerts the building's
	// managers (and board, per its alert setting). EINVALID, ENOTFOUND,
	// ETOOMANY when the building already has many open reports.
	ReportDevice(ctx context.Context, slug string, in ResidentReportInput) (*ResidentReport, error)
	// Subscribe mails a confirmation link to email unless it is subscribed
	// already. The answer never says which: addresses are not disclosed.
	// EINVALID, ENOTFOUND, ETOOMANY.
	Subscribe(ctx context.Context, slug, email string) error
	// OpenSubscriptionLink says what a confirmation or unsubscribe link is
	// about. ENOTFOUND for an unknown or expired token.
	OpenSubscriptionLink(ctx context.Context, token string) (*ResidentLink, error)
	// ConfirmSubscription confirms by the mailed one-time link. ENOTFOUND.
	ConfirmSubscription(ctx context.Context, token string) (*ResidentLink, error)
	// Unsubscribe ends a subscription by the link in any notice, and forgets
	// the address. ENOTFOUND.
	Unsubscribe(ctx context.Context, token string) (*ResidentLink, error)

	// NoticeSettings returns the building's notice settings (managers).
	NoticeSettings(ctx context.Context, buildingID int64) (*NoticeSettings, error)
	// RotateNoticeSlug gives the notice a new address (managers): the old one
	// is not found from then on. Journaled.
	RotateNoticeSlug(ctx context.Context, buildingID int64) (string, error)
	// SetNoticeContact sets how residents reach the manager (managers). EINVALID.
	SetNoticeContact(ctx context.Context, buildingID int64, contact string) error
	// ResidentReportPhoto returns a report's photo (managers). ENOTFOUND.
	ResidentReportPhoto(ctx context.Context, buildingID, reportID int64) (*Photo, error)
	// ResolveResidentReport records what came of a report (managers). Final.
	// EINVALID, ECONFLICT when resolved already.
	ResolveResidentReport(ctx context.Context, buildingID, reportID int64, r ReportResolution) error

	// NotifyResidents mails subscribers what changed in their building since
	// the last call, read from the journal (the system's job). Returns how
	// many notices it queued.
	NotifyResidents(ctx context.Context) (int, error)
}

// NoticeRow is a device as the storage reads it for a building's public
// notice: the device (Device: its number, vendor, model and doors), its
// desired and reported states, and the consent it rests on or was last
// asked for (Status "" for none).
type NoticeRow struct {
	Device                                         NoticeDevice
	Desired, Reported, Status, SignerTitle         string
	Unconsented, Retired                           bool
	Created, Commanded, Requested, Signed, Expires time.Time
	StatusAt                                       time.Time
}

// Notice says how the public notice shows the device at now, or nil when it
// leaves it out: disabled (or found) more than NoticeRetention ago, and not
// able to open the door.
func (r NoticeRow) Notice(now time.Time) *NoticeDevice {
	d := r.Device
	if r.Status != "" {
		c := &NoticeConsent{Status: ConsentStatus(r.Status), RequestedAt: r.Requested, SignedAt: r.Signed,
			SignerRole: r.SignerTitle, ValidUntil: r.Expires}
		switch {
		case c.Status == ConsentSigned && !r.Expires.After(now):
			// Past its end, the lapse job will record it within a minute.
			c.Status, c.EndedAt = ConsentLapsed, r.Expires
		case c.Status != ConsentSigned && c.Status != ConsentAwaiting:
			c.EndedAt = r.StatusAt
		}
		d.Consent = c
	}
	d.Since = r.Created
	if !r.Commanded.IsZero() {
		d.Since = r.Commanded
	}
	canOpen := r.Desired == string(StateEnabled) || r.Reported == string(StateEnabled)
	switch {
	case r.Desired == string(StateEnabled):
		d.State = NoticeEnabled
	case r.Unconsented:
		d.State = NoticeUnconsented
	case r.Status == string(ConsentAwaiting):
		d.State = NoticeAwaiting
		if !r.Requested.IsZero() {
			d.Since = r.Requested
		}
	default:
		d.State = NoticeDisabled
	}
	d.Unconfirmed = r.Desired != string(StateEnabled) && r.Reported == string(StateEnabled)
	recent := !d.Since.Before(now.Add(-NoticeRetention))
	if !canOpen && !recent && (d.State != NoticeAwaiting || r.Retired) {
		return nil
	}
	return &d
}

// Rank orders the devices of a notice: those that can open the door first,
// then those found without consent, then those awaiting consent, then the rest.
func (d *NoticeDevice) Rank() int {
	switch {
	case d.State == NoticeEnabled || d.Unconfirmed:
		return 0
	case d.State == NoticeUnconsented:
		return 1
	case d.State == NoticeAwaiting:
		return 2
	}
	return 3
}
