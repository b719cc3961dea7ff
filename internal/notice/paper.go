package notice

import (
	"fmt"
	"time"

	"github.com/doorledger/doorledger"
)

// PaperAttachedNote is the timeline note of a paper form attached to a
// request: what it is (kind, files, pages), who it is said to be signed by
// (names), its date and hash; onBehalf when a manager attached it.
func PaperAttachedNote(in doorledger.PaperFormInput, files, pages int, names []string, sha256 string, onBehalf bool) string {
	what := fmt.Sprintf("%d photo(s)", files)
	if in.Kind == doorledger.PaperPDF {
		what = fmt.Sprintf("a PDF of %d page(s)", pages)
	}
	note := fmt.Sprintf("%s, said to be signed by %s on %s; SHA-256 %s; each is asked to confirm it", what, doorledger.JoinAnd(names), in.DateWritten, sha256)
	if onBehalf {
		note = "attached by a manager on a signer's behalf: " + note
	}
	return note
}

// PaperDisputedNote is the note of signer me's answer "I did not sign this form".
func PaperDisputedNote(me *doorledger.RequestSigner, reason string) string {
	note := fmt.Sprintf("%s (%s) answered “I did not sign this form”", me.Signer.Name, me.Signer.Title)
	if reason != "" {
		note += ": " + reason
	}
	return note
}

// PaperEnded says what a disputed paper form did to c: the request is
// refused, or the consent (signed meanwhile) disputed.
func PaperEnded(c *doorledger.Consent) string {
	if c.Status == doorledger.ConsentSigned {
		return "the consent is disputed"
	}
	return "the request is refused"
}

// PaperDisputed tells the managers (and the board) that signer me says they
// did not sign the paper form of c; ended is PaperEnded(c), disabled the
// devices being disabled, loc the building's time zone.
func PaperDisputed(c *doorledger.Consent, me *doorledger.RequestSigner, reason, ended string, disabled int, loc *time.Location, baseURL string) Alert {
	return Alert{fmt.Sprintf("Paper form DISPUTED — consent #%d — %s", c.ID, c.BuildingName),
		fmt.Sprintf(`%s (%s) says they DID NOT SIGN the paper form attached to consent #%d:
%s %s, serial %s, at %s.

The form: %s, attached by %s (%s) on %s, said to be signed by %s.
Reason given: %s

Consequence: %s; the device stays disabled%s. %s's submission is marked
disputed and counted on the building page and in the board report.
%s/consents/%d
`, me.Signer.Name, me.Signer.Title, c.ID, c.Device.Vendor, c.Device.Model, c.Device.Serial, c.Device.Location,
			c.Paper.Describe(), c.Paper.AttachedBy, c.Paper.AttachedAs, c.Paper.AttachedAt.In(loc).Format("2006-01-02 15:04 MST"), c.Paper.SignedByWords(),
			orDash(reason), ended, disabledWords(disabled), c.Installer, baseURL, c.ID)}
}

func disabledWords(n int) string {
	if n == 0 {
		return ""
	}
	return fmt.Sprintf(" (%d device(s) that were enabled are being disabled now)", n)
}
