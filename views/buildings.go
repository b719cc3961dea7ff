package views

import (
	"time"

	"github.com/doorledger/doorledger"
)

// BuildingView is what the building page shows.
type BuildingView struct {
	Building    *doorledger.Building
	Consents    []*doorledger.Consent
	Devices     []*doorledger.Device
	FoundForm   Form
	Invitations []*doorledger.Invitation // managers
	InviteForm  Form
	Now         time.Time
	Timeout     time.Duration       // a command's time-out: past it, "not confirmed"
	Grants      []*doorledger.Grant // nil unless the user may manage
	Users       []*doorledger.User  // grantable users (admins)
	CanManage   bool
	SignerForm  Form
	GrantForm   Form
	Unlocks     *UnlockSummary  // door openings: nil for installers
	Residents   *ResidentsPanel // the public notice and residents' reports: managers only
	// PaperDisputes: paper forms per installer and vendor; nil for installers.
	PaperDisputes []doorledger.PaperDisputes
}

func buildingFormAction(id int64) string {
	if id == 0 {
		return "/buildings"
	}
	return idPath("/buildings/%d", id)
}
