package web

import (
	"net/http"

	"github.com/doorledger/doorledger"
	"github.com/doorledger/doorledger/views"
	"github.com/labstack/echo/v4"
)

func (s *Server) handleInvite(p buildingPage) echo.HandlerFunc {
	return func(c echo.Context) error {
		id, err := pathID(c, "id")
		if err != nil {
			return err
		}
		f := formOf(c, "invite_name", "invite_company", "invite_email")
		if _, err := p.invitations.Invite(c.Request().Context(), id, f.Value("invite_email"), f.Value("invite_name"), f.Value("invite_company")); err != nil {
			if !formError(&f, err) {
				return err
			}
			return s.rerenderBuilding(c, p, id, err, func(v *views.BuildingView) { v.InviteForm = f })
		}
		return s.redirect(c, pathf("/buildings/%d#invitations", id), "Invitation mailed to "+f.Value("invite_email")+".")
	}
}

func (s *Server) handleInviteWithdraw(invitations doorledger.InvitationService) echo.HandlerFunc {
	return func(c echo.Context) error {
		id, err := pathID(c, "id")
		if err != nil {
			return err
		}
		inv, err := pathID(c, "invitation")
		if err != nil {
			return err
		}
		if err := invitations.WithdrawInvitation(c.Request().Context(), id, inv); err != nil {
			return err
		}
		return s.redirect(c, pathf("/buildings/%d#invitations", id), "Invitation withdrawn: its link no longer works.")
	}
}

func (s *Server) handleInvitationPage(invitations doorledger.InvitationService) echo.HandlerFunc {
	return func(c echo.Context) error {
		token := c.Param("token")
		inv, b, existing, err := invitations.OpenInvitation(c.Request().Context(), token)
		if err != nil {
			return err
		}
		return render(c, http.StatusOK, views.InvitePage(s.page(c, "Invitation", ""), inv, b, existing, "/invite/"+token, views.Form{}))
	}
}

func (s *Server) handleInvitationAccept(invitations doorledger.InvitationService, users doorledger.UserService) echo.HandlerFunc {
	return func(c echo.Context) error {
		token := c.Param("token")
		ctx := c.Request().Context()
		u, err := invitations.AcceptInvitation(ctx, token, c.FormValue("password"))
		if err != nil {
			f := views.Form{}
			if !formError(&f, err) {
				return err
			}
			inv, b, existing, oerr := invitations.OpenInvitation(ctx, token)
			if oerr != nil {
				return oerr
			}
			return render(c, formStatus(err), views.InvitePage(s.page(c, "Invitation", ""), inv, b, existing, "/invite/"+token, f))
		}
		// Sign the installer in, with a new session.
		sess, err := users.CreateSession(ctx, u, "", c.RealIP(), c.Request().UserAgent())
		if err != nil {
			return err
		}
		cookie, _ := s.sessions.New(c.Request(), s.sessionCookie)
		cookie.Values["sid"] = sess.ID
		cookie.AddFlash("Welcome. You can now submit consent requests for this building.", "ok")
		if err := cookie.Save(c.Request(), c.Response()); err != nil {
			return err
		}
		s.clearCSRF(c)
		return c.Redirect(http.StatusSeeOther, "/buildings")
	}
}

// handleOutboxRetry sends an unsent mail again from its first attempt.
func (s *Server) handleOutboxRetry(outbox doorledger.OutboxService) echo.HandlerFunc {
	return func(c echo.Context) error {
		id, err := pathID(c, "mail")
		if err != nil {
			return err
		}
		if err := outbox.RetryMessage(c.Request().Context(), id); err != nil {
			if doorledger.ErrorCode(err) == doorledger.ECONFLICT {
				s.flash(c, "error", doorledger.ErrorMessage(err))
				return c.Redirect(http.StatusSeeOther, pathf("/outbox#mail-%d", id))
			}
			return err
		}
		return s.redirect(c, pathf("/outbox#mail-%d", id), "The mail is being sent again.")
	}
}

func (s *Server) handleOutbox(outbox doorledger.OutboxService) echo.HandlerFunc {
	return func(c echo.Context) error {
		msgs, err := outbox.FindMessages(c.Request().Context(), 100)
		if err != nil {
			return err
		}
		maskResidentMail(msgs)
		return render(c, http.StatusOK, views.OutboxPage(s.page(c, "Outbox", "outbox"), msgs, s.cfg.SMTP))
	}
}
