package authz

// ReasonCode classifies a Decision into a small fixed set, for metric labels and log filters (the Reason
// itself is free text).
type ReasonCode string

// The reason codes. Keep the set small and stable: dashboards and alerts select on them.
const (
	ReasonAllowed           ReasonCode = "allowed"            // allowed
	ReasonNoResource        ReasonCode = "no_resource"        // no configured resource matches the request (403)
	ReasonOrigin            ReasonCode = "origin_not_allowed" // Origin not in allowed_origins (403)
	ReasonInvalidRequest    ReasonCode = "invalid_request"    // ambiguous path, bad credentials syntax, token in the query, bad JSON-RPC body (400)
	ReasonBodyTooLarge      ReasonCode = "body_too_large"     // body over max_body_bytes (413)
	ReasonMissingToken      ReasonCode = "missing_token"      // no Authorization (401)
	ReasonInvalidToken      ReasonCode = "invalid_token"      // signature, key, algorithm, time, iss, aud or typ failed (401)
	ReasonInsufficientScope ReasonCode = "insufficient_scope" // the policy asks for more scopes (403)
	ReasonPolicyDeny        ReasonCode = "policy_deny"        // any other policy deny (403)
	ReasonPolicyError       ReasonCode = "policy_error"       // the policy failed to evaluate (403)
	ReasonUnavailable       ReasonCode = "unavailable"        // the issuer's keys could not be loaded (503)
)

// ReasonCodes lists every ReasonCode.
var ReasonCodes = []ReasonCode{ReasonAllowed, ReasonNoResource, ReasonOrigin, ReasonInvalidRequest, ReasonBodyTooLarge,
	ReasonMissingToken, ReasonInvalidToken, ReasonInsufficientScope, ReasonPolicyDeny, ReasonPolicyError, ReasonUnavailable}

// Decision is the decision word of the code: allow, error (mcp-authz could not decide) or deny.
func (c ReasonCode) Decision() string {
	switch c {
	case ReasonAllowed:
		return "allow"
	case ReasonUnavailable:
		return "error"
	default:
		return "deny"
	}
}
