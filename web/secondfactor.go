package web

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"image/png"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/doorledger/doorledger"
	"github.com/doorledger/doorledger/views"
	"github.com/labstack/echo/v4"
	"github.com/pquerna/otp"
)

// Second factors in the browser (issue 16). After the password, a user with
// a second factor is half signed in: the session cookie holds who proved
// the password and when (pendingUID, pendingAt), and no session exists yet;
// the code page finishes the sign-in. A user whose role requires a second
// factor and who has none sets one up there instead. Once signed in, the
// cookie holds when the second factor was last proved (factorAt), which the
// actions that ask for it again read (requireRecentFactor).

// Session cookie values.
const (
	pendingUID  = "pre_uid"  // the user who proved their password, still to prove the second factor
	pendingAt   = "pre_at"   // when (Unix seconds, the portal's clock)
	pendingNext = "pre_next" // where the sign-in goes after
	factorAt    = "mfa"      // when the signed-in user last proved their second factor (Unix seconds)
)

// pendingMaxAge is how long a proved password waits for the second factor.
const pendingMaxAge = 10 * time.Minute

// secondFactorStep says where a user who proved their password goes before
// being signed in: the code page ("/login/second-factor") when they have a
// second factor, the enrolment ("/login/enrol") when their role requires
// one and they have none, or nowhere ("").
func secondFactorStep(ctx context.Context, factors doorledger.SecondFactorService, u *doorledger.User) (string, error) {
	if factors == nil || !u.Role.MayHaveSecondFactor() {
		return "", nil
	}
	f, err := factors.SecondFactors(doorledger.NewSystemContext(ctx, "sign-in"), u.ID)
	if err != nil {
		return "", err
	}
	if f.Any() {
		return "/login/second-factor", nil
	}
	roles, err := factors.SecondFactorPolicy(ctx)
	if err != nil {
		return "", err
	}
	if slices.Contains(roles, u.Role) {
		return "/login/enrol", nil
	}
	return "", nil
}

// afterFirstFactor goes on from a proved password (or a single sign-on,
// which stands for it): a user with a second factor proves it before the
// session starts, one whose role requires it and who has none sets it up
// first, anyone else is signed in and sent to next.
func (s *Server) afterFirstFactor(c echo.Context, users doorledger.UserService, factors doorledger.SecondFactorService, u *doorledger.User, next string) error {
	if step, err := secondFactorStep(c.Request().Context(), factors, u); err != nil {
		return err
	} else if step != "" {
		return s.startPending(c, u, next, step)
	}
	if err := s.signIn(c, users, u, time.Time{}); err != nil {
		return err
	}
	return c.Redirect(http.StatusSeeOther, next)
}

// startPending records in the cookie that u proved their password, and
// sends the browser to the second factor's step.
func (s *Server) startPending(c echo.Context, u *doorledger.User, next, step string) error {
	sess, _ := s.sessions.Get(c.Request(), s.sessionCookie)
	sess.Values[pendingUID] = u.ID
	sess.Values[pendingAt] = s.now().Unix()
	sess.Values[pendingNext] = next
	if err := sess.Save(c.Request(), c.Response()); err != nil {
		return err
	}
	return c.Redirect(http.StatusSeeOther, step)
}

// pendingUser returns the user who proved their password in this browser
// within pendingMaxAge, and where the sign-in goes next; nil when none.
func (s *Server) pendingUser(c echo.Context, users doorledger.UserService) (*doorledger.User, string, error) {
	sess, _ := s.sessions.Get(c.Request(), s.sessionCookie)
	id, _ := sess.Values[pendingUID].(int64)
	at, _ := sess.Values[pendingAt].(int64)
	next, _ := sess.Values[pendingNext].(string)
	if id == 0 || s.now().Sub(time.Unix(at, 0)) > pendingMaxAge || s.now().Before(time.Unix(at, 0).Add(-time.Minute)) {
		return nil, "", nil
	}
	u, err := users.FindUserByID(doorledger.NewSystemContext(c.Request().Context(), "sign-in"), id)
	if doorledger.ErrorCode(err) == doorledger.ENOTFOUND || (err == nil && u.Disabled) {
		return nil, "", nil
	} else if err != nil {
		return nil, "", err
	}
	return u, safeNext(next), nil
}

