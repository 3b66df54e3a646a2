#!/usr/bin/env bash
# The local stack of `make run`, on 127.0.0.1: the development IdP (mcp-devidp), the example MCP server
# (mcp-example-server, MCP 2026-07-28), mcp-authz with the shipped policy and two front proxies: the Envoy
# stand-in (ext_authz over gRPC with the body; Envoy itself is not installable here) and, when nginx is
# installed, nginx (auth_request, headers only). Ctrl-C stops everything.
#
#   client --> envoy-standin 127.0.0.1:8000/mcp --(Check, with body)--> mcp-authz 127.0.0.1:9191
#                 --> mcp-example-server 127.0.0.1:8003/mcp (verifies the signed identity assertion)
#   client --> nginx         127.0.0.1:8002/mcp --(auth_request)-------> mcp-authz 127.0.0.1:8080/authz
#                 --> mcp-example-server 127.0.0.1:8001/mcp (trusts the identity headers)
#   mcp-devidp 127.0.0.1:9000: the OpenID provider (approves every login as dev-user)
set -euo pipefail
cd "$(dirname "$0")/../.."
bin=bin
logs=/tmp/mcp-authz-local
mkdir -p "$logs"
pids=()
cleanup() { kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; }
trap cleanup EXIT INT TERM

wait_for() { # url name
  for _ in $(seq 100); do curl -fsS -o /dev/null "$1" 2>/dev/null && return 0; sleep 0.1; done
  echo "$2 did not start; see $logs/" >&2
  exit 1
}

"$bin/mcp-devidp" -listen 127.0.0.1:9000 >"$logs/mcp-devidp.log" 2>&1 &
pids+=($!)
wait_for http://127.0.0.1:9000/.well-known/openid-configuration mcp-devidp

"$bin/mcp-example-server" -listen 127.0.0.1:8001 >"$logs/mcp-example-server.log" 2>&1 &
pids+=($!)

# The identity assertion's signing key (EC P-256), made once; mcp-authz re-reads the folder, so a new key
# file whose name sorts last takes over signing while the old one stays published for rotation_grace.
mkdir -p "$logs/assertion-keys"
[ -f "$logs/assertion-keys/local.pem" ] ||
  openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$logs/assertion-keys/local.pem" 2>/dev/null
"$bin/mcp-example-server" -listen 127.0.0.1:8003 -identity-jwks http://127.0.0.1:8080/.well-known/jwks.json \
  -identity-issuer http://127.0.0.1:8080 -identity-audience http://127.0.0.1:8000/mcp >"$logs/mcp-example-server-verifying.log" 2>&1 &
pids+=($!)

"$bin/mcp-authz" serve --config deploy/local/config.yaml >"$logs/mcp-authz.log" 2>&1 &
pids+=($!)
wait_for http://127.0.0.1:8080/readyz mcp-authz

"$bin/envoy-standin" -listen 127.0.0.1:8000 -authz 127.0.0.1:9191 -metadata http://127.0.0.1:8080 \
  -upstream http://127.0.0.1:8003 >"$logs/envoy-standin.log" 2>&1 &
pids+=($!)
wait_for http://127.0.0.1:8000/.well-known/oauth-protected-resource/mcp envoy-standin

nginx_bin=$(command -v nginx || ls /usr/sbin/nginx 2>/dev/null || true)
if [ -n "$nginx_bin" ]; then
  # The end-to-end suite's nginx configuration, rendered for the fixed local ports.
  mkdir -p "$logs/nginx/tmp"
  sed -e "s#{{.Dir}}#$logs/nginx#g" -e "s#{{.Port}}#8002#g" \
      -e "s#{{.AuthzURL}}#http://127.0.0.1:8080#g" -e "s#{{.UpstreamURL}}#http://127.0.0.1:8001#g" \
      test/e2e/testdata/nginx.conf.tmpl >"$logs/nginx/nginx.conf"
  "$nginx_bin" -e stderr -c "$logs/nginx/nginx.conf" -p "$logs/nginx" >"$logs/nginx.log" 2>&1 &
  pids+=($!)
  wait_for http://127.0.0.1:8002/.well-known/oauth-protected-resource/mcp nginx
  nginx_line="  nginx            http://127.0.0.1:8002/mcp  (auth_request, no body: tool rules from the MCP 2026-07-28
                   headers for 2026-07-28 clients; older clients' calls refused while tool rules exist)"
else
  nginx_line="  nginx            not installed (apt-get install -y nginx): http://127.0.0.1:8002/mcp is down"
fi

cat <<MSG

mcp-authz is ready.
  front proxy      http://127.0.0.1:8000/mcp  (Envoy stand-in, ext_authz with the body: every client; tool rules
                   enforced: admin_reset needs tools:admin, which clients get by stepping up)
$nginx_line
  ext_authz gRPC   127.0.0.1:9191   (point a real Envoy's ext_authz filter here)
  metadata         http://127.0.0.1:8080/.well-known/oauth-protected-resource/mcp
  MCP server       http://127.0.0.1:8003/mcp  (mcp-example-server behind the Envoy stand-in: list_files, echo,
                   admin_reset; refuses (401) any request without mcp-authz's signed identity assertion)
                   http://127.0.0.1:8001/mcp  (the same behind nginx, trusting its identity headers)
  JWKS             http://127.0.0.1:8080/.well-known/jwks.json  (verifies the identity assertion)
  development IdP  http://127.0.0.1:9000  (auto-approves logins as dev-user)
  logs             $logs/

Connect a real MCP client (it gets 401, discovers the IdP, logs you in through your browser):
  npx -y mcp-remote@0.15.1 http://127.0.0.1:8000/mcp --host 127.0.0.1
  (or add to your MCP client's configuration: {"command": "npx", "args": ["-y", "mcp-remote@0.15.1", "http://127.0.0.1:8000/mcp", "--host", "127.0.0.1"]})

Or by hand:
  curl -si http://127.0.0.1:8000/mcp -d '{"jsonrpc":"2.0","id":1,"method":"tools/list"}'     # 401 + WWW-Authenticate
  TOKEN=\$(curl -s -u demo-service:demo-secret -d grant_type=client_credentials \\
      -d scope='tools:read tools:call' -d resource=http://127.0.0.1:8000/mcp http://127.0.0.1:9000/token | sed 's/.*"access_token":"\([^"]*\)".*/\1/')
  curl -s http://127.0.0.1:8000/mcp -H "Authorization: Bearer \$TOKEN" -H 'Content-Type: application/json' \\
      -H 'Accept: application/json, text/event-stream' \\
      -d '{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"curl","version":"1"}}}'

Ctrl-C stops the stack.
MSG
wait
