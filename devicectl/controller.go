package devicectl

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/doorledger/doorledger"
)

// Store is what the controller needs of the portal's database, the source of
// truth for desired state (implemented by db.DeviceService).
type Store interface {
	// PendingDesired returns every device's current desired state, to re-publish at start.
	PendingDesired(ctx context.Context) ([]doorledger.DesiredState, error)
	// MarkSentMany records that the transport took the commands of these
	// desired states, now. It may hold the records briefly and write them with
	// the device's next report (db.DeviceService does), so that recording
	// "sent" never delays the device's confirmation.
	MarkSentMany(ctx context.Context, sent []doorledger.DesiredState) error
	// FlushSent writes the delivery records still held; called when the
	// controller stops.
	FlushSent(ctx context.Context) error
	// MarkSent records one attempt; with sendErr the failure is kept on the command.
	MarkSent(ctx context.Context, commandID int64, sendErr error) error
	// ExpireUnconfirmed marks commands unconfirmed past timeout (alerting the
	// managers once) and returns every unconfirmed command, to retry.
	ExpireUnconfirmed(ctx context.Context, timeout time.Duration) ([]doorledger.DesiredState, error)
}

// Controller pushes desired state to devices. Commands are desired state, not
// fire-and-forget: the database records them first; the controller publishes
// what was committed (Enqueue, called after commit), re-publishes everything at
// start (retained, so offline devices get it when they reconnect), and retries
// what the devices have not confirmed within Timeout.
type Controller struct {
	Store     Store
	Transport doorledger.Transport
	Logger    *slog.Logger
	// Timeout is how long a device may take to confirm before its command is
	// "not confirmed", retried and alerted (default 30 s).
	Timeout time.Duration
	// RetryEvery is how often unconfirmed commands are looked for (default 5 s).
	RetryEvery time.Duration
	// Workers push in parallel (default 8): a lockdown of hundreds of devices
	// must not wait on one slow publish.
	Workers int
	// Retrying reports whether this instance retries unconfirmed commands
	// now: with several instances on one database, only the one holding the
	// command retries' lease does (cmd/portal). Nil: always.
	Retrying func() bool

	mu      sync.Mutex
	queue   []doorledger.DesiredState
	wake    chan struct{}
	started chan struct{}
	once    sync.Once
}

func (c *Controller) init() {
	c.once.Do(func() {
		c.wake = make(chan struct{}, 1)
		c.started = make(chan struct{})
		if c.Timeout == 0 {
			c.Timeout = 30 * time.Second
		}
		if c.RetryEvery == 0 {
			c.RetryEvery = 5 * time.Second
		}
		if c.Workers == 0 {
			c.Workers = 8
		}
		if c.Logger == nil {
			c.Logger = slog.Default()
		}
	})
}

// Enqueue hands committed desired states to the controller; it never blocks, so
// it can be the database's after-commit hook.
func (c *Controller) Enqueue(states []doorledger.DesiredState) {
	c.init()
	c.mu.Lock()
	c.queue = append(c.queue, states...)
	c.mu.Unlock()
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// Run re-publishes every device's desired state, then pushes what is enqueued
// and retries what is unconfirmed, until ctx ends.
func (c *Controller) Run(ctx context.Context) error {
	c.init()
	all, err := c.Store.PendingDesired(ctx)
	if err != nil {
		return err
	}
	c.push(ctx, all, false)
	c.Logger.Info("desired state re-published", "devices", len(all))
	close(c.started)
	retry := time.NewTicker(c.RetryEvery)
	defer retry.Stop()
	for {
		select {
		case <-ctx.Done():
			fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			defer cancel()
			if err := c.Store.FlushSent(fctx); err != nil {
				c.Logger.Error("record pushed commands", "err", err)
			}
			return nil
		case <-c.wake:
			c.mu.Lock()
			batch := c.queue
			c.queue = nil
			c.mu.Unlock()
			c.push(ctx, batch, true)
		case <-retry.C:
			if c.Retrying != nil && !c.Retrying() {
				continue
			}
			again, err := c.Store.ExpireUnconfirmed(ctx, c.Timeout)
			if err != nil {
				if ctx.Err() == nil {
					c.Logger.Error("expire unconfirmed commands", "err", err)
				}
				continue
			}
			if len(again) > 0 {
				c.Logger.Warn("retrying unconfirmed commands", "count", len(again))
				c.push(ctx, again, true)
			}
		}
	}
}

// Started is closed once the start-up re-publish is done.
func (c *Controller) Started() <-chan struct{} {
	c.init()
	return c.started
}

// push publishes states with a few workers (one state: on this goroutine)
// and records the outcome: the sent ones together, each failure on its own
// command.
func (c *Controller) push(ctx context.Context, states []doorledger.DesiredState, record bool) {
	if len(states) == 0 {
		return
	}
	var mu sync.Mutex
	var sent []doorledger.DesiredState
	pushOne := func(d doorledger.DesiredState) {
		if err := c.Transport.Push(ctx, d); err != nil {
			c.Logger.Warn("push desired state", "device", d.DeviceID, "version", d.Version, "err", err)
			if record && d.CommandID != 0 {
				if merr := c.Store.MarkSent(ctx, d.CommandID, err); merr != nil && ctx.Err() == nil {
					c.Logger.Error("record failed push", "command", d.CommandID, "err", merr)
				}
			}
			return
		}
		if d.CommandID != 0 {
			mu.Lock()
			sent = append(sent, d)
			mu.Unlock()
		}
	}
	if len(states) == 1 {
		pushOne(states[0])
	} else {
		jobs := make(chan doorledger.DesiredState)
		var wg sync.WaitGroup
		for i := 0; i < min(c.Workers, len(states)); i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for d := range jobs {
					pushOne(d)
				}
			}()
		}
		for _, d := range states {
			jobs <- d
		}
		close(jobs)
		wg.Wait()
	}
	if record && len(sent) > 0 {
		if err := c.Store.MarkSentMany(ctx, sent); err != nil && ctx.Err() == nil {
			c.Logger.Error("record pushed commands", "count", len(sent), "err", err)
		}
	}
}
