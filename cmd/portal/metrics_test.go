package main

import (
	"context"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/doorledger/doorledger"
)

// /metrics on its own address, behind a bearer token: the route patterns of
// the requests made (never a raw path with its one-time token), the revoke a
// device confirmed in the latency histogram, the commands by status, the
// devices connected and the database pools.
func TestMetricsEndToEnd(t *testing.T) {
	const token = "scrape-secret-42"
	p := MustStartPortalEnv(t, "", map[string]string{"DOORLEDGER_METRICS_TOKEN": token}, "-metrics-addr", "127.0.0.1:0")
	m := regexp.MustCompile(`Metrics: (http://\S+/metrics)`).FindStringSubmatch(p.Stdout.String())
	if m == nil {
		t.Fatalf("the portal does not say where its metrics are:\n%s", p.Stdout.String())
	}
	metricsURL := m[1]
	if strings.Contains(p.URL, strings.TrimSuffix(strings.TrimPrefix(metricsURL, "http://"), "/metrics")) {
		t.Fatalf("metrics on the portal's own address %s", p.URL)
	}

	mgr, device, id, secret := consentedDevice(t, p)
	sim := startSim(t, p, id, secret, t.TempDir())
	awaitApplied(t, sim, 1, doorledger.StateEnabled)
	mgr.Post(device, device+"/revoke", nil)
	awaitApplied(t, sim, 2, doorledger.StateDisabled)
	// A one-time token in a path must never become a label.
	resp, err := http.Get(p.URL + "/sign/one-time-token-that-must-not-leak")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()

	scrape := func(auth string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, metricsURL, nil)
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, _ := scrape(""); code != http.StatusUnauthorized {
		t.Errorf("scrape without the token: %d, want 401", code)
	}
	if code, _ := scrape("Bearer wrong"); code != http.StatusUnauthorized {
		t.Errorf("scrape with a wrong token: %d, want 401", code)
	}
	var body string
	deadline := time.Now().Add(20 * time.Second)
	for {
		var code int
		code, body = scrape("Bearer " + token)
		if code != http.StatusOK {
			t.Fatalf("scrape: %d\n%s", code, body)
		}
		if strings.Contains(body, "doorledger_revoke_latency_seconds_count 1\n") || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	for _, want := range []string{
		`doorledger_http_requests_total{code="200",method="GET",route="/devices/:device"}`,
		`doorledger_http_requests_total{code="303",method="POST",route="/devices/:device/revoke"}`,
		`doorledger_http_request_duration_seconds_bucket{method="POST",route="/login",le="`,
		"doorledger_revoke_latency_seconds_count 1\n",
		`doorledger_revoke_latency_seconds_bucket{le="60"} 1`,
		"doorledger_devices_connected 1\n",
		`doorledger_device_messages_total{what="reports"}`,
		`doorledger_group_commits_total{committer="device_reports"}`,
		`go_sql_max_open_connections{db_name="sqlite_write"} 1`,
		`doorledger_outbox_messages{state="failed"} 0`,
		"doorledger_log_sequencing_lag_seconds ",
		"doorledger_ops_scrape_error 0\n",
		"go_goroutines ",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	// The enable and the revoke: both confirmed, or the enable superseded.
	value := func(status string) int {
		m := regexp.MustCompile(`doorledger_commands\{status="` + status + `"\} (\d+)`).FindStringSubmatch(body)
		if m == nil {
			t.Errorf("metrics lack doorledger_commands{status=%q}", status)
			return 0
		}
		n, _ := strconv.Atoi(m[1])
		return n
	}
	if got := value("confirmed") + value("superseded"); got != 2 || value("confirmed") < 1 {
		t.Errorf("commands confirmed %d, superseded %d; want the revoke confirmed and 2 in all", value("confirmed"), value("superseded"))
	}
	if strings.Contains(body, "one-time-token") {
		t.Error("a request's raw path became a metrics label")
	}
	if t.Failed() {
		t.Logf("metrics:\n%s", body)
	}
}

// /readyz says not ready while the audit log's sequencer is more than ten
// seconds behind, and ready again once it caught up.
func TestReadyWhenLogSequencerBehind(t *testing.T) {
	a, err := openApp(&config{DataDir: t.TempDir(), BcryptCost: 4}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	key, err := logKey(a.cfg)
	if err != nil {
		t.Fatal(err)
	}
	a.db.OpenLog(a, key)
	ctx := doorledger.NewSystemContext(context.Background(), "test")
	if _, err := a.users.CreateUser(ctx, doorledger.NewUser{Email: "ops@example.com", Name: "Ops", Role: doorledger.RoleAdmin, Password: "correct horse battery"}); err != nil {
		t.Fatal(err)
	}
	dc := &deviceControl{}
	if err := ready(ctx, a, dc); err != nil {
		t.Fatalf("ready with a fresh backlog: %v", err)
	}
	later := time.Now().Add(20 * time.Second)
	a.sqliteDB().Now = func() time.Time { return later }
	err = ready(ctx, a, dc)
	if err == nil || !strings.Contains(err.Error(), "sequencer is 20s behind") {
		t.Fatalf("ready with a backlog 20 s old: %v", err)
	}
	if _, err := a.logs.Sequence(ctx); err != nil {
		t.Fatal(err)
	}
	if err := ready(ctx, a, dc); err != nil {
		t.Errorf("ready once sequenced: %v", err)
	}
}
