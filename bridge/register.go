package bridge

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"slices"
	"strings"
	"time"
	"unicode"
)

// client is an MCP client as the bridge knows it: from its metadata document (CIMD) or from the sealed
// metadata that is its DCR client id.
type client struct {
	id           string
	name         string
	redirectURIs []string
	cimd         bool
}

// label names the client in the log and on the consent page: its URL for a CIMD client, its name and a short
// hash of its id for a DCR one (the id itself is long and opaque).
func (c *client) label() string {
	if c.cimd {
		return c.id
	}
	return c.name + " (" + digest(c.id)[:12] + ")"
}

// dcrClient is what a DCR client id seals: the metadata the bridge validated.
type dcrClient struct {
	Bridge       string   `json:"b"`
	Name         string   `json:"n,omitempty"`
	RedirectURIs []string `json:"r"`
	IssuedAt     int64    `json:"t"`
}

// resolveClient finds the client a client_id names: a metadata document to fetch, or a DCR client id to open.
func (b *Bridge) resolveClient(ctx context.Context, is *issuer, id string) (*client, error) {
	if id == "" {
		return nil, errors.New("client_id is missing")
	}
	if isCIMDClientID(id) {
		return b.cimd.get(ctx, id)
	}
	var d dcrClient
	if err := b.sealer.Open(PurposeClient, id, &d); err != nil {
		return nil, fmt.Errorf("client_id is neither a metadata document URL nor one this bridge registered: %w", err)
	}
	if d.Bridge != is.id {
		return nil, fmt.Errorf("client_id was registered at another bridge (%s)", shorten(d.Bridge))
	}
	return &client{id: id, name: d.Name, redirectURIs: d.RedirectURIs}, nil
}

// registration is an RFC 7591 client registration request: the fields the bridge reads.
type registration struct {
	RedirectURIs            []string `json:"redirect_uris"`
	ClientName              string   `json:"client_name,omitempty"`
	TokenEndpointAuthMethod string   `json:"token_endpoint_auth_method,omitempty"`
	GrantTypes              []string `json:"grant_types,omitempty"`
	ResponseTypes           []string `json:"response_types,omitempty"`
	ClientURI               string   `json:"client_uri,omitempty"`
	Scope                   string   `json:"scope,omitempty"`
}

// registered is the RFC 7591 section 3.2.1 answer.
type registered struct {
	ClientID                string   `json:"client_id"`
	ClientIDIssuedAt        int64    `json:"client_id_issued_at"`
	ClientName              string   `json:"client_name,omitempty"`
	RedirectURIs            []string `json:"redirect_uris"`
	GrantTypes              []string `json:"grant_types"`
	ResponseTypes           []string `json:"response_types"`
	TokenEndpointAuthMethod string   `json:"token_endpoint_auth_method"`
	Scope                   string   `json:"scope,omitempty"`
}

const maxRegistrationBytes = 16 << 10

// register is the RFC 7591 registration endpoint. The client id it returns is the validated metadata sealed,
// so that any replica reads it back; nothing is stored. Only public clients (token_endpoint_auth_method none)
// using authorization_code and refresh_token, with redirect URIs on the allow-list, are registered.
func (b *Bridge) register(is *issuer, w http.ResponseWriter, r *http.Request) {
	d := decision{event: "register", outcome: "deny"}
	fail := func(code, desc string) {
		d.reason = desc
		b.logDecision(r.Context(), is, d)
		writeError(w, newError(http.StatusBadRequest, code, desc))
	}
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		fail("invalid_client_metadata", "the registration request must be application/json")
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxRegistrationBytes))
	if err != nil {
		fail("invalid_client_metadata", fmt.Sprintf("the registration request is unreadable or larger than %d bytes", maxRegistrationBytes))
		return
	}
	var req registration
	if err := json.Unmarshal(body, &req); err != nil {
		fail("invalid_client_metadata", "the registration request is not a JSON client metadata object")
		return
	}
	name := cleanName(req.ClientName)
	d.client = name
	if n := len(req.RedirectURIs); n == 0 || n > maxRedirectURIs {
		fail("invalid_redirect_uri", fmt.Sprintf("redirect_uris must list 1 to %d URIs", maxRedirectURIs))
		return
	}
	for _, u := range req.RedirectURIs {
		if err := b.redirects.allows(u); err != nil {
			d.redirect = redirectHost(u)
			fail("invalid_redirect_uri", err.Error())
			return
		}
	}
	d.redirect = redirectHost(req.RedirectURIs[0])
	if m := req.TokenEndpointAuthMethod; m != "" && m != "none" {
		fail("invalid_client_metadata", "token_endpoint_auth_method must be none: the bridge registers public clients only")
		return
	}
	grants := req.GrantTypes
	if len(grants) == 0 {
		grants = []string{"authorization_code"}
	}
	for _, g := range grants {
		if g != "authorization_code" && g != "refresh_token" {
			fail("invalid_client_metadata", "grant_types may list authorization_code and refresh_token only")
			return
		}
	}
	if len(req.ResponseTypes) > 0 && !slices.Equal(req.ResponseTypes, []string{"code"}) {
		fail("invalid_client_metadata", "response_types may list code only")
		return
	}
	now := b.now()
	id, err := b.sealer.Seal(PurposeClient, dcrClient{Bridge: is.id, Name: name, RedirectURIs: req.RedirectURIs, IssuedAt: now.Unix()}, time.Time{})
	if err != nil {
		d.outcome, d.reason = "error", err.Error()
		b.logDecision(r.Context(), is, d)
		writeError(w, newError(http.StatusInternalServerError, "server_error", "the registration could not be sealed"))
		return
	}
	d.outcome, d.client = "allow", (&client{id: id, name: name}).label()
	b.logDecision(r.Context(), is, d)
	writeJSON(w, http.StatusCreated, registered{
		ClientID: id, ClientIDIssuedAt: now.Unix(), ClientName: name, RedirectURIs: req.RedirectURIs,
		GrantTypes: grants, ResponseTypes: []string{"code"}, TokenEndpointAuthMethod: "none", Scope: req.Scope,
	})
}

// cleanName makes a client-chosen name safe to show and log: printable characters only, at most 64 runes.
func cleanName(s string) string {
	var out []rune
	for _, r := range strings.TrimSpace(s) {
		if len(out) == 64 {
			break
		}
		if unicode.IsPrint(r) {
			out = append(out, r)
		}
	}
	return string(out)
}
