package devicectl

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/doorledger/doorledger"
)

// DefaultBrokerAddr is where the embedded broker listens when nothing is configured.
const DefaultBrokerAddr = "127.0.0.1:1883"

// Defaults for BrokerConfig and ClientConfig.
const (
	DefaultCallTimeout   = 10 * time.Second
	DefaultMaxPacketSize = 256 << 10
)

// BrokerConfig configures the embedded broker.
type BrokerConfig struct {
	// Addr is the plain TCP listen address. Empty means DefaultBrokerAddr,
	// unless TLSAddr is set, in which case there is no plain listener.
	// "127.0.0.1:0" picks a free port; Addr() tells which.
	Addr string
	// TLSAddr, with TLSCertFile and TLSKeyFile (PEM), adds a TLS listener.
	TLSAddr     string
	TLSCertFile string
	TLSKeyFile  string

	// Devices authenticates devices and records their reported state; Events
	// records their unlock events. Both are required and must commit before
	// returning nil: the broker acknowledges a message only after that.
	Devices doorledger.DeviceReports
	Events  doorledger.EventSink

	// OnConnection, if set, is called when a device's connection comes up
	// (true) or goes down (false). Calls are made one at a time, in order, on
	// the broker's connection goroutines: keep it short (record last-seen in
	// memory or hand off to a queue) or it delays other devices' connects.
	OnConnection func(deviceID int64, connected bool)

	// CallTimeout bounds each AuthenticateDevice, ReportState and
	// RecordUnlocks call (default DefaultCallTimeout).
	CallTimeout time.Duration
	// MaxPacketSize bounds an incoming MQTT packet (default DefaultMaxPacketSize).
	MaxPacketSize uint32
	// Logger receives the broker's log (default slog.Default()).
	Logger *slog.Logger
}

// clientReadBufferSize is each connection's read buffer. mochi's default,
// 2 KB, was the largest part of the broker's heap a device (10,000 devices:
// 19–23 MB of 76–111 MB live; docs/benchmarks.md, "Portal RSS"). A device
// sends one message at a time and waits for its acknowledgement, and a
// message of one event is a few hundred bytes; the rest of a longer packet is
// read past the buffer straight into the packet's own slice (mochi's
// ReadPacket reads it with io.ReadFull), at the cost of one more read.
const clientReadBufferSize = 512

// Broker is the embedded MQTT broker (mochi-mqtt). Devices connect to it over
// TCP with their own credential; the portal publishes desired state through
// it in-process (Push) and receives reported state and unlock events through
// its hook, which commits them before the device gets its PUBACK.
type Broker struct {
	server  *mqtt.Server
	in      ingester
	stats   counters
	log     *slog.Logger
	onConn  func(int64, bool)
	addr    string
	tlsAddr string
	guard   pushGuard
	hook    *brokerHook

	ctx       context.Context // cancelled by Close: aborts in-flight commits
	cancel    context.CancelFunc
	closed    atomic.Bool
	closeOnce sync.Once
}

var (
	_ doorledger.Transport      = (*Broker)(nil)
	_ doorledger.DeviceSessions = (*Broker)(nil)
)

