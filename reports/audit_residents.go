package reports

import (
	"strconv"

	"github.com/doorledger/doorledger"
)

// residentReports prints, at the end of the journal section, the residents'
// reports of devices the public notice did not list, made in the range, with
// what came of each. Nothing is printed when there were none, and never the
// resident's contact address.
func (p *auditPrinter) residentReports() {
	list := p.a.r.ResidentReports
	if len(list) == 0 {
		return
	}
	p.subheading("Residents' reports of unlisted devices")
	p.para("Reports residents sent from the building's public device notice, and how the managers resolved them.")
	tb := &table{p: p, cols: []column{{"Reported at", 30, false}, {"Report", 14, false}, {"Where", 62, false},
		{"Photo", 12, false}, {"Outcome", 56, false}}}
	tb.start()
	for _, r := range list {
		if r == nil {
			continue
		}
		photo := "no"
		if r.HasPhoto {
			photo = "yes"
		}
		outcome := "still open"
		if !r.Open() {
			outcome = doorledger.ReportOutcomeLabel(r.Outcome, r.FoundDeviceID) + ", " + p.when(r.ResolvedAt) + " by " + r.ResolvedBy
			if r.Note != "" {
				outcome += ": " + r.Note
			}
		}
		tb.row(p.when(r.CreatedAt), "#"+strconv.FormatInt(r.ID, 10), r.Location, photo, outcome)
	}
}
