package exchange

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/mcp-authz/mcp-authz/authz"
	"github.com/mcp-authz/mcp-authz/config"
)

// actor is the actor_token mcp-authz presents for a delegation (RFC 8693 section 1.1): a token that names
// mcp-authz itself, so that the IdP records in the issued token's `act` claim who acts for the user.
type actor struct {
	// id tells actors apart in the cache key.
	id        string
	tokenType string
	file      *fileValue // a token read from a file, or
	cc        *config.ActorClientCredentials
	auth      clientAuth // with cc: the client authentication of the block

	mu     sync.Mutex
	cached issued // the last client_credentials token, while fresh
}

func newActor(a *config.ActorToken, auth clientAuth) (*actor, error) {
	act := &actor{tokenType: a.TokenType, cc: a.ClientCredentials, auth: auth}
	if a.File != "" {
		f, err := newFileValue(a.File)
		if err != nil {
			return nil, fmt.Errorf("file: %w", err)
		}
		act.file, act.cc = f, nil
		act.id = "file:" + a.File
		return act, nil
	}
	act.id = "client_credentials:" + a.ClientCredentials.Audience + "\x00" + a.ClientCredentials.Scope
	return act, nil
}

// token returns the actor token: the file's content, or a client_credentials token from endpoint, obtained
// again once the last one is no longer fresh.
func (a *actor) token(ctx context.Context, client *http.Client, endpoint, issuer string, now time.Time) (string, *authz.Error) {
	if a.file != nil {
		v, err := a.file.get()
		if err != nil {
			return "", errUnavailable("token exchange failed: actor token: " + err.Error())
		}
		return v, nil
	}
	a.mu.Lock()
	defer a.mu.Unlock() // one client_credentials request at a time; others wait for its token
	if a.cached.token != "" && now.Before(freshUntil(a.cached.issuedAt, a.cached.expiry)) {
		return a.cached.token, nil
	}
	form := url.Values{"grant_type": {"client_credentials"}}
	if a.cc.Scope != "" {
		form.Set("scope", a.cc.Scope)
	}
	if a.cc.Audience != "" {
		form.Set("audience", a.cc.Audience)
	}
	is, err := post(ctx, client, tokenRequest{endpoint: endpoint, issuer: issuer, form: form, auth: a.auth}, now, "actor token (client_credentials)")
	if err != nil {
		return "", err
	}
	a.cached = is
	return is.token, nil
}
