// Package views draws Doorledger's pages with templ. Components take plain
// structs (domain types and the view models here) and do no I/O.
package views

import (
	"fmt"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/doorledger/doorledger"
)

// Page is what every page's layout needs.
type Page struct {
	Title  string
	User   *doorledger.User // nil when signed out
	CSRF   string
	Flash  []Flash
	Active string // which nav entry is current
	// Notice is a banner about the portal itself, on every page while it
	// holds (the disk is full: DiskFullNotice); "" for none.
	Notice string
	// Passkeys says the portal offers passkeys (it is reached at a host name).
	Passkeys bool
	// SSO is the sign-in page's single sign-on button (sso.go); its Name is
	// "" when the portal has no OpenID provider.
	SSO SSOButton
}

// DiskFullNotice is the banner admins and managers see while the portal's
// disk is full (docs/reliability.md, "Disk full").
const DiskFullNotice = "The portal's disk is full. Door events from devices and vendors are not recorded for now: " +
	"devices keep them and send them again once space is freed, and nothing already recorded is lost. " +
	"Revoking and enabling devices still works. The administrators have been alerted."

// Flash is a one-time message shown at the top of the next page.
type Flash struct {
	Kind    string // "ok" or "error"
	Message string
}

// Form carries a form's submitted values and per-field errors back to the page,
// so that bad input re-renders with the message beside the field and nothing lost.
type Form struct {
	Values map[string]string
	Errors map[string]string
	Error  string // a message for the whole form
}

// Value returns the submitted value of a field.
func (f Form) Value(name string) string { return f.Values[name] }

// FieldError returns the message for a field, or "".
func (f Form) FieldError(name string) string { return f.Errors[name] }

// FormTime prints t in loc with the zone's abbreviation, e.g. "2026-11-22 09:14 EST".
func FormTime(t time.Time, loc *time.Location) string { return zoned(t, loc, "2006-01-02 15:04 MST") }

// zoned formats t in loc (UTC when nil) with layout; "—" for the zero time.
func zoned(t time.Time, loc *time.Location, layout string) string {
	if t.IsZero() {
		return "—"
	}
	if loc == nil {
		loc = time.UTC
	}
	return t.In(loc).Format(layout)
}

// TermsHeader is the terms document's first line when it names its format
// ("doorledger-consent-terms/1"), or "".
func TermsHeader(terms string) string {
	first, _, _ := strings.Cut(terms, "\n")
	if strings.HasPrefix(first, "doorledger-consent-terms/") {
		return first
	}
	return ""
}

// TermsBody is the terms document as a person reads it: without its format
// line (shown under "Details" with the document's SHA-256, which covers it).
func TermsBody(terms string) string {
	if h := TermsHeader(terms); h != "" {
		return strings.TrimLeft(strings.TrimPrefix(terms, h), "\n")
	}
	return terms
}

// tzAbbrev is the abbreviation of loc at t ("EST").
func tzAbbrev(loc *time.Location, t time.Time) string {
	if loc == nil {
		loc = time.UTC
	}
	name, _ := t.In(loc).Zone()
	return name
}

// UTC prints t in UTC, labelled.
func UTC(t time.Time) string { return FormTime(t, time.UTC) }

func idPath(format string, ids ...any) string { return fmt.Sprintf(format, ids...) }

func roleLabel(r doorledger.Role) string {
	switch r {
	case doorledger.RoleAdmin:
		return "Administrator"
	case doorledger.RoleManager:
		return "Property manager"
	case doorledger.RoleBoard:
		return "Board member"
	case doorledger.RoleInstaller:
		return "Installer"
	}
	return string(r)
}

// Timezones offered in the building form (any IANA name is accepted).
var Timezones = []string{
	"America/New_York", "America/Chicago", "America/Denver", "America/Phoenix", "America/Los_Angeles",
	"America/Anchorage", "Pacific/Honolulu", "America/Toronto", "America/Vancouver", "Europe/London",
	"Europe/Paris", "Europe/Berlin", "Europe/Warsaw", "Europe/Zurich", "Australia/Sydney", "UTC",
}

func csrfHeader(token string) string {
	return fmt.Sprintf(`{"X-CSRF-Token": %q}`, token)
}

func flashRole(kind string) string {
	if kind == "error" {
		return "alert"
	}
	return "status"
}

