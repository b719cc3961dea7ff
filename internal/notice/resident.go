package notice

import (
	"fmt"
	"strings"
	"time"

	"github.com/doorledger/doorledger"
)

// ResidentConfirm asks address to, which asked for the notices of building
// (name), to confirm with link.
func ResidentConfirm(to, building string, buildingID int64, link string) *doorledger.Message {
	return mail(to, "Confirm: notices about the door devices of "+building,
		fmt.Sprintf("Someone, we hope you, asked to be told when a delivery device that can open the doors of %s is enabled, "+
			"disabled, found without consent, or its consent ends.\n\n"+
			"To confirm, open this link and press Confirm (it works for 48 hours, once):\n%s\n\n"+
			"If it was not you, ignore this mail: nothing more will be sent, and the address is forgotten in 48 hours.\n",
			building, link), doorledger.MailResidentConfirm, buildingID)
}

// ResidentNotice is one notice to a confirmed subscriber (to) of building
// (name): the facts (ResidentFact.Line, one a line), the building's public
// notice (noticeURL) and the subscriber's own unsubscribe link.
func ResidentNotice(to, building string, buildingID int64, lines []string, noticeURL, unsubscribe string) *doorledger.Message {
	subject := fmt.Sprintf("%d changes to the door devices of %s", len(lines), building)
	if len(lines) == 1 {
		subject = "A change to the door devices of " + building
	}
	body := fmt.Sprintf("Doorledger: news about the delivery devices that can open the doors of %s.\n\n%s\n\n"+
		"Every device that can open the building's doors, and the consent behind it:\n%s\n",
		building, strings.Join(lines, "\n"), noticeURL)
	body += fmt.Sprintf("\nYou get this because you subscribed to notices about %s. To unsubscribe (one click, then confirm):\n%s\n",
		building, unsubscribe)
	return mail(to, subject, body, doorledger.MailResidentNotice, buildingID)
}

// ResidentFact is one journal entry residents are told of, with the device
// it is about as it is now.
type ResidentFact struct {
	Action               string    // the journal's action: device.enable, consent.lapsed…
	At                   time.Time // when it was journaled
	DeviceID             int64
	Vendor, Model, Opens string
	Role                 string    // the title of the signer of the device's consent, if any
	Signed, Expires      time.Time // of that consent, if any
}

// Line says the fact in a sentence, in the building's time (loc), starting
// "- ". It names the device by vendor, model, number and door, the consent
// by the signer's role. It is "" for an action residents are not told of.
func (f ResidentFact) Line(loc *time.Location) string {
	when := f.At.In(loc).Format("2006-01-02 15:04 MST")
	device := strings.TrimSpace(f.Vendor + " " + f.Model)
	device += fmt.Sprintf(" (device #%d", f.DeviceID)
	if f.Opens != "" {
		device += ", opens: " + f.Opens
	}
	device += ")"
	byRole := "the signer"
	if f.Role != "" {
		byRole = "the " + f.Role
	}
	line := ""
	switch f.Action {
	case "device.enable":
		line = when + ": " + device + " was ENABLED: it can open the door."
		if !f.Signed.IsZero() {
			line += fmt.Sprintf(" Consent signed on %s by %s, valid until %s.", f.Signed.In(loc).Format("2006-01-02"), byRole, f.Expires.In(loc).Format("2006-01-02"))
		}
	case "device.disable":
		line = when + ": " + device + " was DISABLED: it must no longer open the door."
	case "device.found":
		line = when + ": " + device + " was FOUND WITHOUT CONSENT and recorded; it is kept disabled."
	case "device.unconsented":
		line = when + ": " + device + " was found working WITHOUT CONSENT; it was told to disable itself."
	case "consent.withdrawn":
		line = when + ": the consent to " + device + " was WITHDRAWN by " + byRole + "."
	case "consent.disputed":
		line = when + ": the consent to " + device + " was DISPUTED: " + byRole + " says they did not sign it."
	case "consent.lapsed":
		line = when + ": the consent to " + device + " LAPSED: its period ended without renewal."
	default:
		return ""
	}
	return "- " + line
}

// ResidentReport tells the managers of building (name, id) that a resident
// reports a device its public notice does not list (report id, in). The
// resident's text is defanged: no link in it can be followed.
func ResidentReport(building string, buildingID, id int64, in doorledger.ResidentReportInput, baseURL string) Alert {
	photoLine, contactLine := "none", "none given"
	if in.Photo != nil {
		photoLine = "one, on the building page"
	}
	if in.Contact != "" {
		contactLine = in.Contact + " (erased from Doorledger once you resolve the report)"
	}
	return Alert{fmt.Sprintf("Resident report: a device not listed at %s", building),
		fmt.Sprintf("A resident of %s reports a device that the building's public notice does not list (report #%d).\n\n"+
			"Where: %s\nPhoto: %s\nContact: %s\n\n"+
			"Check the panel, then resolve the report on the building page (record the device as found, or say why not):\n%s/buildings/%d#residents\n",
			building, id, defang(in.Location), photoLine, contactLine, baseURL, buildingID)}
}

// defang keeps a mail reader from making a link of what a resident typed:
// "http://x" reads "http[:]//x", "www.x" reads "www[.]x". Pages print it as
// text and never need this.
func defang(s string) string {
	s = strings.ReplaceAll(s, "://", "[:]//")
	return strings.ReplaceAll(s, "www.", "www[.]")
}
