package web

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/url"

	"github.com/doorledger/doorledger"
	"github.com/doorledger/doorledger/views"
	"github.com/go-webauthn/webauthn/protocol"
	"github.com/go-webauthn/webauthn/webauthn"
	"github.com/labstack/echo/v4"
)

// Passkeys (WebAuthn, github.com/go-webauthn/webauthn). The relying party is
// the public URL's host: browsers refuse WebAuthn on an IP address, so a
// portal reached at one (the default 127.0.0.1) offers no passkeys. The
// browser's side is static/app.js (forms with data-passkey); a ceremony's
// challenge waits in the session cookie (passkeyCeremony) and is used once.

// passkeyCeremony is the session cookie's value holding a ceremony's state.
const passkeyCeremony = "wa"

// newWebAuthn is the relying party of publicURL, or nil when passkeys cannot
// work there (no public URL, or an IP address).
func newWebAuthn(publicURL string) *webauthn.WebAuthn {
	u, err := url.Parse(publicURL)
	if err != nil || u.Hostname() == "" || net.ParseIP(u.Hostname()) != nil || (u.Scheme != "http" && u.Scheme != "https") {
		return nil
	}
	wa, err := webauthn.New(&webauthn.Config{RPID: u.Hostname(), RPDisplayName: "Doorledger", RPOrigins: []string{u.Scheme + "://" + u.Host}})
	if err != nil {
		return nil
	}
	return wa
}

// passkeyUser is a user as the WebAuthn library sees them.
type passkeyUser struct {
	u     *doorledger.User
	creds []webauthn.Credential
}

func (p passkeyUser) WebAuthnID() []byte                         { return userHandle(p.u.ID) }
func (p passkeyUser) WebAuthnName() string                       { return p.u.Email }
func (p passkeyUser) WebAuthnDisplayName() string                { return p.u.Name }
func (p passkeyUser) WebAuthnCredentials() []webauthn.Credential { return p.creds }

// userHandle is the opaque id passkeys carry for a user: their account id.
func userHandle(id int64) []byte {
	b := make([]byte, 8)
	binary.BigEndian.PutUint64(b, uint64(id))
	return b
}