func statusTitle(status int) string {
	switch status {
	case 400:
		return "That request was not understood"
	case 401:
		return "Please sign in"
	case 403:
		return "Not allowed"
	case 404:
		return "Not found"
	case 413:
		return "Too large"
	case 429:
		return "Too many attempts"
	}
	if status >= 500 {
		return "Something went wrong"
	}
	return "Error"
}

// ErrorTitle is the title of the error page for status.
func ErrorTitle(status int) string { return statusTitle(status) }

// ConsentStatusLabel is how a status reads on a page.
func ConsentStatusLabel(s doorledger.ConsentStatus) string {
	switch s {
	case doorledger.ConsentAwaiting:
		return "Awaiting signature"
	case doorledger.ConsentSigned:
		return "Signed"
	case doorledger.ConsentDeclined:
		return "Declined"
	case doorledger.ConsentWithdrawn:
		return "Withdrawn"
	case doorledger.ConsentDisputed:
		return "Disputed"
	case doorledger.ConsentLapsed:
		return "Lapsed"
	case doorledger.ConsentExpired:
		return "Expired unsigned"
	}
	return string(s)
}

func consentBadgeClass(s doorledger.ConsentStatus) string {
	switch s {
	case doorledger.ConsentSigned:
		return "badge-ok"
	case doorledger.ConsentAwaiting:
		return "badge-warn"
	case doorledger.ConsentDisputed:
		return "badge-danger"
	}
	return ""
}

func consentsWith(list []*doorledger.Consent, s doorledger.ConsentStatus) []*doorledger.Consent {
	var out []*doorledger.Consent
	for _, c := range list {
		if c.Status == s {
			out = append(out, c)
		}
	}
	return out
}

// signedLine says when the consent of a link was signed, in the building's time.
func signedLine(s *doorledger.SigningSession) string {
	if s.Consent.Signature == nil {
		return ""
	}
	return "You signed this on " + FormTime(s.Consent.Signature.SignedAt, s.Building.Location()) + "."
}

// doneHeadline heads the page of a signer's link once its consent is past signing.
func doneHeadline(s *doorledger.SigningSession) string {
	c, loc := s.Consent, s.Building.Location()
	switch {
	case s.Me != nil && s.Me.Signature != nil && (s.SignedByMe || c.Signature == nil):
		return "You signed this on " + FormTime(s.Me.Signature.SignedAt, loc)
	case c.Signature != nil:
		return "You signed this on " + FormTime(c.Signature.SignedAt, loc)
	case c.Status == doorledger.ConsentDeclined:
		return "You declined this on " + FormTime(c.StatusAt, loc)
	}
	return "This consent is " + strings.ToLower(ConsentStatusLabel(c.Status))
}

// doneStatus says where the consent of a signer's link stands now.
func doneStatus(s *doorledger.SigningSession) string {
	c, loc := s.Consent, s.Building.Location()
	at := FormTime(c.StatusAt, loc)
	switch c.Status {
	case doorledger.ConsentAwaiting:
		return "Your signature is recorded. The request still needs " + c.Need.Describe() + "; nothing is enabled until then, and you will be mailed when it is signed."
	case doorledger.ConsentExpired:
		return "It expired on " + FormTime(c.ExpiredAt, loc) + " without the signatures its policy requires. Nothing was enabled; the installer or a manager may send it again as a new request."
	case doorledger.ConsentSigned:
		return "It is in force until " + FormTime(c.ExpiresAt, loc) + " unless withdrawn or renewed."
	case doorledger.ConsentDeclined:
		return "Nothing was enabled."
	case doorledger.ConsentWithdrawn:
		return "It was withdrawn on " + at + ", and the device under it disabled. There is nothing left to do."
	case doorledger.ConsentDisputed:
		return "It was reported as not signed by you on " + at + ": the device under it was disabled and the managers and board alerted. There is nothing left to do."
	case doorledger.ConsentLapsed:
		return "Its period ended on " + at + ", and the device under it was disabled unless renewed. There is nothing left to do."
	}
	return ""
}

// removedLabel says when a signer left the roster.
func removedLabel(s doorledger.Signer) string {
	if s.RemovedAt.IsZero() {
		return "removed from the roster"
	}
	return "removed from the roster on " + UTC(s.RemovedAt)
}

