package reports

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/doorledger/doorledger"
	"github.com/doorledger/doorledger/imagecheck"
	"github.com/go-pdf/fpdf"
)

// multiSignerCertificate is the certificate of a request that names several
// signers (a consent policy): the policy it was made under, each signer asked and
// where they stand, the terms once — every signature is of these same bytes
// — and then every signature with its own evidence: typed name and roster
// name, time, IP address, user agent, how the roster address was verified,
// the SHA-256 of the terms signed checked against the printed terms, and
// the drawn signature.
func multiSignerCertificate(w io.Writer, c *doorledger.Consent, b *doorledger.Building, d document, wh *doorledger.WitnessedHead) error {
	sigs := c.Signatures()
	images := make([]signatureImage, len(sigs))
	for i, s := range sigs {
		images[i].png, images[i].err = imagecheck.Signature(s.SignaturePNG)
		if doorledger.ErrorCode(images[i].err) == doorledger.ETOOMANY {
			return images[i].err
		}
	}
	loc := b.Location()
	err := render(w, d, func(pdf *fpdf.Fpdf) {
		p := &printer{pdf: pdf, loc: loc, witnessed: wh}
		p.title(c, d.CreatedAt)
		p.policyStatus(c, d.CreatedAt)

		p.heading("Building")
		p.field("Name", b.Name)
		p.field("Address", b.Address)
		p.field("Time zone", loc.String())

		p.heading("Device")
		p.field("Vendor", c.Device.Vendor)
		p.field("Model", c.Device.Model)
		p.field("Serial number", c.Device.Serial)
		p.field("Location", c.Device.Location)
		p.field("Opens", c.Device.Opens)

		p.heading("Installer")
		p.field("Name", c.Installer)
		p.field("Company", c.Company)

		p.heading("Policy and signers asked (from the building's roster)")
		p.field("Policy", "requires "+c.Policy.Describe()+" (the building's policy when the request was made)")
		p.field("Requested (UTC)", formatUTC(c.RequestedAt))
		for _, rs := range c.Signers {
			p.field(fmt.Sprintf("%d. %s", rs.Position, rs.Signer.Title), fmt.Sprintf("%s <%s> — %s", rs.Signer.Name, rs.Signer.Email, signerStateWords(rs)))
		}

		if c.Terms != "" {
			p.heading("Terms every signer was shown")
			pdf.SetFont(fontFamily, "", 9)
			pdf.MultiCell(contentWidth, 4.4, multiLine(c.Terms), "", "L", false)
			p.fieldSized("Terms SHA-256", strings.ToLower(c.TermsSHA256), 8)
		}
		for i, s := range sigs {
			p.heading(fmt.Sprintf("Signature %d of %d: %s, %s", i+1, len(sigs), s.Signer.Name, s.Signer.Title))
			p.signatureEvidence(c, s, images[i])
		}
		if len(sigs) == 0 {
			p.heading("Signatures and evidence")
			p.box(colorAlert, "NO SIGNATURE", "No signer has signed. There is no evidence, and no terms were accepted.")
		}
		p.paperForm(c)
		p.laterFacts(c)
		p.witnessedLog()
	})
	if err != nil {
		return fmt.Errorf("consent certificate %d: %w", c.ID, err)
	}
	return nil
}

// policyStatus prints the banner of a request with several signers: signed
// as its policy requires, or not, and what happened since.
func (p *printer) policyStatus(c *doorledger.Consent, generatedAt time.Time) {
	sigs := c.Signatures()
	got := fmt.Sprintf("%d signature(s) recorded of the %d its policy requires (%s).", len(sigs), c.Policy.Required, c.Policy.Describe())
	switch c.Status {
	case doorledger.ConsentSigned:
		detail := fmt.Sprintf("Signed as its policy requires, the last signature on %s: %s Each signer's roster address was verified; typed names are not verified.",
			formatUTC(c.Signature.SignedAt), got)
		if generatedAt.Before(c.ExpiresAt) {
			p.box(colorOK, "SIGNED", detail+" In force until "+formatUTC(c.ExpiresAt)+".")
		} else {
			p.box(colorWarn, "SIGNED, PERIOD ENDED", detail+" Its period ended on "+formatUTC(c.ExpiresAt)+".")
		}
	case doorledger.ConsentAwaiting:
		p.box(colorAlert, "NOT SIGNED — AWAITING SIGNATURES", got+" Still needed: "+c.Need.Describe()+". It permits nothing.")
	case doorledger.ConsentExpired:
		p.box(colorAlert, "NOT SIGNED — EXPIRED", got+" The request expired on "+formatUTC(c.ExpiredAt)+". It permits nothing.")
	case doorledger.ConsentDeclined:
		p.box(colorAlert, "NOT SIGNED — ENDED", got+" The request ended unsigned: "+oneLine(c.StatusNote)+". It permits nothing.")
	case doorledger.ConsentWithdrawn:
		p.box(colorWarn, "SIGNED, THEN WITHDRAWN", got+" A signer has since withdrawn it; it permits nothing.")
	case doorledger.ConsentDisputed:
		p.box(colorAlert, "SIGNED, NOW DISPUTED", got+" A signer says they did not sign it; do not rely on it.")
	case doorledger.ConsentLapsed:
		p.box(colorWarn, "SIGNED, NOW LAPSED", got+" Its period ran out without renewal; it permits nothing.")
	default:
		p.box(colorWarn, statusLabel(c.Status), got)
	}
}

// signatureEvidence prints one signature's evidence.
func (p *printer) signatureEvidence(c *doorledger.Consent, s *doorledger.ConsentSignature, img signatureImage) {
	p.field("Typed name", s.TypedName)
	p.field("Roster name", s.Signer.Name)
	p.field("Name check", nameCheck(s))
	p.field("Signed at (UTC)", formatUTC(s.SignedAt))
	p.field("Signed at (building time)", formatIn(s.SignedAt, p.loc))
	p.field("IP address", s.IP)
	p.field("User agent", s.UserAgent)
	p.field("Verification", methodLabel(s.Method)+": "+s.Address)
	if !s.Signer.Active {
		p.field("On the roster now", "No: "+removedWords(s.Signer)+" after signing (the signature stands: they were on the roster when they signed)")
	}
	p.fieldSized("Terms SHA-256", strings.ToLower(s.TermsSHA256), 8)
	p.termsCheck("the terms printed above", c.Terms, s.TermsSHA256)
	p.signature(c.ID, img)
}

func signerStateWords(rs doorledger.RequestSigner) string {
	switch rs.State {
	case doorledger.SignerSigned:
		return "signed " + formatUTC(rs.Signature.SignedAt)
	case doorledger.SignerWaiting:
		return "waiting for the earlier signers"
	case doorledger.SignerRemoved:
		return "removed from the roster before signing: dropped out"
	case doorledger.SignerNotNeeded:
		return "did not sign (not needed)"
	}
	return "asked, has not signed"
}
