package web

import (
	"crypto/subtle"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/doorledger/doorledger"
	"github.com/doorledger/doorledger/sso"
	"github.com/doorledger/doorledger/views"
	"github.com/labstack/echo/v4"
)

// Single sign-on (issue 16). "Sign in with …" starts the authorization code
// flow at the OpenID provider; the browser comes back to sso.CallbackPath,
// where the portal checks the flow it started in this browser, exchanges the
// code, and matches the provider's verified email to an account
// (doorledger.SSOService). From there the sign-in goes on exactly as after a
// password: the second factor if the account has one or its role requires
// it, then a new session.
//
// The flow (state, nonce, PKCE verifier, where to go next, when it started)
// travels in a cookie of its own, encrypted and signed with the session
// keys, for SSOStateLifetime: it binds the state to the browser that
// started it, and any instance of the portal can finish it. It is dropped at
// the callback, and the state is marked used in the database, so a replayed
// callback is refused even with a copy of the cookie.

// ssoFlowCookieName names the flow's cookie (with the __Host- prefix when Secure).
const ssoFlowCookieName = "dl_sso"

// The flow cookie's values.
const (
	ssoState    = "state"
	ssoNonce    = "nonce"
	ssoVerifier = "verifier"
	ssoNext     = "next"
	ssoAt       = "at"
)

func (s *Server) ssoFlowCookie() string {
	if s.cfg.Secure {
		return hostCookiePrefix + ssoFlowCookieName
	}
	return ssoFlowCookieName
}

// ssoButton is the sign-in page's button: none without a provider. The
// button's form posts to the portal, which redirects it to the provider;
// browsers hold a form's redirects to the page's CSP form-action too, so a
// signed-out page lets forms go to the provider's authorization endpoint.
func (s *Server) ssoButton(c echo.Context) views.SSOButton {
	p := s.cfg.SSO
	if p == nil {
		return views.SSOButton{}
	}
	b := views.SSOButton{Name: p.Name(), Available: p.Available()}
	if origin := p.AuthOrigin(); origin != "" && doorledger.UserFromContext(c.Request().Context()) == nil {
		h := c.Response().Header()
		h.Set("Content-Security-Policy", strings.Replace(h.Get("Content-Security-Policy"), "form-action 'self'", "form-action 'self' "+origin, 1))
	}
	return b
}

var errNoSSO = doorledger.Errorf(doorledger.ENOTFOUND, "Single sign-on is not set up on this portal.")

// ssoRefused shows the sign-in page with why single sign-on did not sign
// the person in, beside its button.
func (s *Server) ssoRefused(c echo.Context, status int, next, msg string) error {
	p := s.page(c, "Sign in", "")
	p.SSO.Error = msg
	return render(c, status, views.LoginPage(p, views.Form{}, next))
}

// handleSSOStart sends the browser to the provider with a new flow.
func (s *Server) handleSSOStart(c echo.Context) error {
	p := s.cfg.SSO
	if p == nil {
		return errNoSSO
	}
	next := safeNext(c.FormValue("next"))
	if !p.TryDiscover(c.Request().Context()) {
		return s.ssoRefused(c, http.StatusServiceUnavailable, next,
			fmt.Sprintf("%s does not answer right now. Sign in with your password, or try again in a minute.", p.Name()))
	}
	f := sso.NewFlow()
	to, err := p.AuthCodeURL(f)
	if err != nil {
		return err
	}
	sess, _ := s.sessions.New(c.Request(), s.ssoFlowCookie())
	opts := *s.sessions.Options
	opts.MaxAge = int(doorledger.SSOStateLifetime / time.Second)
	sess.Options = &opts
	clear(sess.Values)
	sess.Values[ssoState], sess.Values[ssoNonce], sess.Values[ssoVerifier] = f.State, f.Nonce, f.Verifier
	sess.Values[ssoNext], sess.Values[ssoAt] = next, s.now().Unix()
	if err := sess.Save(c.Request(), c.Response()); err != nil {
		return err
	}
	return c.Redirect(http.StatusSeeOther, to)
}

// takeSSOFlow reads this browser's flow and forgets it: a flow is
// finished once, whatever the outcome.
func (s *Server) takeSSOFlow(c echo.Context) (f sso.Flow, next string, at time.Time, err error) {
	sess, _ := s.sessions.Get(c.Request(), s.ssoFlowCookie())
	f.State, _ = sess.Values[ssoState].(string)
	f.Nonce, _ = sess.Values[ssoNonce].(string)
	f.Verifier, _ = sess.Values[ssoVerifier].(string)
	next, _ = sess.Values[ssoNext].(string)
	unix, _ := sess.Values[ssoAt].(int64)
	opts := *s.sessions.Options
	opts.MaxAge = -1
	sess.Options = &opts
	if f.State != "" {
		err = sess.Save(c.Request(), c.Response())
	}
	return f, safeNext(next), time.Unix(unix, 0), err
}

