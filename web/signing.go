package web

import (
	"net/http"
	"strconv"

	"github.com/doorledger/doorledger"
	"github.com/doorledger/doorledger/imagecheck"
	"github.com/doorledger/doorledger/views"
	"github.com/labstack/echo/v4"
)

// Signers have no account: these pages are reached by one-time links and by the
// installer's in-person page. Their tokens are in the path, never logged (the
// request log prints the route pattern), and Referrer-Policy is no-referrer.

var signFields = []string{"typed_name", "name_confirm", "agree", "signature", "code", "reason", "paper_confirm"}

// signInput reads the signing form; a signature that fails validation is an
// error on its field, with the rest of the input kept.
func signInput(c echo.Context) (doorledger.SignInput, views.Form, error) {
	f := formOf(c, signFields...)
	in := doorledger.SignInput{TypedName: f.Value("typed_name"), AgreeESign: f.Value("agree") == "1",
		ConfirmNameDiffers: f.Value("name_confirm") == "1",
		ConfirmPaper:       f.Value("paper_confirm") == "1", PaperSHA256: c.FormValue("paper_sha256"),
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
			return s.linkError(c, err)
		}
		if sess.Done {
			if paperAsks(sess) {
				return render(c, http.StatusOK, views.PaperQuestionPage(s.page(c, "Consent", ""), sess, "/sign/"+token+"/paper/", "/sign/"+token+"/paper/dispute"))
			}
			return render(c, http.StatusOK, views.SignerLinkPage(s.page(c, "Consent", ""), sess, "/consent/links/"+token))
		}
		return render(c, http.StatusOK, views.SigningPage(s.page(c, "Consent", ""), signingView(sess, token, views.Form{})))
	}
}

// signingView is the signing page of a link: the paper form's files and
// its "I did not sign this form" go through the same token.
func signingView(sess *doorledger.SigningSession, token string, f views.Form) views.SigningView {
	return views.SigningView{Session: sess, Action: "/sign/" + token, Decline: "/sign/" + token + "/decline", Form: f,
		PaperBase: "/sign/" + token + "/paper/", PaperDispute: "/sign/" + token + "/paper/dispute"}
}

// paperAsks reports whether a link past signing still has a question for
// its signer: the paper form names them, they have not answered, and the
// request or consent stands.
func paperAsks(sess *doorledger.SigningSession) bool {
	c := sess.Consent
	if c.Paper == nil || sess.Me == nil || sess.Me.Signature != nil || (c.Status != doorledger.ConsentAwaiting && c.Status != doorledger.ConsentSigned) {
		return false
	}
	ps := c.Paper.Asks(sess.Me.Signer.ID)
	return ps != nil && ps.Answer == doorledger.PaperUnanswered
}

// linkError answers a signer's link that cannot be used: a consent nobody
// can sign any more gets its own page (409) rather than the error page.
func (s *Server) linkError(c echo.Context, err error) error {
	if doorledger.ErrorCode(err) == doorledger.ECONFLICT {
		return render(c, http.StatusConflict, views.MessagePage(s.page(c, "Consent", ""), "This consent can no longer be signed", doorledger.ErrorMessage(err)))
	}
	return err
}

// linkState answers a post to a signer's link that is no longer usable (a
// second click on "Sign", a withdraw posted twice): what happened, or why
// not, rather than "not found". Anything else is the original error.
func (s *Server) linkState(c echo.Context, consents doorledger.ConsentService, token string, err error) error {
	if code := doorledger.ErrorCode(err); code != doorledger.ENOTFOUND && code != doorledger.ECONFLICT {
		return err
	}
	sess, serr := consents.OpenSigning(c.Request().Context(), token)
	if serr != nil {
		return s.linkError(c, serr)
	}
	if !sess.Done {
		return err
	}
	return render(c, http.StatusConflict, views.SignerLinkPage(s.page(c, "Consent", ""), sess, "/consent/links/"+token))
}

