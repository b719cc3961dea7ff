package mail

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"io"
	"math/big"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// received is one message accepted by the test server.
type received struct {
	User string // authenticated as
	From string
	To   []string
	Data []byte
}

// testServer is an in-process SMTP server on 127.0.0.1 that keeps what it is sent.
type testServer struct {
	Host    string
	Port    int
	RootCAs *x509.CertPool // trusts the server's certificate, if it has one

	user, pass string

	mu       sync.Mutex
	sessions int
	msgs     []received
	stalled  chan struct{} // see StallAtMail
	release  chan struct{}
	rcptErr  *smtp.SMTPError // see Refuse
	dataErr  *smtp.SMTPError

	stop func() // see Stop
}

// MustTestServer starts an SMTP server that requires AUTH PLAIN as user/pass.
// tlsMode is TLSNone (plain, insecure auth allowed on loopback), TLSStartTLS
// (STARTTLS offered) or TLSImplicit (TLS listener).
func MustTestServer(tb testing.TB, tlsMode, user, pass string) *testServer {
	tb.Helper()
	return mustTestServer(tb, tlsMode, user, pass, nil)
}

// mustTestServer is MustTestServer whose listener is wrapped by wrap, if not nil.
func mustTestServer(tb testing.TB, tlsMode, user, pass string, wrap func(net.Listener) net.Listener) *testServer {
	tb.Helper()
	return mustTestServerAt(tb, "127.0.0.1:0", tlsMode, user, pass, wrap)
}

// mustTestServerAt is mustTestServer listening on addr: a server started
// again where a stopped one was.
func mustTestServerAt(tb testing.TB, listenAddr, tlsMode, user, pass string, wrap func(net.Listener) net.Listener) *testServer {
	tb.Helper()
	ts := &testServer{user: user, pass: pass}
	s := smtp.NewServer(smtp.BackendFunc(func(c *smtp.Conn) (smtp.Session, error) {
		ts.mu.Lock()
		ts.sessions++
		ts.mu.Unlock()
		return &testSession{srv: ts}, nil
	}))
	s.Domain = "localhost"
	s.ReadTimeout = 10 * time.Second
	s.WriteTimeout = 10 * time.Second
	logger := &testLogger{tb: tb}
	s.ErrorLog = logger

	l, err := net.Listen("tcp", listenAddr)
	if err != nil {
		tb.Fatal(err)
	}
	if wrap != nil {
		l = wrap(l)
	}
	switch tlsMode {
	case TLSNone:
		s.AllowInsecureAuth = true // loopback only
	case TLSStartTLS:
		s.TLSConfig, ts.RootCAs = mustTLS(tb)
	case TLSImplicit:
		var cfg *tls.Config
		cfg, ts.RootCAs = mustTLS(tb)
		l = tls.NewListener(l, cfg)
	default:
		tb.Fatalf("tls mode %q", tlsMode)
	}
	addr := l.Addr().(*net.TCPAddr)
	ts.Host, ts.Port = addr.IP.String(), addr.Port

	done := make(chan struct{})
	go func() {
		defer close(done)
		s.Serve(l)
	}()
	ts.stop = sync.OnceFunc(func() {
		logger.stop()
		s.Close()
		l.Close() // in case Close ran before Serve registered the listener
		<-done
	})
	tb.Cleanup(ts.stop)
	return ts
}

// Stop closes the server: its port refuses connections from now on.
func (ts *testServer) Stop() { ts.stop() }

// Refuse makes the server answer every RCPT TO with rcpt and every message
// (the reply after DATA's content) with data; nil accepts.
func (ts *testServer) Refuse(rcpt, data *smtp.SMTPError) {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	ts.rcptErr, ts.dataErr = rcpt, data
}

// Config returns a mailer configuration for this server.
func (ts *testServer) Config(tlsMode string) SMTPConfig {
	return SMTPConfig{
		Host: ts.Host, Port: ts.Port, TLS: tlsMode,
		Username: ts.user, Password: ts.pass,
		From:    "Doorledger <portal@example.com>",
		Timeout: 10 * time.Second,
	}
}

