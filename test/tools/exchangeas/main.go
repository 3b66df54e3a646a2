// Command exchangeas is the authorization server of the token exchange tests: a small in-memory storage on
// the OpenID provider of github.com/zitadel/oidc/v3 (pkg/op, OpenID Certified), which implements the
// protocol of RFC 8693 token exchange (parsing, client authentication, subject and actor token
// verification, the response), client_credentials, private_key_jwt client authentication, discovery and
// the JWKS. This program only says which client may do what: its storage is the policy, the library is
// the protocol.
//
// Why this one: Dex, the usual answer, is not available as a Go module at a usable version (the module
// proxy serves only a 2018 release; later ones lack the /v2 module path); Ory Hydra v2.3, already built for
// the suite, does not implement RFC 8693; node-oidc-provider has no built-in token exchange. ZITADEL's
// library builds from the module proxy in seconds, and its example server needs a login UI and issues
// opaque tokens, so this storage issues JWT access tokens to clients configured in a file instead.
//
// Usage:
//
//	exchangeas -listen 127.0.0.1:9096 -issuer http://127.0.0.1:9096 -clients clients.json
//
// clients.json: {"access_token_lifetime": "5m", "clients": [{"id": ..., "secret": ... | "public_key_pem":
// ..., "key_id": ..., "subject": ..., "audience": [...], "scope": ..., "claims": {...},
// "exchange_audiences": [...]}]}. A client with a secret or a public key may use client_credentials; its
// tokens have sub `subject` (default its id), aud `audience`, `scope`, and `claims`. A client with
// exchange_audiences may exchange tokens for those audiences only (else invalid_target); with an
// actor_token, the issued token has `act: {sub: <actor token's sub>}`.
//
// GET /stats answers {"exchanges": <issued>, "refused": <refused by this storage>}.
package main

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:9096", "address to listen on")
	issuer := flag.String("issuer", "", "issuer URL (default http://<listen>)")
	clients := flag.String("clients", "", "clients file (JSON)")
	flag.Parse()
	if *issuer == "" {
		*issuer = "http://" + *listen
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, *listen, *issuer, *clients); err != nil {
		fmt.Fprintln(os.Stderr, "exchangeas:", err)
		os.Exit(1)
	}
}

type fileConfig struct {
	AccessTokenLifetime string        `json:"access_token_lifetime"`
	Clients             []*clientSpec `json:"clients"`
}

func run(ctx context.Context, listen, issuer, clientsFile string) error {
	b, err := os.ReadFile(clientsFile)
	if err != nil {
		return err
	}
	var fc fileConfig
	if err := json.Unmarshal(b, &fc); err != nil {
		return fmt.Errorf("%s: %w", clientsFile, err)
	}
	lifetime := 5 * time.Minute
	if fc.AccessTokenLifetime != "" {
		if lifetime, err = time.ParseDuration(fc.AccessTokenLifetime); err != nil {
			return fmt.Errorf("access_token_lifetime: %w", err)
		}
	}
	st, err := newStorage(fc.Clients, lifetime)
	if err != nil {
		return err
	}
	key := sha256.Sum256([]byte("exchangeas: opaque-token key, test only"))
	provider, err := op.NewProvider(&op.Config{
		CryptoKey:                key,
		CodeMethodS256:           true,
		AuthMethodPost:           true,
		AuthMethodPrivateKeyJWT:  true,
		DefaultLogoutRedirectURI: "/",
	}, st, op.StaticIssuer(issuer), op.WithAllowInsecure())
	if err != nil {
		return err
	}
	handler := op.RegisterLegacyServer(op.NewLegacyServer(provider, *op.DefaultEndpoints), http.NotFound)
	mux := http.NewServeMux()
	mux.Handle("/", handler)
	mux.HandleFunc("GET /stats", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]int64{"exchanges": st.exchanges.Load(), "refused": st.refused.Load()})
	})
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	slog.Info("exchangeas listening", "issuer", issuer, "addr", ln.Addr().String())
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return srv.Shutdown(sctx)
}

