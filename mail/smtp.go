package mail

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"mime"
	"net"
	"net/mail"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/doorledger/doorledger"
	gomail "github.com/wneessen/go-mail"
)

// TLS modes of SMTPConfig.
const (
	TLSStartTLS = "starttls" // plain connection upgraded with STARTTLS; refused if the server does not offer it
	TLSImplicit = "tls"      // TLS from the first byte (usually port 465)
	TLSNone     = "none"     // no encryption; only for a server on the loopback interface
)

// DefaultSMTPTimeout bounds one delivery (connect, TLS, auth, DATA) when
// SMTPConfig.Timeout is zero.
const DefaultSMTPTimeout = 30 * time.Second

// SMTPConfig says how to reach the SMTP server that relays the portal's mail.
type SMTPConfig struct {
	Host               string
	Port               int // 0: 587 for starttls, 465 for tls, 25 for none
	Username, Password string
	From               string // "portal@example.com" or "Doorledger <portal@example.com>"
	TLS                string // TLSStartTLS (default when empty), TLSImplicit or TLSNone
	Timeout            time.Duration
}

// ParseSMTPURL reads a configuration such as
//
//	smtp://user:pass@mail.example.com:587?from=portal@example.com&tls=starttls
//
// The scheme smtps means tls=tls. Query parameters: from (required), tls, and
// timeout (a Go duration such as 10s). User and password are percent-decoded.
// Errors never repeat the password.
func ParseSMTPURL(s string) (SMTPConfig, error) {
	var cfg SMTPConfig
	u, err := url.Parse(s)
	if err != nil {
		// url.Error quotes the whole string, password included.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return cfg, fmt.Errorf("invalid SMTP URL: %w", err)
	}
	switch u.Scheme {
	case "smtp":
		cfg.TLS = TLSStartTLS
	case "smtps":
		cfg.TLS = TLSImplicit
	default:
		return cfg, fmt.Errorf("SMTP URL: scheme %q, want smtp or smtps", u.Scheme)
	}
	if u.Opaque != "" || (u.Path != "" && u.Path != "/") || u.Fragment != "" {
		return cfg, errors.New("SMTP URL: want smtp://[user:pass@]host[:port]?from=…")
	}
	cfg.Host = u.Hostname()
	if p := u.Port(); p != "" {
		if cfg.Port, err = strconv.Atoi(p); err != nil {
			return cfg, fmt.Errorf("SMTP URL: port %q", p)
		}
	}
	if u.User != nil {
		cfg.Username = u.User.Username()
		cfg.Password, _ = u.User.Password()
	}
	q, err := url.ParseQuery(u.RawQuery)
	if err != nil {
		return cfg, fmt.Errorf("SMTP URL query: %w", err)
	}
	for k, v := range q {
		if len(v) != 1 {
			return cfg, fmt.Errorf("SMTP URL: %s given %d times", k, len(v))
		}
		switch k {
		case "from":
			cfg.From = v[0]
		case "tls":
			cfg.TLS = v[0]
		case "timeout":
			if cfg.Timeout, err = time.ParseDuration(v[0]); err != nil {
				return cfg, fmt.Errorf("SMTP URL: timeout: %w", err)
			}
		default:
			// A typo such as "form=" must not pass silently.
			return cfg, fmt.Errorf("SMTP URL: unknown parameter %q (want from, tls, timeout)", k)
		}
	}
	cfg, _, err = cfg.check()
	return cfg, err
}

