package devicectl

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	"github.com/eclipse/paho.golang/autopaho"
	"github.com/eclipse/paho.golang/paho"

	"github.com/doorledger/doorledger"
)

// DefaultPortalClientID is the client id (and, with Mosquitto's
// use_username_as_clientid, the username) of the portal's service account.
const DefaultPortalClientID = "doorledger-portal"

// DefaultSessionExpiry is how long an external broker keeps the portal's
// session, and queues devices' messages for it, while the portal is away.
const DefaultSessionExpiry = 7 * 24 * time.Hour

// ClientConfig configures the external-broker transport.
type ClientConfig struct {
	// URL is the broker: mqtt://host:1883, or mqtts://host:8883 with TLS.
	URL string
	TLS *tls.Config
	// Username and Password are the portal's service account, which may read
	// and write doorledger/devices/#.
	Username string
	Password string
	// ClientID must stay the same across restarts, so the broker hands the
	// portal the session (and the messages queued in it) it left behind.
	// Default DefaultPortalClientID. Run one portal process per ClientID.
	ClientID string
	// SessionExpiry is how long the broker keeps the session while the portal
	// is disconnected (default DefaultSessionExpiry).
	SessionExpiry time.Duration
	// ShareGroup, when set, subscribes through MQTT 5 shared subscriptions
	// ($share/ShareGroup/…): several portal instances, each with its own
	// account and ClientID in the same group, each receive a share of the
	// devices' messages, so every report and event is processed once.
	ShareGroup string

	// Devices and Events receive what devices send; both must commit before
	// returning nil, as the message is acknowledged only after that.
	Devices doorledger.DeviceReports
	Events  doorledger.EventSink

	// OnConnected, if set, is called in its own goroutine after every
	// (re)connection, once the subscriptions are in place. A broker that lost
	// its retained messages (restarted without persistence) needs the portal
	// to push the desired state of every device again.
	OnConnected func()

	// CallTimeout bounds each ReportState and RecordUnlocks call (default
	// DefaultCallTimeout).
	CallTimeout time.Duration
	Logger      *slog.Logger

	// drain: connect to resume the session only (no subscribing), and let
	// the broker end it when the connection closes (Drain).
	drain bool
}

// Client is the transport for an external MQTT 5 broker (Mosquitto, EMQX,
// HiveMQ). It publishes desired state retained at QoS 1, and receives reported
// state and unlock events through a persistent session with manual
// acknowledgement: a message is acknowledged only after ReportState or
// RecordUnlocks returned nil, and a message not acknowledged when the portal
// stops is delivered again when it comes back.
type Client struct {
	cm     *autopaho.ConnectionManager
	up     atomic.Bool // connected to the broker, for readiness
	in     ingester
	stats  counters
	guard  pushGuard
	log    *slog.Logger
	onConn func()
	share  string
	drain  bool
	// busy counts messages being committed; last is when one last started
	// or ended (UnixNano): Drain waits until neither moves.
	busy   atomic.Int64
	last   atomic.Int64
	ctx    context.Context
	cancel context.CancelFunc
}

var _ doorledger.Transport = (*Client)(nil)

