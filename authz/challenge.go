package authz

import "strings"

// Challenge is an RFC 6750 `WWW-Authenticate: Bearer` challenge carrying the RFC 9728 `resource_metadata`.
type Challenge struct {
	// ResourceMetadata is the URL of the resource's Protected Resource Metadata.
	ResourceMetadata string
	// Error is the RFC 6750 error code; empty when the request had no credentials.
	Error string
	// Description is the human-readable error_description.
	Description string
	// Scope is the space-separated scope the client should request (step-up).
	Scope string
}

// String renders the header value; each parameter appears at most once and empty ones are left out.
func (c Challenge) String() string {
	var b strings.Builder
	b.WriteString("Bearer")
	sep := " "
	param := func(name, value string) {
		if value == "" {
			return
		}
		b.WriteString(sep)
		b.WriteString(name)
		b.WriteString(`="`)
		b.WriteString(quotable(value))
		b.WriteByte('"')
		sep = ", "
	}
	param("resource_metadata", c.ResourceMetadata)
	param("error", c.Error)
	param("error_description", c.Description)
	param("scope", c.Scope)
	return b.String()
}

// quotable keeps only the characters RFC 6750 allows inside a quoted parameter (%x20-21 / %x23-5B / %x5D-7E).
func quotable(s string) string {
	ok := true
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c > 0x7e || c == '"' || c == '\\' {
			ok = false
			break
		}
	}
	if ok {
		return s
	}
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r > 0x7e || r == '"' || r == '\\' {
			return '\''
		}
		return r
	}, s)
}
