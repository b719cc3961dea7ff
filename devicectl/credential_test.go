package devicectl_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"syscall"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/doorledger/doorledger"
	"github.com/doorledger/doorledger/devicectl"
)

func eventPayload(tb testing.TB, id string) []byte {
	tb.Helper()
	b, err := json.Marshal(devicectl.EventMessage{EventID: id, OccurredAt: time.Now().UTC(), Method: "courier_app", Result: doorledger.UnlockGranted})
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// rawPublish writes a QoS 1 PUBLISH on a 3.1.1 connection and returns the
// write error, if any (the server may have closed the socket).
func rawPublish(tb testing.TB, c *v3Conn, topic string, payload []byte, id uint16) error {
	tb.Helper()
	pk := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: 1}, ProtocolVersion: 4, TopicName: topic, Payload: payload, PacketID: id}
	var buf bytes.Buffer
	if err := pk.PublishEncode(&buf); err != nil {
		tb.Fatal(err)
	}
	_, err := c.Write(buf.Bytes())
	return err
}

// A device's new secret ends the connections made with the old one: the old
// client is disconnected at once (MQTT 5 is told why), what it publishes is
// not recorded, the old secret no longer connects and the new one does.
func TestBroker_DisconnectDeviceEndsOldSecret(t *testing.T) {
	f := newFakePortal(map[int64]string{1: "old-secret", 2: "s2-secret"})
	b := MustBroker(t, f, "")

	v3, rc := dialV3(t, b.Addr(), "1", "old-secret", "device-1")
	if rc != 0 {
		t.Fatalf("connect with the old secret: %d", rc)
	}
	// Another device, connected all along, is not touched.
	other := mustV5(t, b.Addr(), 2, "s2-secret")
	f.waitFor(t, "both connected", func() bool { return len(f.conns) == 2 })
	// The old connection publishes one event before the rotation: recorded.
	if err := rawPublish(t, v3, devicectl.EventsTopic(1), eventPayload(t, "before"), 1); err != nil {
		t.Fatal(err)
	}
	if typ, _, err := v3.read(); err != nil || typ != packets.Puback {
		t.Fatalf("PUBACK before rotation: type %d, %v", typ, err)
	}

	// Rotation: the device service commits the new secret, then calls this.
	f.mu.Lock()
	f.secrets[1] = "new-secret"
	f.mu.Unlock()
	if n := b.DisconnectDevice(context.Background(), 1); n != 1 {
		t.Fatalf("DisconnectDevice = %d, want 1", n)
	}
	// The server has closed the old connection (mochi sends a DISCONNECT
	// first, even to a 3.1.1 client).
	typ, body, err := v3.read()
	if err == nil && typ == packets.Disconnect {
		typ, body, err = v3.read()
	}
	if err == nil {
		t.Fatalf("old connection still open: got packet type %d %x", typ, body)
	} else if !errors.Is(err, io.EOF) && !isClosed(err) {
		t.Fatalf("old connection: %v", err)
	}
	_ = rawPublish(t, v3, devicectl.EventsTopic(1), eventPayload(t, "after"), 2)
	f.waitFor(t, "device 1 reported down", func() bool { return len(f.conns) == 3 && f.conns[2] == connChange{1, false} })

	// The old secret is refused; the new one connects and its event arrives,
	// and the old connection's never did.
	if _, rc := dialV3(t, b.Addr(), "1", "old-secret", "device-1"); rc == 0 {
		t.Fatal("the old secret still connects")
	}
	fresh := mustV5(t, b.Addr(), 1, "new-secret")
	if _, err := fresh.Publish(waitCtx(t), &paho.Publish{Topic: devicectl.EventsTopic(1), QoS: 1, Payload: eventPayload(t, "new")}); err != nil {
		t.Fatal(err)
	}
	f.waitFor(t, "the new connection's event", func() bool { return f.hasEvent(1, "new") })
	f.mu.Lock()
	got := []string{}
	for _, e := range f.events {
		got = append(got, e.EventID)
	}
	f.mu.Unlock()
	if len(got) != 2 || got[0] != "before" || got[1] != "new" {
		t.Fatalf("events recorded: %v, want [before new]", got)
	}
	if _, err := other.Publish(waitCtx(t), &paho.Publish{Topic: devicectl.EventsTopic(2), QoS: 1, Payload: eventPayload(t, "other")}); err != nil {
		t.Fatalf("the other device was cut too: %v", err)
	}
	if got := b.Stats().CredentialCuts; got != 1 {
		t.Errorf("CredentialCuts = %d, want 1", got)
	}
	// Nothing connected: nothing to end.
	if err := fresh.Disconnect(&paho.Disconnect{}); err != nil {
		t.Fatal(err)
	}
	f.waitFor(t, "device 1 down again", func() bool { return f.conns[len(f.conns)-1] == connChange{1, false} })
	if n := b.DisconnectDevice(context.Background(), 1); n != 0 {
		t.Errorf("DisconnectDevice with nothing connected = %d", n)
	}
}

