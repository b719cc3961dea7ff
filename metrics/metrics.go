// Package metrics exposes the portal's figures in the Prometheus text format
// (github.com/prometheus/client_golang): HTTP requests by route pattern, the
// device traffic counters of the MQTT transport, group-commit batches, the
// database pools (pools.go), and what the database says waits or failed
// (OpsStats, WebhookStats), read at each scrape.
package metrics

import (
	"context"
	"crypto/subtle"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/doorledger/doorledger"
)

// Sources are what the metrics read at each scrape. Every field is optional.
type Sources struct {
	// Ops reads the database's figures; it is called with a system context
	// and a time-out of ScrapeTimeout.
	Ops doorledger.OpsService
	// Devices returns the transport's counters, by name (snake_case), and
	// the devices connected now (-1 when the transport cannot tell: an
	// external broker).
	Devices func() (counters map[string]int64, connected int64)
	// Groups are the group committers' totals: commits and items, by name.
	Groups map[string]func() (groups, items int64)
	// Pools read the database pools' figures, by pool name (SQLPool,
	// PgxPool).
	Pools  map[string]func() PoolStats
	Logger *slog.Logger
}

// ScrapeTimeout bounds the database reads of one scrape.
const ScrapeTimeout = 5 * time.Second

// Metrics is the registry and the HTTP request instruments.
type Metrics struct {
	reg      *prometheus.Registry
	requests *prometheus.CounterVec
	latency  *prometheus.HistogramVec
}

// New registers the process's, the Go runtime's and the sources' collectors.
func New(src Sources) *Metrics {
	m := &Metrics{reg: prometheus.NewRegistry()}
	m.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m.requests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "doorledger_http_requests_total",
		Help: "HTTP requests answered, by route pattern (never the raw path: it can carry one-time tokens), method and status code.",
	}, []string{"route", "method", "code"})
	m.latency = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "doorledger_http_request_duration_seconds",
		Help:    "HTTP request latency by route pattern and method (live streams count once, when they end).",
		Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
	}, []string{"route", "method"})
	m.reg.MustRegister(m.requests, m.latency)
	m.reg.MustRegister(&sourceCollector{src: src})
	return m
}

// ObserveRequest records one answered request; route is the router's
// pattern ("/devices/:id"), or "" for a path no route matched.
func (m *Metrics) ObserveRequest(route, method string, code int, took time.Duration) {
	if route == "" {
		route = "unmatched"
	}
	m.requests.WithLabelValues(route, method, strconv.Itoa(code)).Inc()
	m.latency.WithLabelValues(route, method).Observe(took.Seconds())
}

