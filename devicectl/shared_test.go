package devicectl_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/doorledger/doorledger/devicectl"
)

// A second portal instance's account on the broker.
const instanceB, instanceBPass = "doorledger-portal-b", "portal-b-pass"

func withInstanceB(c *devicectl.MosquittoConfig) {
	c.Instances = []devicectl.MosquittoAccount{{Username: instanceB, Password: instanceBPass}}
}

// sharedClient connects a portal instance as user (its client id too) in
// share group "doorledger", or without one when group is "", and waits for
// its subscriptions.
func sharedClient(t *testing.T, m *mosquitto, f *fakePortal, user, pass, group string) *devicectl.Client {
	t.Helper()
	up := make(chan struct{}, 10)
	c, err := devicectl.NewClient(devicectl.ClientConfig{
		URL: "mqtt://" + m.addr, Username: user, Password: pass, ClientID: user, ShareGroup: group,
		Devices: f, Events: f, OnConnected: func() { up <- struct{}{} }, Logger: testLogger(),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	select {
	case <-up:
	case <-time.After(waitTimeout):
		t.Fatalf("%s never subscribed", user)
	}
	return c
}

// sendUnlocks records n openings on d, each in a message of its own (the
// broker shares messages, not events: the device batches what waits), and
// waits until the broker has them.
func sendUnlocks(t *testing.T, d *devicectl.SimDevice, n int) []string {
	t.Helper()
	ids := make([]string, n)
	for i := range ids {
		ev, err := d.Unlock(devicectl.EventMessage{})
		if err != nil {
			t.Fatal(err)
		}
		ids[i] = ev.EventID
		if err := d.AwaitDelivered(waitCtx(t)); err != nil {
			t.Fatal(err)
		}
	}
	return ids
}

// eachOnce waits until f holds every one of ids, then checks none twice.
func eachOnce(t *testing.T, f *fakePortal, ids []string) {
	t.Helper()
	f.waitFor(t, "every event", func() bool {
		for _, id := range ids {
			if !f.hasEvent(1, id) {
				return false
			}
		}
		return true
	})
	f.mu.Lock()
	defer f.mu.Unlock()
	seen := map[string]int{}
	for _, e := range f.events {
		seen[e.EventID]++
	}
	for id, n := range seen {
		if n != 1 {
			t.Errorf("event %s processed %d times", id, n)
		}
	}
}

// Two portal instances in one share group on a real Mosquitto: each receives
// a share of a device's messages and every event is processed once. The first
// instance's session subscribed without the group before (one instance grown
// into two): it drops those plain subscriptions, or it would receive every
// message besides its share.
func TestMosquitto_SharedSubscriptionSplitsTraffic(t *testing.T) {
	m := startMosquittoWith(t, withInstanceB)
	f := newFakePortal(nil)
	before := sharedClient(t, m, f, portalUser, portalPass, "")
	if err := before.Close(); err != nil {
		t.Fatal(err)
	}
	a := sharedClient(t, m, f, portalUser, portalPass, "doorledger")
	b := sharedClient(t, m, f, instanceB, instanceBPass, "doorledger")
	d := MustSim(t, m.addr, devicectl.SimConfig{DeviceID: 1, Secret: secrets[1]})
	if err := d.AwaitConnected(waitCtx(t)); err != nil {
		t.Fatal(err)
	}
	ids := sendUnlocks(t, d, 60)
	eachOnce(t, f, ids)
	na, nb := a.Stats().Events, b.Stats().Events
	t.Logf("instance A processed %d events, instance B %d", na, nb)
	if na == 0 || nb == 0 {
		t.Errorf("the group did not share the traffic: A %d, B %d", na, nb)
	}
}

// An instance that stops keeps its share of the group in its persistent
// session: Mosquitto queues messages there and does not hand them to the
// rest of the group. Another instance connecting with the stopped one's
// account and client id (as the portal does when it takes over a dead
// instance's lease) drains them: every event is processed once.
func TestMosquitto_SharedSessionTakenOver(t *testing.T) {
	m := startMosquittoWith(t, withInstanceB)
	f := newFakePortal(nil)
	sharedClient(t, m, f, portalUser, portalPass, "doorledger")
	b := sharedClient(t, m, f, instanceB, instanceBPass, "doorledger")
	d := MustSim(t, m.addr, devicectl.SimConfig{DeviceID: 1, Secret: secrets[1]})
	if err := d.AwaitConnected(waitCtx(t)); err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil { // instance B stops; its session stays
		t.Fatal(err)
	}
	ids := sendUnlocks(t, d, 60)
	f.waitFor(t, "A's share", func() bool { return len(f.events) > 0 })
	time.Sleep(500 * time.Millisecond) // let A take everything it is given
	f.mu.Lock()
	got := len(f.events)
	f.mu.Unlock()
	t.Logf("with B stopped, A processed %d of %d events", got, len(ids))
	if got == len(ids) {
		t.Log("Mosquitto handed the stopped instance's share to the rest of the group")
	}

	// Instance A takes over B's client id and drains B's session.
	drain := sharedClient(t, m, f, instanceB, instanceBPass, "doorledger")
	eachOnce(t, f, ids)
	t.Logf("after the takeover the drain processed %d events", drain.Stats().Events)
}

// Every instance account gets the service account's grants, and no name twice.
func TestWriteMosquittoConfig_Instances(t *testing.T) {
	dir := t.TempDir()
	cfg := devicectl.MosquittoConfig{Dir: dir, Service: devicectl.MosquittoAccount{Username: portalUser, Password: portalPass}}
	withInstanceB(&cfg)
	if _, err := devicectl.WriteMosquittoConfig(cfg); err != nil {
		t.Fatal(err)
	}
	acl, err := os.ReadFile(filepath.Join(dir, "acl"))
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range []string{portalUser, instanceB} {
		if !strings.Contains(string(acl), "user "+u+"\ntopic readwrite doorledger/devices/#\n") {
			t.Errorf("acl does not grant %s the device tree:\n%s", u, acl)
		}
	}
	cfg.Instances = append(cfg.Instances, devicectl.MosquittoAccount{Username: portalUser, Password: "x"})
	if _, err := devicectl.WriteMosquittoConfig(cfg); err == nil {
		t.Error("an instance account named like the service account was accepted")
	}
}

// Drain takes over a stopped instance's session, commits its queued share,
// and ends the session: afterwards the broker routes the whole group's
// traffic to the live instance (with the session kept, half of it would wait
// for the stopped one), and the stopped instance, back, starts afresh and
// takes its share again.
func TestMosquitto_DrainEndsStoppedSession(t *testing.T) {
	m := startMosquittoWith(t, withInstanceB)
	f := newFakePortal(nil)
	sharedClient(t, m, f, portalUser, portalPass, "doorledger")
	b := sharedClient(t, m, f, instanceB, instanceBPass, "doorledger")
	d := MustSim(t, m.addr, devicectl.SimConfig{DeviceID: 1, Secret: secrets[1]})
	if err := d.AwaitConnected(waitCtx(t)); err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	ids := sendUnlocks(t, d, 40)

	st, err := devicectl.Drain(waitCtx(t), devicectl.ClientConfig{URL: "mqtt://" + m.addr, Username: instanceB, Password: instanceBPass,
		ClientID: instanceB, ShareGroup: "doorledger", Devices: f, Events: f, Logger: testLogger()}, 300*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("the drain committed %d events queued for the stopped instance", st.Events)
	if st.Events == 0 {
		t.Error("the drain found nothing queued for the stopped instance")
	}
	eachOnce(t, f, ids)

	ids = append(ids, sendUnlocks(t, d, 40)...) // B's session is gone: all to A
	eachOnce(t, f, ids)

	b2 := sharedClient(t, m, f, instanceB, instanceBPass, "doorledger")
	ids = append(ids, sendUnlocks(t, d, 20)...)
	eachOnce(t, f, ids)
	if b2.Stats().Events == 0 {
		t.Error("the instance back after its session was drained takes no share")
	}
}
