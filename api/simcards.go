package api

import (
	"net/netip"
	"net/url"

	"github.com/google/uuid"

	"github.com/amrd/amrd/store"
)

func (s *Server) simCards() resource[store.SimCard, uuid.UUID] {
	return resource[store.SimCard, uuid.UUID]{
		rows:    s.tables.SimCards,
		blank:   func() store.SimCard { return store.SimCard{} },
		org:     func(v *store.SimCard) **uuid.UUID { return &v.OrganizationID },
		filters: map[string]filterKind{"iccid": filterText, "imsi": filterText},
		decode: func(b body, v *store.SimCard, full bool, errs FieldErrors) {
			b.str(errs, "iccid", &v.ICCID, full, 1, 20)
			matches(errs, "iccid", &v.ICCID, isDigitString, "Enter digits only (0-9).")
			b.str(errs, "imsi", &v.IMSI, full, 1, 15)
			matches(errs, "imsi", &v.IMSI, isDigitString, "Enter digits only (0-9).")
			b.nstr(errs, "ip_address", &v.IPAddress, 1, 0)
			matches(errs, "ip_address", v.IPAddress, isIP, "Enter a valid IPv4 or IPv6 address.")
			b.nstr(errs, "phone_number", &v.PhoneNumber, 1, 30)
			b.nstr(errs, "external_system_link", &v.ExternalSystemLink, 1, 200)
			matches(errs, "external_system_link", v.ExternalSystemLink, isURI, "Enter a valid URL.")
		},
	}
}

func isIP(s string) bool {
	_, err := netip.ParseAddr(s)
	return err == nil
}

// isURI accepts an absolute URL with a scheme and a host, as Django's URLField does.
func isURI(s string) bool {
	u, err := url.Parse(s)
	return err == nil && u.Scheme != "" && u.Host != "" && (u.Scheme == "http" || u.Scheme == "https" || u.Scheme == "ftp" || u.Scheme == "ftps")
}