// consentFlag is what a consent list says beside a consent that needs a look.
func consentFlag(c *doorledger.Consent) string {
	switch {
	case c.SignedByRemovedSigner() && c.Status == doorledger.ConsentSigned:
		return "signed by a signer since removed from the roster"
	case c.Stranded():
		return "signer removed from the roster: cannot be signed"
	case c.Status == doorledger.ConsentAwaiting && len(c.Signers) > 1:
		return "still needs " + c.Need.Describe()
	case c.Signature != nil && c.Signature.NameDiffers:
		return "typed name differs from the roster"
	}
	return ""
}

// verifiedLabel names what was verified: the signer's roster address (shown
// when withAddress), by link or code — never the typed name.
func verifiedLabel(c *doorledger.Consent, withAddress bool) string {
	return verifiedWords(c.Signer.Email, c.Signature.Method, withAddress)
}

// verifiedWords says a signature verified the roster address (printed when
// withAddress) by method, and never the typed name.
func verifiedWords(address string, method doorledger.VerificationMethod, withAddress bool) string {
	addr := "The signer's roster address"
	if withAddress {
		addr += ", " + address + ","
	}
	how := "the one-time link mailed to it"
	if method == doorledger.VerifyCode {
		how = "a 6-digit code mailed to it, typed on the installer's screen"
	}
	return addr + " by " + how + ". The typed name is not verified."
}

// renewSelected is the signer the renewal form preselects: the one posted,
// else the consent's own signer (listed only while on the roster).
func renewSelected(v ConsentView) string {
	if id := v.RenewForm.Value("signer_id"); id != "" {
		return id
	}
	return strconv.FormatInt(v.Consent.SignerID, 10)
}

func timelineLabel(kind string) string {
	labels := map[string]string{
		"requested": "Requested by the installer", "mailed": "Mailed", "opened": "Signing link opened",
		"code_sent": "Code mailed", "code_failed": "Wrong code entered", "signed": "Signed",
		"declined": "Declined", "withdrawn": "Withdrawn", "disputed": "Disputed: signer says they did not sign", "lapsed": "Lapsed",
		"links_withdrawn": "Signing link and codes withdrawn", "links_mailed": "Withdraw and dispute links mailed again",
		"renewal_requested": "A signer was asked to sign again",
		"signature":         "Signature recorded", "turn_mailed": "Next signer's turn", "reminded": "Reminder mailed",
		"expired": "Expired unsigned", "resent": "Sent again as a new request",
		"paper_form": "Signed paper form attached", "paper_confirmed": "Paper form confirmed by the signer",
		"paper_disputed": "Paper form disputed: signer says they did not sign it",
	}
	if l, ok := labels[kind]; ok {
		return l
	}
	return kind
}

// toneClass is the badge class of a status's tone.
func toneClass(t doorledger.Tone) string {
	switch t {
	case doorledger.ToneOK:
		return "badge-ok"
	case doorledger.ToneWarn:
		return "badge-warn"
	case doorledger.ToneAlarm:
		return "badge-danger"
	}
	return ""
}

// CommandOutcome says in words how the device's last command c went:
// "Revoked — confirmed by the device in 19 ms", or what went wrong. With the
// broker down (brokerDown) a command still open waits for the broker: the
// device cannot be reached, so "not confirmed by the device" would blame it.
func CommandOutcome(c *doorledger.Command, now time.Time, timeout time.Duration, brokerDown bool) string {
	done, doing := "Enabled", "Enable"
	if c.State == doorledger.StateDisabled {
		done, doing = "Revoked", "Revoke"
	}
	why := ""
	if c.LastError != "" {
		why = " Last error: " + c.LastError + "."
	}
	switch {
	case c.Status == doorledger.CommandConfirmed:
		return done + " — confirmed by the device in " + latency(c)
	case c.Status == doorledger.CommandRefused:
		return doing + " REFUSED by the device: it reports it is still " + string(c.State.Other()) + "; the portal keeps retrying and the managers were alerted." + why
	case c.Status == doorledger.CommandSuperseded:
		return doing + " replaced by a newer command before the device confirmed it."
	case brokerDown:
		return doing + " waiting for the broker: the portal cannot reach the MQTT broker; the command is sent as soon as the broker is back, and the device confirms it then." + why
	case c.Status == doorledger.CommandNotConfirmed || (!c.RequestedAt.IsZero() && c.WaitedAt(now) > timeout):
		return doing + " not confirmed: the device has not answered for " + doorledger.Elapsed(c.WaitedAt(now)) + "; the portal keeps retrying and the managers were alerted." + why
	}
	return doing + " sent — waiting for the device to confirm." + why
}

