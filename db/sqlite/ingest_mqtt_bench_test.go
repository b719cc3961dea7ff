package sqlite_test

import (
	"context"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/doorledger/doorledger"
	"github.com/doorledger/doorledger/db/sqlite"
	"github.com/doorledger/doorledger/devicectl"
)

// BenchmarkMQTTIngestVsRaw measures durable ingest over
// MQTT from 100 simulated devices, next to the raw batched SQLite insert of
// the same rows, measured in the same run.
//
//	go test ./db/sqlite/ -run '^$' -bench 'MQTTIngestVsRaw/live' -benchtime 100000x -count 3
//	go test ./db/sqlite/ -run '^$' -bench 'MQTTIngestVsRaw/backlog' -benchtime 200000x -count 3
//
// The portal side is the real one: the embedded broker (devicectl.Broker)
// listening on loopback TCP, db.DeviceService authenticating the devices and
// db.UnlockService as the event sink, on a database file with
// synchronous=FULL. 100 devicectl.SimDevice (MQTT 5, paho), 10 to a
// building, connect to it with their own credentials and publish QoS 1; the
// broker acknowledges a message only after its events are committed. b.N is
// the number of events; every one must be recorded, with no anomaly.
//
//   - live (the figure): each device publishes one event per message, and
//     its next one as soon as the previous one is acknowledged;
//   - backlog: each device has its share of the round queued at once (as
//     after an outage, or traffic faster than the acknowledgements), which
//     SimDevice delivers up to 100 events a message.
//
// Each round (10,000 events live, 50,000 backlog) runs three things one after
// the other, so that all see the same machine load:
//   - transport: the same devices publish as many events, which the sink
//     drops (returns at once): MQTT alone, the ceiling of ingest over MQTT;
//   - mqtt: the events recorded durably;
//   - the floor (rawFloors): the rows the mqtt part committed, read back and
//     inserted into two more databases by a prepared INSERT, one transaction
//     per batch of the size the round's group commits reached, and one per
//     1,000 rows.
//
// The simulated devices run in this process and share its cores with the
// portal: their CPU time counts against both transport and mqtt. Measured
// live, the time an event takes is close to the sum of its transport time
// and its floor time, so serial-bound, the median over rounds of
// raw time / (transport time + raw time), is what the ratio can reach with
// a database path that costs no more than the raw insert.
func BenchmarkMQTTIngestVsRaw(b *testing.B) {
	b.Run("live", func(b *testing.B) { benchMQTTIngest(b, 10000, false) })
	b.Run("backlog", func(b *testing.B) { benchMQTTIngest(b, 50000, true) })
}

