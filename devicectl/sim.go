package devicectl

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	mathrand "math/rand/v2"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/eclipse/paho.golang/autopaho"
	"github.com/eclipse/paho.golang/paho"

	"github.com/doorledger/doorledger"
)

// SimConfig configures a simulated device.
type SimConfig struct {
	// BrokerURL is mqtt://host:port, or mqtts://host:port with TLS.
	BrokerURL string
	TLS       *tls.Config
	DeviceID  int64
	Secret    string
	// ClientID defaults to ClientID(DeviceID), the only one the embedded
	// broker accepts; tests set others to see them refused.
	ClientID string
	// StateDir, if set, keeps the device's applied state and its undelivered
	// events in StateDir/device-{id}.json across restarts.
	StateDir string
	// UnlockEvery is the mean time between simulated door openings
	// (exponentially distributed); 0 means only those asked for with Unlock.
	UnlockEvery time.Duration
	// KeepAlive is the MQTT keep-alive (default 30 s).
	KeepAlive time.Duration
	Logger    *slog.Logger
	// OnApplied, if set, is called after each newly applied desired state, on
	// the device's MQTT goroutine (keep it short).
	OnApplied func(Applied)
	// Stuck, if set, makes a faulty or tampered-with device: it takes each
	// newer desired version but stays in this state, and says so in its
	// report (the portal records such a command as refused).
	Stuck doorledger.DeviceState
}

// Applied is the desired state a device has applied.
type Applied struct {
	State     doorledger.DeviceState `json:"state"`
	Version   int64                  `json:"version"`
	CommandID int64                  `json:"command_id"`
	At        time.Time              `json:"at"`
}

// simState is what a SimDevice persists.
type simState struct {
	DeviceID int64          `json:"device_id"`
	Applied  Applied        `json:"applied"`
	Outbox   []EventMessage `json:"outbox,omitempty"` // events not yet acknowledged, oldest first
}

// SimDevice speaks the device side of the protocol over MQTT 5 (paho
// autopaho): it subscribes to its desired topic, applies newer versions and
// ignores replayed or older ones, reports what it applied on every change and
// every connect, and delivers unlock events at least once with stable ids,
// publishing each again until the broker acknowledges it. One SimDevice costs
// a handful of goroutines and a few tens of KB, so a process can run 1,000s.
type SimDevice struct {
	cfg       SimConfig
	log       *slog.Logger
	server    *url.URL
	statePath string
	desired   string
	reported  string
	events    string

	kick chan struct{} // wakes the sender

	mu        sync.Mutex
	st        simState
	reportDue bool
	lastRep   ReportTimes // the last report acknowledged
	link      *simLink    // current connection manager; nil when offline
	changed   chan struct{}
	cancel    context.CancelFunc
	ctx       context.Context
	done      chan struct{}
}

// simLink is one online period of a SimDevice.
type simLink struct {
	cm        *autopaho.ConnectionManager
	connected bool // connected and subscribed
	// up lasts as long as the current connection. paho forgets in-flight
	// publishes of a session that ends with the connection without telling
	// their callers, who would otherwise wait out the packet timeout.
	up     context.Context
	upDone context.CancelFunc
}

// downLocked marks the connection as gone; d.mu must be held.
func (l *simLink) downLocked() {
	l.connected = false
	if l.upDone != nil {
		l.upDone()
	}
}

