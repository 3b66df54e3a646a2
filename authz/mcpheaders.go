package authz

import (
	"encoding/base64"
	"fmt"
	"net/http"
	"strings"
	"unicode/utf8"
)

// The request headers of MCP 2026-07-28 Streamable HTTP ("Request Metadata"): every POST carries
// MCP-Protocol-Version (equal to params._meta's protocol version) and Mcp-Method (equal to method), and a
// tools/call, resources/read or prompts/get carries Mcp-Name (equal to params.name or params.uri), as plain
// ASCII or as =?base64?<standard base64 of the UTF-8 value>?=.
const (
	headerProtocolVersion = "mcp-protocol-version"
	headerMethod          = "mcp-method"
	headerName            = "mcp-name"

	// headersVersion is the first protocol version whose requests carry Mcp-Method and Mcp-Name, and whose
	// servers must refuse a request whose headers disagree with its body.
	headersVersion = "2026-07-28"

	base64Prefix = "=?base64?"
	base64Suffix = "?="
)

// rpcHeaderMismatch is the JSON-RPC error code of MCP's HeaderMismatch: headers that disagree with the body,
// or a required header missing or malformed.
const rpcHeaderMismatch = -32020

// mcpHeaders are the MCP request headers of one request, decoded; each "" when absent.
type mcpHeaders struct {
	version, method, name string
}

// modern reports whether the protocol version is one whose requests carry the routing headers. Versions are
// dates (YYYY-MM-DD), which compare as strings.
func modern(version string) bool { return version >= headersVersion }

// errHeaderMismatch is the refusal of a request whose MCP headers cannot be trusted: 400 with the JSON-RPC
// error HeaderMismatch.
func errHeaderMismatch(format string, a ...any) *Error {
	return &Error{Status: http.StatusBadRequest, Code: "invalid_request", RPCCode: rpcHeaderMismatch,
		Description: "header mismatch: " + fmt.Sprintf(format, a...)}
}

// readMCPHeaders reads the MCP request headers (lower-case names, as every adapter gives them). A value with
// a byte HTTP does not allow in a header, or an Mcp-Name whose base64 form does not decode to UTF-8, is
// refused as the specification's validation failure "a header value contains invalid characters".
func readMCPHeaders(headers map[string]string) (mcpHeaders, *Error) {
	h := mcpHeaders{version: headers[headerProtocolVersion], method: headers[headerMethod], name: headers[headerName]}
	for _, f := range [...]struct{ name, value string }{{"MCP-Protocol-Version", h.version}, {"Mcp-Method", h.method}, {"Mcp-Name", h.name}} {
		for i := 0; i < len(f.value); i++ {
			if c := f.value[i]; c < 0x20 && c != '\t' || c > 0x7e {
				return mcpHeaders{}, errHeaderMismatch("%s holds a byte that is not visible ASCII", f.name)
			}
		}
	}
	if strings.HasPrefix(h.name, base64Prefix) && strings.HasSuffix(h.name, base64Suffix) && len(h.name) >= len(base64Prefix)+len(base64Suffix) {
		b, err := base64.StdEncoding.DecodeString(h.name[len(base64Prefix) : len(h.name)-len(base64Suffix)])
		if err != nil || !utf8.Valid(b) {
			return mcpHeaders{}, errHeaderMismatch("Mcp-Name is not valid =?base64?...?= UTF-8")
		}
		h.name = string(b)
	}
	return h, nil
}

// name is the body value Mcp-Name mirrors for m's method, and whether the method has one.
func (m *Message) name() (string, bool) {
	switch m.Method {
	case "tools/call":
		return m.Tool, true
	case "resources/read":
		return m.URI, true
	case "prompts/get":
		return m.Prompt, true
	}
	return "", false
}

// checkHeaders applies MCP's Server Validation to a message read from the body: every MCP header present
// must equal the body's value, and a 2026-07-28 request (by its header or its _meta version) must carry
// every header its method requires. Headers that are present always count, whatever the version: a proxy
// or server downstream may route or decide on them. An older client that sends none passes.
func checkHeaders(h mcpHeaders, m *Message) *Error {
	if m.ProtocolVersion != "" && h.version != m.ProtocolVersion {
		if h.version == "" {
			return errHeaderMismatch("MCP-Protocol-Version header missing (body: %q)", shown(m.ProtocolVersion))
		}
		return errHeaderMismatch("MCP-Protocol-Version header %q does not match the body's %q", shown(h.version), shown(m.ProtocolVersion))
	}
	required := modern(h.version) && m.Method != "" // a response (no method) carries no Mcp-Method
	switch {
	case h.method != "" && h.method != m.Method:
		return errHeaderMismatch("Mcp-Method header %q does not match the body's %q", shown(h.method), shown(m.Method))
	case h.method == "" && required:
		return errHeaderMismatch("Mcp-Method header missing for %s", shown(m.Method))
	}
	bodyName, named := m.name()
	switch {
	case h.name != "" && (!named || h.name != bodyName):
		return errHeaderMismatch("Mcp-Name header %q does not match the body's %q", shown(h.name), shown(bodyName))
	case h.name == "" && named && required:
		return errHeaderMismatch("Mcp-Name header missing for %s", shown(m.Method))
	}
	return nil
}

// messageFromHeaders is the message a body-less request describes in its headers, for a resource whose
// upstream validates them (trust_mcp_headers): only a 2026-07-28 request, whose server must refuse headers
// that disagree with the body, is read; an older or unversioned request is read as no message at all, as
// the specification asks of intermediaries, and the policy sees no `mcp` member.
func messageFromHeaders(h mcpHeaders) (*Message, *Error) {
	if !modern(h.version) || h.method == "" {
		return nil, nil
	}
	m := &Message{Method: h.method, ProtocolVersion: h.version, FromHeaders: true}
	switch m.Method {
	case "tools/call":
		m.Tool = h.name
	case "resources/read":
		m.URI = h.name
	case "prompts/get":
		m.Prompt = h.name
	default:
		if h.name != "" {
			return nil, errHeaderMismatch("Mcp-Name header for %s, which has no name", shown(m.Method))
		}
		return m, nil
	}
	if h.name == "" {
		return nil, errHeaderMismatch("Mcp-Name header missing for %s", shown(m.Method))
	}
	return m, nil
}