func outcomeClass(c *doorledger.Command, now time.Time, timeout time.Duration, brokerDown bool) string {
	switch {
	case c.Status == doorledger.CommandConfirmed:
		return "outcome-ok"
	case brokerDown && c.Status != doorledger.CommandRefused:
		return "outcome-warn"
	case c.Status == doorledger.CommandRefused || c.Status == doorledger.CommandNotConfirmed || (c.Status != doorledger.CommandSuperseded && c.WaitedAt(now) > timeout):
		return "outcome-danger"
	}
	return "outcome-warn"
}

func latency(c *doorledger.Command) string {
	if c.ConfirmedAt.IsZero() {
		return "—"
	}
	d := c.Latency()
	if d < time.Second {
		return fmt.Sprintf("%d ms", d.Milliseconds())
	}
	return d.Round(10 * time.Millisecond).String()
}

func devicesEventsURL(vendor string, installer int64) string {
	q := url.Values{}
	if vendor != "" {
		q.Set("vendor", vendor)
	}
	if installer != 0 {
		q.Set("installer", strconv.FormatInt(installer, 10))
	}
	return "/devices/events?" + q.Encode()
}

// awaitingConsents are the requests of a list waiting for signatures, the
// longest waiting first.
func awaitingConsents(list []*doorledger.Consent) []*doorledger.Consent {
	out := consentsWith(list, doorledger.ConsentAwaiting)
	sort.SliceStable(out, func(i, j int) bool { return out[i].RequestedAt.Before(out[j].RequestedAt) })
	return out
}

// Waited says how long a request has waited: "3 days, 4 h", "5 h", "12 min".
func Waited(d time.Duration) string {
	switch {
	case d >= 24*time.Hour:
		days := int(d / (24 * time.Hour))
		unit := "days"
		if days == 1 {
			unit = "day"
		}
		return fmt.Sprintf("%d %s, %d h", days, unit, int(d%(24*time.Hour)/time.Hour))
	case d >= time.Hour:
		return fmt.Sprintf("%d h", int(d/time.Hour))
	}
	return fmt.Sprintf("%d min", int(d/time.Minute))
}

// signerStateLabel says where one named signer of a request stands.
func signerStateLabel(rs doorledger.RequestSigner) string {
	switch rs.State {
	case doorledger.SignerSigned:
		return "signed " + UTC(rs.Signature.SignedAt)
	case doorledger.SignerWaiting:
		return "signs after the signers above"
	case doorledger.SignerRemoved:
		return "removed from the roster before signing: drops out"
	case doorledger.SignerNotNeeded:
		return "not needed"
	}
	return "asked, has not signed yet"
}

// signatureVerified names what one signature verified: the signer's roster
// address (shown when withAddress), by link or code — never the typed name.
func signatureVerified(rs doorledger.RequestSigner, withAddress bool) string {
	return verifiedWords(rs.Signature.Address, rs.Signature.Method, withAddress)
}

// waitingLine says whom an ordered signer waits for: "Waiting for the
// President, Paula Prez, to sign first."
func waitingLine(list []doorledger.Signer) string {
	words := make([]string, len(list))
	for i, s := range list {
		words[i] = "the " + s.Title + " (" + s.Name + ")"
	}
	return "Waiting for " + doorledger.JoinAnd(words) + " to sign first. This request is signed in order: you will be mailed when it is your turn, and this link will then take your signature."
}

// askedOf names whom a signer's link asked: the link's signer, or the
// request's one signer.
func askedOf(s *doorledger.SigningSession) string {
	if s.Me != nil {
		return s.Me.Signer.Name + ", " + s.Me.Signer.Title
	}
	return s.Consent.Signer.Name + ", " + s.Consent.Signer.Title
}

func meID(s *doorledger.SigningSession) int64 {
	if s.Me == nil {
		return 0
	}
	return s.Me.Signer.ID
}

// signerQuery keeps the in-person screen's signer in a link (sep is "?" or "&").
func signerQuery(s *doorledger.SigningSession, sep string) string {
	if len(s.Consent.Signers) <= 1 || s.Me == nil {
		return ""
	}
	return sep + "signer=" + strconv.FormatInt(s.Me.Signer.ID, 10)
}
