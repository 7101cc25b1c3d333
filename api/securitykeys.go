package api

import (
	"github.com/gofiber/fiber/v2"
	"github.com/google/uuid"

	"github.com/amrd/amrd/store"
)

// securityKeys serves list, get and delete of meter security key collections, which
// belong to the organization of their device; create is createSecurityKeys (its body
// names a device, not an organization). The contract lists no update.
func (s *Server) securityKeys() resource[store.SecurityKeys, uuid.UUID] {
	return resource[store.SecurityKeys, uuid.UUID]{
		rows: s.tables.SecurityKeys,
		org:  func(v *store.SecurityKeys) **uuid.UUID { return &v.Meter.OrganizationID },
		filters: map[string]filterKind{
			"meter": filterUUID, "meter_name": filterText, "meter_external_system_reference": filterText,
			"meter_manufacturer_serial": filterText, "meter_dlms_system_title": filterText,
			"meter_dlms_logical_device_name": filterText,
		},
	}
}

// createdKeys answers a create with the contract's MeterSecurityKeyCollectionIn: the
// meter as its id, and never the master key.
type createdKeys struct {
	store.SecurityKeySet
	Meter uuid.UUID `json:"meter"`
}

// createSecurityKeys stores a device's keys. The device must be one the caller may write
// (staff: any); any other is reported like a missing one, on "meter".
func (s *Server) createSecurityKeys(c *fiber.Ctx) error {
	p, b, err := writerBody(c)
	if err != nil {
		return err
	}
	var in store.SecurityKeysInput
	errs := FieldErrors{}
	b.id(errs, "meter", &in.Meter, true)
	b.nstr(errs, "iec62056_21_password", &in.IEC6205621Password, 1, 8)
	b.dlmsKey(errs, "dlms_global_unicast_encryption_key", &in.DLMSUnicastKey)
	b.dlmsKey(errs, "dlms_global_broadcast_encryption_key", &in.DLMSBroadcastKey)
	b.dlmsKey(errs, "dlms_master_key", &in.DLMSMasterKey)
	b.dlmsKey(errs, "dlms_global_authentication_key", &in.DLMSAuthKey)
	if err := errs.orNil(); err != nil {
		return err
	}
	v, err := s.st.CreateSecurityKeys(c.UserContext(), p.writeScope(), in)
	if err != nil {
		return err
	}
	return c.Status(fiber.StatusCreated).JSON(createdKeys{v.SecurityKeySet, v.Meter.ID})
}

// dlmsKey reads a nullable DLMS key. The contract allows up to 64 hex digits; amrd asks
// for exactly 32 (an AES-128 key, security suites 0 and 1) or 64 (AES-256, suite 2),
// since any other length is no key a meter can use. Its messages never quote the value.
func (b body) dlmsKey(errs FieldErrors, f string, dst **string) {
	b.nstr(errs, f, dst, 0, 64)
	matches(errs, f, *dst, isHex, "Enter hexadecimal digits only (0-9, a-f, A-F).")
	matches(errs, f, *dst, func(s string) bool { return len(s) == 32 || len(s) == 64 },
		"Enter a key of 32 hexadecimal digits (AES-128) or 64 (AES-256).")
}

// writeScope is the organizations the principal may write in.
func (p *principal) writeScope() store.Scope {
	if p.staff {
		return store.AllOrgs
	}
	orgs := []uuid.UUID{}
	for o, role := range p.roles {
		if role == "editor" {
			orgs = append(orgs, o)
		}
	}
	return store.OrgScope(orgs...)
}
