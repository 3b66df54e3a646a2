package mcp.authz_test

import rego.v1

import data.mcp.authz

readonly_data := {"readonly_clients": ["viewer"]}

viewer := {"subject": "v", "client_id": "viewer", "scopes": [], "claims": {}}

test_readonly_client_lists_and_reads if {
	authz.decision.allow with input as req(viewer, list_tools) with data.authorizer as readonly_data
	authz.decision.allow with input as req(viewer, call("list_files")) with data.authorizer as readonly_data
}

test_readonly_client_cannot_write if {
	d := authz.decision with input as req(viewer, call("echo")) with data.authorizer as readonly_data
	not d.allow
	d.reason == "read-only client may not call tool echo"
}

test_other_clients_unaffected if {
	authz.decision.allow with input as req(token({}), call("echo")) with data.authorizer as readonly_data
}
