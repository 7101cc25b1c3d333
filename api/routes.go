package api

import (
	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/middleware/adaptor"
)

// routes lists every route amrd serves. Fiber's non-strict routing makes each answer with
// or without a trailing slash.
func (s *Server) routes() {
	app := s.app
	app.Get("/_health", s.health)
	if s.cfg.Metrics != nil {
		app.Get("/metrics", adaptor.HTTPHandler(s.cfg.Metrics))
	}

	v1 := app.Group("/v1")
	if len(s.cfg.AllowedHosts) > 0 || s.cfg.UseXForwardedHost {
		v1.Use(s.checkHost)
	}
	v1.Post("/auth/jwt/token", s.jwtToken) // public: the password is the credential
	// Public: the API description (OpenAPI 3) and the page that renders it reveal no secret.
	v1.Get("/schema", s.apiSchema())
	v1.Get("/docs", s.apiDocs())
	v1.Get("/docs/:file", s.apiDocsFile()) // its script, style sheets, icon and licenses

	v1.Use(s.authenticate)
	v1.Get("/auth/jwt/renew", s.jwtRenew)
	v1.Post("/auth/jwt/change-organization", s.jwtChangeOrganization)

	orgs := s.organizations()
	orgs.routes(v1, "/organizations", "list", "create")
	s.memberships().routes(v1, "/organizations/memberships", "list", "create", "get", "update", "delete")
	orgs.routes(v1, "/organizations", "get", "update", "delete") // after memberships, which /organizations/:id would take

	// Metering resources, with the operations the contract lists for each.
	m := v1.Group("/metering")
	s.simCards().routes(m, "/sim-cards", "list", "create", "get", "update", "delete")
	s.networkInterfaces().routes(m, "/network-interfaces", "list", "create", "get", "update", "delete")
	s.meterReadingSeries().routes(m, "/meter-reading-series", "list", "create", "get", "update", "delete")
	s.meterDeviceConfigs().routes(m, "/meter-device-configs", "list", "create", "get", "update", "delete")
	s.meterDeviceTypes().routes(m, "/meter-device-types", "list", "create", "get", "update", "delete")
	s.securityKeys().routes(m, "/meter-security-keys", "list", "get", "delete")
	m.Post("/meter-security-keys", s.createSecurityKeys)
	s.systemEvents().routes(m, "/meter-system-events", "list", "create", "get", "delete")
	s.amrTaskGroups().routes(m, "/amr-task-groups", "list", "create", "get", "update", "delete")
	m.Post("/amr-tasks/invoke", s.invokeAmrTask) // before /amr-tasks/:id
	s.amrTasks().routes(m, "/amr-tasks", "list", "create", "get", "update", "delete")
	m.Get("/amr-task-runs", s.listTaskRuns)
	m.Post("/amr-task-runs/claim", s.claimTaskRun) // the external worker protocol
	m.Get("/amr-task-runs/:id", s.getTaskRun)
	m.Post("/amr-task-runs/:id/heartbeat", s.heartbeatTaskRun)
	m.Post("/amr-task-runs/:id/result", s.reportTaskRun)
	s.meterDevices().routes(m, "/meter-devices", "list", "create", "get", "update", "delete")

	m.Get("/meter-readings", s.listReadings)
	m.Post("/meter-readings", s.createReading)
	m.Get("/meter-readings/:id", s.getReading)
	m.Delete("/meter-readings/:id", s.deleteReading)
	m.Get("/meter-reading-rollups", s.listRollups) // an amrd extension
	s.stagedReadings().routes(m, "/staged-meter-readings", "list", "create", "get", "update", "delete")
	m.Post("/new-meter-readings", s.newMeterReadings)

	// Users: staff only; not in the Utilitarian contract (which managed users in Django's
	// admin), documented in amrd's own API description.
	s.users().routes(v1, "/users", "list", "create", "get", "update", "delete")
}

// health answers 200 when the database answers, 503 when it does not.
func (s *Server) health(c *fiber.Ctx) error {
	if err := s.st.Ping(c.UserContext()); err != nil {
		return c.Status(fiber.StatusServiceUnavailable).JSON(fiber.Map{"status": "unavailable", "database": "down"})
	}
	return c.JSON(fiber.Map{"status": "ok", "database": "up"})
}
