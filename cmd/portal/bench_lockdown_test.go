package main

// The lockdown benchmark (bench_test.go).

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"testing"
	"time"
)

// progressRE reads the lockdown page's n-of-N progress.
var progressRE = regexp.MustCompile(`data-confirmed="(\d+)" data-total="(\d+)"`)

// BenchmarkLockdown500 times a building lockdown of 500 connected devices
// (1,000 connected in all), from the manager's POST until every device has
// confirmed it is disabled: "page" as the manager sees it, on the lockdown
// page's stream (its n-of-N progress reaching 500 of 500); "db" with nobody
// watching, read afterwards from the database (the lockdown transaction's
// clock to the last confirming report's clock).
func BenchmarkLockdown500(b *testing.B) {
	bp := startBenchPortal(b)
	var ids []int64
	for _, d := range bp.world.Devices {
		if d.Building == bp.world.Lockdown {
			ids = append(ids, d.ID)
		}
	}
	if len(ids) != benchLockdownN {
		b.Fatalf("%d devices in the lockdown building, want %d", len(ids), benchLockdownN)
	}
	locked := false
	for _, watched := range []bool{true, false} {
		name := "db"
		if watched {
			name = "page"
		}
		b.Run(name, func(b *testing.B) {
			var shown, dbAll, post, firstConf, perReport []time.Duration
			var events []int
			for b.Loop() {
				if locked {
					b.StopTimer()
					bp.reenable(b, ids)
					b.StartTimer()
				}
				var st *sseStream
				if watched {
					var err error
					if st, err = bp.openStream(fmt.Sprintf("/buildings/%d/lockdown/events", bp.world.Lockdown)); err != nil {
						b.Fatal(err)
					}
					if _, err := st.next(); err != nil {
						b.Fatal(err)
					}
				}
				stopProfile := startTimedProfile(b)
				click := time.Now()
				status, err := bp.post(context.Background(), fmt.Sprintf("/buildings/%d/lockdown", bp.world.Lockdown), false)
				post = append(post, time.Since(click))
				if err != nil || status != http.StatusSeeOther {
					b.Fatalf("lockdown: %d %v", status, err)
				}
				locked = true
				if watched {
					n := 0
					for {
						ev, err := st.next()
						if err != nil {
							b.Fatalf("lockdown stream: %v", err)
						}
						n++
						if m := progressRE.FindStringSubmatch(ev); m != nil && m[1] == m[2] && m[2] == strconv.Itoa(benchLockdownN) {
							break
						}
					}
					shown = append(shown, time.Since(click))
					events = append(events, n)
					st.Close()
				} else {
					// Nobody watches: look rarely, so looking costs nothing; the
					// time is read from the database below.
					for {
						time.Sleep(100 * time.Millisecond)
						var n int
						if err := bp.reader.QueryRow(confirmedQuery+` AND desired_state = 'disabled' AND building_id = ?`, bp.world.Lockdown).Scan(&n); err != nil {
							b.Fatal(err)
						}
						if n == benchLockdownN {
							break
						}
						if time.Since(click) > benchWait {
							b.Fatalf("lockdown: %d of %d confirmed after %s", n, benchLockdownN, benchWait)
						}
					}
				}
				stopProfile()

				var from, first, last string
				if err := bp.reader.QueryRow(`SELECT MIN(requested_at), MIN(confirmed_at), MAX(confirmed_at) FROM commands
					WHERE building_id = ? AND reason = 'building lockdown'
					AND requested_at = (SELECT MAX(requested_at) FROM commands WHERE building_id = ? AND reason = 'building lockdown')`,
					bp.world.Lockdown, bp.world.Lockdown).Scan(&from, &first, &last); err != nil {
					b.Fatal(err)
				}
				t0, err1 := time.Parse(time.RFC3339Nano, from)
				t1, err2 := time.Parse(time.RFC3339Nano, first)
				t2, err3 := time.Parse(time.RFC3339Nano, last)
				if err := errors.Join(err1, err2, err3); err != nil {
					b.Fatal(err)
				}
				dbAll = append(dbAll, t2.Sub(t0))
				firstConf = append(firstConf, t1.Sub(t0))
				perReport = append(perReport, t2.Sub(t1)/(benchLockdownN-1))
			}
			b.StopTimer()
			b.ReportMetric(0, "ns/op")
			if watched {
				b.ReportMetric(slices.Max(shown).Seconds(), "s-page-all-confirmed")
				b.Logf("page shows %d of %d confirmed after %v, in %v stream events", benchLockdownN, benchLockdownN, shown, events)
			}
			b.ReportMetric(slices.Max(dbAll).Seconds(), "s-db-all-confirmed")
			b.Logf("POST answered after %v; first confirmation's clock %v and last's %v after the lockdown's; between them one confirmation every %v",
				post, firstConf, dbAll, perReport)
		})
	}
}