// clientSpec is one client of the clients file.
type clientSpec struct {
	ID                string         `json:"id"`
	Secret            string         `json:"secret,omitempty"`
	PublicKeyPEM      string         `json:"public_key_pem,omitempty"`
	KeyID             string         `json:"key_id,omitempty"`
	Subject           string         `json:"subject,omitempty"`
	Audience          []string       `json:"audience,omitempty"`
	Scope             string         `json:"scope,omitempty"`
	Claims            map[string]any `json:"claims,omitempty"`
	ExchangeAudiences []string       `json:"exchange_audiences,omitempty"`

	publicKey any
}

// client is a clientSpec as the op package sees it.
type client struct{ *clientSpec }

func (c client) GetID() string                       { return c.ID }
func (c client) RedirectURIs() []string              { return nil }
func (c client) PostLogoutRedirectURIs() []string    { return nil }
func (c client) ApplicationType() op.ApplicationType { return op.ApplicationTypeWeb }
func (c client) AuthMethod() oidc.AuthMethod {
	if c.publicKey != nil {
		return oidc.AuthMethodPrivateKeyJWT
	}
	return oidc.AuthMethodBasic
}
func (c client) ResponseTypes() []oidc.ResponseType { return nil }
func (c client) GrantTypes() []oidc.GrantType {
	return []oidc.GrantType{oidc.GrantTypeClientCredentials, oidc.GrantTypeTokenExchange}
}
func (c client) LoginURL(string) string               { return "" }
func (c client) AccessTokenType() op.AccessTokenType  { return op.AccessTokenTypeJWT }
func (c client) IDTokenLifetime() time.Duration       { return 5 * time.Minute }
func (c client) DevMode() bool                        { return true }
func (c client) IsScopeAllowed(string) bool           { return true }
func (c client) IDTokenUserinfoClaimsAssertion() bool { return false }
func (c client) ClockSkew() time.Duration             { return 0 }
func (c client) RestrictAdditionalIdTokenScopes() func([]string) []string {
	return func(s []string) []string { return s }
}
func (c client) RestrictAdditionalAccessTokenScopes() func([]string) []string {
	return func(s []string) []string { return s }
}

// storage is the in-memory op.Storage: clients from the file, one RSA signing key made at start, no users,
// no sessions, no refresh tokens. Access tokens are JWTs and are not stored.
type storage struct {
	clients  map[string]*clientSpec
	key      *rsa.PrivateKey
	keyID    string
	lifetime time.Duration

	exchanges atomic.Int64
	refused   atomic.Int64
}

var (
	_ op.Storage                  = (*storage)(nil)
	_ op.ClientCredentialsStorage = (*storage)(nil)
	_ op.TokenExchangeStorage     = (*storage)(nil)
)

func newStorage(specs []*clientSpec, lifetime time.Duration) (*storage, error) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, err
	}
	s := &storage{clients: map[string]*clientSpec{}, key: key, keyID: "exchangeas-1", lifetime: lifetime}
	for _, c := range specs {
		if c.ID == "" {
			return nil, errors.New("a client without id")
		}
		if c.PublicKeyPEM != "" {
			blk, _ := pem.Decode([]byte(c.PublicKeyPEM))
			if blk == nil {
				return nil, fmt.Errorf("client %s: public_key_pem is not PEM", c.ID)
			}
			if c.publicKey, err = x509.ParsePKIXPublicKey(blk.Bytes); err != nil {
				return nil, fmt.Errorf("client %s: %w", c.ID, err)
			}
		}
		s.clients[c.ID] = c
	}
	return s, nil
}

var errUnsupported = errors.New("not supported by this test authorization server")

