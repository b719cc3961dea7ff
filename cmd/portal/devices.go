package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/doorledger/doorledger"
	"github.com/doorledger/doorledger/devicectl"
	"github.com/doorledger/doorledger/web"
)

// liveReports passes device reports to the database and, once committed, wakes
// the pages that show them.
type liveReports struct {
	devices doorledger.DeviceReports
	hub     *web.Hub
}

func (r liveReports) AuthenticateDevice(ctx context.Context, id int64, secret string) error {
	return r.devices.AuthenticateDevice(ctx, id, secret)
}

func (r liveReports) ReportState(ctx context.Context, rep doorledger.ReportedState) error {
	if err := r.devices.ReportState(ctx, rep); err != nil {
		return err
	}
	r.hub.Notify(web.DeviceKey(rep.DeviceID))
	r.hub.Notify(web.DevicesKey)
	return nil
}

// ready is /readyz's check: the database takes a write lock within a few
// seconds, the external broker (if any) has the portal connected, and the
// verifiable log's sequencer (which runs every second) is less than
// maxLogLag behind. The embedded broker runs in this process: it accepts
// while the portal does.
func ready(ctx context.Context, a *app, dc *deviceControl) error {
	if dc.client != nil && !dc.client.Connected() {
		return errors.New("the MQTT broker does not accept the portal's connection")
	}
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	if err := a.db.Writable(ctx); err != nil {
		return fmt.Errorf("the database is not writable: %w", err)
	}
	_, lag, err := a.ops.LogBacklog(doorledger.NewSystemContext(ctx, "readyz"))
	if err != nil {
		return fmt.Errorf("the audit log's backlog cannot be read: %w", err)
	}
	if lag > maxLogLag {
		return fmt.Errorf("the audit log's sequencer is %s behind (at most %s)", lag.Round(time.Second), maxLogLag)
	}
	return nil
}

// maxLogLag is how far behind the log's sequencer may fall before /readyz
// says not ready.
const maxLogLag = 10 * time.Second

// deviceControl is the running device-control module: a transport (the embedded
// broker, or a client of an external one) and the controller that pushes desired
// state through it.
type deviceControl struct {
	broker *devicectl.Broker // nil with an external broker
	client *devicectl.Client // nil with the embedded broker
	ctl    *devicectl.Controller
	done   chan error
	seen   sync.WaitGroup // "device seen" writes in progress
	bg     sync.WaitGroup // the broker session's lease and the peers' watch (takeover.go)
}

