package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"html/template"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

// user is a person who can log in at the IdPs of the suite, with the claims the IdP puts in their tokens.
type user struct {
	name   string
	email  string
	groups []string
}

// users of the suite: alice may use admin tools, bob may use the server, mallory lacks the group the
// policy requires (a custom-claim check).
func users() map[string]user {
	return map[string]user{
		"alice":   {"alice", "alice@example.com", []string{"mcp-users", "admins"}},
		"bob":     {"bob", "bob@example.com", []string{"mcp-users"}},
		"mallory": {"mallory", "mallory@example.com", []string{"guests"}},
	}
}

// hydra is a running Ory Hydra with its login/consent app.
type hydra struct {
	issuer   string
	adminURL string
	proc     *process
	// resources are the audiences consent may grant: the MCP resource URLs.
	resources []string
}

// hydraClient is an OAuth client registered at Hydra.
type hydraClient struct {
	ID, Secret string
}

// startHydra runs Hydra (binary from MCP_AUTHZ_HYDRA or bin/hydra) with an in-memory database and a
// login/consent app that shows a login form, then accepts through the admin API. Dynamic client
// registration is off (Hydra's default, stated in the configuration because the bridge scenarios rely on
// it): clients exist only through the admin API, as at an enterprise IdP. The login app has its own
// origin, as Ory's account UI usually has and as federated logins at enterprise IdPs do: the browser
// leaves the IdP's origin during the authorization.
func startHydra(t testing.TB, resources []string) *hydra {
	t.Helper()
	bin := findProgram(t, "Ory Hydra", "build it with `test/tools/build.sh hydra` or set MCP_AUTHZ_HYDRA",
		os.Getenv("MCP_AUTHZ_HYDRA"), filepath.Join(repoRoot(t), "bin", "hydra"))
	pub, admin := freePort(t), freePort(t)
	h := &hydra{issuer: fmt.Sprintf("http://127.0.0.1:%d", pub), adminURL: fmt.Sprintf("http://127.0.0.1:%d", admin), resources: resources}
	appL := listen(t)
	serve(t, appL, h.loginConsentApp(t))
	app := "http://" + appL.Addr().String()
	dir := t.TempDir()
	cfg := fmt.Sprintf(`dsn: memory
serve:
  public: {host: 127.0.0.1, port: %d}
  admin: {host: 127.0.0.1, port: %d}
urls:
  self: {issuer: %q}
  login: %q
  consent: %q
strategies: {access_token: jwt}
oauth2:
  pkce: {enforced_for_public_clients: true}
  allowed_top_level_claims: [groups, email]
  mirror_top_level_claims: false
oidc: {dynamic_client_registration: {enabled: false}}
secrets: {system: [e2e-only-system-secret-0123456789abcdef]}
log: {level: warn, format: text}
`, pub, admin, h.issuer, app+"/login", app+"/consent")
	if err := os.WriteFile(filepath.Join(dir, "hydra.yml"), []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	h.proc = start(t, "hydra", nil, dir, bin, "serve", "all", "--dev", "--sqa-opt-out", "-c", filepath.Join(dir, "hydra.yml"))
	waitHTTP(t, h.issuer+"/.well-known/openid-configuration", 60*time.Second, h.proc)
	waitHTTP(t, h.adminURL+"/health/ready", 30*time.Second, h.proc)
	return h
}

// adminJSON calls Hydra's admin API.
func (h *hydra) adminJSON(method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, h.adminURL+path, body)
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("hydra admin %s %s: %d %s", method, path, resp.StatusCode, b)
	}
	if out != nil {
		return json.Unmarshal(b, out)
	}
	return nil
}

// createClient registers an OAuth client; lifespan, when set, is its access token lifetime.
func (h *hydra) createClient(t testing.TB, spec map[string]any, lifespan time.Duration) hydraClient {
	t.Helper()
	var out struct {
		ClientID     string `json:"client_id"`
		ClientSecret string `json:"client_secret"`
	}
	if err := h.adminJSON("POST", "/admin/clients", spec, &out); err != nil {
		t.Fatal(err)
	}
	if lifespan > 0 {
		ls := lifespan.String()
		if err := h.adminJSON("PUT", "/admin/clients/"+out.ClientID+"/lifespans", map[string]string{
			"authorization_code_grant_access_token_lifespan": ls,
			"refresh_token_grant_access_token_lifespan":      ls,
		}, nil); err != nil {
			t.Fatal(err)
		}
	}
	return hydraClient{ID: out.ClientID, Secret: out.ClientSecret}
}

