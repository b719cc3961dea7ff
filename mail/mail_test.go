package mail

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/doorledger/doorledger"
)

func TestLogMailer_DoesNotLogBody(t *testing.T) {
	var buf bytes.Buffer
	l := LogMailer{Logger: slog.New(slog.NewJSONHandler(&buf, nil))}
	m := &doorledger.Message{
		ID: 7, To: "zoe@example.com", Subject: "Bitte unterschreiben", Kind: "signing_link",
		Body: "https://portal.example.com/sign/one-time-token-8f3a91",
	}
	if err := l.Send(context.Background(), m); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	if strings.Contains(out, "one-time-token-8f3a91") {
		t.Errorf("log contains the body: %s", out)
	}
	for _, want := range []string{
		`"level":"INFO"`, `"msg":"mail (not sent: no SMTP configured)"`,
		`"id":7`, `"to":"zoe@example.com"`, `"subject":"Bitte unterschreiben"`, `"kind":"signing_link"`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %s: %s", want, out)
		}
	}
}

func TestParseSMTPURL(t *testing.T) {
	for _, tt := range []struct {
		in      string
		want    SMTPConfig
		wantErr string // substring; "" means success
	}{
		{
			in:   "smtp://user:pass@mail.example.com:587?from=portal@example.com&tls=starttls",
			want: SMTPConfig{Host: "mail.example.com", Port: 587, Username: "user", Password: "pass", From: "portal@example.com", TLS: TLSStartTLS, Timeout: DefaultSMTPTimeout},
		},
		{
			in:   "smtp://mail.example.com?from=portal@example.com",
			want: SMTPConfig{Host: "mail.example.com", Port: 587, From: "portal@example.com", TLS: TLSStartTLS, Timeout: DefaultSMTPTimeout},
		},
		{
			in:   "smtps://apikey:p%40ss%2Fw%3Ard@smtp.example.net?from=Doorledger%20%3Cportal@example.com%3E&timeout=10s",
			want: SMTPConfig{Host: "smtp.example.net", Port: 465, Username: "apikey", Password: "p@ss/w:rd", From: "Doorledger <portal@example.com>", TLS: TLSImplicit, Timeout: 10 * time.Second},
		},
		{
			in:   "smtp://mail.example.com:2465?from=portal@example.com&tls=tls",
			want: SMTPConfig{Host: "mail.example.com", Port: 2465, From: "portal@example.com", TLS: TLSImplicit, Timeout: DefaultSMTPTimeout},
		},
		{
			in:   "smtp://127.0.0.1:1025?from=portal@example.com&tls=none",
			want: SMTPConfig{Host: "127.0.0.1", Port: 1025, From: "portal@example.com", TLS: TLSNone, Timeout: DefaultSMTPTimeout},
		},
		{
			in:   "smtp://[::1]?from=portal@example.com&tls=none",
			want: SMTPConfig{Host: "::1", Port: 25, From: "portal@example.com", TLS: TLSNone, Timeout: DefaultSMTPTimeout},
		},
		{
			in:   "smtp://localhost:1025?from=portal@example.com&tls=none",
			want: SMTPConfig{Host: "localhost", Port: 1025, From: "portal@example.com", TLS: TLSNone, Timeout: DefaultSMTPTimeout},
		},
		{in: "smtp://mail.example.com?from=portal@example.com&tls=none", wantErr: "loopback"},
		{in: "smtp://mail.example.com", wantErr: "from address required"},
		{in: "smtp://mail.example.com?from=not-an-address", wantErr: "from address"},
		{in: "smtp://mail.example.com?form=portal@example.com", wantErr: "unknown parameter"},
		{in: "smtp://mail.example.com?from=a@example.com&from=b@example.com", wantErr: "2 times"},
		{in: "smtp://mail.example.com?from=portal@example.com&tls=ssl", wantErr: "tls"},
		{in: "smtp://mail.example.com?from=portal@example.com&timeout=soon", wantErr: "timeout"},
		{in: "smtp://mail.example.com:99999?from=portal@example.com", wantErr: "port"},
		{in: "smtp://mail.example.com:abc?from=portal@example.com", wantErr: "port"},
		{in: "http://mail.example.com?from=portal@example.com", wantErr: "scheme"},
		{in: "smtp://?from=portal@example.com", wantErr: "host required"},
		{in: "smtp://:hunter2@mail.example.com?from=portal@example.com", wantErr: "without a user name"},
		{in: "smtp://mail.example.com/path?from=portal@example.com", wantErr: "want smtp://"},
		{in: "smtp://user:hunter2%zz@mail.example.com?from=portal@example.com", wantErr: "invalid SMTP URL"},
		{in: "mail.example.com:587", wantErr: "scheme"},
	} {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseSMTPURL(tt.in)
			if tt.wantErr != "" {
				if err == nil {
					t.Fatalf("got %+v, want an error containing %q", got, tt.wantErr)
				}
				if !strings.Contains(err.Error(), tt.wantErr) {
					t.Errorf("error %q, want it to contain %q", err, tt.wantErr)
				}
				if strings.Contains(err.Error(), "hunter2") {
					t.Errorf("error %q repeats the password", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("got  %+v\nwant %+v", got, tt.want)
			}
		})
	}
}