// NewBroker starts the embedded broker on the configured listeners. Close it
// when done. The broker keeps no state across restarts: the portal
// re-publishes every device's desired state (Push) after starting it.
func NewBroker(cfg BrokerConfig) (*Broker, error) {
	if cfg.Devices == nil || cfg.Events == nil {
		return nil, errors.New("new broker: Devices and Events are required")
	}
	if cfg.Addr == "" && cfg.TLSAddr == "" {
		cfg.Addr = DefaultBrokerAddr
	}
	if cfg.CallTimeout <= 0 {
		cfg.CallTimeout = DefaultCallTimeout
	}
	if cfg.MaxPacketSize == 0 {
		cfg.MaxPacketSize = DefaultMaxPacketSize
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}

	caps := mqtt.NewDefaultServerCapabilities()
	// mochi's default (one day) deletes a retained message a day after it was
	// published, so a device offline for longer would never get its desired
	// state. 0 disables the forced expiry.
	caps.MaximumMessageExpiryInterval = 0
	// Devices use QoS 1; with QoS 2 mochi would answer a refused PUBLISH with
	// a PUBACK instead of a PUBREC.
	caps.MaximumQos = 1
	// Topic aliases would let a PUBLISH omit the topic the ACL checks.
	caps.TopicAliasMaximum = 0
	caps.MaximumPacketSize = cfg.MaxPacketSize
	// A device only ever receives its own desired state: a small outbound
	// queue per client keeps 1,000s of connections cheap (mochi allocates
	// the whole channel per client; its default is 8,192 entries).
	caps.MaximumClientWritesPending = 64

	ctx, cancel := context.WithCancel(context.Background())
	b := &Broker{
		log:    cfg.Logger,
		onConn: cfg.OnConnection,
		ctx:    ctx,
		cancel: cancel,
	}
	b.in = ingester{devices: cfg.Devices, events: cfg.Events, timeout: cfg.CallTimeout, stats: &b.stats}
	b.server = mqtt.New(&mqtt.Options{
		InlineClient:            true,
		Capabilities:            caps,
		ClientNetReadBufferSize: clientReadBufferSize,
		Logger:                  slog.New(quietHandler{cfg.Logger.Handler()}).With("component", "mqtt"),
		SysTopicResendInterval:  60, // nobody may read $SYS; do not pay for it every second
	})
	hook := &brokerHook{b: b, conns: make(map[int64]*conns), cutAt: make(map[int64]uint64)}
	b.hook = hook
	if err := b.server.AddHook(hook, nil); err != nil {
		cancel()
		return nil, fmt.Errorf("new broker: add hook: %w", err)
	}

	if cfg.Addr != "" {
		l := listeners.NewTCP(listeners.Config{Type: listeners.TypeTCP, ID: "tcp", Address: cfg.Addr})
		if err := b.server.AddListener(l); err != nil {
			b.Close()
			return nil, fmt.Errorf("new broker: listen on %s: %w", cfg.Addr, err)
		}
		b.addr = l.Address()
	}
	if cfg.TLSAddr != "" {
		cert, err := tls.LoadX509KeyPair(cfg.TLSCertFile, cfg.TLSKeyFile)
		if err != nil {
			b.Close()
			return nil, fmt.Errorf("new broker: load TLS key pair: %w", err)
		}
		l := listeners.NewTCP(listeners.Config{
			Type:      listeners.TypeTCP,
			ID:        "tls",
			Address:   cfg.TLSAddr,
			TLSConfig: &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12},
		})
		if err := b.server.AddListener(l); err != nil {
			b.Close()
			return nil, fmt.Errorf("new broker: listen (TLS) on %s: %w", cfg.TLSAddr, err)
		}
		b.tlsAddr = l.Address()
	}
	if err := b.server.Serve(); err != nil {
		b.Close()
		return nil, fmt.Errorf("new broker: serve: %w", err)
	}
	return b, nil
}

// Addr returns the bound plain TCP address ("" without a plain listener).
func (b *Broker) Addr() string { return b.addr }

// TLSAddr returns the bound TLS address ("" without a TLS listener).
func (b *Broker) TLSAddr() string { return b.tlsAddr }

// Stats returns the broker's counters.
func (b *Broker) Stats() Stats { return b.stats.snapshot() }

// Connected returns how many clients (devices) are connected now.
func (b *Broker) Connected() int64 { return atomic.LoadInt64(&b.server.Info.ClientsConnected) }

