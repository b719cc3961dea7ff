package devicectl

import (
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha512"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// MosquittoHashIterations is the PBKDF2 iteration count MosquittoHash uses,
// the one mosquitto_passwd writes. Device secrets are random (≥ 128 bits),
// so the count does not protect them; a low one keeps a reconnect storm of
// 1,000s of devices cheap for the broker.
const MosquittoHashIterations = 101

// MosquittoHash hashes secret in the format mosquitto_passwd writes by default
// (Mosquitto ≥ 2.0): "$7$" PBKDF2-HMAC-SHA512, 12-byte salt, 64-byte key:
// $7$<iterations>$<base64 salt>$<base64 key>.
func MosquittoHash(secret string) (string, error) {
	salt := make([]byte, 12)
	if _, err := rand.Read(salt); err != nil {
		return "", fmt.Errorf("mosquitto hash: %w", err)
	}
	key, err := pbkdf2.Key(sha512.New, secret, salt, MosquittoHashIterations, sha512.Size)
	if err != nil {
		return "", fmt.Errorf("mosquitto hash: %w", err)
	}
	return "$7$" + strconv.Itoa(MosquittoHashIterations) + "$" +
		base64.StdEncoding.EncodeToString(salt) + "$" + base64.StdEncoding.EncodeToString(key), nil
}

// CheckMosquittoHash reports whether secret matches a "$7$" hash (as written
// by MosquittoHash or mosquitto_passwd). The device service can store this one
// hash and use it both to authenticate devices on the embedded broker and to
// regenerate an external Mosquitto's password file.
func CheckMosquittoHash(hash, secret string) (bool, error) {
	parts := strings.Split(hash, "$")
	if len(parts) != 5 || parts[0] != "" || parts[1] != "7" {
		return false, errors.New("check mosquitto hash: not a $7$ hash")
	}
	iter, err := strconv.Atoi(parts[2])
	if err != nil || iter < 1 {
		return false, errors.New("check mosquitto hash: bad iteration count")
	}
	salt, err := base64.StdEncoding.DecodeString(parts[3])
	if err != nil {
		return false, fmt.Errorf("check mosquitto hash: salt: %w", err)
	}
	want, err := base64.StdEncoding.DecodeString(parts[4])
	if err != nil || len(want) == 0 {
		return false, errors.New("check mosquitto hash: bad key")
	}
	got, err := pbkdf2.Key(sha512.New, secret, salt, iter, len(want))
	if err != nil {
		return false, fmt.Errorf("check mosquitto hash: %w", err)
	}
	return subtle.ConstantTimeCompare(got, want) == 1, nil
}

// MosquittoAccount is the portal's service account on an external Mosquitto.
// Give Password (hashed on write) or Hash (a "$7$" hash).
type MosquittoAccount struct {
	Username string
	Password string
	Hash     string
}

// MosquittoDevice is one device's credential: its id and its secret, or the
// secret's "$7$" hash as the database stores it.
type MosquittoDevice struct {
	ID     int64
	Secret string
	Hash   string
}

// MosquittoConfig describes an external Mosquitto (2.x) for Doorledger.
type MosquittoConfig struct {
	// Dir receives mosquitto.conf, passwd and acl.
	Dir string
	// Listen is the listener's host:port (default DefaultBrokerAddr).
	Listen string
	// TLSCertFile and TLSKeyFile (PEM), if set, make the listener TLS.
	TLSCertFile string
	TLSKeyFile  string
	// Service is the portal's account: it may read and write doorledger/devices/#.
	Service MosquittoAccount
	// Instances are the accounts of further portal instances (one each: with
	// use_username_as_clientid the account is the client id), with the same
	// grants as Service.
	Instances []MosquittoAccount
	// Devices are every device allowed to connect; each may subscribe only to
	// its own desired topic and publish only to its own reported and events
	// topics. Retired devices are left out.
	Devices []MosquittoDevice
	// PersistenceDir keeps retained desired state and the portal's session
	// across Mosquitto restarts (default Dir/data).
	PersistenceDir string
	// MaxQueuedMessages bounds the messages queued for a disconnected session,
	// the portal's included (default 100,000; Mosquitto's own default, 1,000,
	// would drop events while the portal restarts).
	MaxQueuedMessages int
	// User is the OS user Mosquitto drops to when started as root ("" leaves
	// Mosquitto's default, "mosquitto"); it must be able to read the files.
	User string
}

// WriteMosquittoConfig writes mosquitto.conf, passwd and acl into cfg.Dir
// and returns the path of mosquitto.conf. Each file is replaced atomically;
// after regenerating them from the database, send Mosquitto SIGHUP to reload
// the password and ACL files (a changed listener needs a restart).
func WriteMosquittoConfig(cfg MosquittoConfig) (string, error) {
	if cfg.Dir == "" {
		return "", errors.New("write mosquitto config: Dir is required")
	}
	if cfg.Listen == "" {
		cfg.Listen = DefaultBrokerAddr
	}
	host, port, err := net.SplitHostPort(cfg.Listen)
	if err != nil {
		return "", fmt.Errorf("write mosquitto config: listen address: %w", err)
	}
	if cfg.PersistenceDir == "" {
		cfg.PersistenceDir = filepath.Join(cfg.Dir, "data")
	}
	if cfg.MaxQueuedMessages <= 0 {
		cfg.MaxQueuedMessages = 100000
	}
	services := append([]MosquittoAccount{cfg.Service}, cfg.Instances...)
	names := make(map[string]bool, len(services))
	for _, a := range services {
		svc := a.Username
		if svc == "" || strings.ContainsAny(svc, ":#+/ \t\r\n") {
			return "", fmt.Errorf("write mosquitto config: bad service username %q", svc)
		}
		if _, err := strconv.ParseInt(svc, 10, 64); err == nil {
			return "", fmt.Errorf("write mosquitto config: service username %q would be read as a device id", svc)
		}
		if names[svc] {
			return "", fmt.Errorf("write mosquitto config: service username %q given twice", svc)
		}
		names[svc] = true
	}
	dir, err := filepath.Abs(cfg.Dir)
	if err != nil {
		return "", fmt.Errorf("write mosquitto config: %w", err)
	}
	persist, err := filepath.Abs(cfg.PersistenceDir)
	if err != nil {
		return "", fmt.Errorf("write mosquitto config: %w", err)
	}
	if err := os.MkdirAll(persist, 0o750); err != nil {
		return "", fmt.Errorf("write mosquitto config: %w", err)
	}

	// Password file: "username:hash" per line.
	var pw strings.Builder
	for _, a := range services {
		h, err := hashOrUse(a.Hash, a.Password)
		if err != nil {
			return "", fmt.Errorf("write mosquitto config: service account %s: %w", a.Username, err)
		}
		fmt.Fprintf(&pw, "%s:%s\n", a.Username, h)
	}
	seen := make(map[int64]bool, len(cfg.Devices))
	for _, d := range cfg.Devices {
		if d.ID <= 0 || seen[d.ID] {
			return "", fmt.Errorf("write mosquitto config: bad or repeated device id %d", d.ID)
		}
		seen[d.ID] = true
		h, err := hashOrUse(d.Hash, d.Secret)
		if err != nil {
			return "", fmt.Errorf("write mosquitto config: device %d: %w", d.ID, err)
		}
		fmt.Fprintf(&pw, "%d:%s\n", d.ID, h)
	}

	// ACL: patterns apply to every client, with %u the username (the device
	// id). Nothing else is granted, so a device cannot subscribe to a wildcard
	// or any other device's topic. The portal's accounts get the whole tree.
	acl := "# Generated by Doorledger (devicectl.WriteMosquittoConfig); regenerate, do not edit.\n" +
		"pattern read " + TopicPrefix + "%u/" + KindDesired + "\n" +
		"pattern write " + TopicPrefix + "%u/" + KindReported + "\n" +
		"pattern write " + TopicPrefix + "%u/" + KindEvents + "\n" +
		"\n"
	for _, a := range services {
		acl += "user " + a.Username + "\n" + "topic readwrite " + TopicPrefix + "#\n"
	}

	var conf strings.Builder
	conf.WriteString("# Generated by Doorledger (devicectl.WriteMosquittoConfig); regenerate, do not edit.\n")
	if cfg.User != "" {
		fmt.Fprintf(&conf, "user %s\n", cfg.User)
	}
	conf.WriteString("per_listener_settings false\n")
	conf.WriteString("allow_anonymous false\n")
	fmt.Fprintf(&conf, "password_file %s\n", filepath.Join(dir, "passwd"))
	fmt.Fprintf(&conf, "acl_file %s\n", filepath.Join(dir, "acl"))
	conf.WriteString("persistence true\n")
	fmt.Fprintf(&conf, "persistence_location %s/\n", persist)
	conf.WriteString("autosave_interval 60\n")
	fmt.Fprintf(&conf, "max_queued_messages %d\n", cfg.MaxQueuedMessages)
	conf.WriteString("\n# Listener options must follow their listener line: before any, they\n" +
		"# would configure (and open) a default listener on port 1883.\n")
	if host == "" {
		fmt.Fprintf(&conf, "listener %s\n", port)
	} else {
		fmt.Fprintf(&conf, "listener %s %s\n", port, host)
	}
	conf.WriteString("# The ACL cannot tie a client id to a username: this stops a device from\n" +
		"# taking over another client's session (the portal's included) by its id.\n")
	conf.WriteString("use_username_as_clientid true\n")
	conf.WriteString("max_qos 1\n")
	if cfg.TLSCertFile != "" || cfg.TLSKeyFile != "" {
		fmt.Fprintf(&conf, "certfile %s\nkeyfile %s\n", cfg.TLSCertFile, cfg.TLSKeyFile)
	}

	if err := os.MkdirAll(dir, 0o750); err != nil {
		return "", fmt.Errorf("write mosquitto config: %w", err)
	}
	for _, f := range []struct {
		name string
		data string
		perm os.FileMode
	}{
		{"passwd", pw.String(), 0o640},
		{"acl", acl, 0o640},
		{"mosquitto.conf", conf.String(), 0o644},
	} {
		if err := writeFileAtomic(filepath.Join(dir, f.name), []byte(f.data), f.perm); err != nil {
			return "", fmt.Errorf("write mosquitto config: %s: %w", f.name, err)
		}
	}
	return filepath.Join(dir, "mosquitto.conf"), nil
}

func hashOrUse(hash, secret string) (string, error) {
	switch {
	case hash != "":
		if !strings.HasPrefix(hash, "$7$") && !strings.HasPrefix(hash, "$6$") || strings.ContainsAny(hash, ":\r\n") {
			return "", errors.New("hash is not in Mosquitto's format")
		}
		return hash, nil
	case secret != "":
		return MosquittoHash(secret)
	}
	return "", errors.New("neither secret nor hash")
}
