# Example: a hand-written rule beside the default policy. Load it together with deploy/policies
# (policy.paths: [deploy/policies, deploy/examples/policies]).
#
# Clients registered as read-only (data.authorizer.readonly_clients) may list tools and call only those
# whose names start with "list_" or "get_"; every other tools/call is denied.
package mcp.authz

import rego.v1

readonly_clients := object.get(authorizer, "readonly_clients", [])

denials contains {"rank": 70, "reason": sprintf("read-only client may not call tool %v", [input.mcp.tool])} if {
	client_id in readonly_clients
	input.mcp.method == "tools/call"
	not read_only_tool(input.mcp.tool)
}

read_only_tool(name) if startswith(name, "list_")

read_only_tool(name) if startswith(name, "get_")