// handleSSOCallback finishes the flow the provider sent the browser back
// from. Every refusal is recorded as a failed sign-in from the client's
// address (the throttle the password sign-in counts against) and shown on
// the sign-in page with its reason.
func (s *Server) handleSSOCallback(accounts doorledger.SSOService, users doorledger.UserService, factors doorledger.SecondFactorService) echo.HandlerFunc {
	return func(c echo.Context) error {
		p := s.cfg.SSO
		if p == nil || accounts == nil {
			return errNoSSO
		}
		ctx, ip := c.Request().Context(), c.RealIP()
		f, next, started, err := s.takeSSOFlow(c)
		if err != nil {
			return err
		}
		// An address that failed too often is refused before anything
		// is recorded or asked of the provider.
		if err := accounts.CheckSSOThrottle(ctx, ip); doorledger.ErrorCode(err) == doorledger.ETOOMANY {
			c.Response().Header().Set("Retry-After", "900")
			return s.ssoRefused(c, http.StatusTooManyRequests, next, doorledger.ErrorMessage(err))
		} else if err != nil {
			return err
		}
		refuse := func(status int, reason, msg string) error {
			if err := accounts.SSOFailed(ctx, p.Issuer(), "", ip, reason); err != nil {
				return err
			}
			return s.ssoRefused(c, status, next, msg)
		}
		startAgain := fmt.Sprintf(" Start again with “Sign in with %s”.", p.Name())
		if e := c.QueryParam("error"); e != "" {
			return refuse(http.StatusUnauthorized, "the provider answered "+clip(e, 100),
				fmt.Sprintf("%s did not sign you in: %s.", p.Name(), clip(describe(e, c.QueryParam("error_description")), 300))+startAgain)
		}
		got := c.QueryParam("state")
		switch {
		case f.State == "" || subtle.ConstantTimeCompare([]byte(got), []byte(f.State)) != 1:
			return refuse(http.StatusBadRequest, "state not started in this browser",
				"This sign-in was not started in this browser, or it was finished already."+startAgain)
		case s.now().Sub(started) > doorledger.SSOStateLifetime || started.After(s.now().Add(time.Minute)):
			return refuse(http.StatusBadRequest, "state expired", "This sign-in took longer than 10 minutes."+startAgain)
		}
		if err := accounts.UseSSOState(ctx, f.State); doorledger.ErrorCode(err) == doorledger.ECONFLICT {
			return refuse(http.StatusBadRequest, "state used already", "This sign-in was used already."+startAgain)
		} else if err != nil {
			return err
		}
		id, err := p.Exchange(ctx, c.QueryParam("code"), f)
		var r *sso.RefusedError
		switch {
		case errors.As(err, &r):
			s.log.Warn("single sign-on refused", "issuer", p.Issuer(), "ip", ip, "err", err)
			return refuse(http.StatusUnauthorized, r.Reason, fmt.Sprintf("Sign-in with %s was refused: %s.", p.Name(), r.Reason)+startAgain)
		case errors.Is(err, sso.ErrUnavailable):
			return s.ssoRefused(c, http.StatusServiceUnavailable, next, fmt.Sprintf("%s does not answer right now.", p.Name())+startAgain)
		case err != nil:
			return err
		}
		u, err := accounts.SSOSignIn(ctx, *id, ip)
		if code := doorledger.ErrorCode(err); code == doorledger.EUNAUTHORIZED || code == doorledger.ETOOMANY {
			if code == doorledger.ETOOMANY {
				c.Response().Header().Set("Retry-After", "900")
			}
			return s.ssoRefused(c, formStatus(err), next, doorledger.ErrorMessage(err))
		} else if err != nil {
			return err
		}
		// SSO stands for the password: the second factor, then the session.
		return s.afterFirstFactor(c, users, factors, u, next)
	}
}

// describe is a provider's error in words: its description, else its code.
func describe(code, description string) string {
	if description != "" {
		return description + " (" + code + ")"
	}
	return code
}

// clip keeps s to n characters: a provider's words are shown, not trusted.
func clip(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	return string([]rune(s)[:n]) + "…"
}

// handleSSOPage is the admins' page: the provider, and the domains allowed
// to sign up.
func (s *Server) handleSSOPage(accounts doorledger.SSOService) echo.HandlerFunc {
	return func(c echo.Context) error {
		return s.renderSSOPage(c, accounts, http.StatusOK, views.Form{})
	}
}

func (s *Server) renderSSOPage(c echo.Context, accounts doorledger.SSOService, status int, f views.Form) error {
	if accounts == nil {
		return errNoSSO
	}
	domains, err := accounts.SSODomains(c.Request().Context())
	if err != nil {
		return err
	}
	v := views.SSODomainsView{Domains: domains, Form: f}
	if p := s.cfg.SSO; p != nil {
		v.Issuer, v.RedirectURL, v.Available = p.Issuer(), p.RedirectURL(), p.Available()
	}
	return render(c, status, views.SSODomainsPage(s.page(c, "Single sign-on", "users"), v))
}

func (s *Server) handleSSODomainAllow(accounts doorledger.SSOService) echo.HandlerFunc {
	return func(c echo.Context) error {
		if accounts == nil {
			return errNoSSO
		}
		f := formOf(c, "domain", "role")
		d, err := accounts.AllowSSODomain(c.Request().Context(), doorledger.SSODomain{Domain: f.Value("domain"), Role: doorledger.Role(f.Value("role"))})
		if err != nil {
			if !formError(&f, err) {
				return err
			}
			return s.renderSSOPage(c, accounts, formStatus(err), f)
		}
		s.flash(c, "ok", fmt.Sprintf("People with a verified address at %s now get an account as %s at their first sign-in by single sign-on.", d.Domain, d.Role))
		return c.Redirect(http.StatusSeeOther, "/sso")
	}
}

func (s *Server) handleSSODomainRemove(accounts doorledger.SSOService) echo.HandlerFunc {
	return func(c echo.Context) error {
		if accounts == nil {
			return errNoSSO
		}
		domain, err := url.PathUnescape(c.Param("domain"))
		if err != nil {
			return doorledger.Errorf(doorledger.ENOTFOUND, "That domain is not allowed for single sign-on.")
		}
		if err := accounts.RemoveSSODomain(c.Request().Context(), domain); err != nil {
			return err
		}
		s.flash(c, "ok", fmt.Sprintf("Accounts are no longer made for %s by single sign-on; those already made stay.", domain))
		return c.Redirect(http.StatusSeeOther, "/sso")
	}
}
