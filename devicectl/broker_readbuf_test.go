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
	var actors []string
	for i := range 60 { // about 12 KB as one message (one event: about 200 bytes)
		actors = append(actors, fmt.Sprintf("parcel-%03d-courier-van-17", i))
	}
	mustDeliverQueued(t, f, d, actors)

	// And the connection still carries a revoke after it.
	mustPush(t, b, 1, doorledger.StateDisabled, 2)
	if a := mustVersion(t, d, 2); a.State != doorledger.StateDisabled {
		t.Errorf("applied %+v, want disabled", a)
	}
}
