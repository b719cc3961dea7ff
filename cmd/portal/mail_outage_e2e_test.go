package main

import (
	"bytes"
	"io"
	"log"
	"net"
	"net/http"
	"net/mail"
	"net/url"
	"regexp"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
)

// relay is an SMTP server on a fixed loopback address that keeps what it
// accepts, or refuses every recipient with refuse.
type relay struct {
	mu     sync.Mutex
	refuse *smtp.SMTPError
	got    [][]byte
	srv    *smtp.Server
	done   chan struct{}
}

func startRelay(t *testing.T, addr string, refuse *smtp.SMTPError) *relay {
	t.Helper()
	r := &relay{refuse: refuse, done: make(chan struct{})}
	r.srv = smtp.NewServer(smtp.BackendFunc(func(*smtp.Conn) (smtp.Session, error) { return &relaySession{r: r}, nil }))
	r.srv.Domain, r.srv.ReadTimeout, r.srv.WriteTimeout = "localhost", 10*time.Second, 10*time.Second
	r.srv.ErrorLog = log.New(io.Discard, "", 0)
	l, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	go func() { defer close(r.done); r.srv.Serve(l) }()
	t.Cleanup(r.Stop)
	return r
}

// Stop closes the relay: its port refuses connections.
func (r *relay) Stop() {
	r.srv.Close()
	<-r.done
}

func (r *relay) received() [][]byte {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([][]byte(nil), r.got...)
}

type relaySession struct{ r *relay }

func (s *relaySession) Mail(string, *smtp.MailOptions) error { return nil }
func (s *relaySession) Rcpt(string, *smtp.RcptOptions) error {
	s.r.mu.Lock()
	defer s.r.mu.Unlock()
	if s.r.refuse != nil {
		return s.r.refuse
	}
	return nil
}
func (s *relaySession) Data(r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	s.r.mu.Lock()
	defer s.r.mu.Unlock()
	s.r.got = append(s.r.got, b)
	return nil
}
func (s *relaySession) Reset()        {}
func (s *relaySession) Logout() error { return nil }

// The portal's mail server is down, then refuses for good, then accepts
// (issue 19): the consent request commits while the server is down; the
// Outbox shows the mail as retrying, then as "could not deliver" after a 5xx;
// an admin's Retry once the server accepts delivers it exactly once, and the
// signing link in it opens the signing page.
func TestEndToEndMailServerDownThenRefusing(t *testing.T) {
	addr := freeLoopbackAddr(t) // down: nothing listens on addr
	p := MustStartPortalEnv(t, "", map[string]string{"DOORLEDGER_SMTP_URL": "smtp://" + addr + "?from=portal@example.com&tls=none&timeout=5s"})
	lastPortal = p
	admin := NewClient(t, p.URL)
	admin.MustLogin(testAdminEmail, p.AdminPass)
	_, building, _ := admin.Post("/buildings/new", "/buildings", url.Values{"name": {"Elm Court"}, "address": {"2 Elm St"}, "timezone": {"America/Chicago"}})
	admin.Post(building, building+"/signers", url.Values{"signer_name": {"Ana Owner"}, "signer_title": {"Owner"}, "signer_email": {"ana@example.com"}})
	admin.Post("/users/new", "/users", url.Values{"name": {"Ivan Installer"}, "email": {"ivan@example.com"}, "role": {"installer"}, "company": {"FastKey"}, "password": {"correct horse battery"}})
	_, body := admin.Get("/users")
	userID := regexp.MustCompile(`href="/users/(\d+)">Ivan Installer`).FindStringSubmatch(body)[1]
	admin.Post(building, building+"/grants", url.Values{"user_id": {userID}})

	// The server is down: the request commits and answers at once.
	inst := NewClient(t, p.URL)
	inst.MustLogin("ivan@example.com", "correct horse battery")
	_, body = inst.Get(building + "/consents/new")
	signerID := regexp.MustCompile(`<option value="(\d+)"[^>]*>Ana Owner`).FindStringSubmatch(body)[1]
	status, _, body := inst.PostMultipart(building+"/consents/new", building+"/consents", url.Values{"vendor": {"Acme"}, "model": {"K2"}, "serial": {"SN-9"},
		"location": {"lobby panel"}, "opens": {"lobby door"}, "signer_id": {signerID}, "mode": {"link"}}, nil)
	if status != http.StatusSeeOther {
		t.Fatalf("consent request while the mail server is down: %d\n%s", status, body)
	}
	page := awaitPage(t, admin, "/outbox", "not sent, will retry")
	row := regexp.MustCompile(`(?s)<tr id="mail-(\d+)" class="mail">.*?</tr>`).FindStringSubmatch(page)
	if row == nil || !bytes.Contains([]byte(row[0]), []byte("connection refused")) {
		t.Fatalf("the outbox while the server is down:\n%s", page)
	}
	id, _ := strconv.Atoi(row[1])
	retry := "/outbox/" + strconv.Itoa(id) + "/retry"

	// The server is back but refuses the recipient for good: an admin's
	// Retry meets a 550, and the mail is given up on at once.
	refusing := startRelay(t, addr, &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "No such user"})
	if status, _, body := admin.Post("/outbox", retry, nil); status != http.StatusSeeOther {
		t.Fatalf("retry: %d\n%s", status, body)
	}
	page = awaitPage(t, admin, "/outbox", "could not deliver")
	if !bytes.Contains([]byte(page), []byte("No such user")) || !bytes.Contains([]byte(page), []byte(`action="`+retry+`"`)) {
		t.Fatalf("the outbox after a 550:\n%s", page)
	}
	refusing.Stop()

	// It accepts: the admin's Retry delivers the mail once, and its link works.
	accepting := startRelay(t, addr, nil)
	if status, _, body := admin.Post("/outbox", retry, nil); status != http.StatusSeeOther {
		t.Fatalf("retry: %d\n%s", status, body)
	}
	for deadline := time.Now().Add(20 * time.Second); len(accepting.received()) == 0; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the retried mail never reached the relay; portal log:\n%s", p.Stderr.String())
		}
	}
	// Marked sent: the row offers no retry any more.
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if _, page := admin.Get("/outbox"); !bytes.Contains([]byte(page), []byte(`action="`+retry+`"`)) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the delivered mail still offers a retry")
		}
	}
	got := accepting.received()
	if len(got) != 1 {
		t.Fatalf("the relay received %d mails, want 1", len(got))
	}
	msg, err := mail.ReadMessage(bytes.NewReader(got[0]))
	if err != nil {
		t.Fatal(err)
	}
	text, _ := io.ReadAll(msg.Body)
	link := regexp.MustCompile(`/sign/[A-Za-z0-9_-]+`).Find(bytes.ReplaceAll(text, []byte("=\r\n"), nil))
	if link == nil {
		t.Fatalf("no signing link in the mail:\n%s", text)
	}
	if status, body := NewClient(t, p.URL).Get(string(link)); status != http.StatusOK || !regexp.MustCompile(`name="terms_sha256"`).MatchString(body) {
		t.Fatalf("the delivered signing link: %d\n%s", status, body)
	}
	if n := len(accepting.received()); n != 1 {
		t.Fatalf("delivered %d times", n)
	}
}
