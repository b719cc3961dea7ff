package devicectl_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"

	"github.com/doorledger/doorledger"
	"github.com/doorledger/doorledger/devicectl"
)

// requireTool returns the path of a program the test needs, skipping the
// test when it is missing unless DOORLEDGER_REQUIRE_TOOLS=1.
func requireTool(t *testing.T, name string, fallbacks ...string) string {
	t.Helper()
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	for _, p := range fallbacks {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	if os.Getenv("DOORLEDGER_REQUIRE_TOOLS") == "1" {
		t.Fatalf("%s is not installed and DOORLEDGER_REQUIRE_TOOLS=1", name)
	}
	t.Skipf("SKIPPED: %s is not installed (apt-get install mosquitto); set DOORLEDGER_REQUIRE_TOOLS=1 to make this a failure", name)
	return ""
}

// syncBuffer collects a process's output.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// mosquitto is a real Mosquitto running on a loopback port.
type mosquitto struct {
	t    *testing.T
	path string
	conf string
	addr string
	out  *syncBuffer
	cmd  *exec.Cmd
	done chan struct{}
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

const portalUser, portalPass = "doorledger-portal", "portal-pass"

// startMosquitto writes a config for devices 1–3 of secrets into a temporary
// directory and starts Mosquitto on it.
func startMosquitto(t *testing.T) *mosquitto {
	t.Helper()
	return startMosquittoWith(t, nil)
}

// startMosquittoWith is startMosquitto with the config changed by edit first.
func startMosquittoWith(t *testing.T, edit func(*devicectl.MosquittoConfig)) *mosquitto {
	t.Helper()
	path := requireTool(t, "mosquitto", "/usr/sbin/mosquitto")
	dir := t.TempDir()
	addr := freeAddr(t)
	// Device 2's credential arrives as a hash, the way the database keeps it.
	h2, err := devicectl.MosquittoHash(secrets[2])
	if err != nil {
		t.Fatal(err)
	}
	cfg := devicectl.MosquittoConfig{
		Dir:     dir,
		Listen:  addr,
		Service: devicectl.MosquittoAccount{Username: portalUser, Password: portalPass},
		Devices: []devicectl.MosquittoDevice{
			{ID: 1, Secret: secrets[1]},
			{ID: 2, Hash: h2},
			{ID: 3, Secret: secrets[3]},
		},
	}
	if os.Geteuid() == 0 {
		cfg.User = "root" // else Mosquitto drops to "mosquitto", who cannot read t.TempDir()
	}
	if edit != nil {
		edit(&cfg)
	}
	conf, err := devicectl.WriteMosquittoConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	m := &mosquitto{t: t, path: path, conf: conf, addr: addr, out: &syncBuffer{}}
	m.start()
	t.Cleanup(func() {
		m.stop()
		if t.Failed() {
			t.Logf("mosquitto output:\n%s", m.out.String())
		}
	})
	return m
}

func (m *mosquitto) start() {
	m.t.Helper()
	mark := len(m.out.String())
	m.cmd = exec.Command(m.path, "-c", m.conf)
	m.cmd.Stdout, m.cmd.Stderr = m.out, m.out
	if err := m.cmd.Start(); err != nil {
		m.t.Fatal(err)
	}
	m.done = make(chan struct{})
	go func(cmd *exec.Cmd, done chan struct{}) {
		_ = cmd.Wait()
		close(done)
	}(m.cmd, m.done)
	deadline := time.Now().Add(waitTimeout)
	for {
		// Mosquitto logs "running" once every listener is open.
		if out := m.out.String()[mark:]; strings.Contains(out, " running") {
			if strings.Count(out, "listen socket on port") != 1 {
				m.t.Fatalf("mosquitto opened more than its one listener:\n%s", out)
			}
			c, err := net.Dial("tcp", m.addr)
			if err != nil {
				m.t.Fatalf("mosquitto runs but %s refuses: %v\n%s", m.addr, err, out)
			}
			c.Close()
			return
		}
		select {
		case <-m.done:
			m.t.Fatalf("mosquitto exited:\n%s", m.out.String())
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			m.t.Fatalf("mosquitto does not listen on %s:\n%s", m.addr, m.out.String())
		}
	}
}

// stop ends Mosquitto with SIGTERM (it saves its persistence file), or kills it.
func (m *mosquitto) stop() {
	if m.cmd == nil {
		return
	}
	_ = m.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-m.done:
	case <-time.After(5 * time.Second):
		_ = m.cmd.Process.Kill()
		<-m.done
	}
	m.cmd = nil
}

func mustClient(t *testing.T, m *mosquitto, f *fakePortal, onConnected func()) *devicectl.Client {
	t.Helper()
	c, err := devicectl.NewClient(devicectl.ClientConfig{
		URL:         "mqtt://" + m.addr,
		Username:    portalUser,
		Password:    portalPass,
		Devices:     f,
		Events:      f,
		OnConnected: onConnected,
		Logger:      testLogger(),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if err := c.AwaitConnection(waitCtx(t)); err != nil {
		t.Fatal(err)
	}
	return c
}

// connectedClient waits for the client's subscriptions to be in place.
func connectedClient(t *testing.T, m *mosquitto, f *fakePortal) *devicectl.Client {
	t.Helper()
	up := make(chan struct{}, 10)
	c := mustClient(t, m, f, func() { up <- struct{}{} })
	select {
	case <-up:
	case <-time.After(waitTimeout):
		t.Fatal("client never subscribed")
	}
	return c
}

func TestMosquittoHash_MatchesMosquittoPasswd(t *testing.T) {
	tool := requireTool(t, "mosquitto_passwd")
	file := filepath.Join(t.TempDir(), "pw")
	if out, err := exec.Command(tool, "-b", "-c", file, "7", "the-secret").CombinedOutput(); err != nil {
		t.Fatalf("mosquitto_passwd: %v %s", err, out)
	}
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	_, hash, _ := strings.Cut(strings.TrimSpace(string(b)), ":")
	if !strings.HasPrefix(hash, "$7$") {
		t.Fatalf("mosquitto_passwd wrote %q", hash)
	}
	for _, tc := range []struct {
		secret string
		want   bool
	}{{"the-secret", true}, {"the-secreT", false}, {"", false}} {
		if got, err := devicectl.CheckMosquittoHash(hash, tc.secret); err != nil || got != tc.want {
			t.Errorf("CheckMosquittoHash(mosquitto_passwd hash, %q) = %v, %v; want %v", tc.secret, got, err, tc.want)
		}
	}
	ours, err := devicectl.MosquittoHash("the-secret")
	if err != nil {
		t.Fatal(err)
	}
	if ok, err := devicectl.CheckMosquittoHash(ours, "the-secret"); !ok || err != nil {
		t.Errorf("our own hash does not check: %v", err)
	}
	if _, err := devicectl.CheckMosquittoHash("$6$abc$def", "x"); err == nil {
		t.Error("accepted a $6$ hash")
	}
}

func TestWriteMosquittoConfig(t *testing.T) {
	dir := t.TempDir()
	conf, err := devicectl.WriteMosquittoConfig(devicectl.MosquittoConfig{
		Dir:     dir,
		Listen:  "127.0.0.1:1884",
		Service: devicectl.MosquittoAccount{Username: "doorledger-portal", Password: "p"},
		Devices: []devicectl.MosquittoDevice{{ID: 12, Secret: "a"}, {ID: 13, Hash: "$7$101$c2FsdA==$a2V5"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	read := func(name string) string {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	got := read("mosquitto.conf")
	if !strings.Contains(got, "allow_anonymous false\n") {
		t.Errorf("mosquitto.conf:\n%s", got)
	}
	// Listener options before the listener line would open a default
	// listener on 1883.
	_, after, ok := strings.Cut(got, "\nlistener 1884 127.0.0.1\n")
	if !ok || !strings.Contains(after, "use_username_as_clientid true\n") || !strings.Contains(after, "max_qos 1\n") {
		t.Errorf("listener options do not follow the listener:\n%s", got)
	}
	if filepath.Base(conf) != "mosquitto.conf" {
		t.Errorf("returned %s", conf)
	}
	pw := read("passwd")
	if !strings.Contains(pw, "\n13:$7$101$c2FsdA==$a2V5\n") || !strings.HasPrefix(pw, "doorledger-portal:$7$") || !strings.Contains(pw, "\n12:$7$101$") {
		t.Errorf("passwd:\n%s", pw)
	}
	acl := read("acl")
	for _, line := range []string{
		"pattern read doorledger/devices/%u/desired\n",
		"pattern write doorledger/devices/%u/reported\n",
		"pattern write doorledger/devices/%u/events\n",
		"user doorledger-portal\ntopic readwrite doorledger/devices/#\n",
	} {
		if !strings.Contains(acl, line) {
			t.Errorf("acl lacks %q:\n%s", line, acl)
		}
	}

	for name, cfg := range map[string]devicectl.MosquittoConfig{
		"numeric service user":  {Dir: dir, Service: devicectl.MosquittoAccount{Username: "42", Password: "p"}},
		"repeated device":       {Dir: dir, Service: devicectl.MosquittoAccount{Username: "svc", Password: "p"}, Devices: []devicectl.MosquittoDevice{{ID: 1, Secret: "a"}, {ID: 1, Secret: "b"}}},
		"device without secret": {Dir: dir, Service: devicectl.MosquittoAccount{Username: "svc", Password: "p"}, Devices: []devicectl.MosquittoDevice{{ID: 1}}},
		"hash with a colon":     {Dir: dir, Service: devicectl.MosquittoAccount{Username: "svc", Hash: "$7$1$a:b$c"}},
	} {
		if _, err := devicectl.WriteMosquittoConfig(cfg); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestMosquitto_EnableRevokeAndOfflineDelivery(t *testing.T) {
	m := startMosquitto(t)
	f := newFakePortal(nil)
	c := connectedClient(t, m, f)

	d1 := MustSim(t, m.addr, devicectl.SimConfig{DeviceID: 1, Secret: secrets[1]})
	if err := d1.AwaitConnected(waitCtx(t)); err != nil {
		t.Fatal(err)
	}
	mustPush(t, c, 1, doorledger.StateEnabled, 1)
	if a := mustVersion(t, d1, 1); a.State != doorledger.StateEnabled {
		t.Errorf("applied %+v", a)
	}
	f.waitFor(t, "report v1", func() bool { return f.hasReport(1, 1) })
	mustPush(t, c, 1, doorledger.StateDisabled, 2)
	if a := mustVersion(t, d1, 2); a.State != doorledger.StateDisabled {
		t.Errorf("applied %+v", a)
	}
	f.waitFor(t, "report v2", func() bool { return f.hasReport(1, 2) })

	// Device 2 is offline when its state is pushed; the retained message
	// reaches it when it connects. Its credential was given as a hash.
	mustPush(t, c, 2, doorledger.StateEnabled, 1)
	d2 := MustSim(t, m.addr, devicectl.SimConfig{DeviceID: 2, Secret: secrets[2]})
	mustVersion(t, d2, 1)
	f.waitFor(t, "device 2 report", func() bool { return f.hasReport(2, 1) })

	ev, err := d2.Unlock(devicectl.EventMessage{ActorRef: "pkg-9"})
	if err != nil {
		t.Fatal(err)
	}
	f.waitFor(t, "event", func() bool { return f.hasEvent(2, ev.EventID) })
}

func TestMosquitto_ACLIsolation(t *testing.T) {
	m := startMosquitto(t)
	f := newFakePortal(nil)
	c := connectedClient(t, m, f)

	if _, _, err := dialV5(t, m.addr, "1", "wrong", "device-1", nil); err == nil {
		t.Error("wrong secret accepted")
	}
	if _, _, err := dialV5(t, m.addr, "9", secrets[1], "device-9", nil); err == nil {
		t.Error("unknown device accepted")
	}
	if _, _, err := dialV5(t, m.addr, portalUser, "wrong", "x", nil); err == nil {
		t.Error("service account with a wrong password accepted")
	}

	d1 := mustV5(t, m.addr, 1, secrets[1])
	d2 := mustV5(t, m.addr, 2, secrets[2])
	for _, filter := range []string{devicectl.DesiredTopic(1), "#", "doorledger/devices/+/desired", "doorledger/devices/+/reported"} {
		sa, err := d2.Subscribe(waitCtx(t), &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: filter, QoS: 1}}})
		if sa != nil {
			t.Logf("Mosquitto SUBACK for device 2 on %q: %#x (%v)", filter, sa.Reasons, err)
		}
	}
	if _, err := d2.Subscribe(waitCtx(t), &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: devicectl.DesiredTopic(2), QoS: 1}}}); err != nil {
		t.Fatal(err)
	}
	// Device 1's state, then device 2's: device 2 must see only its own.
	mustPush(t, c, 1, doorledger.StateEnabled, 5)
	mustPush(t, c, 2, doorledger.StateDisabled, 1)
	select {
	case p := <-d2.msgs:
		if p.Topic != devicectl.DesiredTopic(2) {
			t.Fatalf("device 2 received %s: %s", p.Topic, p.Payload)
		}
	case <-time.After(waitTimeout):
		t.Fatal("device 2 got nothing")
	}

	// Device 2 forges a report and an event for device 1, then reports its
	// own; the portal gets only the latter.
	forged := []byte(`{"state":"enabled","version":99}`)
	for _, topic := range []string{devicectl.ReportedTopic(1), devicectl.EventsTopic(1), devicectl.DesiredTopic(1)} {
		pr, err := d2.Publish(waitCtx(t), &paho.Publish{QoS: 1, Topic: topic, Payload: forged})
		t.Logf("Mosquitto PUBACK for device 2 on %s: %+v %v", topic, pr, err)
	}
	if _, err := d2.Publish(waitCtx(t), &paho.Publish{QoS: 1, Topic: devicectl.ReportedTopic(2), Payload: []byte(`{"state":"disabled","version":1}`)}); err != nil {
		t.Fatal(err)
	}
	f.waitFor(t, "device 2's own report", func() bool { return f.hasReport(2, 1) })
	f.mu.Lock()
	if f.hasReport(1, 99) || len(f.events) > 0 {
		t.Errorf("forged messages reached the portal: %+v %+v", f.reports, f.events)
	}
	f.mu.Unlock()
	// Device 1's desired state was not overwritten by the forgery.
	d1msgs := d1.msgs
	if _, err := d1.Subscribe(waitCtx(t), &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: devicectl.DesiredTopic(1), QoS: 1}}}); err != nil {
		t.Fatal(err)
	}
	p := <-d1msgs
	var ds doorledger.DesiredState
	if err := json.Unmarshal(p.Payload, &ds); err != nil || ds.Version != 5 {
		t.Errorf("device 1's retained desired state: %s (%v)", p.Payload, err)
	}

	// With use_username_as_clientid, device 3 cannot kick device 1 off by
	// claiming its client id.
	if _, _, err := dialV5(t, m.addr, "3", secrets[3], "device-1", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := d1.Publish(waitCtx(t), &paho.Publish{QoS: 1, Topic: devicectl.ReportedTopic(1), Payload: []byte(`{"state":"enabled","version":5}`)}); err != nil {
		t.Errorf("device 1 lost its connection to a client id claim: %v", err)
	}
	select {
	case <-d1.Done():
		t.Error("device 1 was disconnected")
	default:
	}
}

// The portal's session outlives the portal: events sent while it is away are
// delivered when it comes back.
func TestClient_PersistentSessionAcrossPortalRestart(t *testing.T) {
	m := startMosquitto(t)
	f := newFakePortal(nil)
	c := connectedClient(t, m, f)
	d := MustSim(t, m.addr, devicectl.SimConfig{DeviceID: 1, Secret: secrets[1]})
	if err := d.AwaitConnected(waitCtx(t)); err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}

	ev, err := d.Unlock(devicectl.EventMessage{})
	if err != nil {
		t.Fatal(err)
	}
	if err := d.AwaitDelivered(waitCtx(t)); err != nil { // Mosquitto has it, queued for the portal
		t.Fatal(err)
	}
	f2 := newFakePortal(nil)
	connectedClient(t, m, f2)
	f2.waitFor(t, "queued event", func() bool { return f2.hasEvent(1, ev.EventID) })
}

// A message is acknowledged only after the service committed it: one the
// portal could not commit before stopping comes again to the next portal.
func TestClient_FailingSinkIsNotAcknowledged(t *testing.T) {
	m := startMosquitto(t)
	f := newFakePortal(nil)
	f.failEvents = 1 << 30
	c := connectedClient(t, m, f)
	d := MustSim(t, m.addr, devicectl.SimConfig{DeviceID: 1, Secret: secrets[1]})
	if err := d.AwaitConnected(waitCtx(t)); err != nil {
		t.Fatal(err)
	}
	ev, err := d.Unlock(devicectl.EventMessage{})
	if err != nil {
		t.Fatal(err)
	}
	f.waitFor(t, "retries", func() bool { return f.calls >= 3 })
	if got := c.Stats().CommitErrors; got < 2 { // the third call began after the second was counted
		t.Errorf("CommitErrors = %d", got)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}

	f2 := newFakePortal(nil)
	c2 := connectedClient(t, m, f2)
	f2.waitFor(t, "redelivered event", func() bool { return f2.hasEvent(1, ev.EventID) })
	if got := c2.Stats().Events; got < 1 {
		t.Errorf("Events = %d", got)
	}
}

// Mosquitto restarts under a running portal and device: both reconnect, a
// push made during the outage completes, retained state and the portal's
// subscriptions survive (persistence), and the device converges.
func TestClient_AcrossMosquittoRestart(t *testing.T) {
	m := startMosquitto(t)
	f := newFakePortal(nil)
	var ups atomic.Int32
	upc := make(chan struct{}, 10)
	c := mustClient(t, m, f, func() { ups.Add(1); upc <- struct{}{} })
	<-upc
	d1 := MustSim(t, m.addr, devicectl.SimConfig{DeviceID: 1, Secret: secrets[1]})
	mustPush(t, c, 1, doorledger.StateEnabled, 1)
	mustPush(t, c, 3, doorledger.StateEnabled, 4) // for a device that first connects after the restart
	mustVersion(t, d1, 1)
	f.waitFor(t, "report v1", func() bool { return f.hasReport(1, 1) })

	m.stop()
	pushed := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
		defer cancel()
		pushed <- c.Push(ctx, doorledger.DesiredState{DeviceID: 1, CommandID: 2, State: doorledger.StateDisabled, Version: 2, IssuedAt: time.Now()})
	}()
	m.start()

	if err := <-pushed; err != nil {
		t.Fatalf("push across the restart: %v", err)
	}
	if a := mustVersion(t, d1, 2); a.State != doorledger.StateDisabled {
		t.Errorf("applied %+v", a)
	}
	f.waitFor(t, "report v2 after restart", func() bool { return f.hasReport(1, 2) })
	d3 := MustSim(t, m.addr, devicectl.SimConfig{DeviceID: 3, Secret: secrets[3]})
	mustVersion(t, d3, 4)
	ev, err := d3.Unlock(devicectl.EventMessage{})
	if err != nil {
		t.Fatal(err)
	}
	f.waitFor(t, "event after restart", func() bool { return f.hasEvent(3, ev.EventID) })
	if got := ups.Load(); got < 2 {
		t.Errorf("OnConnected called %d times, want ≥ 2", got)
	}
}
