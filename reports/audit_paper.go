package reports

import (
	"strconv"
	"strings"

	"github.com/doorledger/doorledger"
)

// paperForm prints a consent's signed paper form under its
// evidence: what it is, its hash, and each named signer's answer.
func (p *auditPrinter) paperForm(c *doorledger.Consent) {
	form := c.Paper
	if form == nil {
		return
	}
	status := "attached"
	if form.Disputed() {
		status = "DISPUTED on " + p.when(form.DisputedAt)
	}
	p.field("Paper form", status+": "+form.Describe())
	p.field("Paper form attached", p.when(form.AttachedAt)+" by "+form.AttachedBy+" ("+string(form.AttachedAs)+")")
	for _, ps := range form.SignedBy {
		line := ps.AnswerWords(p.a.loc)
		if ps.Note != "" {
			line += " — “" + ps.Note + "”"
		}
		p.field("Said signed by "+ps.Signer.Name, line)
	}
	for _, f := range form.Files {
		if len(f.Warnings) > 0 {
			p.field("Paper form PDF", strings.Join(f.Warnings, "; ")+" (stored as evidence, never opened by the portal)")
		}
	}
}

// paperDisputes prints the building's paper forms per installer and vendor,
// with the ones their signers disputed: installers who arrive with forged
// forms show here.
func (p *auditPrinter) paperDisputes() {
	list := p.a.r.PaperDisputes
	if len(list) == 0 {
		return
	}
	p.heading("Paper forms by installer and vendor")
	tb := &table{p: p, cols: []column{{"Installer", 60, false}, {"Vendor", 50, false}, {"Paper forms", 30, true}, {"Disputed", 30, true}}}
	tb.start()
	for _, d := range list {
		tb.row(strings.TrimSpace(d.Installer+" "+parens(d.Company)), d.Vendor, strconv.Itoa(d.Forms), strconv.Itoa(d.Disputed))
	}
}
