package doorledger

import (
	"context"
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
	CommandStatus CommandStatus // of that command: pending, sent, confirmed, not confirmed
}

// Pending reports whether the device has not yet confirmed its desired state.
func (d *Device) Pending() bool { return d.ReportedVersion < d.DesiredVersion }

// CommandStatus is where a command stands.
type CommandStatus string

const (
	CommandPending      CommandStatus = "pending"       // recorded, not yet handed to the transport
	CommandSent         CommandStatus = "sent"          // handed to the broker / vendor; waiting for the device
	CommandConfirmed    CommandStatus = "confirmed"     // the device reported this version
	CommandNotConfirmed CommandStatus = "not_confirmed" // no confirmation within the time-out; still retried
	CommandSuperseded   CommandStatus = "superseded"    // a newer command replaced it before confirmation
)

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
	Status      CommandStatus
}

// Latency is the time from request to confirmation (0 if unconfirmed).
func (c *Command) Latency() time.Duration {
	if c.ConfirmedAt.IsZero() {
		return 0
	}
	return c.ConfirmedAt.Sub(c.RequestedAt)
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
	Open       bool // only pending, sent or not confirmed
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
