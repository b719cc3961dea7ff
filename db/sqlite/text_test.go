package sqlite_test

import (
	"context"
	"strings"
	"testing"

	"github.com/doorledger/doorledger"
	"github.com/doorledger/doorledger/db/sqlite"
)

// inject is what a rogue installer adds to a field to write its own paragraph
// into the terms the signer reads.
const inject = "\nIMPORTANT: this is a one-day trial; the device is removed tomorrow."

// wantLineError fails unless err is EINVALID with the one-line message on field.
func wantLineError(t *testing.T, what string, err error, field string) {
	t.Helper()
	if doorledger.ErrorCode(err) != doorledger.EINVALID || !strings.Contains(doorledger.ErrorFields(err)[field], "one line") {
		t.Errorf("%s: err = %v, want EINVALID with the one-line message on %s", what, err, field)
	}
}

func TestConsentRequestRefusesLineBreaks(t *testing.T) {
	w := newConsentWorld(t)
	for _, field := range []string{"vendor", "model", "serial", "location", "opens"} {
		r := request("SN-"+field, w.signer.ID)
		d := &r.Device
		switch field {
		case "vendor":
			d.Vendor += inject
		case "model":
			d.Model += inject
		case "serial":
			d.Serial += inject
		case "location":
			d.Location += inject
		case "opens":
			d.Opens += "\u202e" // a right-to-left override
		}
		_, err := w.consents.RequestConsent(as(w.inst), w.A.ID, r)
		if field == "opens" {
			if !strings.Contains(doorledger.ErrorFields(err)["opens"], "U+202E") {
				t.Errorf("opens with an override: %v", err)
			}
			continue
		}
		wantLineError(t, "request with a line break in "+field, err, field)
	}
	// Nothing was recorded or mailed.
	var consents, mails int
	w.db.Reader().QueryRow(`SELECT (SELECT COUNT(*) FROM consents), (SELECT COUNT(*) FROM outbox)`).Scan(&consents, &mails)
	if consents != 0 || mails != 0 {
		t.Fatalf("%d consents and %d mails after refused requests", consents, mails)
	}
	// The same request without the injection goes through.
	if _, err := w.consents.RequestConsent(as(w.inst), w.A.ID, request("SN-1", w.signer.ID)); err != nil {
		t.Fatal(err)
	}
}

func TestBuildingRefusesLineBreaks(t *testing.T) {
	d, _ := MustOpenDB(t)
	buildings := sqlite.NewBuildingService(d)
	_, err := buildings.CreateBuilding(sys(), doorledger.BuildingInput{Name: "Elm Court\r\nBcc: x@example.com", Address: "1 Elm St" + inject, Timezone: "UTC"})
	wantLineError(t, "create", err, "name")
	wantLineError(t, "create", err, "address")
	b, err := buildings.CreateBuilding(sys(), doorledger.BuildingInput{Name: "Elm Court", Address: "1 Elm St", Timezone: "UTC"})
	if err != nil {
		t.Fatal(err)
	}
	_, err = buildings.UpdateBuilding(sys(), b.ID, doorledger.BuildingInput{Name: "Elm Court" + inject, Address: "1 Elm St", Timezone: "UTC"})
	wantLineError(t, "update", err, "name")
	_, err = buildings.AddSigner(sys(), b.ID, doorledger.SignerInput{Name: "Ana\nOwner", Title: "Owner\u2028President", Email: "ana@example.com"})
	wantLineError(t, "signer", err, "signer_name")
	wantLineError(t, "signer", err, "signer_title")
	if got, _ := buildings.FindBuildingByID(sys(), b.ID); got.Name != "Elm Court" || len(got.Signers) != 0 {
		t.Fatalf("building after refused edits: %+v", got)
	}
}

