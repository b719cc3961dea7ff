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
	"runtime/metrics"
	"runtime/pprof"
	"strconv"
	"strings"
	"testing"
	"time"
)

// memFigures is a process's memory at rest: after collections until the
// goroutine stacks stop shrinking (readMem).
type memFigures struct {
	HeapInuse, StackInuse, Sys, RSS uint64 // bytes
	Goroutines                      int
	// StackScanned is the part of the goroutine stacks in use, as the last
	// collection scanned it; StackStart the size a new goroutine's stack
	// starts at (adaptive: the average scanned stack, rounded up to a power
	// of 2, at the last collection).
	StackScanned, StackStart uint64
	// Steps are the stacks and the resident set after each collection: the
	// first is what one collection leaves, the last the steady state.
	Steps []memStep
}

// memStep is a process's memory after one more collection.
type memStep struct{ StackInuse, HeapInuse, RSS uint64 }

// maxCollections bounds readMem's collections: Go halves a goroutine's
// stack at most once a collection, so a stack grown to 64 KB and used a
// little needs five to come back to 2 KB.
const maxCollections = 8

// readMem collects garbage and returns freed memory to the OS until the
// goroutine stacks stop shrinking (at most maxCollections times), and reads
// the Go runtime's figures and the resident set size from /proc. Go shrinks a
// stack only at a collection, by half and only while less than a quarter of
// it is in use, so one or two collections right after stacks grew (devices
// connecting, their first reports waiting for a commit) measure a transient
// the portal leaves behind by itself within a minute at rest, through its own
// collections (docs/benchmarks.md, "Portal RSS").
func readMem() memFigures {
	var m memFigures
	var ms runtime.MemStats
	for i := range maxCollections {
		debug.FreeOSMemory() // a collection, then freed memory back to the OS
		runtime.ReadMemStats(&ms)
		m.Steps = append(m.Steps, memStep{StackInuse: ms.StackInuse, HeapInuse: ms.HeapInuse, RSS: vmRSS()})
		if i > 0 && ms.StackInuse > m.Steps[i-1].StackInuse/100*99 { // shrank by less than 1%
			break
		}
	}
	samples := []metrics.Sample{{Name: "/gc/scan/stack:bytes"}, {Name: "/gc/stack/starting-size:bytes"}}
	metrics.Read(samples)
	last := m.Steps[len(m.Steps)-1]
	m.HeapInuse, m.StackInuse, m.Sys, m.RSS, m.Goroutines = last.HeapInuse, last.StackInuse, ms.Sys, last.RSS, runtime.NumGoroutine()
	m.StackScanned, m.StackStart = samples[0].Value.Uint64(), samples[1].Value.Uint64()
	return m
}

// String tells the figures, with the stacks and RSS after each collection.
func (m memFigures) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "RSS %.1f MiB, heap in use %.1f MiB, stacks %.1f MiB (%.1f KB a goroutine, %.1f KB of it in use; new ones start at %d B), Go sys %.1f MiB, %d goroutines; after collection",
		mb(m.RSS), mb(m.HeapInuse), mb(m.StackInuse), float64(m.StackInuse)/float64(max(1, m.Goroutines))/1024,
		float64(m.StackScanned)/float64(max(1, m.Goroutines))/1024, m.StackStart, mb(m.Sys), m.Goroutines)
	for i, s := range m.Steps {
		fmt.Fprintf(&b, " %d: stacks %.1f, heap %.1f, RSS %.1f MiB;", i+1, mb(s.StackInuse), mb(s.HeapInuse), mb(s.RSS))
	}
	return strings.TrimSuffix(b.String(), ";")
}

// marshal and parseMem carry memFigures over a child's stdout, one line.
func (m memFigures) marshal() string {
	s := fmt.Sprintf("%d %d %d %d %d %d %d %d", m.HeapInuse, m.StackInuse, m.Sys, m.RSS, m.Goroutines, m.StackScanned, m.StackStart, len(m.Steps))
	for _, st := range m.Steps {
		s += fmt.Sprintf(" %d %d %d", st.StackInuse, st.HeapInuse, st.RSS)
	}
	return s
}

func parseMem(line string) (memFigures, error) {
	var m memFigures
	var n int
	r := strings.NewReader(line)
	if _, err := fmt.Fscan(r, &m.HeapInuse, &m.StackInuse, &m.Sys, &m.RSS, &m.Goroutines, &m.StackScanned, &m.StackStart, &n); err != nil {
		return m, fmt.Errorf("memory figures %q: %w", line, err)
	}
	m.Steps = make([]memStep, n)
	for i := range m.Steps {
		if _, err := fmt.Fscan(r, &m.Steps[i].StackInuse, &m.Steps[i].HeapInuse, &m.Steps[i].RSS); err != nil {
			return m, fmt.Errorf("memory figures %q: %w", line, err)
		}
	}
	return m, nil
}

func mb(n uint64) float64 { return float64(n) / (1 << 20) }

// procStats is what a process holds as it runs, read without a collection.
type procStats struct {
	RSS        uint64 // bytes
	Goroutines int
	FDs        int    // open file descriptors (sockets, the database and its WAL, ...)
	StackInuse uint64 // bytes of goroutine stacks
}

func readStats() procStats {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	s := procStats{Goroutines: runtime.NumGoroutine(), RSS: vmRSS(), StackInuse: ms.StackInuse}
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
	m, err := parseMem(pc.await(b, "portal mem "))
	if err != nil {
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
			fmt.Printf("portal mem %s\n", readMem().marshal())
		case "stats":
			s := readStats()
			fmt.Printf("portal stats %d %d %d %d\n", s.RSS, s.Goroutines, s.FDs, s.StackInuse)
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
