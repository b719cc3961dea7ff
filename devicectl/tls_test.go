package devicectl_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/doorledger/doorledger"
	"github.com/doorledger/doorledger/devicectl"
)

// MustSelfSigned writes a certificate for 127.0.0.1 and its key into dir and
// returns their paths and a pool trusting it.
func MustSelfSigned(tb testing.TB, dir string) (certFile, keyFile string, pool *x509.CertPool) {
	tb.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "doorledger test broker"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IPAddresses:           []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IsCA:                  true,
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		tb.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		tb.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		tb.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		tb.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		tb.Fatal(err)
	}
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, pool
}

func TestBroker_TLSListener(t *testing.T) {
	certFile, keyFile, pool := MustSelfSigned(t, t.TempDir())
	f := newFakePortal(secrets)
	b, err := devicectl.NewBroker(devicectl.BrokerConfig{
		TLSAddr:     "127.0.0.1:0",
		TLSCertFile: certFile,
		TLSKeyFile:  keyFile,
		Devices:     f,
		Events:      f,
		Logger:      testLogger(),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if b.Addr() != "" {
		t.Errorf("plain listener on %s with only TLS configured", b.Addr())
	}
	d := MustSim(t, "", devicectl.SimConfig{
		BrokerURL: "mqtts://" + b.TLSAddr(),
		TLS:       &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12},
		DeviceID:  1,
		Secret:    secrets[1],
	})
	mustPush(t, b, 1, doorledger.StateEnabled, 1)
	mustVersion(t, d, 1)
	f.waitFor(t, "report over TLS", func() bool { return f.hasReport(1, 1) })

	if _, err := devicectl.NewBroker(devicectl.BrokerConfig{TLSAddr: "127.0.0.1:0", TLSCertFile: "nope", TLSKeyFile: "nope", Devices: f, Events: f, Logger: testLogger()}); err == nil {
		t.Error("started without its key pair")
	}
}

func TestNewBroker_AddressInUse(t *testing.T) {
	f := newFakePortal(secrets)
	b := MustBroker(t, f, "")
	if _, err := devicectl.NewBroker(devicectl.BrokerConfig{Addr: b.Addr(), Devices: f, Events: f, Logger: testLogger()}); err == nil {
		t.Error("second broker on the same address started")
	}
	if _, err := devicectl.NewBroker(devicectl.BrokerConfig{Addr: "127.0.0.1:0"}); err == nil {
		t.Error("started without Devices and Events")
	}
}