func (s *storage) CreateAuthRequest(context.Context, *oidc.AuthRequest, string) (op.AuthRequest, error) {
	return nil, errUnsupported
}
func (s *storage) AuthRequestByID(context.Context, string) (op.AuthRequest, error) {
	return nil, errUnsupported
}
func (s *storage) AuthRequestByCode(context.Context, string) (op.AuthRequest, error) {
	return nil, errUnsupported
}
func (s *storage) SaveAuthCode(context.Context, string, string) error { return errUnsupported }
func (s *storage) DeleteAuthRequest(context.Context, string) error    { return nil }

func (s *storage) CreateAccessToken(context.Context, op.TokenRequest) (string, time.Time, error) {
	id := make([]byte, 12)
	rand.Read(id)
	return fmt.Sprintf("%x", id), time.Now().Add(s.lifetime), nil
}

func (s *storage) CreateAccessAndRefreshTokens(context.Context, op.TokenRequest, string) (string, string, time.Time, error) {
	return "", "", time.Time{}, errUnsupported
}
func (s *storage) TokenRequestByRefreshToken(context.Context, string) (op.RefreshTokenRequest, error) {
	return nil, op.ErrInvalidRefreshToken
}
func (s *storage) TerminateSession(context.Context, string, string) error          { return nil }
func (s *storage) RevokeToken(context.Context, string, string, string) *oidc.Error { return nil }
func (s *storage) GetRefreshTokenInfo(context.Context, string, string) (string, string, error) {
	return "", "", op.ErrInvalidRefreshToken
}

type signingKey struct {
	id  string
	key *rsa.PrivateKey
}

func (k signingKey) SignatureAlgorithm() jose.SignatureAlgorithm { return jose.RS256 }
func (k signingKey) Key() any                                    { return k.key }
func (k signingKey) ID() string                                  { return k.id }

type publicKey struct{ signingKey }

func (k publicKey) Algorithm() jose.SignatureAlgorithm { return jose.RS256 }
func (k publicKey) Use() string                        { return "sig" }
func (k publicKey) Key() any                           { return &k.key.PublicKey }

func (s *storage) SigningKey(context.Context) (op.SigningKey, error) {
	return signingKey{s.keyID, s.key}, nil
}
func (s *storage) SignatureAlgorithms(context.Context) ([]jose.SignatureAlgorithm, error) {
	return []jose.SignatureAlgorithm{jose.RS256}, nil
}
func (s *storage) KeySet(context.Context) ([]op.Key, error) {
	return []op.Key{publicKey{signingKey{s.keyID, s.key}}}, nil
}

func (s *storage) GetClientByClientID(_ context.Context, id string) (op.Client, error) {
	c, ok := s.clients[id]
	if !ok {
		return nil, errors.New("unknown client")
	}
	return client{c}, nil
}

func (s *storage) AuthorizeClientIDSecret(_ context.Context, id, secret string) error {
	c, ok := s.clients[id]
	if !ok || c.Secret == "" || c.Secret != secret {
		return errors.New("invalid client credentials")
	}
	return nil
}

func (s *storage) SetUserinfoFromScopes(context.Context, *oidc.UserInfo, string, string, []string) error {
	return nil
}
func (s *storage) SetUserinfoFromToken(context.Context, *oidc.UserInfo, string, string, string) error {
	return nil
}
func (s *storage) SetIntrospectionFromToken(context.Context, *oidc.IntrospectionResponse, string, string, string) error {
	return nil
}

// GetPrivateClaimsFromScopes adds, to a client_credentials token, its scope and the client's claims.
func (s *storage) GetPrivateClaimsFromScopes(_ context.Context, _, clientID string, scopes []string) (map[string]any, error) {
	claims := map[string]any{}
	if c, ok := s.clients[clientID]; ok {
		for k, v := range c.Claims {
			claims[k] = v
		}
	}
	if len(scopes) > 0 {
		claims["scope"] = strings.Join(scopes, " ")
	}
	return claims, nil
}

