package web

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/labstack/echo/v4"
)

// /readyz answers 503 with the check's reason, 200 "ready" when it passes.
func TestReadyAnswers(t *testing.T) {
	e := echo.New()
	for _, tt := range []struct {
		err    error
		status int
		body   string
	}{
		{nil, http.StatusOK, "ready\n"},
		{errors.New("the database is not writable: database is locked"), http.StatusServiceUnavailable, "not ready: the database is not writable: database is locked\n"},
	} {
		rec := httptest.NewRecorder()
		c := e.NewContext(httptest.NewRequest(http.MethodGet, "/readyz", nil), rec)
		if err := handleReady(func(context.Context) error { return tt.err })(c); err != nil {
			t.Fatal(err)
		}
		if rec.Code != tt.status || rec.Body.String() != tt.body || !strings.HasPrefix(rec.Header().Get("Content-Type"), "text/plain") {
			t.Errorf("check %v: %d %q (%s), want %d %q", tt.err, rec.Code, rec.Body.String(), rec.Header().Get("Content-Type"), tt.status, tt.body)
		}
	}
}
