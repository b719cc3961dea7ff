package doorledger_test

import (
	"testing"
	"time"

	"github.com/doorledger/doorledger"
)

// Device.Status is the one judgement every page, list and report prints, so
// they never disagree: confirmed only when the device reported the desired
// version in the desired state, refused when it reported that version in the
// other, and the label always starts with what the device was told.
func TestDeviceStatus(t *testing.T) {
	at := time.Date(2026, 11, 22, 9, 0, 0, 0, time.UTC)
	const timeout = 30 * time.Second
	for _, tt := range []struct {
		name   string
		d      doorledger.Device
		now    time.Time
		code   string
		label  string
		detail string
		tone   doorledger.Tone
	}{
		{"never told", doorledger.Device{DesiredState: doorledger.StateDisabled},
			at, "none", "disabled", "no command yet", doorledger.ToneNone},
		{"waiting", doorledger.Device{DesiredState: doorledger.StateDisabled, DesiredVersion: 2, ReportedState: doorledger.StateEnabled, ReportedVersion: 1,
			CommandAt: at, CommandStatus: doorledger.CommandSent},
			at.Add(12 * time.Second), "pending", "disabled · pending", "pending 12 s", doorledger.ToneWarn},
		{"past the time-out, not yet recorded", doorledger.Device{DesiredState: doorledger.StateDisabled, DesiredVersion: 2, ReportedState: doorledger.StateEnabled, ReportedVersion: 1,
			CommandAt: at, CommandStatus: doorledger.CommandSent},
			at.Add(73 * time.Second), "not_confirmed", "disabled · not confirmed", "not confirmed after 1m13s", doorledger.ToneAlarm},
		{"recorded not confirmed", doorledger.Device{DesiredState: doorledger.StateDisabled, DesiredVersion: 2, ReportedState: doorledger.StateEnabled, ReportedVersion: 1,
			CommandAt: at, CommandStatus: doorledger.CommandNotConfirmed},
			at.Add(73 * time.Second), "not_confirmed", "disabled · not confirmed", "not confirmed after 1m13s; retrying; managers alerted", doorledger.ToneAlarm},
		{"refused a disable", doorledger.Device{DesiredState: doorledger.StateDisabled, DesiredVersion: 2, ReportedState: doorledger.StateEnabled, ReportedVersion: 2,
			CommandAt: at, CommandStatus: doorledger.CommandRefused},
			at.Add(time.Second), "refused", "disabled · device refused: still enabled", "device refused: still enabled after it received version 2; managers alerted", doorledger.ToneAlarm},
		{"refused an enable", doorledger.Device{DesiredState: doorledger.StateEnabled, DesiredVersion: 3, ReportedState: doorledger.StateDisabled, ReportedVersion: 3,
			CommandAt: at, CommandStatus: doorledger.CommandRefused},
			at.Add(time.Hour), "refused", "enabled · device refused: still disabled", "device refused: still disabled after it received version 3; managers alerted", doorledger.ToneAlarm},
		// The version alone confirms nothing: the state must match too,
		// whatever the command row says.
		{"same version, other state, command not yet marked", doorledger.Device{DesiredState: doorledger.StateDisabled, DesiredVersion: 2,
			ReportedState: doorledger.StateEnabled, ReportedVersion: 2, CommandAt: at, CommandStatus: doorledger.CommandSent},
			at.Add(time.Second), "refused", "disabled · device refused: still enabled", "device refused: still enabled after it received version 2; managers alerted", doorledger.ToneAlarm},
		// While the broker is down, an open command waits for it, in every
		// list as on the device page; a refusal is still the device's, and
		// a webhook device does not use the broker.
		{"broker down, past the time-out", doorledger.Device{DesiredState: doorledger.StateDisabled, DesiredVersion: 2, ReportedState: doorledger.StateEnabled, ReportedVersion: 1,
			CommandAt: at, CommandStatus: doorledger.CommandNotConfirmed, BrokerDown: true},
			at.Add(73 * time.Second), "waiting_broker", "disabled · waiting for the broker", "the portal cannot reach the MQTT broker; the command is sent as soon as the broker is back", doorledger.ToneWarn},
		{"broker down, refused", doorledger.Device{DesiredState: doorledger.StateDisabled, DesiredVersion: 2, ReportedState: doorledger.StateEnabled, ReportedVersion: 2,
			CommandAt: at, CommandStatus: doorledger.CommandRefused, BrokerDown: true},
			at.Add(time.Second), "refused", "disabled · device refused: still enabled", "device refused: still enabled after it received version 2; managers alerted", doorledger.ToneAlarm},
		{"broker down, webhook device", doorledger.Device{DesiredState: doorledger.StateDisabled, DesiredVersion: 2, ReportedState: doorledger.StateEnabled, ReportedVersion: 1,
			CommandAt: at, CommandStatus: doorledger.CommandSent, Transport: "webhook", BrokerDown: true},
			at.Add(73 * time.Second), "not_confirmed", "disabled · not confirmed", "not confirmed after 1m13s", doorledger.ToneAlarm},
		{"broker down, confirmed", doorledger.Device{DesiredState: doorledger.StateDisabled, DesiredVersion: 2, ReportedState: doorledger.StateDisabled, ReportedVersion: 2,
			CommandAt: at, CommandStatus: doorledger.CommandConfirmed, BrokerDown: true},
			at.Add(time.Hour), "confirmed", "disabled · confirmed", "confirmed", doorledger.ToneOK},
		{"confirmed", doorledger.Device{DesiredState: doorledger.StateDisabled, DesiredVersion: 2, ReportedState: doorledger.StateDisabled, ReportedVersion: 2,
			CommandAt: at, CommandStatus: doorledger.CommandConfirmed},
			at.Add(time.Hour), "confirmed", "disabled · confirmed", "confirmed", doorledger.ToneOK},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got := tt.d.Status(tt.now, timeout)
			want := doorledger.Standing{Code: tt.code, Label: tt.label, Detail: tt.detail, Tone: tt.tone}
			if got != want {
				t.Errorf("Status = %+v\nwant     %+v", got, want)
			}
			if n := btoi(tt.d.Pending()) + btoi(tt.d.Confirmed()) + btoi(tt.d.Refused()); tt.d.DesiredVersion > 0 && n != 1 {
				t.Errorf("pending %v, confirmed %v, refused %v: want exactly one", tt.d.Pending(), tt.d.Confirmed(), tt.d.Refused())
			}
		})
	}
	// Measured on the monotonic clock (CommandWaited), the wait is that, not
	// now - CommandAt: the machine's clock may have been set in between.
	d0 := doorledger.Device{DesiredState: doorledger.StateEnabled, DesiredVersion: 1, CommandAt: at, CommandStatus: doorledger.CommandSent, CommandWaited: 12 * time.Second}
	if got := d0.Status(at.Add(time.Hour), timeout); got.Code != "pending" || got.Detail != "pending 12 s" {
		t.Errorf("waited 12 s, the clock set an hour forward: %+v, want pending 12 s", got)
	}
	// A report has no time-out: only the recorded status says "not confirmed".
	d := doorledger.Device{DesiredState: doorledger.StateEnabled, DesiredVersion: 1, CommandAt: at, CommandStatus: doorledger.CommandSent}
	if got := d.Status(at.Add(time.Hour), 0); got.Code != "pending" {
		t.Errorf("without a time-out, an hour later: %+v, want pending", got)
	}
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}
