package authz

import (
	"unicode/utf8"

	"github.com/mcp-authz/mcp-authz/config"
	"golang.org/x/net/http/httpguts"
)

// headerValue reports whether v can go upstream as an HTTP header field value exactly as it is: no control
// character but HTAB (so no CR, LF, NUL or DEL: a value with CR LF would let its author add headers of
// their own, and proxies refuse or cut such values); no SP or HTAB at either end (a recipient strips them,
// so the MCP server would see another value than the policy decided on; RFC 9110 §5.5); and valid UTF-8
// (the gRPC answer carries values as protobuf strings, which must be). Other non-ASCII text is obs-text,
// which HTTP allows and Envoy passes.
func headerValue(v string) bool {
	if v == "" {
		return true
	}
	return httpguts.ValidHeaderFieldValue(v) && !isOWS(v[0]) && !isOWS(v[len(v)-1]) && utf8.ValidString(v)
}

// isOWS reports whether c is HTTP optional whitespace (SP or HTAB).
func isOWS(c byte) bool { return c == ' ' || c == '\t' }

// safeHeader keeps policies from setting the headers config.ReservedHeader names (hop-by-hop, framing,
// credential, pseudo and Envoy's own), and names or values HTTP cannot carry as they are (a name that is not
// an RFC 9110 token; headerValue).
func safeHeader(name, value string) bool {
	return !config.ReservedHeader(name) && httpguts.ValidHeaderFieldName(name) && headerValue(value)
}
