package mcp.authz_test

import rego.v1

import data.mcp.authz

token(extra) := object.union(
	{"subject": "alice", "issuer": "https://idp.example.com", "client_id": "mcp-client", "scopes": ["tools:read"], "claims": {"groups": ["developers"], "department": "engineering"}},
	extra,
)

# with_claims replaces the claims outright (object.union would merge them).
with_claims(claims) := object.union(object.remove(token({}), ["claims"]), {"claims": claims})

req(tok, mcp) := {
	"token": tok,
	"request": {"method": "POST", "host": "mcp.example.com", "path": "/mcp", "headers": {}},
	"resource": {"url": "https://mcp.example.com/mcp"},
	"mcp": mcp,
}

list_tools := {"method": "tools/list", "id": 1}

call(tool) := {"method": "tools/call", "id": 2, "tool": tool}

agentcore := {
	"allowed_clients": ["mcp-client"],
	"allowed_scopes": ["tools:read", "tools:call"],
	"custom_claims": [
		{"claim": "department", "operator": "EQUALS", "value": "engineering"},
		{"claim": "groups", "operator": "CONTAINS", "value": "developers"},
		{"claim": "groups", "operator": "CONTAINS_ANY", "values": ["admins", "developers"]},
	],
}

test_empty_data_allows_any_valid_token if {
	authz.decision.allow with input as req(token({}), list_tools) with data.authorizer as {}
}

test_agentcore_rules_allow if {
	authz.decision.allow with input as req(token({}), list_tools) with data.authorizer as agentcore
}

test_client_not_allowed if {
	d := authz.decision with input as req(token({"client_id": "other"}), list_tools) with data.authorizer as agentcore
	not d.allow
	d.reason == `client "other" is not allowed`
	not d.required_scopes
}

test_missing_client_is_denied if {
	tok := object.remove(token({}), ["client_id"])
	d := authz.decision with input as req(tok, list_tools) with data.authorizer as agentcore
	not d.allow
}

test_no_allowed_scope_asks_for_them if {
	d := authz.decision with input as req(token({"scopes": ["openid"]}), list_tools) with data.authorizer as agentcore
	not d.allow
	d.required_scopes == ["tools:read", "tools:call"]
}

test_custom_claim_operators if {
	cases := [
		[{"department": "sales", "groups": ["developers"]}, false],
		[{"department": "engineering", "groups": ["admins"]}, false],
		[{"department": ["engineering"], "groups": ["developers"]}, false],
		[{"department": "engineering", "groups": "developers"}, false],
		[{"groups": ["developers"]}, false],
		[{"department": "engineering", "groups": ["developers", "x"]}, true],
	]
	results := [d.allow |
		some c in cases
		d := authz.decision with input as req(with_claims(c[0]), list_tools) with data.authorizer as agentcore
	]
	results == [c[1] | some c in cases]
}

tool_data := {"tools": {"admin_reset": {"required_scopes": ["tools:admin"], "groups": ["admins"]}}}

test_tool_rule_asks_for_step_up if {
	d := authz.decision with input as req(token({}), call("admin_reset")) with data.authorizer as tool_data
	not d.allow
	d.required_scopes == ["tools:admin"]
}

test_tool_rule_limits_groups if {
	tok := token({"scopes": ["tools:admin"]})
	d := authz.decision with input as req(tok, call("admin_reset")) with data.authorizer as tool_data
	not d.allow
	not d.required_scopes
	d.reason == "tool admin_reset is limited to groups admins"
}

test_tool_rule_allows_admins if {
	tok := object.union(with_claims({"groups": ["admins"]}), {"scopes": ["tools:admin"]})
	authz.decision.allow with input as req(tok, call("admin_reset")) with data.authorizer as tool_data
}

test_other_tools_unaffected if {
	authz.decision.allow with input as req(token({}), call("echo")) with data.authorizer as tool_data
}

test_post_without_body_refused_when_tool_rules_exist if {
	inp := object.remove(req(token({}), {}), ["mcp"])
	d := authz.decision with input as inp with data.authorizer as tool_data
	not d.allow
}

test_method_rule if {
	rules := {"methods": {"tools/call": {"required_scopes": ["tools:call"]}}}
	d := authz.decision with input as req(token({}), call("echo")) with data.authorizer as rules
	not d.allow
	d.reason == "tool echo requires scopes tools:call"
	authz.decision.allow with input as req(token({}), list_tools) with data.authorizer as rules
}

test_lowest_rank_wins if {
	d := authz.decision with input as req(token({"client_id": "x", "scopes": []}), list_tools) with data.authorizer as agentcore
	startswith(d.reason, `client "x"`)
}

hierarchy := {
	"allowed_scopes": ["tools:read"],
	"scope_implies": {"tools:admin": ["tools:call"], "tools:call": ["tools:read"]},
	"methods": {"tools/call": {"required_scopes": ["tools:call"]}},
	"tools": {"admin_reset": {"required_scopes": ["tools:admin"]}},
}

test_broader_scope_implies_narrower_ones if {
	# tools:admin implies tools:call, which implies tools:read: allowed scopes, method and tool rules all pass.
	authz.decision.allow with input as req(token({"scopes": ["tools:admin"]}), call("admin_reset")) with data.authorizer as hierarchy
	authz.decision.allow with input as req(token({"scopes": ["tools:admin"]}), list_tools) with data.authorizer as hierarchy
	authz.decision.allow with input as req(token({"scopes": ["tools:call"]}), call("echo")) with data.authorizer as hierarchy
}

test_narrower_scope_steps_up_to_the_broader_one_only if {
	d := authz.decision with input as req(token({"scopes": ["tools:call"]}), call("admin_reset")) with data.authorizer as hierarchy
	not d.allow
	d.required_scopes == ["tools:admin"]
	e := authz.decision with input as req(token({"scopes": ["tools:read"]}), call("echo")) with data.authorizer as hierarchy
	e.required_scopes == ["tools:call"]
}

test_implication_is_not_reversed if {
	d := authz.decision with input as req(token({"scopes": ["tools:read"]}), call("admin_reset")) with data.authorizer as hierarchy
	not d.allow
}

test_token_scopes_stay_as_issued if {
	authz.token_scopes == ["tools:admin"] with input as req(token({"scopes": ["tools:admin"]}), list_tools) with data.authorizer as hierarchy
}

test_token_claims_name_every_claim_read_by_name if {
	authz.token_claims == {"department", "groups", "team"} with data.authorizer as {
		"custom_claims": agentcore.custom_claims,
		"methods": {"tools/list": {"groups": ["readers"], "groups_claim": "team"}},
		"tools": {"admin_reset": {"groups": ["admins"]}, "echo": {"required_scopes": ["tools:call"]}},
	}
}

test_token_claims_empty_without_claim_rules if {
	authz.token_claims == set() with data.authorizer as {"tools": {"echo": {"required_scopes": ["tools:call"]}}}
}
