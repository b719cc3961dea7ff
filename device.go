package doorledger

import (
	"context"
	"strconv"
	"strings"
	"time"
)

// DeviceState is what a device is told to be, and what it says it is.
type DeviceState string

const (
	StateEnabled  DeviceState = "enabled"  // may open the door
	StateDisabled DeviceState = "disabled" // must not open the door
)

// Valid reports whether s is enabled or disabled.
func (s DeviceState) Valid() bool { return s == StateEnabled || s == StateDisabled }

// Other is the opposite state ("" for an invalid one).
func (s DeviceState) Other() DeviceState {
	switch s {
	case StateEnabled:
		return StateDisabled
	case StateDisabled:
		return StateEnabled
	}
	return ""
}

// Device is a delivery-access unit installed in a building.
type Device struct {
	ID         int64
	BuildingID int64
	DeviceDetails
	InstallerID  int64
	Installer    string // the installer's name, "" for a found device
	Company      string // the installer's company
	BuildingName string
	ConsentID    int64         // 0: none
	ConsentState ConsentStatus // of ConsentID, "" when none
	Transport    string        // "mqtt" (default) or "webhook"
	Unconsented  bool          // seen or found without an active consent: flagged loudly
	Retired      bool

	DesiredState    DeviceState
	DesiredVersion  int64
	ReportedState   DeviceState // "" until it reports
	ReportedVersion int64
	LastSeenAt      time.Time
	CreatedAt       time.Time

	CommandAt     time.Time     // when the current desired state was requested
	CommandStatus CommandStatus // of that command: pending, sent, confirmed, not confirmed, refused
	// CommandWaited is how long that command, still pending or sent, had
	// waited when the device was read, as the store measured it on a clock
	// that does not jump when the machine's clock is set (0: not measured;
	// Status then goes by CommandAt).
	CommandWaited time.Duration
	// BrokerDown is set by the portal while it cannot reach its MQTT
	// broker: a command still open then waits for the broker, not for the
	// device (a webhook device is not concerned).
	BrokerDown bool
}

// Confirmed reports whether the device reported its desired version in its
// desired state: only that confirms a command.
func (d *Device) Confirmed() bool {
	return d.DesiredVersion > 0 && d.ReportedVersion == d.DesiredVersion && d.ReportedState == d.DesiredState
}

// Refused reports whether the device reported its desired version in the
// other state: it took the command and did not apply it (faulty, or tampered
// with). A disabled device that says "enabled" may still open the door.
func (d *Device) Refused() bool {
	return d.DesiredVersion > 0 && d.ReportedVersion == d.DesiredVersion && d.ReportedState != d.DesiredState
}

// Pending reports whether the device has not yet reported its desired
// version at all. A device with a desired version is exactly one of
// pending, confirmed or refused.
func (d *Device) Pending() bool { return d.ReportedVersion < d.DesiredVersion }

// Tone is how alarming a status is; every page, list and report shows a
// status in its tone (views: a badge's colour; PDFs: a red band for alarms).
type Tone string

const (
	ToneNone  Tone = ""      // nothing to judge (no command yet, superseded)
	ToneOK    Tone = "ok"    // as told
	ToneWarn  Tone = "warn"  // waiting, within the time-out
	ToneAlarm Tone = "alarm" // not confirmed in time, or refused: couriers may be able to do what they should not
)

// Standing is how a device's or a command's status reads to people: the
// same words and tone wherever it is shown, computed by Device.Status and
// CommandStatus.Describe only.
type Standing struct {
	Code   string // stable, for markup and tests: none, pending, confirmed, not_confirmed, refused, superseded
	Label  string // short, for a badge: "disabled · confirmed", "disabled · device refused: still enabled"
	Detail string // the longer account: "pending 12 s", "not confirmed after 1m13s; managers alerted"
	Tone   Tone
}

// Status judges the device against what it was told, at now. A command
// waiting longer than timeout is "not confirmed" even before the time-out
// job has recorded it (timeout 0: only the recorded status says so, as in a
// report). The label always starts with the desired state: what the device
// was told, never what it says.
func (d *Device) Status(now time.Time, timeout time.Duration) Standing {
	told := string(d.DesiredState)
	waited := now.Sub(d.CommandAt)
	if d.CommandWaited > 0 {
		waited = d.CommandWaited
	}
	switch {
	case d.DesiredVersion == 0:
		return Standing{Code: "none", Label: told, Detail: "no command yet", Tone: ToneNone}
	case d.Refused():
		detail := "device refused: still " + string(d.ReportedState) + " after it received version " + strconv.FormatInt(d.DesiredVersion, 10) +
			"; managers alerted"
		return Standing{Code: "refused", Label: told + " · device refused: still " + string(d.ReportedState), Detail: detail, Tone: ToneAlarm}
	case d.Confirmed():
		return Standing{Code: "confirmed", Label: told + " · confirmed", Detail: "confirmed", Tone: ToneOK}
	case d.BrokerDown && d.Transport != "webhook" && d.CommandStatus != CommandSuperseded:
		return Standing{Code: "waiting_broker", Label: told + " · waiting for the broker",
			Detail: "the portal cannot reach the MQTT broker; the command is sent as soon as the broker is back", Tone: ToneWarn}
	case d.CommandStatus == CommandNotConfirmed || (timeout > 0 && !d.CommandAt.IsZero() && waited > timeout):
		detail := "not confirmed"
		if !d.CommandAt.IsZero() {
			detail += " after " + Elapsed(waited)
		}
		if d.CommandStatus == CommandNotConfirmed {
			detail += "; retrying; managers alerted"
		}
		return Standing{Code: "not_confirmed", Label: told + " · not confirmed", Detail: detail, Tone: ToneAlarm}
	}
	detail := "pending"
	if !d.CommandAt.IsZero() {
		detail += " " + Elapsed(waited)
	}
	return Standing{Code: "pending", Label: told + " · pending", Detail: detail, Tone: ToneWarn}
}