// credentialsOf decodes stored passkeys for the library.
func credentialsOf(keys []*doorledger.Passkey) ([]webauthn.Credential, error) {
	var out []webauthn.Credential
	for _, k := range keys {
		var c webauthn.Credential
		if err := json.Unmarshal(k.Data, &c); err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, nil
}

// saveCeremony keeps a ceremony's state in the session cookie.
func (s *Server) saveCeremony(c echo.Context, sd *webauthn.SessionData) error {
	b, err := json.Marshal(sd)
	if err != nil {
		return err
	}
	sess, _ := s.sessions.Get(c.Request(), s.sessionCookie)
	sess.Values[passkeyCeremony] = string(b)
	return sess.Save(c.Request(), c.Response())
}

// takeCeremony returns the ceremony's state and forgets it: a challenge
// answers once.
func (s *Server) takeCeremony(c echo.Context) (*webauthn.SessionData, error) {
	sess, _ := s.sessions.Get(c.Request(), s.sessionCookie)
	raw, _ := sess.Values[passkeyCeremony].(string)
	delete(sess.Values, passkeyCeremony)
	if err := sess.Save(c.Request(), c.Response()); err != nil {
		return nil, err
	}
	var sd webauthn.SessionData
	if raw == "" || json.Unmarshal([]byte(raw), &sd) != nil {
		return nil, errors.New("no passkey ceremony under way")
	}
	return &sd, nil
}

// passkeysOff answers when the portal offers no passkeys.
func passkeysOff() error {
	return doorledger.Errorf(doorledger.ENOTFOUND, "Passkeys need the portal at a host name (-public-url), not an IP address.")
}

func (s *Server) handlePasskeyRegisterOptions(factors doorledger.SecondFactorService) echo.HandlerFunc {
	return func(c echo.Context) error {
		if s.webauthn == nil {
			return passkeysOff()
		}
		ctx := c.Request().Context()
		u := doorledger.UserFromContext(ctx)
		if !u.Role.MayHaveSecondFactor() {
			return doorledger.Errorf(doorledger.ENOTFOUND, "Page not found.")
		}
		keys, err := factors.Passkeys(ctx, u.ID)
		if err != nil {
			return err
		}
		creds, err := credentialsOf(keys)
		if err != nil {
			return err
		}
		creation, sd, err := s.webauthn.BeginRegistration(passkeyUser{u: u, creds: creds},
			webauthn.WithResidentKeyRequirement(protocol.ResidentKeyRequirementRequired),
			webauthn.WithExclusions(webauthn.Credentials(creds).CredentialDescriptors()))
		if err != nil {
			return err
		}
		if err := s.saveCeremony(c, sd); err != nil {
			return err
		}
		return c.JSON(http.StatusOK, creation)
	}
}

func (s *Server) handlePasskeyAdd(factors doorledger.SecondFactorService) echo.HandlerFunc {
	return func(c echo.Context) error {
		if s.webauthn == nil {
			return passkeysOff()
		}
		ctx := c.Request().Context()
		u := doorledger.UserFromContext(ctx)
		f := formOf(c, "name")
		sd, err := s.takeCeremony(c)
		var cred *webauthn.Credential
		if err == nil {
			var parsed *protocol.ParsedCredentialCreationData
			if parsed, err = protocol.ParseCredentialCreationResponseBytes([]byte(c.FormValue("credential"))); err == nil {
				cred, err = s.webauthn.CreateCredential(passkeyUser{u: u}, *sd, parsed)
			}
		}
		if err == nil {
			var data []byte
			if data, err = json.Marshal(cred); err != nil {
				return err
			}
			_, err = factors.AddPasskey(ctx, f.Value("name"), cred.ID, data)
		} else {
			s.log.Info("passkey registration refused", "user", u.ID, "err", err)
			err = &doorledger.Error{Code: doorledger.EINVALID, Message: "The browser's passkey was not accepted.",
				Fields: map[string]string{"name": "The browser's passkey was not accepted. Try again."}}
		}
		if err != nil {
			if !formError(&f, err) {
				return err
			}
			return s.renderAccountFactors(c, factors, formStatus(err), f, "")
		}
		return s.redirect(c, "/account/second-factor", "Passkey added: you can sign in with it alone.")
	}
}

func (s *Server) handlePasskeyRemove(factors doorledger.SecondFactorService) echo.HandlerFunc {
	return func(c echo.Context) error {
		id, err := pathID(c, "passkey")
		if err != nil {
			return err
		}
		return s.factorRemoved(c, factors, factors.RemovePasskey(c.Request().Context(), id), "Passkey removed.")
	}
}

// handlePasskeyOptions starts a sign-in by passkey (any of this portal's:
// the browser offers those it holds), for the sign-in page, the second
// factor's page and the step-up page alike.
func (s *Server) handlePasskeyOptions(c echo.Context) error {
	if s.webauthn == nil {
		return passkeysOff()
	}
	assertion, sd, err := s.webauthn.BeginDiscoverableLogin(webauthn.WithUserVerification(protocol.VerificationRequired))
	if err != nil {
		return err
	}
	if err := s.saveCeremony(c, sd); err != nil {
		return err
	}
	return c.JSON(http.StatusOK, assertion)
}

// verifyPasskey checks the browser's answer (credential, JSON) to the
// ceremony under way and records it: the passkey's user on success; a
// failure of a known passkey counts against its user's throttle.
func (s *Server) verifyPasskey(c echo.Context, factors doorledger.SecondFactorService, credential string) (*doorledger.User, error) {
	refused := doorledger.Errorf(doorledger.EUNAUTHORIZED, "That passkey did not sign you in. Try again.")
	if s.webauthn == nil {
		return nil, passkeysOff()
	}
	ctx := c.Request().Context()
	sd, err := s.takeCeremony(c)
	if err != nil {
		return nil, refused
	}
	parsed, err := protocol.ParseCredentialRequestResponseBytes([]byte(credential))
	if err != nil {
		return nil, refused
	}
	var key *doorledger.Passkey
	var owner *doorledger.User
	find := func(rawID, handle []byte) (webauthn.User, error) {
		k, u, err := factors.FindPasskey(ctx, rawID)
		if err != nil {
			return nil, err
		}
		if !bytes.Equal(handle, userHandle(u.ID)) {
			return nil, errors.New("the passkey's user handle is another user's")
		}
		creds, err := credentialsOf([]*doorledger.Passkey{k})
		if err != nil {
			return nil, err
		}
		key, owner = k, u
		return passkeyUser{u: u, creds: creds}, nil
	}
	_, cred, err := s.webauthn.ValidatePasskeyLogin(find, *sd, parsed)
	if err == nil && cred.Authenticator.CloneWarning {
		err = errors.New("the passkey's signature counter went back: a cloned authenticator?")
	}
	if err != nil {
		s.log.Info("passkey refused", "err", err)
		if owner != nil {
			if ferr := factors.PasskeyFailed(ctx, owner.ID, c.RealIP()); doorledger.ErrorCode(ferr) == doorledger.ETOOMANY {
				return nil, ferr
			}
		}
		return nil, refused
	}
	data, err := json.Marshal(cred)
	if err != nil {
		return nil, err
	}
	if err := factors.PasskeyUsed(ctx, key.ID, data, c.RealIP()); err != nil {
		return nil, err
	}
	return owner, nil
}

// handlePasskeyLogin signs in with a passkey alone (it is both factors),
// from the sign-in page or, after a password, from the second factor's.
func (s *Server) handlePasskeyLogin(users doorledger.UserService, factors doorledger.SecondFactorService) echo.HandlerFunc {
	return func(c echo.Context) error {
		next := safeNext(c.FormValue("next"))
		pending, pendingNext, err := s.pendingUser(c, users)
		if err != nil {
			return err
		}
		u, err := s.verifyPasskey(c, factors, c.FormValue("credential"))
		if err != nil {
			if !codeRefused(c, err) {
				return err
			}
			f := views.Form{Error: doorledger.ErrorMessage(err)}
			if pending != nil {
				return render(c, formStatus(err), views.SecondFactorLoginPage(s.page(c, "Second factor", ""), f))
			}
			return render(c, formStatus(err), views.LoginPage(s.page(c, "Sign in", ""), f, next))
		}
		if pending != nil && pending.ID == u.ID {
			next = pendingNext
		}
		if err := s.signIn(c, users, u, s.now()); err != nil {
			return err
		}
		return c.Redirect(http.StatusSeeOther, next)
	}
}

// stepUpPasskey checks a passkey given on the step-up page: it must be the
// signed-in user's.
func (s *Server) stepUpPasskey(c echo.Context, factors doorledger.SecondFactorService, u *doorledger.User, credential string) error {
	owner, err := s.verifyPasskey(c, factors, credential)
	if err != nil {
		return err
	}
	if owner.ID != u.ID {
		return doorledger.Errorf(doorledger.EUNAUTHORIZED, "That passkey is not yours.")
	}
	return nil
}

// renderAccountFactors draws the user's own second-factor page, with the
// passkey form f and why a removal was refused ("": none).
func (s *Server) renderAccountFactors(c echo.Context, factors doorledger.SecondFactorService, status int, f views.Form, refused string) error {
	ctx := c.Request().Context()
	u := doorledger.UserFromContext(ctx)
	v, err := accountFactors(ctx, factors, u)
	if err != nil {
		return err
	}
	v.Form, v.Passkeys, v.Refused = f, s.webauthn != nil, refused
	return render(c, status, views.AccountSecondFactorPage(s.page(c, "Second factor", "account"), v))
}

// accountFactors reads what the account page shows.
func accountFactors(ctx context.Context, factors doorledger.SecondFactorService, u *doorledger.User) (views.AccountSecondFactorView, error) {
	f, err := factors.SecondFactors(ctx, u.ID)
	if err != nil {
		return views.AccountSecondFactorView{}, err
	}
	keys, err := factors.Passkeys(ctx, u.ID)
	if err != nil {
		return views.AccountSecondFactorView{}, err
	}
	roles, err := factors.SecondFactorPolicy(ctx)
	if err != nil {
		return views.AccountSecondFactorView{}, err
	}
	required := false
	for _, r := range roles {
		required = required || r == u.Role
	}
	return views.AccountSecondFactorView{Factors: f, Keys: keys, Required: required}, nil
}
