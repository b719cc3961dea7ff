package views

import (
	"time"

	"github.com/doorledger/doorledger"
)

// ConsentRequestView is the installer's request form.
type ConsentRequestView struct {
	Building *doorledger.Building
	Form     Form
	Policy   *doorledger.ConsentPolicy // the building's, in force
	Chosen   map[int64]bool            // signers ticked (the proposal, or as posted)
	// PaperSignedBy: who signed the paper form, as posted.
	PaperSignedBy map[int64]bool
}

// ConsentView is the consent page.
type ConsentView struct {
	Consent   *doorledger.Consent
	Building  *doorledger.Building
	Terms     string // the signed terms, or a preview of what the signer will see
	Timeline  []doorledger.ConsentEvent
	Photos    []doorledger.Photo
	CanManage bool
	CanReport bool // may download the certificate
	Installer bool // the installer who asked: sees no contact data, IP, user agent or signature of the signer
	RenewForm Form // asking a signer to sign again (managers)
	Now       time.Time
	PaperForm Form // attaching a paper form on a signer's behalf (managers)
}

// SigningView is the signer's page, by link or on the installer's screen.
type SigningView struct {
	Session  *doorledger.SigningSession
	Action   string // where the signature is posted
	Decline  string // where a decline is posted ("" in person)
	InPerson bool
	Form     Form
	// The paper form's files are served under PaperBase; "I did not sign
	// this form" is posted to PaperDispute ("" in person).
	PaperBase, PaperDispute string
}