// Push publishes d as the retained desired state of its device (QoS 1). It
// returns once the broker holds it: a connected device gets it now, any other
// when it next subscribes. Pushing an older version than one already pushed is
// a no-op, so the retained message never goes backwards. EINVALID when d is
// not a valid desired state.
func (b *Broker) Push(ctx context.Context, d doorledger.DesiredState) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	payload, err := MarshalDesired(d)
	if err != nil {
		return err
	}
	if b.closed.Load() {
		return fmt.Errorf("push device %d: broker closed", d.DeviceID)
	}
	_, err = b.guard.do(d.DeviceID, d.Version, func() error {
		return b.server.Publish(DesiredTopic(d.DeviceID), payload, true, 1)
	})
	if err != nil {
		return fmt.Errorf("push device %d version %d: %w", d.DeviceID, d.Version, err)
	}
	return nil
}

// DisconnectDevice ends every connection of the device and returns how many
// it ended: the device service calls it after committing a new secret, so that
// a client connected with the old one publishes nothing more. A connection
// whose credential was checked before this call (it may have read the old
// secret) and that comes up after it is ended too, as soon as it is
// established; a connection checked after it authenticates against the new
// secret. A message of an ended connection that the broker was still reading
// is dropped unacknowledged (the device publishes it again after
// reconnecting, if it can).
func (b *Broker) DisconnectDevice(_ context.Context, deviceID int64) int {
	h := b.hook
	h.mu.Lock()
	h.seq++
	h.cutAt[deviceID] = h.seq
	var cls []*mqtt.Client
	if c := h.conns[deviceID]; c != nil {
		cls = append(cls, c.latest, c.live)
	}
	h.mu.Unlock()
	if cl, ok := b.server.Clients.Get(ClientID(deviceID)); ok {
		cls = append(cls, cl)
	}
	n := 0
	for i, cl := range cls {
		if cl == nil || cl.Net.Inline || cl.Closed() || slices.Contains(cls[:i], cl) {
			continue
		}
		if string(cl.Properties.Username) != strconv.FormatInt(deviceID, 10) {
			continue // the client id is the device's, the account another's: not this device
		}
		_ = b.server.DisconnectClient(cl, codeCredentialChanged)
		n++
	}
	if n > 0 {
		b.stats.credentialCuts.Add(int64(n))
		b.log.Info("device disconnected: credential changed", "device", deviceID, "connections", n)
	}
	return n
}

// Close disconnects every device and stops the listeners. Messages whose
// commit is still running are not acknowledged; devices send them again.
func (b *Broker) Close() error {
	var err error
	b.closeOnce.Do(func() {
		b.closed.Store(true)
		b.cancel()
		// mochi's own Close disconnects clients through Clients.GetByListener,
		// which takes its read lock twice and deadlocks when a client connects
		// or leaves meanwhile (mochi-mqtt/server#488, unfixed in v2.7.9); and
		// it does so before closing the listening socket, so devices that
		// reconnect at once land in a socket nobody serves any more and wait
		// out their connect timeout. So: stop listening, disconnect every
		// device, wait for their goroutines; then Close has nothing left to do.
		for _, id := range []string{"tcp", "tls"} {
			b.server.Listeners.Close(id, func(string) {})
		}
		// A connection accepted just before may join the client table after
		// a sweep (OnConnect refuses new ones now), so sweep until none is left.
		gone := make(chan struct{})
		go func() {
			b.server.Listeners.ClientsWg.Wait()
			close(gone)
		}()
		for swept := false; !swept; {
			for _, cl := range b.server.Clients.GetAll() {
				if !cl.Net.Inline && !cl.Closed() {
					_ = b.server.DisconnectClient(cl, packets.ErrServerShuttingDown)
				}
			}
			select {
			case <-gone:
				swept = true
			case <-time.After(10 * time.Millisecond):
			}
		}
		err = b.server.Close()
	})
	return err
}