// Elapsed writes a waiting time for people: "12 s" under a minute, "1m13s" after.
func Elapsed(d time.Duration) string {
	if d < 0 {
		d = 0
	}
	if d < time.Minute {
		return strconv.Itoa(int(d.Seconds())) + " s"
	}
	return d.Round(time.Second).String()
}

// CommandStatus is where a command stands.
type CommandStatus string

const (
	CommandPending      CommandStatus = "pending"       // recorded, not yet handed to the transport
	CommandSent         CommandStatus = "sent"          // handed to the broker / vendor; waiting for the device
	CommandConfirmed    CommandStatus = "confirmed"     // the device reported this version in this state
	CommandNotConfirmed CommandStatus = "not_confirmed" // no confirmation within the time-out; still retried
	CommandSuperseded   CommandStatus = "superseded"    // a newer command replaced it before confirmation
	CommandRefused      CommandStatus = "refused"       // the device reported this version in the other state; alerted at once, still retried
)

// Open reports whether the command still waits for its device: pending,
// sent, not confirmed or refused (a refused command is confirmed when the
// device applies it after all).
func (s CommandStatus) Open() bool {
	return s == CommandPending || s == CommandSent || s == CommandNotConfirmed || s == CommandRefused
}

// Describe is how a command of state reads, in its status: the same words
// on the device page, in lists and in the audit report.
func (s CommandStatus) Describe(state DeviceState) Standing {
	switch s {
	case CommandPending:
		return Standing{Code: string(s), Label: "not yet sent", Detail: "recorded, not yet handed to the device", Tone: ToneWarn}
	case CommandSent:
		return Standing{Code: string(s), Label: "sent, not yet confirmed", Detail: "handed to the device; waiting for it to confirm", Tone: ToneWarn}
	case CommandConfirmed:
		return Standing{Code: string(s), Label: "confirmed", Detail: "the device confirmed it is " + string(state), Tone: ToneOK}
	case CommandNotConfirmed:
		return Standing{Code: string(s), Label: "NOT CONFIRMED (still retried)", Detail: "not confirmed within the time-out; retried; managers alerted", Tone: ToneAlarm}
	case CommandRefused:
		return Standing{Code: string(s), Label: "REFUSED by the device: still " + string(state.Other()),
			Detail: "the device received it and reported it is still " + string(state.Other()) + "; retried; managers alerted", Tone: ToneAlarm}
	case CommandSuperseded:
		return Standing{Code: string(s), Label: "superseded", Detail: "replaced by a later command before the device confirmed it", Tone: ToneNone}
	}
	return Standing{Code: string(s), Label: string(s), Tone: ToneNone}
}

// Command is one enable/disable of one device: desired state with a version.
type Command struct {
	ID          int64
	DeviceID    int64
	BuildingID  int64
	State       DeviceState
	Version     int64
	Reason      string
	RequestedBy string // label of who asked (an email, "system")
	RequestedAt time.Time
	SentAt      time.Time
	Attempts    int
	LastError   string
	ConfirmedAt time.Time
	RefusedAt   time.Time // when the device last reported this version in the other state (zero: never)
	Status      CommandStatus
	// Waited is how long the command, still pending or sent, had waited
	// when it was read, as the store measured it on a clock that does not
	// jump when the machine's clock is set (0: not measured; see WaitedAt).
	Waited time.Duration
	// Took is the time from request to confirmation as the portal measured
	// it, on a clock that does not jump when the machine's clock is set
	// (0: not measured).
	Took time.Duration
}

// Latency is the time from request to confirmation (0 if unconfirmed): as
// measured (Took), else the difference of the recorded times, never below
// zero (the machine's clock may have been set back in between).
func (c *Command) Latency() time.Duration {
	if c.ConfirmedAt.IsZero() {
		return 0
	}
	if c.Took > 0 {
		return c.Took
	}
	return max(c.ConfirmedAt.Sub(c.RequestedAt), 0)
}

