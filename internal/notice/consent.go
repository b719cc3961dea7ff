package notice

import (
	"fmt"
	"strings"
	"time"

	"github.com/doorledger/doorledger"
)

// MethodWords says how a signer's roster address was verified.
func MethodWords(m doorledger.VerificationMethod) string {
	if m == doorledger.VerifyCode {
		return "a 6-digit code mailed to it (in person)"
	}
	return "a one-time link mailed to it"
}

// SignedBy lists a request's signatures: "Paula Prez (President) and Tom Trent (Treasurer)".
func SignedBy(c *doorledger.Consent) string {
	var names []string
	for _, rs := range c.Signers {
		if rs.Signature != nil {
			names = append(names, rs.Signer.Name+" ("+rs.Signer.Title+")")
		}
	}
	return doorledger.JoinAnd(names)
}

// EndLinks is the part of a mail that offers a signer their withdraw and
// "I did not sign this" links.
func EndLinks(withdraw, dispute string) string {
	return fmt.Sprintf(`To withdraw this consent (every device under it is disabled at once):
  %s

If you did NOT sign this, report it (the device is disabled and the managers alerted):
  %s
`, withdraw, dispute)
}

// Signed confirms to the last signer of consent c, at now, that it is signed
// (the signature that satisfied its policy), lasting until expires, with
// their end links.
func Signed(c *doorledger.Consent, last *doorledger.RequestSigner, b *doorledger.Building, method doorledger.VerificationMethod, now, expires time.Time, links string) *doorledger.Message {
	sig, loc := last.Signature, b.Location()
	typedNote := ""
	if sig.NameDiffers {
		typedNote = fmt.Sprintf("You signed with the name “%s”, which differs from the name on the roster, “%s”;\nthe record shows both.\n", sig.TypedName, last.Signer.Name)
	}
	others := ""
	if len(c.Signers) > 1 {
		others = "Signed by: " + SignedBy(c) + ".\n"
	}
	body := fmt.Sprintf(`Dear %s,

You signed consent #%d for %s: %s %s (serial %s) at %s.
Signed: %s (%s). Your registered address, %s, was verified by %s.
%s%sTerms SHA-256: %s
It lasts until %s unless renewed.

%s
Keep this mail as your copy.
— Doorledger, for the managers of %s
`, last.Signer.Name, c.ID, b.Name, c.Device.Vendor, c.Device.Model, c.Device.Serial, c.Device.Location,
		now.Format("2006-01-02 15:04 MST"), now.In(loc).Format("2006-01-02 15:04 MST"), last.Signer.Email, MethodWords(method), typedNote, others, sig.TermsSHA256,
		expires.In(loc).Format("2006-01-02"), links, b.Name)
	return mail(last.Signer.Email, "You signed consent #"+itoa(c.ID)+" for "+b.Name, body, "signed", b.ID)
}

// NowSigned tells an earlier signer rs of consent c that it now has the
// signatures its policy requires.
func NowSigned(c *doorledger.Consent, rs doorledger.RequestSigner, b *doorledger.Building, expires time.Time) *doorledger.Message {
	return mail(rs.Signer.Email, "Consent #"+itoa(c.ID)+" for "+b.Name+" is now signed", fmt.Sprintf(`Dear %s,

Consent #%d for %s: %s %s (serial %s) at %s, which you signed, now has the
signatures its policy requires (%s): signed by %s.
The device is being enabled. It lasts until %s unless renewed.

The withdraw and "I did not sign this" links of the mail confirming your
signature still work: any one signer's withdrawal ends the consent.
— Doorledger, for the managers of %s
`, rs.Signer.Name, c.ID, b.Name, c.Device.Vendor, c.Device.Model, c.Device.Serial, c.Device.Location, c.Policy.Describe(), SignedBy(c),
		expires.In(b.Location()).Format("2006-01-02"), b.Name), "signed", b.ID)
}

