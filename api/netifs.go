package api

import (
	"net/netip"
	"strings"

	"github.com/google/uuid"

	"github.com/amrd/amrd/store"
)

// networkInterfaces serves network interfaces. host, is_blocked and block_time are read
// only: a body that sends them is not refused, they are ignored.
func (s *Server) networkInterfaces() resource[store.NetworkInterface, uuid.UUID] {
	return resource[store.NetworkInterface, uuid.UUID]{
		rows:        s.tables.NetworkInterfaces,
		blank:       func() store.NetworkInterface { return store.NetworkInterface{} },
		org:         func(v *store.NetworkInterface) **uuid.UUID { return &v.OrganizationID },
		orgRequired: true,
		decode: func(b body, v *store.NetworkInterface, full bool, errs FieldErrors) {
			b.nstr(errs, "static_ip_address", &v.StaticIPAddress, 1, 0)
			matches(errs, "static_ip_address", v.StaticIPAddress, isHostIP, "Enter a valid IPv4 or IPv6 address.")
			b.nstr(errs, "fqdn", &v.FQDN, 0, 200)
			if v.FQDN != nil && *v.FQDN == "" {
				v.FQDN = nil // a blank name is no name (forms send "")
			}
			matches(errs, "fqdn", v.FQDN, isDNSName, "Enter a valid DNS name (letters, digits and hyphens in dot-separated labels of at most 63 characters).")
			b.intv(errs, "port", &v.Port, true, 0, maxInt32)
			b.nid(errs, "sim", &v.SimID)
			b.boolean(errs, "can_block", &v.CanBlock)
		},
	}
}

// isHostIP accepts an IPv4 or IPv6 address without a zone ("fe80::1%eth0" names an
// interface of the machine that reads it, not of the meter).
func isHostIP(s string) bool {
	a, err := netip.ParseAddr(s)
	return err == nil && a.Zone() == ""
}

// isDNSName accepts a host name as RFC 1123 has it: dot-separated labels of 1 to 63
// letters, digits and hyphens, not starting or ending with a hyphen, at most 253
// characters, an optional final dot. A name whose last label is all digits is refused:
// it is an IPv4 address (or a typo of one), which belongs in static_ip_address.
// Internationalized names are written in their xn-- (punycode) form.
func isDNSName(s string) bool {
	s = strings.TrimSuffix(s, ".")
	if s == "" || len(s) > 253 {
		return false
	}
	labels := strings.Split(s, ".")
	for _, l := range labels {
		if l == "" || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
			return false
		}
		for i := 0; i < len(l); i++ {
			c := l[i]
			if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-') {
				return false
			}
		}
	}
	return !isDigits(labels[len(labels)-1])
}
