package dbtest

import (
	"fmt"
	"slices"
	"sync"
	"testing"

	"github.com/doorledger/doorledger"
)

// Commands of one device written at once, from several connections (on
// PostgreSQL) or callers: each reads the device's desired version and writes
// the next, so concurrent writers must wait for each other, never write the
// same version twice nor fail on the unique (device, version) (issue 15).
func testDeviceConcurrentCommandsTakeTurns(t *testing.T, newServices NewServices) {
	w := NewDeviceWorld(t, newServices(t))
	found, err := w.Devices.RecordFoundDevice(as(w.MgrA), w.A, doorledger.DeviceDetails{Vendor: "Shady", Serial: "RACE-1", Location: "panel"})
	if err != nil {
		t.Fatal(err)
	}
	const writers, each = 8, 3
	var wg sync.WaitGroup
	errs := make(chan error, writers*each)
	versions := make(chan int64, writers*each)
	for i := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range each {
				cmd, err := w.Devices.SetDesiredState(as(w.MgrA), found.ID, doorledger.StateDisabled, fmt.Sprintf("writer %d, %d", i, j))
				if err != nil {
					errs <- err
					continue
				}
				versions <- cmd.Version
			}
		}()
	}
	wg.Wait()
	close(errs)
	close(versions)
	for err := range errs {
		t.Errorf("concurrent SetDesiredState: %v", err)
	}
	var got []int64
	for v := range versions {
		got = append(got, v)
	}
	slices.Sort(got)
	for i, v := range got {
		if v != int64(i+1) {
			t.Fatalf("versions written %v, want 1 to %d once each", got, writers*each)
		}
	}
	if d := w.MustDevice(t, found.ID); d.DesiredVersion != writers*each {
		t.Errorf("desired version %d, want %d", d.DesiredVersion, writers*each)
	}
	open, err := w.Devices.FindCommands(as(w.MgrA), doorledger.CommandFilter{DeviceID: found.ID, Open: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(open) != 1 || open[0].Version != writers*each {
		t.Errorf("open commands %+v, want only the last (the rest superseded)", open)
	}
	if n := w.JournalCount(t, "device.disable", found.ID, w.MgrA.Email); n != writers*each {
		t.Errorf("%d device.disable entries, want %d", n, writers*each)
	}
}
