package e2e

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mcp-authz/mcp-authz/bridge"
	"github.com/mcp-authz/mcp-authz/service"
	"github.com/mcp-authz/mcp-authz/test/mcpserver"
)

// bridgeStack is one IdP behind mcp-authz's OAuth bridge: the MCP server, one mcp-authz (its HTTP listener
// is public_url, where the bridge lives) and the Envoy stand-in in front of the MCP server.
type bridgeStack struct {
	az  *authzInstance
	mcp *mcpserver.Server
	px  proxy
	// id is the bridge's id; bridgeIssuer its issuer identifier ({public_url}/oauth/{id}).
	id, bridgeIssuer string
	// idp is the IdP: its issuer is the iss of every access token.
	idp bridgedIdP
	// cimd serves the clients' metadata documents.
	cimd *cimdHost
}

// bridgedIdP is an IdP of the bridge scenarios as mcp-authz and the checks see it.
type bridgedIdP struct {
	// issuer is the IdP's issuer; yaml its `issuers:` entry in mcp-authz's configuration, bridge block
	// included.
	issuer, yaml string
	// audience is the aud of the IdP's access tokens for the resource.
	audience string
	// audienceParam is the audience= the bridge must send the IdP ("": none); resourceParam says whether
	// it passes resource= on.
	audienceParam string
	resourceParam bool
	// params are more parameters the bridge must send the IdP (its authorize_params).
	params map[string]string
}

// bridgeIdP starts an IdP whose bridge client has redirect URI callback, for the resource.
type bridgeIdP func(t testing.TB, resource, callback string) bridgedIdP

// hydraBridge: Hydra (no registration, its login UI on another origin), audience from the bridge's
// audience= (resource: audience), the bridge asks for openid and offline_access too.
func hydraBridge(t testing.TB, resource, callback string) bridgedIdP {
	h := startBridgeHydra(t, []string{resource}, callback)
	return bridgedIdP{issuer: h.issuer, audience: resource, audienceParam: resource, yaml: fmt.Sprintf(`  - discovery_url: %q
    bridge: {id: hydra, client_id: %s, resource: audience, extra_scopes: [openid, offline_access]}
`, h.issuer+"/.well-known/openid-configuration", bridgeClientID)}
}

// enterpriseBridge: oidc-provider as an enterprise IdP (fixed audience api://default, no RFC 8707): the
// bridge drops resource and the resource accepts the IdP's audience. It grants offline_access only with
// prompt=consent (OpenID Connect), which the bridge adds as a static parameter (authorize_params).
func enterpriseBridge(t testing.TB, _, callback string) bridgedIdP {
	op := startEnterpriseIdP(t, callback)
	return bridgedIdP{issuer: op.issuer, audience: enterpriseAudience, params: map[string]string{"prompt": "consent"},
		yaml: fmt.Sprintf(`  - discovery_url: %q
    required_type: at+jwt
    bridge: {id: corp, client_id: %s, resource: drop, extra_scopes: [openid, offline_access], authorize_params: {prompt: consent}}
`, op.issuer+"/.well-known/openid-configuration", bridgeClientID)}
}