// loginPage is the login form the browser (or the Go user agent) fills in.
func loginPage() *template.Template {
	return template.Must(template.New("login").Parse(loginHTML))
}

const loginHTML = `<!doctype html>
<html><head><title>Log in</title></head><body>
<h1>Log in to the e2e IdP</h1>
<form method="post" action="/login">
<input type="hidden" name="login_challenge" value="{{.}}">
<label>User name <input id="username" name="username" autocomplete="username"></label>
<button id="login" type="submit">Log in</button>
</form></body></html>`

// loginConsentApp is Hydra's login and consent UI: a login form (users of the suite only), then consent
// accepted at once with the requested scopes, the RFC 8707 resource of the authorization request as the
// access token audience (Hydra itself ignores `resource`), and the user's groups and email as claims.
func (h *hydra) loginConsentApp(t testing.TB) http.Handler {
	mux := http.NewServeMux()
	redirect := func(w http.ResponseWriter, r *http.Request, path string, body any) {
		var out struct {
			RedirectTo string `json:"redirect_to"`
		}
		if err := h.adminJSON("PUT", path, body, &out); err != nil {
			t.Logf("login/consent: %v", err)
			http.Error(w, "IdP admin API failed", http.StatusBadGateway)
			return
		}
		http.Redirect(w, r, out.RedirectTo, http.StatusFound)
	}
	mux.HandleFunc("GET /login", func(w http.ResponseWriter, r *http.Request) {
		challenge := r.URL.Query().Get("login_challenge")
		var lr struct {
			Skip    bool   `json:"skip"`
			Subject string `json:"subject"`
		}
		if err := h.adminJSON("GET", "/admin/oauth2/auth/requests/login?login_challenge="+url.QueryEscape(challenge), nil, &lr); err != nil {
			http.Error(w, "unknown login request", http.StatusBadRequest)
			return
		}
		if lr.Skip { // the user has a session at Hydra already
			redirect(w, r, "/admin/oauth2/auth/requests/login/accept?login_challenge="+url.QueryEscape(challenge), map[string]any{"subject": lr.Subject})
			return
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		loginPage().Execute(w, challenge)
	})
	mux.HandleFunc("POST /login", func(w http.ResponseWriter, r *http.Request) {
		name := r.PostFormValue("username")
		if _, ok := users()[name]; !ok {
			http.Error(w, "unknown user", http.StatusForbidden)
			return
		}
		redirect(w, r, "/admin/oauth2/auth/requests/login/accept?login_challenge="+url.QueryEscape(r.PostFormValue("login_challenge")),
			map[string]any{"subject": name, "remember": true, "remember_for": 0})
	})
	mux.HandleFunc("GET /consent", func(w http.ResponseWriter, r *http.Request) {
		challenge := r.URL.Query().Get("consent_challenge")
		var cr struct {
			Subject        string   `json:"subject"`
			RequestedScope []string `json:"requested_scope"`
			RequestedAud   []string `json:"requested_access_token_audience"`
			RequestURL     string   `json:"request_url"`
		}
		if err := h.adminJSON("GET", "/admin/oauth2/auth/requests/consent?consent_challenge="+url.QueryEscape(challenge), nil, &cr); err != nil {
			http.Error(w, "unknown consent request", http.StatusBadRequest)
			return
		}
		aud := slices.Clone(cr.RequestedAud)
		if u, err := url.Parse(cr.RequestURL); err == nil {
			for _, res := range u.Query()["resource"] {
				if slices.Contains(h.resources, res) && !slices.Contains(aud, res) {
					aud = append(aud, res)
				}
			}
		}
		u := users()[cr.Subject]
		redirect(w, r, "/admin/oauth2/auth/requests/consent/accept?consent_challenge="+url.QueryEscape(challenge), map[string]any{
			"grant_scope":                 cr.RequestedScope,
			"grant_access_token_audience": aud,
			"remember":                    false,
			"session":                     map[string]any{"access_token": map[string]any{"groups": u.groups, "email": u.email}},
		})
	})
	return mux
}