// Handler serves the metrics. With a non-empty token it answers 401 unless
// the request carries "Authorization: Bearer <token>".
func (m *Metrics) Handler(token string) http.Handler {
	h := promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError})
	if token == "" {
		return h
	}
	want := []byte("Bearer " + token)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if subtle.ConstantTimeCompare([]byte(r.Header.Get("Authorization")), want) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="metrics"`)
			http.Error(w, "metrics: a bearer token is required", http.StatusUnauthorized)
			return
		}
		h.ServeHTTP(w, r)
	})
}

// sourceCollector reads the sources at each scrape.
type sourceCollector struct{ src Sources }

var (
	descDeviceCounter   = prometheus.NewDesc("doorledger_device_messages_total", "Device traffic through the MQTT transport since the process started, by what happened (reports and events committed, refused, failed commits, refused connections).", []string{"what"}, nil)
	descDevicesUp       = prometheus.NewDesc("doorledger_devices_connected", "Devices connected to the embedded broker now.", nil, nil)
	descGroupCommits    = prometheus.NewDesc("doorledger_group_commits_total", "Transactions of a group committer since the process started.", []string{"committer"}, nil)
	descGroupItems      = prometheus.NewDesc("doorledger_group_commit_items_total", "Items committed by a group committer (items / commits is the mean batch size).", []string{"committer"}, nil)
	descCommands        = prometheus.NewDesc("doorledger_commands", "Commands (enable, revoke) in the database by status.", []string{"status"}, nil)
	descRevokeLatency   = prometheus.NewDesc("doorledger_revoke_latency_seconds", "Click → confirmed latency of every confirmed revoke in the database.", nil, nil)
	descOutbox          = prometheus.NewDesc("doorledger_outbox_messages", "Mail not yet sent: queued (will retry) or failed (gave up; an admin can retry).", []string{"state"}, nil)
	descReportsQueued   = prometheus.NewDesc("doorledger_reports_queued", "Reports queued or being generated.", nil, nil)
	descLogPending      = prometheus.NewDesc("doorledger_log_pending_rows", "Committed rows not yet in the verifiable log.", nil, nil)
	descLogLag          = prometheus.NewDesc("doorledger_log_sequencing_lag_seconds", "How long the oldest row not yet in the verifiable log has waited (0 when none).", nil, nil)
	descScrapeErrors    = prometheus.NewDesc("doorledger_ops_scrape_error", "1 when the database's figures could not be read at this scrape.", nil, nil)
	descHooksPending    = prometheus.NewDesc("doorledger_webhook_deliveries_pending", "Outbound event deliveries not delivered nor given up on: due, or waiting to retry.", nil, nil)
	descHooksOldest     = prometheus.NewDesc("doorledger_webhook_oldest_pending_seconds", "How long the oldest pending delivery has waited since it was queued or replayed (0 when none).", nil, nil)
	descHooksFailing    = prometheus.NewDesc("doorledger_webhook_deliveries_failing", "Deliveries waiting to retry after a failed attempt, by subscription id and the reason of that attempt (no_answer, redirect, client_error, server_error, other).", []string{"subscription", "reason"}, nil)
	descHooksGivenUp    = prometheus.NewDesc("doorledger_webhook_deliveries_given_up", "Deliveries of an active subscription given up on (retried for 24 h) and not replayed, still listed (30 days), by subscription id.", []string{"subscription"}, nil)
	descCommandStatuses = []string{"pending", "sent", "confirmed", "not_confirmed", "refused", "superseded"}
)

func (c *sourceCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descDeviceCounter, descDevicesUp, descGroupCommits, descGroupItems, descCommands,
		descRevokeLatency, descOutbox, descReportsQueued, descLogPending, descLogLag, descScrapeErrors,
		descHooksPending, descHooksOldest, descHooksFailing, descHooksGivenUp} {
		ch <- d
	}
	for _, d := range poolDescs {
		ch <- d
	}
}

func (c *sourceCollector) Collect(ch chan<- prometheus.Metric) {
	if f := c.src.Devices; f != nil {
		counters, connected := f()
		for what, n := range counters {
			ch <- prometheus.MustNewConstMetric(descDeviceCounter, prometheus.CounterValue, float64(n), what)
		}
		if connected >= 0 {
			ch <- prometheus.MustNewConstMetric(descDevicesUp, prometheus.GaugeValue, float64(connected))
		}
	}
	for name, f := range c.src.Groups {
		groups, items := f()
		ch <- prometheus.MustNewConstMetric(descGroupCommits, prometheus.CounterValue, float64(groups), name)
		ch <- prometheus.MustNewConstMetric(descGroupItems, prometheus.CounterValue, float64(items), name)
	}
	for name, f := range c.src.Pools {
		collectPool(ch, name, f())
	}
	if c.src.Ops == nil {
		return
	}
	ctx, cancel := context.WithTimeout(doorledger.NewSystemContext(context.Background(), "metrics"), ScrapeTimeout)
	defer cancel()
	st, err := c.src.Ops.OpsStats(ctx)
	var hooks *doorledger.WebhookStats
	if err == nil {
		hooks, err = c.src.Ops.WebhookStats(ctx)
	}
	failed := 0.0
	if err != nil {
		failed = 1
		if c.src.Logger != nil {
			c.src.Logger.Warn("metrics: reading the database's figures failed", "err", err)
		}
	}
	ch <- prometheus.MustNewConstMetric(descScrapeErrors, prometheus.GaugeValue, failed)
	if err != nil {
		return
	}
	for _, status := range descCommandStatuses { // every status, zero too, so alerts see a series
		ch <- prometheus.MustNewConstMetric(descCommands, prometheus.GaugeValue, float64(st.Commands[status]), status)
	}
	for status, n := range st.Commands {
		if !known(status) {
			ch <- prometheus.MustNewConstMetric(descCommands, prometheus.GaugeValue, float64(n), status)
		}
	}
	h := st.RevokeLatency
	buckets := make(map[float64]uint64, len(h.Bounds))
	for i, b := range h.Bounds {
		buckets[b.Seconds()] = uint64(h.Counts[i])
	}
	ch <- prometheus.MustNewConstHistogram(descRevokeLatency, uint64(h.Count), h.Sum.Seconds(), buckets)
	ch <- prometheus.MustNewConstMetric(descOutbox, prometheus.GaugeValue, float64(st.OutboxQueued), "queued")
	ch <- prometheus.MustNewConstMetric(descOutbox, prometheus.GaugeValue, float64(st.OutboxFailed), "failed")
	ch <- prometheus.MustNewConstMetric(descReportsQueued, prometheus.GaugeValue, float64(st.ReportsQueued))
	ch <- prometheus.MustNewConstMetric(descLogPending, prometheus.GaugeValue, float64(st.LogPending))
	ch <- prometheus.MustNewConstMetric(descLogLag, prometheus.GaugeValue, st.LogLag.Seconds())
	collectWebhooks(ch, hooks)
}

// collectWebhooks sends the outbound events' figures. Subscriptions are
// labelled by id, never by URL (which may carry a receiver's token).
func collectWebhooks(ch chan<- prometheus.Metric, st *doorledger.WebhookStats) {
	ch <- prometheus.MustNewConstMetric(descHooksPending, prometheus.GaugeValue, float64(st.Pending))
	ch <- prometheus.MustNewConstMetric(descHooksOldest, prometheus.GaugeValue, st.OldestPending.Seconds())
	for _, f := range st.Failing {
		ch <- prometheus.MustNewConstMetric(descHooksFailing, prometheus.GaugeValue, float64(f.Deliveries), strconv.FormatInt(f.SubscriptionID, 10), f.Reason)
	}
	for sub, n := range st.GivenUp {
		ch <- prometheus.MustNewConstMetric(descHooksGivenUp, prometheus.GaugeValue, float64(n), strconv.FormatInt(sub, 10))
	}
}

func known(status string) bool {
	for _, s := range descCommandStatuses {
		if s == status {
			return true
		}
	}
	return false
}

// Describe sends the descriptions of every metric the portal exports.
func (m *Metrics) Describe(ch chan<- *prometheus.Desc) { m.reg.Describe(ch) }