// NewClient starts connecting to the broker and returns at once; the
// connection is kept up (and retried) until Close.
func NewClient(cfg ClientConfig) (*Client, error) {
	if cfg.Devices == nil || cfg.Events == nil {
		return nil, errors.New("new client: Devices and Events are required")
	}
	u, err := url.Parse(cfg.URL)
	if err != nil || u.Host == "" {
		return nil, fmt.Errorf("new client: bad broker URL %q", cfg.URL)
	}
	if cfg.ClientID == "" {
		cfg.ClientID = DefaultPortalClientID
	}
	if strings.ContainsAny(cfg.ShareGroup, "/+#") {
		return nil, fmt.Errorf("new client: bad share group %q", cfg.ShareGroup)
	}
	if cfg.SessionExpiry <= 0 {
		cfg.SessionExpiry = DefaultSessionExpiry
	}
	if cfg.CallTimeout <= 0 {
		cfg.CallTimeout = DefaultCallTimeout
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	ctx, cancel := context.WithCancel(context.Background())
	c := &Client{
		share:  cfg.ShareGroup,
		drain:  cfg.drain,
		log:    cfg.Logger.With("component", "mqtt-client", "client_id", cfg.ClientID),
		onConn: cfg.OnConnected,
		ctx:    ctx,
		cancel: cancel,
	}
	c.in = ingester{devices: cfg.Devices, events: cfg.Events, timeout: cfg.CallTimeout, stats: &c.stats}

	receiveMax := uint16(256)                                            // unacknowledged messages the broker may send at once
	expiry := uint32(min(cfg.SessionExpiry/time.Second, math.MaxUint32)) // MQTT's field is 32 bits of seconds
	if cfg.drain {
		expiry = 0 // the session ends with this connection
	}
	c.cm, err = autopaho.NewConnection(ctx, autopaho.ClientConfig{
		ServerUrls:                    []*url.URL{u},
		TlsCfg:                        cfg.TLS,
		KeepAlive:                     30,
		CleanStartOnInitialConnection: false, // resume the session left at the last stop
		SessionExpiryInterval:         expiry,
		ReconnectBackoff:              autopaho.NewExponentialBackoff(100*time.Millisecond, 10*time.Second, 500*time.Millisecond, 2),
		ConnectUsername:               cfg.Username,
		ConnectPassword:               []byte(cfg.Password),
		ConnectPacketBuilder: func(cp *paho.Connect, _ *url.URL) (*paho.Connect, error) {
			if cp.Properties == nil {
				cp.Properties = &paho.ConnectProperties{}
			}
			cp.Properties.ReceiveMaximum = &receiveMax
			return cp, nil
		},
		OnConnectionUp: func(cm *autopaho.ConnectionManager, ca *paho.Connack) {
			c.log.Info("connected to broker", "broker", u.Host, "session_present", ca.SessionPresent)
			c.up.Store(true)
			c.last.Store(time.Now().UnixNano())
			if !c.drain {
				go c.onUp(cm)
			}
		},
		OnConnectionDown: func() bool {
			c.up.Store(false)
			c.log.Warn("connection to broker lost", "broker", u.Host)
			return true
		},
		OnConnectError: func(err error) {
			c.up.Store(false)
			c.log.Warn("connect to broker failed", "broker", u.Host, "error", err)
		},
		ClientConfig: paho.ClientConfig{
			ClientID:                   cfg.ClientID,
			EnableManualAcknowledgment: true,
			OnPublishReceived:          []func(paho.PublishReceived) (bool, error){c.onPublish},
		},
	})
	if err != nil {
		cancel()
		return nil, fmt.Errorf("new client: %w", err)
	}
	return c, nil
}

// AwaitConnection waits until the client is connected to the broker.
func (c *Client) AwaitConnection(ctx context.Context) error {
	return c.cm.AwaitConnection(ctx)
}

// Connected reports whether the client is connected to the broker now: false
// from the moment the connection is lost until the broker accepts it again.
func (c *Client) Connected() bool { return c.up.Load() }

// Stats returns the message counters (the connection counters stay zero).
func (c *Client) Stats() Stats { return c.stats.snapshot() }

// Push publishes d as its device's retained desired state at QoS 1 and returns
// once the broker acknowledged it. While the broker is unreachable it waits,
// until ctx ends. Pushing an older version than one already pushed is a no-op.
// EINVALID when d is not a valid desired state.
func (c *Client) Push(ctx context.Context, d doorledger.DesiredState) error {
	payload, err := MarshalDesired(d)
	if err != nil {
		return err
	}
	_, err = c.guard.do(d.DeviceID, d.Version, func() error {
		for attempt := 0; ; attempt++ {
			if err := c.cm.AwaitConnection(ctx); err != nil {
				return err
			}
			pr, err := c.cm.Publish(ctx, &paho.Publish{QoS: 1, Retain: true, Topic: DesiredTopic(d.DeviceID), Payload: payload})
			switch {
			case err == nil:
				return nil
			case pr != nil, errors.Is(err, paho.ErrInvalidArguments): // the broker said no
				return err
			case ctx.Err() != nil:
				return ctx.Err()
			case c.ctx.Err() != nil:
				return errors.New("client closed")
			}
			// The connection went down under the publish (paho says "no
			// connection available", or the packet timed out): publish
			// again on the next one; a duplicate retained message is harmless.
			c.log.Warn("push failed; retrying", "device", d.DeviceID, "version", d.Version, "error", err)
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(retryDelay(attempt)):
			}
		}
	})
	if err != nil {
		return fmt.Errorf("push device %d version %d: %w", d.DeviceID, d.Version, err)
	}
	return nil
}

// Close disconnects from the broker. Messages not yet committed stay
// unacknowledged in the broker's session and come again at the next start.
func (c *Client) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c.cancel()
	select {
	case <-c.cm.Done():
		return nil
	case <-ctx.Done():
		return fmt.Errorf("close client: %w", ctx.Err())
	}
}

