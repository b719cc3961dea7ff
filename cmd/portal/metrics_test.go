package main

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
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
	metricsURL := metricsAddr(t, p)
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

	if code, _ := scrape(t, metricsURL, ""); code != http.StatusUnauthorized {
		t.Errorf("scrape without the token: %d, want 401", code)
	}
	if code, _ := scrape(t, metricsURL, "Bearer wrong"); code != http.StatusUnauthorized {
		t.Errorf("scrape with a wrong token: %d, want 401", code)
	}
	body := awaitMetrics(t, metricsURL, "Bearer "+token, "doorledger_revoke_latency_seconds_count 1\n")
	for _, want := range []string{
		`doorledger_http_requests_total{code="200",method="GET",route="/devices/:device"}`,
		`doorledger_http_requests_total{code="303",method="POST",route="/devices/:device/revoke"}`,
		`doorledger_http_request_duration_seconds_bucket{method="POST",route="/login",le="`,
		"doorledger_revoke_latency_seconds_count 1\n",
		`doorledger_revoke_latency_seconds_bucket{le="60"} 1`,
		"doorledger_devices_connected 1\n",
		`doorledger_device_messages_total{what="reports"}`,
		`doorledger_group_commits_total{committer="device_reports"}`,
		`doorledger_db_pool_max_open_connections{pool="sqlite_write"} 1`,
		`doorledger_db_pool_waits_total{pool="sqlite_read"} `,
		`doorledger_db_pool_closed_total{pool="sqlite_read",reason="max_idle_time"} `,
		"doorledger_webhook_deliveries_pending 0\n",
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

// metricsAddr is where p says its metrics are.
func metricsAddr(t *testing.T, p *Portal) string {
	t.Helper()
	m := regexp.MustCompile(`Metrics: (http://\S+/metrics)`).FindStringSubmatch(p.Stdout.String())
	if m == nil {
		t.Fatalf("the portal does not say where its metrics are:\n%s", p.Stdout.String())
	}
	return m[1]
}

// scrape reads the metrics at url with the Authorization header auth ("": none).
func scrape(t *testing.T, url, auth string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
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

// awaitMetrics scrapes url until the metrics match want (a regular
// expression), or 20 seconds have passed, and returns the last scrape.
func awaitMetrics(t *testing.T, url, auth, want string) string {
	t.Helper()
	re := regexp.MustCompile(want)
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		code, body := scrape(t, url, auth)
		if code != http.StatusOK {
			t.Fatalf("scrape: %d\n%s", code, body)
		}
		if re.MatchString(body) || time.Now().After(deadline) {
			return body
		}
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

// /metrics of a portal on PostgreSQL: its pgxpool under the pool names
// SQLite's pools use (doorledger_db_pool_*{pool="postgres"}), with the
// acquires only pgxpool counts; and an event subscription whose receiver
// answers 503, failing by subscription id and reason, never by its URL.
func TestMetricsPostgres(t *testing.T) {
	dbURL := pgCluster.Database(t)
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "down for maintenance", http.StatusServiceUnavailable)
	}))
	defer recv.Close()
	p := MustStartPortalEnv(t, "", map[string]string{"DOORLEDGER_DATABASE_URL": dbURL}, "-metrics-addr", "127.0.0.1:0", "-webhooks-allow-private")
	metricsURL := metricsAddr(t, p)
	admin := NewClient(t, p.URL)
	admin.MustLogin(testAdminEmail, p.AdminPass)
	hookURL := recv.URL + "/hooks?token=receiver-secret-token"
	if status, _, body := admin.Post("/webhooks", "/webhooks", url.Values{"name": {"PMS"}, "url": {hookURL},
		"event_type": {doorledger.EventConsentSigned}}); status != http.StatusOK {
		t.Fatalf("subscribe: %d\n%s", status, body)
	}
	consentedDevice(t, p) // consent.signed: one delivery, refused by the receiver

	body := awaitMetrics(t, metricsURL, "", `doorledger_webhook_deliveries_failing\{reason="server_error",subscription="\d+"\} 1\n`)
	value := func(name string) float64 {
		m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(name) + ` (\S+)$`).FindStringSubmatch(body)
		if m == nil {
			t.Errorf("metrics lack %s", name)
			return -1
		}
		v, _ := strconv.ParseFloat(m[1], 64)
		return v
	}
	if v := value(`doorledger_db_pool_max_open_connections{pool="postgres"}`); v < 1 {
		t.Errorf("max open connections %v", v)
	}
	if v := value(`doorledger_db_pool_acquires_total{pool="postgres"}`); v < 1 {
		t.Errorf("acquires %v, want the portal's", v)
	}
	if v := value(`doorledger_db_pool_acquire_seconds_total{pool="postgres"}`); v <= 0 {
		t.Errorf("acquire time %v", v)
	}
	if open, idle, inUse := value(`doorledger_db_pool_open_connections{pool="postgres"}`), value(`doorledger_db_pool_idle_connections{pool="postgres"}`),
		value(`doorledger_db_pool_in_use_connections{pool="postgres"}`); open < 1 || idle < 0 || inUse < 0 || idle+inUse > open {
		t.Errorf("connections: %v open, %v idle, %v in use", open, idle, inUse)
	}
	for _, name := range []string{`doorledger_db_pool_waits_total{pool="postgres"}`, `doorledger_db_pool_wait_seconds_total{pool="postgres"}`,
		`doorledger_db_pool_canceled_acquires_total{pool="postgres"}`, `doorledger_db_pool_closed_total{pool="postgres",reason="max_lifetime"}`,
		`doorledger_webhook_oldest_pending_seconds`} {
		value(name)
	}
	if v := value("doorledger_webhook_deliveries_pending"); v != 1 {
		t.Errorf("webhook deliveries pending %v, want 1", v)
	}
	if strings.Contains(body, "go_sql_") || strings.Contains(body, "sqlite_") {
		t.Error("SQLite's pools in a PostgreSQL portal's metrics")
	}
	if strings.Contains(body, "receiver-secret-token") || strings.Contains(body, recv.URL) {
		t.Error("a receiver's URL became a metrics label")
	}
	if t.Failed() {
		t.Logf("metrics:\n%s", body)
	}
}
