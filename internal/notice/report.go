package notice

import (
	"fmt"
	"time"

	"github.com/doorledger/doorledger"
)

// ReportReadyMail is the mail a subscriber of a building's monthly report
// receives when it is done: its subject and body, with the report's link on
// the portal at baseURL and its SHA-256.
func ReportReadyMail(r *doorledger.ReportRecord, baseURL string) (subject, body string) {
	month := r.From
	if t, err := time.Parse("2006-01-02", r.From); err == nil {
		month = t.Format("January 2006")
	}
	link := baseURL + "/reports/" + r.ID
	subject = fmt.Sprintf("Monthly audit report: %s, %s", r.BuildingName, month)
	body = fmt.Sprintf("The audit report of %s for %s (%s to %s, building time) is ready.\n\n"+
		"Report:   %s\nSHA-256:  %s\nDownload: %s\n\n"+
		"The SHA-256 identifies the file: to check that a copy you hold is the one Doorledger issued and that it was not altered, "+
		"upload it on the portal's \"Verify a report\" page.\n\n"+
		"You receive this mail because you subscribed to the building's monthly report; you can turn it off on the building's reports page.\n",
		r.BuildingName, month, r.From, r.To, r.ID, r.SHA256, link)
	return subject, body
}