// SubscriptionFilters are the topic filters the portal subscribes to: every
// device's reported and events topics, through the shared subscription
// group when there is one.
func SubscriptionFilters(shareGroup string) []string {
	prefix := ""
	if shareGroup != "" {
		prefix = "$share/" + shareGroup + "/"
	}
	return []string{prefix + TopicPrefix + "+/" + KindReported, prefix + TopicPrefix + "+/" + KindEvents}
}

// onUp subscribes to every device's reported and events topics. With a
// resumed session the subscriptions already exist; subscribing again is
// harmless and covers a broker that lost them. A session that subscribed
// without the share group before (one instance, then several) drops those
// plain subscriptions, or it would receive every message besides its share.
func (c *Client) onUp(cm *autopaho.ConnectionManager) {
	sub := &paho.Subscribe{}
	for _, f := range SubscriptionFilters(c.share) {
		sub.Subscriptions = append(sub.Subscriptions, paho.SubscribeOptions{Topic: f, QoS: 1})
	}
	for attempt := 0; ; attempt++ {
		ctx, cancel := context.WithTimeout(c.ctx, 10*time.Second)
		_, err := cm.Subscribe(ctx, sub)
		if err == nil && c.share != "" {
			// "No subscription existed" (0x11) is a success code.
			_, err = cm.Unsubscribe(ctx, &paho.Unsubscribe{Topics: SubscriptionFilters("")})
		}
		cancel()
		if err == nil {
			break
		}
		c.log.Error("subscribe failed", "error", err)
		select {
		case <-c.ctx.Done():
			return
		case <-time.After(retryDelay(attempt)):
		}
	}
	if c.onConn != nil {
		c.onConn()
	}
}

// onPublish commits one device message, then acknowledges it. While the
// services fail it retries in place (holding back later messages, whose
// acknowledgements MQTT requires in order) until they succeed, the
// connection drops, or the client closes; an unacknowledged message comes
// again on the next connection. Events refused because the disk is full are
// retried aside instead, so that devices' reports still get through.
func (c *Client) onPublish(pr paho.PublishReceived) (bool, error) {
	c.busy.Add(1)
	c.last.Store(time.Now().UnixNano())
	defer func() {
		c.last.Store(time.Now().UnixNano())
		c.busy.Add(-1)
	}()
	p := pr.Packet
	id, kind, ok := ParseTopic(p.Topic)
	if !ok || kind == KindDesired {
		c.log.Warn("message on unexpected topic dropped", "topic", p.Topic)
		c.ack(pr)
		return true, nil
	}
	out, err := c.in.ingest(c.ctx, id, kind, p.Payload)
	if out == failed && kind == KindEvents && doorledger.ErrorCode(err) == doorledger.EUNAVAILABLE {
		// The disk is full or ingest is busy (sqlite.UnlockService.MaxQueued):
		// events wait, but the reports behind
		// them (a revoke's confirmation) must not wait with them. The events
		// are retried aside; paho still sends the acknowledgements in the
		// order the messages came (its acksTracker), whatever order they
		// are committed in, and ingest of events is idempotent.
		// Debug: while the disk is full or ingest is busy, every message
		// comes this way (the portal logs the episode itself).
		c.log.Debug("device events refused for now; retrying aside", "device", id, "error", err)
		go c.settle(pr, id, kind, out, err)
		return true, nil
	}
	c.settle(pr, id, kind, out, err)
	return true, nil
}

// settle acknowledges a message once committed (or refused for good),
// trying it again while the services fail, until the connection drops or the
// client closes.
func (c *Client) settle(pr paho.PublishReceived, id int64, kind string, out outcome, err error) {
	p := pr.Packet
	for attempt := 0; ; attempt++ {
		if attempt > 0 {
			out, err = c.in.ingest(c.ctx, id, kind, p.Payload)
		}
		switch out {
		case committed:
			c.ack(pr)
			return
		case rejected:
			c.log.Warn("device message refused", "device", id, "topic", p.Topic, "error", err)
			c.ack(pr)
			return
		}
		if doorledger.ErrorCode(err) != doorledger.EUNAVAILABLE {
			c.log.Error("device message not committed; retrying", "device", id, "topic", p.Topic, "attempt", attempt+1, "error", err)
		}
		select {
		case <-c.ctx.Done():
			return
		case <-pr.Client.Done():
			return
		case <-time.After(retryDelay(attempt)):
		}
	}
}

func (c *Client) ack(pr paho.PublishReceived) {
	if err := pr.Client.Ack(pr.Packet); err != nil {
		c.log.Warn("acknowledge failed", "topic", pr.Packet.Topic, "error", err)
	}
}
