package notice

import (
	"strings"
	"testing"
	"time"

	"github.com/doorledger/doorledger"
)

func TestResidentFactLine(t *testing.T) {
	warsaw, err := time.LoadLocation("Europe/Warsaw")
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2031, 6, 11, 22, 30, 0, 0, time.UTC) // the next day in Warsaw
	f := ResidentFact{At: at, DeviceID: 7, Vendor: "Acme", Model: "KeyBox", Opens: "lobby door",
		Signed: at.Add(-24 * time.Hour), Expires: at.AddDate(1, 0, 0)}
	for _, tc := range []struct{ action, role, want string }{
		{"device.enable", "Board president", "- 2031-06-12 00:30 CEST: Acme KeyBox (device #7, opens: lobby door) was ENABLED: it can open the door. Consent signed on 2031-06-11 by the Board president, valid until 2032-06-12."},
		{"consent.withdrawn", "", "- 2031-06-12 00:30 CEST: the consent to Acme KeyBox (device #7, opens: lobby door) was WITHDRAWN by the signer."},
		{"device.disable", "", "- 2031-06-12 00:30 CEST: Acme KeyBox (device #7, opens: lobby door) was DISABLED: it must no longer open the door."},
		{"resident.notify", "", ""},
	} {
		f.Action, f.Role = tc.action, tc.role
		if got := f.Line(warsaw); got != tc.want {
			t.Errorf("%s:\n got %q\nwant %q", tc.action, got, tc.want)
		}
	}
	f.Action, f.Opens, f.Vendor = "device.found", "", ""
	if got, want := f.Line(time.UTC), "- 2031-06-11 22:30 UTC: KeyBox (device #7) was FOUND WITHOUT CONSENT and recorded; it is kept disabled."; got != want {
		t.Errorf("no vendor, no doors:\n got %q\nwant %q", got, want)
	}
}

func TestSignerRemovedSections(t *testing.T) {
	c := func(id int64) *doorledger.Consent {
		return &doorledger.Consent{ID: id, Installer: "Ian", Device: doorledger.DeviceDetails{Vendor: "Acme", Model: "KeyBox", Serial: "S1", Location: "lobby"}}
	}
	removed := doorledger.Signer{Name: "Tom Trent", Title: "Treasurer"}
	a := SignerRemoved("Harbor View", removed, "manager@example.com", nil, nil, []*doorledger.Consent{c(3)}, "http://portal.test")
	if got, want := a.Subject, "Signer removed at Harbor View: 0 request(s) withdrawn, 1 signed consent(s) to renew"; got != want {
		t.Errorf("subject %q, want %q", got, want)
	}
	want := "Tom Trent (Treasurer) was removed from the roster of authorized signers of Harbor View by manager@example.com.\n" +
		"\nConsents they signed stay valid (they were authorized when they signed) and are\nflagged on the building page and in reports. Ask a current signer to renew them on\neach consent's page:\n" +
		"  consent #3: Acme KeyBox, serial S1, at lobby (installer Ian, no company given)\n    http://portal.test/consents/3\n"
	if a.Body != want {
		t.Errorf("body:\n%s\nwant:\n%s", a.Body, want)
	}
	if strings.Contains(a.Body, "Requests") {
		t.Error("a section without consents is shown")
	}
}
