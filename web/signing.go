package web

import (
	"net/http"

	"github.com/doorledger/doorledger"
	"github.com/doorledger/doorledger/imagecheck"
	"github.com/doorledger/doorledger/views"
	"github.com/labstack/echo/v4"
)

// Signers have no account: these pages are reached by one-time links and by the
// installer's in-person page. Their tokens are in the path, never logged (the
// request log prints the route pattern), and Referrer-Policy is no-referrer.

var signFields = []string{"typed_name", "agree", "signature", "code", "reason"}

// signInput reads the signing form; a signature that fails validation is an
// error on its field, with the rest of the input kept.
func signInput(c echo.Context) (doorledger.SignInput, views.Form, error) {
	f := formOf(c, signFields...)
	in := doorledger.SignInput{TypedName: f.Value("typed_name"), AgreeESign: f.Value("agree") == "1",
		TermsSHA256: c.FormValue("terms_sha256"), IP: c.RealIP(), UserAgent: c.Request().UserAgent()}
	if raw := f.Value("signature"); raw != "" {
		png, err := imagecheck.DataURLPNG(raw)
		if err == nil {
			png, err = imagecheck.Signature(png)
		}
		if doorledger.ErrorCode(err) == doorledger.ETOOMANY {
			return in, f, err // the portal is busy decoding other images: the drawing is kept, to send again
		} else if err != nil {
			f.Values["signature"] = "" // not worth redrawing
			return in, f, &doorledger.Error{Code: doorledger.EINVALID, Message: "Please correct the highlighted fields.",
				Fields: map[string]string{"signature": doorledger.ErrorMessage(err)}}
		}
		in.SignaturePNG = png
	}
	return in, f, nil
}

func (s *Server) handleSignPage(consents doorledger.ConsentService) echo.HandlerFunc {
	return func(c echo.Context) error {
		token := c.Param("token")
		sess, err := consents.OpenSigning(c.Request().Context(), token)
		if err != nil {
			return err
		}
		return render(c, http.StatusOK, views.SigningPage(s.page(c, "Consent", ""), views.SigningView{
			Session: sess, Action: "/sign/" + token, Decline: "/sign/" + token + "/decline"}))
	}
}

func (s *Server) handleSign(consents doorledger.ConsentService) echo.HandlerFunc {
	return func(c echo.Context) error {
		token := c.Param("token")
		ctx := c.Request().Context()
		in, f, err := signInput(c)
		if err == nil {
			var signed *doorledger.Consent
			if signed, err = consents.Sign(ctx, token, in); err == nil {
				return render(c, http.StatusOK, views.MessagePage(s.page(c, "Signed", ""), "Thank you: consent signed",
					"You signed consent #"+itoa(signed.ID)+". A confirmation with links to withdraw it, or to report that you did not sign it, is on its way to "+signed.Signer.Email+"."))
			}
		}
		if !formError(&f, err) {
			return err
		}
		sess, serr := consents.OpenSigning(ctx, token)
		if serr != nil {
			return serr
		}
		return render(c, formStatus(err), views.SigningPage(s.page(c, "Consent", ""), views.SigningView{
			Session: sess, Action: "/sign/" + token, Decline: "/sign/" + token + "/decline", Form: f}))
	}
}

func (s *Server) handleDecline(consents doorledger.ConsentService) echo.HandlerFunc {
	return func(c echo.Context) error {
		if err := consents.Decline(c.Request().Context(), c.Param("token"), c.FormValue("reason")); err != nil {
			return err
		}
		return render(c, http.StatusOK, views.MessagePage(s.page(c, "Declined", ""), "You declined",
			"Nothing will be enabled. The building's managers have been told."))
	}
}