// afterPassword is a handler of the second factor's step at sign-in: h runs
// for the user who proved their password in this browser within
// pendingMaxAge (pendingUser), with where the sign-in goes next; a browser
// with none goes back to the sign-in page. Every such step checks the
// proved password here.
func (s *Server) afterPassword(users doorledger.UserService, h func(c echo.Context, u *doorledger.User, next string) error) echo.HandlerFunc {
	return func(c echo.Context) error {
		u, next, err := s.pendingUser(c, users)
		if err != nil {
			return err
		} else if u == nil {
			return c.Redirect(http.StatusSeeOther, "/login")
		}
		return h(c, u, next)
	}
}

// signIn starts a new session for u in this browser, ending the one it had
// (a cookie planted or copied before sign-in is worth nothing), with the
// time u proved their second factor (zero: not at this sign-in).
func (s *Server) signIn(c echo.Context, users doorledger.UserService, u *doorledger.User, factor time.Time) error {
	old, _ := c.Get("sid").(string)
	if old == "" {
		sess, _ := s.sessions.Get(c.Request(), s.sessionCookie)
		old, _ = sess.Values["sid"].(string)
	}
	created, err := users.CreateSession(c.Request().Context(), u, old, c.RealIP(), c.Request().UserAgent())
	if err != nil {
		return err
	}
	// The cookie starts afresh: nothing pending is kept. The request's
	// session (gorilla's registry caches it) is emptied rather than a new one
	// made, so a later flash or page in this request saves this one.
	sess, _ := s.sessions.Get(c.Request(), s.sessionCookie)
	clear(sess.Values)
	sess.Values["sid"] = created.ID
	if !factor.IsZero() {
		sess.Values[factorAt] = factor.Unix()
	}
	if err := sess.Save(c.Request(), c.Response()); err != nil {
		return err
	}
	s.clearCSRF(c) // and a new CSRF token
	return nil
}

// markFactor records in this browser's cookie that the signed-in user
// proved their second factor now.
func (s *Server) markFactor(c echo.Context) error {
	sess, _ := s.sessions.Get(c.Request(), s.sessionCookie)
	sess.Values[factorAt] = s.now().Unix()
	return sess.Save(c.Request(), c.Response())
}

// codeForm is a form whose code was refused, with the message beside the field.
func codeForm(field string, err error) views.Form {
	f := views.Form{Values: map[string]string{}, Errors: map[string]string{}}
	if msg := doorledger.ErrorFields(err)["code"]; msg != "" {
		f.Errors[field] = msg
	} else {
		f.Errors[field] = doorledger.ErrorMessage(err)
	}
	return f
}

// codeRefused says whether err is a refused code the page shows, setting
// Retry-After when the tries are throttled.
func codeRefused(c echo.Context, err error) bool {
	switch doorledger.ErrorCode(err) {
	case doorledger.ETOOMANY:
		c.Response().Header().Set("Retry-After", "900")
		return true
	case doorledger.EUNAUTHORIZED, doorledger.EINVALID:
		return true
	}
	return false
}

func (s *Server) handleSecondFactorPage(users doorledger.UserService) echo.HandlerFunc {
	return s.afterPassword(users, func(c echo.Context, _ *doorledger.User, _ string) error {
		return render(c, http.StatusOK, views.SecondFactorLoginPage(s.page(c, "Second factor", ""), views.Form{}))
	})
}

func (s *Server) handleSecondFactorLogin(users doorledger.UserService, factors doorledger.SecondFactorService) echo.HandlerFunc {
	return s.afterPassword(users, func(c echo.Context, u *doorledger.User, next string) error {
		kind, err := factors.VerifySecondFactor(c.Request().Context(), u.ID, c.FormValue("code"), c.RealIP())
		if err != nil {
			if !codeRefused(c, err) {
				return err
			}
			return render(c, formStatus(err), views.SecondFactorLoginPage(s.page(c, "Second factor", ""), codeForm("code", err)))
		}
		if err := s.signIn(c, users, u, s.now()); err != nil {
			return err
		}
		if kind == doorledger.FactorRecovery {
			s.flash(c, "ok", "You signed in with a recovery code; it cannot be used again. Lost your authenticator app? Ask an admin to reset your second factor.")
		}
		return c.Redirect(http.StatusSeeOther, next)
	})
}

