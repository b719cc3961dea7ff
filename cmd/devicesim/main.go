// Command devicesim simulates Doorledger delivery-access devices: it speaks
// the device side of the MQTT protocol (devicectl/PROTOCOL.md) against the
// portal's embedded broker or an external one. Each device subscribes to its
// desired state, applies newer versions (ignoring replayed or older ones),
// reports what it applied, and sends unlock events at a configurable rate.
//
//	devicesim --broker mqtt://127.0.0.1:1883 --id 7 --secret s3cret --unlock-rate 2
//	devicesim --devices fleet.json --state ./sim-state --flap 1m
//
// fleet.json is [{"id": 1, "secret": "..."}, ...]. SIGUSR1 takes every
// device offline, or back online. SIGINT or SIGTERM stops.
package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	mathrand "math/rand/v2"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/doorledger/doorledger"
	"github.com/doorledger/doorledger/devicectl"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "devicesim:", err)
		os.Exit(1)
	}
}

// deviceCred is one entry of a --devices file.
type deviceCred struct {
	ID     int64  `json:"id"`
	Secret string `json:"secret"`
}

// run parses args, starts the devices and runs them until ctx ends.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("devicesim", flag.ContinueOnError)
	fs.SetOutput(stderr)
	broker := fs.String("broker", or(getenv("DEVICESIM_BROKER"), "mqtt://127.0.0.1:1883"), "broker URL, mqtt://host:port or mqtts://host:port ($DEVICESIM_BROKER)")
	id := fs.Int64("id", 0, "device id (one device; see --devices for many)")
	secret := fs.String("secret", "", "device secret (default $DEVICESIM_SECRET)")
	devicesFile := fs.String("devices", "", `JSON file listing devices: [{"id": 1, "secret": "..."}, ...]`)
	stateDir := fs.String("state", getenv("DEVICESIM_STATE"), "directory keeping each device's applied version and undelivered events across runs ($DEVICESIM_STATE; empty: memory only)")
	rate := fs.Float64("unlock-rate", 0, "simulated door openings per minute, per device (0: none)")
	flap := fs.Duration("flap", 0, "take each device offline about this often (0: never)")
	flapDown := fs.Duration("flap-down", 5*time.Second, "how long a flapping device stays offline")
	caFile := fs.String("ca", "", "PEM file of the CA that signed an mqtts broker's certificate (default: system roots)")
	logLevel := fs.String("log-level", "info", "debug, info, warn or error")
	logJSON := fs.Bool("log-json", false, "log JSON instead of text")
	stuck := fs.String("stuck", "", "a faulty device: take each desired version but stay enabled or disabled, and report so (empty: obey)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments: %s", strings.Join(fs.Args(), " "))
	}
	if *secret == "" {
		*secret = getenv("DEVICESIM_SECRET")
	}
	if st := doorledger.DeviceState(*stuck); st != "" && !st.Valid() {
		return fmt.Errorf("--stuck: %q is neither enabled nor disabled", *stuck)
	}

	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		return fmt.Errorf("--log-level: %w", err)
	}
	var h slog.Handler = slog.NewTextHandler(stdout, &slog.HandlerOptions{Level: level})
	if *logJSON {
		h = slog.NewJSONHandler(stdout, &slog.HandlerOptions{Level: level})
	}
	logger := slog.New(h)

	creds, err := loadDevices(*devicesFile, *id, *secret)
	if err != nil {
		return err
	}
	if *rate < 0 {
		return errors.New("--unlock-rate must not be negative")
	}
	var unlockEvery time.Duration
	if *rate > 0 {
		unlockEvery = time.Duration(float64(time.Minute) / *rate)
	}
	var tlsCfg *tls.Config
	if *caFile != "" {
		pem, err := os.ReadFile(*caFile)
		if err != nil {
			return fmt.Errorf("--ca: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return fmt.Errorf("--ca: no certificate in %s", *caFile)
		}
		tlsCfg = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	if *stateDir != "" {
		if err := os.MkdirAll(*stateDir, 0o750); err != nil {
			return fmt.Errorf("--state: %w", err)
		}
	}

	sims := make([]*devicectl.SimDevice, 0, len(creds))
	for _, c := range creds {
		d, err := devicectl.NewSimDevice(devicectl.SimConfig{
			BrokerURL:   *broker,
			TLS:         tlsCfg,
			DeviceID:    c.ID,
			Secret:      c.Secret,
			StateDir:    *stateDir,
			UnlockEvery: unlockEvery,
			Stuck:       doorledger.DeviceState(*stuck),
			Logger:      logger,
		})
		if err != nil {
			return err
		}
		sims = append(sims, d)
	}
	logger.Info("starting devices", "count", len(sims), "broker", *broker, "unlock_rate_per_min", *rate, "state", *stateDir)
	for _, d := range sims {
		if err := d.Start(ctx); err != nil {
			return err
		}
	}
	defer func() {
		stopCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		for _, d := range sims {
			if err := d.Stop(stopCtx); err != nil {
				logger.Warn("stop", "device", d.ID(), "error", err)
			}
		}
		logger.Info("stopped")
	}()

	var wg sync.WaitGroup
	defer wg.Wait()
	if *flap > 0 {
		for _, d := range sims {
			wg.Add(1)
			go func() {
				defer wg.Done()
				flapLoop(ctx, d, *flap, *flapDown, logger)
			}()
		}
	}

	usr1 := make(chan os.Signal, 1)
	signal.Notify(usr1, syscall.SIGUSR1)
	defer signal.Stop(usr1)
	offline := false
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-usr1:
			offline = !offline
			logger.Info("SIGUSR1: toggling every device", "offline", offline)
			for _, d := range sims {
				if err := setOffline(ctx, d, offline); err != nil {
					logger.Warn("toggle", "device", d.ID(), "error", err)
				}
			}
		}
	}
}

