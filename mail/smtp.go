package mail

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"mime"
	"mime/quotedprintable"
	"net"
	"net/mail"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/doorledger/doorledger"
	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
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
// that a pooled connection would only add idle-timeout handling.
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
	msg, to, err := s.compose(m, time.Now())
	if err != nil {
		return err
	}

	ctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
	defer cancel()
	c, stop, err := s.dial(ctx)
	if err != nil {
		return s.fail(ctx, "connect", err)
	}
	defer stop()
	defer c.Close()

	if s.cfg.Username != "" {
		if ok, _ := c.Extension("AUTH"); !ok {
			return s.fail(ctx, "auth", errors.New("server does not offer AUTH"))
		}
		if err := c.Auth(sasl.NewPlainClient("", s.cfg.Username, s.cfg.Password)); err != nil {
			return s.fail(ctx, "auth", err)
		}
	}
	// SendMail dot-stuffs the data and checks every reply code.
	if err := c.SendMail(s.from.Address, []string{to}, bytes.NewReader(msg)); err != nil {
		return s.fail(ctx, "send", err)
	}
	// The server has taken the message; a failed QUIT must not cause a resend.
	_ = c.Quit()
	return nil
}

func (s *SMTPMailer) fail(ctx context.Context, step string, err error) error {
	if ctxErr := ctx.Err(); ctxErr != nil {
		err = fmt.Errorf("%w (%v)", ctxErr, err)
	}
	return fmt.Errorf("smtp %s: %s: %w", net.JoinHostPort(s.cfg.Host, strconv.Itoa(s.cfg.Port)), step, err)
}

// dial connects and, for starttls, upgrades the connection. The connection is
// closed when ctx ends, which bounds every step, the STARTTLS exchange included
// (go-smtp's own per-command deadlines would each allow the full Timeout). The
// caller must call stop when done.
func (s *SMTPMailer) dial(ctx context.Context) (c *smtp.Client, stop func() bool, err error) {
	addr := net.JoinHostPort(s.cfg.Host, strconv.Itoa(s.cfg.Port))
	tlsConfig := &tls.Config{ServerName: s.cfg.Host, RootCAs: s.rootCAs, MinVersion: tls.VersionTLS12}
	var d net.Dialer
	var conn net.Conn
	if s.cfg.TLS == TLSImplicit {
		conn, err = (&tls.Dialer{NetDialer: &d, Config: tlsConfig}).DialContext(ctx, "tcp", addr)
	} else {
		conn, err = d.DialContext(ctx, "tcp", addr)
	}
	if err != nil {
		return nil, nil, err
	}
	stop = context.AfterFunc(ctx, func() { conn.Close() })
	if s.cfg.TLS == TLSStartTLS {
		// Fails, rather than carrying on in clear, if STARTTLS is not offered.
		if c, err = smtp.NewClientStartTLS(conn, tlsConfig); err != nil {
			stop()
			conn.Close()
			return nil, nil, err
		}
	} else {
		c = smtp.NewClient(conn)
	}
	c.CommandTimeout = s.cfg.Timeout
	c.SubmissionTimeout = s.cfg.Timeout
	return c, stop, nil
}

// compose renders m as an RFC 5322 message with CRLF line endings and returns
// it with the bare recipient address for the envelope.
func (s *SMTPMailer) compose(m *doorledger.Message, now time.Time) ([]byte, string, error) {
	if strings.ContainsAny(m.To, "\r\n") {
		return nil, "", fmt.Errorf("mail %d: recipient contains a line break", m.ID)
	}
	if strings.ContainsAny(m.Subject, "\r\n") {
		return nil, "", fmt.Errorf("mail %d: subject contains a line break", m.ID)
	}
	to, err := mail.ParseAddress(m.To)
	if err != nil {
		return nil, "", fmt.Errorf("mail %d: recipient: %w", m.ID, err)
	}

	var b bytes.Buffer
	header := func(k, v string) { b.WriteString(k + ": " + v + "\r\n") }
	header("From", s.from.String()) // String Q-encodes a non-ASCII display name
	header("To", to.String())
	header("Subject", encodeHeader("Subject", m.Subject))
	header("Date", now.Format(time.RFC1123Z))
	header("Message-ID", messageID(m, s.from.Address))
	header("MIME-Version", "1.0")
	header("Content-Type", "text/plain; charset=utf-8")
	header("Content-Transfer-Encoding", "quoted-printable")
	// RFC 3834: tells vacation responders not to answer the portal.
	header("Auto-Submitted", "auto-generated")
	b.WriteString("\r\n")

	// Text mode turns every line ending into CRLF and keeps lines under 76 bytes.
	qp := quotedprintable.NewWriter(&b)
	if _, err := qp.Write([]byte(m.Body)); err != nil {
		return nil, "", err
	}
	if err := qp.Close(); err != nil {
		return nil, "", err
	}
	if !bytes.HasSuffix(b.Bytes(), []byte("\r\n")) {
		b.WriteString("\r\n")
	}
	return b.Bytes(), to.Address, nil
}

// encodeHeader returns v for the header named name: unchanged when it is
// printable ASCII, otherwise as RFC 2047 Q-encoded words, folded so that no line
// passes the 76 characters RFC 2047 allows. (mime.QEncoding splits words but does
// not know the header name's width, so its first line can run long.)
func encodeHeader(name, v string) string {
	// Text that merely looks like an encoded word ("=?") is encoded too, or a
	// reader would decode it.
	if mime.QEncoding.Encode("utf-8", v) == v && !strings.Contains(v, "=?") {
		return v
	}
	const open, close = "=?utf-8?q?", "?="
	var b strings.Builder
	width := 76 - len(name) - len(": ") // first line
	var word []byte
	var buf [utf8.UTFMax]byte
	for _, r := range v {
		var enc []byte
		for _, c := range buf[:utf8.EncodeRune(buf[:], r)] {
			switch {
			case c == ' ':
				enc = append(enc, '_')
			case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', strings.IndexByte("!*+-/", c) >= 0:
				enc = append(enc, c) // safe anywhere an encoded word may stand
			default:
				enc = fmt.Appendf(enc, "=%02X", c)
			}
		}
		// A character's bytes stay in one word, so each word is valid UTF-8.
		if len(word) > 0 && len(open)+len(word)+len(enc)+len(close) > width {
			b.WriteString(open + string(word) + close + "\r\n ")
			word, width = word[:0], 75
		}
		word = append(word, enc...)
	}
	b.WriteString(open + string(word) + close)
	return b.String()
}

// messageID is stable for an outbox message, so that a resend after a lost
// acknowledgement can be recognised as the same mail by the receiver.
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
		return fmt.Sprintf("<doorledger.%d.%s@%s>", m.ID, strconv.FormatInt(created, 36), domain)
	}
	var r [12]byte
	rand.Read(r[:])
	return "<doorledger." + hex.EncodeToString(r[:]) + "@" + domain + ">"
}
