package notice

import (
	"testing"

	"github.com/doorledger/doorledger"
)

// TestDeviceReportMails: the alerts of a refused command and of a device
// enabled without consent read as they always have (golden).
func TestDeviceReportMails(t *testing.T) {
	check := func(name, subject, body, wantSubject, wantBody string) {
		t.Helper()
		if subject != wantSubject {
			t.Errorf("%s: subject %q, want %q", name, subject, wantSubject)
		}
		if body != wantBody {
			t.Errorf("%s: body\n%s\nwant\n%s", name, body, wantBody)
		}
	}
	det := doorledger.DeviceDetails{Vendor: "Acme", Serial: "SN-1", Location: "lobby"}
	subject, body := DeviceRefusedMail(9, det, "Elm Court", 31, 4, doorledger.StateDisabled, doorledger.StateEnabled)
	check("refused to disable", subject, body, "Device 9 REFUSED to disable at Elm Court",
		"Device 9 (Acme (model unknown), serial SN-1, at lobby) at Elm Court received command 31 (version 4), which told it to be disabled, and reported that it is still ENABLED.\n"+
			"Until it disables, couriers may still be able to open the door. Doorledger keeps sending the command. Check the device at the panel; if it does not obey, remove it or cut its power.\n")

	k2 := det
	k2.Model = "K2"
	subject, body = DeviceRefusedMail(9, k2, "Elm Court", 32, 5, doorledger.StateEnabled, doorledger.StateDisabled)
	check("refused to enable", subject, body, "Device 9 REFUSED to enable at Elm Court",
		"Device 9 (Acme K2, serial SN-1, at lobby) at Elm Court received command 32 (version 5), which told it to be enabled, and reported that it is still DISABLED.\n"+
			"Until it enables, couriers cannot open the door with it. Doorledger keeps sending the command. Check the device at the panel; if it does not obey, remove it or cut its power.\n")

	subject, body = DeviceUnconsentedMail(9, det, "Elm Court", 33)
	check("unconsented", subject, body, "UNCONSENTED device 9 enabled at Elm Court",
		"Device 9 (Acme (model unknown), serial SN-1, at lobby) at Elm Court reported that it is ENABLED, but it has no active consent from an authorized signer.\n"+
			"Doorledger flagged it unconsented and told it to disable itself (command 33). Until it confirms, couriers may still be able to open the door: check the panel.\n")
}
