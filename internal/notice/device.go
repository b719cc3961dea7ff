package notice

import (
	"fmt"
	"time"

	"github.com/doorledger/doorledger"
)

// DeviceModel is a device's model as an alert names it: "(model unknown)"
// when nobody recorded one.
func DeviceModel(model string) string {
	if model == "" {
		return "(model unknown)"
	}
	return model
}

// DeviceFoundAlert is the alert a building's managers and board receive
// when who records a device found without consent at building, registered
// as device id.
func DeviceFoundAlert(who, building string, det doorledger.DeviceDetails, id int64) (subject, body string) {
	return fmt.Sprintf("Unconsented device found at %s", building),
		fmt.Sprintf("%s recorded a device found without consent at %s: %s %s, serial %s, at %s.\n"+
			"It is registered as device %d, flagged unconsented and disabled. No signer has consented to it.\n",
			who, building, det.Vendor, DeviceModel(det.Model), det.Serial, det.Location, id)
}

// DeviceOfflineAlert is the alert a building's managers (and board, per
// the building's setting) receive when device deviceID at building has not
// been heard from since since, longer than its heartbeat.
func DeviceOfflineAlert(deviceID int64, det doorledger.DeviceDetails, building string, since time.Time, heartbeat time.Duration) (subject, body string) {
	return fmt.Sprintf("Device %d offline at %s", deviceID, building),
		fmt.Sprintf("Device %d (%s %s, serial %s, at %s) at %s has not been heard from since %s, longer than its heartbeat of %s.\n"+
			"Commands cannot reach it while it is silent, and its unlock events arrive late if at all. Check its power and network, or the panel itself.\n",
			deviceID, det.Vendor, DeviceModel(det.Model), det.Serial, det.Location, building, since.Format(time.RFC1123), heartbeat)
}

// CommandNotConfirmedAlert is the alert a building's managers receive when
// device deviceID at building has not confirmed command commandID (state,
// version) within timeout.
func CommandNotConfirmedAlert(deviceID int64, det doorledger.DeviceDetails, building string, state doorledger.DeviceState,
	commandID, version int64, timeout time.Duration) (subject, body string) {
	risk := "it may still be disabled"
	if state == doorledger.StateDisabled {
		risk = "couriers may still be able to open the door"
	}
	return fmt.Sprintf("Device %d did not confirm: %s at %s", deviceID, state, building),
		fmt.Sprintf("Device %d (%s %s, serial %s, at %s) at %s has not confirmed it is %s (command %d, version %d) within %s.\n"+
			"Doorledger keeps retrying. Until it confirms, %s. If it stays silent, check its power and network, or the panel itself.\n",
			deviceID, det.Vendor, DeviceModel(det.Model), det.Serial, det.Location, building, state, commandID, version,
			timeout, risk)
}