// NewSimDevice returns a simulated device, loading its state from
// cfg.StateDir if present. Call Start to connect.
func NewSimDevice(cfg SimConfig) (*SimDevice, error) {
	if cfg.DeviceID <= 0 {
		return nil, errors.New("new sim device: DeviceID must be positive")
	}
	u, err := url.Parse(cfg.BrokerURL)
	if err != nil || u.Host == "" {
		return nil, fmt.Errorf("new sim device %d: bad broker URL %q", cfg.DeviceID, cfg.BrokerURL)
	}
	if cfg.ClientID == "" {
		cfg.ClientID = ClientID(cfg.DeviceID)
	}
	if cfg.KeepAlive <= 0 {
		cfg.KeepAlive = 30 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	d := &SimDevice{
		cfg:      cfg,
		log:      cfg.Logger.With("device", cfg.DeviceID),
		server:   u,
		desired:  DesiredTopic(cfg.DeviceID),
		reported: ReportedTopic(cfg.DeviceID),
		events:   EventsTopic(cfg.DeviceID),
		kick:     make(chan struct{}, 1),
		changed:  make(chan struct{}),
		st:       simState{DeviceID: cfg.DeviceID},
	}
	if cfg.StateDir != "" {
		d.statePath = filepath.Join(cfg.StateDir, "device-"+strconv.FormatInt(cfg.DeviceID, 10)+".json")
		b, err := os.ReadFile(d.statePath)
		switch {
		case errors.Is(err, os.ErrNotExist):
		case err != nil:
			return nil, fmt.Errorf("new sim device %d: %w", cfg.DeviceID, err)
		default:
			if err := json.Unmarshal(b, &d.st); err != nil {
				return nil, fmt.Errorf("new sim device %d: read %s: %w", cfg.DeviceID, d.statePath, err)
			}
		}
	}
	return d, nil
}

// ID returns the device id.
func (d *SimDevice) ID() int64 { return d.cfg.DeviceID }

// Start connects the device and runs it until Stop or until ctx ends. It
// returns at once; the connection is retried in the background.
func (d *SimDevice) Start(ctx context.Context) error {
	d.mu.Lock()
	if d.cancel != nil {
		d.mu.Unlock()
		return fmt.Errorf("start sim device %d: already started", d.cfg.DeviceID)
	}
	d.ctx, d.cancel = context.WithCancel(ctx)
	d.done = make(chan struct{})
	d.mu.Unlock()
	go d.sendLoop()
	return d.Online()
}

// Stop disconnects the device and waits (at most until ctx ends) for its
// goroutines to finish. Undelivered events stay in the state file.
func (d *SimDevice) Stop(ctx context.Context) error {
	err := d.Offline(ctx)
	d.mu.Lock()
	cancel, done := d.cancel, d.done
	d.mu.Unlock()
	if cancel == nil {
		return err
	}
	cancel()
	select {
	case <-done:
	case <-ctx.Done():
		return fmt.Errorf("stop sim device %d: %w", d.cfg.DeviceID, ctx.Err())
	}
	return err
}

// Offline disconnects the device cleanly and keeps it offline until Online.
// Unlocks made meanwhile wait in the outbox.
func (d *SimDevice) Offline(ctx context.Context) error {
	d.mu.Lock()
	l := d.link
	d.link = nil
	if l != nil {
		l.downLocked()
	}
	d.notifyLocked()
	d.mu.Unlock()
	if l == nil || l.cm == nil {
		return nil
	}
	d.log.Info("going offline")
	if err := l.cm.Disconnect(ctx); err != nil {
		return fmt.Errorf("sim device %d offline: %w", d.cfg.DeviceID, err)
	}
	return nil
}

// Online connects the device again after Offline (a no-op when online).
func (d *SimDevice) Online() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.ctx == nil {
		return fmt.Errorf("sim device %d online: not started", d.cfg.DeviceID)
	}
	if d.link != nil {
		return nil
	}
	l := &simLink{}
	cm, err := autopaho.NewConnection(d.ctx, d.clientConfig(l))
	if err != nil {
		return fmt.Errorf("sim device %d online: %w", d.cfg.DeviceID, err)
	}
	l.cm = cm
	d.link = l
	return nil
}

// Interrupt drops the network connection without a DISCONNECT, as a power
// cut or a lost radio link would; the device reconnects by itself.
func (d *SimDevice) Interrupt() {
	d.mu.Lock()
	l := d.link
	d.mu.Unlock()
	if l != nil && l.cm != nil {
		l.cm.TerminateConnectionForTest()
	}
}

// Connected reports whether the device is connected and subscribed.
func (d *SimDevice) Connected() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.link != nil && d.link.connected
}

// Applied returns the desired state the device last applied.
func (d *SimDevice) Applied() Applied {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.st.Applied
}

// ReportTimes says when a report of an applied state was sent: the publish
// started (the device had nothing in flight before it) and its PUBACK came
// (the portal committed it).
type ReportTimes struct {
	Version        int64
	Started, Acked time.Time
}

// LastReport returns the times of the last report acknowledged.
func (d *SimDevice) LastReport() ReportTimes {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.lastRep
}

// Undelivered returns how many unlock events await acknowledgement.
func (d *SimDevice) Undelivered() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.st.Outbox)
}

// AwaitConnected waits until the device is connected and subscribed.
func (d *SimDevice) AwaitConnected(ctx context.Context) error {
	return d.await(ctx, func() bool { return d.link != nil && d.link.connected })
}

