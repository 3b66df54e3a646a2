#!/usr/bin/env bash
# The local stack of `make run`: the development IdP and mcp-authz with the shipped policies, on 127.0.0.1.
# Ctrl-C stops everything.
set -euo pipefail
cd "$(dirname "$0")/../.."
bin=bin
pids=()
cleanup() { kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; }
trap cleanup EXIT INT TERM

"$bin/mcp-devidp" -listen 127.0.0.1:9000 >/tmp/mcp-devidp.log 2>&1 &
pids+=($!)
for _ in $(seq 50); do curl -fs -o /dev/null http://127.0.0.1:9000/.well-known/openid-configuration && break; sleep 0.1; done

"$bin/mcp-authz" serve --config deploy/local/config.yaml &
pids+=($!)
for _ in $(seq 50); do curl -fs -o /dev/null http://127.0.0.1:8080/readyz && break; sleep 0.1; done

cat <<MSG

mcp-authz is ready.
  ext_authz gRPC   127.0.0.1:9191   (point Envoy's ext_authz filter here)
  metadata         http://127.0.0.1:8080/.well-known/oauth-protected-resource/mcp
  development IdP  http://127.0.0.1:9000  (auto-approves logins as dev-user; logs in /tmp/mcp-devidp.log)

Try it:
  curl -s http://127.0.0.1:8080/.well-known/oauth-protected-resource/mcp
  TOKEN=\$(curl -s -u demo-service:demo-secret -d grant_type=client_credentials \\
      -d scope='tools:read tools:call' -d resource=http://127.0.0.1:8000/mcp http://127.0.0.1:9000/token | sed 's/.*"access_token":"\([^"]*\)".*/\1/')

Ctrl-C stops the stack.
MSG
wait