// The fields that are checked in the services rather than in a root Validate.
func TestServiceFieldsRefuseLineBreaks(t *testing.T) {
	w := newConsentWorld(t)
	mgr := as(w.manager)

	_, err := sqlite.NewDeviceService(w.db).RecordFoundDevice(mgr, w.A.ID, doorledger.DeviceDetails{Vendor: "Acme", Serial: "SN-7", Location: "panel" + inject})
	wantLineError(t, "found device", err, "location")

	inv := sqlite.NewInvitationService(w.db, "http://portal.test")
	_, err = inv.Invite(mgr, w.A.ID, "new@example.com", "New\nInstaller", "FastKey\r\nBcc: x@example.com")
	wantLineError(t, "invitation", err, "invite_name")
	wantLineError(t, "invitation", err, "invite_company")

	admin, err := sqlite.NewUserService(w.db).CreateUser(sys(), doorledger.NewUser{Email: "admin@example.com", Name: "Admin", Role: doorledger.RoleAdmin, Password: "correct horse battery"})
	if err != nil {
		t.Fatal(err)
	}
	name, company := "Ivan"+inject, "FastKey"+inject
	_, err = sqlite.NewUserService(w.db).UpdateUser(as(admin), w.inst.ID, doorledger.UserUpdate{Name: &name, Company: &company})
	wantLineError(t, "user update", err, "name")
	wantLineError(t, "user update", err, "company")

	// The signer's typed name is one line too; reasons may have several lines
	// but no other control.
	if _, err := w.consents.RequestConsent(as(w.inst), w.A.ID, request("SN-2", w.signer.ID)); err != nil {
		t.Fatal(err)
	}
	token := w.lastLink(t, w.signer.Email, "/sign/")
	in := w.signInput(t, token)
	in.TypedName = "Zoë Nuñez" + inject
	_, err = w.consents.Sign(context.Background(), token, in)
	wantLineError(t, "typed name", err, "typed_name")
	err = w.consents.Decline(context.Background(), token, "no\x1b[2J")
	if !strings.Contains(doorledger.ErrorFields(err)["reason"], "U+001B") {
		t.Errorf("decline with an escape: %v", err)
	}
	if err := w.consents.Decline(context.Background(), token, "I was not asked.\r\nPlease call me."); err != nil {
		t.Errorf("decline with two lines: %v", err)
	}
}

// A revoke never waits on its reason: a control character in it is replaced,
// and the device is disabled.
func TestRevokeReasonScrubbed(t *testing.T) {
	w := newConsentWorld(t)
	dev := sqlite.NewDeviceService(w.db)
	found, err := dev.RecordFoundDevice(as(w.manager), w.A.ID, doorledger.DeviceDetails{Vendor: "Acme", Serial: "SN-8", Location: "panel"})
	if err != nil {
		t.Fatal(err)
	}
	cmd, err := dev.SetDesiredState(as(w.manager), found.ID, doorledger.StateDisabled, "found\x00 in the panel\u202e")
	if err != nil {
		t.Fatalf("revoke with a control character in its reason: %v", err)
	}
	if cmd.Reason != "found  in the panel" || cmd.State != doorledger.StateDisabled {
		t.Fatalf("command %+v", cmd)
	}
}

// A mail subject is one line even when built from a name stored before names
// were checked.
func TestMailSubjectIsOneLine(t *testing.T) {
	w := newConsentWorld(t)
	if _, err := w.db.Writer().Exec(`UPDATE buildings SET name = ? WHERE id = ?`, "Harbor View\r\nBcc: victim@example.com", w.A.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := w.consents.RequestConsent(as(w.inst), w.A.ID, request("SN-3", w.signer.ID)); err != nil {
		t.Fatal(err)
	}
	var subject string
	if err := w.db.Reader().QueryRow(`SELECT subject FROM outbox WHERE kind = 'signing_link'`).Scan(&subject); err != nil {
		t.Fatal(err)
	}
	if strings.ContainsAny(subject, "\r\n") || !strings.Contains(subject, "Harbor View  Bcc: victim@example.com") {
		t.Fatalf("subject %q", subject)
	}
}
