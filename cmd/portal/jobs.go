package main

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// job is background work the portal repeats: consent lapses, command
// time-outs, retention. Each run is its own transaction; a failure is logged and
// retried at the next tick, never fatal.
type job struct {
	name  string
	every time.Duration
	run   func(ctx context.Context) error
}

// runJobs runs every job at start and then at its interval, until ctx ends.
// The function it returns waits for the runs in progress to end.
func runJobs(ctx context.Context, log *slog.Logger, jobs ...job) (wait func()) {
	var wg sync.WaitGroup
	for _, j := range jobs {
		wg.Add(1)
		go func(j job) {
			defer wg.Done()
			t := time.NewTicker(j.every)
			defer t.Stop()
			for {
				if err := j.run(ctx); err != nil && ctx.Err() == nil {
					log.Error("background job failed", "job", j.name, "err", err)
				}
				select {
				case <-ctx.Done():
					return
				case <-t.C:
				}
			}
		}(j)
	}
	return wg.Wait
}
