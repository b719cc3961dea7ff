package web

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/doorledger/doorledger"
	"github.com/doorledger/doorledger/views"
	"github.com/labstack/echo/v4"
)

func handleHealth(check func(ctx context.Context) error) echo.HandlerFunc {
	return func(c echo.Context) error {
		if check != nil {
			if err := check(c.Request().Context()); err != nil {
				return c.JSON(http.StatusServiceUnavailable, map[string]string{"status": "unavailable"})
			}
		}
		return c.JSON(http.StatusOK, map[string]string{"status": "ok"})
	}
}

// safeNext keeps a post-login redirect on this site: it returns next when it is
// a path of this site (with its query), and the first screen ("/": the
// attention list, or an installer's buildings) otherwise.
// Browsers drop tabs and line breaks from a URL and read "\\" as "/", so
// "/\t/evil.example" and "/\\evil.example" would both leave the site as
// "//evil.example": control characters and backslashes are refused anywhere,
// and what is left must parse as a path with no scheme, host or leading "//".
func safeNext(next string) string {
	const home = "/"
	if !strings.HasPrefix(next, "/") || strings.HasPrefix(next, "//") || len(next) > maxNextLen {
		return home
	}
	for _, r := range next {
		if unicode.IsControl(r) || r == '\\' || r == utf8.RuneError {
			return home
		}
	}
	u, err := url.Parse(next)
	if err != nil || u.Scheme != "" || u.Host != "" || u.User != nil || u.Opaque != "" ||
		!strings.HasPrefix(u.Path, "/") || strings.HasPrefix(u.Path, "//") {
		return home
	}
	return next
}

// maxNextLen bounds a post-login target: no page of the portal needs more.
const maxNextLen = 2048

func (s *Server) handleLoginPage(c echo.Context) error {
	if doorledger.UserFromContext(c.Request().Context()) != nil {
		return c.Redirect(http.StatusSeeOther, "/")
	}
	return render(c, http.StatusOK, views.LoginPage(s.page(c, "Sign in", ""), views.Form{}, safeNext(c.QueryParam("next"))))
}

func (s *Server) handleLogin(users doorledger.UserService, factors doorledger.SecondFactorService) echo.HandlerFunc {
	return func(c echo.Context) error {
		f := formOf(c, "email")
		next := safeNext(c.FormValue("next"))
		ctx := c.Request().Context()
		u, err := users.Authenticate(ctx, c.FormValue("email"), c.FormValue("password"), c.RealIP())
		if err != nil {
			if !formError(&f, err) {
				return err
			}
			if doorledger.ErrorCode(err) == doorledger.ETOOMANY {
				c.Response().Header().Set("Retry-After", "900")
			}
			return render(c, formStatus(err), views.LoginPage(s.page(c, "Sign in", ""), f, next))
		}
		return s.afterFirstFactor(c, users, factors, u, next)
	}
}

// clearCSRF drops the CSRF cookie so the next page issues a new token.
func (s *Server) clearCSRF(c echo.Context) {
	c.SetCookie(&http.Cookie{Name: s.csrfCookie, Value: "", Path: "/", MaxAge: -1, HttpOnly: true, Secure: s.cfg.Secure, SameSite: http.SameSiteLaxMode})
}

// signOut forgets the session in this browser and shows the sign-in page.
func (s *Server) signOut(c echo.Context, msg string) error {
	sess, _ := s.sessions.New(c.Request(), s.sessionCookie)
	sess.AddFlash(msg, "ok")
	if err := sess.Save(c.Request(), c.Response()); err != nil {
		return err
	}
	s.clearCSRF(c)
	return c.Redirect(http.StatusSeeOther, "/login")
}

func (s *Server) handleLogout(users doorledger.UserService) echo.HandlerFunc {
	return func(c echo.Context) error {
		if sid, _ := c.Get("sid").(string); sid != "" {
			if err := users.EndSession(c.Request().Context(), sid); err != nil {
				return err
			}
		}
		return s.signOut(c, "You are signed out.")
	}
}

func (s *Server) handleLogoutEverywhere(users doorledger.UserService) echo.HandlerFunc {
	return func(c echo.Context) error {
		u := doorledger.UserFromContext(c.Request().Context())
		if err := users.EndAllSessions(c.Request().Context(), u.ID); err != nil {
			return err
		}
		return s.signOut(c, "You are signed out on every device.")
	}
}

func (s *Server) handleAccount(c echo.Context) error {
	return render(c, http.StatusOK, views.AccountPage(s.page(c, "Your account", "account"), views.Form{}))
}

func (s *Server) handleAccountPassword(users doorledger.UserService) echo.HandlerFunc {
	return func(c echo.Context) error {
		u := doorledger.UserFromContext(c.Request().Context())
		err := users.SetPassword(c.Request().Context(), u.ID, c.FormValue("current"), c.FormValue("password"))
		if err != nil {
			f := views.Form{}
			if !formError(&f, err) {
				return err
			}
			return render(c, formStatus(err), views.AccountPage(s.page(c, "Your account", "account"), f))
		}
		return s.signOut(c, "Your password is changed and every session ended. Sign in with the new password.")
	}
}