// SignedAlert tells the managers that consent c is signed, last by last.
func SignedAlert(c *doorledger.Consent, last *doorledger.RequestSigner, b *doorledger.Building, method doorledger.VerificationMethod, baseURL string) Alert {
	sig := last.Signature
	typedNote := ""
	if sig.NameDiffers {
		typedNote = fmt.Sprintf("\nThe typed name, “%s”, DIFFERS from the roster name; the signer confirmed signing with it.\n", sig.TypedName)
	}
	who := fmt.Sprintf("%s (%s) signed consent #%d", last.Signer.Name, last.Signer.Title, c.ID)
	if len(c.Signers) > 1 {
		who = fmt.Sprintf("Consent #%d now has the signatures its policy requires (%s): %s. The last", c.ID, c.Policy.Describe(), SignedBy(c)) +
			fmt.Sprintf(", %s (%s), signed", last.Signer.Name, last.Signer.Title)
	}
	return Alert{fmt.Sprintf("Consent #%d signed at %s", c.ID, b.Name),
		fmt.Sprintf("%s for %s %s, serial %s, at %s; their roster address was verified by %s. The device is being enabled.\n%s\n%s/consents/%d\n",
			who, c.Device.Vendor, c.Device.Model, c.Device.Serial, c.Device.Location, MethodWords(method), typedNote, baseURL, c.ID)}
}

// PrivacyHold tells the managers that consent c is signed but its device
// stays disabled, for the reason hold (the privacy profile's).
func PrivacyHold(c *doorledger.Consent, hold string) Alert {
	return Alert{fmt.Sprintf("Consent #%d signed: device %d stays disabled", c.ID, c.DeviceID), hold + "\n"}
}

// SignatureRecorded confirms to signer me, at now, one signature of a
// request that awaits others, with their end links.
func SignatureRecorded(c *doorledger.Consent, me *doorledger.RequestSigner, b *doorledger.Building, method doorledger.VerificationMethod, differs bool, typed string, now time.Time, links string) *doorledger.Message {
	typedNote := ""
	if differs {
		typedNote = fmt.Sprintf("You signed with the name “%s”, which differs from the name on the roster, “%s”;\nthe record shows both.\n", typed, me.Signer.Name)
	}
	body := fmt.Sprintf(`Dear %s,

Your signature on consent #%d for %s is recorded: %s %s (serial %s) at %s.
Signed: %s. Your registered address, %s, was verified by %s.
%sTerms SHA-256: %s

This building requires %s. Signed so far: %s.
Still needed: %s. Nothing is enabled until then; you will be mailed when the
consent is signed.

If you change your mind before or after, or did not sign this:
%s
Keep this mail as your copy.
— Doorledger, for the managers of %s
`, me.Signer.Name, c.ID, b.Name, c.Device.Vendor, c.Device.Model, c.Device.Serial, c.Device.Location,
		now.In(b.Location()).Format("2006-01-02 15:04 MST"), me.Signer.Email, MethodWords(method), typedNote, c.TermsSHA256,
		c.Policy.Describe(), SignedBy(c), c.Need.Describe(), links, b.Name)
	return mail(me.Signer.Email, "Your signature on consent #"+itoa(c.ID)+" for "+b.Name+" is recorded", body, "signed", b.ID)
}

// Declined tells the managers that signer me declined consent c.
func Declined(c *doorledger.Consent, me *doorledger.RequestSigner, reason, baseURL string) Alert {
	return Alert{fmt.Sprintf("Consent #%d declined at %s", c.ID, c.BuildingName),
		fmt.Sprintf("%s (%s) declined consent #%d for %s %s, serial %s, at %s.\nReason: %s\n\nThe device stays disabled.\n%s/consents/%d\n",
			me.Signer.Name, me.Signer.Title, c.ID, c.Device.Vendor, c.Device.Model, c.Device.Serial, c.Device.Location, orDash(reason), baseURL, c.ID)}
}

