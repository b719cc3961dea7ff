package mail

import (
	"bytes"
	"context"
	"io"
	"mime"
	"mime/quotedprintable"
	"net"
	"net/mail"
	"strings"
	"testing"
	"time"

	"github.com/doorledger/doorledger"
)

func TestSMTPMailer_Send(t *testing.T) {
	body := "Guten Tag Zoë,\n\nbitte unterschreiben Sie hier:\nhttps://portal.example.com/sign/abc123=def\n.\n..leading dots\ntrailing space \n" +
		strings.Repeat("Straße ", 30) + "\n"
	for _, mode := range []string{TLSNone, TLSStartTLS, TLSImplicit} {
		t.Run(mode, func(t *testing.T) {
			srv := MustTestServer(t, mode, "portal", "s3cret")
			m := srv.MustMailer(t, srv.Config(mode))

			msg := &doorledger.Message{
				ID: 42, CreatedAt: time.Date(2025, 3, 1, 9, 0, 0, 0, time.UTC),
				To: "Zoë Nuñez <zoe@example.com>", Subject: "Einwilligung für Zoë Nuñez – Haus Ü",
				Body: body, Kind: "signing_link",
			}
			if err := m.Send(context.Background(), msg); err != nil {
				t.Fatal(err)
			}

			got := srv.Messages()
			if len(got) != 1 {
				t.Fatalf("server received %d messages, want 1", len(got))
			}
			r := got[0]
			if r.User != "portal" {
				t.Errorf("authenticated as %q, want portal", r.User)
			}
			if got, want := r.From, "portal@example.com"; got != want {
				t.Errorf("MAIL FROM %q, want %q", got, want)
			}
			if got, want := strings.Join(r.To, ","), "zoe@example.com"; got != want {
				t.Errorf("RCPT TO %q, want %q", got, want)
			}
			if bytes.Contains(bytes.ReplaceAll(r.Data, []byte("\r\n"), nil), []byte("\n")) {
				t.Error("message has a bare LF; want CRLF line endings")
			}
			for _, line := range strings.Split(string(r.Data), "\r\n") {
				if len(line) > 78 {
					t.Errorf("line longer than 78 characters: %q", line)
				}
			}

			pm, err := mail.ReadMessage(bytes.NewReader(r.Data))
			if err != nil {
				t.Fatal(err)
			}
			h := pm.Header
			dec := new(mime.WordDecoder)
			if subj, err := dec.DecodeHeader(h.Get("Subject")); err != nil {
				t.Error(err)
			} else if subj != msg.Subject {
				t.Errorf("Subject %q, want %q", subj, msg.Subject)
			}
			if to, err := h.AddressList("To"); err != nil {
				t.Error(err)
			} else if len(to) != 1 || to[0].Name != "Zoë Nuñez" || to[0].Address != "zoe@example.com" {
				t.Errorf("To %v", to)
			}
			if from, err := h.AddressList("From"); err != nil {
				t.Error(err)
			} else if len(from) != 1 || from[0].Name != "Doorledger" || from[0].Address != "portal@example.com" {
				t.Errorf("From %v", from)
			}
			if date, err := h.Date(); err != nil {
				t.Error(err)
			} else if d := time.Since(date); d < -time.Minute || d > time.Hour {
				t.Errorf("Date %v", date)
			}
			if got, want := h.Get("Message-ID"), "@example.com>"; !strings.HasPrefix(got, "<doorledger.42.") || !strings.HasSuffix(got, want) {
				t.Errorf("Message-ID %q", got)
			}
			for k, want := range map[string]string{
				"MIME-Version":              "1.0",
				"Content-Type":              "text/plain; charset=utf-8",
				"Content-Transfer-Encoding": "quoted-printable",
			} {
				if got := h.Get(k); got != want {
					t.Errorf("%s %q, want %q", k, got, want)
				}
			}
			decoded, err := io.ReadAll(quotedprintable.NewReader(pm.Body))
			if err != nil {
				t.Fatal(err)
			}
			if got, want := string(decoded), strings.ReplaceAll(body, "\n", "\r\n"); got != want {
				t.Errorf("body:\n%q\nwant\n%q", got, want)
			}
		})
	}
}

func TestSMTPMailer_AuthFailure(t *testing.T) {
	srv := MustTestServer(t, TLSStartTLS, "portal", "s3cret")
	cfg := srv.Config(TLSStartTLS)
	cfg.Password = "wrong"
	m := srv.MustMailer(t, cfg)
	err := m.Send(context.Background(), &doorledger.Message{ID: 1, To: "a@example.com", Subject: "Hi", Body: "x"})
	if err == nil {
		t.Fatal("Send with a wrong password succeeded")
	}
	if !strings.Contains(err.Error(), "auth") {
		t.Errorf("error %q does not say auth failed", err)
	}
	if strings.Contains(err.Error(), "wrong") {
		t.Errorf("error %q repeats the password", err)
	}
	if n := len(srv.Messages()); n != 0 {
		t.Errorf("server received %d messages", n)
	}
}

