package dbtest

import (
	"context"
	"strings"
	"testing"

	"github.com/doorledger/doorledger"
)

// inject is what a rogue installer adds to a field to write its own paragraph
// into the terms the signer reads.
const inject = "\nIMPORTANT: this is a one-day trial; the device is removed tomorrow."

var textTests = []test{
	{"ConsentRequestRefusesLineBreaks", testConsentRequestRefusesLineBreaks},
	{"BuildingRefusesLineBreaks", testBuildingRefusesLineBreaks},
	{"ServiceFieldsRefuseLineBreaks", testServiceFieldsRefuseLineBreaks},
	{"RevokeReasonScrubbed", testRevokeReasonScrubbed},
}

// wantLineError fails unless err is EINVALID with the one-line message on field.
func wantLineError(t *testing.T, what string, err error, field string) {
	t.Helper()
	if doorledger.ErrorCode(err) != doorledger.EINVALID || !strings.Contains(doorledger.ErrorFields(err)[field], "one line") {
		t.Errorf("%s: err = %v, want EINVALID with the one-line message on %s", what, err, field)
	}
}

func testBuildingRefusesLineBreaks(t *testing.T, newServices NewServices) {
	services := newServices(t)
	buildings := services.Buildings
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
func testServiceFieldsRefuseLineBreaks(t *testing.T, newServices NewServices) {
	w := NewConsentWorld(t, newServices(t))
	mgr := as(w.Manager)

	_, err := w.Devices.RecordFoundDevice(mgr, w.A.ID, doorledger.DeviceDetails{Vendor: "Acme", Serial: "SN-7", Location: "panel" + inject})
	wantLineError(t, "found device", err, "location")

	inv := w.Invitations
	_, err = inv.Invite(mgr, w.A.ID, "new@example.com", "New\nInstaller", "FastKey\r\nBcc: x@example.com")
	wantLineError(t, "invitation", err, "invite_name")
	wantLineError(t, "invitation", err, "invite_company")

	admin, err := w.Users.CreateUser(sys(), doorledger.NewUser{Email: "admin@example.com", Name: "Admin", Role: doorledger.RoleAdmin, Password: "correct horse battery"})
	if err != nil {
		t.Fatal(err)
	}
	name, company := "Ivan"+inject, "FastKey"+inject
	_, err = w.Users.UpdateUser(as(admin), w.Inst.ID, doorledger.UserUpdate{Name: &name, Company: &company})
	wantLineError(t, "user update", err, "name")
	wantLineError(t, "user update", err, "company")

	// The signer's typed name is one line too; reasons may have several lines
	// but no other control.
	if _, err := w.Consents.RequestConsent(as(w.Inst), w.A.ID, request("SN-2", w.Signer.ID)); err != nil {
		t.Fatal(err)
	}
	token := w.LastLink(t, w.Signer.Email, "/sign/")
	in := w.SignInput(t, token)
	in.TypedName = "Zoë Nuñez" + inject
	_, err = w.Consents.Sign(context.Background(), token, in)
	wantLineError(t, "typed name", err, "typed_name")
	err = w.Consents.Decline(context.Background(), token, "no\x1b[2J")
	if !strings.Contains(doorledger.ErrorFields(err)["reason"], "U+001B") {
		t.Errorf("decline with an escape: %v", err)
	}
	if err := w.Consents.Decline(context.Background(), token, "I was not asked.\r\nPlease call me."); err != nil {
		t.Errorf("decline with two lines: %v", err)
	}
}

// A revoke never waits on its reason: a control character in it is replaced,
// and the device is disabled.
func testRevokeReasonScrubbed(t *testing.T, newServices NewServices) {
	w := NewConsentWorld(t, newServices(t))
	dev := w.Devices
	found, err := dev.RecordFoundDevice(as(w.Manager), w.A.ID, doorledger.DeviceDetails{Vendor: "Acme", Serial: "SN-8", Location: "panel"})
	if err != nil {
		t.Fatal(err)
	}
	cmd, err := dev.SetDesiredState(as(w.Manager), found.ID, doorledger.StateDisabled, "found\x00 in the panel\u202e")
	if err != nil {
		t.Fatalf("revoke with a control character in its reason: %v", err)
	}
	if cmd.Reason != "found  in the panel" || cmd.State != doorledger.StateDisabled {
		t.Fatalf("command %+v", cmd)
	}
}

func testConsentRequestRefusesLineBreaks(t *testing.T, newServices NewServices) {
	w := NewConsentWorld(t, newServices(t))
	for _, field := range []string{"vendor", "model", "serial", "location", "opens"} {
		r := request("SN-"+field, w.Signer.ID)
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
		_, err := w.Consents.RequestConsent(as(w.Inst), w.A.ID, r)
		if field == "opens" {
			if !strings.Contains(doorledger.ErrorFields(err)["opens"], "U+202E") {
				t.Errorf("opens with an override: %v", err)
			}
			continue
		}
		wantLineError(t, "request with a line break in "+field, err, field)
	}
	// Nothing was recorded or mailed.
	consents, err := w.Consents.FindConsents(sys(), doorledger.ConsentFilter{BuildingID: w.A.ID})
	if err != nil {
		t.Fatal(err)
	}
	mails, err := w.Outbox.PendingMessages(context.Background(), 100, 1000)
	if err != nil {
		t.Fatal(err)
	}
	if len(consents) != 0 || len(mails) != 0 {
		t.Fatalf("%d consents and %d mails after refused requests", len(consents), len(mails))
	}
	// The same request without the injection goes through.
	if _, err := w.Consents.RequestConsent(as(w.Inst), w.A.ID, request("SN-1", w.Signer.ID)); err != nil {
		t.Fatal(err)
	}
}