func (s *Server) handleSign(consents doorledger.ConsentService) echo.HandlerFunc {
	return func(c echo.Context) error {
		token := c.Param("token")
		ctx := c.Request().Context()
		in, f, err := signInput(c)
		if err == nil {
			var signed *doorledger.Consent
			if signed, err = consents.Sign(ctx, token, in); err == nil {
				if signed.Status == doorledger.ConsentAwaiting {
					return render(c, http.StatusOK, views.MessagePage(s.page(c, "Signature recorded", ""), "Thank you: your signature is recorded",
						"Consent #"+itoa(signed.ID)+" still needs "+signed.Need.Describe()+"; nothing is enabled until then. A confirmation with links to withdraw your signature, or to report that you did not sign it, is on its way to your registered address."))
				}
				return render(c, http.StatusOK, views.MessagePage(s.page(c, "Signed", ""), "Thank you: consent signed",
					"You signed consent #"+itoa(signed.ID)+". A confirmation with links to withdraw it, or to report that you did not sign it, is on its way to "+signed.Signer.Email+"."))
			}
		}
		if !formError(&f, err) {
			return s.linkState(c, consents, token, err)
		}
		sess, serr := consents.OpenSigning(ctx, token)
		if serr != nil {
			return s.linkError(c, serr)
		} else if sess.Done {
			return render(c, http.StatusConflict, views.SignerLinkPage(s.page(c, "Consent", ""), sess, "/consent/links/"+token))
		}
		return render(c, formStatus(err), views.SigningPage(s.page(c, "Consent", ""), signingView(sess, token, f)))
	}
}

func (s *Server) handleDecline(consents doorledger.ConsentService) echo.HandlerFunc {
	return func(c echo.Context) error {
		if err := consents.Decline(c.Request().Context(), c.Param("token"), c.FormValue("reason")); err != nil {
			return s.linkState(c, consents, c.Param("token"), err)
		}
		return render(c, http.StatusOK, views.MessagePage(s.page(c, "Declined", ""), "You declined",
			"Nothing will be enabled. The building's managers have been told."))
	}
}

func (s *Server) handleAfterSigningPage(consents doorledger.ConsentService, purpose string) echo.HandlerFunc {
	return func(c echo.Context) error {
		token := c.Param("token")
		sess, got, err := consents.OpenAfterSigning(c.Request().Context(), token)
		if err != nil {
			return err
		}
		if got != purpose {
			return doorledger.Errorf(doorledger.ENOTFOUND, "This link is not valid.")
		}
		if sess.Done {
			return render(c, http.StatusOK, views.SignerLinkPage(s.page(c, "Consent", ""), sess, "/consent/links/"+token))
		}
		return render(c, http.StatusOK, views.AfterSigningPage(s.page(c, "Consent", ""), sess, purpose, c.Request().URL.Path, "/consent/links/"+token, views.Form{}))
	}
}

func (s *Server) handleAfterSigning(consents doorledger.ConsentService, purpose string) echo.HandlerFunc {
	return func(c echo.Context) error {
		ctx := c.Request().Context()
		token := c.Param("token")
		if sess, got, err := consents.OpenAfterSigning(ctx, token); err != nil {
			return err
		} else if got != purpose {
			return doorledger.Errorf(doorledger.ENOTFOUND, "This link is not valid.")
		} else if sess.Done {
			return render(c, http.StatusConflict, views.SignerLinkPage(s.page(c, "Consent", ""), sess, "/consent/links/"+token))
		}
		ended, err := consents.EndByToken(ctx, token, c.FormValue("reason"))
		if err != nil {
			return err
		}
		title, msg := "Consent withdrawn", "Consent #"+itoa(ended.ID)+" is withdrawn. Its device is being disabled now, and the building's managers have been alerted."
		if ended.Signature == nil { // a request ended before its signatures were complete
			title, msg = "Request ended", "Consent request #"+itoa(ended.ID)+" ends unsigned: nothing was enabled and nothing will be. The building's managers have been alerted."
		} else if ended.Status == doorledger.ConsentDisputed {
			title, msg = "Reported", "Thank you. Consent #"+itoa(ended.ID)+" is marked disputed, its device is being disabled now, and the building's managers and board have been alerted."
		}
		return render(c, http.StatusOK, views.MessagePage(s.page(c, title, ""), title, msg))
	}
}

