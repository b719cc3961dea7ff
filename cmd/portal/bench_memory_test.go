package main

// The memory benchmark (bench_test.go) and how a process's memory is read.

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"strconv"
	"strings"
	"testing"
	"time"
)

// memFigures is a process's memory after a full collection.
type memFigures struct {
	HeapInuse, StackInuse, Sys, RSS uint64 // bytes
	Goroutines                      int
}

// readMem collects garbage, returns freed memory to the OS, and reads the
// Go runtime's figures and the resident set size from /proc.
func readMem() memFigures {
	runtime.GC()
	debug.FreeOSMemory()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return memFigures{HeapInuse: ms.HeapInuse, StackInuse: ms.StackInuse, Sys: ms.Sys, Goroutines: runtime.NumGoroutine(), RSS: vmRSS()}
}

func mb(n uint64) float64 { return float64(n) / (1 << 20) }

// procStats is what a process holds as it runs, read without a collection.
type procStats struct {
	RSS        uint64 // bytes
	Goroutines int
	FDs        int // open file descriptors (sockets, the database and its WAL, ...)
}

func readStats() procStats {
	s := procStats{Goroutines: runtime.NumGoroutine(), RSS: vmRSS()}
	if fds, err := os.ReadDir("/proc/self/fd"); err == nil {
		s.FDs = len(fds)
	}
	return s
}

// vmRSS reads the process's resident set size from /proc.
func vmRSS() uint64 {
	buf, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(buf), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return kb << 10
		}
	}
	return 0
}

// BenchmarkPortalMemory1000 measures the portal's memory with 1,000 devices
// connected. In the other benchmarks the portal runs in the test process
// through run(), beside the simulators and whatever earlier benchmarks left
// behind; here it runs alone in a child process (the test binary again,
// TestBenchPortalProcess, calling run() through MustStartPortal), the
// simulators in another, and each process reports its own figures. The
// portal's process is then asked to run the 1,000 simulators itself, to show
// what an in-process figure would have counted.
func BenchmarkPortalMemory1000(b *testing.B) {
	w := seedWorld(b)
	reader := openReader(b, w.DataDir)
	for b.Loop() {
		pc := startPortalChild(b, w.DataDir)
		idle := pc.mem(b)

		fl := startChildFleet(b, pc.mqtt, w.Devices)
		awaitCount(b, reader, benchDevices, confirmedQuery)
		time.Sleep(time.Second) // let the connects' last writes and notifications settle
		portal := pc.mem(b)
		fl.Stop()

		pc.send(b, "fleet", w.Devices)
		time.Sleep(time.Second)
		both := pc.mem(b)
		pc.Stop()

		b.ReportMetric(0, "ns/op")
		b.ReportMetric(mb(portal.HeapInuse), "portal-heap-MB")
		b.ReportMetric(mb(portal.StackInuse), "portal-stack-MB")
		b.ReportMetric(mb(portal.RSS), "portal-rss-MB")
		b.ReportMetric(mb(fl.mem.RSS), "sims-proc-rss-MB")
		b.ReportMetric(mb(both.RSS), "portal+sims-rss-MB")
		line := func(what string, m memFigures) {
			b.Logf("%-38s heap in use %5.1f MB, stacks %5.1f MB, Go sys %6.1f MB, RSS %6.1f MB, %5d goroutines",
				what, mb(m.HeapInuse), mb(m.StackInuse), mb(m.Sys), mb(m.RSS), m.Goroutines)
		}
		line("portal process, idle (0 devices):", idle)
		line("portal process, 1,000 devices:", portal)
		line("simulators' process (1,000):", fl.mem)
		line("portal process running the 1,000 sims:", both)
		b.Logf("per connected device, portal: heap %.1f KB, stacks %.1f KB, RSS %.1f KB",
			float64(portal.HeapInuse-min(idle.HeapInuse, portal.HeapInuse))/benchDevices/1024,
			float64(portal.StackInuse-min(idle.StackInuse, portal.StackInuse))/benchDevices/1024,
			float64(portal.RSS-min(idle.RSS, portal.RSS))/benchDevices/1024)
	}
}

// portalChild is a portal running alone in a child process.
type portalChild struct {
	*childProcess
	out       *bufio.Scanner
	url, mqtt string
}

func startPortalChild(b testing.TB, dataDir string) *portalChild {
	b.Helper()
	return startPortalChildOn(b, dataDir, "")
}

// startPortalChildOn is startPortalChild on the PostgreSQL database at
// databaseURL ("": the data directory's SQLite file).
func startPortalChildOn(b testing.TB, dataDir, databaseURL string) *portalChild {
	b.Helper()
	child, stdout := startChild(b, "TestBenchPortalProcess", "DOORLEDGER_BENCH_PORTAL="+dataDir, "DOORLEDGER_BENCH_PORTAL_DATABASE_URL="+databaseURL)
	pc := &portalChild{childProcess: child, out: bufio.NewScanner(stdout)}
	b.Cleanup(pc.Stop)
	pc.url = pc.await(b, "portal http ")
	pc.mqtt = pc.await(b, "portal mqtt ")
	return pc
}

