package doorledger

import (
	"context"
	"time"
)

// UnlockResult is whether the device opened the door.
type UnlockResult string

const (
	UnlockGranted UnlockResult = "granted"
	UnlockDenied  UnlockResult = "denied"
)

// UnlockEvent is one door opening (or refusal) reported by a device or a vendor.
type UnlockEvent struct {
	ID         int64
	DeviceID   int64
	BuildingID int64
	EventID    string       // device-generated; (DeviceID, EventID) is unique, re-delivery is a no-op
	OccurredAt time.Time    // device clock
	ReceivedAt time.Time    // portal clock, always recorded
	Method     string       // e.g. "courier_app", "keypad", "remote"
	ActorRef   string       // opaque courier / package reference
	Result     UnlockResult //
	Anomalies  []string     // e.g. "after_revocation", "without_consent", "outside_hours", "clock_skew"
}

// EventSink durably records unlock events. It returns only after they are
// committed, so a transport may then acknowledge them; repeated (device, event
// id) pairs are accepted and ignored.
type EventSink interface {
	RecordUnlocks(ctx context.Context, events []UnlockEvent) error
}