// startBridgeStack runs the IdP, mcp-authz with the bridge on its HTTP listener, the MCP server and the
// Envoy stand-in (gRPC Check), and serves the clients' metadata documents on https://127.0.0.1.
func startBridgeStack(t testing.TB, id string, startIdP bridgeIdP) *bridgeStack {
	t.Helper()
	hl, pl := listen(t), listen(t)
	publicURL := "http://" + hl.Addr().String()
	px := proxy{name: "envoy-standin", base: "http://" + pl.Addr().String(), bodyChecked: true, l: pl}
	bs := &bridgeStack{px: px, id: id, bridgeIssuer: publicURL + "/oauth/" + id, cimd: startCIMDHost(t)}
	bs.idp = startIdP(t, px.resource(), bs.bridgeIssuer+"/callback")

	dir := t.TempDir()
	rego, err := os.ReadFile(filepath.Join(repoRoot(t), "deploy", "policies", "authz.rego"))
	if err != nil {
		t.Fatal(err)
	}
	policyDir := filepath.Join(dir, "policy")
	if err := os.MkdirAll(policyDir, 0o755); err != nil {
		t.Fatal(err)
	}
	key := make([]byte, 32)
	rand.Read(key)
	for file, body := range map[string]string{
		filepath.Join(policyDir, "authz.rego"): string(rego),
		filepath.Join(policyDir, "data.yaml"):  policyData([]string{bridgeClientID}, true),
		filepath.Join(dir, "key0"):             base64.StdEncoding.EncodeToString(key),
	} {
		if err := os.WriteFile(file, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	resYAML := fmt.Sprintf("  - {url: %q, scopes_supported: [tools:read, tools:call]", px.resource())
	if bs.idp.audience != px.resource() {
		resYAML += fmt.Sprintf(", audiences: [%q]", bs.idp.audience)
	}
	yaml := fmt.Sprintf(`public_url: %s
resources:
%s}
issuers:
%sbridge:
  sealing_keys: [%q]
  redirect_uris: [https://claude.ai/api/mcp/auth_callback]
  allow_loopback_redirects: true
  cimd: {allow_private_networks: true, allow_http_loopback: true}
leeway: 1s
policy: {paths: [%q]}
`, publicURL, resYAML, bs.idp.yaml, filepath.Join(dir, "key0"), policyDir)
	mcpSrv, upstream := startMCPServer(t)
	bs.mcp = mcpSrv
	bs.az = startAuthz(t, yaml, listen(t), hl, service.WithBridgeOptions(bridge.WithCIMDRootCAs(bs.cimd.roots)))
	startStandin(t, pl, bs.az, upstream, nil)
	return bs
}

// TestBridge: three real MCP clients log in through mcp-authz's OAuth bridge in Chromium (the bridge's
// consent page, then the IdP's login page) at an IdP that registers no clients, and call a tool through
// the Envoy stand-in with the IdP's own access token; consent is asked once per browser and client; the
// bridge logs its decisions and no token or code. At Hydra, whose login UI is on another origin (as
// federated logins at Okta or Entra ID and brokering at Keycloak are), the consent form must let the
// IdP's redirects through. The hostile cases, which end at the bridge before any IdP, run at one IdP:
// consent approved in one browser is asked again in another, and refusing it gives the client
// access_denied; a redirect URI off the allow-list or not registered gets an error page and no redirect.
func TestBridge(t *testing.T) {
	for _, tc := range []struct {
		name, id string
		idp      bridgeIdP
		// hostile runs the hostile cases; refresh has the TypeScript SDK client refresh its token; tsDCR
		// runs it once more without a metadata document (it registers by DCR).
		hostile, refresh, tsDCR bool
	}{
		{"hydra", "hydra", hydraBridge, true, true, false},
		{"oidc-provider enterprise", "corp", enterpriseBridge, false, true, true},
	} {
		// One after the other: OPA's compiler writes terms it shares between compilations, so two
		// mcp-authz instances of one process must not compile their policies at once (one instance
		// compiles its generations one at a time).
		t.Run(tc.name, func(t *testing.T) {
			bs := startBridgeStack(t, tc.id, tc.idp)
			// alice's browser serves the two SDK clients: consent is per browser and client.
			alice := newChromiumUser(t, "alice")
			var codes []string
			t.Run("metadata", func(t *testing.T) { bridgeMetadata(t, bs) })
			t.Run("Go SDK client, CIMD", func(t *testing.T) { codes = append(codes, goSDKThroughBridge(t, bs, alice)...) })
			t.Run("mcp-remote, DCR", func(t *testing.T) { codes = append(codes, mcpRemoteThroughBridge(t, bs)...) })
			t.Run("TypeScript SDK client, CIMD", func(t *testing.T) { codes = append(codes, tsSDKThroughBridge(t, bs, alice, true, tc.refresh)...) })
			if tc.tsDCR {
				t.Run("TypeScript SDK client, DCR", func(t *testing.T) {
					codes = append(codes, tsSDKThroughBridge(t, bs, newChromiumUser(t, "bob"), false, false)...)
				})
			}
			if tc.hostile {
				t.Run("consent refused", func(t *testing.T) { codes = append(codes, consentRefused(t, bs)...) })
				t.Run("redirect URI not allowed", func(t *testing.T) { redirectNotAllowed(t, bs) })
			}
			t.Run("decision log", func(t *testing.T) { bridgeLog(t, bs, codes, tc.hostile, tc.refresh) })
		})
	}
}

// bridgeMetadata: the PRM names the bridge as the authorization server, whose RFC 8414 metadata
// advertises S256, registration and CIMD.
func bridgeMetadata(t *testing.T, bs *bridgeStack) {
	prm := discoveryAt(t, bs.px.metadataURL())
	if as, _ := prm["authorization_servers"].([]any); len(as) != 1 || as[0] != bs.bridgeIssuer {
		t.Errorf("PRM authorization_servers = %v, want [%s]", prm["authorization_servers"], bs.bridgeIssuer)
	}
	u, _ := url.Parse(bs.bridgeIssuer)
	meta := discoveryAt(t, u.Scheme+"://"+u.Host+"/.well-known/oauth-authorization-server"+u.Path)
	if meta["issuer"] != bs.bridgeIssuer {
		t.Errorf("issuer = %v, want %s", meta["issuer"], bs.bridgeIssuer)
	}
	if m, _ := meta["code_challenge_methods_supported"].([]any); !slices.Contains(m, any("S256")) {
		t.Errorf("code_challenge_methods_supported = %v", meta["code_challenge_methods_supported"])
	}
	if meta["client_id_metadata_document_supported"] != true || meta["registration_endpoint"] != bs.bridgeIssuer+"/register" {
		t.Errorf("registration: cimd %v, endpoint %v", meta["client_id_metadata_document_supported"], meta["registration_endpoint"])
	}
}

// checkRecords: every request the MCP server saw since before carried the IdP's identity of user through
// the bridge's client, and no Authorization header.
func checkRecords(t *testing.T, bs *bridgeStack, before int, user string) {
	t.Helper()
	recs := bs.mcp.Records()[before:]
	if len(recs) == 0 {
		t.Fatal("the MCP server saw nothing")
	}
	for _, rec := range recs {
		if rec.Header.Get("Authorization") != "" {
			t.Errorf("%s %s reached the MCP server with an Authorization header", rec.Method, rec.Path)
		}
		want := map[string]string{"X-Mcp-Subject": user, "X-Mcp-Client-Id": bridgeClientID, "X-Mcp-Issuer": bs.idp.issuer}
		for k, v := range want {
			if got := rec.Header.Get(k); got != v {
				t.Errorf("%s %s: %s = %q, want %q", rec.Method, rec.Path, k, got, v)
			}
		}
	}
}

// checkToken: the access token is the IdP's, for the resource's audience, of the bridge's client.
func checkToken(t *testing.T, bs *bridgeStack, claims map[string]any) {
	t.Helper()
	if claims["iss"] != bs.idp.issuer || !audContains(claims["aud"], bs.idp.audience) || claims["client_id"] != bridgeClientID {
		t.Errorf("access token claims iss=%v aud=%v client_id=%v, want iss %s, aud %s, client_id %s",
			claims["iss"], claims["aud"], claims["client_id"], bs.idp.issuer, bs.idp.audience, bridgeClientID)
	}
}

// checkConsentPage: the bridge's consent page tells the user who asks (the client's name), where the answer
// goes (the redirect URI's host), for which MCP server and which scopes; its accessibility tree has a
// heading and two named buttons, and the document says its language.
func checkConsentPage(t *testing.T, p browserPage, name, redirectHost, resource string) {
	t.Helper()
	for _, want := range []string{name, redirectHost, resource, "tools:read", "tools:call"} {
		if !strings.Contains(p.Text, want) {
			t.Errorf("consent page does not show %q:\n%s", want, p.Text)
		}
	}
	for _, want := range []string{"- heading ", `- button "Allow"`, `- button "Deny"`} {
		if !strings.Contains(p.Aria, want) {
			t.Errorf("consent page's accessibility tree lacks %s:\n%s", want, p.Aria)
		}
	}
	if p.Lang == "" {
		t.Error("consent page has no lang")
	}
}

// checkIdPRequest: the bridge sent the browser to the IdP with its own client, its callback, PKCE S256
// (whether or not the IdP advertises it), the MCP scopes plus its extra ones, and the IdP's adaptation of
// RFC 8707: audience= (Hydra), resource dropped (the enterprise IdP), or passed.
func checkIdPRequest(t *testing.T, bs *bridgeStack, rep browserReport) {
	t.Helper()
	idp, _ := url.Parse(bs.idp.issuer)
	var p map[string]string
	for _, n := range rep.Navigations {
		if n.Host == idp.Host && n.Params["response_type"] == "code" {
			p = n.Params
			break
		}
	}
	if p == nil {
		t.Fatalf("no authorization request to the IdP among %v", rep.Navigations)
	}
	scopes := strings.Fields(p["scope"])
	if p["client_id"] != bridgeClientID || p["redirect_uri"] != bs.bridgeIssuer+"/callback" || p["code_challenge_method"] != "S256" ||
		p["code_challenge"] == "" || p["state"] == "" || !slices.Contains(scopes, "openid") || !slices.Contains(scopes, "tools:read") || !slices.Contains(scopes, "tools:call") {
		t.Errorf("authorization request to the IdP: %v", p)
	}
	if got, ok := p["audience"]; got != bs.idp.audienceParam || ok != (bs.idp.audienceParam != "") {
		t.Errorf("audience= %q (sent: %v), want %q", got, ok, bs.idp.audienceParam)
	}
	if _, ok := p["resource"]; ok != bs.idp.resourceParam {
		t.Errorf("resource= sent: %v, want %v", ok, bs.idp.resourceParam)
	}
	for k, v := range bs.idp.params {
		if p[k] != v {
			t.Errorf("%s= %q, want %q", k, p[k], v)
		}
	}
}

// pageKinds lists the kinds of pages of a flow.
func pageKinds(rep browserReport) []string {
	var out []string
	for _, p := range rep.Pages {
		out = append(out, p.Kind)
	}
	return out
}

// goSDKThroughBridge: the MCP Go SDK client (CIMD) logs in, lists and calls; a second instance of the
// same client in the same browser is not asked for consent again.
func goSDKThroughBridge(t *testing.T, bs *bridgeStack, browser *chromiumUser) []string {
	ctx := scenarioCtx(t)
	first := len(browser.Reports())
	redirect := "http://127.0.0.1:8976/callback"
	id := bs.cimd.add("/clients/go-sdk.json", "e2e Go SDK client", redirect)
	before := len(bs.mcp.Records())
	c := newBridgeGoClient(t, browser, id, redirect, "approve")
	s, err := c.connect(ctx, bs.px.resource())
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	defer s.Close()
	if out, err := callTool(ctx, s, "echo", map[string]any{"message": "bridged Go"}); err != nil || out != `{"message":"bridged Go"}` {
		t.Errorf("echo = %s, %v", out, err)
	}
	checkRecords(t, bs, before, "alice")
	if toks := c.tokens.All(); len(toks) > 0 {
		checkToken(t, bs, jwtClaims(t, toks[0].AccessToken))
	}
	reps := browser.Reports()[first:]
	if len(reps) != 1 || !reps[0].shown("consent") || !reps[0].shown("login") || reps[0].Error != "" {
		t.Fatalf("%d flows (want 1); the first: pages %v (want the bridge's consent then the IdP's login), error %q",
			len(reps), pageKinds(reps[0]), reps[0].Error)
	}
	consent, _ := reps[0].page("consent")
	checkConsentPage(t, consent, "e2e Go SDK client", "127.0.0.1:8976", bs.px.resource())
	checkIdPRequest(t, bs, reps[0])
	if rs := c.Responses(); len(rs) != 1 || rs[0].Get("iss") != bs.bridgeIssuer {
		t.Errorf("authorization response iss = %q, want the bridge's %s", rs[0].Get("iss"), bs.bridgeIssuer)
	}
	if bs.cimd.Hits("/clients/go-sdk.json") == 0 {
		t.Errorf("the bridge never fetched the client's metadata document")
	}

	again := newBridgeGoClient(t, browser, id, redirect, "deny") // would refuse, if asked
	s2, err := again.connect(ctx, bs.px.resource())
	if err != nil {
		t.Fatalf("second client instance: connect: %v", err)
	}
	defer s2.Close()
	if _, err := callTool(ctx, s2, "echo", map[string]any{"message": "again"}); err != nil {
		t.Errorf("second client instance: echo: %v", err)
	}
	reps = browser.Reports()[first:]
	if len(reps) != 2 || reps[1].shown("consent") {
		t.Errorf("%d flows, last pages %v, want a second flow without consent (approved in this browser)",
			len(reps), pageKinds(reps[len(reps)-1]))
	}
	var codes []string
	for _, r := range reps {
		codes = append(codes, r.secrets()...)
	}
	return codes
}

// mcpRemoteThroughBridge: mcp-remote without --static-oauth-client-info registers at the bridge by DCR,
// its browser answers consent and logs in as bob, then it lists and calls.
func mcpRemoteThroughBridge(t *testing.T, bs *bridgeStack) []string {
	browser := newChromiumUser(t, "bob")
	callbackPort := freePort(t)
	results := filepath.Join(t.TempDir(), "browser.jsonl")
	env := append(browser.env(fmt.Sprintf("http://127.0.0.1:%d/oauth/callback", callbackPort), "approve"), "E2E_DELIVER=1", "E2E_RESULT="+results)
	m := startMCPRemoteWith(t, bs.px.resource(), callbackPort, remoteOptions{browser: "bridge-browser.mjs", env: env})
	before := len(bs.mcp.Records())
	res, err := m.request("initialize", map[string]any{
		"protocolVersion": "2025-06-18", "capabilities": map[string]any{},
		"clientInfo": map[string]any{"name": "e2e-over-mcp-remote", "version": "1"},
	}, 90*time.Second)
	if err != nil {
		t.Fatalf("initialize: %v", err)
	}
	if !strings.Contains(string(res), "mcp-example-server") {
		t.Errorf("initialize result %s", res)
	}
	m.notify("notifications/initialized")
	res, err = m.request("tools/call", map[string]any{"name": "echo", "arguments": map[string]any{"message": "bridged mcp-remote"}}, 20*time.Second)
	if err != nil || !strings.Contains(string(res), "bridged mcp-remote") {
		t.Fatalf("tools/call echo: %s %v", res, err)
	}
	checkRecords(t, bs, before, "bob")
	reps := browser.waitReports(t, results, 1, 30*time.Second)
	if len(reps) != 1 || !reps[0].shown("consent") || !reps[0].shown("login") {
		t.Fatalf("browser flows %d, pages %v: want one flow with consent and login", len(reps), reps)
	}
	// The name mcp-remote registers with (DCR's client_name).
	consent, _ := reps[0].page("consent")
	checkConsentPage(t, consent, "MCP CLI Proxy", fmt.Sprintf("127.0.0.1:%d", callbackPort), bs.px.resource())
	// The client id the bridge issued (a sealed blob) is named in the log by the client's name and a short
	// hash, never in full.
	logs := bs.az.logs.String()
	for _, id := range reps[0].ClientIDs {
		if id != bridgeClientID && strings.Contains(logs, id) {
			t.Errorf("mcp-authz logged the DCR client id %.12s... in full", id)
		}
	}
	if !strings.Contains(logs, `"event":"register","outcome":"allow"`) || !strings.Contains(logs, `"client":"MCP CLI Proxy`) {
		t.Errorf("no register decision naming the client MCP CLI Proxy in the log")
	}
	var codes []string
	for _, r := range reps {
		codes = append(codes, r.secrets()...)
	}
	return codes
}

// tsSDKThroughBridge: the MCP TypeScript SDK client, in the browser where the Go SDK client was approved:
// this other client gets the consent page. With cimd it has a Client ID Metadata Document (which the SDK
// prefers when the server supports it), else it registers by DCR. With refresh, it then refreshes its
// access token through the bridge, without the browser, and the IdP's new token works.
func tsSDKThroughBridge(t *testing.T, bs *bridgeStack, browser *chromiumUser, cimd, refresh bool) []string {
	if _, err := os.Stat(filepath.Join(browser.dir, "node_modules", "@modelcontextprotocol", "sdk", "package.json")); err != nil {
		missing(t, "the MCP TypeScript SDK is not installed: run `npm ci` in test/e2e/node")
	}
	redirect, id, registration := "http://127.0.0.1:8980/callback", "", "dcr"
	if cimd {
		redirect, registration = "http://127.0.0.1:8977/callback", "cimd"
		id = bs.cimd.add("/clients/ts-sdk.json", "e2e TypeScript SDK client", redirect)
	}
	before := len(bs.mcp.Records())
	res := runSDKClient(t, browser, bs.px.resource(), redirect, id, "bridged TypeScript", refresh)
	if !res.OK {
		t.Fatalf("TypeScript SDK client: %s", res.Error)
	}
	if !strings.Contains(string(res.Result), "bridged TypeScript") || !slices.Contains(res.Tools, "echo") {
		t.Errorf("tools %v, echo result %s", res.Tools, res.Result)
	}
	if res.Registration != registration {
		t.Errorf("registration %q, want %s", res.Registration, registration)
	}
	checkToken(t, bs, res.Claims)
	if res.Flows != 1 {
		t.Errorf("%d authorizations in the browser, want 1", res.Flows)
	}
	if refresh {
		if !res.Refreshed {
			t.Errorf("the client did not refresh its token")
		}
		checkToken(t, bs, res.RefreshedClaims)
		if res.RefreshedClaims["jti"] == res.Claims["jti"] {
			t.Errorf("the refreshed token is the first one (jti %v)", res.Claims["jti"])
		}
	}
	checkRecords(t, bs, before, browser.user)
	if len(res.Browser) != 1 || !res.Browser[0].shown("consent") {
		t.Fatalf("browser flows %v: want one with the consent page (another client)", res.Browser)
	}
	consent, _ := res.Browser[0].page("consent")
	checkConsentPage(t, consent, "e2e TypeScript SDK client", strings.TrimSuffix(strings.TrimPrefix(redirect, "http://"), "/callback"), bs.px.resource())
	var codes []string
	for _, r := range res.Browser {
		codes = append(codes, r.secrets()...)
	}
	return codes
}

// consentRefused: the Go SDK client, approved in alice's browser, comes to another browser: consent is
// asked again (it is remembered per browser), the user denies, and the client gets access_denied with its
// state and the bridge's iss; the IdP is never visited, the MCP server sees nothing.
func consentRefused(t *testing.T, bs *bridgeStack) []string {
	ctx := scenarioCtx(t)
	browser := newChromiumUser(t, "alice")
	redirect := "http://127.0.0.1:8976/callback"
	id := bs.cimd.add("/clients/go-sdk.json", "e2e Go SDK client", redirect)
	before := len(bs.mcp.Records())
	c := newBridgeGoClient(t, browser, id, redirect, "deny")
	if s, err := c.connect(ctx, bs.px.resource()); err == nil {
		s.Close()
		t.Fatal("connected although the user refused consent")
	}
	// The SDK may try again; every answer must be the refusal.
	rs := c.Responses()
	if len(rs) == 0 {
		t.Fatal("the client got no authorization response")
	}
	for _, r := range rs {
		if r.Get("error") != "access_denied" || r.Get("state") == "" || r.Get("iss") != bs.bridgeIssuer || r.Get("code") != "" {
			t.Errorf("authorization response %v, want error=access_denied with state and iss", r)
		}
	}
	idp, _ := url.Parse(bs.idp.issuer)
	for _, r := range browser.Reports() {
		if !r.shown("consent") {
			t.Errorf("a flow without the consent page: %v", pageKinds(r))
		}
		if slices.Contains(r.Hosts, idp.Host) {
			t.Errorf("the browser went to the IdP (%v) although consent was refused", r.Hosts)
		}
	}
	if n := len(bs.mcp.Records()) - before; n != 0 {
		t.Errorf("the MCP server saw %d requests", n)
	}
	var codes []string
	for _, r := range browser.Reports() {
		codes = append(codes, r.secrets()...)
	}
	return codes
}

// redirectNotAllowed: authorization requests whose redirect URI is not on the allow-list (an https one
// the client's document lists) or not registered by the client (a loopback one) get an error page at the
// bridge: no redirect anywhere, no consent, no IdP.
func redirectNotAllowed(t *testing.T, bs *bridgeStack) {
	ctx := scenarioCtx(t)
	browser := newChromiumUser(t, "alice")
	evil := "https://attacker.example.com/cb"
	evilID := bs.cimd.add("/clients/evil.json", "e2e client with a foreign redirect URI", evil)
	goodID := bs.cimd.add("/clients/good.json", "e2e client", "http://127.0.0.1:8979/callback")
	challenge := "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
	for _, tc := range []struct{ name, clientID, redirect string }{
		{"off the allow-list", evilID, evil},
		{"not registered by the client", goodID, "http://127.0.0.1:1/elsewhere"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			q := url.Values{"response_type": {"code"}, "client_id": {tc.clientID}, "redirect_uri": {tc.redirect},
				"code_challenge": {challenge}, "code_challenge_method": {"S256"}, "state": {"s-123"},
				"scope": {"tools:read"}, "resource": {bs.px.resource()}}
			rep, err := browser.open(ctx, bs.bridgeIssuer+"/authorize?"+q.Encode(), tc.redirect, "approve")
			if err != nil {
				t.Fatalf("browser: %v", err)
			}
			public, _ := url.Parse(bs.bridgeIssuer)
			if rep.Redirect != "" || rep.FinalStatus < 400 || len(rep.Hosts) != 1 || rep.Hosts[0] != public.Host || rep.shown("consent") {
				t.Errorf("redirect %q, final %d at %s, hosts %v, pages %v: want an error page at the bridge only",
					rep.Redirect, rep.FinalStatus, rep.FinalURL, rep.Hosts, pageKinds(rep))
			}
			if !strings.Contains(strings.ToLower(rep.FinalText), "redirect") {
				t.Errorf("error page does not say what is wrong: %.300s", rep.FinalText)
			}
		})
	}
}

// bridgeLog: the bridge logged its decisions (one line each, with event and outcome), and mcp-authz's log
// holds no JWT and none of the codes the browsers carried.
func bridgeLog(t *testing.T, bs *bridgeStack, codes []string, hostile, refresh bool) {
	logs := bs.az.logs.String()
	events := map[string]map[string]int{}
	for _, line := range strings.Split(logs, "\n") {
		var rec map[string]any
		if json.Unmarshal([]byte(line), &rec) != nil || rec["msg"] != "bridge decision" {
			continue
		}
		ev, _ := rec["event"].(string)
		out, _ := rec["outcome"].(string)
		if events[ev] == nil {
			events[ev] = map[string]int{}
		}
		events[ev][out]++
		if rec["bridge"] != bs.id {
			t.Errorf("decision without the bridge id: %s", line)
		}
	}
	want := []struct{ event, outcome string }{{"register", "allow"}, {"authorize", "allow"}, {"consent", "allow"}, {"callback", "allow"}, {"token", "allow"}}
	if hostile {
		want = append(want, []struct{ event, outcome string }{{"consent", "deny"}, {"authorize", "deny"}}...)
	}
	if refresh {
		want = append(want, struct{ event, outcome string }{"refresh", "allow"})
	}
	for _, want := range want {
		if events[want.event][want.outcome] == 0 {
			t.Errorf("no %s/%s decision in the log (decisions: %v)", want.event, want.outcome, events)
		}
	}
	if len(codes) < 4 {
		t.Errorf("the browsers saw only %d codes", len(codes))
	}
	scanLog(t, logs, codes)
}
