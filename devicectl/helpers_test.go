package devicectl_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/doorledger/doorledger"
	"github.com/doorledger/doorledger/devicectl"
)

// waitTimeout only guards against a hung test; nothing asserts on durations.
const waitTimeout = 15 * time.Second

// fakePortal stands in for the device service (DeviceReports and EventSink),
// a boundary these tests do not own. Everything it accepts it keeps in order.
type fakePortal struct {
	mu          sync.Mutex
	secrets     map[int64]string
	authErr     error         // returned to everyone when set (an outage)
	authHold    chan struct{} // when set, an accepted credential's answer waits for it to close
	authHeld    chan struct{} // receives when an answer waits on authHold
	failReports int           // fail the next n ReportState calls
	failEvents  int           // fail the next n RecordUnlocks calls
	busy        bool          // IngestBusy: more events wait than the portal takes
	hold        chan struct{}
	held        chan struct{} // receives when a ReportState call is held
	reports     []doorledger.ReportedState
	events      []doorledger.UnlockEvent
	calls       int // ReportState and RecordUnlocks calls, failed ones included
	conns       []connChange
	changed     chan struct{}
}

type connChange struct {
	id        int64
	connected bool
}

func newFakePortal(secrets map[int64]string) *fakePortal {
	return &fakePortal{secrets: secrets, changed: make(chan struct{})}
}

func (f *fakePortal) notifyLocked() {
	close(f.changed)
	f.changed = make(chan struct{})
}

func (f *fakePortal) AuthenticateDevice(_ context.Context, id int64, secret string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.authErr != nil {
		return f.authErr
	}
	if s, ok := f.secrets[id]; !ok || s != secret {
		return doorledger.Errorf(doorledger.EUNAUTHORIZED, "Unknown device or wrong secret.")
	}
	if hold := f.authHold; hold != nil {
		f.mu.Unlock()
		f.authHeld <- struct{}{}
		<-hold
		f.mu.Lock()
	}
	return nil
}

func (f *fakePortal) ReportState(ctx context.Context, r doorledger.ReportedState) error {
	f.mu.Lock()
	hold, held := f.hold, f.held
	f.mu.Unlock()
	if hold != nil {
		if held != nil {
			held <- struct{}{}
		}
		select {
		case <-hold:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	defer f.notifyLocked()
	if f.failReports > 0 {
		f.failReports--
		return errors.New("database is locked")
	}
	f.reports = append(f.reports, r)
	return nil
}

func (f *fakePortal) RecordUnlocks(_ context.Context, evs []doorledger.UnlockEvent) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	defer f.notifyLocked()
	if f.failEvents > 0 {
		f.failEvents--
		return errors.New("database is locked")
	}
	f.events = append(f.events, evs...)
	return nil
}

func (f *fakePortal) IngestBusy() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.busy
}

func (f *fakePortal) onConnection(id int64, connected bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.conns = append(f.conns, connChange{id, connected})
	f.notifyLocked()
}

// waitFor waits until cond, evaluated with f.mu held, is true.
func (f *fakePortal) waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.NewTimer(waitTimeout)
	defer deadline.Stop()
	for {
		f.mu.Lock()
		ok, ch := cond(), f.changed
		f.mu.Unlock()
		if ok {
			return
		}
		select {
		case <-ch:
		case <-deadline.C:
			f.mu.Lock()
			defer f.mu.Unlock()
			t.Fatalf("timed out waiting for %s; reports=%+v events=%d conns=%+v", what, f.reports, len(f.events), f.conns)
		}
	}
}

// hasReport reports whether device id reported version v; f.mu must be held.
func (f *fakePortal) hasReport(id, v int64) bool {
	for _, r := range f.reports {
		if r.DeviceID == id && r.Version == v {
			return true
		}
	}
	return false
}

func (f *fakePortal) countReports(id, v int64) int {
	n := 0
	for _, r := range f.reports {
		if r.DeviceID == id && r.Version == v {
			n++
		}
	}
	return n
}

func (f *fakePortal) hasEvent(id int64, eventID string) bool {
	for _, e := range f.events {
		if e.DeviceID == id && e.EventID == eventID {
			return true
		}
	}
	return false
}

// testLogger discards logs unless DOORLEDGER_TEST_LOG=1.
func testLogger() *slog.Logger {
	if os.Getenv("DOORLEDGER_TEST_LOG") == "1" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// MustBroker starts an embedded broker on a free loopback port.
func MustBroker(tb testing.TB, f *fakePortal, addr string) *devicectl.Broker {
	tb.Helper()
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	b, err := devicectl.NewBroker(devicectl.BrokerConfig{
		Addr:         addr,
		Devices:      f,
		Events:       f,
		OnConnection: f.onConnection,
		Logger:       testLogger(),
	})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { b.Close() })
	return b
}

// MustSim starts a simulated device; cfg.BrokerURL defaults to the broker at addr.
func MustSim(tb testing.TB, addr string, cfg devicectl.SimConfig) *devicectl.SimDevice {
	tb.Helper()
	if cfg.BrokerURL == "" {
		cfg.BrokerURL = "mqtt://" + addr
	}
	if cfg.Logger == nil {
		cfg.Logger = testLogger()
	}
	d, err := devicectl.NewSimDevice(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	if err := d.Start(context.Background()); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
		defer cancel()
		if err := d.Stop(ctx); err != nil {
			tb.Errorf("stop sim %d: %v", d.ID(), err)
		}
	})
	return d
}

func waitCtx(tb testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	tb.Cleanup(cancel)
	return ctx
}

