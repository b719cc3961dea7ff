package devicectl_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"

	"github.com/doorledger/doorledger"
	"github.com/doorledger/doorledger/devicectl"
)

var secrets = map[int64]string{1: "s1-secret", 2: "s2-secret", 3: "s3-secret"}

func TestBroker_Authentication(t *testing.T) {
	f := newFakePortal(secrets)
	b := MustBroker(t, f, "")

	for _, tc := range []struct {
		name, user, pass, clientID string
		code                       byte // CONNACK reason code (MQTT 5)
		stat                       func(devicectl.Stats) int64
	}{
		{"own credential", "1", "s1-secret", "device-1", 0x00, func(s devicectl.Stats) int64 { return s.Connects }},
		{"wrong secret", "1", "s2-secret", "device-1", 0x86, func(s devicectl.Stats) int64 { return s.RefusedCredential }},
		{"unknown id", "99", "s1-secret", "device-99", 0x86, func(s devicectl.Stats) int64 { return s.RefusedCredential }},
		{"other device's client id", "1", "s1-secret", "device-2", 0x85, func(s devicectl.Stats) int64 { return s.RefusedClientID }},
		{"no client id", "1", "s1-secret", "", 0x85, func(s devicectl.Stats) int64 { return s.RefusedClientID }},
		{"username not an id", "admin", "s1-secret", "device-1", 0x86, func(s devicectl.Stats) int64 { return s.RefusedUsername }},
		{"non-canonical id", "01", "s1-secret", "device-1", 0x86, func(s devicectl.Stats) int64 { return s.RefusedUsername }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := tc.stat(b.Stats())
			c, ca, err := dialV5(t, b.Addr(), tc.user, tc.pass, tc.clientID, nil)
			if tc.code == 0 {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				_ = c.Disconnect(&paho.Disconnect{})
			} else if err == nil {
				t.Fatal("accepted")
			}
			if ca == nil {
				t.Fatalf("no CONNACK: %v", err)
			}
			if got, want := ca.ReasonCode, tc.code; got != want {
				t.Errorf("CONNACK reason = %#x, want %#x", got, want)
			}
			if got, want := tc.stat(b.Stats()), before+1; got != want {
				t.Errorf("counter = %d, want %d", got, want)
			}
		})
	}

	t.Run("service outage", func(t *testing.T) {
		f.mu.Lock()
		f.authErr = errors.New("database unavailable")
		f.mu.Unlock()
		defer func() { f.mu.Lock(); f.authErr = nil; f.mu.Unlock() }()
		_, ca, err := dialV5(t, b.Addr(), "1", "s1-secret", "device-1", nil)
		if err == nil || ca == nil {
			t.Fatalf("accepted or no CONNACK: %v", err)
		}
		if got, want := ca.ReasonCode, byte(0x88); got != want { // server unavailable: retry, the credential is fine
			t.Errorf("CONNACK reason = %#x, want %#x", got, want)
		}
		if got := b.Stats().AuthErrors; got != 1 {
			t.Errorf("AuthErrors = %d, want 1", got)
		}
	})

	t.Run("MQTT 3.1.1 wrong secret", func(t *testing.T) {
		_, rc := dialV3(t, b.Addr(), "1", "nope", "device-1")
		if rc == 0 {
			t.Fatal("accepted")
		}
	})
}