// brokerHook is the embedded broker's authentication, ACL, ingest and
// connection tracking.
type brokerHook struct {
	mqtt.HookBase
	b *Broker

	authed sync.Map // *mqtt.Client accepted by OnConnect → seq when its credential was checked, until OnSessionEstablish

	mu    sync.Mutex
	conns map[int64]*conns // by device id
	// seq counts DisconnectDevice calls; cutAt is the seq of each device's
	// last one. A connection whose credential was checked at a seq below its
	// device's cutAt may have been checked against the old secret.
	seq   uint64
	cutAt map[int64]uint64
}

func (h *brokerHook) ID() string { return "doorledger" }

func (h *brokerHook) Provides(b byte) bool {
	switch b {
	case mqtt.OnConnect, mqtt.OnConnectAuthenticate, mqtt.OnACLCheck, mqtt.OnPublish,
		mqtt.OnSessionEstablish, mqtt.OnSessionEstablished, mqtt.OnDisconnect:
		return true
	}
	return false
}

// OnConnect checks a device's identity and credential. It runs before mochi's
// OnConnectAuthenticate so that it can answer with a precise CONNACK code.
func (h *brokerHook) OnConnect(cl *mqtt.Client, pk packets.Packet) error {
	// mochi publishes a will without an ACL check or OnPublish: a device could
	// use one to write another device's retained desired state, so wills are
	// dropped. The portal tracks connections through OnConnection instead.
	if pk.Connect.WillFlag {
		cl.Properties.Will = mqtt.Will{}
		h.b.stats.willsDropped.Add(1)
		h.b.log.Warn("device will dropped", "client", cl.ID, "will_topic", pk.Connect.WillTopic)
	}

	if h.b.closed.Load() {
		return h.refuse(cl, packets.ErrServerShuttingDown)
	}
	id, ok := parseDeviceID(string(pk.Connect.Username))
	if !ok {
		h.b.stats.refusedUsername.Add(1)
		h.b.log.Warn("device refused: username is not a device id", "client", cl.ID, "remote", cl.Net.Remote)
		return h.refuse(cl, packets.ErrBadUsernameOrPassword)
	}
	if cl.ID != ClientID(id) {
		h.b.stats.refusedClientID.Add(1)
		h.b.log.Warn("device refused: client id does not match", "device", id, "client", cl.ID, "want", ClientID(id), "remote", cl.Net.Remote)
		return h.refuse(cl, packets.ErrClientIdentifierNotValid)
	}

	h.mu.Lock()
	checkedAt := h.seq // read before the secret is: see DisconnectDevice
	h.mu.Unlock()
	ctx, cancel := context.WithTimeout(h.b.ctx, h.b.in.timeout)
	defer cancel()
	if err := h.b.in.devices.AuthenticateDevice(ctx, id, string(pk.Connect.Password)); err != nil {
		if doorledger.ErrorCode(err) == doorledger.EUNAUTHORIZED {
			h.b.stats.refusedCredential.Add(1)
			h.b.log.Warn("device refused: bad credential", "device", id, "remote", cl.Net.Remote)
			return h.refuse(cl, packets.ErrBadUsernameOrPassword)
		}
		h.b.stats.authErrors.Add(1)
		h.b.log.Error("device refused: authenticate", "device", id, "error", err)
		return h.refuse(cl, packets.ErrServerUnavailable)
	}
	h.b.stats.connects.Add(1)
	disableSendQuota(cl)
	h.authed.Store(cl, checkedAt)
	return nil
}

func (h *brokerHook) refuse(cl *mqtt.Client, code packets.Code) error {
	if err := h.b.server.SendConnack(cl, code, false, nil); err != nil {
		return fmt.Errorf("refuse %s: %w", cl.ID, err)
	}
	return code
}