// asPending is ctx acting as u, who proved their password (the
// enrolment at sign-in acts as them before their session exists).
func asPending(ctx context.Context, u *doorledger.User) context.Context {
	return doorledger.NewContextWithUser(ctx, u)
}

func (s *Server) handleEnrolPage(users doorledger.UserService, factors doorledger.SecondFactorService) echo.HandlerFunc {
	return s.afterPassword(users, func(c echo.Context, u *doorledger.User, _ string) error {
		if !u.Role.MayHaveSecondFactor() {
			return c.Redirect(http.StatusSeeOther, "/login")
		}
		setup, err := factors.PendingTOTP(asPending(c.Request().Context(), u))
		if doorledger.ErrorCode(err) == doorledger.ENOTFOUND {
			return render(c, http.StatusOK, views.SecondFactorEnrolIntro(s.page(c, "Set up a second factor", "")))
		} else if err != nil {
			return err
		}
		return s.renderTOTPSetup(c, http.StatusOK, setup, "/login/enrol", true, views.Form{})
	})
}

func (s *Server) handleEnrolStart(users doorledger.UserService, factors doorledger.SecondFactorService) echo.HandlerFunc {
	return s.afterPassword(users, func(c echo.Context, u *doorledger.User, _ string) error {
		setup, err := factors.StartTOTP(asPending(c.Request().Context(), u))
		switch doorledger.ErrorCode(err) {
		case "":
			return s.renderTOTPSetup(c, http.StatusOK, setup, "/login/enrol", true, views.Form{})
		case doorledger.ECONFLICT, doorledger.EFORBIDDEN: // set up meanwhile, or not theirs to have
			return c.Redirect(http.StatusSeeOther, "/login/second-factor")
		}
		return err
	})
}

func (s *Server) handleEnrolConfirm(users doorledger.UserService, factors doorledger.SecondFactorService) echo.HandlerFunc {
	return s.afterPassword(users, func(c echo.Context, u *doorledger.User, next string) error {
		ctx := asPending(c.Request().Context(), u)
		codes, err := factors.ConfirmTOTP(ctx, c.FormValue("code"), c.RealIP())
		if err != nil {
			return s.setupRefused(c, factors, ctx, err, "/login/enrol", true)
		}
		if err := s.signIn(c, users, u, s.now()); err != nil {
			return err
		}
		c.SetRequest(c.Request().WithContext(ctx)) // the page is drawn for them, signed in
		return render(c, http.StatusOK, views.RecoveryCodesPage(s.page(c, "Your recovery codes", ""), views.RecoveryCodesView{Codes: codes, Continue: next}))
	})
}

// setupRefused re-renders an authenticator app's setup after a refused
// code, with the message beside the field.
func (s *Server) setupRefused(c echo.Context, factors doorledger.SecondFactorService, ctx context.Context, err error, action string, signIn bool) error {
	if !codeRefused(c, err) {
		if doorledger.ErrorCode(err) == doorledger.ENOTFOUND { // nothing pending: start again
			return c.Redirect(http.StatusSeeOther, map[bool]string{true: "/login/enrol", false: "/account/second-factor"}[signIn])
		}
		return err
	}
	setup, perr := factors.PendingTOTP(ctx)
	if perr != nil {
		return perr
	}
	return s.renderTOTPSetup(c, formStatus(err), setup, action, signIn, codeForm("code", err))
}

// renderTOTPSetup draws the setup page of a new secret, its QR code a PNG
// in a data: URL (the CSP allows data: images).
func (s *Server) renderTOTPSetup(c echo.Context, status int, setup *doorledger.TOTPSetup, action string, signIn bool, f views.Form) error {
	v := views.TOTPSetupView{Action: action, Secret: setup.Secret, SignIn: signIn}
	if k, err := otp.NewKeyFromURL(setup.URL); err == nil {
		if img, err := k.Image(200, 200); err == nil {
			var buf bytes.Buffer
			if err := png.Encode(&buf, img); err == nil {
				v.QR = "data:image/png;base64," + base64.StdEncoding.EncodeToString(buf.Bytes())
			}
		}
	}
	return render(c, status, views.TOTPSetupPage(s.page(c, "Set up an authenticator app", "account"), v, f))
}

