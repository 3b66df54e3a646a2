package bridge

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"

	"github.com/mcp-authz/mcp-authz/config"
)

// idpMetadata is what the bridge needs of an IdP's discovery document.
type idpMetadata struct {
	Issuer                string   `json:"issuer"`
	AuthorizationEndpoint string   `json:"authorization_endpoint"`
	TokenEndpoint         string   `json:"token_endpoint"`
	IssParameterSupported bool     `json:"authorization_response_iss_parameter_supported"`
	CodeChallengeMethods  []string `json:"code_challenge_methods_supported"`
}

// idpDiscovery fetches an IdP's discovery document when first needed and again after the issuer's refresh
// interval; a failed refetch keeps the document held. Failures are retried at most every retryAfter.
type idpDiscovery struct {
	url    string
	issuer string
	cfg    config.Issuer // the endpoints its discovery document names are checked against it
	every  time.Duration
	client *http.Client
	now    func() time.Time

	mu        sync.Mutex
	cur       *idpMetadata
	fetched   time.Time
	lastErr   error
	lastTried time.Time
}

// idpRetryAfter spaces the fetches after a failure; idpFetchTimeout bounds one, so that a request waiting
// for it (and for a CIMD fetch) still ends within the HTTP listener's 10 s write timeout.
const (
	idpRetryAfter   = 5 * time.Second
	idpFetchTimeout = 4 * time.Second
)

func newIDPDiscovery(is config.Issuer, client *http.Client, now func() time.Time) *idpDiscovery {
	return &idpDiscovery{url: is.DiscoveryURL, issuer: is.Issuer, cfg: is,
		every: time.Duration(is.RefreshInterval), client: client, now: now}
}

// get returns the IdP's metadata, fetching it when it is missing or old.
func (d *idpDiscovery) get(ctx context.Context) (*idpMetadata, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	now := d.now()
	if d.cur != nil && now.Sub(d.fetched) < d.every {
		return d.cur, nil
	}
	if d.lastErr != nil && now.Sub(d.lastTried) < idpRetryAfter {
		if d.cur != nil {
			return d.cur, nil
		}
		return nil, d.lastErr
	}
	d.lastTried = now
	m, err := d.fetch(context.WithoutCancel(ctx)) // one caller leaving must not fail the others for idpRetryAfter
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

func (d *idpDiscovery) fetch(ctx context.Context) (*idpMetadata, error) {
	ctx, cancel := context.WithTimeout(ctx, idpFetchTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, d.url, nil)
	if err != nil {
		return nil, fmt.Errorf("IdP discovery: %w", err)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := d.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("IdP discovery: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("IdP discovery %s: status %d", d.url, resp.StatusCode)
	}
	var m idpMetadata
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&m); err != nil {
		return nil, fmt.Errorf("IdP discovery %s: %w", d.url, err)
	}
	if m.Issuer != d.issuer {
		return nil, fmt.Errorf("IdP discovery %s: issuer %q, want %q", d.url, m.Issuer, d.issuer)
	}
	for _, ep := range []struct{ name, v string }{{"authorization_endpoint", m.AuthorizationEndpoint}, {"token_endpoint", m.TokenEndpoint}} {
		if err := d.cfg.CheckEndpoint(ep.v); err != nil {
			return nil, fmt.Errorf("IdP discovery %s: %s %q %v", d.url, ep.name, ep.v, err)
		}
	}
	return &m, nil
}

var errIDPUnavailable = errors.New("the identity provider's discovery document is unavailable")
