package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/doorledger/doorledger/devicectl"
	"github.com/doorledger/doorledger/metrics"
)

// newMetrics builds the portal's metrics from its parts.
func newMetrics(a *app, dc *deviceControl) *metrics.Metrics {
	return metrics.New(metrics.Sources{
		Ops: a.ops,
		Devices: func() (map[string]int64, int64) {
			var st devicectl.Stats
			connected := int64(-1)
			switch {
			case dc.broker != nil:
				st, connected = dc.broker.Stats(), dc.broker.Connected()
			case dc.client != nil:
				st = dc.client.Stats()
			}
			return map[string]int64{
				"connects": st.Connects, "refused_username": st.RefusedUsername, "refused_client_id": st.RefusedClientID,
				"refused_credential": st.RefusedCredential, "auth_errors": st.AuthErrors, "denied_subscribe": st.DeniedSubscribe,
				"denied_publish": st.DeniedPublish, "credential_cuts": st.CredentialCuts,
				"reports": st.Reports, "events": st.Events, "invalid": st.Invalid, "commit_errors": st.CommitErrors, "busy": st.Busy,
			}, connected
		},
		Groups: map[string]func() (int64, int64){
			"unlock_events":  a.unlocks.Stats,
			"device_reports": a.devices.ReportStats,
		},
		Pools:  a.db.Pools(),
		Logger: a.log,
	})
}

// serveMetrics serves /metrics on its own address (never the public one)
// until ctx ends; with a token, scrapes must carry it as a bearer token.
func serveMetrics(ctx context.Context, log *slog.Logger, addr, token string, m *metrics.Metrics) (bound string, wait func(), err error) {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return "", nil, fmt.Errorf("metrics: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", m.Handler(token))
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, WriteTimeout: time.Minute}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("metrics server stopped", "err", err)
		}
	}()
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	return l.Addr().String(), func() { <-done }, nil
}
