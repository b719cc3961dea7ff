package views

import (
	"github.com/doorledger/doorledger"
)

// LogView is the admin's view of the tamper-evident log.
type LogView struct {
	Origin      string // the log's origin line, which its checkpoints begin with
	VerifierKey string
	Head        *doorledger.LogHead
	Result      *doorledger.LogVerification // after "Verify now"
}
