package web

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/doorledger/doorledger"
	"github.com/labstack/echo/v4"
)

const (
	// Cookie names; served over HTTPS they carry the __Host- prefix, which
	// browsers accept only from a secure origin, with Path=/ and no Domain: a
	// sibling subdomain or a plain-HTTP page cannot plant or overwrite them.
	sessionCookieName = "dl_session"
	csrfCookieName    = "dl_csrf"
	hostCookiePrefix  = "__Host-"
	csrfKey           = "csrf" // echo context key of the CSRF token

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
func requestLogger(log *slog.Logger, observe func(route, method string, code int, took time.Duration)) echo.MiddlewareFunc {
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
			took := time.Since(start)
			log.Info("request", "method", c.Request().Method, "route", c.Path(), "status", c.Response().Status,
				"duration", took.Round(time.Microsecond), "user", uid, "ip", c.RealIP())
			if observe != nil {
				observe(c.Path(), c.Request().Method, c.Response().Status, took)
			}
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

// csrf guards every state-changing request but the machine API's (whose
// requests are signed, not cookie-borne) and gives every page its token. It
// reads only headers, never the body: the browser's Sec-Fetch-Site decides
// when it is sent (same-origin passes, cross-site is refused), then the
// X-CSRF-Token header (htmx); otherwise the form's _csrf field must match the
// cookie, and that is checked by csrfForm, the last middleware of every route,
// once the caller is known to be allowed there. So an anonymous or
// unauthorized post is refused before its body is parsed.
func (s *Server) csrf(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		if strings.HasPrefix(c.Path(), "/api/") {
			return next(c)
		}
		r := c.Request()
		token := ""
		if ck, err := r.Cookie(s.csrfCookie); err == nil && len(ck.Value) == csrfTokenLen {
			token = ck.Value
		} else {
			token = newCSRFToken()
		}
		// The cookie is (re)set on every page, so its day runs from the last page seen.
		c.SetCookie(&http.Cookie{Name: s.csrfCookie, Value: token, Path: "/", MaxAge: csrfCookieMaxAge,
			HttpOnly: true, Secure: s.cfg.Secure, SameSite: http.SameSiteLaxMode})
		c.Response().Header().Add(echo.HeaderVary, echo.HeaderCookie)
		c.Set(csrfKey, token)
		switch r.Method {
		case http.MethodGet, http.MethodHead, http.MethodOptions:
			return next(c)
		}
		switch r.Header.Get(echo.HeaderSecFetchSite) {
		case "same-origin", "none":
			return next(c) // the browser says our own page (or the user) sent it
		case "cross-site":
			return csrfRefused
		}
		if h := r.Header.Get(echo.HeaderXCSRFToken); h != "" {
			if !sameToken(token, h) {
				return csrfRefused
			}
			return next(c)
		}
		c.Set(csrfFormKey, true)
		return next(c)
	}
}

// csrfForm checks the form's _csrf field when the headers did not settle the
// request (see csrf). It is the last middleware of every route: the body is
// read only here, after the session and the role were checked, within the
// route's body limit. Only the body counts: a token in the URL query is
// refused, as URLs end up in logs, history and Referer headers.
func (s *Server) csrfForm(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		if pending, _ := c.Get(csrfFormKey).(bool); !pending {
			return next(c)
		}
		r := c.Request()
		if err := r.ParseMultipartForm(multipartMemory); err != nil && !errors.Is(err, http.ErrNotMultipart) {
			var mbe *http.MaxBytesError
			if errors.As(err, &mbe) {
				return err
			}
			return echo.NewHTTPError(http.StatusBadRequest, "The form could not be read.")
		}
		token, _ := c.Get(csrfKey).(string)
		if !sameToken(token, r.PostForm.Get("_csrf")) {
			return csrfRefused
		}
		c.Set(csrfFormKey, false)
		return next(c)
	}
}

// csrfRefused is the answer to a request that failed the CSRF check.
var csrfRefused = echo.NewHTTPError(http.StatusForbidden, "This form has expired or did not come from Doorledger. Reload the page and try again.")

// CSRF token settings: 32 random bytes, URL-safe; the cookie lasts a day.
const (
	csrfTokenLen     = 43
	csrfCookieMaxAge = 24 * 60 * 60
	csrfFormKey      = "csrf_form" // echo context key: the form field must carry the token
	multipartMemory  = 32 << 20    // what Echo's MultipartForm keeps in memory; the rest goes to temporary files
)

func newCSRFToken() string {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand never fails on supported platforms
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

// sameToken compares in constant time; an empty token never matches.
func sameToken(want, got string) bool {
	return want != "" && subtle.ConstantTimeCompare([]byte(want), []byte(got)) == 1
}

// loadSession signs the request in when its cookie names a session users
// says is live.
func (s *Server) loadSession(users doorledger.UserService) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			sess, _ := s.sessions.Get(c.Request(), s.sessionCookie)
			sid, _ := sess.Values["sid"].(string)
			if sid == "" {
				return next(c)
			}
			u, _, err := users.SessionUser(c.Request().Context(), sid)
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