func benchMQTTIngest(b *testing.B, round int, backlog bool) {
	wi, devs := benchIngestWorld(b)
	f := newRawFloors(b, devs)
	quiet := slog.New(slog.DiscardHandler)
	devices := sqlite.NewDeviceService(wi.d)
	sink := &switchSink{svc: wi.svc}
	br, err := devicectl.NewBroker(devicectl.BrokerConfig{Addr: "127.0.0.1:0", Devices: devices, Events: sink, Logger: quiet})
	if err != nil {
		b.Fatal(err)
	}
	defer br.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	sims := make([]*devicectl.SimDevice, len(devs))
	for i, id := range devs {
		secret, err := devices.IssueCredential(sys(), id)
		if err != nil {
			b.Fatal(err)
		}
		sims[i], err = devicectl.NewSimDevice(devicectl.SimConfig{BrokerURL: "mqtt://" + br.Addr(), DeviceID: id, Secret: secret, Logger: quiet})
		if err != nil {
			b.Fatal(err)
		}
		if err := sims[i].Start(ctx); err != nil {
			b.Fatal(err)
		}
		defer func(d *devicectl.SimDevice) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			d.Stop(ctx)
		}(sims[i])
	}
	for _, d := range sims {
		if err := d.AwaitConnected(ctx); err != nil {
			b.Fatal(err)
		}
	}

	now := *wi.Now
	var tt, ti time.Duration
	var transport, bound []float64
	b.ResetTimer()
	for done := 0; done < b.N; done += round {
		n := min(round, b.N-done)

		sink.drop.Store(true)
		d := publishRound(ctx, b, sims, func(i int64) doorledger.UnlockEvent {
			ev := benchEvent(now, devs[i%int64(len(devs))], i, int64(b.N))
			ev.EventID = "dropped-" + ev.EventID
			return ev
		}, int64(done), n, backlog)
		if got := sink.dropped.Swap(0); got != int64(n) {
			b.Fatalf("round at %d: transport: the sink saw %d events, want %d", done, got, n)
		}
		tt += d
		dt := d
		transport = append(transport, float64(n)/d.Seconds())

		sink.drop.Store(false)
		groups0, events0 := wi.svc.Stats()
		committed0 := br.Stats().Events
		d = publishRound(ctx, b, sims, func(i int64) doorledger.UnlockEvent {
			return benchEvent(now, devs[i%int64(len(devs))], i, int64(b.N))
		}, int64(done), n, backlog)
		if got := br.Stats().Events - committed0; got != int64(n) {
			b.Fatalf("round at %d: %d events committed, want %d (broker: %+v)", done, got, n, br.Stats())
		}
		ti += d
		groups1, events1 := wi.svc.Stats()
		dRaw := f.round(b, wi, n, d, float64(events1-events0)/float64(groups1-groups0))
		bound = append(bound, dRaw.Seconds()/(dt.Seconds()+dRaw.Seconds()))
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/ti.Seconds(), "mqtt-events/s")
	b.ReportMetric(float64(b.N)/tt.Seconds(), "transport-events/s")
	f.report(b, "mqtt", ti)
	if groups, events := wi.svc.Stats(); groups > 0 {
		b.ReportMetric(float64(events)/float64(groups), "events/commit")
	}
	slices.Sort(bound)
	b.ReportMetric(bound[len(bound)/2], "serial-bound")
	if len(transport) > 1 {
		b.Logf("transport alone, events/s by round: %.0f", transport)
	}
	for _, w := range []*unlockWorld{wi, f.same, f.thousand} {
		if got := w.count(b, `SELECT COUNT(*) FROM unlock_events`); got != b.N {
			b.Fatalf("%d events recorded, want %d", got, b.N)
		}
	}
	if n := wi.count(b, `SELECT COUNT(*) FROM unlock_events WHERE anomalies <> 0`); n != 0 {
		b.Fatalf("%d events flagged: the benchmark should record ordinary events", n)
	}
}

// publishRound has the devices publish events [from, from+n), event i by
// device i mod 100, and returns how long it took until all were
// acknowledged. Live, each device queues one event and waits for its
// acknowledgement before the next; with backlog, it queues all its events
// at once and waits for them all.
func publishRound(ctx context.Context, b *testing.B, sims []*devicectl.SimDevice, event func(i int64) doorledger.UnlockEvent, from int64, n int, backlog bool) time.Duration {
	start := time.Now()
	var wg sync.WaitGroup
	for k, d := range sims {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := from + int64(k); i < from+int64(n); i += int64(len(sims)) {
				ev := event(i)
				if _, err := d.Unlock(devicectl.EventMessage{EventID: ev.EventID, OccurredAt: ev.OccurredAt, Method: ev.Method,
					ActorRef: ev.ActorRef, Result: ev.Result}); err != nil {
					b.Error(err)
					return
				}
				if backlog {
					continue
				}
				if err := d.AwaitDelivered(ctx); err != nil {
					b.Error(err)
					return
				}
			}
			if err := d.AwaitDelivered(ctx); err != nil {
				b.Error(err)
			}
		}()
	}
	wg.Wait()
	if b.Failed() {
		b.FailNow()
	}
	return time.Since(start)
}

// switchSink records events through the unlock service, or, while drop is
// set, drops them at once: MQTT alone, without the database.
type switchSink struct {
	svc     *sqlite.UnlockService
	drop    atomic.Bool
	dropped atomic.Int64
}

func (s *switchSink) RecordUnlocks(ctx context.Context, evs []doorledger.UnlockEvent) error {
	if s.drop.Load() {
		s.dropped.Add(int64(len(evs)))
		return nil
	}
	return s.svc.RecordUnlocks(ctx, evs)
}
