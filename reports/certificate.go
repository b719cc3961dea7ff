package reports

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"image/png"
	"io"
	"strings"
	"time"

	"github.com/doorledger/doorledger"
	"github.com/doorledger/doorledger/imagecheck"
	"github.com/go-pdf/fpdf"
)

// ConsentCertificate writes the PDF certificate of consent c in building b, as
// generated at generatedAt (which is also the PDF's creation date, so the same
// inputs give the same bytes).
//
// It prints the building, the device, the installer, the signer as on the
// roster, the status, and, when c is signed, the full terms the signer saw,
// the evidence (typed name, signing time in UTC and in the building's time
// zone, IP address, user agent, verification method, terms SHA-256 checked
// against the printed terms) and the signature image, re-validated with
// imagecheck.Signature first. A consent without a signature says plainly that
// it is NOT signed and has no evidence. Later facts (declined, withdrawn,
// disputed, lapsed) follow with their time and note.
func ConsentCertificate(w io.Writer, c *doorledger.Consent, b *doorledger.Building, generatedAt time.Time) error {
	return ConsentCertificateWitnessed(w, c, b, generatedAt, nil)
}

// ConsentCertificateWitnessed is ConsentCertificate ending with the
// portal's log as its witnesses vouched for it when the certificate was
// made: the latest checkpoint that met the witness policy, with its
// cosignatures (wh nil: not printed).
func ConsentCertificateWitnessed(w io.Writer, c *doorledger.Consent, b *doorledger.Building, generatedAt time.Time, wh *doorledger.WitnessedHead) error {
	if c == nil || b == nil {
		return fmt.Errorf("consent certificate: consent and building are required")
	}
	generatedAt = generatedAt.UTC()
	d := document{
		ID:        fmt.Sprintf("Consent certificate · consent #%d · document C%d-%s", c.ID, c.ID, generatedAt.Format("20060102T150405Z")),
		Title:     fmt.Sprintf("Consent certificate #%d – %s", c.ID, b.Name),
		CreatedAt: generatedAt,
	}
	if len(c.Signers) > 1 {
		return multiSignerCertificate(w, c, b, d, wh)
	}
	// The stored image reaches fpdf's decoder, so it is validated again here
	// however it was stored.
	var sig signatureImage
	if c.Signature != nil {
		sig.png, sig.err = imagecheck.Signature(c.Signature.SignaturePNG)
		if doorledger.ErrorCode(sig.err) == doorledger.ETOOMANY {
			return sig.err // busy decoding other images: no certificate rather than one without its signature
		}
	}
	loc := b.Location()

	err := render(w, d, func(pdf *fpdf.Fpdf) {
		p := &printer{pdf: pdf, loc: loc, witnessed: wh}
		p.title(c, generatedAt)
		p.status(c, generatedAt)

		p.heading("Building")
		p.field("Name", b.Name)
		p.field("Address", b.Address)
		if tz := loc.String(); b.Timezone == tz {
			p.field("Time zone", tz)
		} else {
			p.field("Time zone", b.Timezone+" (not a known zone: building times below are in "+tz+")")
		}

		p.heading("Device")
		p.field("Vendor", c.Device.Vendor)
		p.field("Model", c.Device.Model)
		p.field("Serial number", c.Device.Serial)
		p.field("Location", c.Device.Location)
		p.field("Opens", c.Device.Opens)

		p.heading("Installer")
		p.field("Name", c.Installer)
		p.field("Company", c.Company)

		p.heading("Signer asked (from the building's roster)")
		p.field("Name", c.Signer.Name)
		p.field("Title", c.Signer.Title)
		p.field("Email", c.Signer.Email)
		p.field("On the roster now", rosterNow(c))
		p.field("Requested (UTC)", formatUTC(c.RequestedAt))
		p.field("Requested (building time)", formatIn(c.RequestedAt, loc))

		if s := c.Signature; s != nil {
			p.terms(s)
			p.evidence(c, s, sig)
		} else {
			p.heading("Signature and evidence")
			p.box(colorAlert, "NOT SIGNED",
				"This consent has not been signed. There is no signature and no evidence, "+
					"and no terms were accepted. It permits nothing.")
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

// signatureImage is the stored signature after imagecheck.Signature: the
// re-encoded PNG, or why it cannot be shown.
type signatureImage struct {
	png []byte
	err error
}

// printer writes the parts of a certificate in a consistent layout.
type printer struct {
	pdf       *fpdf.Fpdf
	loc       *time.Location            // the building's
	witnessed *doorledger.WitnessedHead // the log as witnesses vouched for it; nil: not printed
}

// witnessedLog prints who vouched for the portal's log, which holds this
// consent's journal entries, when the certificate was made.
func (p *printer) witnessedLog() {
	w := p.witnessed
	if w == nil {
		return
	}
	p.heading("Witnessed log")
	if w.Policy.N == 0 {
		p.field("Witnesses", "none configured: the log is signed by the portal's key alone")
		return
	}
	p.field("Policy", fmt.Sprintf("%d of %d witnesses", w.Policy.K, w.Policy.N))
	if w.Head == nil {
		p.box(colorWarn, "NOT WITNESSED", "No checkpoint of the portal's log met the witness policy when this certificate was made: "+w.Summary()+".")
		return
	}
	p.fieldSized("Witnessed", w.Summary(), 8)
	p.field("Checkpoint", fmt.Sprintf("%d entries", w.Head.Size))
	p.pdf.SetFont(fontFamily, "", 7)
	p.pdf.MultiCell(contentWidth, 3.4, multiLine(w.CosignedNote()), "1", "L", false)
}

type rgb struct{ r, g, b int }

var (
	colorOK    = rgb{226, 243, 230}
	colorWarn  = rgb{255, 241, 214}
	colorAlert = rgb{251, 224, 224}
	colorMuted = rgb{95, 95, 95}
)

const (
	labelWidth = 56.0
	lineHeight = 5.2
	pageHeight = 297.0
)

func (p *printer) title(c *doorledger.Consent, generatedAt time.Time) {
	pdf := p.pdf
	pdf.SetFont(fontFamily, "B", 20)
	pdf.CellFormat(contentWidth, 10, "Consent certificate", "", 1, "L", false, 0, "")
	pdf.SetFont(fontFamily, "", 11)
	pdf.CellFormat(contentWidth, 6, "Owner consent to a delivery-access device", "", 1, "L", false, 0, "")
	pdf.SetFont(fontFamily, "", 9)
	pdf.SetTextColor(colorMuted.r, colorMuted.g, colorMuted.b)
	pdf.CellFormat(contentWidth, 5, fmt.Sprintf("Doorledger record: consent #%d · generated %s", c.ID, formatUTC(generatedAt)), "", 1, "L", false, 0, "")
	pdf.SetTextColor(0, 0, 0)
	pdf.Ln(3)
}

// status prints the banner that says, first, whether this consent was signed.
func (p *printer) status(c *doorledger.Consent, generatedAt time.Time) {
	label := statusLabel(c.Status)
	if c.Signature == nil {
		detail := "There is no signature and no evidence."
		switch c.Status {
		case doorledger.ConsentAwaiting:
			detail = "The signer has been asked and has not signed. " + detail
		case doorledger.ConsentDeclined:
			detail = "The signer declined. " + detail
		default: // a status that implies a signature, without one: say so
			p.box(colorAlert, "NOT SIGNED", "The record's status is "+label+", but no signature is on record. "+detail)
			return
		}
		p.box(colorAlert, "NOT SIGNED — "+label, detail)
		return
	}
	// What was verified is the roster address, by link or code: never the name.
	signed := fmt.Sprintf("Signed on %s with the typed name “%s”. Verified: %s; the typed name is not verified.",
		formatUTC(c.Signature.SignedAt), oneLine(c.Signature.TypedName), verifiedWhat(c))
	if c.Signature.NameDiffers {
		signed += fmt.Sprintf(" The typed name differs from the roster name, “%s”; the signer confirmed signing with it.", oneLine(c.Signer.Name))
	}
	if c.SignedByRemovedSigner() {
		signed += " The signer has since been " + removedWords(c.Signer) + "; the consent stays valid, as they were on the roster when they signed."
	}
	switch c.Status {
	case doorledger.ConsentSigned:
		color, headline := colorOK, "SIGNED"
		if c.Signature.NameDiffers {
			color, headline = colorWarn, "SIGNED — TYPED NAME DIFFERS FROM THE ROSTER"
		} else if c.SignedByRemovedSigner() {
			color, headline = colorWarn, "SIGNED — SIGNER SINCE REMOVED FROM THE ROSTER"
		}
		switch {
		case c.ExpiresAt.IsZero():
			p.box(color, headline, signed+" In force.")
		case generatedAt.Before(c.ExpiresAt):
			p.box(color, headline, signed+" In force until "+formatUTC(c.ExpiresAt)+".")
		default:
			p.box(colorWarn, "SIGNED, PERIOD ENDED", signed+" Its period ended on "+formatUTC(c.ExpiresAt)+" and it has not yet been marked lapsed.")
		}
	case doorledger.ConsentWithdrawn:
		p.box(colorWarn, "SIGNED, THEN WITHDRAWN", signed+" The signer has since withdrawn it; it permits nothing.")
	case doorledger.ConsentDisputed:
		p.box(colorAlert, "SIGNED, NOW DISPUTED", signed+" The signer says they did not sign it; do not rely on it.")
	case doorledger.ConsentLapsed:
		p.box(colorWarn, "SIGNED, NOW LAPSED", signed+" Its period ran out without renewal; it permits nothing.")
	default:
		p.box(colorWarn, "SIGNED — "+label, signed)
	}
}

func (p *printer) terms(s *doorledger.ConsentSignature) {
	pdf := p.pdf
	p.heading("Terms the signer accepted")
	pdf.SetFont(fontFamily, "", 9)
	text := multiLine(s.Terms)
	if text == "" {
		text = "(The stored terms are empty.)"
	}
	pdf.MultiCell(contentWidth, 4.4, text, "", "L", false)
}

func (p *printer) evidence(c *doorledger.Consent, s *doorledger.ConsentSignature, sig signatureImage) {
	p.heading("Evidence of signing")
	p.field("Typed name", s.TypedName)
	p.field("Roster name", c.Signer.Name)
	p.field("Name check", nameCheck(s))
	p.field("Signed at (UTC)", formatUTC(s.SignedAt))
	loc := p.loc // the zone recorded at signing, if it loads, else today's
	if s.Timezone != "" && s.Timezone != "Local" {
		if l, err := time.LoadLocation(s.Timezone); err == nil {
			loc = l
		}
	}
	p.field("Signed at (building time)", formatIn(s.SignedAt, loc))
	p.field("IP address", s.IP)
	p.field("User agent", s.UserAgent)
	p.field("Verification", methodLabel(s.Method))
	p.fieldSized("Terms SHA-256", strings.ToLower(s.TermsSHA256), 8) // small enough to stay on one line
	p.termsCheck("the terms printed above", s.Terms, s.TermsSHA256)
	p.signature(c.ID, sig)
}

// signature draws the validated signature image in a frame, or says why it
// cannot.
func (p *printer) signature(consentID int64, sig signatureImage) {
	pdf := p.pdf
	const boxW, boxH, pad = 90.0, 36.0, 3.0

	if sig.err != nil {
		p.field("Signature", "The stored signature image cannot be shown: "+doorledger.ErrorMessage(sig.err))
		return
	}
	img := sig.png
	cfg, err := png.DecodeConfig(bytes.NewReader(img))
	if err != nil || cfg.Width == 0 || cfg.Height == 0 { // cannot happen after imagecheck
		p.field("Signature", "The stored signature image cannot be shown.")
		return
	}

	if pdf.GetY()+boxH+2 > pageHeight-marginBottom {
		pdf.AddPage()
	}
	pdf.SetFont(fontFamily, "B", 9)
	pdf.SetTextColor(colorMuted.r, colorMuted.g, colorMuted.b)
	y := pdf.GetY()
	pdf.CellFormat(labelWidth, lineHeight, "Signature as drawn", "", 0, "L", false, 0, "")
	pdf.SetTextColor(0, 0, 0)

	x := marginLeft + labelWidth
	y += 1
	pdf.SetDrawColor(170, 170, 170)
	pdf.SetLineWidth(0.3)
	pdf.Rect(x, y, boxW, boxH, "D")

	// Fit the image inside the frame, keeping its aspect ratio.
	w, h := boxW-2*pad, (boxW-2*pad)*float64(cfg.Height)/float64(cfg.Width)
	if h > boxH-2*pad {
		h = boxH - 2*pad
		w = h * float64(cfg.Width) / float64(cfg.Height)
	}
	// Named by its bytes: fpdf keys images by content, so one image under
	// two names would be two objects under one key.
	sum := sha256.Sum256(img)
	name := fmt.Sprintf("signature-%d-%x", consentID, sum[:8])
	opts := fpdf.ImageOptions{ImageType: "PNG"}
	pdf.RegisterImageOptionsReader(name, opts, bytes.NewReader(img))
	pdf.ImageOptions(name, x+(boxW-w)/2, y+(boxH-h)/2, w, h, false, opts, 0, "")
	pdf.SetY(y + boxH + 2)
}

func (p *printer) laterFacts(c *doorledger.Consent) {
	switch c.Status {
	case doorledger.ConsentDeclined, doorledger.ConsentWithdrawn, doorledger.ConsentDisputed, doorledger.ConsentLapsed:
	default:
		return
	}
	p.heading("Later facts")
	p.field("Status", statusLabel(c.Status))
	p.field("Recorded at (UTC)", formatUTC(c.StatusAt))
	p.field("Recorded at (building time)", formatIn(c.StatusAt, p.loc))
	note := c.StatusNote
	if strings.TrimSpace(note) == "" {
		note = "(no note recorded)"
	}
	p.field("Note", note)
}

// heading starts a section, on a new page if fewer than a few lines fit.
func (p *printer) heading(text string) {
	pdf := p.pdf
	if pdf.GetY() > pageHeight-marginBottom-30 {
		pdf.AddPage()
	} else {
		pdf.Ln(3)
	}
	pdf.SetFont(fontFamily, "B", 12)
	pdf.CellFormat(contentWidth, 7, oneLine(text), "", 1, "L", false, 0, "")
	pdf.SetDrawColor(190, 190, 190)
	pdf.SetLineWidth(0.2)
	pdf.Line(marginLeft, pdf.GetY(), pageWidth-marginRight, pdf.GetY())
	pdf.Ln(1.5)
}

// field prints a label and a value that wraps within its column. Empty values
// print as a dash so a missing fact is visibly missing.
func (p *printer) field(label, value string) { p.fieldSized(label, value, 10) }

// termsCheck prints whether terms (which names them: "the stored terms")
// hash to sum, the SHA-256 recorded with a signature.
func (p *printer) termsCheck(which, terms, sum string) {
	got := sha256.Sum256([]byte(terms))
	if strings.EqualFold(hex.EncodeToString(got[:]), sum) {
		p.field("Terms check", upperFirst(which)+" hash to this SHA-256.")
	} else {
		p.field("Terms check", "WARNING: "+which+" do NOT hash to this SHA-256.")
	}
}

// fieldSized is field with the value in the given font size.
func (p *printer) fieldSized(label, value string, size float64) {
	pdf := p.pdf
	value = oneLine(value)
	if value == "" {
		value = "—"
	}
	pdf.SetFont(fontFamily, "B", 9)
	pdf.SetTextColor(colorMuted.r, colorMuted.g, colorMuted.b)
	labelLines := pdf.SplitText(oneLine(label), labelWidth-2)
	pdf.SetFont(fontFamily, "", size)
	valueLines := pdf.SplitText(value, contentWidth-labelWidth)
	// Keep a field that fits on a page whole; a longer one breaks inside MultiCell.
	need := float64(max(len(labelLines), len(valueLines))) * lineHeight
	if pdf.GetY()+need > pageHeight-marginBottom && need < pageHeight-marginTop-marginBottom {
		pdf.AddPage()
	}

	y := pdf.GetY()
	pdf.SetFont(fontFamily, "B", 9)
	pdf.MultiCell(labelWidth-2, lineHeight, oneLine(label), "", "L", false)
	labelEnd, labelPage := pdf.GetY(), pdf.PageNo()
	pdf.SetTextColor(0, 0, 0)
	pdf.SetFont(fontFamily, "", size)
	pdf.SetXY(marginLeft+labelWidth, y)
	pdf.MultiCell(contentWidth-labelWidth, lineHeight, value, "", "L", false)
	if pdf.PageNo() == labelPage && labelEnd > pdf.GetY() {
		pdf.SetY(labelEnd)
	}
}

// box prints a shaded notice with a bold headline.
func (p *printer) box(c rgb, headline, detail string) {
	pdf := p.pdf
	pdf.Ln(1)
	pdf.SetFillColor(c.r, c.g, c.b)
	pdf.SetFont(fontFamily, "B", 12)
	pdf.MultiCell(contentWidth, 7, oneLine(headline), "", "L", true)
	pdf.SetFont(fontFamily, "", 10)
	pdf.MultiCell(contentWidth, lineHeight, oneLine(detail), "", "L", true)
	pdf.Ln(1)
}

func statusLabel(s doorledger.ConsentStatus) string {
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
	default:
		return "Unknown (" + oneLine(string(s)) + ")"
	}
}

// nameCheck says how the typed name compares with the roster name.
func nameCheck(s *doorledger.ConsentSignature) string {
	if s.NameDiffers {
		return "typed name differs from the roster: the signer was shown the roster name and confirmed signing with the name typed"
	}
	return "typed name matches the roster name (case, accents, spacing, hyphens, apostrophes and middle names aside)"
}

// verifiedWhat names what the portal verified when the consent was signed.
func verifiedWhat(c *doorledger.Consent) string {
	how := "the one-time link mailed to it"
	if c.Signature.Method == doorledger.VerifyCode {
		how = "a 6-digit code mailed to it, typed on the installer's screen"
	} else if c.Signature.Method != doorledger.VerifyLink {
		how = "an unknown method (" + oneLine(string(c.Signature.Method)) + ")"
	}
	addr := "the signer's roster address"
	if c.Signer.Email != "" {
		addr += " " + c.Signer.Email
	}
	return addr + ", by " + how
}

// rosterNow says whether the consent's signer is still on the roster.
func rosterNow(c *doorledger.Consent) string {
	if c.Signer.Active {
		return "Yes"
	}
	if c.Signature != nil {
		return "No: " + removedWords(c.Signer) + " after signing (the consent stays valid: they were on the roster when they signed)"
	}
	return "No: " + removedWords(c.Signer)
}

func removedWords(s doorledger.Signer) string {
	if s.RemovedAt.IsZero() {
		return "removed from the roster"
	}
	return "removed from the roster on " + formatUTC(s.RemovedAt)
}

func methodLabel(m doorledger.VerificationMethod) string {
	switch m {
	case doorledger.VerifyLink:
		return "Opened the one-time link mailed to the signer's roster address (link)"
	case doorledger.VerifyCode:
		return "Typed the 6-digit code mailed to the signer's roster address, on the installer's screen (code)"
	default:
		return "Unknown (" + oneLine(string(m)) + ")"
	}
}

func formatUTC(t time.Time) string {
	if t.IsZero() {
		return "not recorded"
	}
	return t.UTC().Format("2006-01-02 15:04:05") + " UTC"
}

func formatIn(t time.Time, loc *time.Location) string {
	if t.IsZero() {
		return "not recorded"
	}
	return t.In(loc).Format("2006-01-02 15:04:05 MST (UTC-07:00") + ", " + loc.String() + ")"
}
