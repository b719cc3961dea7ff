package devicectl_test

import (
	"fmt"
	"testing"

	"github.com/doorledger/doorledger"
	"github.com/doorledger/doorledger/devicectl"
)

// A message many times the broker's per-connection read buffer (512 bytes)
// arrives whole: a device back online sends what it queued as one array.
func TestBroker_MessageLongerThanReadBuffer(t *testing.T) {
	f := newFakePortal(secrets)
	b := MustBroker(t, f, "")
	mustPush(t, b, 1, doorledger.StateEnabled, 1)
	d := MustSim(t, b.Addr(), devicectl.SimConfig{DeviceID: 1, Secret: "s1-secret"})
	mustVersion(t, d, 1)
	if err := d.Offline(waitCtx(t)); err != nil {
		t.Fatal(err)
	}
	var ids []string
	for i := range 60 { // about 12 KB as one message (one event: about 200 bytes)
		ev, err := d.Unlock(devicectl.EventMessage{ActorRef: fmt.Sprintf("parcel-%03d-courier-van-17", i)})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, ev.EventID)
	}
	if err := d.Online(); err != nil {
		t.Fatal(err)
	}
	f.waitFor(t, "the queued events", func() bool {
		for _, id := range ids {
			if !f.hasEvent(1, id) {
				return false
			}
		}
		return true
	})
	if err := d.AwaitDelivered(waitCtx(t)); err != nil {
		t.Fatal(err)
	}

	// And the connection still carries a revoke after it.
	mustPush(t, b, 1, doorledger.StateDisabled, 2)
	if a := mustVersion(t, d, 2); a.State != doorledger.StateDisabled {
		t.Errorf("applied %+v, want disabled", a)
	}
}