func (s *storage) GetKeyByIDAndClientID(_ context.Context, keyID, clientID string) (*jose.JSONWebKey, error) {
	c, ok := s.clients[clientID]
	if !ok || c.publicKey == nil || (c.KeyID != "" && keyID != c.KeyID) {
		return nil, errors.New("no such key")
	}
	return &jose.JSONWebKey{KeyID: keyID, Key: c.publicKey, Use: "sig"}, nil
}

func (s *storage) ValidateJWTProfileScopes(_ context.Context, _ string, scopes []string) ([]string, error) {
	return scopes, nil
}

func (s *storage) Health(context.Context) error { return nil }

// ClientCredentials authenticates a client_credentials request (secret only).
func (s *storage) ClientCredentials(ctx context.Context, id, secret string) (op.Client, error) {
	if err := s.AuthorizeClientIDSecret(ctx, id, secret); err != nil {
		return nil, err
	}
	return client{s.clients[id]}, nil
}

// ccRequest is a client_credentials token request: the client's configured subject and audience.
type ccRequest struct {
	subject  string
	audience []string
	scopes   []string
}

func (r *ccRequest) GetSubject() string    { return r.subject }
func (r *ccRequest) GetAudience() []string { return r.audience }
func (r *ccRequest) GetScopes() []string   { return r.scopes }

func (s *storage) ClientCredentialsTokenRequest(_ context.Context, id string, scopes []string) (op.TokenRequest, error) {
	c := s.clients[id]
	if len(scopes) == 0 && c.Scope != "" {
		scopes = strings.Fields(c.Scope)
	}
	sub := c.Subject
	if sub == "" {
		sub = c.ID
	}
	return &ccRequest{subject: sub, audience: c.Audience, scopes: scopes}, nil
}

// ValidateTokenExchangeRequest is the exchange policy: the client must be allowed every audience it asks
// for, and asks for at least one; only access tokens are issued.
func (s *storage) ValidateTokenExchangeRequest(_ context.Context, r op.TokenExchangeRequest) error {
	c := s.clients[r.GetClientID()]
	if r.GetRequestedTokenType() == "" {
		r.SetRequestedTokenType(oidc.AccessTokenType)
	}
	if r.GetRequestedTokenType() != oidc.AccessTokenType {
		s.refused.Add(1)
		return oidc.ErrInvalidRequest().WithDescription("only access tokens are issued")
	}
	auds := r.GetAudience()
	if c == nil || len(auds) == 0 {
		s.refused.Add(1)
		return oidc.ErrInvalidTarget().WithDescription("an audience is required")
	}
	for _, a := range auds {
		if !slices.Contains(c.ExchangeAudiences, a) {
			s.refused.Add(1)
			return oidc.ErrInvalidTarget().WithDescription("client %s may not exchange tokens for audience %s", c.ID, a)
		}
	}
	r.SetCurrentScopes(r.GetScopes())
	return nil
}

func (s *storage) CreateTokenExchangeRequest(context.Context, op.TokenExchangeRequest) error {
	s.exchanges.Add(1)
	return nil
}

// GetPrivateClaimsFromTokenExchangeRequest gives the issued token its scope and, for a delegation, the
// actor (RFC 8693 section 4.1).
func (s *storage) GetPrivateClaimsFromTokenExchangeRequest(_ context.Context, r op.TokenExchangeRequest) (map[string]any, error) {
	claims := map[string]any{}
	if sc := r.GetScopes(); len(sc) > 0 {
		claims["scope"] = strings.Join(sc, " ")
	}
	if actor := r.GetExchangeActor(); actor != "" {
		claims["act"] = map[string]any{"sub": actor}
	}
	return claims, nil
}

func (s *storage) SetUserinfoFromTokenExchangeRequest(context.Context, *oidc.UserInfo, op.TokenExchangeRequest) error {
	return nil
}