// await reads the child's output up to a line with prefix and returns its rest.
func (pc *portalChild) await(b testing.TB, prefix string) string {
	b.Helper()
	for pc.out.Scan() {
		if rest, ok := strings.CutPrefix(pc.out.Text(), prefix); ok {
			return rest
		}
	}
	b.Fatalf("portal process ended before %q: %v", prefix, pc.out.Err())
	return ""
}

// send gives the child a command, with device lines for "fleet", and waits
// until it is done.
func (pc *portalChild) send(b testing.TB, command string, devs []seededDevice) {
	b.Helper()
	var in bytes.Buffer
	fmt.Fprintln(&in, command)
	if devs != nil {
		writeDevices(&in, devs)
	}
	if _, err := pc.stdin.Write(in.Bytes()); err != nil {
		b.Fatal(err)
	}
	pc.await(b, "portal done "+command)
}

func (pc *portalChild) mem(b testing.TB) memFigures {
	b.Helper()
	if _, err := fmt.Fprintln(pc.stdin, "mem"); err != nil {
		b.Fatal(err)
	}
	var m memFigures
	if _, err := fmt.Sscan(pc.await(b, "portal mem "), &m.HeapInuse, &m.StackInuse, &m.Sys, &m.RSS, &m.Goroutines); err != nil {
		b.Fatal(err)
	}
	return m
}

// TestBenchPortalProcess is the benchmarks' and the load tests' portal
// process, not a test: it starts the portal on the seeded data directory,
// prints its URL and broker URL, and answers "mem" (its memory after a
// collection), "stats" (resident set, goroutines and open files as they are,
// without a collection), "cpuprofile" then a file name and "stopprofile" (a
// CPU profile of the portal alone), and "fleet" (device lines up to "go": run
// those simulators in this process) until stdin closes.
func TestBenchPortalProcess(t *testing.T) {
	dir := os.Getenv("DOORLEDGER_BENCH_PORTAL")
	if dir == "" {
		t.Skip("the memory benchmark's portal process (DOORLEDGER_BENCH_PORTAL=dir)")
	}
	var env map[string]string
	if url := os.Getenv("DOORLEDGER_BENCH_PORTAL_DATABASE_URL"); url != "" {
		env = map[string]string{"DOORLEDGER_DATABASE_URL": url}
	}
	p := MustStartPortalEnv(t, dir, env)
	fmt.Printf("portal http %s\n", p.URL)
	fmt.Printf("portal mqtt %s\n", p.MQTT)
	in := bufio.NewScanner(os.Stdin)
	var profile *os.File
	defer func() {
		if profile != nil {
			pprof.StopCPUProfile()
			profile.Close()
		}
	}()
	for in.Scan() {
		switch in.Text() {
		case "mem":
			m := readMem()
			fmt.Printf("portal mem %d %d %d %d %d\n", m.HeapInuse, m.StackInuse, m.Sys, m.RSS, m.Goroutines)
		case "stats":
			s := readStats()
			fmt.Printf("portal stats %d %d %d\n", s.RSS, s.Goroutines, s.FDs)
		case "cpuprofile":
			// The next line names the file; "stopprofile" ends it.
			if !in.Scan() {
				return
			}
			f, err := os.Create(in.Text())
			if err == nil {
				if err = pprof.StartCPUProfile(f); err != nil {
					f.Close()
				} else {
					profile = f
				}
			}
			fmt.Printf("portal done cpuprofile %v\n", err)
		case "dump":
			// The next line names a directory: the portal's goroutines and
			// its log so far go there.
			if !in.Scan() {
				return
			}
			var g bytes.Buffer
			pprof.Lookup("goroutine").WriteTo(&g, 2)
			err := errors.Join(os.WriteFile(filepath.Join(in.Text(), "goroutines.txt"), g.Bytes(), 0o600),
				os.WriteFile(filepath.Join(in.Text(), "portal.log"), []byte(p.Stderr.String()), 0o600))
			fmt.Printf("portal done dump %v\n", err)
		case "stopprofile":
			if profile != nil {
				pprof.StopCPUProfile()
				profile.Close()
				profile = nil
			}
			fmt.Println("portal done stopprofile")
		case "fleet":
			var devs []seededDevice
			for in.Scan() && in.Text() != "go" {
				var d seededDevice
				if _, err := fmt.Sscan(in.Text(), &d.ID, &d.Secret); err != nil {
					t.Fatalf("bad device line %q", in.Text())
				}
				devs = append(devs, d)
			}
			f := startLocalFleet(t, p.MQTT, devs)
			t.Cleanup(f.Stop)
			fmt.Println("portal done fleet")
		}
	}
}
