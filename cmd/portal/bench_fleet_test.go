package main

// The benchmarks' simulated devices (bench_test.go): connected in this
// process, or in a child process so that the portal's own figures stand alone.

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/doorledger/doorledger/devicectl"
)

// fleet is a set of connected simulated devices.
type fleet interface {
	Stop()
}

// startFleet connects one simulator per device to the broker at brokerURL,
// in this process or (DOORLEDGER_BENCH_SIMS=process) in a child process, and
// returns once every one is connected and subscribed.
func startFleet(b testing.TB, brokerURL string, devs []seededDevice) fleet {
	b.Helper()
	var f fleet
	if os.Getenv("DOORLEDGER_BENCH_SIMS") == "process" {
		f = startChildFleet(b, brokerURL, devs)
	} else {
		f = startLocalFleet(b, brokerURL, devs)
	}
	b.Cleanup(f.Stop)
	return f
}

// localFleet runs the simulators in this process.
type localFleet struct {
	sims []*devicectl.SimDevice
	once sync.Once
}

var discardLog = slog.New(slog.DiscardHandler)

func startLocalFleet(tb testing.TB, brokerURL string, devs []seededDevice) *localFleet {
	tb.Helper()
	f := &localFleet{sims: make([]*devicectl.SimDevice, len(devs))}
	errs := make(chan error, len(devs))
	sem := make(chan struct{}, connectBatch)
	var wg sync.WaitGroup
	for i, dev := range devs {
		cfg := devicectl.SimConfig{BrokerURL: brokerURL, DeviceID: dev.ID, Secret: dev.Secret, Logger: discardLog}
		sim, err := devicectl.NewSimDevice(cfg)
		if err != nil {
			tb.Fatal(err)
		}
		f.sims[i] = sim
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			// Start's context is the device's lifetime; the wait has its own.
			if err := sim.Start(context.Background()); err != nil {
				errs <- err
				return
			}
			ctx, cancel := context.WithTimeout(context.Background(), benchWait)
			defer cancel()
			if err := sim.AwaitConnected(ctx); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		f.Stop()
		tb.Fatalf("connect simulators: %v", err)
	}
	return f
}

func (f *localFleet) Stop() {
	f.once.Do(func() {
		sem := make(chan struct{}, connectBatch)
		var wg sync.WaitGroup
		for _, s := range f.sims {
			if s == nil {
				continue
			}
			wg.Add(1)
			sem <- struct{}{}
			go func() {
				defer wg.Done()
				defer func() { <-sem }()
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				s.Stop(ctx)
			}()
		}
		wg.Wait()
	})
}

// childFleet runs the simulators in a child process: the test binary again,
// running TestBenchSimFleet. Closing its stdin stops it.
type childFleet struct {
	*childProcess
	mem memFigures // the child's memory once every simulator is connected
}

func startChildFleet(tb testing.TB, brokerURL string, devs []seededDevice) *childFleet {
	tb.Helper()
	child, stdout := startChild(tb, "TestBenchSimFleet", "DOORLEDGER_BENCH_FLEET=1")
	f := &childFleet{childProcess: child}
	var in bytes.Buffer
	fmt.Fprintln(&in, brokerURL)
	writeDevices(&in, devs)
	if _, err := f.stdin.Write(in.Bytes()); err != nil {
		f.Stop()
		tb.Fatal(err)
	}
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		line := sc.Text()
		if rest, ok := strings.CutPrefix(line, "fleet mem "); ok {
			if _, err := fmt.Sscan(rest, &f.mem.HeapInuse, &f.mem.StackInuse, &f.mem.Sys, &f.mem.RSS, &f.mem.Goroutines); err != nil {
				f.Stop()
				tb.Fatalf("child fleet said %q: %v", line, err)
			}
			go io.Copy(io.Discard, stdout)
			return f
		}
		if rest, ok := strings.CutPrefix(line, "fleet error "); ok {
			f.Stop()
			tb.Fatalf("child fleet: %s", rest)
		}
	}
	f.Stop()
	tb.Fatalf("child fleet exited before it was ready: %v", sc.Err())
	return nil
}

// TestBenchSimFleet is the benchmarks' simulator process, not a test: it reads
// the broker URL, then "id secret" lines up to "go", connects every device,
// prints its memory, and runs until stdin closes.
func TestBenchSimFleet(t *testing.T) {
	if os.Getenv("DOORLEDGER_BENCH_FLEET") != "1" {
		t.Skip("the benchmarks' simulator process (DOORLEDGER_BENCH_FLEET=1)")
	}
	in := bufio.NewScanner(os.Stdin)
	if !in.Scan() {
		t.Fatal("no broker URL")
	}
	brokerURL := in.Text()
	var devs []seededDevice
	for in.Scan() && in.Text() != "go" {
		var d seededDevice
		if _, err := fmt.Sscan(in.Text(), &d.ID, &d.Secret); err != nil {
			fmt.Printf("fleet error bad line %q\n", in.Text())
			return
		}
		devs = append(devs, d)
	}
	f := startLocalFleet(t, brokerURL, devs)
	defer f.Stop()
	m := readMem()
	fmt.Printf("fleet mem %d %d %d %d %d\n", m.HeapInuse, m.StackInuse, m.Sys, m.RSS, m.Goroutines)
	for in.Scan() {
	}
}

// childProcess is the test binary run again as a helper process of the
// benchmarks: one test, picked by -test.run and told its part by an
// environment variable, spoken to over stdin and stdout. Closing its stdin
// stops it.
type childProcess struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	once  sync.Once
}

// startChild starts the test binary running only test, with env added to its
// environment, and returns it with its stdout.
func startChild(tb testing.TB, test string, env ...string) (*childProcess, io.Reader) {
	tb.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^"+test+"$", "-test.count=1", "-test.timeout=0")
	cmd.Env = append(os.Environ(), env...)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		tb.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		tb.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	return &childProcess{cmd: cmd, stdin: stdin}, stdout
}

// Stop closes the child's stdin and waits for it to end, killing it after 30 s.
func (c *childProcess) Stop() {
	c.once.Do(func() {
		c.stdin.Close()
		done := make(chan error, 1)
		go func() { done <- c.cmd.Wait() }()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			c.cmd.Process.Kill()
			<-done
		}
	})
}

// writeDevices writes the device lines a child reads ("id secret"), ended by "go".
func writeDevices(w io.Writer, devs []seededDevice) {
	for _, d := range devs {
		fmt.Fprintf(w, "%d %s\n", d.ID, d.Secret)
	}
	fmt.Fprintln(w, "go")
}
