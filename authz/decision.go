package authz

import (
	"encoding/json"
	"net/http"
)

// Decision is the answer to one Request.
type Decision struct {
	// Allow says the request may pass.
	Allow bool
	// Status is the HTTP status sent to the client on a deny (400, 401, 403, 413 or 503).
	Status int
	// Unavailable marks a deny caused by mcp-authz itself not being able to decide (keys never loaded):
	// proxies report it as an error rather than as a policy deny.
	Unavailable bool
	// Code classifies the decision for metrics and log filters; set where the decision is made.
	Code ReasonCode
	// Reason says why, for logs and traces. It never holds a token.
	Reason string
	// Headers are set upstream on an allow, or sent to the client on a deny.
	Headers []Header
	// RemoveHeaders are removed from the request before it goes upstream (allow only).
	RemoveHeaders []string
	// Body is the response body on a deny: a JSON-RPC error.
	Body []byte
	// Identity is the verified caller, when the token was valid.
	Identity *Identity
	// Resource is the URL of the targeted resource, when one matched.
	Resource string
	// MCP is the JSON-RPC message read from the body, when there was one.
	MCP *Message
}

// Header is one HTTP header to set.
type Header struct {
	Name  string
	Value string
}

// Error is a refusal on the way to a decision: the status, the RFC 6750 error code and a description that
// is safe to show the client.
type Error struct {
	// Status is the HTTP status.
	Status int
	// Code is the RFC 6750 error code (invalid_request, invalid_token, insufficient_scope), or "" when the
	// request carried no credentials.
	Code string
	// Description says what failed.
	Description string
	// Unavailable marks a failure of mcp-authz or the IdP rather than of the request.
	Unavailable bool
	// RPCCode is the JSON-RPC error code of the deny's body; 0 is jsonRPCErrorCode.
	RPCCode int
}

// Error implements error.
func (e *Error) Error() string {
	if e.Code == "" {
		return e.Description
	}
	return e.Code + ": " + e.Description
}

func errInvalidRequest(desc string) *Error {
	return &Error{Status: http.StatusBadRequest, Code: "invalid_request", Description: desc}
}

func errInvalidToken(desc string) *Error {
	return &Error{Status: http.StatusUnauthorized, Code: "invalid_token", Description: desc}
}

func errUnavailable(desc string) *Error {
	return &Error{Status: http.StatusServiceUnavailable, Description: desc, Unavailable: true}
}

// jsonRPCErrorCode is the code MCP gateways use for authorization failures.
const jsonRPCErrorCode = -32001

// errorBody renders the JSON-RPC error body of a deny with code (0: jsonRPCErrorCode). id is the request's
// id when known.
func errorBody(id json.RawMessage, code int, message string) []byte {
	if code == 0 {
		code = jsonRPCErrorCode
	}
	if len(id) == 0 || string(id) == "null" {
		id = json.RawMessage("0")
	}
	b, err := json.Marshal(struct {
		JSONRPC string          `json:"jsonrpc"`
		ID      json.RawMessage `json:"id"`
		Error   struct {
			Code    int    `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}{JSONRPC: "2.0", ID: id, Error: struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
	}{code, message}})
	if err != nil { // cannot happen: every field is a plain value and id was validated JSON
		return []byte(`{"jsonrpc":"2.0","id":0,"error":{"code":-32001,"message":"Unauthorized"}}`)
	}
	return b
}
