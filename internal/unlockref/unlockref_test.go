package unlockref

import (
	"fmt"
	"strings"
	"testing"

	"github.com/doorledger/doorledger"
)

func TestSameSerial(t *testing.T) {
	for _, tc := range []struct {
		ref, serial string
		want        bool
	}{
		{"SN-1", "sn-1", true}, {"sn-1", "SN-1", true}, {"SN-1", "SN-1", true},
		{"SN-1", "SN-12", false}, {"SN-1", "SN-2", false},
		{"ÄB", "äb", false}, // NOCASE folds ASCII letters only
		{"@", "`", false},   // not letters
	} {
		if got := SameSerial(tc.ref, tc.serial); got != tc.want {
			t.Errorf("SameSerial(%q, %q) = %v, want %v", tc.ref, tc.serial, got, tc.want)
		}
	}
}

// TestResolve: events name a device by id (its building set, checked
// against a building and a reference also given) or by reference in a
// building (its id set when one device matches); the others are refused
// with the message a sender reads.
func TestResolve(t *testing.T) {
	devices := map[int64]struct {
		building int64
		serial   string
	}{7: {1, "SN-7"}, 8: {2, "SN-8"}}
	k := Known{
		Device: func(id int64) (int64, string, bool) {
			d, ok := devices[id]
			return d.building, d.serial, ok
		},
		Building: func(id int64) bool { return id == 1 || id == 2 },
		Ref: func(building int64, ref string) int64 {
			switch {
			case building == 1 && strings.EqualFold(ref, "SN-7"):
				return 7
			case building == 1 && ref == "twin":
				return -1
			}
			return 0
		},
	}
	events := []doorledger.UnlockEvent{
		{DeviceID: 7}, // 0: its building set
		{DeviceID: 7, BuildingID: 1, DeviceRef: "sn-7"}, // 1: agrees
		{DeviceID: 9},                       // 2: no device
		{DeviceID: 8, BuildingID: 1},        // 3: another building's
		{DeviceID: 7, DeviceRef: "SN-8"},    // 4: two devices named
		{BuildingID: 3, DeviceRef: "SN-7"},  // 5: no building
		{BuildingID: 1, DeviceRef: "Sn-7"},  // 6: by reference
		{BuildingID: 1, DeviceRef: "twin"},  // 7: ambiguous
		{BuildingID: 2, DeviceRef: "ghost"}, // 8: unknown: recorded as such
	}
	var refused []string
	Resolve(events, func(i int) string { return fmt.Sprintf("event %d", i) }, k, func(where, msg string) {
		refused = append(refused, where+": "+msg)
	})
	want := []string{
		"event 2: device_id: no device 9",
		"event 3: device_id: device 8 is not in building 1",
		`event 4: device: "SN-8" is not the serial of device 7; device_id and device name different devices`,
		"event 5: building_id: no building 3",
		`event 7: device: "twin" matches several devices of this building; give the device id`,
	}
	if strings.Join(refused, "\n") != strings.Join(want, "\n") {
		t.Errorf("refused\n%s\nwant\n%s", strings.Join(refused, "\n"), strings.Join(want, "\n"))
	}
	for i, want := range map[int]struct{ device, building int64 }{0: {7, 1}, 1: {7, 1}, 6: {7, 1}, 8: {0, 2}} {
		if ev := events[i]; ev.DeviceID != want.device || ev.BuildingID != want.building {
			t.Errorf("event %d: device %d, building %d; want %d, %d", i, ev.DeviceID, ev.BuildingID, want.device, want.building)
		}
	}
}