// OnConnectAuthenticate admits exactly the clients OnConnect accepted, unless
// the device's credential changed since it was checked. The entry stays for
// OnSessionEstablish, which mochi calls next whenever this returns true.
func (h *brokerHook) OnConnectAuthenticate(cl *mqtt.Client, _ packets.Packet) bool {
	v, ok := h.authed.Load(cl)
	if !ok {
		return false
	}
	id, _ := parseDeviceID(string(cl.Properties.Username))
	h.mu.Lock()
	stale := h.cutAt[id] > v.(uint64)
	h.mu.Unlock()
	if stale {
		h.authed.Delete(cl)
		h.b.stats.refusedCredential.Add(1)
		h.b.log.Warn("device refused: credential changed while connecting", "device", id, "remote", cl.Net.Remote)
	}
	return !stale
}

// OnACLCheck lets a device subscribe to its own desired topic and publish to
// its own reported and events topics, and nothing else: no wildcard, no
// shared subscription, no other device's topic, no $SYS.
func (h *brokerHook) OnACLCheck(cl *mqtt.Client, topic string, write bool) bool {
	if cl.Net.Inline {
		return true
	}
	id, kind, ok := ParseTopic(topic)
	ok = ok && strconv.FormatInt(id, 10) == string(cl.Properties.Username)
	if write {
		ok = ok && (kind == KindReported || kind == KindEvents)
	} else {
		ok = ok && kind == KindDesired
	}
	if !ok {
		if write {
			h.b.stats.deniedPublish.Add(1)
		} else {
			h.b.stats.deniedSubscribe.Add(1)
		}
		h.b.log.Warn("device denied by ACL", "client", cl.ID, "topic", topic, "write", write)
	}
	return ok
}

// Reason codes a device sees in a negative PUBACK or a DISCONNECT (MQTT 5).
var (
	codeNotCommitted      = packets.Code{Code: packets.ErrImplementationSpecificError.Code, Reason: "not committed: publish again later"}
	codeCredentialChanged = packets.Code{Code: packets.ErrNotAuthorized.Code, Reason: "credential changed: connect with the new secret"}
)

// OnPublish commits a device's message before mochi acknowledges it: mochi
// builds the PUBACK only after OnPublish returns nil (server.go,
// processPublish). On failure MQTT 5 devices get a negative PUBACK and publish
// again; MQTT 3.1.1 has no negative PUBACK, so the connection is closed
// without one and the device resends the message when it reconnects.
func (h *brokerHook) OnPublish(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	if cl.Net.Inline {
		return pk, nil
	}
	if cl.Closed() { // ended (DisconnectDevice) while this message was being read
		return pk, packets.ErrRejectPacket
	}
	id, kind, ok := ParseTopic(pk.TopicName)
	if !ok { // the ACL admits only device topics; be safe anyway
		return pk, packets.ErrRejectPacket
	}
	out, err := h.b.in.ingest(h.b.ctx, id, kind, pk.Payload)
	v5ack := cl.Properties.ProtocolVersion == 5 && pk.FixedHeader.Qos > 0
	switch out {
	case committed:
		// Acknowledge, but do not route or retain: the portal has it.
		return pk, packets.CodeSuccessIgnore
	case rejected:
		h.b.log.Warn("device message refused", "device", id, "topic", pk.TopicName, "error", err)
		if v5ack {
			return pk, packets.Code{Code: packets.ErrPayloadFormatInvalid.Code, Reason: doorledger.ErrorMessage(err)}
		}
		// 3.1.1 cannot say no: acknowledge and drop, as resending cannot help.
		return pk, packets.CodeSuccessIgnore
	default:
		code := codeNotCommitted
		if doorledger.ErrorCode(err) == doorledger.EUNAVAILABLE {
			// The disk is full, or more events wait to be committed than
			// the portal takes (sqlite.UnlockService.MaxQueued): expected
			// while it lasts, and logged by the portal, not per message. The
			// reason is the portal's own: which of the two, to send again.
			code = packets.Code{Code: packets.ErrImplementationSpecificError.Code, Reason: doorledger.ErrorMessage(err)}
			h.b.log.Debug("device message refused for now", "device", id, "topic", pk.TopicName, "error", err)
		} else {
			h.b.log.Error("device message not committed", "device", id, "topic", pk.TopicName, "error", err)
		}
		if v5ack {
			return pk, code
		}
		if pk.FixedHeader.Qos > 0 {
			cl.Stop(fmt.Errorf("not committed: %w", err))
		}
		return pk, packets.ErrRejectPacket
	}
}