func (s *Server) handleAfterSigningPage(consents doorledger.ConsentService, purpose string) echo.HandlerFunc {
	return func(c echo.Context) error {
		sess, got, err := consents.OpenAfterSigning(c.Request().Context(), c.Param("token"))
		if err != nil {
			return err
		}
		if got != purpose {
			return doorledger.Errorf(doorledger.ENOTFOUND, "This link is not valid.")
		}
		return render(c, http.StatusOK, views.AfterSigningPage(s.page(c, "Consent", ""), sess, purpose, c.Request().URL.Path, views.Form{}))
	}
}

func (s *Server) handleAfterSigning(consents doorledger.ConsentService, purpose string) echo.HandlerFunc {
	return func(c echo.Context) error {
		ctx := c.Request().Context()
		if _, got, err := consents.OpenAfterSigning(ctx, c.Param("token")); err != nil {
			return err
		} else if got != purpose {
			return doorledger.Errorf(doorledger.ENOTFOUND, "This link is not valid.")
		}
		ended, err := consents.EndByToken(ctx, c.Param("token"), c.FormValue("reason"))
		if err != nil {
			return err
		}
		title, msg := "Consent withdrawn", "Consent #"+itoa(ended.ID)+" is withdrawn. Its device is being disabled now, and the building's managers have been alerted."
		if ended.Status == doorledger.ConsentDisputed {
			title, msg = "Reported", "Thank you. Consent #"+itoa(ended.ID)+" is marked disputed, its device is being disabled now, and the building's managers and board have been alerted."
		}
		return render(c, http.StatusOK, views.MessagePage(s.page(c, title, ""), title, msg))
	}
}

// In person: the installer's screen, with a code mailed to the signer.

func (s *Server) handleInPersonPage(consents doorledger.ConsentService) echo.HandlerFunc {
	return func(c echo.Context) error {
		id, err := pathID(c, "consent")
		if err != nil {
			return err
		}
		ctx := c.Request().Context()
		sess, err := consents.InPersonSession(ctx, id)
		if err != nil {
			return err
		}
		if c.QueryParam("sent") == "" {
			return render(c, http.StatusOK, views.InPersonStart(s.page(c, "Sign in person", "submissions"), sess.Consent, views.Form{}))
		}
		return render(c, http.StatusOK, views.SigningPage(s.page(c, "Sign in person", "submissions"), views.SigningView{
			Session: sess, Action: pathf("/consents/%d/in-person", id), InPerson: true}))
	}
}

func (s *Server) handleSendCode(consents doorledger.ConsentService) echo.HandlerFunc {
	return func(c echo.Context) error {
		id, err := pathID(c, "consent")
		if err != nil {
			return err
		}
		ctx := c.Request().Context()
		if err := consents.SendCode(ctx, id); err != nil {
			f := views.Form{}
			if !formError(&f, err) {
				return err
			}
			sess, serr := consents.InPersonSession(ctx, id)
			if serr != nil {
				return serr
			}
			return render(c, formStatus(err), views.InPersonStart(s.page(c, "Sign in person", "submissions"), sess.Consent, f))
		}
		return s.redirect(c, pathf("/consents/%d/in-person?sent=1", id), "Code mailed to the signer's registered address. It works for 10 minutes.")
	}
}

func (s *Server) handleSignInPerson(consents doorledger.ConsentService) echo.HandlerFunc {
	return func(c echo.Context) error {
		id, err := pathID(c, "consent")
		if err != nil {
			return err
		}
		ctx := c.Request().Context()
		in, f, err := signInput(c)
		if err == nil {
			if _, err = consents.SignInPerson(ctx, id, f.Value("code"), in); err == nil {
				return s.redirect(c, pathf("/consents/%d", id), "Signed and verified by the code. The device is being enabled.")
			}
		}
		if !formError(&f, err) {
			return err
		}
		sess, serr := consents.InPersonSession(ctx, id)
		if serr != nil {
			return serr
		}
		return render(c, formStatus(err), views.SigningPage(s.page(c, "Sign in person", "submissions"), views.SigningView{
			Session: sess, Action: pathf("/consents/%d/in-person", id), InPerson: true, Form: f}))
	}
}

func itoa(n int64) string { return pathf("%d", n) }
