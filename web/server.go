// Package web serves Doorledger over HTTP with Echo: the routes (all listed in
// routes.go), the middleware that signs people in and guards every state change,
// and the one error handler that turns domain error codes into pages.
package web

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/doorledger/doorledger"
	"github.com/doorledger/doorledger/sso"
	"github.com/go-webauthn/webauthn/webauthn"
	"github.com/gorilla/sessions"
	"github.com/labstack/echo/v4"
)

// Config wires the server to the domain services and its settings.
type Config struct {
	Users       doorledger.UserService
	Buildings   doorledger.BuildingService
	Audit       doorledger.AuditService
	Consents    doorledger.ConsentService
	Policies    doorledger.PolicyService // buildings' consent policies
	Papers      doorledger.PaperService  // signed paper forms of consent requests
	Invitations doorledger.InvitationService
	Outbox      doorledger.OutboxService
	Devices     doorledger.DeviceService
	Logs        doorledger.LogService
	Witnesses   doorledger.WitnessService // who cosigns the log, and the policy
	Vendors     doorledger.VendorService
	Webhooks    doorledger.WebhookService // outbound events: subscriptions and deliveries
	Unlocks     doorledger.UnlockService
	Reports     doorledger.ReportService
	Residents   doorledger.ResidentService
	Privacy     doorledger.PrivacyService   // buildings' privacy profiles
	Attention   doorledger.AttentionService // the first screen: what needs attention
	// SecondFactors keeps managers' and admins' second factors (nil: none
	// are asked for).
	SecondFactors doorledger.SecondFactorService
	// SSO is the OpenID provider people may sign in through (nil: none), and
	// SSOAccounts matches its identities to accounts and keeps the domains
	// allowed to sign up (web/sso.go).
	SSO         *sso.Provider
	SSOAccounts doorledger.SSOService
	// PublicURL is the address people reach the portal at; its host is the
	// passkeys' relying party (none on an IP address: browsers refuse it).
	PublicURL string
	// ReportFiles is the report generator: woken when a report is queued,
	// and where finished reports are read from.
	ReportFiles ReportFiles

	// Health reports readiness for /healthz (the database answers).
	Health func(ctx context.Context) error
	// Ready reports readiness for /readyz: nil when the database is writable
	// and the device broker accepts; otherwise the reason, shown as is.
	Ready func(ctx context.Context) error
	// ObserveRequest, if set, is told of every answered request: the route
	// pattern as registered (echo's router only ever names a registered
	// pattern, never the raw path), method, status and duration.
	ObserveRequest func(route, method string, code int, took time.Duration)
	// BrokerUp reports whether the device broker accepts the portal now (nil:
	// always, as the embedded broker does); the device page says a command
	// waits for the broker while it does not.
	BrokerUp func() bool
	// DiskFull reports whether ingest is refused because the data disk is
	// full (nil: never); admins and managers then see a banner on every page.
	DiskFull func() bool

	// SessionKeys are the gorilla/securecookie key pairs (hash key 64 bytes,
	// block key 32 bytes), newest first; older pairs still decode during rotation.
	SessionKeys [][]byte
	// Secure marks cookies Secure and names them with the __Host- prefix: set
	// when the portal is served over TLS, by itself or by a reverse proxy in
	// front of it (a public URL in https). Plain-HTTP localhost leaves it off,
	// as browsers refuse Secure and __Host- cookies from http:// origins.
	Secure bool
	// TrustProxy takes the client IP from X-Forwarded-For (behind a reverse
	// proxy); otherwise the socket address is used, so the header cannot be forged.
	TrustProxy bool
	Logger     *slog.Logger
	// SMTP says whether mail is really sent; without it the outbox page says
	// "logged" where the dispatcher recorded a message as done.
	SMTP bool
	// Hub wakes live pages; NewServer makes one when nil.
	Hub *Hub
	// CommandTimeout is how long a command may wait for the device before the
	// page calls it "not confirmed" (the controller retries and alerts).
	CommandTimeout time.Duration
	// NoticeRate and ResidentPostRate hold each client of the residents'
	// pages (reading; reporting and subscribing); zero: the defaults.
	NoticeRate, ResidentPostRate RateLimit
	// Timeouts bound slow and broken clients; zero fields: the defaults.
	Timeouts Timeouts
	// Now is the portal's wall clock, the one the database records by
	// (nil: time.Now): pages judge and date by it, so that a test can set it.
	// How long something takes within a request is measured on the
	// machine's monotonic clock instead (time.Since).
	Now func() time.Time
}