func (s *Server) handleAccountFactors(factors doorledger.SecondFactorService) echo.HandlerFunc {
	return func(c echo.Context) error {
		return s.renderAccountFactors(c, factors, http.StatusOK, views.Form{}, "")
	}
}

func (s *Server) handleAccountTOTPStart(factors doorledger.SecondFactorService) echo.HandlerFunc {
	return func(c echo.Context) error {
		setup, err := factors.StartTOTP(c.Request().Context())
		if doorledger.ErrorCode(err) == doorledger.ECONFLICT {
			return s.redirect(c, "/account/second-factor", "")
		} else if err != nil {
			return err
		}
		return s.renderTOTPSetup(c, http.StatusOK, setup, "/account/second-factor/totp/confirm", false, views.Form{})
	}
}

func (s *Server) handleAccountTOTPConfirm(factors doorledger.SecondFactorService) echo.HandlerFunc {
	return func(c echo.Context) error {
		ctx := c.Request().Context()
		codes, err := factors.ConfirmTOTP(ctx, c.FormValue("code"), c.RealIP())
		if err != nil {
			return s.setupRefused(c, factors, ctx, err, "/account/second-factor/totp/confirm", false)
		}
		if err := s.markFactor(c); err != nil {
			return err
		}
		return render(c, http.StatusOK, views.RecoveryCodesPage(s.page(c, "Your recovery codes", "account"),
			views.RecoveryCodesView{Codes: codes, Continue: "/account/second-factor"}))
	}
}

func (s *Server) handleAccountTOTPRemove(factors doorledger.SecondFactorService) echo.HandlerFunc {
	return func(c echo.Context) error {
		err := factors.RemoveTOTP(c.Request().Context())
		if doorledger.ErrorCode(err) == doorledger.ENOTFOUND { // removed meanwhile, or never set up
			return s.redirect(c, "/account/second-factor", "")
		}
		return s.factorRemoved(c, factors, err, "Authenticator app removed.")
	}
}

// factorRemoved answers the removal of one of the user's own second
// factors: their page with msg, or with why it was refused (their role
// requires a second factor and it was their last).
func (s *Server) factorRemoved(c echo.Context, factors doorledger.SecondFactorService, err error, msg string) error {
	switch doorledger.ErrorCode(err) {
	case "":
		return s.redirect(c, "/account/second-factor", msg)
	case doorledger.ECONFLICT:
		return s.renderAccountFactors(c, factors, http.StatusConflict, views.Form{}, doorledger.ErrorMessage(err))
	}
	return err
}

func (s *Server) handleAccountRecoveryCodes(factors doorledger.SecondFactorService) echo.HandlerFunc {
	return func(c echo.Context) error {
		codes, err := factors.NewRecoveryCodes(c.Request().Context())
		if doorledger.ErrorCode(err) == doorledger.EINVALID {
			return s.redirect(c, "/account/second-factor", "")
		} else if err != nil {
			return err
		}
		return render(c, http.StatusOK, views.RecoveryCodesPage(s.page(c, "Your recovery codes", "account"),
			views.RecoveryCodesView{Codes: codes, Continue: "/account/second-factor"}))
	}
}

// renderUserEdit draws an admin's page of a user, with their second factor.
func (s *Server) renderUserEdit(c echo.Context, factors doorledger.SecondFactorService, status int, u *doorledger.User, f, pw views.Form) error {
	var sf *doorledger.SecondFactors
	if factors != nil && u.Role.MayHaveSecondFactor() {
		var err error
		if sf, err = factors.SecondFactors(c.Request().Context(), u.ID); err != nil {
			return err
		}
	}
	return render(c, status, views.UserEditPage(s.page(c, u.Name, "users"), u, f, pw, sf))
}

func (s *Server) handleUserFactorReset(users doorledger.UserService, factors doorledger.SecondFactorService) echo.HandlerFunc {
	return func(c echo.Context) error {
		id, err := pathID(c, "user")
		if err != nil {
			return err
		}
		ctx := c.Request().Context()
		u, err := users.FindUserByID(ctx, id)
		if err != nil {
			return err
		}
		if err := factors.ResetSecondFactor(ctx, id); err != nil {
			return err
		}
		return s.redirect(c, fmt.Sprintf("/users/%d", id), fmt.Sprintf("The second factor of %s is reset: they set up a new one.", u.Email))
	}
}