// loadDevices returns the devices to run: those of file, or the one of id.
func loadDevices(file string, id int64, secret string) ([]deviceCred, error) {
	if file == "" {
		if id <= 0 {
			return nil, errors.New("give --id and --secret, or --devices")
		}
		return []deviceCred{{ID: id, Secret: secret}}, nil
	}
	if id != 0 {
		return nil, errors.New("give either --id or --devices, not both")
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("--devices: %w", err)
	}
	var creds []deviceCred
	if err := json.Unmarshal(b, &creds); err != nil {
		return nil, fmt.Errorf("--devices %s: %w", file, err)
	}
	if len(creds) == 0 {
		return nil, fmt.Errorf("--devices %s: no device", file)
	}
	seen := make(map[int64]bool, len(creds))
	for i, c := range creds {
		if c.ID <= 0 || seen[c.ID] {
			return nil, fmt.Errorf("--devices %s: entry %d: bad or repeated id %d", file, i, c.ID)
		}
		seen[c.ID] = true
	}
	return creds, nil
}

// flapLoop takes d offline for down about every every (randomized so a fleet
// does not flap in step) until ctx ends.
func flapLoop(ctx context.Context, d *devicectl.SimDevice, every, down time.Duration, logger *slog.Logger) {
	for {
		wait := every/2 + mathrand.N(every)
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		logger.Info("flap: offline", "device", d.ID(), "for", down)
		if err := setOffline(ctx, d, true); err != nil {
			logger.Warn("flap", "device", d.ID(), "error", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(down):
		}
		logger.Info("flap: online", "device", d.ID())
		if err := setOffline(ctx, d, false); err != nil {
			logger.Warn("flap", "device", d.ID(), "error", err)
		}
	}
}

func setOffline(ctx context.Context, d *devicectl.SimDevice, offline bool) error {
	if offline {
		ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		return d.Offline(ctx)
	}
	return d.Online()
}

func or(s, def string) string {
	if s != "" {
		return s
	}
	return def
}
