package web

import (
	"net/http"
	"slices"

	"github.com/doorledger/doorledger"
	"github.com/doorledger/doorledger/sso"
	"github.com/doorledger/doorledger/static"
	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"
)

// routes lists every route of the portal. Who may use each one is stated here by
// its middleware and checked again by the services; the role × route test in
// access_test.go holds one row per route and fails when a route has none.
func (s *Server) routes() {
	e := s.echo
	// The services, passed to each handler that uses them (and to the
	// session middleware); settings are read from s.cfg.
	users, buildings, audit, consents, devices := s.cfg.Users, s.cfg.Buildings, s.cfg.Audit, s.cfg.Consents, s.cfg.Devices
	policies, papers, invitations, outbox, logs := s.cfg.Policies, s.cfg.Papers, s.cfg.Invitations, s.cfg.Outbox, s.cfg.Logs
	attention, unlocks, reports, residents, privacy, vendors := s.cfg.Attention, s.cfg.Unlocks, s.cfg.Reports, s.cfg.Residents, s.cfg.Privacy, s.cfg.Vendors
	reportFiles, witnesses, factors := s.cfg.ReportFiles, s.cfg.Witnesses, s.cfg.SecondFactors
	// The building page reads many services; it and the forms on it take them together.
	buildingPage := buildingPage{buildings: buildings, users: users, consents: consents, devices: devices,
		unlocks: unlocks, papers: papers, residents: residents, invitations: invitations}
	e.Use(
		middleware.Recover(),
		securityHeaders(s.cfg.Secure),
		requestContext,
		requestLogger(s.log, s.cfg.ObserveRequest),
		s.rateLimit, // public routes: each client held to its allowance before any body is read
		s.bodyLimit,
		s.loadSession(users), // the session first: nothing below reads a body before the caller is known
		s.csrf,
	)
	// Who may use a route. Each list ends with csrfForm, which reads a form's
	// CSRF token from the body only once the caller is allowed there; public
	// forms take it alone. Every route uses one of these lists.
	public := []echo.MiddlewareFunc{s.csrfForm}
	signedIn := []echo.MiddlewareFunc{requireUser, s.csrfForm}
	admin := []echo.MiddlewareFunc{requireUser, requireRole(doorledger.RoleAdmin), s.csrfForm}
	managers := []echo.MiddlewareFunc{requireUser, requireRole(doorledger.RoleAdmin, doorledger.RoleManager), s.csrfForm}
	readers := []echo.MiddlewareFunc{requireUser, requireRole(doorledger.RoleAdmin, doorledger.RoleManager, doorledger.RoleBoard), s.csrfForm}
	installers := []echo.MiddlewareFunc{requireUser, requireRole(doorledger.RoleInstaller), s.csrfForm}
	// stepUp is a list for an action that asks for the second factor again
	// when the last was longer ago than doorledger.StepUpAge (secondfactor.go);
	// what says what the action does.
	stepUp := func(list []echo.MiddlewareFunc, what string) []echo.MiddlewareFunc {
		return append(slices.Clip(list), s.requireRecentFactor(factors, what))
	}

	// Public.
	e.GET("/healthz", handleHealth(s.cfg.Health))
	e.GET("/readyz", handleReady(s.cfg.Ready))
	e.StaticFS("/static", static.FS)
	e.GET("/login", s.handleLoginPage)
	e.POST("/login", s.handleLogin(users, factors), public...)
	// The second factor after the password, and its setup at sign-in for
	// a user whose role requires one and who has none: the browser that
	// proved the password within minutes, as its cookie says.
	e.GET("/login/second-factor", s.handleSecondFactorPage(users))
	e.POST("/login/second-factor", s.handleSecondFactorLogin(users, factors), public...)
	e.GET("/login/enrol", s.handleEnrolPage(users, factors))
	e.POST("/login/enrol/start", s.handleEnrolStart(users, factors), public...)
	e.POST("/login/enrol", s.handleEnrolConfirm(users, factors), public...)
	// Passkeys sign in alone, or after a password as its second factor
	// (passkey.go); the options also serve the step-up page.
	e.POST("/login/passkey/options", s.handlePasskeyOptions, public...)
	e.POST("/login/passkey", s.handlePasskeyLogin(users, factors), public...)
	e.POST("/logout", s.handleLogout(users), public...)
	// Single sign-on (sso.go): "Sign in with …" goes to the OpenID
	// provider, which sends the browser back to the callback; from there
	// the sign-in goes on as after a password.
	e.POST("/login/sso", s.handleSSOStart, public...)
	e.GET(sso.CallbackPath, s.handleSSOCallback(s.cfg.SSOAccounts, users, factors))

	// Signed in.
	// The first screen: what needs attention, across every building the
	// user sees, kept live; installers go to their buildings.
	e.GET("/", s.handleHome(attention), signedIn...)
	e.GET("/attention/events", s.handleAttentionEvents(attention, users), readers...)
	e.POST("/logout/everywhere", s.handleLogoutEverywhere(users), signedIn...)
	e.GET("/account", s.handleAccount, signedIn...)
	e.POST("/account/password", s.handleAccountPassword(users), signedIn...)
	// Managers' and admins' own second factor.
	e.GET("/account/second-factor", s.handleAccountFactors(factors), managers...)
	e.POST("/account/second-factor/totp", s.handleAccountTOTPStart(factors), managers...)
	e.POST("/account/second-factor/totp/confirm", s.handleAccountTOTPConfirm(factors), managers...)
	e.POST("/account/second-factor/recovery-codes", s.handleAccountRecoveryCodes(factors), managers...)
	e.POST("/account/second-factor/totp/remove", s.handleAccountTOTPRemove(factors), stepUp(managers, "Removing your authenticator app")...)
	e.POST("/account/passkeys/options", s.handlePasskeyRegisterOptions(factors), managers...)
	e.POST("/account/passkeys", s.handlePasskeyAdd(factors), managers...)
	e.POST("/account/passkeys/:passkey/remove", s.handlePasskeyRemove(factors), stepUp(managers, "Removing a passkey")...)

	// Buildings: the service answers 404 for a building without a grant.
	e.GET("/buildings", s.handleBuildings(buildings, attention), signedIn...)
	e.GET("/buildings/new", s.handleBuildingNew, admin...)
	e.POST("/buildings", s.handleBuildingCreate(buildings), admin...)
	e.GET("/buildings/:id", s.handleBuilding(buildingPage), signedIn...)
	e.GET("/buildings/:id/edit", s.handleBuildingEdit(buildings), managers...)
	e.POST("/buildings/:id", s.handleBuildingUpdate(buildings), managers...)
	e.POST("/buildings/:id/signers", s.handleSignerAdd(buildingPage), stepUp(managers, "Changing the signers' roster")...)
	e.POST("/buildings/:id/signers/:signer/remove", s.handleSignerRemove(buildings), stepUp(managers, "Changing the signers' roster")...)
	e.POST("/buildings/:id/grants", s.handleGrantAdd(buildingPage), stepUp(admin, "Granting access to a building")...)
	e.POST("/buildings/:id/grants/:user/remove", s.handleGrantRemove(buildings), admin...)
	e.GET("/buildings/:id/audit", s.handleBuildingAudit(buildings, audit), readers...)
	e.POST("/buildings/:id/invitations", s.handleInvite(buildingPage), managers...)
	e.POST("/buildings/:id/invitations/:invitation/withdraw", s.handleInviteWithdraw(invitations), managers...)

	// Consents: installers request; signers sign by link or on the installer's
	// screen; the building's people read; managers renew. The service answers 404
	// for another building's consent and for another installer's submission.
	e.GET("/buildings/:id/consents/new", s.handleConsentNew(buildings, policies), installers...)
	s.upload(http.MethodPost, "/buildings/:id/consents", consentRequestBodyLimit, s.handleConsentCreate(buildings, consents, policies), installers...)
	e.GET("/submissions", s.handleSubmissions(consents), installers...)
	e.GET("/consents/:consent", s.handleConsent(consents, buildings), signedIn...)
	e.GET("/consents/:consent/photos/:photo", s.handleConsentPhoto(consents), signedIn...)
	e.GET("/consents/:consent/signature.png", s.handleConsentSignature(consents), readers...)
	e.GET("/consents/:consent/certificate.pdf", s.handleConsentCertificate(consents, buildings, papers, witnesses), readers...)
	e.POST("/consents/:consent/renew", s.handleConsentRenew(consents, buildings), managers...)
	// A building's consent policy (managers); an expired request is
	// sent again by its installer or a manager (the service checks which).
	e.GET("/buildings/:id/policy", s.handlePolicyPage(buildings, policies), managers...)
	e.POST("/buildings/:id/policy", s.handlePolicyUpdate(buildings, policies), managers...)
	resenders := []echo.MiddlewareFunc{requireUser, requireRole(doorledger.RoleAdmin, doorledger.RoleManager, doorledger.RoleInstaller), s.csrfForm}
	e.POST("/consents/:consent/resend", s.handleConsentResend(consents), resenders...)
	e.GET("/consents/:consent/in-person", s.handleInPersonPage(consents), installers...)
	e.POST("/consents/:consent/code", s.handleSendCode(consents), installers...)
	s.upload(http.MethodPost, "/consents/:consent/in-person", signBodyLimit, s.handleSignInPerson(consents), installers...)
	// A request's signed paper form, served to whoever sees the
	// consent (a PDF only as a download); managers attach one on a
	// signer's behalf.
	e.GET("/consents/:consent/paper/:file", s.handlePaperFile(papers), signedIn...)
	s.upload(http.MethodPost, "/consents/:consent/paper", paperBodyLimit, s.handlePaperAttach(consents, buildings, papers), managers...)

	// Devices: the registry, revocation and command history. Another building's
	// device is 404 from the service.
	e.POST("/buildings/:id/devices/found", s.handleFoundDevice(buildingPage), managers...)
	e.GET("/devices", s.handleDevicesIndex(devices), managers...)
	e.POST("/devices/disable", s.handleDisableMany(devices), managers...)
	e.GET("/devices/events", s.handleDevicesEvents(devices, users), managers...)
	e.GET("/buildings/:id/lockdown", s.handleLockdownPage(buildings, devices), managers...)
	e.POST("/buildings/:id/lockdown", s.handleLockdown(devices), managers...)
	e.GET("/buildings/:id/lockdown/events", s.handleLockdownEvents(buildings, devices, users), managers...)
	e.GET("/devices/:device", s.handleDevice(devices, buildings, unlocks), readers...)
	e.GET("/devices/:device/events", s.handleDeviceEvents(devices, buildings, users), readers...)
	e.POST("/devices/:device/revoke", s.handleSetState(devices, doorledger.StateDisabled), managers...)
	// Revoking stays one click; enabling and issuing a device secret ask
	// for the second factor again when the last is not recent.
	e.POST("/devices/:device/enable", s.handleSetState(devices, doorledger.StateEnabled), stepUp(managers, "Enabling a device")...)
	e.POST("/devices/:device/credential", s.handleCredential(devices), stepUp(managers, "Issuing a device secret")...)

	// Unlock history: the building's readers see its history, live
	// rows, CSV export and the charts; its managers set delivery hours, burst,
	// alerts, heartbeat and retention, and import a vendor's CSV export in two
	// steps (upload and preview, then mapping and import). Installers get 404
	// here and from the service.
	imports := newImportStash()
	e.GET("/buildings/:id/unlocks", s.handleUnlocks(buildings, devices, unlocks), readers...)
	e.GET("/buildings/:id/unlocks/events", s.handleUnlocksEvents(buildings, devices, unlocks, users), readers...)
	e.GET("/buildings/:id/unlocks.csv", s.handleUnlocksCSV(buildings, devices, unlocks), readers...)
	e.GET("/buildings/:id/unlock-settings", s.handleUnlockSettings(buildings, unlocks), managers...)
	e.POST("/buildings/:id/unlock-settings", s.handleUnlockSettingsUpdate(buildings, unlocks), managers...)
	e.GET("/buildings/:id/unlocks/import", s.handleImportPage(buildings), managers...)
	s.upload(http.MethodPost, "/buildings/:id/unlocks/import/preview", importBodyLimit, s.handleImportPreview(buildings, imports), managers...)
	e.POST("/buildings/:id/unlocks/import", s.handleImport(buildings, unlocks, imports), managers...)
	// Managers acknowledge anomalies with a note of what was done: one beside
	// its event, or every open one of a history page at once.
	e.POST("/buildings/:id/anomalies/:event/ack", s.handleAnomalyAck(buildings, unlocks), managers...)
	e.POST("/buildings/:id/anomalies/ack", s.handleAnomalyAckAll(buildings, unlocks), managers...)

	// Audit reports: a building's readers request reports, follow
	// their progress, download them, take the monthly report by mail, and
	// check a file they were given against the registry. Another building's
	// report is 404 from the service.
	e.GET("/buildings/:id/reports", s.handleReports(buildings, reports, unlocks), readers...)
	e.POST("/buildings/:id/reports", s.handleReportRequest(buildings, reports, reportFiles), readers...)
	e.POST("/buildings/:id/reports/subscription", s.handleReportSubscription(buildings, reports), readers...)
	e.GET("/reports/verify", s.handleVerifyPage(logs), readers...)
	s.upload(http.MethodPost, "/reports/verify", verifyBodyLimit, s.handleVerify(buildings, reports, logs, witnesses), readers...)
	e.GET("/reports/:report", s.handleReport(buildings, reports, logs, witnesses), readers...)
	e.GET("/reports/:report/status", s.handleReportStatus(buildings, reports, logs), readers...)
	e.GET("/reports/:report/download", s.handleReportDownload(buildings, reports, logs, reportFiles), readers...)

	// Signers (no account) and invited installers, by one-time link.
	e.GET("/sign/:token", s.handleSignPage(consents))
	s.upload(http.MethodPost, "/sign/:token", signBodyLimit, s.handleSign(consents), public...)
	e.POST("/sign/:token/decline", s.handleDecline(consents), public...)
	e.GET("/sign/:token/paper/:file", s.handleSigningPaperFile(papers))
	e.POST("/sign/:token/paper/dispute", s.handlePaperDispute(papers), public...)
	e.GET("/consent/withdraw/:token", s.handleAfterSigningPage(consents, "withdraw"))
	e.POST("/consent/withdraw/:token", s.handleAfterSigning(consents, "withdraw"), public...)
	e.GET("/consent/dispute/:token", s.handleAfterSigningPage(consents, "dispute"))
	e.POST("/consent/dispute/:token", s.handleAfterSigning(consents, "dispute"), public...)
	e.POST("/consent/links/:token", s.handleMailEndLinks(consents), public...)
	e.GET("/invite/:token", s.handleInvitationPage(invitations))
	e.POST("/invite/:token", s.handleInvitationAccept(invitations, users), public...)

	// Residents, without an account: the building's public device
	// notice by its slug (the poster's QR code), residents' reports of
	// unlisted devices and subscriptions to notices, confirmed and ended by
	// mailed one-time links; each held per client (ratelimit.go). Managers
	// rotate the slug, set the contact line, print the poster and resolve
	// the reports on the building page.
	noticeRate := newIPLimiter(s.cfg.NoticeRate.or(defaultNoticeRate))
	residentPostRate := newIPLimiter(s.cfg.ResidentPostRate.or(defaultResidentPostRate))
	s.public(http.MethodGet, "/notice/:slug", noticeRate, 0, s.handleNotice(residents), public...)
	s.public(http.MethodGet, "/notice/:slug/report", noticeRate, 0, s.handleNoticeReportPage(residents), public...)
	s.public(http.MethodPost, "/notice/:slug/report", residentPostRate, residentReportBodyLimit, s.handleNoticeReport(residents), public...)
	s.public(http.MethodPost, "/notice/:slug/subscribe", residentPostRate, residentSubscribeBodyLimit, s.handleNoticeSubscribe(residents), public...)
	s.public(http.MethodGet, "/residents/confirm/:token", noticeRate, 0, s.handleResidentLinkPage(residents, "confirm"), public...)
	s.public(http.MethodPost, "/residents/confirm/:token", noticeRate, residentSubscribeBodyLimit, s.handleResidentLink(residents, "confirm"), public...)
	s.public(http.MethodGet, "/residents/unsubscribe/:token", noticeRate, 0, s.handleResidentLinkPage(residents, "unsubscribe"), public...)
	s.public(http.MethodPost, "/residents/unsubscribe/:token", noticeRate, residentSubscribeBodyLimit, s.handleResidentLink(residents, "unsubscribe"), public...)
	e.POST("/buildings/:id/notice/rotate", s.handleNoticeRotate(residents), managers...)
	e.POST("/buildings/:id/notice/contact", s.handleNoticeContact(buildingPage), managers...)
	e.GET("/buildings/:id/notice/poster.pdf", s.handleNoticePoster(buildings, residents), managers...)
	// The Tenant Data Privacy Act profile of a building, and its
	// tenant privacy notice beside the device notice (404 without the profile).
	s.public(http.MethodGet, "/notice/:slug/privacy", noticeRate, 0, s.handleTenantNotice(privacy), public...)
	s.public(http.MethodGet, "/notice/:slug/privacy.pdf", noticeRate, 0, s.handleTenantNoticePDF(privacy), public...)
	e.GET("/buildings/:id/privacy", s.handlePrivacyPage(buildings, privacy, residents), readers...)
	e.POST("/buildings/:id/privacy/profile", s.handlePrivacyProfile(privacy), managers...)
	e.POST("/buildings/:id/privacy/disclosures", s.handleDisclosureSave(buildings, privacy, residents), managers...)
	e.POST("/buildings/:id/privacy/disclosures/:disclosure", s.handleDisclosureSave(buildings, privacy, residents), managers...)
	e.POST("/buildings/:id/privacy/devices/:device", s.handleDeviceDisclosure(privacy), managers...)
	e.GET("/buildings/:id/resident-reports/:report/photo", s.handleResidentReportPhoto(residents), managers...)
	e.POST("/buildings/:id/resident-reports/:report/resolve", s.handleResidentReportResolve(buildingPage), managers...)

	// Vendor integrations and machine APIs. Admins manage integrations and put
	// devices under them. Vendor clouds call /api/vendors/:vendor/… with no
	// session: the HMAC signature is the credential (the CSRF check skips
	// /api/), and every refusal is JSON (docs/ingest.md).
	e.GET("/vendors", s.handleVendors(vendors, buildings, devices), admin...)
	e.POST("/vendors", s.handleVendorCreate(vendors, buildings, devices), stepUp(admin, "Creating a vendor integration")...)
	e.POST("/vendors/:vendor/rotate", s.handleVendorRotate(vendors, buildings, devices), admin...)
	e.POST("/vendors/:vendor/previous-key/remove", s.handleVendorRemovePreviousKey(vendors, buildings, devices), admin...)
	e.POST("/vendors/:vendor/retire", s.handleVendorRetire(vendors, buildings, devices), admin...)
	e.POST("/devices/:device/vendor", s.handleDeviceVendor(vendors, buildings, devices), admin...)
	s.upload(http.MethodPost, "/api/vendors/:vendor/events", ingestBodyLimit, s.handleVendorEvents(vendors))
	e.POST("/api/vendors/:vendor/state", s.handleVendorState(vendors))

	// Administration.
	e.GET("/users", s.handleUsers(users), admin...)
	e.GET("/users/new", s.handleUserNew, admin...)
	e.POST("/users", s.handleUserCreate(users), admin...)
	e.GET("/users/:user", s.handleUser(users, factors), admin...)
	e.POST("/users/:user", s.handleUserUpdate(users, factors), admin...)
	e.POST("/users/:user/password", s.handleUserPassword(users, factors), admin...)
	e.POST("/users/:user/second-factor/reset", s.handleUserFactorReset(users, factors), admin...)
	e.GET("/second-factor", s.handleFactorPolicyPage(factors), admin...)
	e.POST("/second-factor", s.handleFactorPolicy(factors), admin...)
	// Which email domains get an account at their first sign-in by SSO.
	e.GET("/sso", s.handleSSOPage(s.cfg.SSOAccounts), admin...)
	e.POST("/sso/domains", s.handleSSODomainAllow(s.cfg.SSOAccounts), stepUp(admin, "Allowing sign-up by single sign-on")...)
	e.POST("/sso/domains/:domain/remove", s.handleSSODomainRemove(s.cfg.SSOAccounts), admin...)
	e.GET("/audit", s.handleAudit(audit, logs), admin...)
	e.POST("/audit/verify", s.handleAuditVerify(audit, logs), admin...)
	// Witnesses of the log (docs/witnesses.md): who cosigns, the k-of-n policy.
	e.GET("/witnesses", s.handleWitnesses(witnesses, logs), admin...)
	e.POST("/witnesses", s.handleWitnessAdd(witnesses, logs), admin...)
	e.POST("/witnesses/policy", s.handleWitnessPolicy(witnesses, logs), admin...)
	e.POST("/witnesses/:witness/remove", s.handleWitnessRemove(witnesses, logs), admin...)
	e.GET("/outbox", s.handleOutbox(outbox), admin...)
	e.POST("/outbox/:mail/retry", s.handleOutboxRetry(outbox), admin...)
	// Outbound events (issue 16): subscriptions, deliveries, replay.
	e.GET("/webhooks", s.handleWebhooks(s.cfg.Webhooks), admin...)
	e.POST("/webhooks", s.handleWebhookCreate(s.cfg.Webhooks), admin...)
	e.POST("/webhooks/:subscription/disable", s.handleWebhookDisable(s.cfg.Webhooks), admin...)
	e.POST("/webhooks/deliveries/:delivery/replay", s.handleWebhookReplay(s.cfg.Webhooks), admin...)
}

// upload registers a route that takes a larger body than DefaultBodyLimit.
func (s *Server) upload(method, path string, limit int64, h echo.HandlerFunc, mw ...echo.MiddlewareFunc) {
	s.bodyLimits[path] = limit
	s.echo.Add(method, path, h, mw...)
}
