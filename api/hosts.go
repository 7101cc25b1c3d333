package api

import (
	"bytes"
	"regexp"
	"strings"

	"github.com/gofiber/fiber/v2"
)

// The host of the absolute links that lists answer (next, previous) comes from the
// request, as Django's get_host() takes it: the Host header, or a proxy's
// X-Forwarded-Host when USE_X_FORWARDED_HOST is set, checked against ALLOWED_HOSTS when
// that is set. Unlike Django with DEBUG off, amrd without ALLOWED_HOSTS answers any
// well-formed host (deployments before the setting rely on it); a malformed one is not
// put in a link: the link then names the address the request came in on.

// hostPattern is Django's host_validation_re: a domain name or a bracketed IPv6 address
// (lower case), with an optional port.
var hostPattern = regexp.MustCompile(`^([a-z0-9.-]+|\[[a-f0-9]*:[a-f0-9.:]+\])(:[0-9]+)?$`)

const linkHostKey ctxKey = 2

// errBadHost is Django's answer to a host outside ALLOWED_HOSTS (DisallowedHost), without
// the host: amrd's errors never quote the request.
var errBadHost = errStatus(fiber.StatusBadRequest, "Invalid HTTP_HOST header.")

// checkHost runs on /v1 when ALLOWED_HOSTS or USE_X_FORWARDED_HOST is set: a host that
// is malformed or not allowed is a 400 when ALLOWED_HOSTS is set; the host links use is
// kept for pageURL ("" when none is usable).
func (s *Server) checkHost(c *fiber.Ctx) error {
	raw := c.Request().Host()
	if s.cfg.UseXForwardedHost {
		if fwd := c.Request().Header.Peek(fiber.HeaderXForwardedHost); len(fwd) > 0 {
			raw, _, _ = bytes.Cut(fwd, []byte(","))
			raw = bytes.TrimSpace(raw)
		}
	}
	host, ok := wellFormedHost(raw)
	if len(s.cfg.AllowedHosts) > 0 && (!ok || !allowedHost(host, s.cfg.AllowedHosts)) {
		return errBadHost
	}
	c.Locals(linkHostKey, host)
	return c.Next()
}

// wellFormedHost returns the host in lower case (a new string) and whether it is one.
func wellFormedHost(raw []byte) (string, bool) {
	if len(raw) == 0 || len(raw) > 255+6 { // a DNS name and a port
		return "", false
	}
	host := strings.ToLower(string(raw))
	if !hostPattern.MatchString(host) {
		return "", false
	}
	return host, true
}

// allowedHost is Django's validate_host: the host's domain (without port and trailing
// dot) is a pattern of the list, or under a pattern that starts with a dot, or the list
// has "*".
func allowedHost(host string, allowed []string) bool {
	domain := host
	if i := strings.LastIndexByte(host, ':'); i >= 0 && !strings.HasSuffix(host, "]") {
		domain = host[:i]
	}
	domain = strings.TrimSuffix(domain, ".")
	for _, p := range allowed {
		p = strings.ToLower(p)
		switch {
		case p == "*":
			return true
		case strings.HasPrefix(p, "."):
			if strings.HasSuffix(domain, p) || domain == p[1:] {
				return true
			}
		case domain == p:
			return true
		}
	}
	return false
}

// linkHost is the host of a list's links: the one checkHost kept, else the request's Host
// when well-formed, else the local address the request came in on.
func linkHost(c *fiber.Ctx) string {
	host, kept := c.Locals(linkHostKey).(string)
	if !kept {
		host, _ = wellFormedHost(c.Request().Host())
	}
	if host == "" {
		return c.Context().LocalAddr().String()
	}
	return host
}

// linkScheme is https for TLS, or what a proxy's X-Forwarded-Proto says when it says
// http or https (only a link's scheme depends on it), else http.
func linkScheme(c *fiber.Ctx) string {
	if c.Context().IsTLS() {
		return "https"
	}
	proto, _, _ := bytes.Cut(c.Request().Header.Peek(fiber.HeaderXForwardedProto), []byte(","))
	if bytes.EqualFold(bytes.TrimSpace(proto), []byte("https")) {
		return "https"
	}
	return "http"
}
