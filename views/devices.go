package views

import (
	"time"

	"github.com/doorledger/doorledger"
)

// DeviceView is the device page.
type DeviceView struct {
	Device    *doorledger.Device
	Building  *doorledger.Building
	Commands  []*doorledger.Command
	CanManage bool
	Secret    string // a credential just issued: shown once
	Now       time.Time
	Timeout   time.Duration
	Unlocks   *UnlockSummary // door openings: nil for installers
	// BrokerDown: the portal is not connected to the MQTT broker, so a
	// command not yet confirmed is waiting for the broker, not the device.
	BrokerDown bool
}

// ProgressView is the live progress of a lockdown or a revoke-all.
type ProgressView struct {
	Devices []*doorledger.Device
	Now     time.Time
	Timeout time.Duration
}

// Confirmed counts the devices that confirmed they are disabled.
func (v ProgressView) Confirmed() int {
	n := 0
	for _, d := range v.Devices {
		if confirmedDisabled(d) {
			n++
		}
	}
	return n
}

// Refused counts the devices that refused to disable.
func (v ProgressView) Refused() int {
	n := 0
	for _, d := range v.Devices {
		if d.Refused() {
			n++
		}
	}
	return n
}

func confirmedDisabled(d *doorledger.Device) bool {
	return d.DesiredState == doorledger.StateDisabled && d.Confirmed()
}

// LockdownView is the building lockdown page.
type LockdownView struct {
	Building *doorledger.Building
	Enabled  int  // devices enabled now
	Started  bool // a lockdown was requested: show live progress
	Progress ProgressView
}

// DevicesIndexView lists devices across the user's buildings, by vendor or installer.
type DevicesIndexView struct {
	Devices    []*doorledger.Device
	Vendor     string
	Installer  int64
	Vendors    []string
	Installers map[int64]string
	Started    bool
	Progress   ProgressView
	CanManage  bool
	Now        time.Time
	Timeout    time.Duration // a command's time-out: past it, "not confirmed"
}
