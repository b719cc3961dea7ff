// Package views draws Doorledger's pages with templ. Components take plain
// structs (domain types and the view models here) and do no I/O.
package views

import (
	"fmt"
	"net/url"
	"strconv"
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
}

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

// invalid returns the aria-invalid value for a field: "true" when it has an error.
func (f Form) invalid(name string) string {
	if f.Errors[name] != "" {
		return "true"
	}
	return ""
}

// FormTime prints t in loc with the zone's abbreviation, e.g. "2026-11-22 09:14 EST".
func FormTime(t time.Time, loc *time.Location) string {
	if t.IsZero() {
		return "—"
	}
	if loc == nil {
		loc = time.UTC
	}
	return t.In(loc).Format("2006-01-02 15:04 MST")
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

func methodLabel(m doorledger.VerificationMethod) string {
	if m == doorledger.VerifyCode {
		return "6-digit code mailed to the registered address, typed on the installer's screen"
	}
	return "one-time link mailed to the registered address"
}

func timelineLabel(kind string) string {
	labels := map[string]string{
		"requested": "Requested by the installer", "mailed": "Mailed", "opened": "Signing link opened",
		"code_sent": "Code mailed", "code_failed": "Wrong code entered", "signed": "Signed",
		"declined": "Declined", "withdrawn": "Withdrawn", "disputed": "Disputed: signer says they did not sign", "lapsed": "Lapsed",
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
