// Package notice writes the texts the storage backends queue for people:
// the mails signers, residents and installers receive (subjects and bodies)
// and the alerts mailed to a building's managers. Both backends (db/sqlite,
// db/postgres) decide what to send inside their own transactions and call
// here for the words, so a mail reads the same byte for byte whichever
// database keeps the portal (db/dbtest compares them with golden files).
//
// A function here takes domain values and returns text; it reads no clock
// and does no I/O. The files are named by concern (consent.go, paper.go,
// resident.go…); a new concern adds a file of its own.
package notice

import (
	"strconv"

	"github.com/doorledger/doorledger"
)

// Alert is an alert to a building's managers: its subject and body.
type Alert struct {
	Subject, Body string
}

// mail is a message to one address of a building, of a kind (doorledger.Message.Kind).
func mail(to, subject, body, kind string, buildingID int64) *doorledger.Message {
	return &doorledger.Message{To: to, Subject: subject, Body: body, Kind: kind, BuildingID: buildingID}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// orDash is a reason or note as a message shows it: "(none given)" when empty.
func orDash(s string) string {
	if s == "" {
		return "(none given)"
	}
	return s
}

// orNone is an installer's company as a message shows it.
func orNone(s string) string {
	if s == "" {
		return "no company given"
	}
	return s
}
