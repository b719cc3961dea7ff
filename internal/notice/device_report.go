package notice

import (
	"fmt"
	"strings"

	"github.com/doorledger/doorledger"
)

// DeviceRefusedMail is the managers' alert when device id (det) at building
// received command cmd (version), which told it to be state, and reported
// that it is still reported: it refused.
func DeviceRefusedMail(id int64, det doorledger.DeviceDetails, building string, cmd, version int64, state, reported doorledger.DeviceState) (subject, body string) {
	risk := "Until it disables, couriers may still be able to open the door."
	verb := "disable"
	if state == doorledger.StateEnabled {
		risk = "Until it enables, couriers cannot open the door with it."
		verb = "enable"
	}
	return fmt.Sprintf("Device %d REFUSED to %s at %s", id, verb, building),
		fmt.Sprintf("Device %d (%s %s, serial %s, at %s) at %s received command %d (version %d), which told it to be %s, and reported that it is still %s.\n"+
			"%s Doorledger keeps sending the command. Check the device at the panel; if it does not obey, remove it or cut its power.\n",
			id, det.Vendor, DeviceModel(det.Model), det.Serial, det.Location, building, cmd, version, state,
			strings.ToUpper(string(reported)), risk)
}

// DeviceUnconsentedMail is the managers' and board's alert when device id
// (det) at building reported that it is enabled without an active consent,
// and was told by command cmd to disable itself.
func DeviceUnconsentedMail(id int64, det doorledger.DeviceDetails, building string, cmd int64) (subject, body string) {
	return fmt.Sprintf("UNCONSENTED device %d enabled at %s", id, building),
		fmt.Sprintf("Device %d (%s %s, serial %s, at %s) at %s reported that it is ENABLED, but it has no active consent from an authorized signer.\n"+
			"Doorledger flagged it unconsented and told it to disable itself (command %d). Until it confirms, couriers may still be able to open the door: check the panel.\n",
			id, det.Vendor, DeviceModel(det.Model), det.Serial, det.Location, building, cmd)
}
