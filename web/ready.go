package web

import (
	"context"
	"net/http"

	"github.com/doorledger/doorledger"

	"github.com/labstack/echo/v4"
)

// handleReady answers /readyz: 200 "ready" when check (the database is
// writable and the device broker accepts) passes, 503 with the reason
// otherwise, for a load balancer or a monitor. /healthz only says the process
// is alive.
func handleReady(check func(ctx context.Context) error) echo.HandlerFunc {
	return func(c echo.Context) error {
		if check != nil {
			if err := check(c.Request().Context()); err != nil {
				return c.String(http.StatusServiceUnavailable, "not ready: "+err.Error()+"\n")
			}
		}
		return c.String(http.StatusOK, "ready\n")
	}
}

// brokerDown says whether the device broker does not accept the portal now.
func (s *Server) brokerDown() bool {
	return s.cfg.BrokerUp != nil && !s.cfg.BrokerUp()
}

// markBroker marks the devices while the broker is down, so that their
// status says a command waits for the broker (doorledger.Device.BrokerDown).
func (s *Server) markBroker(list ...*doorledger.Device) {
	down := s.brokerDown()
	for _, d := range list {
		d.BrokerDown = down
	}
}

// diskFull says whether the portal refuses ingest for want of disk space now.
func (s *Server) diskFull() bool {
	return s.cfg.DiskFull != nil && s.cfg.DiskFull()
}
