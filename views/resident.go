package views

import (
	"strconv"
	"time"

	"github.com/doorledger/doorledger"
)

// NoticeView is the building's public device notice.
type NoticeView struct {
	Notice        *doorledger.PublicNotice
	CSRF          string
	SubscribeForm Form
	Loc           *time.Location // the building's time zone, loaded once (NewNoticeView)
}

// NewNoticeView is the notice's view with its time zone loaded: once, since
// loading a zone reads the zone database from disk.
func NewNoticeView(n *doorledger.PublicNotice, csrf string, f Form) NoticeView {
	return NoticeView{Notice: n, CSRF: csrf, SubscribeForm: f, Loc: n.Location()}
}

// NoticeReportView is the form residents report an unlisted device with.
type NoticeReportView struct {
	BuildingName string
	Slug         string
	CSRF         string
	Form         Form
}

// ResidentsPanel is the residents' part of the building page (managers).
type ResidentsPanel struct {
	Settings     *doorledger.NoticeSettings
	FoundDevices []*doorledger.Device // devices recorded as found, for "recorded as found device #N"
	ContactForm  Form
	ResolveForms map[int64]Form // by report, after a failed resolution
}

func (r ResidentsPanel) resolveForm(id int64) Form { return r.ResolveForms[id] }

// noticeDate prints a date in the building's time zone.
func noticeDate(t time.Time, loc *time.Location) string {
	if t.IsZero() {
		return "—"
	}
	return t.In(loc).Format("2006-01-02")
}

func noticeStateLabel(s doorledger.NoticeState) string {
	switch s {
	case doorledger.NoticeEnabled:
		return "Enabled: can open the door"
	case doorledger.NoticeDisabled:
		return "Disabled"
	case doorledger.NoticeAwaiting:
		return "Awaiting consent (disabled)"
	case doorledger.NoticeUnconsented:
		return "Found without consent (disabled)"
	}
	return string(s)
}

func noticeStateClass(s doorledger.NoticeState) string {
	switch s {
	case doorledger.NoticeEnabled, doorledger.NoticeAwaiting:
		return "badge badge-warn"
	case doorledger.NoticeUnconsented:
		return "badge badge-danger"
	}
	return "badge badge-ok"
}

// signerRole names the signer by their role on the roster, never by name.
func signerRole(c *doorledger.NoticeConsent) string {
	if c.SignerRole == "" {
		return "an authorized signer"
	}
	return "the " + c.SignerRole
}

// noticeConsentLine says what consent stands behind a device.
func noticeConsentLine(c *doorledger.NoticeConsent, loc *time.Location) string {
	if c == nil {
		return "None: nobody was asked to consent to this device."
	}
	signed := "Signed on " + noticeDate(c.SignedAt, loc) + " by " + signerRole(c)
	switch c.Status {
	case doorledger.ConsentAwaiting:
		return "Requested on " + noticeDate(c.RequestedAt, loc) + " from " + signerRole(c) + "; not signed, so the device stays disabled."
	case doorledger.ConsentSigned:
		return signed + "; valid until " + noticeDate(c.ValidUntil, loc) + "."
	case doorledger.ConsentDeclined:
		return "Declined on " + noticeDate(c.EndedAt, loc) + " by " + signerRole(c) + "."
	case doorledger.ConsentWithdrawn:
		return signed + "; withdrawn on " + noticeDate(c.EndedAt, loc) + "."
	case doorledger.ConsentDisputed:
		return "Disputed on " + noticeDate(c.EndedAt, loc) + ": " + signerRole(c) + " says they did not sign it."
	case doorledger.ConsentLapsed:
		return signed + "; lapsed on " + noticeDate(c.EndedAt, loc) + " (not renewed)."
	}
	return string(c.Status)
}

func noticeReportPath(slug string) string { return doorledger.NoticePath + slug + "/report" }

func noticeSubscribePath(slug string) string { return doorledger.NoticePath + slug + "/subscribe" }

func deviceTitle(d *doorledger.NoticeDevice) string {
	t := d.Vendor
	if d.Model != "" {
		t += " " + d.Model
	}
	return t
}

func reportOutcomeLabel(r *doorledger.ResidentReport) string {
	return doorledger.ReportOutcomeLabel(r.Outcome, r.FoundDeviceID)
}

func foundDeviceLabel(d *doorledger.Device) string {
	l := "#" + strconv.FormatInt(d.ID, 10) + " " + d.Vendor
	if d.Model != "" {
		l += " " + d.Model
	}
	return l + ", at " + d.Location
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

// outcomeChoice is how the resolution form offers an outcome.
func outcomeChoice(outcome string) string {
	switch outcome {
	case doorledger.ReportFoundDevice:
		return "Recorded as a found device (choose it below)"
	case doorledger.ReportNotDelivery:
		return "Not a delivery device"
	case doorledger.ReportDuplicate:
		return "Duplicate of another report, or a device on the list"
	case doorledger.ReportOther:
		return "Other: say what in the note"
	}
	return outcome
}
