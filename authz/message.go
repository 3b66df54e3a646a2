package authz

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"unicode/utf8"
)

// Message is the MCP JSON-RPC message a request carries, as far as rules need it: read from the body, or
// from the MCP 2026-07-28 request headers when the proxy sent no body and the resource trusts them.
type Message struct {
	// Method is the JSON-RPC method ("tools/call", "tools/list", "server/discover", ...).
	Method string
	// ID is the request id as raw JSON (a string or a number); empty for notifications and when read from
	// headers.
	ID json.RawMessage
	// Tool is params.name of a tools/call.
	Tool string
	// URI is params.uri of a resources/read.
	URI string
	// Prompt is params.name of a prompts/get.
	Prompt string
	// ProtocolVersion is params._meta["io.modelcontextprotocol/protocolVersion"] (2026-07-28 and later), or
	// the MCP-Protocol-Version header for a message read from headers.
	ProtocolVersion string
	// FromHeaders says the message was read from the Mcp-Method / Mcp-Name headers, not from a body.
	FromHeaders bool
}

// metaProtocolVersion is the _meta key of the protocol version in every 2026-07-28 request.
const metaProtocolVersion = "io.modelcontextprotocol/protocolVersion"

// readMessage reads the MCP message of a request. With a body, the body is the message, and the MCP
// 2026-07-28 request headers must agree with it (checkHeaders: mcp-authz processes the body, so the
// specification's Server Validation applies to it). Without a body (a GET, a DELETE, or a proxy that did not
// send it) it returns nil and no error, or, when trustHeaders is set, the message the headers describe
// (messageFromHeaders). It returns an *Error when what is there cannot be trusted to describe the call:
// truncated, too large, not JSON-RPC, a batch, or headers that disagree with the body.
func readMessage(r *Request, maxBytes int, trustHeaders bool) (*Message, *Error) {
	h, herr := readMCPHeaders(r.Headers)
	if len(r.Body) == 0 {
		if r.BodyTruncated {
			return nil, errInvalidRequest("request body was truncated by the proxy")
		}
		if herr != nil {
			return nil, herr
		}
		if trustHeaders {
			return messageFromHeaders(h)
		}
		return nil, nil
	}
	if len(r.Body) > maxBytes {
		return nil, &Error{Status: http.StatusRequestEntityTooLarge, Code: "invalid_request", Description: "request body too large"}
	}
	if r.BodyTruncated {
		return nil, errInvalidRequest("request body was truncated by the proxy")
	}
	if ct := r.Headers["content-type"]; ct != "" && !strings.HasPrefix(strings.ToLower(strings.TrimSpace(ct)), "application/json") {
		return nil, errInvalidRequest("request body is not application/json")
	}
	body := bytes.TrimLeft(r.Body, " \t\r\n")
	if len(body) > 0 && body[0] == '[' {
		return nil, errInvalidRequest("JSON-RPC batches are not accepted")
	}
	m, e := parseMessage(body)
	if e != nil {
		return m, e
	}
	if herr != nil {
		return m, herr
	}
	return m, checkHeaders(h, m)
}

// parseMessage reads a JSON-RPC message (not a batch) as far as rules need it; the *Error says why body
// cannot be trusted to describe the call.
//
// It reads in one pass over the validated bytes, members by their exact names, and refuses a message whose
// meaning depends on the parser: at the levels it reads (the top level and params), a member present twice
// (parsers keep the first or the last), or a name that is not one it reads but equals one under the case
// folding encoding/json uses to match struct fields: "Name", "NAME", or "paramſ" with U+017F LONG S are
// "name" and "params" to an MCP server decoding into Go structs (which keeps the last of them), and nothing
// to an exact reader. Other members, and the members of other objects (the tool's arguments), are not
// looked at.
func parseMessage(body []byte) (*Message, *Error) {
	if !json.Valid(body) || len(body) == 0 || body[0] != '{' {
		return nil, errInvalidRequest("request body is not a JSON object")
	}
	var top [4][]byte // jsonrpc, id, method, params
	for it := newMembers(body); it.next(); {
		if e := keepMember(top[:], it.name, it.value, "", "jsonrpc", "id", "method", "params"); e != nil {
			return nil, e
		}
	}
	version, id, method, params := top[0], top[1], top[2], top[3]
	if string(version) != `"2.0"` { // the usual spelling, compared without decoding it
		if v, ok := jsonString(version); !ok || v != "2.0" {
			return nil, errInvalidRequest("request body is not a JSON-RPC 2.0 message")
		}
	}
	m := &Message{}
	if len(id) > 0 && (id[0] == '"' || id[0] == '-' || id[0] >= '0' && id[0] <= '9') {
		m.ID = json.RawMessage(id)
	}
	if method != nil {
		var ok bool
		if m.Method, ok = jsonString(method); !ok {
			return m, errInvalidRequest("JSON-RPC method is not a string")
		}
	}
	var p [3][]byte // name, uri, _meta
	if len(params) > 0 && params[0] == '{' {
		for it := newMembers(params); it.next(); {
			if e := keepMember(p[:], it.name, it.value, " in params", "name", "uri", "_meta"); e != nil {
				return m, e
			}
		}
	}
	if meta := p[2]; len(meta) > 0 && meta[0] == '{' {
		var v [1][]byte
		for it := newMembers(meta); it.next(); {
			if e := keepMember(v[:], it.name, it.value, " in params._meta", metaProtocolVersion); e != nil {
				return m, e
			}
		}
		if v[0] != nil {
			var ok bool
			if m.ProtocolVersion, ok = jsonString(v[0]); !ok {
				return m, errInvalidRequest("params._meta[\"" + metaProtocolVersion + "\"] is not a string")
			}
		}
	}
	var ok bool
	switch m.Method {
	case "tools/call":
		if m.Tool, ok = jsonString(p[0]); !ok || m.Tool == "" {
			return m, errInvalidRequest("tools/call without a params.name string")
		}
	case "resources/read":
		if m.URI, ok = jsonString(p[1]); !ok || m.URI == "" {
			return m, errInvalidRequest("resources/read without a params.uri string")
		}
	case "prompts/get":
		if m.Prompt, ok = jsonString(p[0]); !ok || m.Prompt == "" {
			return m, errInvalidRequest("prompts/get without a params.name string")
		}
	}
	return m, nil
}

