package postgres

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// Changes between instances. A portal wakes its live pages when something
// they show may have changed (web.Hub keys such as "device:12"). With several
// instances on one database, a change committed through one must wake the
// pages served by the others: NotifyChanges sends keys on a PostgreSQL
// NOTIFY channel and ListenChanges hands every key sent, by any instance
// (this one included), to a function. Delivery is best effort, as the hub's
// is: every live page also re-reads the database on a short tick.

// changesChannel is the NOTIFY channel of the hub keys.
const changesChannel = "doorledger_changes"

// maxNotifyPayload is below PostgreSQL's 8000-byte NOTIFY payload limit.
const maxNotifyPayload = 7900

// NotifyChanges sends keys to every instance listening, in as few
// notifications as fit (keys are joined by newlines).
func (db *DB) NotifyChanges(ctx context.Context, keys ...string) error {
	var batch strings.Builder
	send := func() error {
		if batch.Len() == 0 {
			return nil
		}
		_, err := db.pool.Exec(ctx, `SELECT pg_notify($1, $2)`, changesChannel, batch.String())
		batch.Reset()
		return err
	}
	for _, k := range keys {
		if k == "" || strings.Contains(k, "\n") || len(k) > maxNotifyPayload {
			return fmt.Errorf("notify changes: bad key %q", k)
		}
		if batch.Len()+1+len(k) > maxNotifyPayload {
			if err := send(); err != nil {
				return fmt.Errorf("notify changes: %w", err)
			}
		}
		if batch.Len() > 0 {
			batch.WriteByte('\n')
		}
		batch.WriteString(k)
	}
	if err := send(); err != nil {
		return fmt.Errorf("notify changes: %w", err)
	}
	return nil
}

// ListenChanges calls fn with each key any instance notifies, until ctx
// ends. It listens on a connection of its own, not the pool's; when that
// connection fails it connects again (backing off up to five seconds) and
// calls fn("") first: keys sent meanwhile were missed, so a listener
// should re-read what it shows.
func (db *DB) ListenChanges(ctx context.Context, fn func(key string)) error {
	for attempt := 0; ; attempt++ {
		err := db.listenOnce(ctx, fn, attempt > 0)
		if ctx.Err() != nil {
			return nil
		}
		delay := min(time.Duration(1<<min(attempt, 6))*100*time.Millisecond, 5*time.Second)
		if errors.Is(err, errListening) {
			attempt, delay = 0, 100*time.Millisecond // it had worked: retry soon
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(delay):
		}
	}
}

// errListening marks a failure after LISTEN had succeeded.
var errListening = errors.New("listening")

func (db *DB) listenOnce(ctx context.Context, fn func(string), missed bool) error {
	conn, err := pgx.Connect(ctx, db.URL)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if _, err := conn.Exec(ctx, `LISTEN `+changesChannel); err != nil {
		return err
	}
	if missed {
		fn("")
	}
	for {
		n, err := conn.WaitForNotification(ctx)
		if err != nil {
			return fmt.Errorf("%w: %w", errListening, err)
		}
		for _, k := range strings.Split(n.Payload, "\n") {
			fn(k)
		}
	}
}
