package devicectl_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/doorledger/doorledger"
	"github.com/doorledger/doorledger/devicectl"
)

// vendor is an httptest vendor endpoint that verifies each request's
// signature and answers with the next status of its script (200 after it).
type vendor struct {
	mu       sync.Mutex
	statuses []int
	bodies   []doorledger.DesiredState
	errs     []error
}

func (v *vendor) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	v.mu.Lock()
	defer v.mu.Unlock()
	v.errs = append(v.errs, devicectl.VerifySignature(r.Header.Get(devicectl.SignatureHeader), body, [][]byte{[]byte("vendor-secret")}, time.Now(), 0))
	var d doorledger.DesiredState
	_ = json.Unmarshal(body, &d)
	v.bodies = append(v.bodies, d)
	status := http.StatusOK
	if len(v.statuses) > 0 {
		status, v.statuses = v.statuses[0], v.statuses[1:]
	}
	w.WriteHeader(status)
	io.WriteString(w, http.StatusText(status))
}

func newWebhook(t *testing.T, v *vendor) *devicectl.Webhook {
	t.Helper()
	srv := httptest.NewServer(v)
	t.Cleanup(srv.Close)
	w, err := devicectl.NewWebhook(devicectl.WebhookConfig{
		Target: func(_ context.Context, id int64) (devicectl.WebhookTarget, error) {
			return devicectl.WebhookTarget{URL: srv.URL + "/devices", Secret: []byte("vendor-secret")}, nil
		},
		MaxAttempts: 4,
		BaseDelay:   time.Millisecond,
		MaxDelay:    5 * time.Millisecond,
		Logger:      testLogger(),
	})
	if err != nil {
		t.Fatal(err)
	}
	return w
}

var desired = doorledger.DesiredState{DeviceID: 5, CommandID: 11, State: doorledger.StateDisabled, Version: 3, IssuedAt: time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)}

func TestWebhook_PushIsSigned(t *testing.T) {
	v := &vendor{}
	w := newWebhook(t, v)
	if err := w.Push(context.Background(), desired); err != nil {
		t.Fatal(err)
	}
	if len(v.bodies) != 1 || v.errs[0] != nil {
		t.Fatalf("requests %d, signature error %v", len(v.bodies), v.errs)
	}
	if got := v.bodies[0]; got.DeviceID != 5 || got.Version != 3 || got.State != doorledger.StateDisabled || got.CommandID != 11 {
		t.Errorf("vendor got %+v", got)
	}
}

func TestWebhook_RetriesServerErrors(t *testing.T) {
	v := &vendor{statuses: []int{500, 503, 200}}
	w := newWebhook(t, v)
	if err := w.Push(context.Background(), desired); err != nil {
		t.Fatal(err)
	}
	if got := len(v.bodies); got != 3 {
		t.Errorf("requests = %d, want 3", got)
	}
	for i, err := range v.errs {
		if err != nil {
			t.Errorf("attempt %d: signature %v", i, err)
		}
	}
}

func TestWebhook_GivesUp(t *testing.T) {
	v := &vendor{statuses: []int{500, 500, 500, 500, 500}}
	w := newWebhook(t, v)
	err := w.Push(context.Background(), desired)
	if err == nil || !strings.Contains(err.Error(), "gave up after 4 attempts") {
		t.Errorf("err = %v", err)
	}
	if got := len(v.bodies); got != 4 {
		t.Errorf("requests = %d, want 4 (MaxAttempts)", got)
	}
}

func TestWebhook_ClientErrorsNotRetried(t *testing.T) {
	for _, status := range []int{400, 401, 404, 422} {
		v := &vendor{statuses: []int{status}}
		w := newWebhook(t, v)
		err := w.Push(context.Background(), desired)
		if err == nil || !strings.Contains(err.Error(), "refused") {
			t.Errorf("%d: err = %v", status, err)
		}
		if got := len(v.bodies); got != 1 {
			t.Errorf("%d: requests = %d, want 1", status, got)
		}
	}
}

