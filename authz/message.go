package authz

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strings"
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
	// Members are read by their exact names (encoding/json matches struct fields case-insensitively, which
	// would let "NAME" hide "name" from us but not from the MCP server).
	var top map[string]json.RawMessage
	if err := json.Unmarshal(body, &top); err != nil {
		return nil, errInvalidRequest("request body is not a JSON object")
	}
	var version string
	if json.Unmarshal(top["jsonrpc"], &version) != nil || version != "2.0" {
		return nil, errInvalidRequest("request body is not a JSON-RPC 2.0 message")
	}
	m := &Message{}
	if id := top["id"]; len(id) > 0 && (id[0] == '"' || id[0] == '-' || id[0] >= '0' && id[0] <= '9') {
		m.ID = id
	}
	if raw, ok := top["method"]; ok {
		if json.Unmarshal(raw, &m.Method) != nil {
			return m, errInvalidRequest("JSON-RPC method is not a string")
		}
	}
	var params map[string]json.RawMessage
	if raw, ok := top["params"]; ok && json.Unmarshal(raw, &params) != nil {
		params = nil
	}
	switch m.Method {
	case "tools/call":
		if json.Unmarshal(params["name"], &m.Tool) != nil || m.Tool == "" {
			return m, errInvalidRequest("tools/call without a params.name string")
		}
	case "resources/read":
		if json.Unmarshal(params["uri"], &m.URI) != nil || m.URI == "" {
			return m, errInvalidRequest("resources/read without a params.uri string")
		}
	}
	return m, nil
}
