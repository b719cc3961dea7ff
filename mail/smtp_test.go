package mail

import (
	"bytes"
	"context"
	"crypto/x509"
	"errors"
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
				"Content-Transfer-Encoding": "quoted-printable",
				"Auto-Submitted":            "auto-generated",
			} {
				if got := h.Get(k); got != want {
					t.Errorf("%s %q, want %q", k, got, want)
				}
			}
			// Charset names are case-insensitive (RFC 2046).
			if mt, params, err := mime.ParseMediaType(h.Get("Content-Type")); err != nil || mt != "text/plain" || !strings.EqualFold(params["charset"], "utf-8") {
				t.Errorf("Content-Type %q, want text/plain; charset=utf-8", h.Get("Content-Type"))
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
	if !strings.Contains(strings.ToLower(err.Error()), "auth") {
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
	port := silentServer(t)
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

// Subjects and display names reach the reader as they were written: RFC 2047
// encoded where they are not plain ASCII (or merely look like an encoded
// word), with no header line longer than the 76 characters RFC 2047 allows.
func TestEncodeHeader(t *testing.T) {
	srv := MustTestServer(t, TLSNone, "portal", "s3cret")
	m := srv.MustMailer(t, srv.Config(TLSNone))
	dec := new(mime.WordDecoder)
	for i, s := range []string{
		"Plain ASCII subject",
		"Zoë Nuñez",
		"=?utf-8?q?not_an_encoded_word?= 100% _under_ ? \t",
		"=?utf-8?q?=E2=80=AEtxt.exe?=",
		"Einwilligung für Zoë Nuñez – Haus Ü",
		strings.Repeat("Unterschrift für Zoë Nuñez, ", 10),
		strings.Repeat("日本語の件名", 20),
	} {
		to := (&mail.Address{Name: s, Address: "zoe@example.com"}).String()
		if err := m.Send(context.Background(), &doorledger.Message{ID: int64(i + 1), To: to, Subject: s, Body: "x"}); err != nil {
			t.Fatalf("%q: %v", s, err)
		}
		msgs := srv.Messages()
		data := msgs[len(msgs)-1].Data
		head, _, _ := bytes.Cut(data, []byte("\r\n\r\n"))
		for _, line := range strings.Split(string(head), "\r\n") {
			if len(line) > 76 {
				t.Errorf("%q: header line has %d characters: %q", s, len(line), line)
			}
		}
		pm, err := mail.ReadMessage(bytes.NewReader(data))
		if err != nil {
			t.Fatal(err)
		}
		if got, err := dec.DecodeHeader(pm.Header.Get("Subject")); err != nil || got != s {
			t.Errorf("Subject %q, want %q (%v)", got, s, err)
		}
		if got, err := pm.Header.AddressList("To"); err != nil || len(got) != 1 || got[0].Name != s {
			t.Errorf("To %v, want the name %q (%v)", got, s, err)
		}
	}
}

// Ending the context (the dispatcher at shutdown) ends a Send at once, not after
// the timeout, even with the session well under way.
func TestSMTPMailer_CancelStopsSend(t *testing.T) {
	for _, mode := range []string{TLSNone, TLSStartTLS, TLSImplicit} {
		t.Run(mode, func(t *testing.T) {
			srv := MustTestServer(t, mode, "portal", "s3cret")
			stalled := srv.StallAtMail(t)
			cfg := srv.Config(mode)
			cfg.Timeout = time.Hour
			m := srv.MustMailer(t, cfg)
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- m.Send(ctx, &doorledger.Message{To: "a@example.com", Subject: "Hi"}) }()
			select { // past TLS and AUTH, waiting for the answer to MAIL FROM
			case <-stalled:
			case err := <-done:
				t.Fatalf("Send returned before MAIL FROM: %v", err)
			}
			cancel()
			select {
			case err := <-done:
				if !errors.Is(err, context.Canceled) {
					t.Fatalf("err = %v, want context.Canceled", err)
				}
			case <-time.After(time.Minute):
				t.Fatal("Send did not stop when its context ended")
			}
		})
	}
}

// The server's certificate is checked, for STARTTLS and implicit TLS alike: a
// mailer that does not trust the server's CA sends nothing.
func TestSMTPMailer_VerifiesCertificate(t *testing.T) {
	for _, mode := range []string{TLSStartTLS, TLSImplicit} {
		t.Run(mode, func(t *testing.T) {
			srv := MustTestServer(t, mode, "portal", "s3cret")
			m, err := NewSMTPMailer(srv.Config(mode)) // system roots only
			if err != nil {
				t.Fatal(err)
			}
			err = m.Send(context.Background(), &doorledger.Message{To: "a@example.com", Subject: "Hi", Body: "x"})
			var unknown x509.UnknownAuthorityError
			if !errors.As(err, &unknown) {
				t.Fatalf("err = %v, want an unknown authority error", err)
			}
			if n := len(srv.Messages()); n != 0 {
				t.Errorf("server received %d messages", n)
			}
		})
	}
}

// Once the server has accepted the message, a connection lost before QUIT is
// answered is a success: an error would make the dispatcher send it again.
func TestSMTPMailer_AcceptedThenQuitFails(t *testing.T) {
	srv := mustTestServer(t, TLSNone, "portal", "s3cret", dropQuit)
	m := srv.MustMailer(t, srv.Config(TLSNone))
	if err := m.Send(context.Background(), &doorledger.Message{ID: 1, To: "a@example.com", Subject: "Hi", Body: "x"}); err != nil {
		t.Fatalf("Send: %v", err)
	}
	if n := len(srv.Messages()); n != 1 {
		t.Errorf("server received %d messages, want 1", n)
	}
}

// silentServer listens on 127.0.0.1, accepts connections and never answers, until
// the test ends. It returns the port.
func silentServer(t *testing.T) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		var conns []net.Conn
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
	t.Cleanup(func() { l.Close(); <-done })
	return l.Addr().(*net.TCPAddr).Port
}
