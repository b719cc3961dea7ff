//go:build soak

package main

// The soak (issue 19, docs/reliability.md "Soak"): the portal with its 1,000
// simulated devices takes a steady 200 unlock events a second and a revoke
// every second (each device enabled again once its revoke is shown) for an
// hour, while one manager keeps 20 live pages open (reopened when the server
// ends them after 10 minutes, as EventSource does). Every sample period the
// portal's process is read — resident set, goroutines, open file descriptors
// — with the sizes of the write-ahead log and the database; after the
// warm-up they must stay flat. At the end every event is stored exactly
// once, every revoke confirmed and `portal audit verify` passes. Not run by
// CI (build tag soak); run on demand with:
//
//	go test -tags soak -run TestSoak -v -count=1 -timeout 0 ./cmd/portal/
//
// Knobs: DOORLEDGER_SOAK_DURATION (default 1h), DOORLEDGER_SOAK_SAMPLE
// (default 30s), DOORLEDGER_SOAK_RATE (events a second, default 200).

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// soakSample is one reading of the portal's process and data.
type soakSample struct {
	at          time.Duration
	s           procStats
	wal, db     int64
	events      int64 // made so far
	revokes     int   // shown confirmed so far
	revokeP99   time.Duration
	revokeCount int
}

func TestSoak(t *testing.T) {
	duration := soakEnvDuration(t, "DOORLEDGER_SOAK_DURATION", time.Hour)
	every := soakEnvDuration(t, "DOORLEDGER_SOAK_SAMPLE", 30*time.Second)
	rate := 200
	if v := os.Getenv("DOORLEDGER_SOAK_RATE"); v != "" {
		var err error
		if rate, err = strconv.Atoi(v); err != nil || rate <= 0 {
			t.Fatalf("DOORLEDGER_SOAK_RATE=%q: events a second, a positive number", v)
		}
	}
	// The warm-up: a sixth of the run, from 30 s to 10 min.
	warm := min(max(duration/6, 30*time.Second), 10*time.Minute)
	began := time.Now()
	r := startLoadRig(t, 1)
	t.Logf("soak: %s at %d events/s and a revoke a second, sampled every %s, warm-up %s (started %s UTC)",
		duration, rate, every, warm, time.Now().UTC().Format("2006-01-02 15:04"))

	// One manager's 20 live pages: 2 of the building's unlock history (woken
	// by every event of the building), 2 of its lockdown progress, and 16
	// device pages of the first devices the soak revokes.
	lockIdx := r.devicesOf(true)
	var ids []int64
	for _, i := range lockIdx {
		ids = append(ids, r.world.Devices[i].ID)
	}
	ctx, closeStreams := context.WithCancel(context.Background())
	defer closeStreams()
	var streamsWG sync.WaitGroup
	ready := make(chan error, 20)
	vw := r.newViewer(r.managers[0])
	var all []*watched
	for i := range 20 {
		var path string
		switch {
		case i < 2:
			path = fmt.Sprintf("/buildings/%d/unlocks/events", r.world.Lockdown)
		case i < 4:
			path = fmt.Sprintf("/buildings/%d/lockdown/events", r.world.Lockdown)
		default:
			path = fmt.Sprintf("/devices/%d/events", ids[i-4])
		}
		w := &watched{path: path}
		all = append(all, w)
		vw.watch(ctx, &streamsWG, r.bp.URL, w, ready)
	}
	for range all {
		if err := <-ready; err != nil {
			t.Fatalf("open a stream: %v", err)
		}
	}

	prod := produce(r.sims, rate)
	rv := r.revokeLoop(ids, time.Second, true)
	start := time.Now()
	var samples []soakSample
	seen := 0
	tick := time.NewTicker(every)
	defer tick.Stop()
	header := fmt.Sprintf("%8s  %9s  %10s  %5s  %9s  %9s  %9s  %8s  %10s", "t", "RSS MiB", "goroutines", "fds", "WAL MiB", "DB MiB", "events", "revokes", "revoke p99")
	t.Log(header)
	for time.Since(start) < duration {
		<-tick.C
		fresh, n := rv.since(seen)
		seen = n
		s := soakSample{at: time.Since(start), s: r.stats(), wal: r.walSize(), db: fileSize(filepath.Join(r.world.DataDir, "doorledger.db")),
			events: prod.total.Load(), revokes: n, revokeCount: len(fresh)}
		if len(fresh) > 0 {
			_, s.revokeP99 = percentiles(fresh)
		}
		samples = append(samples, s)
		t.Log(s.row())
	}
	revokes, errs := rv.Stop()
	if len(errs) > 0 {
		t.Logf("%d revokes not shown confirmed on their page within %s (the database says below whether they were confirmed), e.g. %v", len(errs), benchWait, errs[0])
	}
	achieved := prod.Stop()
	closeStreams()
	streamsWG.Wait()

	// Flat after the warm-up: the last quarter of the samples after it
	// against the first quarter (medians, so one busy moment does not decide).
	var after []soakSample
	var warmWAL int64
	for _, s := range samples {
		if s.at >= warm {
			after = append(after, s)
		} else {
			warmWAL = max(warmWAL, s.wal)
		}
	}
	if len(after) < 4 {
		t.Fatalf("%d samples after the warm-up: too few to say whether anything grows (run longer or sample more often)", len(after))
	}
	q := len(after) / 4
	first, last := after[:q], after[len(after)-q:]
	med := func(ss []soakSample, f func(soakSample) int64) int64 {
		v := make([]int64, len(ss))
		for i, s := range ss {
			v[i] = f(s)
		}
		slices.Sort(v)
		return v[len(v)/2]
	}
	rss := func(s soakSample) int64 { return int64(s.s.RSS) }
	gor := func(s soakSample) int64 { return int64(s.s.Goroutines) }
	fds := func(s soakSample) int64 { return int64(s.s.FDs) }
	r0, r1 := med(first, rss), med(last, rss)
	g0, g1 := med(first, gor), med(last, gor)
	f0, f1 := med(first, fds), med(last, fds)
	w1 := slices.MaxFunc(after, func(a, b soakSample) int { return int(a.wal - b.wal) }).wal
	t.Logf("after the warm-up (%d samples; medians of the first and last %d): RSS %.1f → %.1f MiB, goroutines %d → %d, fds %d → %d; WAL at most %.1f MiB (%.1f MiB in the warm-up)",
		len(after), q, mb(uint64(r0)), mb(uint64(r1)), g0, g1, f0, f1, mb(uint64(w1)), mb(uint64(warmWAL)))
	if r1 > r0+r0/4+16<<20 {
		t.Errorf("the portal's resident set grew from %.1f to %.1f MiB after the warm-up (bound: +25%% + 16 MiB)", mb(uint64(r0)), mb(uint64(r1)))
	}
	if g1 > g0+25 {
		t.Errorf("the portal's goroutines grew from %d to %d after the warm-up (bound: +25)", g0, g1)
	}
	if f1 > f0+20 {
		t.Errorf("the portal's open files grew from %d to %d after the warm-up (bound: +20)", f0, f1)
	}
	if w1 > 2*warmWAL+16<<20 {
		t.Errorf("the WAL reached %.1f MiB after the warm-up, %.1f MiB in it (bound: twice + 16 MiB): checkpoints fall behind", mb(uint64(w1)), mb(uint64(warmWAL)))
	}

	// Nothing lost.
	stored := prod.checkStored(t, r.bp.reader, benchWait)
	// Every revoke confirmed, or (one not shown in time, then enabled
	// again) replaced by a newer command; none still open.
	r.awaitRevokesClosed(benchWait)
	var cmds, unconfirmed int
	if err := r.bp.reader.QueryRow(`SELECT COUNT(*), COUNT(*) FILTER (WHERE status <> 'confirmed') FROM commands WHERE reason = 'revoked by a manager'`).Scan(&cmds, &unconfirmed); err != nil {
		t.Fatal(err)
	}
	if unconfirmed > len(errs) {
		t.Errorf("%d revokes superseded before they were confirmed, but only %d were not shown in time", unconfirmed, len(errs))
	}
	unconfirmed = 0
	if int64(cmds) != rv.attempts.Load() || unconfirmed != 0 {
		t.Errorf("revoke commands: %d, %d of them unconfirmed; %d revokes clicked", cmds, unconfirmed, rv.attempts.Load())
	}
	reconnects := 0
	for _, w := range all {
		w.mu.Lock()
		reconnects += w.reconnects
		w.mu.Unlock()
	}
	p50, p99 := percentiles(revokes)
	t.Logf("soak: %s; events %.1f/s (%d made, %d not made while behind), %d stored exactly once; %d revokes, all confirmed, click → shown p50 %s p99 %s; %d stream reconnects",
		time.Since(start).Round(time.Second), achieved, prod.total.Load(), prod.skipped.Load(), stored, len(revokes), p50.Round(time.Millisecond), p99.Round(time.Millisecond), reconnects)
	r.stopPortal()
	t.Logf("took %s", time.Since(began).Round(time.Second))
}

