# The default mcp-authz policy.
#
# Configured by data alone (data.authorizer, see data.yaml), it reproduces the inbound JWT authorizer of AWS
# AgentCore Gateway (allowed clients, allowed scopes, custom claims with EQUALS / CONTAINS / CONTAINS_ANY)
# and adds MCP-aware rules per JSON-RPC method and per tool, with step-up scopes.
#
# Input (see README "Policy contract"):
#   input.token    {subject, issuer, client_id, scopes, claims}
#   input.request  {method, host, path, headers}
#   input.resource {url, name}
#   input.mcp      {method, id, tool, uri}   (absent when the proxy sent no body)
# Decision: data.mcp.authz.decision = {allow, reason, required_scopes, headers}.
#
# Other files of this package may add rules of their own: every `denials contains {...}` they define is
# honoured (see examples/).
package mcp.authz

import rego.v1

default authorizer := {}

authorizer := data.authorizer

allowed_clients := object.get(authorizer, "allowed_clients", [])

allowed_scopes := object.get(authorizer, "allowed_scopes", [])

custom_claims := object.get(authorizer, "custom_claims", [])

method_rules := object.get(authorizer, "methods", {})

tool_rules := object.get(authorizer, "tools", {})

scope_implies := object.get(authorizer, "scope_implies", {})

# The policy reads the input only through references with constant keys (input.token.scopes, never a bare
# `input`), so that mcp-authz can cache its decisions (docs/policies.md, "Decision cache").
default token_scopes := []

token_scopes := input.token.scopes

# held_scopes are the token's scopes and every scope they imply through data.authorizer.scope_implies
# (transitively: a broader scope implies the narrower ones, as the MCP specification requires a server to
# account for). Every scope check below uses them; input.token.scopes stays as issued.
# graph.reachable returns only nodes that are keys of the graph: every implied scope is made a key, and the
# token's own scopes are added whether or not they imply anything.
scope_graph := object.union({s: [] | some implied in scope_implies; some s in implied}, scope_implies)

held_scopes := {s | some s in token_scopes} | graph.reachable(scope_graph, token_scopes)

default client_id := ""

client_id := input.token.client_id

# token_claims are the claims this policy reads by a name taken from data (custom claims, groups claims).
# mcp-authz computes them from data when the policy loads and leaves every other claim out of
# input.token.claims, so that the calls of users alike in these claims, their scopes and client share one
# cached decision (docs/policies.md, "Claims a policy reads"). A file of your own that reads a claim by a
# variable name adds the name here; claims read by a constant name (input.token.claims.department) are
# always kept.
token_claims contains c.claim if some c in custom_claims

token_claims contains name if {
	some rules in [method_rules, tool_rules]
	some r in rules
	r.groups
	name := object.get(r, "groups_claim", "groups")
}

# claim(name, fallback) is the token's claim name, else fallback.
claim(name, fallback) := v if {
	v := input.token.claims[name]
} else := fallback

# The decision: allow when nothing denies, else the deny of lowest rank.
decision := {"allow": true, "reason": "allowed"} if count(denials) == 0

decision := first_denial if count(denials) > 0

first_denial := object.union({"allow": false}, object.remove(d, ["rank"])) if {
	ranked := sort([[d.rank, d.reason] | some d in denials])
	some d in denials
	[d.rank, d.reason] == ranked[0]
}

# 1. Allowed clients (AgentCore allowedClients).
denials contains {"rank": 10, "reason": sprintf("client %q is not allowed", [client_id])} if {
	count(allowed_clients) > 0
	not client_id in allowed_clients
}

# 2. Allowed scopes, any of them (AgentCore allowedScopes).
denials contains {
	"rank": 20,
	"reason": "token has none of the allowed scopes",
	"required_scopes": allowed_scopes,
} if {
	count(allowed_scopes) > 0
	count({s | some s in held_scopes; s in allowed_scopes}) == 0
}

# 3. Custom claims (AgentCore customClaims).
denials contains {"rank": 30, "reason": sprintf("claim %v does not match", [c.claim])} if {
	some c in custom_claims
	not claim_matches(c, claim(c.claim, null))
}

claim_matches(c, v) if {
	c.operator == "EQUALS"
	is_string(v)
	v == c.value
}

claim_matches(c, v) if {
	c.operator == "CONTAINS"
	is_array(v)
	c.value in v
}

claim_matches(c, v) if {
	c.operator == "CONTAINS_ANY"
	is_array(v)
	some want in c.values
	want in v
}

# 4. MCP rules need the JSON-RPC body: with method or tool rules configured, a POST whose body the proxy
# did not send is refused rather than guessed at. (mcp-authz always sets input.mcp.method when it read a
# body; reading only the method keeps the JSON-RPC id out of the decision cache key.)
denials contains {"rank": 40, "reason": "MCP rules are configured but the proxy sent no request body"} if {
	count(method_rules) + count(tool_rules) > 0
	input.request.method == "POST"
	not input.mcp.method
}

# 5. Per JSON-RPC method and per tool: required scopes (all of them; step-up) and allowed groups.
mcp_rules contains r if r := method_rules[input.mcp.method]

mcp_rules contains r if {
	input.mcp.method == "tools/call"
	r := tool_rules[input.mcp.tool]
}

denials contains {
	"rank": 50,
	"reason": sprintf("%v requires scopes %v", [subject_of_rules, concat(" ", missing)]),
	"required_scopes": object.get(r, "required_scopes", []),
} if {
	some r in mcp_rules
	missing := [s | some s in object.get(r, "required_scopes", []); not s in held_scopes]
	count(missing) > 0
}

denials contains {"rank": 60, "reason": sprintf("%v is limited to groups %v", [subject_of_rules, concat(", ", r.groups)])} if {
	some r in mcp_rules
	r.groups
	held := claim(object.get(r, "groups_claim", "groups"), [])
	count({g | some g in r.groups; g in held}) == 0
}

subject_of_rules := sprintf("tool %v", [input.mcp.tool]) if input.mcp.method == "tools/call"

else := sprintf("method %v", [input.mcp.method])
