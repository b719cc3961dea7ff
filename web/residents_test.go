package web_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/doorledger/doorledger"
	"github.com/doorledger/doorledger/db/sqlite"
	"github.com/doorledger/doorledger/web"
)

// noticeSlug is building A's current notice slug.
func (f *fixture) noticeSlug(tb testing.TB) string {
	tb.Helper()
	var slug string
	if err := f.db.Reader().QueryRow(`SELECT slug FROM building_notices WHERE building_id = ?`, f.A.ID).Scan(&slug); err != nil {
		tb.Fatal(err)
	}
	return slug
}

var residentSeq int

// residentToken makes a fresh subscriber of building A and returns the token
// of its link with the prefix: the confirmation link, or (once confirmed and
// notified of a change) a notice's unsubscribe link.
func (f *fixture) residentToken(tb testing.TB, prefix string) string {
	tb.Helper()
	residentSeq++
	ctx := context.Background()
	if err := f.residents.Subscribe(ctx, f.noticeSlug(tb), fmt.Sprintf("resident%d@example.net", residentSeq)); err != nil {
		tb.Fatal(err)
	}
	confirm := f.lastToken(tb, doorledger.ResidentConfirmPath)
	if prefix == doorledger.ResidentConfirmPath {
		return confirm
	}
	must(f.residents.ConfirmSubscription(ctx, confirm))(tb)
	must(sqlite.NewDeviceService(f.db).RecordFoundDevice(sys(), f.A.ID, doorledger.DeviceDetails{Vendor: "Ghost", Serial: fmt.Sprintf("G-%d", residentSeq), Location: "panel"}))(tb)
	if n := must(f.residents.NotifyResidents(ctx))(tb); n == 0 {
		tb.Fatal("no notice queued")
	}
	return f.lastToken(tb, prefix)
}

// limitedServer is the portal's server on the fixture's services, with the
// residents' pages held to limit per client.
func (f *fixture) limitedServer(limit web.RateLimit) http.Handler {
	return web.NewServer(web.Config{
		Users: f.users, Buildings: f.buildings, Residents: f.residents,
		SessionKeys:      [][]byte{[]byte(strings.Repeat("h", 64)), []byte(strings.Repeat("b", 32))},
		Logger:           slog.New(slog.NewTextHandler(io.Discard, nil)),
		NoticeRate:       limit,
		ResidentPostRate: limit,
	}).Handler()
}

// readSpy is a request body that records whether anything read it.
type readSpy struct {
	r    io.Reader
	read bool
}

func (s *readSpy) Read(p []byte) (int, error) {
	s.read = true
	return s.r.Read(p)
}

// Each client (an IPv4 address, or an IPv6 /64) gets its own allowance on the
// residents' pages; past it the answer is 429 with Retry-After, and a post's
// body is not read at all.
func TestResidentRateLimit(t *testing.T) {
	f := newFixture(t)
	h := f.limitedServer(web.RateLimit{Every: time.Hour, Burst: 2})
	notice := doorledger.NoticePath + f.noticeSlug(t)
	get := func(remote string) *httptest.ResponseRecorder {
		req := httptest.NewRequest(http.MethodGet, notice, nil)
		req.RemoteAddr = remote
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec
	}
	for i, tc := range []struct {
		remote string
		want   int
	}{
		{"192.0.2.1:1000", 200}, {"192.0.2.1:1001", 200}, {"192.0.2.1:1002", 429},
		{"192.0.2.2:1000", 200},
		{"[2001:db8:1:2::1]:1000", 200}, {"[2001:db8:1:2:ffff::9]:1000", 200}, {"[2001:db8:1:2::77]:1000", 429},
		{"[2001:db8:1:3::1]:1000", 200},
	} {
		rec := get(tc.remote)
		if rec.Code != tc.want {
			t.Errorf("%d: GET from %s: %d, want %d", i, tc.remote, rec.Code, tc.want)
		}
		if tc.want == 429 {
			if ra, err := strconv.Atoi(rec.Header().Get("Retry-After")); err != nil || ra < 1 || ra > 3600 {
				t.Errorf("%d: Retry-After %q", i, rec.Header().Get("Retry-After"))
			}
		}
	}

	// A post past the limit is answered before its body is read.
	post := func() (*httptest.ResponseRecorder, *readSpy) {
		spy := &readSpy{r: strings.NewReader("location=spam&_csrf=x")}
		req := httptest.NewRequest(http.MethodPost, notice+"/report", spy)
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.RemoteAddr = "198.51.100.7:4000"
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec, spy
	}
	for i := range 2 {
		if rec, spy := post(); rec.Code == http.StatusTooManyRequests || !spy.read {
			t.Fatalf("post %d: %d, body read %v", i, rec.Code, spy.read)
		}
	}
	if rec, spy := post(); rec.Code != http.StatusTooManyRequests || spy.read {
		t.Errorf("post past the limit: %d, body read %v; want 429 before reading", rec.Code, spy.read)
	}
}
