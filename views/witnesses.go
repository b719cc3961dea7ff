package views

import (
	"fmt"

	"github.com/doorledger/doorledger"
)

// WitnessesView is the admin's witnesses page: the witnesses, the policy,
// the latest refusals and the forms.
type WitnessesView struct {
	Witnesses  []*doorledger.Witness
	Policy     doorledger.WitnessPolicy
	Refusals   []*doorledger.WitnessRefusal
	LogKey     string // the log's verifier key, which a witness follows
	Form       Form   // add a witness
	PolicyForm Form
}

// Alarms are the witnesses whose latest refusal is a security event.
func (v WitnessesView) Alarms() []*doorledger.Witness {
	var out []*doorledger.Witness
	for _, w := range v.Witnesses {
		if w.Alarm != nil {
			out = append(out, w)
		}
	}
	return out
}

// witnessStatus says, for people, where a witness is.
func witnessStatus(w *doorledger.Witness) string {
	switch {
	case w.Alarm != nil:
		return fmt.Sprintf("REFUSED the checkpoint of %d entries: %s", w.Alarm.Size, w.Alarm.Reason)
	case w.LastError != "" && w.KnownSize >= 0:
		return fmt.Sprintf("catching up from its size %d", w.KnownSize)
	case w.LastError != "":
		return fmt.Sprintf("unreachable (%d attempts): %s; next attempt %s", w.Failures, w.LastError, UTC(w.NextAttempt))
	case w.Cosigned == 0:
		return "no cosignature yet"
	}
	return "up to date"
}

// policyText is "2 of 3 witnesses", or that none is asked.
func policyText(p doorledger.WitnessPolicy) string {
	if p.K == 0 {
		return fmt.Sprintf("no witness required (%d configured)", p.N)
	}
	return fmt.Sprintf("%d of %d witnesses", p.K, p.N)
}