func (s *Server) handleFactorPolicyPage(factors doorledger.SecondFactorService) echo.HandlerFunc {
	return func(c echo.Context) error {
		roles, err := factors.SecondFactorPolicy(c.Request().Context())
		if err != nil {
			return err
		}
		v := views.SecondFactorPolicyView{Required: map[doorledger.Role]bool{}}
		for _, r := range roles {
			v.Required[r] = true
		}
		return render(c, http.StatusOK, views.SecondFactorPolicyPage(s.page(c, "Second factor", "users"), v, views.Form{}))
	}
}

func (s *Server) handleFactorPolicy(factors doorledger.SecondFactorService) echo.HandlerFunc {
	return func(c echo.Context) error {
		params, err := c.FormParams()
		if err != nil {
			return err
		}
		v := views.SecondFactorPolicyView{Required: map[doorledger.Role]bool{}}
		var roles []doorledger.Role
		for _, r := range params["role"] {
			roles = append(roles, doorledger.Role(r))
			v.Required[doorledger.Role(r)] = true
		}
		if err := factors.SetSecondFactorPolicy(c.Request().Context(), roles); err != nil {
			f := views.Form{}
			if !formError(&f, err) {
				return err
			}
			return render(c, formStatus(err), views.SecondFactorPolicyPage(s.page(c, "Second factor", "users"), v, f))
		}
		return s.redirect(c, "/second-factor", "Saved. Users of these roles without a second factor set one up at their next sign-in.")
	}
}

// requireRecentFactor asks a user who has a second factor for it again
// before the action goes on, when the last time they proved it is older
// than doorledger.StepUpAge. The page it answers with is the action's form
// once more, its fields kept as hidden inputs and a code field added
// (_second_factor): posted, the code is checked here (throttled and
// journaled as at sign-in) and the action goes on with its input as it
// was. It runs after csrfForm, so the form's token was checked first.
func (s *Server) requireRecentFactor(factors doorledger.SecondFactorService, what string) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			if factors == nil {
				return next(c)
			}
			ctx := c.Request().Context()
			u := doorledger.UserFromContext(ctx)
			sess, _ := s.sessions.Get(c.Request(), s.sessionCookie)
			if at, _ := sess.Values[factorAt].(int64); at != 0 {
				if age := s.now().Sub(time.Unix(at, 0)); age >= -time.Minute && age <= doorledger.StepUpAge {
					return next(c)
				}
			}
			f, err := factors.SecondFactors(ctx, u.ID)
			if err != nil {
				return err
			}
			if !f.Any() {
				return next(c)
			}
			params, err := c.FormParams()
			if err != nil {
				return err
			}
			v := views.StepUpView{Action: c.Request().URL.Path, What: what}
			for name, values := range params {
				if name == "_csrf" || name == "_second_factor" || name == "_passkey" {
					continue
				}
				for _, value := range values {
					v.Fields = append(v.Fields, views.FormHidden{Name: name, Value: value})
				}
			}
			slices.SortStableFunc(v.Fields, func(a, b views.FormHidden) int { return strings.Compare(a.Name, b.Name) })
			status, form := http.StatusOK, views.Form{}
			if key, code := params.Get("_passkey"), params.Get("_second_factor"); key != "" || code != "" {
				var err error
				if key != "" {
					err = s.stepUpPasskey(c, factors, u, key)
				} else {
					_, err = factors.VerifySecondFactor(ctx, u.ID, code, c.RealIP())
				}
				if err == nil {
					if err := s.markFactor(c); err != nil {
						return err
					}
					return next(c)
				}
				if !codeRefused(c, err) {
					return err
				}
				status, form = formStatus(err), codeForm("_second_factor", err)
				if key != "" { // the passkey's refusal is the whole form's: it has no field
					form = views.Form{Error: doorledger.ErrorMessage(err)}
				}
			}
			if c.Request().Header.Get("HX-Request") != "" {
				// The action was posted by htmx to swap a fragment: the
				// page takes the whole window instead.
				c.Response().Header().Set("HX-Retarget", "body")
				c.Response().Header().Set("HX-Reswap", "innerHTML")
				status = http.StatusOK // htmx swaps 2xx answers only
			}
			return render(c, status, views.StepUpPage(s.page(c, "Confirm it is you", ""), v, form))
		}
	}
}
