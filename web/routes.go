package web

import (
	"net/http"

	"github.com/doorledger/doorledger"
	"github.com/doorledger/doorledger/static"
	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"
)

// routes lists every route of the portal. Who may use each one is stated here by
// its middleware and checked again by the services; the role × route test in
// access_test.go holds one row per route and fails when a route has none.
func (s *Server) routes() {
	e := s.echo
	e.Use(
		middleware.Recover(),
		securityHeaders(s.cfg.Secure),
		requestContext,
		requestLogger(s.log),
		s.bodyLimit,
		s.csrf(),
		s.loadSession,
	)
	users, buildings, audit := s.cfg.Users, s.cfg.Buildings, s.cfg.Audit
	signedIn := requireUser
	admin := []echo.MiddlewareFunc{requireUser, requireRole(doorledger.RoleAdmin)}
	managers := []echo.MiddlewareFunc{requireUser, requireRole(doorledger.RoleAdmin, doorledger.RoleManager)}
	readers := []echo.MiddlewareFunc{requireUser, requireRole(doorledger.RoleAdmin, doorledger.RoleManager, doorledger.RoleBoard)}

	// Public.
	e.GET("/healthz", handleHealth(s.cfg.Health))
	e.StaticFS("/static", static.FS)
	e.GET("/login", s.handleLoginPage)
	e.POST("/login", s.handleLogin(users))
	e.POST("/logout", s.handleLogout(users))

	// Signed in.
	e.GET("/", func(c echo.Context) error { return c.Redirect(http.StatusSeeOther, "/buildings") }, signedIn)
	e.POST("/logout/everywhere", s.handleLogoutEverywhere(users), signedIn)
	e.GET("/account", s.handleAccount, signedIn)
	e.POST("/account/password", s.handleAccountPassword(users), signedIn)

	// Buildings: the service answers 404 for a building without a grant.
	e.GET("/buildings", s.handleBuildings(buildings), signedIn)
	e.GET("/buildings/new", s.handleBuildingNew, admin...)
	e.POST("/buildings", s.handleBuildingCreate(buildings), admin...)
	e.GET("/buildings/:id", s.handleBuilding(buildings, users), signedIn)
	e.GET("/buildings/:id/edit", s.handleBuildingEdit(buildings), managers...)
	e.POST("/buildings/:id", s.handleBuildingUpdate(buildings), managers...)
	e.POST("/buildings/:id/signers", s.handleSignerAdd(buildings, users), managers...)
	e.POST("/buildings/:id/signers/:signer/remove", s.handleSignerRemove(buildings), managers...)
	e.POST("/buildings/:id/grants", s.handleGrantAdd(buildings, users), admin...)
	e.POST("/buildings/:id/grants/:user/remove", s.handleGrantRemove(buildings), admin...)
	e.GET("/buildings/:id/audit", s.handleBuildingAudit(buildings, audit), readers...)

	// Administration.
	e.GET("/users", s.handleUsers(users), admin...)
	e.GET("/users/new", s.handleUserNew, admin...)
	e.POST("/users", s.handleUserCreate(users), admin...)
	e.GET("/users/:user", s.handleUser(users), admin...)
	e.POST("/users/:user", s.handleUserUpdate(users), admin...)
	e.POST("/users/:user/password", s.handleUserPassword(users), admin...)
	e.GET("/audit", s.handleAudit(audit), admin...)
}