// AwaitVersion waits until the device has applied version v or a newer one.
func (d *SimDevice) AwaitVersion(ctx context.Context, v int64) (Applied, error) {
	err := d.await(ctx, func() bool { return d.st.Applied.Version >= v })
	return d.Applied(), err
}

// AwaitDelivered waits until every unlock event and the latest reported state
// have been acknowledged by the broker.
func (d *SimDevice) AwaitDelivered(ctx context.Context) error {
	return d.await(ctx, func() bool { return len(d.st.Outbox) == 0 && !d.reportDue })
}

func (d *SimDevice) await(ctx context.Context, cond func() bool) error {
	for {
		d.mu.Lock()
		ok, ch := cond(), d.changed
		d.mu.Unlock()
		if ok {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("sim device %d: %w", d.cfg.DeviceID, ctx.Err())
		}
	}
}

// notifyLocked wakes every waiter; d.mu must be held.
func (d *SimDevice) notifyLocked() {
	close(d.changed)
	d.changed = make(chan struct{})
}

func (d *SimDevice) wake() {
	select {
	case d.kick <- struct{}{}:
	default:
	}
}

// Unlock records a door opening and queues it for delivery. Empty fields are
// filled in: a new event id, the current time, method "courier_app", and
// result granted when the device is enabled, denied otherwise. It returns the
// event as it will be sent (and sent again, unchanged, until acknowledged).
func (d *SimDevice) Unlock(ev EventMessage) (EventMessage, error) {
	if ev.EventID == "" {
		ev.EventID = newEventID()
	}
	if ev.OccurredAt.IsZero() {
		ev.OccurredAt = time.Now().UTC()
	}
	if ev.Method == "" {
		ev.Method = "courier_app"
	}
	d.mu.Lock()
	if ev.Result == "" {
		ev.Result = doorledger.UnlockDenied
		if d.st.Applied.State == doorledger.StateEnabled {
			ev.Result = doorledger.UnlockGranted
		}
	}
	d.st.Outbox = append(d.st.Outbox, ev)
	err := d.saveLocked()
	d.notifyLocked()
	d.mu.Unlock()
	d.log.Info("unlock", "event_id", ev.EventID, "result", ev.Result, "actor_ref", ev.ActorRef)
	d.wake()
	return ev, err
}

// saveLocked writes the state file, if any; d.mu must be held.
func (d *SimDevice) saveLocked() error {
	if d.statePath == "" {
		return nil
	}
	b, err := json.Marshal(&d.st)
	if err != nil {
		return fmt.Errorf("save sim device %d: %w", d.cfg.DeviceID, err)
	}
	if err := writeFileAtomic(d.statePath, b, 0o600); err != nil {
		return fmt.Errorf("save sim device %d: %w", d.cfg.DeviceID, err)
	}
	return nil
}

func (d *SimDevice) clientConfig(l *simLink) autopaho.ClientConfig {
	receiveMax := uint16(16) // paho allocates a channel of this size per connection (65,535 by default)
	return autopaho.ClientConfig{
		ServerUrls:                    []*url.URL{d.server},
		TlsCfg:                        d.cfg.TLS,
		KeepAlive:                     uint16(min(d.cfg.KeepAlive/time.Second, math.MaxUint16)), // 16 bits of seconds
		CleanStartOnInitialConnection: true,                                                     // the retained desired state is all a device needs
		ReconnectBackoff:              autopaho.NewExponentialBackoff(100*time.Millisecond, 10*time.Second, 500*time.Millisecond, 2),
		ConnectTimeout:                10 * time.Second,
		ConnectUsername:               strconv.FormatInt(d.cfg.DeviceID, 10),
		ConnectPassword:               []byte(d.cfg.Secret),
		ConnectPacketBuilder: func(cp *paho.Connect, _ *url.URL) (*paho.Connect, error) {
			if cp.Properties == nil {
				cp.Properties = &paho.ConnectProperties{}
			}
			cp.Properties.ReceiveMaximum = &receiveMax
			return cp, nil
		},
		OnConnectionUp: func(cm *autopaho.ConnectionManager, _ *paho.Connack) {
			go d.onUp(l, cm)
		},
		OnConnectionDown: func() bool {
			d.mu.Lock()
			if d.link == l {
				l.downLocked()
				d.notifyLocked()
			}
			d.mu.Unlock()
			d.log.Info("connection lost")
			return true
		},
		OnConnectError: func(err error) {
			var ce *autopaho.ConnackError
			if errors.As(err, &ce) {
				d.log.Warn("connection refused", "reason_code", ce.ReasonCode, "reason", ce.Reason)
				return
			}
			d.log.Debug("connect failed", "error", err)
		},
		ClientConfig: paho.ClientConfig{
			ClientID:          d.cfg.ClientID,
			OnPublishReceived: []func(paho.PublishReceived) (bool, error){d.onPublish},
		},
	}
}

