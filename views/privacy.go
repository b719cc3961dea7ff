package views

import (
	"strconv"

	"github.com/doorledger/doorledger"
)

// PrivacyView is a building's privacy page: its profile, its vendor
// disclosure records and the record each device names.
type PrivacyView struct {
	Building  *doorledger.Building
	Status    *doorledger.PrivacyStatus
	CanManage bool
	NoticeURL string // the tenant privacy notice's public address ("" without the profile)
	Form      Form   // the disclosure form: a new record (FormID 0) or the record FormID
	FormID    int64
}

func (v PrivacyView) disclosureLabel(id int64) string {
	for _, d := range v.Status.Disclosures {
		if d.ID == id {
			s := "#" + strconv.FormatInt(d.ID, 10) + " " + d.LegalName
			if !d.Complete() {
				s += " (incomplete)"
			}
			return s
		}
	}
	return "none"
}
