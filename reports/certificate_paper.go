package reports

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"image"
	_ "image/jpeg" // DecodeConfig of the re-checked photos
	_ "image/png"

	"github.com/doorledger/doorledger"
	"github.com/doorledger/doorledger/imagecheck"
	"github.com/go-pdf/fpdf"
)

// paperForm prints the request's signed paper form: what it is,
// its hash and pages, who it is said to be signed by and each one's answer,
// and a thumbnail of its first photo. A PDF form is never drawn: only its
// facts are printed.
func (p *printer) paperForm(c *doorledger.Consent) {
	form := c.Paper
	if form == nil {
		return
	}
	p.heading("Signed paper form")
	if form.Disputed() {
		p.box(colorAlert, "PAPER FORM DISPUTED",
			fmt.Sprintf("A signer it names says they did not sign it (%s). The installer's submission is marked disputed.", formatIn(form.DisputedAt, p.loc)))
	}
	p.field("Form", form.Describe())
	who := form.AttachedBy
	if form.AttachedAs != doorledger.RoleInstaller {
		who += " (a manager, on a signer's behalf)"
	}
	p.field("Attached by", who+", "+formatIn(form.AttachedAt, p.loc))
	for _, ps := range form.SignedBy {
		line := ps.AnswerWords(p.loc)
		if ps.Note != "" {
			line += " — “" + ps.Note + "”"
		}
		p.field("Said signed by "+ps.Signer.Name, line)
	}
	for i, f := range form.Files {
		label := fmt.Sprintf("Photo %d SHA-256", i+1)
		if f.PDF() {
			label = "PDF SHA-256"
			facts := fmt.Sprintf("%d page(s), %d bytes", f.Pages, f.Size)
			if f.PageSize != "" {
				facts += "; first page " + f.PageSize
			}
			for _, w := range f.Warnings {
				facts += "; " + w
			}
			p.field("PDF", facts)
		}
		p.fieldSized(label, f.SHA256, 8)
	}
	for _, f := range form.Files {
		if !f.PDF() && len(f.Data) > 0 {
			p.thumbnail(c.ID, f)
			break
		}
	}
}

// thumbnail draws a photo of the form, checked again by imagecheck before
// fpdf reads it, 45 mm wide.
func (p *printer) thumbnail(consentID int64, f doorledger.PaperFile) {
	data, ct, err := imagecheck.Photo(f.Data)
	if err != nil {
		p.field("Thumbnail", "The stored photo cannot be shown: "+doorledger.ErrorMessage(err))
		return
	}
	cfg, _, err := image.DecodeConfig(bytes.NewReader(data))
	if err != nil || cfg.Width == 0 || cfg.Height == 0 {
		return
	}
	const w = 45.0
	h := w * float64(cfg.Height) / float64(cfg.Width)
	if h > 70 {
		h = 70
	}
	pdf := p.pdf
	if pdf.GetY()+h+2 > pageHeight-marginBottom {
		pdf.AddPage()
	}
	typ := "JPG"
	if ct == imagecheck.ContentTypePNG {
		typ = "PNG"
	}
	sum := sha256.Sum256(data)
	name := fmt.Sprintf("paper-%d-%x", consentID, sum[:8])
	opts := fpdf.ImageOptions{ImageType: typ}
	pdf.RegisterImageOptionsReader(name, opts, bytes.NewReader(data))
	y := pdf.GetY() + 1
	pdf.ImageOptions(name, marginLeft+labelWidth, y, 0, h, false, opts, 0, "")
	pdf.SetY(y + h + 2)
}
