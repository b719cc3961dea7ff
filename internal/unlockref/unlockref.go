// Package unlockref decides which device and building an unlock event
// names, for unlock ingest in both storage backends (package sqlite and
// package postgres), and words why an event cannot be recorded when it
// names none or two. Each backend looks the devices and buildings up in its
// own database first.
package unlockref

import (
	"fmt"

	"github.com/doorledger/doorledger"
)

// Known is what a backend looked up for a batch.
type Known struct {
	// Device returns a device's building and serial; ok false: no device
	// of that id.
	Device func(id int64) (building int64, serial string, ok bool)
	// Building reports whether a building of that id exists.
	Building func(id int64) bool
	// Ref returns the device a reference (a serial, any ASCII case) names
	// in a building: 0 none, -1 several.
	Ref func(building int64, ref string) int64
}

// Resolve sets each event's building (from its device id) or device id
// (from its reference), and tells refuse, by the event's label, what makes
// an event unrecordable. An event of an unknown reference keeps no device
// id: it is recorded as an unknown device.
func Resolve(events []doorledger.UnlockEvent, label func(i int) string, k Known, refuse func(where, msg string)) {
	for i := range events {
		ev := &events[i]
		if ev.DeviceID != 0 {
			building, serial, ok := k.Device(ev.DeviceID)
			if !ok {
				refuse(label(i), fmt.Sprintf("device_id: no device %d", ev.DeviceID))
			} else if ev.BuildingID != 0 && ev.BuildingID != building {
				refuse(label(i), fmt.Sprintf("device_id: device %d is not in building %d", ev.DeviceID, ev.BuildingID))
			} else if ev.DeviceRef != "" && !SameSerial(ev.DeviceRef, serial) {
				// Two devices named: recording either would be a guess.
				refuse(label(i), fmt.Sprintf("device: %q is not the serial of device %d; device_id and device name different devices", ev.DeviceRef, ev.DeviceID))
			} else {
				ev.BuildingID = building
			}
			continue
		}
		if !k.Building(ev.BuildingID) {
			refuse(label(i), fmt.Sprintf("building_id: no building %d", ev.BuildingID))
			continue
		}
		switch id := k.Ref(ev.BuildingID, ev.DeviceRef); {
		case id < 0:
			refuse(label(i), fmt.Sprintf("device: %q matches several devices of this building; give the device id", ev.DeviceRef))
		case id > 0:
			ev.DeviceID = id
		}
	}
}

// SameSerial reports whether a device reference names the device of serial,
// as SQLite's NOCASE matches them (ASCII letters only; package postgres
// keeps that rule).
func SameSerial(ref, serial string) bool {
	if len(ref) != len(serial) {
		return false
	}
	for i := 0; i < len(ref); i++ {
		a, b := ref[i], serial[i]
		if 'A' <= a && a <= 'Z' {
			a += 'a' - 'A'
		}
		if 'A' <= b && b <= 'Z' {
			b += 'a' - 'A'
		}
		if a != b {
			return false
		}
	}
	return true
}