// SigningLink mails named signer rs of request c their one-time signing
// link: at the request (why "request"), when their turn comes ("turn"), as
// a reminder ("reminder"), or when a paper form was attached on their
// behalf ("paper"). loc is the building's time zone.
func SigningLink(c *doorledger.Consent, rs doorledger.RequestSigner, why string, loc *time.Location, link string) *doorledger.Message {
	until := "for 7 days"
	if !c.RequestExpiresAt.IsZero() {
		until = "until " + c.RequestExpiresAt.In(loc).Format("2006-01-02 15:04 MST") + ", when the request expires"
	}
	who := ""
	if len(c.Signers) > 1 {
		var others []string
		for _, o := range c.Signers {
			if o.Signer.ID != rs.Signer.ID {
				others = append(others, o.Signer.Name+" ("+o.Signer.Title+")")
			}
		}
		who = fmt.Sprintf("\nThis building requires %s. Also asked: %s.\n", c.Policy.Describe(), doorledger.JoinAnd(others))
	}
	order := ""
	if waiting := c.WaitingFor(rs.Signer.ID); len(waiting) > 0 {
		order = fmt.Sprintf("\nThey sign in order: the link shows the terms now, and takes your signature once\n%s has signed. You will be mailed when it is your turn.\n", doorledger.WaitingWords(waiting))
	}
	subject, opening := "Consent requested: delivery device at "+c.BuildingName, ""
	switch why {
	case "turn":
		subject, opening = "Your turn to sign: delivery device at "+c.BuildingName, "It is your turn to sign: the signers before you have signed.\n\n"
	case "reminder":
		subject, opening = "Reminder: consent requested for a delivery device at "+c.BuildingName, "A reminder: your signature is still needed.\n\n"
	case "paper":
		subject, opening = "Did you sign this form? Delivery device at "+c.BuildingName, "A paper form was attached to this request on your behalf.\n\n"
	}
	if c.Paper != nil && c.Paper.Asks(rs.Signer.ID) != nil {
		order += fmt.Sprintf("\n%s says you signed a paper form for this device (dated %s). Your signing page\nshows it and asks: did you sign this form? If you did not, answer so there:\nthe request is then refused and the managers and the board are alerted.\n",
			c.Paper.AttachedBy, c.Paper.DateWritten)
	}
	body := fmt.Sprintf(`Dear %s,

%s%s of %s asks for your consent, as an authorized signer for %s, to enable a
delivery-access device: %s %s (serial %s), installed at %s. It opens: %s.
%s%s
Review the full terms and sign or decline here (the link works once, %s):

  %s

If you did not expect this request, decline it or ignore this mail: nothing is
enabled without your signature.

— Doorledger, for the managers of %s
`, rs.Signer.Name, opening, c.Installer, orNone(c.Company), c.BuildingName, c.Device.Vendor, c.Device.Model, c.Device.Serial,
		c.Device.Location, c.Device.Opens, who, order, until, link, c.BuildingName)
	kind := "signing_link"
	if why == "reminder" {
		kind = "reminder"
	}
	return mail(rs.Signer.Email, subject, body, kind, c.BuildingID)
}

// EndLinksAgain mails signer me of consent c their end links again, at their asking.
func EndLinksAgain(c *doorledger.Consent, me *doorledger.RequestSigner, links string) *doorledger.Message {
	body := fmt.Sprintf(`Dear %s,

Someone holding a link mailed to you for consent #%d (%s %s, serial %s, at %s, %s)
asked for these links again. The earlier links still work.

%s
If you did not ask for this mail, nothing has changed: the links only work from
this mailbox.
— Doorledger, for the managers of %s
`, me.Signer.Name, c.ID, c.Device.Vendor, c.Device.Model, c.Device.Serial, c.Device.Location, c.BuildingName, links, c.BuildingName)
	// The same links as the confirmation: kind "signed".
	return mail(me.Signer.Email, "Links to withdraw or report consent #"+itoa(c.ID)+" for "+c.BuildingName, body, "signed", c.BuildingID)
}

// RequestEnded tells the managers that request c ended unsigned because a
// signer who had signed withdrew (status withdrawn) or says they did not
// sign (disputed); note says by whom and why.
func RequestEnded(c *doorledger.Consent, status doorledger.ConsentStatus, note, baseURL string) Alert {
	what := "a signer WITHDREW their signature"
	if status == doorledger.ConsentDisputed {
		what = "a signer says they DID NOT SIGN it"
	}
	return Alert{fmt.Sprintf("Consent request #%d ENDED — %s — %s", c.ID, what, c.BuildingName),
		fmt.Sprintf("Consent request #%d for %s %s, serial %s, at %s: %s (%s) before the signatures its policy requires were complete.\nIt ends unsigned; nothing was enabled and nothing will be.\n%s/consents/%d\n",
			c.ID, c.Device.Vendor, c.Device.Model, c.Device.Serial, c.Device.Location, what, orDash(note), baseURL, c.ID)}
}

