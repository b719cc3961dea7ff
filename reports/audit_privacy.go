package reports

import (
	"fmt"

	"github.com/doorledger/doorledger"
)

// privacy states which privacy profile applies to the building and whether
// its checks hold (the Tenant Data Privacy Act profile).
func (p *auditPrinter) privacy() {
	st := p.a.r.Privacy
	p.heading("Privacy profile")
	if st == nil || st.Profile == doorledger.PrivacyProfileNone {
		p.field("Profile", "none: the building follows no privacy profile in this portal")
		return
	}
	verdict := "all checks hold"
	if !st.Holds() {
		verdict = "NOT ALL CHECKS HOLD"
	}
	p.field("Profile", doorledger.PrivacyProfileName(st.Profile)+": "+verdict)
	if !st.Since.IsZero() {
		p.field("Since", p.when(st.Since))
	}
	for _, c := range st.Checks {
		state := "holds"
		if !c.Holds {
			state = "does NOT hold"
		}
		text := fmt.Sprintf("%s: %s", upperFirst(c.Name), state)
		if c.Detail != "" {
			text += " (" + c.Detail + ")"
		}
		p.para(text)
	}
}
