package main

import (
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/doorledger/doorledger/db/sqlite"
	"github.com/doorledger/doorledger/web"
)

// config is everything serve needs, from flags with environment defaults.
type config struct {
	Addr       string
	DataDir    string
	Demo       bool
	TLSCert    string
	TLSKey     string
	TrustProxy bool
	LogLevel   slog.Level
	AdminEmail string
	AdminPass  string // from the environment only: flags show up in ps
	BcryptCost int    // from DOORLEDGER_BCRYPT_COST; tests lower it
	PublicURL  string // the address people reach the portal at, for links in mail
	SMTPURL    string // from DOORLEDGER_SMTP_URL only: it may hold a password

	// DatabaseURL selects PostgreSQL (postgres://…) instead of the SQLite
	// database in DataDir; the keys and report files stay in DataDir, a
	// directory every instance shares.
	DatabaseURL string

	MQTTAddr       string        // the embedded broker's listen address
	MQTTTLSAddr    string        // and its TLS listener (with -tls-cert/-tls-key)
	MQTTURL        string        // an external broker instead of the embedded one
	MQTTUser       string        // the portal's account on the external broker (and its client id)
	MQTTShareGroup string        // the MQTT 5 shared-subscription group of several instances
	MQTTPeers      []string      // every instance's -mqtt-user in the group: a stopped one's session is drained
	MetricsAddr    string        // where /metrics listens ("" = off)
	MetricsToken   string        // bearer token /metrics requires (DOORLEDGER_METRICS_TOKEN only)
	MQTTPassword   string        // from DOORLEDGER_MQTT_PASSWORD only
	CommandTimeout time.Duration // how long a device may take to confirm
	DemoDevices    int           // simulated devices started with -demo
	DiskFloor      int64         // bytes: ingest is refused while less is free on the data disk
	DiskReserve    int64         // bytes: the reserve file released when the data disk is full
	// WebhooksAllowPrivate lets outbound events reach loopback, private and
	// link-local addresses (receivers on the portal's own network, tests).
	WebhooksAllowPrivate bool

	// Instance names this portal among the instances sharing its database
	// (the holder of the leases of the background work it runs); default:
	// the host and a random suffix, new at each start.
	Instance string
	// LeaseTTL is how long this instance holds background work without
	// renewing it: a dead instance's work is taken over within it and a third.
	LeaseTTL time.Duration

	// SSO is the OpenID provider people may sign in through (sso.go).
	SSO ssoConfig

	// webTimeouts bound slow and broken HTTP clients; zero: the web
	// package's defaults. Only tests set it (through the app hook).
	webTimeouts web.Timeouts
}

// secure says whether browsers reach the portal over HTTPS: it serves TLS
// itself, or its public URL is https (TLS ended at a reverse proxy in front of
// it). Cookies are then Secure and carry the __Host- prefix.
func (c *config) secure() bool {
	u, err := url.Parse(c.PublicURL)
	return c.TLSCert != "" || err == nil && strings.EqualFold(u.Scheme, "https")
}

// envOr returns getenv(key) or def.
func envOr(getenv func(string) string, key, def string) string {
	if v := getenv(key); v != "" {
		return v
	}
	return def
}

func envDuration(getenv func(string) string, key string, def time.Duration) time.Duration {
	if d, err := time.ParseDuration(getenv(key)); err == nil && d > 0 {
		return d
	}
	return def
}

func envInt64(getenv func(string) string, key string, def int64) int64 {
	if n, err := strconv.ParseInt(getenv(key), 10, 64); err == nil && n >= 0 {
		return n
	}
	return def
}

func envBool(getenv func(string) string, key string) bool {
	b, _ := strconv.ParseBool(getenv(key))
	return b
}

// databaseURLUsage describes -database-url, which every command that opens
// the database takes.
const databaseURLUsage = "PostgreSQL database, e.g. postgres://doorledger@db:5432/doorledger, instead of the SQLite database in the data directory (which still holds the keys and report files: share it between instances) (env DOORLEDGER_DATABASE_URL)"