func mustPush(tb testing.TB, tr doorledger.Transport, id int64, state doorledger.DeviceState, version int64) {
	tb.Helper()
	err := tr.Push(waitCtx(tb), doorledger.DesiredState{DeviceID: id, CommandID: version, State: state, Version: version, IssuedAt: time.Now()})
	if err != nil {
		tb.Fatalf("push device %d v%d: %v", id, version, err)
	}
}

func mustVersion(tb testing.TB, d *devicectl.SimDevice, v int64) devicectl.Applied {
	tb.Helper()
	a, err := d.AwaitVersion(waitCtx(tb), v)
	if err != nil {
		tb.Fatalf("device %d never applied v%d (has %+v): %v", d.ID(), v, a, err)
	}
	return a
}

// v5Client is a bare MQTT 5 client (paho, no autopaho) for poking at a broker.
type v5Client struct {
	*paho.Client
	msgs chan *paho.Publish
}

// dialV5 connects with the given credential and returns the CONNACK and the
// error of a refused connection.
func dialV5(tb testing.TB, addr, username, password, clientID string, will *paho.WillMessage) (*v5Client, *paho.Connack, error) {
	tb.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		tb.Fatal(err)
	}
	c := &v5Client{msgs: make(chan *paho.Publish, 100)}
	c.Client = paho.NewClient(paho.ClientConfig{
		Conn:     conn,
		ClientID: clientID,
		OnPublishReceived: []func(paho.PublishReceived) (bool, error){func(pr paho.PublishReceived) (bool, error) {
			c.msgs <- pr.Packet
			return true, nil
		}},
	})
	cp := &paho.Connect{
		ClientID:     clientID,
		KeepAlive:    30,
		CleanStart:   true,
		UsernameFlag: true,
		Username:     username,
		PasswordFlag: true,
		Password:     []byte(password),
		WillMessage:  will,
	}
	if will != nil {
		cp.WillProperties = &paho.WillProperties{}
	}
	ca, err := c.Connect(waitCtx(tb), cp)
	if err != nil {
		return nil, ca, err
	}
	tb.Cleanup(func() { _ = c.Disconnect(&paho.Disconnect{}) })
	return c, ca, nil
}

func mustV5(tb testing.TB, addr string, id int64, secret string) *v5Client {
	tb.Helper()
	c, _, err := dialV5(tb, addr, fmt.Sprint(id), secret, devicectl.ClientID(id), nil)
	if err != nil {
		tb.Fatalf("device %d connect: %v", id, err)
	}
	return c
}

// v3Conn is a hand-rolled MQTT 3.1.1 client (mochi's packet encoder over a
// raw socket), enough to see what a 3.1.1 device gets back.
type v3Conn struct {
	net.Conn
	r *bufio.Reader
}

func dialV3(tb testing.TB, addr, username, password, clientID string) (*v3Conn, byte) {
	tb.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { conn.Close() })
	c := &v3Conn{Conn: conn, r: bufio.NewReader(conn)}
	pk := packets.Packet{
		FixedHeader:     packets.FixedHeader{Type: packets.Connect},
		ProtocolVersion: 4,
		Connect: packets.ConnectParams{
			ProtocolName:     []byte("MQTT"),
			Clean:            false,
			Keepalive:        30,
			ClientIdentifier: clientID,
			UsernameFlag:     true,
			Username:         []byte(username),
			PasswordFlag:     true,
			Password:         []byte(password),
		},
	}
	var buf bytes.Buffer
	if err := pk.ConnectEncode(&buf); err != nil {
		tb.Fatal(err)
	}
	if _, err := conn.Write(buf.Bytes()); err != nil {
		tb.Fatal(err)
	}
	typ, body, err := c.read()
	if err != nil || typ != packets.Connack || len(body) != 2 {
		tb.Fatalf("v3 connect: type %d body %x err %v", typ, body, err)
	}
	return c, body[1]
}

func (c *v3Conn) publish(tb testing.TB, topic string, payload []byte, id uint16) {
	tb.Helper()
	pk := packets.Packet{
		FixedHeader:     packets.FixedHeader{Type: packets.Publish, Qos: 1},
		ProtocolVersion: 4,
		TopicName:       topic,
		Payload:         payload,
		PacketID:        id,
	}
	var buf bytes.Buffer
	if err := pk.PublishEncode(&buf); err != nil {
		tb.Fatal(err)
	}
	if _, err := c.Write(buf.Bytes()); err != nil {
		tb.Fatal(err)
	}
}

// read returns the next packet's type and body.
func (c *v3Conn) read() (byte, []byte, error) {
	c.SetReadDeadline(time.Now().Add(waitTimeout))
	h, err := c.r.ReadByte()
	if err != nil {
		return 0, nil, err
	}
	n, mult := 0, 1
	for {
		b, err := c.r.ReadByte()
		if err != nil {
			return 0, nil, err
		}
		n += int(b&0x7f) * mult
		if b&0x80 == 0 {
			break
		}
		mult *= 128
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(c.r, body); err != nil {
		return 0, nil, err
	}
	return h >> 4, body, nil
}

// mustDeliverQueued takes d offline, has it queue one unlock per actor
// (they go as one array once it is back), brings it online and waits until
// the portal f has every one of them and d has them acknowledged. It returns
// their event ids.
func mustDeliverQueued(t testing.TB, f *fakePortal, d *devicectl.SimDevice, actors []string) []string {
	t.Helper()
	if err := d.Offline(waitCtx(t)); err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, actor := range actors {
		ev, err := d.Unlock(devicectl.EventMessage{ActorRef: actor})
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
			if !f.hasEvent(d.ID(), id) {
				return false
			}
		}
		return true
	})
	if err := d.AwaitDelivered(waitCtx(t)); err != nil {
		t.Fatal(err)
	}
	return ids
}