func TestWebhook_RespectsContext(t *testing.T) {
	v := &vendor{statuses: []int{500, 500, 500, 500}}
	srv := httptest.NewServer(v)
	defer srv.Close()
	w, err := devicectl.NewWebhook(devicectl.WebhookConfig{
		Target: func(context.Context, int64) (devicectl.WebhookTarget, error) {
			return devicectl.WebhookTarget{URL: srv.URL, Secret: []byte("vendor-secret")}, nil
		},
		MaxAttempts: 10,
		BaseDelay:   time.Hour, // only ctx can end the wait
		Logger:      testLogger(),
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		for {
			v.mu.Lock()
			n := len(v.bodies)
			v.mu.Unlock()
			if n > 0 {
				cancel()
				return
			}
			time.Sleep(time.Millisecond)
		}
	}()
	if err := w.Push(ctx, desired); err == nil || !strings.Contains(err.Error(), "context canceled") {
		t.Errorf("err = %v", err)
	}
}

func TestWebhook_NetworkErrorRetried(t *testing.T) {
	v := &vendor{}
	srv := httptest.NewServer(v)
	defer srv.Close()
	calls := 0
	w, err := devicectl.NewWebhook(devicectl.WebhookConfig{
		Target: func(context.Context, int64) (devicectl.WebhookTarget, error) {
			return devicectl.WebhookTarget{URL: srv.URL, Secret: []byte("vendor-secret")}, nil
		},
		HTTPClient: &http.Client{Transport: roundTripFunc(func(r *http.Request) (*http.Response, error) {
			calls++
			if calls == 1 {
				return nil, io.ErrUnexpectedEOF // connection reset
			}
			return http.DefaultTransport.RoundTrip(r)
		})},
		BaseDelay: time.Millisecond,
		Logger:    testLogger(),
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Push(context.Background(), desired); err != nil {
		t.Fatal(err)
	}
	if calls != 2 || len(v.bodies) != 1 {
		t.Errorf("calls %d, delivered %d", calls, len(v.bodies))
	}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func TestVerifySignature(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	body := []byte(`{"event_id":"e1"}`)
	oldKey, newKey := []byte("old-secret"), []byte("new-secret")
	rotation := [][]byte{newKey, oldKey}

	for _, tc := range []struct {
		name   string
		header string
		body   []byte
		keys   [][]byte
		code   string // "" means accepted
		msg    string
	}{
		{"new key", devicectl.Sign(newKey, now, body), body, rotation, "", ""},
		{"old key during rotation", devicectl.Sign(oldKey, now, body), body, rotation, "", ""},
		{"old key after rotation", devicectl.Sign(oldKey, now, body), body, [][]byte{newKey}, doorledger.EUNAUTHORIZED, "no signature matches"},
		{"one of two v1s matches", devicectl.Sign(oldKey, now, body) + ",v1=" + strings.Repeat("ab", 32), body, [][]byte{oldKey}, "", ""},
		{"edge of window", devicectl.Sign(newKey, now.Add(-300*time.Second), body), body, rotation, "", ""},
		{"stale (replayed after the window)", devicectl.Sign(newKey, now.Add(-301*time.Second), body), body, rotation, doorledger.EUNAUTHORIZED, "Stale"},
		{"from the future", devicectl.Sign(newKey, now.Add(10*time.Minute), body), body, rotation, doorledger.EUNAUTHORIZED, "Stale"},
		{"body changed", devicectl.Sign(newKey, now, body), []byte(`{"event_id":"e2"}`), rotation, doorledger.EUNAUTHORIZED, "no signature matches"},
		{"timestamp changed", strings.Replace(devicectl.Sign(newKey, now, body), "t=1800000000", "t=1800000001", 1), body, rotation, doorledger.EUNAUTHORIZED, "no signature matches"},
		{"wrong key", devicectl.Sign([]byte("guess"), now, body), body, rotation, doorledger.EUNAUTHORIZED, "no signature matches"},
		{"missing", "", body, rotation, doorledger.EUNAUTHORIZED, "Missing"},
		{"no timestamp", "v1=" + strings.Repeat("ab", 32), body, rotation, doorledger.EINVALID, "no timestamp"},
		{"no signature", "t=1800000000", body, rotation, doorledger.EINVALID, "no v1"},
		{"not hex", "t=1800000000,v1=zz", body, rotation, doorledger.EINVALID, "not a hex"},
		{"short signature", "t=1800000000,v1=abcd", body, rotation, doorledger.EINVALID, "not a hex"},
		{"timestamp not a number", "t=yesterday,v1=" + strings.Repeat("ab", 32), body, rotation, doorledger.EINVALID, "not Unix seconds"},
		{"two timestamps", "t=1,t=2,v1=" + strings.Repeat("ab", 32), body, rotation, doorledger.EINVALID, "more than one"},
		{"garbage", "hello", body, rotation, doorledger.EINVALID, "key=value"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := devicectl.VerifySignature(tc.header, tc.body, tc.keys, now, 300*time.Second)
			if got := doorledger.ErrorCode(err); got != tc.code {
				t.Fatalf("code %q (%v), want %q", got, err, tc.code)
			}
			if tc.msg != "" && !strings.Contains(doorledger.ErrorMessage(err), tc.msg) {
				t.Errorf("message %q lacks %q", doorledger.ErrorMessage(err), tc.msg)
			}
		})
	}

	if err := devicectl.VerifySignature(devicectl.Sign(newKey, now, body), body, nil, now, 0); doorledger.ErrorCode(err) != doorledger.EINTERNAL {
		t.Errorf("no secrets configured: %v, want an internal error", err)
	}
}