// disableSendQuota turns off mochi's flow control towards the device.
// mochi v2.7.9 keeps the device's packet ids and its own in one inflight map,
// although MQTT makes them independent: when a device publishes with the id of
// a desired-state message it has not acknowledged yet, mochi drops that
// message's entry, the PUBACK then matches nothing, and one unit of send quota
// (the device's Receive Maximum) is lost for good. Once the quota is spent,
// every further desired state waits in the inflight map until the device
// happens to send a packet, up to a keep-alive later. A device only ever has
// a handful of desired states in flight, so no quota is needed.
func disableSendQuota(cl *mqtt.Client) { cl.State.Inflight.ResetSendQuota(0) }

// conns is what the hook knows of one device's connections.
type conns struct {
	latest  *mqtt.Client // the newest connection that began establishing its session
	live    *mqtt.Client // the connection reported up through OnConnection
	leaving *mqtt.Client // a connection past OnDisconnect that will delete its session
	stale   *mqtt.Client // latest, when its credential was checked before the device's last DisconnectDevice
}

// Connection takeover. When a device connects again before the broker saw
// its old connection die, mochi v2.7.9 (server.go, attachClient and
// inheritClientSession) lets the old connection's teardown check "taken
// over?" before the new one has said so, and then delete the session by
// client id: the new connection's. The device stays connected but receives
// nothing, and Close waits for it forever. OnSessionEstablish and
// OnDisconnect, which mochi calls on either side of that race, order it: an
// old connection that has a successor waits until the successor has marked it
// taken over; a successor that finds an old connection on its way out waits
// until it is gone.
const takeoverWait = 2 * time.Second

// OnSessionEstablish runs before mochi looks for a session to take over.
func (h *brokerHook) OnSessionEstablish(cl *mqtt.Client, _ packets.Packet) {
	id, ok := parseDeviceID(string(cl.Properties.Username))
	if !ok {
		return
	}
	v, _ := h.authed.LoadAndDelete(cl)
	checkedAt, _ := v.(uint64)
	h.mu.Lock()
	c := h.device(id)
	c.latest = cl
	if h.cutAt[id] > checkedAt {
		// DisconnectDevice ran since OnConnectAuthenticate and did not see
		// this connection: end it once established (OnSessionEstablished).
		c.stale = cl
	}
	leaving := c.leaving
	h.mu.Unlock()
	if leaving == nil {
		return
	}
	waitUntil(func() bool {
		cur, ok := h.b.server.Clients.Get(cl.ID)
		return !ok || cur != leaving
	})
	h.mu.Lock()
	if c.leaving == leaving {
		c.leaving = nil
	}
	h.mu.Unlock()
}

// OnSessionEstablished reports a device's connection as up.
func (h *brokerHook) OnSessionEstablished(cl *mqtt.Client, _ packets.Packet) {
	id, ok := parseDeviceID(string(cl.Properties.Username))
	if !ok {
		return
	}
	disableSendQuota(cl) // inheriting a session may have set it again
	h.mu.Lock()
	c := h.device(id)
	if c.stale == cl {
		c.stale = nil
		h.mu.Unlock()
		// Before mochi reads anything from it: it publishes nothing.
		_ = h.b.server.DisconnectClient(cl, codeCredentialChanged)
		h.b.stats.credentialCuts.Add(1)
		h.b.log.Info("device disconnected: credential changed while connecting", "device", id)
		return
	}
	defer h.mu.Unlock()
	c.live = cl
	if h.b.onConn != nil {
		h.b.onConn(id, true)
	}
}

