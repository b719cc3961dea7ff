package web

import (
	"bytes"
	"net/http"

	"github.com/a-h/templ"
	"github.com/doorledger/doorledger"
	"github.com/doorledger/doorledger/views"
	"github.com/labstack/echo/v4"
)

// render writes a templ component as the response. It renders to a buffer first,
// so a failing component yields a clean error page instead of half a page.
func render(c echo.Context, status int, t templ.Component) error {
	var buf bytes.Buffer
	if err := t.Render(c.Request().Context(), &buf); err != nil {
		return err
	}
	c.Response().Header().Set("Cache-Control", "no-store")
	return c.HTMLBlob(status, buf.Bytes())
}

// page builds the layout's view model for this request and consumes flashes.
func (s *Server) page(c echo.Context, title, active string) views.Page {
	p := views.Page{Title: title, Active: active, User: doorledger.UserFromContext(c.Request().Context())}
	p.CSRF, _ = c.Get(csrfKey).(string)
	p.Passkeys = s.webauthn != nil
	p.SSO = s.ssoButton(c)
	if u := p.User; u != nil && (u.Role == doorledger.RoleAdmin || u.Role == doorledger.RoleManager) && s.diskFull() {
		p.Notice = views.DiskFullNotice
	}
	sess, err := s.sessions.Get(c.Request(), s.sessionCookie)
	if err == nil {
		changed := false
		for _, kind := range []string{"ok", "error"} {
			for _, f := range sess.Flashes(kind) {
				if m, ok := f.(string); ok {
					p.Flash = append(p.Flash, views.Flash{Kind: kind, Message: m})
					changed = true
				}
			}
		}
		if changed {
			_ = sess.Save(c.Request(), c.Response())
		}
	}
	return p
}

// flash queues a message for the next page.
func (s *Server) flash(c echo.Context, kind, msg string) {
	sess, _ := s.sessions.Get(c.Request(), s.sessionCookie)
	sess.AddFlash(msg, kind)
	_ = sess.Save(c.Request(), c.Response())
}

// redirect answers a form post: 303 to the next page, with a flash message.
func (s *Server) redirect(c echo.Context, to, msg string) error {
	if msg != "" {
		s.flash(c, "ok", msg)
	}
	return c.Redirect(http.StatusSeeOther, to)
}

// formOf returns the submitted values of the named fields, for re-rendering.
func formOf(c echo.Context, names ...string) views.Form {
	f := views.Form{Values: map[string]string{}}
	for _, n := range names {
		f.Values[n] = c.FormValue(n)
	}
	return f
}

// formError fills f from a domain error when it is the user's to fix
// (EINVALID, ECONFLICT) and reports whether it did; other errors go to the
// error handler.
func formError(f *views.Form, err error) bool {
	switch doorledger.ErrorCode(err) {
	case doorledger.EINVALID, doorledger.ECONFLICT, doorledger.ETOOMANY, doorledger.EUNAUTHORIZED, doorledger.EUNAVAILABLE:
		f.Errors = doorledger.ErrorFields(err)
		if len(f.Errors) == 0 || doorledger.ErrorCode(err) != doorledger.EINVALID {
			f.Error = doorledger.ErrorMessage(err)
		}
		return true
	}
	return false
}

// formStatus is the status of a re-rendered form for err.
func formStatus(err error) int { return statusOf[doorledger.ErrorCode(err)] }