// awaitRevokesClosed waits until no revoke is open (every one confirmed or
// replaced by a newer command); past wait it fails, saying for each open
// one what the database and its simulator know of it.
func (r *loadRig) awaitRevokesClosed(wait time.Duration) {
	t := r.tb
	t.Helper()
	const open = `FROM commands cm JOIN devices d ON d.id = cm.device_id
		WHERE cm.reason = 'revoked by a manager' AND cm.status NOT IN ('confirmed', 'superseded')`
	deadline := time.Now().Add(wait)
	for {
		var n int
		if err := r.bp.reader.QueryRow(`SELECT COUNT(*) ` + open).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			return
		}
		if time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	rows, err := r.bp.reader.Query(`SELECT cm.id, cm.device_id, cm.version, cm.status, cm.requested_at, COALESCE(cm.sent_at, ''), cm.attempts, COALESCE(cm.last_error, ''),
		d.desired_version, d.reported_version, COALESCE(d.reported_state, ''), COALESCE(d.last_seen_at, '') ` + open)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var b strings.Builder
	for rows.Next() {
		var id, dev, v, attempts, desired, reported int64
		var status, requested, sent, lastErr, state, seen string
		if err := rows.Scan(&id, &dev, &v, &status, &requested, &sent, &attempts, &lastErr, &desired, &reported, &state, &seen); err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&b, "\n  command %d device %d version %d: %s, requested %s, sent %s, %d attempts %q; device desired v%d, reported %s v%d, last seen %s",
			id, dev, v, status, requested, sent, attempts, lastErr, desired, state, reported, seen)
		for i, w := range r.world.Devices {
			if w.ID == dev {
				sim := r.sims[i]
				fmt.Fprintf(&b, "; simulator connected %v, applied %+v, last report %+v, %d events undelivered", sim.Connected(), sim.Applied(), sim.LastReport(), sim.Undelivered())
			}
		}
	}
	t.Fatalf("revokes still open (neither confirmed nor replaced) %s after the run:%s", wait, b.String())
}

func (s soakSample) row() string {
	p99 := "-"
	if s.revokeCount > 0 {
		p99 = s.revokeP99.Round(time.Millisecond).String()
	}
	return fmt.Sprintf("%8s  %9.1f  %10d  %5d  %9.1f  %9.1f  %9d  %8d  %10s",
		s.at.Round(time.Second), mb(s.s.RSS), s.s.Goroutines, s.s.FDs, mb(uint64(s.wal)), mb(uint64(s.db)), s.events, s.revokes, p99)
}

// since returns the samples from the n-th on, and how many there are in all.
func (rv *revoker) since(n int) ([]time.Duration, int) {
	rv.mu.Lock()
	defer rv.mu.Unlock()
	return slices.Clone(rv.samples[min(n, len(rv.samples)):]), len(rv.samples)
}

func fileSize(path string) int64 {
	fi, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return fi.Size()
}

func soakEnvDuration(t *testing.T, name string, def time.Duration) time.Duration {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		t.Fatalf("%s=%q: a duration such as 1h or 2m", name, v)
	}
	return d
}