// WaitedAt is how long the command has waited at now: as measured (Waited),
// else since RequestedAt, never below zero.
func (c *Command) WaitedAt(now time.Time) time.Duration {
	if c.Waited > 0 {
		return c.Waited
	}
	return max(now.Sub(c.RequestedAt), 0)
}

// DesiredState is what a transport delivers to a device.
type DesiredState struct {
	DeviceID  int64       `json:"device_id"`
	CommandID int64       `json:"command_id"`
	State     DeviceState `json:"state"`
	Version   int64       `json:"version"`
	IssuedAt  time.Time   `json:"issued_at"`
}

// ReportedState is what a device says it applied.
type ReportedState struct {
	DeviceID int64       `json:"device_id"`
	State    DeviceState `json:"state"`
	Version  int64       `json:"version"`
	At       time.Time   `json:"at"` // device clock
}

// Transport delivers desired state to devices (MQTT, a vendor webhook).
// Push returns once the message is handed over (broker accepted it, vendor
// answered 2xx); confirmation arrives later through DeviceReports.
type Transport interface {
	Push(ctx context.Context, d DesiredState) error
}

// DeviceReports is what a transport calls when a device speaks. Implemented by
// the device service; every method commits before it returns, so a transport
// acknowledges (MQTT PUBACK, HTTP 2xx) only what is durable.
type DeviceReports interface {
	// AuthenticateDevice checks a device's credential; EUNAUTHORIZED when the id
	// is unknown, the secret wrong, or the device retired.
	AuthenticateDevice(ctx context.Context, deviceID int64, secret string) error
	// ReportState records what the device applied and confirms matching commands.
	ReportState(ctx context.Context, r ReportedState) error
}

// DeviceSessions ends devices' live connections: the embedded MQTT broker
// implements it. The device service calls it after committing a device's new
// secret, so that a client still connected with the old one can publish
// nothing more. (An external broker cannot be told: regenerating its files and
// reloading it ends those sessions; see `portal mosquitto-config`.)
type DeviceSessions interface {
	// DisconnectDevice ends every connection of the device and returns how
	// many it ended; a connection whose credential was checked before the call
	// is refused or ended when it comes up.
	DisconnectDevice(ctx context.Context, deviceID int64) int
}

// DeviceFilter selects devices the caller may see.
type DeviceFilter struct {
	BuildingID  int64  // 0: every building the caller manages
	InstallerID int64  // 0: any
	Vendor      string // "": any
	ConsentID   int64  // 0: any
}

// CommandFilter selects commands.
type CommandFilter struct {
	DeviceID   int64
	BuildingID int64
	Open       bool // only pending, sent, not confirmed or refused
	Limit      int
}

// DeviceService keeps the registry of devices and their desired state. It reads
// the caller from ctx like BuildingService. Enabling a device without an active
// consent is ECONFLICT here and refused by the database as well.
type DeviceService interface {
	FindDeviceByID(ctx context.Context, id int64) (*Device, error)
	FindDevices(ctx context.Context, f DeviceFilter) ([]*Device, error)
	// RecordFoundDevice registers a device found in a panel without consent
	// (managers): it is flagged unconsented and disabled.
	RecordFoundDevice(ctx context.Context, buildingID int64, d DeviceDetails) (*Device, error)
	// IssueCredential creates or rotates the device's secret (managers); the
	// secret is returned once and stored hashed. Connections made with the
	// old secret are ended (DeviceSessions) before it returns, and journaled.
	IssueCredential(ctx context.Context, deviceID int64) (string, error)
	// SetDesiredState enables or disables one device (managers) and records the command.
	SetDesiredState(ctx context.Context, deviceID int64, state DeviceState, reason string) (*Command, error)
	// DisableDevices disables every device matching f in the caller's buildings
	// (a building lockdown, or all of one installer's or vendor's devices).
	DisableDevices(ctx context.Context, f DeviceFilter, reason string) ([]*Command, error)
	// FindCommands lists commands, newest first.
	FindCommands(ctx context.Context, f CommandFilter) ([]*Command, error)
}

// ValidateFound trims and checks what a manager knows of a device found in a
// panel: the vendor, serial and location are needed to tell it apart; model
// and door may be unknown. EINVALID with a message per field.
func (d *DeviceDetails) ValidateFound() error {
	v := Validation{}
	for _, f := range []struct {
		name, label string
		val         *string
		required    bool
	}{
		{"vendor", "the vendor", &d.Vendor, true}, {"model", "the model", &d.Model, false},
		{"serial", "the serial number", &d.Serial, true}, {"location", "where it was found", &d.Location, true},
		{"opens", "which door it opens", &d.Opens, false},
	} {
		*f.val = strings.TrimSpace(*f.val)
		if *f.val == "" && f.required {
			v.Add(f.name, "Enter "+f.label+".")
		} else if len(*f.val) > 300 {
			v.Add(f.name, "Keep this under 300 characters.")
		}
		ValidateLine(v, f.name, *f.val)
	}
	return v.Err()
}