func TestSMTPMailer_RefusesHeaderInjection(t *testing.T) {
	srv := MustTestServer(t, TLSNone, "portal", "s3cret")
	m := srv.MustMailer(t, srv.Config(TLSNone))
	for name, msg := range map[string]*doorledger.Message{
		"subject CRLF": {To: "a@example.com", Subject: "Hello\r\nBcc: victim@example.com"},
		"subject LF":   {To: "a@example.com", Subject: "Hello\nBcc: victim@example.com"},
		"subject CR":   {To: "a@example.com", Subject: "Hello\rBcc: victim@example.com"},
		"to LF":        {To: "a@example.com\nBcc: victim@example.com", Subject: "Hello"},
		"to list":      {To: "a@example.com, victim@example.com", Subject: "Hello"},
	} {
		if err := m.Send(context.Background(), msg); err == nil {
			t.Errorf("%s: Send succeeded, want an error", name)
		}
	}
	if n := srv.Sessions(); n != 0 {
		t.Errorf("mailer opened %d sessions, want none", n)
	}
}

// A server that does not offer STARTTLS must not get the message in clear.
func TestSMTPMailer_NoSTARTTLSNoDowngrade(t *testing.T) {
	srv := MustTestServer(t, TLSNone, "portal", "s3cret")
	m := srv.MustMailer(t, srv.Config(TLSStartTLS))
	err := m.Send(context.Background(), &doorledger.Message{To: "a@example.com", Subject: "Hi", Body: "x"})
	if err == nil || !strings.Contains(err.Error(), "STARTTLS") {
		t.Fatalf("err = %v, want a STARTTLS error", err)
	}
	if n := len(srv.Messages()); n != 0 {
		t.Errorf("server received %d messages", n)
	}
}

// A server that accepts the connection and never answers is given up on after
// the timeout rather than holding the dispatcher.
func TestSMTPMailer_Timeout(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		var conns []net.Conn // silent until the test ends
		defer func() {
			for _, c := range conns {
				c.Close()
			}
		}()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			conns = append(conns, c)
		}
	}()
	port := l.Addr().(*net.TCPAddr).Port
	for _, mode := range []string{TLSNone, TLSStartTLS, TLSImplicit} {
		t.Run(mode, func(t *testing.T) {
			m, err := NewSMTPMailer(SMTPConfig{Host: "127.0.0.1", Port: port, TLS: mode, From: "portal@example.com", Timeout: 50 * time.Millisecond})
			if err != nil {
				t.Fatal(err)
			}
			done := make(chan error, 1)
			go func() { done <- m.Send(context.Background(), &doorledger.Message{To: "a@example.com", Subject: "Hi"}) }()
			select {
			case err := <-done:
				if err == nil {
					t.Fatal("Send to a silent server succeeded")
				}
			case <-time.After(10 * time.Second):
				t.Fatal("Send did not give up")
			}
		})
	}
}

func TestNewSMTPMailer_Defaults(t *testing.T) {
	m, err := NewSMTPMailer(SMTPConfig{Host: "mail.example.com", From: "portal@example.com"})
	if err != nil {
		t.Fatal(err)
	}
	cfg := m.Config()
	if cfg.TLS != TLSStartTLS || cfg.Port != 587 || cfg.Timeout != DefaultSMTPTimeout {
		t.Errorf("defaults: %+v", cfg)
	}
}

func TestEncodeHeader(t *testing.T) {
	for _, s := range []string{
		"Plain ASCII subject",
		"Zoë Nuñez",
		"=?utf-8?q?not_an_encoded_word?= 100% _under_ ? \t",
		"Einwilligung für Zoë Nuñez – Haus Ü",
		strings.Repeat("Unterschrift für Zoë Nuñez, ", 10),
		strings.Repeat("日本語の件名", 20),
	} {
		enc := encodeHeader("Subject", s)
		for i, line := range strings.Split("Subject: "+enc, "\r\n") {
			if len(line) > 76 {
				t.Errorf("%q: line %d has %d characters: %q", s, i, len(line), line)
			}
		}
		if got, err := new(mime.WordDecoder).DecodeHeader(strings.ReplaceAll(enc, "\r\n", "")); err != nil || got != s {
			t.Errorf("decode(encode(%q)) = %q, %v", s, got, err)
		}
	}
}
