// Package discovery reads an IdP's discovery document (OpenID Connect Discovery 1.0, RFC 8414) for the
// parts of mcp-authz that call the IdP's endpoints (the OAuth bridge, token exchange): fetched when first
// needed and again after the issuer's refresh interval, checked against the configured issuer, failures
// retried at most every RetryAfter. The verifier's key set reads the same document for its jwks_uri
// (authz.KeySet), on its own schedule.
package discovery

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/mcp-authz/mcp-authz/config"
)

// Metadata is what mcp-authz reads of a discovery document.
type Metadata struct {
	Issuer                string `json:"issuer"`
	AuthorizationEndpoint string `json:"authorization_endpoint"`
	TokenEndpoint         string `json:"token_endpoint"`
	IssParameterSupported bool   `json:"authorization_response_iss_parameter_supported"`
}

// Endpoints name the endpoints a caller needs: a document without a usable one of them is refused.
const (
	AuthorizationEndpoint = "authorization_endpoint"
	TokenEndpoint         = "token_endpoint"
)

// RetryAfter spaces the fetches after a failure; FetchTimeout bounds one, so that a request waiting for it
// still ends within the HTTP listener's 10 s write timeout.
const (
	RetryAfter   = 5 * time.Second
	FetchTimeout = 4 * time.Second
)

// maxDocumentBytes bounds the document read.
const maxDocumentBytes = 1 << 20

// Document is one issuer's discovery document, kept. Safe for concurrent use.
type Document struct {
	cfg    config.Issuer // the endpoints the document names are checked against it (CheckEndpoint)
	needs  []string
	every  time.Duration
	client *http.Client
	now    func() time.Time

	mu        sync.Mutex
	cur       *Metadata
	fetched   time.Time
	lastErr   error
	lastTried time.Time
}

// New returns the discovery document of is, fetched with client (which should follow no redirect), whose
// endpoints named by needs must be present and pass is.CheckEndpoint; now is the clock (nil: time.Now).
func New(is config.Issuer, client *http.Client, now func() time.Time, needs ...string) *Document {
	if now == nil {
		now = time.Now
	}
	return &Document{cfg: is, needs: needs, every: time.Duration(is.RefreshInterval), client: client, now: now}
}

// Get returns the document, fetching it when it is missing or older than the refresh interval. A failed
// refetch keeps the document held; a failure with none held is returned, and retried only after RetryAfter.
// The fetch does not end with ctx: one caller leaving must not fail the others.
func (d *Document) Get(ctx context.Context) (*Metadata, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	now := d.now()
	if d.cur != nil && now.Sub(d.fetched) < d.every {
		return d.cur, nil
	}
	if d.lastErr != nil && now.Sub(d.lastTried) < RetryAfter {
		if d.cur != nil {
			return d.cur, nil
		}
		return nil, d.lastErr
	}
	d.lastTried = now
	m, err := d.fetch(context.WithoutCancel(ctx))
	d.lastErr = err
	if err != nil {
		if d.cur != nil {
			return d.cur, nil
		}
		return nil, err
	}
	d.cur, d.fetched = m, now
	return m, nil
}

func (d *Document) fetch(ctx context.Context) (*Metadata, error) {
	ctx, cancel := context.WithTimeout(ctx, FetchTimeout)
	defer cancel()
	u := d.cfg.DiscoveryURL
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, fmt.Errorf("discovery %s: %w", u, err)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := d.client.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // the URL once is enough
		}
		return nil, fmt.Errorf("discovery %s: unreachable: %w", u, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("discovery %s: status %d", u, resp.StatusCode)
	}
	var m Metadata
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxDocumentBytes)).Decode(&m); err != nil {
		return nil, fmt.Errorf("discovery %s: %w", u, err)
	}
	if m.Issuer != d.cfg.Issuer {
		return nil, fmt.Errorf("discovery %s: document issuer %q is not %q", u, m.Issuer, d.cfg.Issuer)
	}
	for _, name := range d.needs {
		ep := map[string]string{AuthorizationEndpoint: m.AuthorizationEndpoint, TokenEndpoint: m.TokenEndpoint}[name]
		if err := d.cfg.CheckEndpoint(ep); err != nil {
			// A plain http endpoint would carry tokens, codes and client secrets in the clear.
			return nil, fmt.Errorf("discovery %s: no usable %s: %q %v", u, name, ep, err)
		}
	}
	return &m, nil
}