// OnDisconnect reports a device's connection as down, unless a newer
// connection of the same device has already taken over, and orders a
// takeover (see takeoverWait).
func (h *brokerHook) OnDisconnect(cl *mqtt.Client, _ error, expire bool) {
	id, ok := parseDeviceID(string(cl.Properties.Username))
	if !ok {
		return
	}
	h.mu.Lock()
	c := h.device(id)
	if c.stale == cl {
		c.stale = nil
	}
	succeeded := c.latest != cl
	if !succeeded {
		c.latest = nil
		if expire {
			c.leaving = cl
		}
	}
	if c.live == cl {
		c.live = nil
		if h.b.onConn != nil {
			h.b.onConn(id, false)
		}
	}
	h.mu.Unlock()
	switch {
	case succeeded:
		waitUntil(cl.IsTakenOver)
	case expire:
		// mochi deletes the session right after this returns; then forget
		// the connection rather than keep it reachable.
		go func() {
			waitUntil(func() bool {
				cur, ok := h.b.server.Clients.Get(cl.ID)
				return !ok || cur != cl
			})
			h.mu.Lock()
			defer h.mu.Unlock()
			if c.leaving == cl {
				c.leaving = nil
			}
			if c.latest == nil && c.live == nil && c.leaving == nil && h.conns[id] == c {
				delete(h.conns, id)
			}
		}()
	}
}

// device returns id's entry; h.mu must be held.
func (h *brokerHook) device(id int64) *conns {
	c := h.conns[id]
	if c == nil {
		c = &conns{}
		h.conns[id] = c
	}
	return c
}

// waitUntil polls cond for at most takeoverWait; the waits it serves last
// microseconds (a few instructions in the other connection's goroutine).
func waitUntil(cond func() bool) {
	deadline := time.Now().Add(takeoverWait)
	for !cond() && time.Now().Before(deadline) {
		time.Sleep(50 * time.Microsecond)
	}
}

// pushGuard keeps pushes of one device in order and drops a push older than
// one already made, so a retained desired state never goes backwards.
type pushGuard struct {
	stripes [64]sync.Mutex
	mu      sync.Mutex
	latest  map[int64]int64
}

func (g *pushGuard) do(id, version int64, publish func() error) (skipped bool, err error) {
	s := &g.stripes[uint64(id)%uint64(len(g.stripes))]
	s.Lock()
	defer s.Unlock()
	g.mu.Lock()
	last := g.latest[id]
	g.mu.Unlock()
	if version < last {
		return true, nil
	}
	if err := publish(); err != nil {
		return false, err
	}
	g.mu.Lock()
	if g.latest == nil {
		g.latest = make(map[int64]int64)
	}
	if version > g.latest[id] {
		g.latest[id] = version
	}
	g.mu.Unlock()
	return false, nil
}

// quietHandler demotes two kinds of mochi's records to debug. Its
// message-less warnings: mochi logs every connection that ends without a
// DISCONNECT (a device losing its radio link) as a warning with an empty
// message, which would flood the log of a portal with 1,000s of devices;
// OnConnection reports those instead. And "publish packet error", which
// mochi logs with the whole packet (its payload printed byte by byte) for
// every message the hook does not acknowledge: the hook has logged it
// already, with the device and the cause, and under load — commits timing
// out, every device publishing again — formatting those packets took a third
// of the portal's CPU (docs/reliability.md, Load).
type quietHandler struct{ slog.Handler }

func (h quietHandler) Handle(ctx context.Context, r slog.Record) error {
	if (r.Message == "" && r.Level == slog.LevelWarn) || r.Message == "publish packet error" {
		r.Level = slog.LevelDebug
	}
	if !h.Handler.Enabled(ctx, r.Level) {
		return nil
	}
	return h.Handler.Handle(ctx, r)
}

func (h quietHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return quietHandler{h.Handler.WithAttrs(as)}
}

func (h quietHandler) WithGroup(name string) slog.Handler {
	return quietHandler{h.Handler.WithGroup(name)}
}