// check validates c and fills in defaults; it returns the parsed From address.
func (c SMTPConfig) check() (SMTPConfig, *mail.Address, error) {
	if c.Host == "" {
		return c, nil, errors.New("SMTP: host required")
	}
	if strings.ContainsAny(c.Host, "\r\n/@ ") {
		return c, nil, fmt.Errorf("SMTP: invalid host %q", c.Host)
	}
	switch c.TLS {
	case "", TLSStartTLS:
		c.TLS = TLSStartTLS
		if c.Port == 0 {
			c.Port = 587
		}
	case TLSImplicit:
		if c.Port == 0 {
			c.Port = 465
		}
	case TLSNone:
		// Credentials and one-time links would cross the network in clear.
		if !isLoopback(c.Host) {
			return c, nil, fmt.Errorf("SMTP: tls=none is only allowed for a loopback host, not %q", c.Host)
		}
		if c.Port == 0 {
			c.Port = 25
		}
	default:
		return c, nil, fmt.Errorf("SMTP: tls %q, want starttls, tls or none", c.TLS)
	}
	if c.Port < 1 || c.Port > 65535 {
		return c, nil, fmt.Errorf("SMTP: port %d out of range", c.Port)
	}
	if c.Password != "" && c.Username == "" {
		return c, nil, errors.New("SMTP: password given without a user name")
	}
	if c.Timeout < 0 {
		return c, nil, errors.New("SMTP: negative timeout")
	}
	if c.Timeout == 0 {
		c.Timeout = DefaultSMTPTimeout
	}
	if c.From == "" {
		return c, nil, errors.New("SMTP: from address required")
	}
	if strings.ContainsAny(c.From, "\r\n") {
		return c, nil, errors.New("SMTP: from address contains a line break")
	}
	from, err := mail.ParseAddress(c.From)
	if err != nil {
		return c, nil, fmt.Errorf("SMTP: from address: %w", err)
	}
	return c, from, nil
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// SMTPMailer sends each message in its own SMTP session: few enough messages
// that a pooled connection would only add idle-timeout handling. The SMTP
// session and the MIME message are github.com/wneessen/go-mail's; this adapter
// only chooses its options and checks what go-mail would let through.
type SMTPMailer struct {
	cfg     SMTPConfig
	from    *mail.Address
	rootCAs *x509.CertPool // nil: the system roots; tests trust their own CA
}

var _ doorledger.Mailer = (*SMTPMailer)(nil)

// NewSMTPMailer checks cfg, fills in defaults, and returns a mailer for it.
func NewSMTPMailer(cfg SMTPConfig) (*SMTPMailer, error) {
	cfg, from, err := cfg.check()
	if err != nil {
		return nil, err
	}
	return &SMTPMailer{cfg: cfg, from: from}, nil
}

// Config returns the configuration in use, defaults filled in.
func (s *SMTPMailer) Config() SMTPConfig { return s.cfg }

// Send delivers m to m.To. It refuses, without connecting, a recipient or
// subject that contains a line break (header injection) or a recipient that is
// not one address. A nil error means the server accepted the message.
func (s *SMTPMailer) Send(ctx context.Context, m *doorledger.Message) error {
	msg, err := s.message(m)
	if err != nil {
		return err
	}

	// The whole session, not each step, is bounded by Timeout; ending ctx
	// (this cancel included) closes the connection: see dial.
	ctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
	defer cancel()
	c, err := gomail.NewClient(s.cfg.Host, s.options(ctx)...)
	if err != nil {
		return s.fail(ctx, "connect", err)
	}
	// Connects, says EHLO, STARTTLS (refused, under TLSMandatory, if the server
	// does not offer it), then AUTH.
	sc, err := c.DialToSMTPClientWithContext(ctx)
	if err != nil {
		return s.fail(ctx, "connect", err)
	}
	if err := c.SendWithSMTPClient(sc, msg); err != nil {
		return s.fail(ctx, "send", err)
	}
	// The server has taken the message (and no RSET follows it): a failed QUIT
	// must not cause a resend.
	_ = c.CloseWithSMTPClient(sc)
	return nil
}

func (s *SMTPMailer) fail(ctx context.Context, step string, err error) error {
	if ctxErr := ctx.Err(); ctxErr != nil {
		err = fmt.Errorf("%w (%v)", ctxErr, err)
	}
	return fmt.Errorf("smtp %s: %s: %w", net.JoinHostPort(s.cfg.Host, strconv.Itoa(s.cfg.Port)), step, err)
}

// options returns go-mail's client options for one session under ctx.
func (s *SMTPMailer) options(ctx context.Context) []gomail.Option {
	tlsConfig := &tls.Config{ServerName: s.cfg.Host, RootCAs: s.rootCAs, MinVersion: tls.VersionTLS12}
	opts := []gomail.Option{
		gomail.WithPort(s.cfg.Port),
		gomail.WithTimeout(s.cfg.Timeout),
		gomail.WithTLSConfig(tlsConfig),
		gomail.WithDialContextFunc(s.dial(ctx, tlsConfig)),
		gomail.WithoutRset(), // one message, then QUIT
	}
	auth := gomail.SMTPAuthPlain // refuses to send the password unencrypted
	switch s.cfg.TLS {
	case TLSStartTLS:
		opts = append(opts, gomail.WithTLSPolicy(gomail.TLSMandatory))
	case TLSImplicit:
		opts = append(opts, gomail.WithSSL()) // dial does the TLS
	case TLSNone:
		opts = append(opts, gomail.WithTLSPolicy(gomail.NoTLS))
		auth = gomail.SMTPAuthPlainNoEnc // check allows tls=none only to a loopback host
	}
	if s.cfg.Username != "" {
		// Fails if the server does not offer AUTH PLAIN.
		opts = append(opts, gomail.WithSMTPAuth(auth),
			gomail.WithUsername(s.cfg.Username), gomail.WithPassword(s.cfg.Password))
	}
	return opts
}

// dial connects, with TLS from the first byte for tls mode, and closes the
// connection when ctx ends: that bounds the whole session and stops it at
// shutdown (go-mail renews its own deadline at each step, and ends the context
// it passes here as soon as it has connected).
func (s *SMTPMailer) dial(ctx context.Context, tlsConfig *tls.Config) gomail.DialContextFunc {
	return func(dialCtx context.Context, network, addr string) (net.Conn, error) {
		var d net.Dialer
		var conn net.Conn
		var err error
		if s.cfg.TLS == TLSImplicit {
			conn, err = (&tls.Dialer{NetDialer: &d, Config: tlsConfig}).DialContext(dialCtx, network, addr)
		} else {
			conn, err = d.DialContext(dialCtx, network, addr)
		}
		if err != nil {
			return nil, err
		}
		context.AfterFunc(ctx, func() { conn.Close() })
		return conn, nil
	}
}

// message checks m and returns it as a go-mail message: plain text in UTF-8,
// quoted-printable, headers RFC 2047-encoded and folded by go-mail.
func (s *SMTPMailer) message(m *doorledger.Message) (*gomail.Msg, error) {
	if strings.ContainsAny(m.To, "\r\n") {
		return nil, fmt.Errorf("mail %d: recipient contains a line break", m.ID)
	}
	if strings.ContainsAny(m.Subject, "\r\n") {
		return nil, fmt.Errorf("mail %d: subject contains a line break", m.ID)
	}
	to, err := mail.ParseAddress(m.To) // one address, not a list
	if err != nil {
		return nil, fmt.Errorf("mail %d: recipient: %w", m.ID, err)
	}

	msg := gomail.NewMsg(gomail.WithNoDefaultUserAgent())
	msg.FromMailAddress(s.from)
	msg.ToMailAddress(to)
	msg.Subject(encodeLookalike(m.Subject))
	msg.SetMessageIDWithValue(messageID(m, s.from.Address))
	// RFC 3834: tells vacation responders not to answer the portal.
	msg.SetGenHeader("Auto-Submitted", "auto-generated")
	msg.SetBodyString(gomail.TypeTextPlain, m.Body)
	return msg, nil
}

// encodeLookalike returns v, or, when v is ASCII (which go-mail leaves as it
// is) yet holds "=?", v as RFC 2047 encoded words: a reader would otherwise
// decode text that merely looks like an encoded word into something else.
func encodeLookalike(v string) string {
	if !strings.Contains(v, "=?") || mime.QEncoding.Encode("utf-8", v) != v {
		return v
	}
	var words []string
	for chunk := range slices.Chunk([]byte(v), 45) { // 45 bytes: a 72-character word
		words = append(words, "=?utf-8?b?"+base64.StdEncoding.EncodeToString(chunk)+"?=")
	}
	return strings.Join(words, " ") // go-mail folds at the spaces
}

// messageID is stable for an outbox message, so that a resend after a lost
// acknowledgement can be recognised as the same mail by the receiver. It comes
// without the angle brackets, which go-mail adds.
func messageID(m *doorledger.Message, from string) string {
	domain := "doorledger.invalid"
	if i := strings.LastIndexByte(from, '@'); i >= 0 && i+1 < len(from) {
		domain = from[i+1:]
	}
	if m.ID != 0 {
		var created int64
		if !m.CreatedAt.IsZero() {
			created = m.CreatedAt.UnixMicro() // ids restart if the database is recreated
		}
		return fmt.Sprintf("doorledger.%d.%s@%s", m.ID, strconv.FormatInt(created, 36), domain)
	}
	var r [12]byte
	rand.Read(r[:])
	return "doorledger." + hex.EncodeToString(r[:]) + "@" + domain
}

// IsPermanent says whether err, from a Mailer's Send, is the SMTP server
// refusing the mail for good: a 5xx reply to MAIL, RCPT or DATA (an unknown
// recipient, a message refused as such). Sending it again would be refused
// again, so the Dispatcher gives up on it at once rather than retrying it for
// hours; an admin sees it as "could not deliver" and retries it once the cause
// is fixed. Everything else is temporary: a 4xx reply, a refused or dropped
// connection, a time-out, and failures before the mail transaction (TLS,
// AUTH), which are the server's or the configuration's and pass when fixed.
func IsPermanent(err error) bool {
	var se *gomail.SendError
	if !errors.As(err, &se) {
		return false
	}
	code := se.ErrorCode()
	return code >= 500 && code <= 599
}
