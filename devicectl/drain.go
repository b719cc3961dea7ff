package devicectl

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/eclipse/paho.golang/paho"
)

// Drain takes over the broker session of a portal instance that stopped
// (cfg names its account, client id and share group) and commits what the
// broker queued in it, then ends that session. An instance in a shared
// subscription group keeps its share of the devices' messages in its
// persistent session while it is away: Mosquitto queues them there and does
// not hand them to the rest of the group. Drain resumes the session with an
// expiry of zero, commits every queued message through cfg's services until
// none has come for idle, unsubscribes the session from the group (later
// messages go to the live instances), commits what arrived meanwhile, and
// disconnects: the broker deletes the session, so it queues nothing more
// for the stopped instance, which starts a fresh one when it comes back.
//
// The caller must hold the stopped instance's lease: a live instance
// connecting with the same client id would take its session back.
func Drain(ctx context.Context, cfg ClientConfig, idle time.Duration) (Stats, error) {
	cfg.drain = true
	cfg.OnConnected = nil
	c, err := NewClient(cfg)
	if err != nil {
		return Stats{}, fmt.Errorf("drain %s: %w", cfg.ClientID, err)
	}
	defer c.Close()
	if err := c.cm.AwaitConnection(ctx); err != nil {
		return c.Stats(), fmt.Errorf("drain %s: %w", cfg.ClientID, err)
	}
	if err := c.awaitIdle(ctx, idle); err != nil {
		return c.Stats(), fmt.Errorf("drain %s: %w", cfg.ClientID, err)
	}
	topics := append(SubscriptionFilters(c.share), SubscriptionFilters("")...)
	uctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	_, err = c.cm.Unsubscribe(uctx, &paho.Unsubscribe{Topics: topics})
	cancel()
	if err != nil && !errors.Is(err, context.Canceled) {
		return c.Stats(), fmt.Errorf("drain %s: unsubscribe: %w", cfg.ClientID, err)
	}
	if err := c.awaitIdle(ctx, idle); err != nil {
		return c.Stats(), fmt.Errorf("drain %s: %w", cfg.ClientID, err)
	}
	return c.Stats(), c.Close()
}

// awaitIdle waits until no message is being committed and none started or
// ended for idle.
func (c *Client) awaitIdle(ctx context.Context, idle time.Duration) error {
	tick := time.NewTicker(min(idle/4, 50*time.Millisecond))
	defer tick.Stop()
	for {
		if c.busy.Load() == 0 && time.Since(time.Unix(0, c.last.Load())) >= idle {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
}
