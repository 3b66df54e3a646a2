package authz

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strings"
	"unicode/utf8"
)

// Message is the MCP JSON-RPC message a request carries, as far as rules need it.
type Message struct {
	// Method is the JSON-RPC method ("tools/call", "tools/list", "initialize", ...).
	Method string
	// ID is the request id as raw JSON (a string or a number); empty for notifications.
	ID json.RawMessage
	// Tool is params.name of a tools/call.
	Tool string
	// URI is params.uri of a resources/read.
	URI string
}

// readMessage reads the MCP message in a request body. It returns nil and no error when the request carries
// no JSON-RPC body (a GET, a DELETE, or a proxy that did not send the body); it returns an *Error when the
// body is there but cannot be trusted to describe the call: truncated, too large, not JSON-RPC, or a batch.
func readMessage(r *Request, maxBytes int) (*Message, *Error) {
	if len(r.Body) == 0 {
		if r.BodyTruncated {
			return nil, errInvalidRequest("request body was truncated by the proxy")
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
	return parseMessage(body)
}

// parseMessage reads a JSON-RPC message (not a batch) as far as rules need it; the *Error says why body
// cannot be trusted to describe the call.
func parseMessage(body []byte) (*Message, *Error) {
	// One pass over the validated bytes, members read by their exact names (encoding/json matches struct
	// fields case-insensitively, which would let "NAME" hide "name" from us but not from the MCP server); a
	// repeated member counts as its last occurrence, as in JavaScript's JSON.parse and Go's map decoding.
	if !json.Valid(body) || len(body) == 0 || body[0] != '{' {
		return nil, errInvalidRequest("request body is not a JSON object")
	}
	var version, id, method, params []byte
	eachMember(body, func(name, value []byte) {
		switch string(name) {
		case "jsonrpc":
			version = value
		case "id":
			id = value
		case "method":
			method = value
		case "params":
			params = value
		}
	})
	if v, ok := jsonString(version); !ok || v != "2.0" {
		return nil, errInvalidRequest("request body is not a JSON-RPC 2.0 message")
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
	var name, uri []byte
	if len(params) > 0 && params[0] == '{' {
		eachMember(params, func(member, value []byte) {
			switch string(member) {
			case "name":
				name = value
			case "uri":
				uri = value
			}
		})
	}
	var ok bool
	switch m.Method {
	case "tools/call":
		if m.Tool, ok = jsonString(name); !ok || m.Tool == "" {
			return m, errInvalidRequest("tools/call without a params.name string")
		}
	case "resources/read":
		if m.URI, ok = jsonString(uri); !ok || m.URI == "" {
			return m, errInvalidRequest("resources/read without a params.uri string")
		}
	}
	return m, nil
}

// eachMember calls f with the name and the raw value of each member of obj, a JSON object that json.Valid
// accepted, in order. Names are decoded as encoding/json decodes them (escapes, invalid UTF-8).
func eachMember(obj []byte, f func(name, value []byte)) {
	i := skipSpace(obj, 1) // past '{'
	for i < len(obj) && obj[i] == '"' {
		end := skipValue(obj, i)
		name := obj[i+1 : end-1]
		if bytes.IndexByte(name, '\\') >= 0 || !utf8.Valid(name) {
			var s string
			if json.Unmarshal(obj[i:end], &s) != nil {
				return
			}
			name = []byte(s)
		}
		i = skipSpace(obj, end)
		i = skipSpace(obj, i+1) // past ':'
		end = skipValue(obj, i)
		f(name, obj[i:end])
		i = skipSpace(obj, end)
		if i < len(obj) && obj[i] == ',' {
			i = skipSpace(obj, i+1)
		}
	}
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
	return s, json.Unmarshal(raw, &s) == nil // escapes, or invalid UTF-8 (read as U+FFFD, as servers do)
}