// handleMailEndLinks mails the signer new withdraw and "I did not sign this"
// links, reached from any link mailed for the consent: it only ever sends
// mail to the registered address.
func (s *Server) handleMailEndLinks(consents doorledger.ConsentService) echo.HandlerFunc {
	return func(c echo.Context) error {
		if err := consents.MailEndLinks(c.Request().Context(), c.Param("token")); err != nil {
			return err
		}
		return render(c, http.StatusOK, views.MessagePage(s.page(c, "Links mailed", ""), "Links mailed",
			"New links to withdraw this consent, or to report that you did not sign it, are on their way to your registered address."))
	}
}

// In person: the installer's screen, with a code mailed to the signer.

// inPersonSigner is the named signer the installer's screen is for (query
// or form "signer"; 0: the next whose turn it is), and the path suffix that
// keeps it.
func inPersonSigner(c echo.Context) (int64, string) {
	id, _ := strconv.ParseInt(c.QueryParam("signer"), 10, 64)
	if id <= 0 {
		return 0, ""
	}
	return id, pathf("signer=%d", id)
}

func (s *Server) handleInPersonPage(consents doorledger.ConsentService) echo.HandlerFunc {
	return func(c echo.Context) error {
		id, err := pathID(c, "consent")
		if err != nil {
			return err
		}
		ctx := c.Request().Context()
		signerID, q := inPersonSigner(c)
		sess, err := consents.InPersonSession(ctx, id, signerID)
		if err != nil {
			return s.linkError(c, err)
		}
		if c.QueryParam("sent") == "" {
			return render(c, http.StatusOK, views.InPersonStart(s.page(c, "Sign in person", "submissions"), sess, views.Form{}))
		}
		return render(c, http.StatusOK, views.SigningPage(s.page(c, "Sign in person", "submissions"), views.SigningView{
			Session: sess, Action: withQuery(pathf("/consents/%d/in-person", id), q), InPerson: true, PaperBase: pathf("/consents/%d/paper/", id)}))
	}
}

func withQuery(path, q string) string {
	if q == "" {
		return path
	}
	return path + "?" + q
}

func (s *Server) handleSendCode(consents doorledger.ConsentService) echo.HandlerFunc {
	return func(c echo.Context) error {
		id, err := pathID(c, "consent")
		if err != nil {
			return err
		}
		ctx := c.Request().Context()
		signerID, q := inPersonSigner(c)
		if err := consents.SendCode(ctx, id, signerID); err != nil {
			f := views.Form{}
			if !formError(&f, err) {
				return err
			}
			sess, serr := consents.InPersonSession(ctx, id, signerID)
			if serr != nil {
				return s.linkError(c, serr)
			}
			return render(c, formStatus(err), views.InPersonStart(s.page(c, "Sign in person", "submissions"), sess, f))
		}
		next := pathf("/consents/%d/in-person?sent=1", id)
		if q != "" {
			next += "&" + q
		}
		return s.redirect(c, next, "Code mailed to the signer's registered address. It works for 10 minutes.")
	}
}

func (s *Server) handleSignInPerson(consents doorledger.ConsentService) echo.HandlerFunc {
	return func(c echo.Context) error {
		id, err := pathID(c, "consent")
		if err != nil {
			return err
		}
		ctx := c.Request().Context()
		signerID, q := inPersonSigner(c)
		in, f, err := signInput(c)
		if err == nil {
			var signed *doorledger.Consent
			if signed, err = consents.SignInPerson(ctx, id, signerID, f.Value("code"), in); err == nil {
				if signed.Status == doorledger.ConsentAwaiting {
					return s.redirect(c, pathf("/consents/%d", id), "Signature recorded: the code mailed to the signer's registered address verified it. Still needed: "+signed.Need.Describe()+".")
				}
				return s.redirect(c, pathf("/consents/%d", id), "Signed: the code mailed to the signer's registered address verified it. The device is being enabled.")
			}
		}
		if !formError(&f, err) {
			return err
		}
		sess, serr := consents.InPersonSession(ctx, id, signerID)
		if serr != nil {
			return s.linkError(c, serr)
		}
		return render(c, formStatus(err), views.SigningPage(s.page(c, "Sign in person", "submissions"), views.SigningView{
			Session: sess, Action: withQuery(pathf("/consents/%d/in-person", id), q), InPerson: true, Form: f, PaperBase: pathf("/consents/%d/paper/", id)}))
	}
}

func itoa(n int64) string { return pathf("%d", n) }