func TestBroker_ACL(t *testing.T) {
	f := newFakePortal(secrets)
	b := MustBroker(t, f, "")
	c := mustV5(t, b.Addr(), 1, "s1-secret")

	for _, tc := range []struct {
		filter string
		ok     bool
	}{
		{"doorledger/devices/1/desired", true},
		{"doorledger/devices/2/desired", false},
		{"#", false},
		{"doorledger/devices/+/desired", false},
		{"doorledger/devices/1/+", false},
		{"doorledger/devices/1/#", false},
		{"doorledger/devices/1/reported", false},
		{"$share/g/doorledger/devices/1/desired", false},
		{"$SYS/#", false},
	} {
		sa, err := c.Subscribe(waitCtx(t), &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: tc.filter, QoS: 1}}})
		if sa == nil || len(sa.Reasons) != 1 {
			t.Fatalf("subscribe %q: no SUBACK: %v", tc.filter, err)
		}
		if got := sa.Reasons[0] < 0x80; got != tc.ok {
			t.Errorf("subscribe %q: reason %#x, want allowed=%v", tc.filter, sa.Reasons[0], tc.ok)
		}
	}
	if got := b.Stats().DeniedSubscribe; got != 8 {
		t.Errorf("DeniedSubscribe = %d, want 8", got)
	}

	report := []byte(`{"state":"enabled","version":1}`)
	for _, topic := range []string{"doorledger/devices/2/reported", "doorledger/devices/2/events", "doorledger/devices/1/desired", "doorledger/devices/2/desired"} {
		pr, err := c.Publish(waitCtx(t), &paho.Publish{QoS: 1, Topic: topic, Payload: report})
		if err == nil || pr == nil || pr.ReasonCode != 0x87 {
			t.Errorf("publish to %s: want refusal 0x87, got %+v, %v", topic, pr, err)
		}
	}
	// Its own topic works, and only that report reached the portal.
	if _, err := c.Publish(waitCtx(t), &paho.Publish{QoS: 1, Topic: "doorledger/devices/1/reported", Payload: report}); err != nil {
		t.Fatal(err)
	}
	f.mu.Lock()
	got := f.reports
	f.mu.Unlock()
	if len(got) != 1 || got[0].DeviceID != 1 {
		t.Errorf("reports = %+v, want one from device 1", got)
	}
	if got := b.Stats().DeniedPublish; got != 4 {
		t.Errorf("DeniedPublish = %d, want 4", got)
	}

	// The portal's desired state for device 2 never reaches device 1.
	mustPush(t, b, 2, doorledger.StateEnabled, 1)
	mustPush(t, b, 1, doorledger.StateDisabled, 7)
	select {
	case p := <-c.msgs:
		if p.Topic != devicectl.DesiredTopic(1) {
			t.Fatalf("device 1 received %s", p.Topic)
		}
	case <-time.After(waitTimeout):
		t.Fatal("device 1 got nothing")
	}
}

// A will is published by mochi without an ACL check: a device must not be
// able to plant a retained desired state on another device's topic with one.
func TestBroker_WillCannotWriteOtherDevice(t *testing.T) {
	f := newFakePortal(secrets)
	b := MustBroker(t, f, "")
	forged := []byte(`{"device_id":2,"state":"enabled","version":999}`)
	c, _, err := dialV5(t, b.Addr(), "1", "s1-secret", "device-1", &paho.WillMessage{Topic: devicectl.DesiredTopic(2), Payload: forged, QoS: 1, Retain: true})
	if err != nil {
		t.Fatal(err)
	}
	c.TerminateConnectionForTest() // no DISCONNECT: the will would fire
	f.waitFor(t, "device 1 down", func() bool { return slices.Contains(f.conns, connChange{1, false}) })
	if got := b.Stats().WillsDropped; got != 1 {
		t.Errorf("WillsDropped = %d, want 1", got)
	}

	// mochi sends retained messages right after the SUBACK, so a planted one
	// would arrive before the state pushed next.
	d2 := mustV5(t, b.Addr(), 2, "s2-secret")
	if _, err := d2.Subscribe(waitCtx(t), &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: devicectl.DesiredTopic(2), QoS: 1}}}); err != nil {
		t.Fatal(err)
	}
	mustPush(t, b, 2, doorledger.StateDisabled, 1)
	p := <-d2.msgs
	var ds doorledger.DesiredState
	if err := json.Unmarshal(p.Payload, &ds); err != nil {
		t.Fatal(err)
	}
	if ds.Version != 1 || ds.State != doorledger.StateDisabled {
		t.Fatalf("device 2 first received %s", p.Payload)
	}
}