// An MQTT 5 device is told why it was disconnected.
func TestBroker_DisconnectDeviceTellsV5Why(t *testing.T) {
	f := newFakePortal(map[int64]string{1: "old-secret"})
	b := MustBroker(t, f, "")
	reasons := make(chan byte, 1)
	c, _, err := dialV5WithServerDisconnect(t, b.Addr(), "1", "old-secret", func(d *paho.Disconnect) { reasons <- d.ReasonCode })
	if err != nil {
		t.Fatal(err)
	}
	if n := b.DisconnectDevice(context.Background(), 1); n != 1 {
		t.Fatalf("DisconnectDevice = %d", n)
	}
	select {
	case code := <-reasons:
		if code != 0x87 {
			t.Errorf("DISCONNECT reason %#x, want 0x87 (not authorized)", code)
		}
	case <-waitCtx(t).Done():
		t.Fatal("no DISCONNECT from the server")
	}
	select {
	case <-c.Done():
	case <-waitCtx(t).Done():
		t.Fatal("client still running")
	}
}

// A connection whose secret was checked before the rotation committed (it
// read the old secret) but that comes up after DisconnectDevice is refused.
func TestBroker_DisconnectDeviceRefusesConnectionCheckedBefore(t *testing.T) {
	f := newFakePortal(map[int64]string{1: "old-secret"})
	hold, held := make(chan struct{}), make(chan struct{}, 1)
	f.authHold, f.authHeld = hold, held
	b := MustBroker(t, f, "")

	done := make(chan byte, 1)
	go func() {
		_, rc := dialV3(t, b.Addr(), "1", "old-secret", "device-1")
		done <- rc
	}()
	select {
	case <-held: // the old secret was checked and accepted; the answer waits
	case <-waitCtx(t).Done():
		t.Fatal("the connection never reached AuthenticateDevice")
	}
	f.mu.Lock()
	f.secrets[1] = "new-secret"
	f.mu.Unlock()
	if n := b.DisconnectDevice(context.Background(), 1); n != 0 {
		t.Fatalf("DisconnectDevice = %d, want 0 (nothing established yet)", n)
	}
	close(hold)
	select {
	case rc := <-done:
		if rc == 0 {
			t.Fatal("a connection checked against the old secret was admitted after the rotation")
		}
	case <-waitCtx(t).Done():
		t.Fatal("no CONNACK")
	}
	f.mu.Lock()
	f.authHold = nil
	f.mu.Unlock()
	mustV5(t, b.Addr(), 1, "new-secret")
}

// isClosed reports whether err is a connection the peer closed (not a timeout).
func isClosed(err error) bool {
	return errors.Is(err, syscall.ECONNRESET) || errors.Is(err, net.ErrClosed) || errors.Is(err, syscall.EPIPE)
}

// dialV5WithServerDisconnect connects like mustV5 and calls onDisconnect with
// the server's DISCONNECT.
func dialV5WithServerDisconnect(tb testing.TB, addr, username, password string, onDisconnect func(*paho.Disconnect)) (*paho.Client, *paho.Connack, error) {
	tb.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		tb.Fatal(err)
	}
	clientID := "device-" + username
	c := paho.NewClient(paho.ClientConfig{Conn: conn, ClientID: clientID, OnServerDisconnect: onDisconnect})
	ca, err := c.Connect(waitCtx(tb), &paho.Connect{ClientID: clientID, KeepAlive: 30, CleanStart: true,
		UsernameFlag: true, Username: username, PasswordFlag: true, Password: []byte(password)})
	if err != nil {
		return nil, ca, err
	}
	tb.Cleanup(func() { _ = c.Disconnect(&paho.Disconnect{}) })
	return c, ca, nil
}