// MustMailer returns an SMTPMailer for cfg that trusts the server's certificate.
func (ts *testServer) MustMailer(tb testing.TB, cfg SMTPConfig) *SMTPMailer {
	tb.Helper()
	m, err := NewSMTPMailer(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	m.rootCAs = ts.RootCAs
	return m
}

// StallAtMail makes the server leave every MAIL FROM unanswered until the test
// ends. The channel returned receives once per MAIL FROM left so.
func (ts *testServer) StallAtMail(tb testing.TB) <-chan struct{} {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	ts.stalled, ts.release = make(chan struct{}, 100), make(chan struct{})
	tb.Cleanup(func() { close(ts.release) })
	return ts.stalled
}

func (ts *testServer) Messages() []received {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	return append([]received(nil), ts.msgs...)
}

func (ts *testServer) Sessions() int {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	return ts.sessions
}

type testSession struct {
	srv  *testServer
	user string
	msg  received
}

func (s *testSession) AuthMechanisms() []string { return []string{sasl.Plain} }

func (s *testSession) Auth(mech string) (sasl.Server, error) {
	return sasl.NewPlainServer(func(identity, username, password string) error {
		if username != s.srv.user || password != s.srv.pass {
			return errors.New("invalid username or password")
		}
		s.user = username
		return nil
	}), nil
}

func (s *testSession) Mail(from string, opts *smtp.MailOptions) error {
	if s.user == "" {
		return smtp.ErrAuthRequired
	}
	s.srv.mu.Lock()
	stalled, release := s.srv.stalled, s.srv.release
	s.srv.mu.Unlock()
	if stalled != nil {
		stalled <- struct{}{}
		<-release
		return errors.New("stalled")
	}
	s.msg = received{User: s.user, From: from}
	return nil
}

func (s *testSession) Rcpt(to string, opts *smtp.RcptOptions) error {
	s.srv.mu.Lock()
	refuse := s.srv.rcptErr
	s.srv.mu.Unlock()
	if refuse != nil {
		return refuse
	}
	s.msg.To = append(s.msg.To, to)
	return nil
}

func (s *testSession) Data(r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	s.msg.Data = b
	s.srv.mu.Lock()
	defer s.srv.mu.Unlock()
	if s.srv.dataErr != nil {
		return s.srv.dataErr
	}
	s.srv.msgs = append(s.srv.msgs, s.msg)
	return nil
}

func (s *testSession) Reset()        { s.msg = received{} }
func (s *testSession) Logout() error { return nil }

// dropQuit wraps a plain listener so that the connection is cut, unanswered,
// when the client sends QUIT: a server that has accepted a message and then
// goes away.
func dropQuit(l net.Listener) net.Listener { return quitDropper{l} }

type quitDropper struct{ net.Listener }

func (l quitDropper) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return quitDroppingConn{c}, nil
}

type quitDroppingConn struct{ net.Conn }

func (c quitDroppingConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if bytes.HasPrefix(bytes.ToUpper(p[:n]), []byte("QUIT")) {
		c.Conn.Close()
		return 0, io.EOF
	}
	return n, err
}

// mustTLS returns a server configuration with a fresh self-signed certificate
// for 127.0.0.1, and a pool that trusts it.
func mustTLS(tb testing.TB) (*tls.Config, *x509.CertPool) {
	tb.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "doorledger test smtp"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		DNSNames:              []string{"localhost"},
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IsCA:                  true,
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		tb.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		tb.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}}, pool
}

// testLogger sends the SMTP server's error log to the test log until the test
// ends (connection goroutines may outlive it by a moment).
type testLogger struct {
	tb   testing.TB
	mu   sync.Mutex
	done bool
}

func (l *testLogger) Printf(format string, v ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.done {
		l.tb.Logf("smtp server: "+format, v...)
	}
}

func (l *testLogger) Println(v ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.done {
		l.tb.Log(append([]any{"smtp server:"}, v...)...)
	}
}

func (l *testLogger) stop() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.done = true
}