// onUp subscribes to the desired topic on a new connection, then reports.
func (d *SimDevice) onUp(l *simLink, cm *autopaho.ConnectionManager) {
	for attempt := 0; ; attempt++ {
		ctx, cancel := context.WithTimeout(d.ctx, 10*time.Second)
		_, err := cm.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: d.desired, QoS: 1}}})
		cancel()
		if err == nil {
			break
		}
		d.log.Warn("subscribe failed", "topic", d.desired, "error", err)
		select {
		case <-d.ctx.Done():
			return
		case <-time.After(retryDelay(attempt)):
		}
		d.mu.Lock()
		current := d.link == l
		d.mu.Unlock()
		if !current {
			return
		}
	}
	d.mu.Lock()
	if d.link != l {
		d.mu.Unlock()
		return
	}
	l.connected = true
	l.up, l.upDone = context.WithCancel(d.ctx)
	d.reportDue = d.st.Applied.Version > 0 // say what we are on every connect
	d.notifyLocked()
	d.mu.Unlock()
	d.log.Info("connected", "broker", d.server.Host)
	d.wake()
}

// onPublish applies a desired state. It runs on paho's receive goroutine and
// returns after the state is applied (and saved), so the PUBACK that paho
// sends afterwards means "applied".
func (d *SimDevice) onPublish(pr paho.PublishReceived) (bool, error) {
	p := pr.Packet
	if p.Topic != d.desired {
		return false, nil
	}
	if len(p.Payload) == 0 { // retained message cleared
		return true, nil
	}
	var ds doorledger.DesiredState
	if err := json.Unmarshal(p.Payload, &ds); err != nil || !ds.State.Valid() || (ds.DeviceID != 0 && ds.DeviceID != d.cfg.DeviceID) {
		d.log.Warn("ignoring malformed desired state", "payload", string(p.Payload), "error", err)
		return true, nil
	}
	d.mu.Lock()
	if ds.Version <= d.st.Applied.Version {
		cur := d.st.Applied.Version
		d.mu.Unlock()
		d.log.Info("ignoring replayed or older desired state", "version", ds.Version, "applied_version", cur)
		return true, nil
	}
	a := Applied{State: ds.State, Version: ds.Version, CommandID: ds.CommandID, At: time.Now().UTC()}
	if d.cfg.Stuck != "" {
		a.State = d.cfg.Stuck
	}
	d.st.Applied = a
	d.reportDue = true
	err := d.saveLocked()
	d.notifyLocked()
	d.mu.Unlock()
	if err != nil {
		d.log.Error("applied state not saved", "error", err)
	}
	d.log.Info("applied desired state", "state", a.State, "version", a.Version, "command", a.CommandID)
	if d.cfg.OnApplied != nil {
		d.cfg.OnApplied(a)
	}
	d.wake()
	return true, nil
}

// sendLoop delivers the reported state and queued events, retrying with
// backoff, and makes up unlocks at the configured rate.
func (d *SimDevice) sendLoop() {
	defer close(d.done)
	var unlockTimer *time.Timer
	var unlockC <-chan time.Time
	if d.cfg.UnlockEvery > 0 {
		unlockTimer = time.NewTimer(d.nextUnlock())
		defer unlockTimer.Stop()
		unlockC = unlockTimer.C
	}
	retry := time.NewTimer(time.Hour)
	retry.Stop()
	defer retry.Stop()
	attempt := 0
	// After a failed publish the events wait out the back-off, even when a
	// new unlock or a new desired state wakes the sender: a report due is
	// sent at once, but a portal that refused the events as busy is not
	// sent them again at every wake-up.
	var holdEvents time.Time
	for {
		retried := false
		select {
		case <-d.ctx.Done():
			return
		case <-d.kick:
		case <-retry.C:
			retried = true
		case <-unlockC:
			if _, err := d.Unlock(EventMessage{ActorRef: "sim-" + newEventID()[:8]}); err != nil {
				d.log.Error("unlock not saved", "error", err)
			}
			unlockTimer.Reset(d.nextUnlock())
		}
		// The retry timer ends the hold: it was set for it.
		events := retried || !time.Now().Before(holdEvents)
		if err := d.flush(events); err != nil {
			d.log.Warn("publish failed; will retry", "error", err, "attempt", attempt+1)
			holdEvents = time.Now().Add(retryDelay(attempt))
			retry.Reset(time.Until(holdEvents))
			attempt++
		} else if events {
			attempt = 0
		}
	}
}

