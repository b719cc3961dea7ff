package doorledger

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
)

// TermsVersion names the layout of the canonical terms document. A change to
// ConsentTerms's text is a new version, so an old hash can always be recomputed.
const TermsVersion = "doorledger-consent-terms/1"

// TermsVersion2 is the layout of the terms of a request under a consent
// policy (ConsentTermsV2): one document that names every signer the request
// asks and the policy they sign under, signed by each of them, so every
// signature carries the SHA-256 of the same bytes.
const TermsVersion2 = "doorledger-consent-terms/2"

// ConsentTerms returns the canonical terms document the signer reads and signs:
// plain UTF-8 text, LF line endings, built only from the consent's stored facts,
// so the same consent always yields the same bytes and the same SHA-256.
func ConsentTerms(c *Consent, b *Building) string {
	var s strings.Builder
	line := func(format string, args ...any) { fmt.Fprintf(&s, format+"\n", args...) }
	line("%s", TermsVersion)
	line("")
	line("CONSENT TO INSTALL AND ENABLE A DELIVERY-ACCESS DEVICE")
	line("")
	line("Building: %s", b.Name)
	line("Address: %s", b.Address)
	line("Consent request: #%d", c.ID)
	line("")
	line("The device")
	line("  Vendor: %s", c.Device.Vendor)
	line("  Model: %s", c.Device.Model)
	line("  Serial number: %s", c.Device.Serial)
	line("  Installed at: %s", c.Device.Location)
	line("  Opens: %s", c.Device.Opens)
	line("")
	line("Requested by the installer %s of %s.", c.Installer, orDash(c.Company))
	line("Asked of %s, %s, authorized signer for this building, at %s.", c.Signer.Name, c.Signer.Title, c.Signer.Email)
	line("")
	line("What you consent to")
	line("  The device above may be enabled so that couriers of the vendor's delivery")
	line("  service can open the door named above to deliver packages. Every unlock is")
	line("  recorded with its time, device and courier or package reference, and the")
	line("  building's managers and board can see that history.")
	line("  This consent lasts %d months from signing unless renewed, and ends earlier", b.ConsentMonths)
	line("  if you withdraw it. When it ends, the device is disabled.")
	line("")
	line("How to withdraw")
	line("  The confirmation email you receive after signing has a link to withdraw this")
	line("  consent and a link to report \"I did not sign this\". Either disables every")
	line("  device under this consent at once and alerts the building's managers. You may")
	line("  also ask the building's manager to withdraw it for you.")
	line("")
	line("Electronic signature disclosure")
	line("  You may sign this consent electronically. Your typed name and drawn signature")
	line("  have the same effect as a handwritten signature. You may instead ask the")
	line("  building's manager for a paper form; a paper form is recorded but the device")
	line("  is enabled only after you verify through your registered email address. You")
	line("  may withdraw your consent to electronic records at any time by withdrawing")
	line("  this consent. Keep the confirmation email as your copy.")
	return s.String()
}

// ConsentTermsV2 returns the canonical terms of a request under a consent
// policy (version 2): plain UTF-8 text, LF line endings, built only from the
// request's stored facts — the building, the device, the installer, the
// policy recorded with the request, the signers it names in their order, and
// the consent period in months — when the request is made. The bytes are
// stored with the request and shown to every signer, and each signature
// records their SHA-256, so every signature is of the same document.
func ConsentTermsV2(c *Consent, b *Building, months int) string {
	var s strings.Builder
	line := func(format string, args ...any) { fmt.Fprintf(&s, format+"\n", args...) }
	p := c.Policy
	line("%s", TermsVersion2)
	line("")
	line("CONSENT TO INSTALL AND ENABLE A DELIVERY-ACCESS DEVICE")
	line("")
	line("Building: %s", b.Name)
	line("Address: %s", b.Address)
	line("Consent request: #%d", c.ID)
	line("")
	line("The device")
	line("  Vendor: %s", c.Device.Vendor)
	line("  Model: %s", c.Device.Model)
	line("  Serial number: %s", c.Device.Serial)
	line("  Installed at: %s", c.Device.Location)
	line("  Opens: %s", c.Device.Opens)
	line("")
	line("Requested by the installer %s of %s.", c.Installer, orDash(c.Company))
	line("")
	line("Who must sign")
	line("  This building's consent policy requires %s.", p.Describe())
	line("  The device is enabled only once that many of the signers below have signed")
	line("  these same terms, each verified through their own registered address.")
	line("  Asked of these authorized signers of this building:")
	for _, rs := range c.Signers {
		line("  %d. %s, %s, at %s", rs.Position, rs.Signer.Name, rs.Signer.Title, rs.Signer.Email)
	}
	line("")
	line("What you consent to")
	line("  The device above may be enabled so that couriers of the vendor's delivery")
	line("  service can open the door named above to deliver packages. Every unlock is")
	line("  recorded with its time, device and courier or package reference, and the")
	line("  building's managers and board can see that history.")
	line("  This consent lasts %d months from the signature that completes it unless", months)
	line("  renewed, and ends earlier if any one of its signers withdraws it. When it")
	line("  ends, the device is disabled.")
	line("")
	line("How to withdraw")
	line("  The confirmation email each signer receives after signing has a link to")
	line("  withdraw this consent and a link to report \"I did not sign this\". Either,")
	line("  used by any one signer, ends the consent, disables every device under it at")
	line("  once and alerts the building's managers. You may also ask the building's")
	line("  manager to withdraw it for you.")
	line("")
	line("Electronic signature disclosure")
	line("  You may sign this consent electronically. Your typed name and drawn signature")
	line("  have the same effect as a handwritten signature. You may instead ask the")
	line("  building's manager for a paper form; a paper form is recorded but the device")
	line("  is enabled only after you verify through your registered email address. You")
	line("  may withdraw your consent to electronic records at any time by withdrawing")
	line("  this consent. Keep the confirmation email as your copy.")
	return s.String()
}

func orDash(s string) string {
	if s == "" {
		return "—"
	}
	return s
}

// TermsSHA256 returns the hex SHA-256 of a terms document's exact bytes.
func TermsSHA256(terms string) string {
	sum := sha256.Sum256([]byte(terms))
	return hex.EncodeToString(sum[:])
}
