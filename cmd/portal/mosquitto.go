package main

import (
	"context"
	"flag"
	"fmt"
	"io"

	"github.com/doorledger/doorledger"
	"github.com/doorledger/doorledger/devicectl"
)

// mosquittoCommand is `portal mosquitto-config`: it writes an external
// Mosquitto's configuration, password file and ACL file from the database, so
// that each device authenticates with its own credential there and may use
// only its own topics. Run it again (and send Mosquitto SIGHUP) after issuing
// or rotating device credentials: the portal cannot disconnect a client from
// an external broker, but Mosquitto's reload disconnects every client whose
// credential no longer matches the password file.
func mosquittoCommand(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("mosquitto-config", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dataDir := fs.String("data", envOr(getenv, "DOORLEDGER_DATA", "./data"), "data directory (env DOORLEDGER_DATA)")
	dbURL := fs.String("database-url", getenv("DOORLEDGER_DATABASE_URL"), databaseURLUsage)
	out := fs.String("out", "", "directory to write mosquitto.conf, passwd and acl into")
	listen := fs.String("listen", "127.0.0.1:1883", "the Mosquitto listener's host:port")
	runAs := fs.String("run-as", "", "the OS user Mosquitto drops to when started as root (it must read the files; default mosquitto)")
	user := fs.String("service-user", envOr(getenv, "DOORLEDGER_MQTT_USER", "doorledger-portal"), "the portal's account on the broker")
	instances := fs.Int("instances", 1, "portal instances sharing the broker: accounts service-user, service-user-2 … service-user-N, one per instance (its -mqtt-user), all with DOORLEDGER_MQTT_PASSWORD: each instance must be able to take over another's session")
	if err := fs.Parse(args); err != nil {
		return err
	}
	pass := getenv("DOORLEDGER_MQTT_PASSWORD")
	if *out == "" || pass == "" {
		return fmt.Errorf("mosquitto-config: give -out and the portal's broker password in DOORLEDGER_MQTT_PASSWORD")
	}
	a, err := openApp(&config{DataDir: *dataDir, DatabaseURL: *dbURL}, stderr)
	if err != nil {
		return err
	}
	defer a.Close()
	devices, err := a.db.MosquittoDevices(doorledger.NewSystemContext(ctx, "cli"))
	if err != nil {
		return err
	}
	if *instances < 1 {
		return fmt.Errorf("mosquitto-config: -instances must be at least 1")
	}
	cfg := devicectl.MosquittoConfig{Dir: *out, Listen: *listen, Service: devicectl.MosquittoAccount{Username: *user, Password: pass}, User: *runAs}
	for i := 2; i <= *instances; i++ {
		cfg.Instances = append(cfg.Instances, devicectl.MosquittoAccount{Username: fmt.Sprintf("%s-%d", *user, i), Password: pass})
	}
	cfg.Devices = devices
	conf, err := devicectl.WriteMosquittoConfig(cfg)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "Wrote %s for %d devices (devices whose secret was issued before need a new one).\n"+
		"Run: mosquitto -c %s\nIf it runs already, send it SIGHUP: it reloads the files and disconnects clients whose secret changed.\n", *out, len(cfg.Devices), conf)
	return nil
}