func TestBroker_DesiredStateReachesDevice(t *testing.T) {
	f := newFakePortal(secrets)
	b := MustBroker(t, f, "")
	d := MustSim(t, b.Addr(), devicectl.SimConfig{DeviceID: 1, Secret: "s1-secret"})
	if err := d.AwaitConnected(waitCtx(t)); err != nil {
		t.Fatal(err)
	}

	mustPush(t, b, 1, doorledger.StateEnabled, 1)
	if a := mustVersion(t, d, 1); a.State != doorledger.StateEnabled {
		t.Errorf("applied %+v, want enabled", a)
	}
	f.waitFor(t, "report v1", func() bool { return f.hasReport(1, 1) })

	mustPush(t, b, 1, doorledger.StateDisabled, 2) // revoke
	if a := mustVersion(t, d, 2); a.State != doorledger.StateDisabled {
		t.Errorf("applied %+v, want disabled", a)
	}
	f.waitFor(t, "report v2", func() bool { return f.hasReport(1, 2) })
	f.mu.Lock()
	last := f.reports[len(f.reports)-1]
	f.mu.Unlock()
	if last.State != doorledger.StateDisabled || last.DeviceID != 1 {
		t.Errorf("last report %+v", last)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if got := f.conns[0]; got != (connChange{1, true}) {
		t.Errorf("first connection change %+v, want device 1 up", got)
	}
}

func TestBroker_RetainedReachesLateDevice(t *testing.T) {
	f := newFakePortal(secrets)
	b := MustBroker(t, f, "")
	mustPush(t, b, 2, doorledger.StateEnabled, 1)
	mustPush(t, b, 2, doorledger.StateDisabled, 2)
	mustPush(t, b, 2, doorledger.StateEnabled, 1) // stale and late: must not replace v2

	d := MustSim(t, b.Addr(), devicectl.SimConfig{DeviceID: 2, Secret: "s2-secret"})
	if a := mustVersion(t, d, 2); a.State != doorledger.StateDisabled || a.Version != 2 {
		t.Errorf("applied %+v, want disabled v2", a)
	}
	f.waitFor(t, "report v2", func() bool { return f.hasReport(2, 2) })
}

func TestBroker_PushRefusesInvalid(t *testing.T) {
	b := MustBroker(t, newFakePortal(secrets), "")
	for _, d := range []doorledger.DesiredState{
		{DeviceID: 0, State: doorledger.StateEnabled, Version: 1},
		{DeviceID: 1, State: "open", Version: 1},
		{DeviceID: 1, State: doorledger.StateEnabled, Version: 0},
	} {
		if err := b.Push(context.Background(), d); doorledger.ErrorCode(err) != doorledger.EINVALID {
			t.Errorf("Push(%+v) = %v, want EINVALID", d, err)
		}
	}
}

func TestBroker_EventsReachSink(t *testing.T) {
	f := newFakePortal(secrets)
	b := MustBroker(t, f, "")
	mustPush(t, b, 1, doorledger.StateEnabled, 1)
	d := MustSim(t, b.Addr(), devicectl.SimConfig{DeviceID: 1, Secret: "s1-secret"})
	mustVersion(t, d, 1)

	ev, err := d.Unlock(devicectl.EventMessage{ActorRef: "pkg-1"})
	if err != nil {
		t.Fatal(err)
	}
	f.waitFor(t, "first event", func() bool { return f.hasEvent(1, ev.EventID) })
	if err := d.AwaitDelivered(waitCtx(t)); err != nil { // the device has its PUBACK
		t.Fatal(err)
	}

	// Offline, events queue up and then go as one array.
	mustDeliverQueued(t, f, d, []string{"pkg-2", "pkg-3", "pkg-4"})
	f.mu.Lock()
	defer f.mu.Unlock()
	first := f.events[0]
	if first.Result != doorledger.UnlockGranted || first.Method != "courier_app" || first.ActorRef != "pkg-1" || !first.ReceivedAt.IsZero() || first.OccurredAt.IsZero() {
		// ReceivedAt is left to the store, which stamps it by the portal's clock.
		t.Errorf("event = %+v", first)
	}
	if got, want := b.Stats().Events, int64(4); got != want {
		t.Errorf("Stats.Events = %d, want %d", got, want)
	}
}

// A failing sink means no successful PUBACK; the device publishes again and
// the event arrives once the sink recovers.
func TestBroker_FailingSinkIsNotAcknowledged(t *testing.T) {
	f := newFakePortal(secrets)
	b := MustBroker(t, f, "")

	t.Run("MQTT 5 negative PUBACK", func(t *testing.T) {
		c := mustV5(t, b.Addr(), 3, "s3-secret")
		f.mu.Lock()
		f.failReports = 1
		f.mu.Unlock()
		payload := []byte(`{"state":"enabled","version":4}`)
		pr, err := c.Publish(waitCtx(t), &paho.Publish{QoS: 1, Topic: devicectl.ReportedTopic(3), Payload: payload})
		if err == nil || pr == nil || pr.ReasonCode < 0x80 {
			t.Fatalf("want a negative PUBACK, got %+v, %v", pr, err)
		}
		if _, err := c.Publish(waitCtx(t), &paho.Publish{QoS: 1, Topic: devicectl.ReportedTopic(3), Payload: payload}); err != nil {
			t.Fatalf("second publish after recovery: %v", err)
		}
		f.mu.Lock()
		defer f.mu.Unlock()
		if got := f.countReports(3, 4); got != 1 {
			t.Errorf("reports of v4 = %d, want 1", got)
		}
	})

	t.Run("SimDevice redelivers", func(t *testing.T) {
		d := MustSim(t, b.Addr(), devicectl.SimConfig{DeviceID: 1, Secret: "s1-secret"})
		if err := d.AwaitConnected(waitCtx(t)); err != nil {
			t.Fatal(err)
		}
		f.mu.Lock()
		f.failEvents = 3
		f.mu.Unlock()
		ev, err := d.Unlock(devicectl.EventMessage{})
		if err != nil {
			t.Fatal(err)
		}
		f.waitFor(t, "event after recovery", func() bool { return f.hasEvent(1, ev.EventID) })
		if err := d.AwaitDelivered(waitCtx(t)); err != nil {
			t.Fatal(err)
		}
		if got := b.Stats().CommitErrors; got < 4 {
			t.Errorf("CommitErrors = %d, want ≥ 4", got)
		}
	})

	t.Run("MQTT 3.1.1 closes without PUBACK", func(t *testing.T) {
		c, rc := dialV3(t, b.Addr(), "2", "s2-secret", "device-2")
		if rc != 0 {
			t.Fatalf("connect rc %d", rc)
		}
		f.mu.Lock()
		f.failReports = 1
		f.mu.Unlock()
		payload := []byte(`{"state":"disabled","version":9}`)
		c.publish(t, devicectl.ReportedTopic(2), payload, 1)
		if typ, body, err := c.read(); err == nil {
			t.Fatalf("got packet type %d %x, want the connection closed", typ, body)
		}
		// The device reconnects and sends it again: now it is acknowledged.
		c, _ = dialV3(t, b.Addr(), "2", "s2-secret", "device-2")
		c.publish(t, devicectl.ReportedTopic(2), payload, 1)
		typ, body, err := c.read()
		if err != nil || typ != 4 || len(body) < 2 || body[1] != 1 {
			t.Fatalf("want PUBACK for packet 1, got type %d %x %v", typ, body, err)
		}
		f.mu.Lock()
		defer f.mu.Unlock()
		if got := f.countReports(2, 9); got != 1 {
			t.Errorf("reports of v9 = %d, want 1", got)
		}
	})
}

func TestBroker_InvalidPayloadRefused(t *testing.T) {
	f := newFakePortal(secrets)
	b := MustBroker(t, f, "")
	c := mustV5(t, b.Addr(), 1, "s1-secret")
	for _, tc := range []struct{ topic, payload string }{
		{devicectl.EventsTopic(1), `not json`},
		{devicectl.EventsTopic(1), `[]`},
		{devicectl.EventsTopic(1), `{"event_id":"e1","occurred_at":"2026-01-02T03:04:05Z","method":"keypad","result":"maybe"}`},
		{devicectl.EventsTopic(1), `{"occurred_at":"2026-01-02T03:04:05Z","method":"keypad","result":"granted"}`},
		{devicectl.ReportedTopic(1), `{"device_id":2,"state":"enabled","version":1}`},
		{devicectl.ReportedTopic(1), `{"state":"open","version":1}`},
	} {
		pr, err := c.Publish(waitCtx(t), &paho.Publish{QoS: 1, Topic: tc.topic, Payload: []byte(tc.payload)})
		if err == nil || pr == nil || pr.ReasonCode != 0x99 {
			t.Errorf("%s %s: want PUBACK 0x99, got %+v %v", tc.topic, tc.payload, pr, err)
		}
	}
	if got := b.Stats().Invalid; got != 6 {
		t.Errorf("Invalid = %d, want 6", got)
	}

	// MQTT 3.1.1 cannot refuse: the message is acknowledged and dropped.
	v3, _ := dialV3(t, b.Addr(), "2", "s2-secret", "device-2")
	v3.publish(t, devicectl.EventsTopic(2), []byte(`garbage`), 5)
	if typ, _, err := v3.read(); err != nil || typ != 4 {
		t.Fatalf("want PUBACK, got type %d %v", typ, err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.events) != 0 || len(f.reports) != 0 {
		t.Errorf("invalid messages reached the portal: %+v %+v", f.events, f.reports)
	}
}

// Idempotency lives in the database: the transport forwards every report,
// duplicated or out of order, as received.
func TestBroker_DuplicateAndOutOfOrderReportsForwarded(t *testing.T) {
	f := newFakePortal(secrets)
	b := MustBroker(t, f, "")
	c := mustV5(t, b.Addr(), 1, "s1-secret")
	order := []int64{3, 1, 2, 2, 3}
	for _, v := range order {
		payload := fmt.Sprintf(`{"state":"enabled","version":%d}`, v)
		if _, err := c.Publish(waitCtx(t), &paho.Publish{QoS: 1, Topic: devicectl.ReportedTopic(1), Payload: []byte(payload)}); err != nil {
			t.Fatal(err)
		}
	}
	// An event sent twice (a lost PUBACK) is forwarded twice too.
	ev := `{"event_id":"e-1","occurred_at":"2026-01-02T03:04:05Z","method":"keypad","result":"granted"}`
	for range 2 {
		if _, err := c.Publish(waitCtx(t), &paho.Publish{QoS: 1, Topic: devicectl.EventsTopic(1), Payload: []byte(ev)}); err != nil {
			t.Fatal(err)
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	var got []int64
	for _, r := range f.reports {
		got = append(got, r.Version)
	}
	if !slices.Equal(got, order) {
		t.Errorf("forwarded versions %v, want %v", got, order)
	}
	if len(f.events) != 2 || f.events[0].EventID != "e-1" || f.events[1].EventID != "e-1" {
		t.Errorf("events = %+v, want e-1 twice", f.events)
	}
}

func TestBroker_ConnectionCallback(t *testing.T) {
	f := newFakePortal(secrets)
	b := MustBroker(t, f, "")
	last := func() connChange {
		f.mu.Lock()
		defer f.mu.Unlock()
		return f.conns[len(f.conns)-1]
	}
	c1 := mustV5(t, b.Addr(), 1, "s1-secret")
	// The same device again: the new connection takes over. Whether the old
	// one's end is reported before the new one's start or not at all, once
	// the new connection has done a round trip the device counts as up.
	c2 := mustV5(t, b.Addr(), 1, "s1-secret")
	<-c1.Done()
	if _, err := c2.Publish(waitCtx(t), &paho.Publish{QoS: 1, Topic: devicectl.ReportedTopic(1), Payload: []byte(`{"state":"enabled","version":1}`)}); err != nil {
		t.Fatal(err)
	}
	if got, want := last(), (connChange{1, true}); got != want {
		t.Errorf("after takeover: last change %+v, want %+v", got, want)
	}
	if err := c2.Disconnect(&paho.Disconnect{}); err != nil {
		t.Fatal(err)
	}
	f.waitFor(t, "device 1 down", func() bool { return f.conns[len(f.conns)-1] == connChange{1, false} })
	f.mu.Lock()
	defer f.mu.Unlock()
	if got := f.conns[0]; got != (connChange{1, true}) {
		t.Errorf("first change %+v", got)
	}
	for i := 1; i < len(f.conns); i++ {
		if f.conns[i] == f.conns[i-1] && !f.conns[i].connected {
			t.Errorf("reported down twice in a row: %+v", f.conns)
		}
	}
}

// The broker keeps nothing across a restart: the portal pushes desired state
// again, and devices reconnect by themselves and converge.
func TestBroker_Restart(t *testing.T) {
	f := newFakePortal(secrets)
	b := MustBroker(t, f, "")
	addr := b.Addr()
	d := MustSim(t, addr, devicectl.SimConfig{DeviceID: 1, Secret: "s1-secret"})
	mustPush(t, b, 1, doorledger.StateEnabled, 1)
	mustVersion(t, d, 1)
	f.waitFor(t, "report v1", func() bool { return f.hasReport(1, 1) })

	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if err := b.Push(context.Background(), doorledger.DesiredState{DeviceID: 1, State: doorledger.StateDisabled, Version: 2}); err == nil {
		t.Error("push to a closed broker succeeded")
	}
	b2 := MustBroker(t, f, addr)
	mustPush(t, b2, 1, doorledger.StateDisabled, 2) // the portal re-publishes at start
	if a := mustVersion(t, d, 2); a.State != doorledger.StateDisabled {
		t.Errorf("applied %+v", a)
	}
	f.waitFor(t, "report v2 via the new broker", func() bool { return f.hasReport(1, 2) })
	if got := b2.Stats().Reports; got < 1 {
		t.Errorf("new broker committed %d reports", got)
	}
}

// The connection drops while the portal is committing a report: the device
// never saw the PUBACK, reconnects, reports again, and the portal gets the
// same report twice (the database makes that a no-op).
func TestBroker_DisconnectMidCommand(t *testing.T) {
	f := newFakePortal(secrets)
	b := MustBroker(t, f, "")
	d := MustSim(t, b.Addr(), devicectl.SimConfig{DeviceID: 1, Secret: "s1-secret"})
	if err := d.AwaitConnected(waitCtx(t)); err != nil {
		t.Fatal(err)
	}
	hold, held := make(chan struct{}), make(chan struct{}, 10)
	f.mu.Lock()
	f.hold, f.held = hold, held
	f.mu.Unlock()

	mustPush(t, b, 1, doorledger.StateEnabled, 1)
	<-held // the report is being committed
	d.Interrupt()
	f.mu.Lock()
	f.hold = nil
	f.mu.Unlock()
	close(hold)

	f.waitFor(t, "report v1 twice", func() bool { return f.countReports(1, 1) >= 2 })
	if err := d.AwaitDelivered(waitCtx(t)); err != nil {
		t.Fatal(err)
	}
	if a := d.Applied(); a.Version != 1 {
		t.Errorf("applied %+v", a)
	}
}

func TestSimDevice_IgnoresOlderAndReplayedVersions(t *testing.T) {
	f := newFakePortal(secrets)
	b := MustBroker(t, f, "")
	addr := b.Addr()
	dir := t.TempDir()
	applied := make(chan devicectl.Applied, 10)
	cfg := devicectl.SimConfig{DeviceID: 1, Secret: "s1-secret", StateDir: dir, OnApplied: func(a devicectl.Applied) { applied <- a }}
	d := MustSim(t, addr, cfg)
	mustPush(t, b, 1, doorledger.StateEnabled, 5)
	mustVersion(t, d, 5)

	// A replay of v5 (the retained message again, after a reconnect) is not
	// applied again.
	d.Interrupt()
	f.waitFor(t, "reconnect", func() bool {
		ups := 0
		for _, c := range f.conns {
			if c.connected {
				ups++
			}
		}
		return ups >= 2 && f.conns[len(f.conns)-1].connected
	})

	// A portal restored from an old backup pushes v3: ignored. v6 after it
	// is applied, which also proves v3 was seen first.
	b.Close()
	b2 := MustBroker(t, f, addr)
	mustPush(t, b2, 1, doorledger.StateDisabled, 3)
	mustPush(t, b2, 1, doorledger.StateDisabled, 6)
	mustVersion(t, d, 6)
	ctx := waitCtx(t)
	if err := d.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	close(applied)
	var got []int64
	for a := range applied {
		got = append(got, a.Version)
	}
	if want := []int64{5, 6}; !slices.Equal(got, want) {
		t.Errorf("applied versions %v, want %v", got, want)
	}

	// The applied version survives a restart of the device itself.
	applied2 := make(chan devicectl.Applied, 10)
	cfg.OnApplied = func(a devicectl.Applied) { applied2 <- a }
	d2 := MustSim(t, addr, cfg)
	if a := d2.Applied(); a.Version != 6 || a.State != doorledger.StateDisabled {
		t.Errorf("restored %+v, want disabled v6", a)
	}
	if err := d2.AwaitConnected(waitCtx(t)); err != nil {
		t.Fatal(err)
	}
	mustPush(t, b2, 1, doorledger.StateEnabled, 7)
	if a := <-applied2; a.Version != 7 {
		t.Errorf("first applied after restart %+v, want v7 (v6 replay ignored)", a)
	}
}

// Undelivered events survive a device restart with the same ids.
func TestSimDevice_OutboxPersists(t *testing.T) {
	f := newFakePortal(secrets)
	b := MustBroker(t, f, "")
	dir := t.TempDir()
	cfg := devicectl.SimConfig{BrokerURL: "mqtt://" + b.Addr(), DeviceID: 2, Secret: "wrong", StateDir: dir, Logger: testLogger()}
	d, err := devicectl.NewSimDevice(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	ev, err := d.Unlock(devicectl.EventMessage{Result: doorledger.UnlockDenied})
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Stop(waitCtx(t)); err != nil {
		t.Fatal(err)
	}
	cfg.Secret = "s2-secret"
	cfg.Logger = nil
	d2 := MustSim(t, b.Addr(), cfg)
	if got := d2.Undelivered(); got != 1 {
		t.Fatalf("restored outbox has %d events, want 1", got)
	}
	f.waitFor(t, "persisted event", func() bool { return f.hasEvent(2, ev.EventID) })
	if err := d2.AwaitDelivered(waitCtx(t)); err != nil {
		t.Fatal(err)
	}
}

// Stats counts connects; a device with the right credential but a refused
// client id never gets through.
func TestSimDevice_WrongClientIDRefused(t *testing.T) {
	f := newFakePortal(secrets)
	b := MustBroker(t, f, "")
	d := MustSim(t, b.Addr(), devicectl.SimConfig{DeviceID: 1, Secret: "s1-secret", ClientID: "device-2"})
	deadline := time.Now().Add(waitTimeout)
	for b.Stats().RefusedClientID == 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if b.Stats().RefusedClientID == 0 || d.Connected() || b.Stats().Connects != 0 {
		t.Errorf("stats %+v connected %v", b.Stats(), d.Connected())
	}
}

// A device that reconnects before the broker noticed its old connection died
// takes the old one over. mochi v2.7.9 can let the old connection's teardown
// delete the new one from its client table, leaving a connected device that
// receives nothing (and a Close that hangs); the hook orders the two.
func TestBroker_TakeoverKeepsNewConnection(t *testing.T) {
	f := newFakePortal(secrets)
	b := MustBroker(t, f, "")
	for i := range 100 {
		old := mustV5(t, b.Addr(), 1, "s1-secret")
		c := mustV5(t, b.Addr(), 1, "s1-secret")
		<-old.Done()
		if _, err := c.Subscribe(waitCtx(t), &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: devicectl.DesiredTopic(1), QoS: 1}}}); err != nil {
			t.Fatal(err)
		}
		mustPush(t, b, 1, doorledger.StateEnabled, int64(i+1))
		for {
			select {
			case p := <-c.msgs:
				var ds doorledger.DesiredState
				if err := json.Unmarshal(p.Payload, &ds); err != nil {
					t.Fatal(err)
				}
				if ds.Version < int64(i+1) {
					continue // the retained one from the previous round
				}
			case <-time.After(waitTimeout):
				t.Fatalf("round %d: the new connection receives nothing", i)
			}
			break
		}
		c.Disconnect(&paho.Disconnect{})
	}
}

// While the portal has more events waiting than it takes (IngestBusy), a
// device's events are refused unread with a negative PUBACK and sent again
// later; the device's report confirming a new desired state is not held
// behind them (docs/reliability.md, Load).
func TestBroker_BusyRefusesEventsReportGoesThrough(t *testing.T) {
	f := newFakePortal(secrets)
	b := MustBroker(t, f, "")
	d := MustSim(t, b.Addr(), devicectl.SimConfig{DeviceID: 1, Secret: "s1-secret"})
	if err := d.AwaitConnected(waitCtx(t)); err != nil {
		t.Fatal(err)
	}
	f.mu.Lock()
	f.busy = true
	f.mu.Unlock()
	ev, err := d.Unlock(devicectl.EventMessage{})
	if err != nil {
		t.Fatal(err)
	}
	refusedBy := waitCtx(t)
	for b.Stats().Busy == 0 {
		select {
		case <-refusedBy.Done():
			t.Fatal("the events were not refused as busy")
		case <-time.After(time.Millisecond):
		}
	}
	if err := b.Push(context.Background(), doorledger.DesiredState{DeviceID: 1, State: doorledger.StateDisabled, Version: 7}); err != nil {
		t.Fatal(err)
	}
	f.waitFor(t, "the report of version 7 while the events are refused", func() bool { return f.countReports(1, 7) == 1 })
	f.mu.Lock()
	if len(f.events) != 0 || f.calls != 1 {
		t.Errorf("while busy: %d events recorded, %d calls; want the events refused unread and only the report committed", len(f.events), f.calls)
	}
	f.busy = false
	f.mu.Unlock()
	f.waitFor(t, "the event sent again once not busy", func() bool { return f.hasEvent(1, ev.EventID) })
	if err := d.AwaitDelivered(waitCtx(t)); err != nil {
		t.Fatal(err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.events) != 1 {
		t.Errorf("%d events recorded, want 1", len(f.events))
	}
}