func (d *SimDevice) nextUnlock() time.Duration {
	return time.Duration(mathrand.ExpFloat64()*float64(d.cfg.UnlockEvery)) + time.Millisecond
}

// maxBatch bounds the events sent in one message.
const maxBatch = 100

// flush publishes what is due: the report, then (with events) a batch of
// events. It returns an error when something must be retried.
func (d *SimDevice) flush(events bool) error {
	d.mu.Lock()
	var cm *autopaho.ConnectionManager
	var up context.Context
	if d.link != nil && d.link.connected {
		cm, up = d.link.cm, d.link.up
	}
	reportDue, applied := d.reportDue, d.st.Applied
	var batch []EventMessage
	if events {
		batch = append(batch, d.st.Outbox[:min(len(d.st.Outbox), maxBatch)]...)
	}
	d.mu.Unlock()
	if cm == nil {
		return nil // onUp wakes us
	}

	if reportDue {
		payload, err := json.Marshal(doorledger.ReportedState{DeviceID: d.cfg.DeviceID, State: applied.State, Version: applied.Version, At: time.Now().UTC()})
		if err != nil {
			return fmt.Errorf("encode report: %w", err)
		}
		started := time.Now()
		if err := d.publish(up, cm, d.reported, payload); err != nil {
			return err
		}
		d.mu.Lock()
		d.lastRep = ReportTimes{Version: applied.Version, Started: started, Acked: time.Now()}
		if d.st.Applied.Version == applied.Version {
			d.reportDue = false
			d.notifyLocked()
		}
		d.mu.Unlock()
		d.log.Debug("reported state", "state", applied.State, "version", applied.Version)
	}

	if len(batch) > 0 {
		var payload []byte
		var err error
		if len(batch) == 1 {
			payload, err = json.Marshal(batch[0])
		} else {
			payload, err = json.Marshal(batch)
		}
		if err != nil {
			return fmt.Errorf("encode events: %w", err)
		}
		if err := d.publish(up, cm, d.events, payload); err != nil {
			return err
		}
		d.mu.Lock()
		// Only this goroutine removes from the outbox and Unlock only appends,
		// so the batch is still at its head.
		d.st.Outbox = append([]EventMessage(nil), d.st.Outbox[len(batch):]...)
		err = d.saveLocked()
		more := len(d.st.Outbox) > 0
		d.notifyLocked()
		d.mu.Unlock()
		if err != nil {
			d.log.Error("outbox not saved", "error", err)
		}
		d.log.Debug("events delivered", "count", len(batch))
		if more {
			d.wake()
		}
	}
	return nil
}

// publish sends one QoS 1 message and waits for its PUBACK. A refusal that
// sending again cannot fix (malformed, not authorized) is logged and dropped.
func (d *SimDevice) publish(up context.Context, cm *autopaho.ConnectionManager, topic string, payload []byte) error {
	ctx, cancel := context.WithTimeout(up, 10*time.Second)
	defer cancel()
	pr, err := cm.Publish(ctx, &paho.Publish{QoS: 1, Topic: topic, Payload: payload})
	if err == nil {
		return nil
	}
	if pr != nil {
		switch pr.ReasonCode {
		case 0x87, 0x90, 0x99: // not authorized, topic name invalid, payload format invalid
			reason := ""
			if pr.Properties != nil {
				reason = pr.Properties.ReasonString
			}
			d.log.Error("message refused; dropped", "topic", topic, "reason_code", pr.ReasonCode, "reason", reason)
			return nil
		}
	}
	return fmt.Errorf("publish %s: %w", topic, err)
}

// retryDelay is an exponential backoff with jitter: about 200 ms doubling to 10 s.
func retryDelay(attempt int) time.Duration {
	return backoff(200*time.Millisecond, 10*time.Second, attempt)
}

// newEventID returns a random (version 4) UUID.
func newEventID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}

// writeFileAtomic replaces path with data, so a reader never sees half a file.
func writeFileAtomic(path string, data []byte, perm os.FileMode) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Chmod(perm); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}