// keepMember stores value in kept[i] when name is names[i], the i-th member read at this level (where, for
// errors: "" at the top level, " in params"). It refuses a member read twice, and a name that is not one of
// names but equals one under Unicode simple case folding, as encoding/json (bytes.EqualFold) matches a
// struct field; other names are ignored.
func keepMember(kept [][]byte, name, value []byte, where string, names ...string) *Error {
	for i, n := range names {
		if string(name) == n {
			if kept[i] != nil {
				return errInvalidRequest(fmt.Sprintf("duplicate JSON member %q%s", name, where))
			}
			kept[i] = value
			return nil
		}
	}
	for _, n := range names {
		if bytes.EqualFold(name, []byte(n)) {
			return errInvalidRequest(fmt.Sprintf("ambiguous JSON member %q%s: case-insensitive decoders read it as %q", name, where, n))
		}
	}
	return nil
}

// members iterates over the members of a JSON object that json.Valid accepted, in order: after each next
// that returns true, name is the member's name decoded as encoding/json decodes it (escapes, invalid UTF-8
// read as U+FFFD) and value its raw value.
type members struct {
	obj         []byte
	i           int
	name, value []byte
}

// newMembers iterates over the members of obj.
func newMembers(obj []byte) members { return members{obj: obj, i: skipSpace(obj, 1)} } // past '{'

// next moves to the next member; false at the end of the object.
func (it *members) next() bool {
	obj, i := it.obj, it.i
	if i >= len(obj) || obj[i] != '"' {
		return false
	}
	end := skipValue(obj, i)
	name := obj[i+1 : end-1]
	if bytes.IndexByte(name, '\\') >= 0 || !utf8.Valid(name) {
		var s string
		if json.Unmarshal(obj[i:end], &s) != nil {
			return false
		}
		name = []byte(s)
	}
	i = skipSpace(obj, end)
	i = skipSpace(obj, i+1) // past ':'
	end = skipValue(obj, i)
	it.name, it.value = name, obj[i:end]
	i = skipSpace(obj, end)
	if i < len(obj) && obj[i] == ',' {
		i = skipSpace(obj, i+1)
	}
	it.i = i
	return true
}

// skipSpace returns the index of the first byte at or after i that is not JSON whitespace.
func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\r' || b[i] == '\n') {
		i++
	}
	return i
}

// skipValue returns the index just past the JSON value starting at i, in bytes json.Valid accepted.
func skipValue(b []byte, i int) int {
	if i >= len(b) {
		return i
	}
	switch b[i] {
	case '"':
		return skipString(b, i)
	case '{', '[':
		depth := 0
		for i < len(b) {
			switch b[i] {
			case '"':
				i = skipString(b, i)
				continue
			case '{', '[':
				depth++
			case '}', ']':
				if depth--; depth == 0 {
					return i + 1
				}
			}
			i++
		}
		return i
	default: // a number, true, false or null
		for i < len(b) && !isDelimiter(b[i]) {
			i++
		}
		return i
	}
}

// skipString returns the index just past the JSON string starting at i.
func skipString(b []byte, i int) int {
	for i++; i < len(b); i++ {
		switch b[i] {
		case '\\':
			i++
		case '"':
			return i + 1
		}
	}
	return i
}

// isDelimiter reports whether c ends a JSON number or literal.
func isDelimiter(c byte) bool {
	switch c {
	case ',', '}', ']', ' ', '\t', '\r', '\n':
		return true
	}
	return false
}

// jsonString decodes raw as a JSON string; ok is false when raw is not one (or is absent).
func jsonString(raw []byte) (s string, ok bool) {
	if len(raw) < 2 || raw[0] != '"' {
		return "", false
	}
	if bytes.IndexByte(raw, '\\') < 0 && utf8.Valid(raw) {
		return string(raw[1 : len(raw)-1]), true
	}
	return decodeString(raw)
}

// decodeString decodes a JSON string with escapes, or with invalid UTF-8 (read as U+FFFD, as servers do).
// Apart from jsonString, so that the plain strings do not pay for a variable Unmarshal can write to.
func decodeString(raw []byte) (s string, ok bool) {
	return s, json.Unmarshal(raw, &s) == nil
}