// Timeouts bound what a slow or broken client can hold (docs/reliability.md).
type Timeouts struct {
	// ReadHeader closes a connection whose request headers take longer
	// (a slowloris client); default 10 s.
	ReadHeader time.Duration
	// Idle closes a keep-alive connection idle for longer; default 2 min.
	Idle time.Duration
	// StreamWrite ends a live stream whose client has not taken one event
	// within it (a client that stopped reading); default 15 s.
	StreamWrite time.Duration
}

// withDefaults fills the zero fields.
func (t Timeouts) withDefaults() Timeouts {
	if t.ReadHeader == 0 {
		t.ReadHeader = 10 * time.Second
	}
	if t.Idle == 0 {
		t.Idle = 2 * time.Minute
	}
	if t.StreamWrite == 0 {
		t.StreamWrite = 15 * time.Second
	}
	return t
}

// Server is the portal's HTTP server.
type Server struct {
	echo     *echo.Echo
	http     *http.Server
	ln       net.Listener
	sessions *sessions.CookieStore
	cfg      Config
	log      *slog.Logger

	bodyLimits map[string]int64      // route path → body limit, for routes that take uploads
	rateLimits map[string]*ipLimiter // "METHOD path" → per-client limit, for public routes
	hub        *Hub
	streams    *streamRegistry                   // open live streams per user
	renders    renderSlots                       // stream re-reads running at once
	ticks      func() (<-chan time.Time, func()) // a stream's ticker and its stop; nil: every streamTick

	sessionCookie, csrfCookie string // cookie names, with the __Host- prefix when Secure

	webauthn *webauthn.WebAuthn // passkeys' relying party (passkey.go); nil: no passkeys here
}

// NewServer builds the Echo instance with every route and middleware.
func NewServer(cfg Config) *Server {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Hub == nil {
		cfg.Hub = NewHub()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.CommandTimeout == 0 {
		cfg.CommandTimeout = 30 * time.Second
	}
	cfg.Timeouts = cfg.Timeouts.withDefaults()
	s := &Server{cfg: cfg, log: cfg.Logger, echo: echo.New(), bodyLimits: map[string]int64{}, rateLimits: map[string]*ipLimiter{}, hub: cfg.Hub, streams: newStreamRegistry(),
		sessionCookie: sessionCookieName, csrfCookie: csrfCookieName}
	if cfg.Secure {
		s.sessionCookie, s.csrfCookie = hostCookiePrefix+sessionCookieName, hostCookiePrefix+csrfCookieName
	}
	s.webauthn = newWebAuthn(cfg.PublicURL)
	s.sessions = sessions.NewCookieStore(cfg.SessionKeys...)
	s.sessions.Options = &sessions.Options{
		Path:     "/",
		MaxAge:   int(doorledger.SessionMaxAge / time.Second),
		HttpOnly: true,
		Secure:   cfg.Secure,
		SameSite: http.SameSiteLaxMode,
	}
	s.sessions.MaxAge(s.sessions.Options.MaxAge)
	e := s.echo
	e.HideBanner, e.HidePort = true, true
	e.HTTPErrorHandler = s.handleError
	if cfg.TrustProxy {
		e.IPExtractor = echo.ExtractIPFromXFFHeader()
	} else {
		e.IPExtractor = echo.ExtractIPDirect()
	}
	s.routes()
	s.http = &http.Server{
		Handler:           e,
		ReadHeaderTimeout: cfg.Timeouts.ReadHeader,
		ReadTimeout:       2 * time.Minute, // uploads from phones on slow links
		IdleTimeout:       cfg.Timeouts.Idle,
		ErrorLog:          slog.NewLogLogger(cfg.Logger.Handler(), slog.LevelWarn),
	}
	return s
}

// Handler returns the HTTP handler (for tests with httptest).
func (s *Server) Handler() http.Handler { return s.echo }

// Echo returns the router, for tests that list its routes.
func (s *Server) Echo() *echo.Echo { return s.echo }

// Listen binds addr (":0" picks a free port).
func (s *Server) Listen(addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	s.ln = ln
	return nil
}

// Addr is the bound address, after Listen.
func (s *Server) Addr() string {
	if s.ln == nil {
		return ""
	}
	return s.ln.Addr().String()
}

// Serve serves until Shutdown, over TLS when certFile and keyFile are given;
// it returns nil after a clean shutdown.
func (s *Server) Serve(certFile, keyFile string) error {
	var err error
	if certFile != "" {
		err = s.http.ServeTLS(s.ln, certFile, keyFile)
	} else {
		err = s.http.Serve(s.ln)
	}
	if err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// Shutdown stops accepting and waits for requests in flight, up to ctx.
func (s *Server) Shutdown(ctx context.Context) error { return s.http.Shutdown(ctx) }

// now reads the portal's wall clock (Config.Now).
func (s *Server) now() time.Time { return s.cfg.Now() }
