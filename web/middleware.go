package web

import (
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/doorledger/doorledger"
	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"
)

const (
	sessionCookie = "dl_session"
	csrfCookie    = "dl_csrf"
	csrfKey       = "csrf" // echo context key of the CSRF token

	// DefaultBodyLimit bounds every request body unless a route sets its own.
	DefaultBodyLimit = 1 << 20
)

// contentSecurityPolicy forbids inline script and every origin but our own: the
// page script and the vendored libraries are files under /static/.
const contentSecurityPolicy = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; " +
	"connect-src 'self'; form-action 'self'; frame-ancestors 'none'; object-src 'none'; base-uri 'none'"

// securityHeaders sets the headers every response carries.
func securityHeaders(secure bool) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			h := c.Response().Header()
			h.Set("Content-Security-Policy", contentSecurityPolicy)
			h.Set("X-Content-Type-Options", "nosniff")
			h.Set("Referrer-Policy", "no-referrer") // signing links carry tokens in their path
			h.Set("X-Frame-Options", "DENY")
			h.Set("Cross-Origin-Opener-Policy", "same-origin")
			h.Set("Permissions-Policy", "camera=(), microphone=(), geolocation=()")
			if secure {
				h.Set("Strict-Transport-Security", "max-age=31536000")
			}
			return next(c)
		}
	}
}

// requestContext puts the client IP in the request context for the audit journal.
func requestContext(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		r := c.Request()
		c.SetRequest(r.WithContext(doorledger.NewContextWithIP(r.Context(), c.RealIP())))
		return next(c)
	}
}

// requestLogger logs each request with its route pattern (never the raw path or
// query, which may hold one-time tokens), status and duration. It also says
// the server's time in a Server-Timing header ("app;dur=" in ms, up to the
// response's headers: pages are rendered to a buffer first, so that is the
// whole page's work), which browsers' tools and the benchmarks read.
func requestLogger(log *slog.Logger) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			start := time.Now()
			c.Response().Before(func() {
				c.Response().Header().Set("Server-Timing", fmt.Sprintf("app;dur=%.3f", float64(time.Since(start).Microseconds())/1e3))
			})
			err := next(c)
			if err != nil {
				c.Error(err) // write the response now so its status is logged
			}
			var uid int64
			if u := doorledger.UserFromContext(c.Request().Context()); u != nil {
				uid = u.ID
			}
			log.Info("request", "method", c.Request().Method, "route", c.Path(), "status", c.Response().Status,
				"duration", time.Since(start).Round(time.Microsecond), "user", uid, "ip", c.RealIP())
			return nil
		}
	}
}

// bodyLimit bounds every request body: DefaultBodyLimit, or the limit the
// route was registered with (uploads). A declared length over the limit is refused
// at once; a body that runs over it fails when read.
func (s *Server) bodyLimit(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		limit, ok := s.bodyLimits[c.Path()]
		if !ok {
			limit = DefaultBodyLimit
		}
		r := c.Request()
		if r.ContentLength > limit {
			return echo.NewHTTPError(http.StatusRequestEntityTooLarge, fmt.Sprintf("The request is too large (limit %s).", byteSize(limit)))
		}
		r.Body = http.MaxBytesReader(c.Response(), r.Body, limit)
		return next(c)
	}
}

func byteSize(n int64) string {
	if n >= 1<<20 {
		return fmt.Sprintf("%d MB", n>>20)
	}
	return fmt.Sprintf("%d KB", n>>10)
}

// csrf guards every state-changing request: a token from the form field
// _csrf or the X-CSRF-Token header (htmx) must match the cookie, or the
// browser's Sec-Fetch-Site must say the request came from our own pages.
func (s *Server) csrf() echo.MiddlewareFunc {
	return middleware.CSRFWithConfig(middleware.CSRFConfig{
		TokenLookup:    "header:X-CSRF-Token,form:_csrf",
		ContextKey:     csrfKey,
		CookieName:     csrfCookie,
		CookiePath:     "/",
		CookieHTTPOnly: true,
		CookieSecure:   s.cfg.Secure,
		CookieSameSite: http.SameSiteLaxMode,
		Skipper: func(c echo.Context) bool {
			// Machine endpoints authenticate each request with a signature, not a cookie.
			return strings.HasPrefix(c.Path(), "/api/")
		},
		ErrorHandler: func(err error, c echo.Context) error {
			return echo.NewHTTPError(http.StatusForbidden, "This form has expired or did not come from Doorledger. Reload the page and try again.")
		},
	})
}

// loadSession signs the request in when its cookie names a live session.
func (s *Server) loadSession(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		sess, _ := s.sessions.Get(c.Request(), sessionCookie)
		sid, _ := sess.Values["sid"].(string)
		if sid == "" {
			return next(c)
		}
		u, _, err := s.cfg.Users.SessionUser(c.Request().Context(), sid)
		switch doorledger.ErrorCode(err) {
		case "":
			r := c.Request()
			c.SetRequest(r.WithContext(doorledger.NewContextWithUser(r.Context(), u)))
			c.Set("sid", sid)
		case doorledger.EUNAUTHORIZED:
			delete(sess.Values, "sid")
			sess.AddFlash("Your session has ended. Please sign in again.", "error")
			if err := sess.Save(c.Request(), c.Response()); err != nil {
				return err
			}
		default:
			return err
		}
		return next(c)
	}
}

// requireUser sends anonymous visitors to the sign-in page, coming back after.
func requireUser(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		if doorledger.UserFromContext(c.Request().Context()) != nil {
			return next(c)
		}
		r := c.Request()
		if strings.HasPrefix(c.Path(), "/api/") {
			return doorledger.Errorf(doorledger.EUNAUTHORIZED, "Please sign in.")
		}
		if r.Header.Get("HX-Request") != "" {
			// An htmx request (a fragment polled or posted after the session
			// ended) would follow a redirect and swap the login page into the
			// fragment's place: send the whole page to sign in, and back.
			next := "/"
			if u, err := url.Parse(r.Header.Get("HX-Current-URL")); err == nil && strings.HasPrefix(u.Path, "/") {
				next = u.RequestURI()
			}
			c.Response().Header().Set("HX-Redirect", "/login?next="+url.QueryEscape(safeNext(next)))
			return c.String(http.StatusUnauthorized, "Please sign in.")
		}
		next := "/"
		if r.Method == http.MethodGet {
			next = r.URL.RequestURI()
		}
		return c.Redirect(http.StatusSeeOther, "/login?next="+url.QueryEscape(next))
	}
}

// requireRole answers 404 to a signed-in user of another role: pages they
// cannot use do not exist for them.
func requireRole(roles ...doorledger.Role) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			u := doorledger.UserFromContext(c.Request().Context())
			for _, r := range roles {
				if u != nil && u.Role == r {
					return next(c)
				}
			}
			return doorledger.Errorf(doorledger.ENOTFOUND, "Page not found.")
		}
	}
}
