package main

import (
	"context"

	"github.com/doorledger/doorledger/hooks"
)

// startEventDispatcher posts outbound events (issue 16) while this instance
// holds the "event dispatch" lease, so each delivery is attempted by one
// instance at a time; the database wakes it after each commit that queued a
// delivery. The function it returns stops it and waits.
func startEventDispatcher(ctx context.Context, a *app, leases *leaser, allowPrivate bool) (stop func()) {
	disp := &hooks.Dispatcher{Webhooks: a.webhooks, Client: hooks.NewClient(allowPrivate), Logger: a.log}
	a.db.OnEvent(disp.Notify)
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); leases.hold(ctx, "event dispatch", disp.Run) }()
	return func() { cancel(); <-done }
}