// parseServe reads serve's flags; each defaults to its environment variable.
func parseServe(args []string, getenv func(string) string, stderr io.Writer) (*config, error) {
	cfg := &config{}
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&cfg.Addr, "addr", envOr(getenv, "DOORLEDGER_ADDR", "127.0.0.1:8080"), "HTTP listen address (env DOORLEDGER_ADDR)")
	fs.StringVar(&cfg.DataDir, "data", envOr(getenv, "DOORLEDGER_DATA", "./data"), "data directory: database, keys (env DOORLEDGER_DATA)")
	fs.StringVar(&cfg.DatabaseURL, "database-url", getenv("DOORLEDGER_DATABASE_URL"), databaseURLUsage)
	fs.BoolVar(&cfg.Demo, "demo", envBool(getenv, "DOORLEDGER_DEMO"), "seed a demo building and its users (env DOORLEDGER_DEMO)")
	fs.StringVar(&cfg.TLSCert, "tls-cert", getenv("DOORLEDGER_TLS_CERT"), "TLS certificate file; with -tls-key serves HTTPS and marks cookies Secure (env DOORLEDGER_TLS_CERT)")
	fs.StringVar(&cfg.TLSKey, "tls-key", getenv("DOORLEDGER_TLS_KEY"), "TLS key file (env DOORLEDGER_TLS_KEY)")
	fs.BoolVar(&cfg.TrustProxy, "trust-proxy", envBool(getenv, "DOORLEDGER_TRUST_PROXY"), "take client IPs from X-Forwarded-For (only behind a reverse proxy) (env DOORLEDGER_TRUST_PROXY)")
	fs.StringVar(&cfg.PublicURL, "public-url", getenv("DOORLEDGER_PUBLIC_URL"), "the portal's address as people reach it, for links in mail (default: http(s)://<addr>); https marks cookies Secure, for TLS ended at a reverse proxy; its host is the passkeys' relying party, none on an IP address (env DOORLEDGER_PUBLIC_URL)")
	fs.StringVar(&cfg.MQTTAddr, "mqtt-addr", envOr(getenv, "DOORLEDGER_MQTT_ADDR", "127.0.0.1:1883"), "embedded MQTT broker listen address (env DOORLEDGER_MQTT_ADDR)")
	fs.StringVar(&cfg.MQTTTLSAddr, "mqtt-tls-addr", getenv("DOORLEDGER_MQTT_TLS_ADDR"), "embedded MQTT broker TLS listen address, with -tls-cert/-tls-key (env DOORLEDGER_MQTT_TLS_ADDR)")
	fs.StringVar(&cfg.MQTTURL, "mqtt-url", getenv("DOORLEDGER_MQTT_URL"), "external MQTT broker, e.g. mqtt://broker:1883, instead of the embedded one (env DOORLEDGER_MQTT_URL)")
	fs.StringVar(&cfg.MQTTUser, "mqtt-user", envOr(getenv, "DOORLEDGER_MQTT_USER", "doorledger-portal"), "the portal's username on the external broker (env DOORLEDGER_MQTT_USER)")
	fs.StringVar(&cfg.MetricsAddr, "metrics-addr", getenv("DOORLEDGER_METRICS_ADDR"), "serve Prometheus metrics at /metrics on this address, e.g. 127.0.0.1:9464, apart from the portal's own (env DOORLEDGER_METRICS_ADDR; a bearer token in DOORLEDGER_METRICS_TOKEN, if set, is required)")
	fs.StringVar(&cfg.MQTTShareGroup, "mqtt-share-group", getenv("DOORLEDGER_MQTT_SHARE_GROUP"), "with -mqtt-url: receive devices' messages through this MQTT 5 shared-subscription group, so several instances (each its own -mqtt-user) process each message once (env DOORLEDGER_MQTT_SHARE_GROUP)")
	peers := fs.String("mqtt-peers", getenv("DOORLEDGER_MQTT_PEERS"), "with -mqtt-share-group: the -mqtt-user of every instance in the group, comma-separated; the session an instance that stopped leaves on the broker is drained by another (env DOORLEDGER_MQTT_PEERS)")
	fs.DurationVar(&cfg.CommandTimeout, "command-timeout", envDuration(getenv, "DOORLEDGER_COMMAND_TIMEOUT", 30*time.Second), "how long a device may take to confirm a command before it is retried and the managers alerted (env DOORLEDGER_COMMAND_TIMEOUT)")
	fs.IntVar(&cfg.DemoDevices, "demo-devices", 3, "simulated devices to start with -demo")
	fs.StringVar(&cfg.Instance, "instance", getenv("DOORLEDGER_INSTANCE"), "this instance's name among the portals sharing the database (default: the host name and a random suffix, new at each start) (env DOORLEDGER_INSTANCE)")
	fs.DurationVar(&cfg.LeaseTTL, "lease-ttl", envDuration(getenv, "DOORLEDGER_LEASE_TTL", DefaultLeaseTTL), "how long an instance holds background work without renewing it; a dead instance's work is taken over within it and a third (env DOORLEDGER_LEASE_TTL)")
	fs.BoolVar(&cfg.WebhooksAllowPrivate, "webhooks-allow-private", envBool(getenv, "DOORLEDGER_WEBHOOKS_ALLOW_PRIVATE"), "let outbound events (webhook subscriptions) reach loopback, private and link-local addresses; off, only public addresses are connected to (env DOORLEDGER_WEBHOOKS_ALLOW_PRIVATE)")
	level := fs.String("log-level", envOr(getenv, "DOORLEDGER_LOG_LEVEL", "info"), "debug, info, warn or error (env DOORLEDGER_LOG_LEVEL)")
	fs.StringVar(&cfg.AdminEmail, "admin-email", envOr(getenv, "DOORLEDGER_ADMIN_EMAIL", "admin@doorledger.localhost"), "email of the admin created on first start (env DOORLEDGER_ADMIN_EMAIL)")
	floorMB := fs.Int64("disk-floor-mb", envInt64(getenv, "DOORLEDGER_DISK_FLOOR_MB", sqlite.DefaultSpaceFloor>>20), "refuse device and vendor events (503, negative PUBACK) while less than this many MiB are free on the data disk, keeping them for revokes (env DOORLEDGER_DISK_FLOOR_MB)")
	reserveMB := fs.Int64("disk-reserve-mb", envInt64(getenv, "DOORLEDGER_DISK_RESERVE_MB", sqlite.DefaultSpaceReserve>>20), "size in MiB of the reserve file kept in the data directory and released when the disk is full; 0: none (env DOORLEDGER_DISK_RESERVE_MB)")
	checkSSO := addSSOFlags(fs, getenv, &cfg.SSO)
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if err := checkSSO(); err != nil {
		return nil, err
	}
	if err := cfg.LogLevel.UnmarshalText([]byte(*level)); err != nil {
		return nil, fmt.Errorf("-log-level: %w", err)
	}
	for _, p := range strings.Split(*peers, ",") {
		if p = strings.TrimSpace(p); p != "" {
			cfg.MQTTPeers = append(cfg.MQTTPeers, p)
		}
	}
	if len(cfg.MQTTPeers) > 0 && (cfg.MQTTShareGroup == "" || cfg.MQTTURL == "") {
		return nil, fmt.Errorf("-mqtt-peers goes with -mqtt-url and -mqtt-share-group")
	}
	if cfg.LeaseTTL < 300*time.Millisecond {
		return nil, fmt.Errorf("-lease-ttl: want at least 300ms, have %s", cfg.LeaseTTL)
	}
	if cfg.Instance == "" {
		cfg.Instance = newInstanceID()
	}
	if *floorMB < 0 || *reserveMB < 0 {
		return nil, fmt.Errorf("-disk-floor-mb and -disk-reserve-mb: want 0 or more")
	}
	cfg.DiskFloor, cfg.DiskReserve = *floorMB<<20, *reserveMB<<20
	if (cfg.TLSCert == "") != (cfg.TLSKey == "") {
		return nil, fmt.Errorf("-tls-cert and -tls-key go together")
	}
	cfg.AdminPass = getenv("DOORLEDGER_ADMIN_PASSWORD")
	cfg.SMTPURL = getenv("DOORLEDGER_SMTP_URL")
	cfg.MQTTPassword = getenv("DOORLEDGER_MQTT_PASSWORD")
	cfg.MetricsToken = getenv("DOORLEDGER_METRICS_TOKEN")
	if v := getenv("DOORLEDGER_BCRYPT_COST"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 4 || n > 31 {
			return nil, fmt.Errorf("DOORLEDGER_BCRYPT_COST: want 4 to 31, have %q", v)
		}
		cfg.BcryptCost = n
	}
	var err error
	if cfg.DataDir, err = filepath.Abs(cfg.DataDir); err != nil {
		return nil, err
	}
	return cfg, nil
}