// ConsentEnded tells the managers that signed consent c was withdrawn,
// disputed or lapsed (status), and that devices of its are being disabled.
func ConsentEnded(c *doorledger.Consent, status doorledger.ConsentStatus, note string, devices int, baseURL string) Alert {
	what := map[doorledger.ConsentStatus]string{
		doorledger.ConsentWithdrawn: "was WITHDRAWN by the signer",
		doorledger.ConsentDisputed:  "was DISPUTED: the signer says they did not sign it",
		doorledger.ConsentLapsed:    "LAPSED: its period ended without renewal",
	}[status]
	return Alert{fmt.Sprintf("Consent #%d %s — %s", c.ID, strings.ToUpper(string(status)), c.BuildingName),
		fmt.Sprintf("Consent #%d for %s %s, serial %s, at %s %s.\nNote: %s\n\n%d device(s) under it are being disabled now.\n%s/consents/%d\n",
			c.ID, c.Device.Vendor, c.Device.Model, c.Device.Serial, c.Device.Location, what, orDash(note), devices, baseURL, c.ID)}
}

// EndNote is the note of a signer's withdrawal or dispute of c: their
// reason, and who they are when the request has several signers.
func EndNote(c *doorledger.Consent, me *doorledger.RequestSigner, reason string) string {
	if len(c.Signers) > 1 && reason == "" {
		return "by " + me.Signer.Name + " (" + me.Signer.Title + ")"
	} else if len(c.Signers) > 1 {
		return "by " + me.Signer.Name + " (" + me.Signer.Title + "): " + reason
	}
	return reason
}

// Code mails signer me the 6-digit code to sign request c on the
// installer's screen.
func Code(c *doorledger.Consent, me *doorledger.RequestSigner, code string) *doorledger.Message {
	body := fmt.Sprintf(`Dear %s,

%s of %s is with you to sign consent #%d for %s: %s %s (serial %s) at %s.

Your code is: %s

Type it on the installer's screen only if you are there and want to review and
sign. It works for 10 minutes. If you are not with the installer, do not share
it; ignore this mail.

— Doorledger, for the managers of %s
`, me.Signer.Name, c.Installer, orNone(c.Company), c.ID, c.BuildingName, c.Device.Vendor, c.Device.Model, c.Device.Serial, c.Device.Location, code, c.BuildingName)
	return mail(me.Signer.Email, "Your code to sign consent #"+itoa(c.ID), body, "signing_code", c.BuildingID)
}

// ExpiredNote is the timeline note of request c expiring unsigned.
func ExpiredNote(c *doorledger.Consent) string {
	got := "no signature"
	if signed := SignedBy(c); signed != "" {
		got = "signed only by " + signed
	}
	return fmt.Sprintf("not signed as the policy requires (%s) within %d days: %s; still needed: %s", c.Policy.Describe(), c.Policy.ExpiryDays, got, c.Need.Describe())
}

// Expired tells the installer and the managers that request c expired
// unsigned at now; note is ExpiredNote(c). The installer's copy is to be
// masked (c.MaskAddresses).
func Expired(c *doorledger.Consent, note string, now time.Time, baseURL string) Alert {
	return Alert{fmt.Sprintf("Consent request #%d expired unsigned — %s", c.ID, c.BuildingName), fmt.Sprintf(`Consent request #%d for %s %s, serial %s, at %s (%s) expired on %s:
it was %s.
Its signing links and codes no longer work; the device stays disabled.

The installer or a manager can send it again as a new request, in one step, on
its page:
  %s/consents/%d

— Doorledger, for the managers of %s
`, c.ID, c.Device.Vendor, c.Device.Model, c.Device.Serial, c.Device.Location, c.BuildingName, now.Format("2006-01-02"), note, baseURL, c.ID, c.BuildingName)}
}
