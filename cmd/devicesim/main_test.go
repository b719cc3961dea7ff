package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/doorledger/doorledger"
	"github.com/doorledger/doorledger/devicectl"
)

const waitTimeout = 15 * time.Second

// portal is an in-memory stand-in for the device service (a boundary this
// command does not own).
type portal struct {
	mu      sync.Mutex
	secrets map[int64]string
	reports []doorledger.ReportedState
	events  []doorledger.UnlockEvent
}

func (p *portal) AuthenticateDevice(_ context.Context, id int64, secret string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if s, ok := p.secrets[id]; !ok || s != secret {
		return doorledger.Errorf(doorledger.EUNAUTHORIZED, "Bad credential.")
	}
	return nil
}

func (p *portal) ReportState(_ context.Context, r doorledger.ReportedState) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.reports = append(p.reports, r)
	return nil
}

func (p *portal) RecordUnlocks(_ context.Context, evs []doorledger.UnlockEvent) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.events = append(p.events, evs...)
	return nil
}

func (p *portal) waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for {
		p.mu.Lock()
		ok := cond()
		p.mu.Unlock()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func (p *portal) reported(id, version int64) bool {
	for _, r := range p.reports {
		if r.DeviceID == id && r.Version == version {
			return true
		}
	}
	return false
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func startBroker(t *testing.T, p *portal) *devicectl.Broker {
	t.Helper()
	b, err := devicectl.NewBroker(devicectl.BrokerConfig{
		Addr:    "127.0.0.1:0",
		Devices: p,
		Events:  p,
		Logger:  slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

// start runs the command until the test ends; the returned function stops it
// and returns run's error.
func start(t *testing.T, args []string, env map[string]string, stdout io.Writer) func() error {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run(ctx, args, func(k string) string { return env[k] }, stdout, io.Discard) }()
	var once sync.Once
	var err error
	stop := func() error {
		once.Do(func() {
			cancel()
			select {
			case err = <-done:
			case <-time.After(waitTimeout):
				t.Error("run did not return after its context ended")
			}
		})
		return err
	}
	t.Cleanup(func() { stop() })
	return stop
}

func push(t *testing.T, b *devicectl.Broker, id int64, state doorledger.DeviceState, version int64) {
	t.Helper()
	if err := b.Push(context.Background(), doorledger.DesiredState{DeviceID: id, State: state, Version: version, IssuedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
}

func TestRun_OneDevice(t *testing.T) {
	p := &portal{secrets: map[int64]string{7: "seven"}}
	b := startBroker(t, p)
	state := t.TempDir()
	out := &syncBuffer{}
	stop := start(t, []string{"--broker", "mqtt://" + b.Addr(), "--id", "7", "--state", state, "--unlock-rate", "6000"},
		map[string]string{"DEVICESIM_SECRET": "seven"}, out)

	push(t, b, 7, doorledger.StateEnabled, 3)
	p.waitFor(t, "report v3", func() bool { return p.reported(7, 3) })
	// Unlocks start at once; those before v3 was applied are denied.
	granted := func() int {
		for i, e := range p.events {
			if e.Result == doorledger.UnlockGranted {
				return i
			}
		}
		return -1
	}
	p.waitFor(t, "a granted unlock", func() bool { return granted() >= 0 })
	if err := stop(); err != nil {
		t.Fatalf("run: %v", err)
	}

	p.mu.Lock()
	ev := p.events[granted()]
	p.mu.Unlock()
	if ev.DeviceID != 7 || ev.EventID == "" || ev.Result != doorledger.UnlockGranted {
		t.Errorf("event %+v", ev)
	}
	b2, err := os.ReadFile(filepath.Join(state, "device-7.json"))
	if err != nil {
		t.Fatal(err)
	}
	var saved struct {
		Applied devicectl.Applied `json:"applied"`
	}
	if err := json.Unmarshal(b2, &saved); err != nil || saved.Applied.Version != 3 || saved.Applied.State != doorledger.StateEnabled {
		t.Errorf("state file %s (%v)", b2, err)
	}
	for _, want := range []string{"starting devices", "applied desired state", "unlock", "stopped"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("log lacks %q:\n%s", want, out.String())
		}
	}
}

func TestRun_DevicesFile(t *testing.T) {
	p := &portal{secrets: map[int64]string{1: "a", 2: "b", 3: "c"}}
	b := startBroker(t, p)
	file := filepath.Join(t.TempDir(), "fleet.json")
	if err := os.WriteFile(file, []byte(`[{"id":1,"secret":"a"},{"id":2,"secret":"b"},{"id":3,"secret":"c"}]`), 0o600); err != nil {
		t.Fatal(err)
	}
	stop := start(t, []string{"--devices", file}, map[string]string{"DEVICESIM_BROKER": "mqtt://" + b.Addr()}, io.Discard)
	for id := int64(1); id <= 3; id++ {
		push(t, b, id, doorledger.StateDisabled, 1)
	}
	p.waitFor(t, "three reports", func() bool { return p.reported(1, 1) && p.reported(2, 1) && p.reported(3, 1) })
	if err := stop(); err != nil {
		t.Fatal(err)
	}
}

// With --flap every device goes offline and comes back; a state pushed
// meanwhile still arrives.
func TestRun_Flap(t *testing.T) {
	p := &portal{secrets: map[int64]string{4: "four"}}
	b := startBroker(t, p)
	out := &syncBuffer{}
	start(t, []string{"--broker", "mqtt://" + b.Addr(), "--id", "4", "--secret", "four", "--flap", "20ms", "--flap-down", "20ms"}, nil, out)
	for v := int64(1); v <= 3; v++ {
		push(t, b, 4, doorledger.StateEnabled, v)
		p.waitFor(t, "report", func() bool { return p.reported(4, v) })
	}
	deadline := time.Now().Add(waitTimeout)
	for !strings.Contains(out.String(), "flap: online") && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if !strings.Contains(out.String(), "flap: offline") {
		t.Errorf("never flapped:\n%s", out.String())
	}
}

func TestRun_BadArguments(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.json")
	os.WriteFile(bad, []byte(`[{"id":1,"secret":"a"},{"id":1,"secret":"b"}]`), 0o600)
	for name, args := range map[string][]string{
		"no device":       {},
		"id and devices":  {"--id", "1", "--devices", bad},
		"repeated id":     {"--devices", bad},
		"missing file":    {"--devices", filepath.Join(dir, "nope.json")},
		"unknown flag":    {"--nope"},
		"negative rate":   {"--id", "1", "--unlock-rate", "-1"},
		"bad log level":   {"--id", "1", "--log-level", "loud"},
		"stray argument":  {"--id", "1", "extra"},
		"bad broker URL":  {"--id", "1", "--broker", "::"},
		"missing CA file": {"--id", "1", "--ca", filepath.Join(dir, "ca.pem")},
	} {
		err := run(context.Background(), args, func(string) string { return "" }, io.Discard, io.Discard)
		if err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if err := run(context.Background(), []string{"-h"}, func(string) string { return "" }, io.Discard, io.Discard); err != nil {
		t.Errorf("-h: %v", err)
	}
}
