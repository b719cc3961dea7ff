package notice

import (
	"fmt"
	"strings"

	"github.com/doorledger/doorledger"
)

// rosterLine is one consent in the mails of a signer's removal.
func rosterLine(b *strings.Builder, c *doorledger.Consent, baseURL string) {
	fmt.Fprintf(b, "  consent #%d: %s %s, serial %s, at %s (installer %s, %s)\n    %s/consents/%d\n",
		c.ID, c.Device.Vendor, c.Device.Model, c.Device.Serial, c.Device.Location, c.Installer, orNone(c.Company), baseURL, c.ID)
}

// RequestsUnsignable tells an installer, at address to, that their
// requests (of one building) can no longer be signed since the signer
// removed left the roster. It names the signer only: installers get no
// contact data of signers.
func RequestsUnsignable(to string, removed doorledger.Signer, requests []*doorledger.Consent, baseURL string) *doorledger.Message {
	first := requests[0]
	var b strings.Builder
	for _, c := range requests {
		rosterLine(&b, c, baseURL)
	}
	return mail(to, fmt.Sprintf("Consent requests at %s can no longer be signed", first.BuildingName), fmt.Sprintf(`%s was removed from the roster of authorized signers of %s, so these
requests of yours can no longer be signed: their signing links and codes no
longer work, and nothing was enabled.

%s
The building's managers have been told; they can ask a current signer instead.

— Doorledger, for the managers of %s
`, removed.Name, first.BuildingName, b.String(), first.BuildingName), "alert", first.BuildingID)
}

// SignerRemoved tells the managers of building that signer removed was
// taken off its roster by someone (by): the requests withdrawn, the
// requests the other signers can still satisfy (still), and the signed
// consents resting on them (signed).
func SignerRemoved(building string, removed doorledger.Signer, by string, withdrawn, still, signed []*doorledger.Consent, baseURL string) Alert {
	var pending, stillB, active strings.Builder
	for _, c := range withdrawn {
		rosterLine(&pending, c, baseURL)
	}
	for _, c := range still {
		rosterLine(&stillB, c, baseURL)
		fmt.Fprintf(&stillB, "    still needed: %s\n", c.Need.Describe())
	}
	for _, c := range signed {
		rosterLine(&active, c, baseURL)
	}
	var body strings.Builder
	fmt.Fprintf(&body, "%s (%s) was removed from the roster of authorized signers of %s by %s.\n", removed.Name, removed.Title, building, by)
	if pending.Len() > 0 {
		fmt.Fprintf(&body, "\nRequests awaiting their signature can no longer be signed (their links and codes no\nlonger work; the installers were told). Ask a current signer on each consent's page:\n%s", pending.String())
	}
	if stillB.Len() > 0 {
		fmt.Fprintf(&body, "\nRequests that named them among several signers: they drop out, and the others can\nstill satisfy the policy:\n%s", stillB.String())
	}
	if active.Len() > 0 {
		fmt.Fprintf(&body, "\nConsents they signed stay valid (they were authorized when they signed) and are\nflagged on the building page and in reports. Ask a current signer to renew them on\neach consent's page:\n%s", active.String())
	}
	return Alert{fmt.Sprintf("Signer removed at %s: %d request(s) withdrawn, %d signed consent(s) to renew", building, len(withdrawn), len(signed)), body.String()}
}
