package devicectl_test

import (
	"context"
	"runtime"
	"slices"
	"testing"
	"time"

	"github.com/doorledger/doorledger"
	"github.com/doorledger/doorledger/devicectl"
)

// benchPortal accepts every device and signals each committed report.
type benchPortal struct{ reports chan doorledger.ReportedState }

func (p *benchPortal) AuthenticateDevice(context.Context, int64, string) error { return nil }
func (p *benchPortal) ReportState(_ context.Context, r doorledger.ReportedState) error {
	p.reports <- r
	return nil
}
func (p *benchPortal) RecordUnlocks(context.Context, []doorledger.UnlockEvent) error { return nil }

// BenchmarkRoundTrip measures one command's round trip through the embedded
// broker: Push (in-process, retained, QoS 1) → a SimDevice over loopback TCP
// applies it → its report comes back through the broker hook to ReportState.
// It is the floor under the portal's own revoke benchmark (which adds the
// database on both ends). ns/op is the mean; p50/p99 are per round trip.
func BenchmarkRoundTrip(b *testing.B) {
	p := &benchPortal{reports: make(chan doorledger.ReportedState, 16)}
	br, err := devicectl.NewBroker(devicectl.BrokerConfig{Addr: "127.0.0.1:0", Devices: p, Events: p, Logger: testLogger()})
	if err != nil {
		b.Fatal(err)
	}
	defer br.Close()
	d := MustSim(b, br.Addr(), devicectl.SimConfig{DeviceID: 1, Secret: "x"})
	if err := d.AwaitConnected(waitCtx(b)); err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	lat := make([]time.Duration, 0, b.N)
	states := [2]doorledger.DeviceState{doorledger.StateEnabled, doorledger.StateDisabled}
	b.ResetTimer()
	for i := range b.N {
		v := int64(i + 1)
		start := time.Now()
		if err := br.Push(ctx, doorledger.DesiredState{DeviceID: 1, CommandID: v, State: states[i%2], Version: v}); err != nil {
			b.Fatal(err)
		}
		for r := range p.reports {
			if r.Version == v {
				break
			}
		}
		lat = append(lat, time.Since(start))
	}
	b.StopTimer()
	reportPercentiles(b, lat)
}

// BenchmarkRoundTripFleet pushes to 100 connected devices at once and waits
// for all their reports: the fan-out a building-wide revoke needs.
func BenchmarkRoundTripFleet(b *testing.B) {
	const n = 100
	p := &benchPortal{reports: make(chan doorledger.ReportedState, n)}
	br, err := devicectl.NewBroker(devicectl.BrokerConfig{Addr: "127.0.0.1:0", Devices: p, Events: p, Logger: testLogger()})
	if err != nil {
		b.Fatal(err)
	}
	defer br.Close()
	for id := int64(1); id <= n; id++ {
		d := MustSim(b, br.Addr(), devicectl.SimConfig{DeviceID: id, Secret: "x"})
		if err := d.AwaitConnected(waitCtx(b)); err != nil {
			b.Fatal(err)
		}
	}
	ctx := context.Background()
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := range b.N {
		v := int64(i + 1)
		start := time.Now()
		for id := int64(1); id <= n; id++ {
			if err := br.Push(ctx, doorledger.DesiredState{DeviceID: id, State: doorledger.StateDisabled, Version: v}); err != nil {
				b.Fatal(err)
			}
		}
		for got := 0; got < n; {
			if r := <-p.reports; r.Version == v {
				got++
			}
		}
		lat = append(lat, time.Since(start))
	}
	b.StopTimer()
	reportPercentiles(b, lat)
}

func reportPercentiles(b *testing.B, lat []time.Duration) {
	slices.Sort(lat)
	pct := func(q float64) float64 {
		return float64(lat[min(len(lat)-1, int(q*float64(len(lat))))].Microseconds())
	}
	b.ReportMetric(pct(0.50), "p50-µs")
	b.ReportMetric(pct(0.99), "p99-µs")
}

// TestThousandDevices runs 1,000 simulated devices in this process against
// the embedded broker: all connect, a revoke reaches every one and every
// report comes back. It logs the cost (goroutines, heap) per device.
func TestThousandDevices(t *testing.T) {
	if testing.Short() {
		t.Skip("skipped in -short: 1,000 TCP connections")
	}
	const n = 1000
	p := &benchPortal{reports: make(chan doorledger.ReportedState, n)}
	br, err := devicectl.NewBroker(devicectl.BrokerConfig{Addr: "127.0.0.1:0", Devices: p, Events: p, Logger: testLogger()})
	if err != nil {
		t.Fatal(err)
	}
	defer br.Close()
	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	g0 := runtime.NumGoroutine()

	devs := make([]*devicectl.SimDevice, n)
	for i := range devs {
		devs[i] = MustSim(t, br.Addr(), devicectl.SimConfig{DeviceID: int64(i + 1), Secret: "x", Logger: testLogger()})
	}
	for _, d := range devs {
		if err := d.AwaitConnected(waitCtx(t)); err != nil {
			t.Fatal(err)
		}
	}
	start := time.Now()
	for i := range devs {
		mustPush(t, br, int64(i+1), doorledger.StateDisabled, 1)
	}
	seen := make(map[int64]bool, n)
	timeout := time.After(waitTimeout)
	for len(seen) < n {
		select {
		case r := <-p.reports:
			seen[r.DeviceID] = true
		case <-timeout:
			t.Fatalf("%d of %d devices reported", len(seen), n)
		}
	}
	elapsed := time.Since(start)
	runtime.GC()
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	g := runtime.NumGoroutine() - g0
	t.Logf("%d devices (both sides of each connection in this process): %d goroutines (%.1f per device), heap +%.1f MiB (%.0f KiB per device); revoke of all %d confirmed in %s",
		n, g, float64(g)/n, float64(after.HeapInuse-before.HeapInuse)/(1<<20), float64(after.HeapInuse-before.HeapInuse)/1024/n, n, elapsed.Round(time.Millisecond))
	if got := br.Stats().Connects; got != n {
		t.Errorf("connects = %d", got)
	}
}