// startDeviceControl starts the transport and the controller; desired state
// committed from now on is pushed after each commit.
func startDeviceControl(ctx context.Context, a *app, hub *web.Hub, leases *leaser, stdout interface{ Write([]byte) (int, error) }) (*deviceControl, error) {
	cfg := a.cfg
	reports := liveReports{devices: a.devices, hub: hub}
	dc := &deviceControl{done: make(chan error, 1)}
	var transport doorledger.Transport
	if cfg.MQTTURL != "" {
		ccfg := devicectl.ClientConfig{
			URL: cfg.MQTTURL, Username: cfg.MQTTUser, Password: cfg.MQTTPassword,
			ClientID: cfg.MQTTUser, ShareGroup: cfg.MQTTShareGroup,
			Devices: reports, Events: web.LiveUnlocks(a.unlocks, hub), Logger: a.log,
		}
		if cfg.MQTTShareGroup != "" {
			// This instance's broker session is its own only under its lease
			// (takeover.go): another may be draining it after a crash.
			if err := awaitSessionLease(ctx, leases.leases, cfg.MQTTUser, leases.instance, leases.ttl, a.log); err != nil {
				return nil, fmt.Errorf("broker session lease: %w", err)
			}
			dc.bg.Add(2)
			go func() {
				defer dc.bg.Done()
				leases.hold(ctx, sessionLease(cfg.MQTTUser), func(ctx context.Context) error { <-ctx.Done(); return nil })
			}()
			go func() {
				defer dc.bg.Done()
				watchPeers(ctx, leases.leases, leases.instance, leases.ttl, cfg.MQTTPeers, ccfg, a.log)
			}()
		}
		client, err := devicectl.NewClient(ccfg)
		if err != nil {
			return nil, fmt.Errorf("external MQTT broker: %w", err)
		}
		dc.client, transport = client, client
		fmt.Fprintf(stdout, "Devices: connecting to the MQTT broker at %s\n", cfg.MQTTURL)
	} else {
		seen := func(id int64, connected bool) {
			// Off the broker's connection goroutine: a write must not delay other devices.
			dc.seen.Add(1)
			go func() {
				defer dc.seen.Done()
				sctx, cancel := context.WithTimeout(doorledger.NewSystemContext(context.Background(), "broker"), 5*time.Second)
				defer cancel()
				if err := a.devices.DeviceSeen(sctx, id, a.db.Now()); err != nil {
					a.log.Debug("device seen", "device", id, "err", err)
				}
				hub.Notify(web.DeviceKey(id))
			}()
		}
		broker, err := devicectl.NewBroker(devicectl.BrokerConfig{
			Addr: cfg.MQTTAddr, TLSAddr: cfg.MQTTTLSAddr, TLSCertFile: cfg.TLSCert, TLSKeyFile: cfg.TLSKey,
			Devices: reports, Events: web.LiveUnlocks(a.unlocks, hub), OnConnection: seen, Logger: a.log,
		})
		if err != nil {
			return nil, fmt.Errorf("embedded MQTT broker: %w", err)
		}
		dc.broker, transport = broker, broker
		// A new secret ends the connections made with the old one.
		a.sessions.broker.Store(broker)
		fmt.Fprintf(stdout, "Devices: embedded MQTT broker on mqtt://%s\n", broker.Addr())
	}
	// Devices under a vendor integration get their desired state through the
	// vendor's webhook; the others over MQTT. The controller retries what is
	// not confirmed, so each push tries the vendor a few times only.
	router, err := devicectl.NewRouter(a.vendors, transport, devicectl.WebhookConfig{
		Logger: a.log, MaxAttempts: 3, HTTPClient: &http.Client{Timeout: 5 * time.Second}})
	if err != nil {
		return nil, err
	}
	transport = router
	dc.ctl = &devicectl.Controller{Store: a.devices, Transport: transport, Logger: a.log, Timeout: cfg.CommandTimeout}
	// A committed desired state wakes the pages showing its devices
	// ("pending") and is pushed; the report that confirms it wakes them
	// again. Nothing they show changes when the push is handed to the
	// transport. The push is what the device waits for, so the controller is
	// woken last (Go runs the goroutine readied last first) and this
	// goroutine — a request that still renders its answer — yields to it
	// once, which takes most of the wait out of commit → push started in the
	// revoke benchmark (docs/benchmarks.md).
	a.db.OnDesired(func(states []doorledger.DesiredState) {
		for _, d := range states {
			hub.Notify(web.DeviceKey(d.DeviceID))
		}
		hub.Notify(web.DevicesKey)
		dc.ctl.Enqueue(states)
		runtime.Gosched()
	})
	go func() { dc.done <- dc.ctl.Run(ctx) }()
	return dc, nil
}

// brokerSessions ends devices' connections through the embedded broker, once
// it runs: the device service is built before it, and with an external
// broker there is none to tell (doorledger.DeviceSessions).
type brokerSessions struct {
	broker atomic.Pointer[devicectl.Broker]
}

func (s *brokerSessions) DisconnectDevice(ctx context.Context, deviceID int64) int {
	if b := s.broker.Load(); b != nil {
		return b.DisconnectDevice(ctx, deviceID)
	}
	return 0
}

// Close stops the transport after the controller has stopped (its context ended).
func (dc *deviceControl) Close(log *slog.Logger) {
	if err := <-dc.done; err != nil {
		log.Error("device controller", "err", err)
	}
	if dc.broker != nil {
		dc.broker.Close()
	}
	if dc.client != nil {
		dc.client.Close()
	}
	dc.seen.Wait()
	dc.bg.Wait()
}
