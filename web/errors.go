package web

import (
	"errors"
	"net/http"
	"strings"

	"github.com/doorledger/doorledger"
	"github.com/doorledger/doorledger/views"
	"github.com/labstack/echo/v4"
)

// statusOf maps the domain error codes to HTTP status, in this one place.
var statusOf = map[string]int{
	doorledger.EINVALID:      http.StatusUnprocessableEntity,
	doorledger.ENOTFOUND:     http.StatusNotFound,
	doorledger.EFORBIDDEN:    http.StatusForbidden,
	doorledger.EUNAUTHORIZED: http.StatusUnauthorized,
	doorledger.ECONFLICT:     http.StatusConflict,
	doorledger.ETOOMANY:      http.StatusTooManyRequests,
	doorledger.EUNAVAILABLE:  http.StatusServiceUnavailable,
	doorledger.EINTERNAL:     http.StatusInternalServerError,
}

// handleError is Echo's HTTPErrorHandler: every error a handler returns ends
// here and becomes a page (or JSON for API and htmx callers). Internal errors are
// logged; the user sees "Internal error." and never the cause.
func (s *Server) handleError(err error, c echo.Context) {
	if c.Response().Committed {
		return
	}
	status, msg := http.StatusInternalServerError, "Internal error."
	var he *echo.HTTPError
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &he):
		status = he.Code
		if m, ok := he.Message.(string); ok {
			msg = m
		}
		switch status {
		case http.StatusNotFound:
			msg = "There is no such page, or you do not have access to it."
		case http.StatusMethodNotAllowed:
			status, msg = http.StatusNotFound, "There is no such page, or you do not have access to it."
		}
	case errors.As(err, &mbe):
		status, msg = http.StatusRequestEntityTooLarge, "The request is too large."
	default:
		code := doorledger.ErrorCode(err)
		status, msg = statusOf[code], doorledger.ErrorMessage(err)
		if code == doorledger.EINTERNAL {
			s.log.Error("internal error", "route", c.Path(), "method", c.Request().Method, "err", err)
		}
	}
	if status == http.StatusServiceUnavailable {
		c.Response().Header().Set("Retry-After", retryAfter)
	} else if status >= 500 {
		msg = "Internal error. It has been logged; please try again."
	}
	if status == http.StatusUnauthorized && wantsHTML(c) && c.Request().Method == http.MethodGet {
		_ = c.Redirect(http.StatusSeeOther, "/login")
		return
	}
	if !wantsHTML(c) {
		_ = c.JSON(status, map[string]any{"error": msg, "code": http.StatusText(status), "reason": reasonFor(status)})
		return
	}
	if c.Request().Header.Get("HX-Request") != "" {
		// htmx swaps nothing on an error status by default: show it as a flash.
		c.Response().Header().Set("HX-Retarget", "main")
		c.Response().Header().Set("HX-Reswap", "afterbegin")
		_ = render(c, status, views.FlashBox(views.Flash{Kind: "error", Message: msg}))
		return
	}
	if err := render(c, status, views.ErrorPage(s.page(c, views.ErrorTitle(status), ""), status, msg)); err != nil {
		s.log.Error("render error page", "err", err)
	}
}

// retryAfter is the Retry-After of a 503 (EUNAVAILABLE: the disk is full),
// in seconds: about when the portal's check of free space may have let
// ingest in again (docs/reliability.md, "Disk full").
const retryAfter = "30"

// reasonFor is the reason, for programs, of a JSON error the error handler
// answers: every API error carries one, as the machine API's own refusals do
// (api.go), and a 413 says "too_large" whether the declared length or the
// body read was over the limit.
func reasonFor(status int) string {
	switch status {
	case http.StatusBadRequest:
		return "bad_request"
	case http.StatusUnauthorized:
		return "unauthorized"
	case http.StatusForbidden:
		return "forbidden"
	case http.StatusNotFound:
		return "not_found"
	case http.StatusConflict:
		return "conflict"
	case http.StatusRequestEntityTooLarge:
		return reasonTooLarge
	case http.StatusUnprocessableEntity:
		return "invalid"
	case http.StatusTooManyRequests:
		return "too_many_requests"
	case http.StatusServiceUnavailable:
		return reasonUnavailable
	}
	if status >= 500 {
		return reasonInternal
	}
	return strings.ReplaceAll(strings.ToLower(http.StatusText(status)), " ", "_")
}

// wantsHTML reports whether the caller is a browser page rather than an API client.
func wantsHTML(c echo.Context) bool {
	if strings.HasPrefix(c.Request().URL.Path, "/api/") {
		return false
	}
	accept := c.Request().Header.Get("Accept")
	return accept == "" || strings.Contains(accept, "text/html") || strings.Contains(accept, "*/*") ||
		c.Request().Header.Get("HX-Request") != ""
}
