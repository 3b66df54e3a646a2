package bridge

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/mcp-authz/mcp-authz/config"
	"golang.org/x/sync/singleflight"
)

// Resolver looks up the addresses of a host name.
type Resolver func(ctx context.Context, host string) ([]netip.Addr, error)

// cimdFetcher fetches Client ID Metadata Documents. The client id is a URL anyone can choose, so the fetch is
// a request the bridge makes on an attacker's behalf (SSRF): it goes only to public addresses (checked on the
// address actually dialled, so DNS rebinding cannot slip a private one in), over https unless loopback http is
// allowed, never through a proxy, never following a redirect, within a size and a time bound; only a JSON
// object whose client_id equals the URL is accepted. Documents are cached per Cache-Control within bounds.
type cimdFetcher struct {
	cfg       config.CIMD
	lookup    Resolver
	client    *http.Client
	transport *http.Transport
	now       func() time.Time

	mu     sync.Mutex
	cache  map[string]cimdEntry
	flight singleflight.Group // one fetch per URL at a time, shared by the requests that need it
}

type cimdEntry struct {
	c       *client
	expires time.Time
}

// Cache bounds of Client ID Metadata Documents.
const (
	cimdMinTTL      = 1 * time.Minute
	cimdMaxTTL      = 24 * time.Hour
	cimdDefaultTTL  = 5 * time.Minute
	cimdMaxEntries  = 1024
	maxRedirectURIs = 16
)

var errCIMD = errors.New("client metadata document refused")

func newCIMDFetcher(cfg config.CIMD) *cimdFetcher {
	f := &cimdFetcher{cfg: cfg, now: time.Now, cache: map[string]cimdEntry{},
		lookup: func(ctx context.Context, host string) ([]netip.Addr, error) {
			return net.DefaultResolver.LookupNetIP(ctx, "ip", host)
		}}
	dialer := &net.Dialer{Timeout: time.Duration(cfg.Timeout), Control: f.control}
	f.transport = &http.Transport{
		Proxy:                 nil, // a proxy would dial for us, past the address check
		DialContext:           f.dialContext(dialer),
		TLSClientConfig:       &tls.Config{MinVersion: tls.VersionTLS12},
		TLSHandshakeTimeout:   time.Duration(cfg.Timeout),
		ResponseHeaderTimeout: time.Duration(cfg.Timeout),
		MaxIdleConns:          16,
		IdleConnTimeout:       30 * time.Second,
		DisableCompression:    true, // the size bound applies to what crosses the network
	}
	f.client = &http.Client{
		Transport:     f.transport,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	return f
}

// isCIMDClientID reports whether a client_id names a metadata document (an http(s) URL) rather than a DCR
// client.
func isCIMDClientID(id string) bool {
	return strings.HasPrefix(id, "https://") || strings.HasPrefix(id, "http://")
}

// checkURL applies the Client ID Metadata Document rules to a client id: https (or loopback http when
// allowed), a host, a path other than "/", no fragment, no user information, no dot segments.
func (f *cimdFetcher) checkURL(id string) (*url.URL, error) {
	if len(id) > 2048 {
		return nil, fmt.Errorf("%w: client_id URL longer than 2048 bytes", errCIMD)
	}
	u, err := url.Parse(id)
	if err != nil {
		return nil, fmt.Errorf("%w: client_id is not a URL", errCIMD)
	}
	switch {
	case u.Scheme == "http" && !(f.cfg.AllowHTTPLoopback && config.LoopbackHost(u.Hostname())):
		return nil, fmt.Errorf("%w: client_id must be an https URL", errCIMD)
	case u.Scheme != "https" && u.Scheme != "http":
		return nil, fmt.Errorf("%w: client_id must be an https URL", errCIMD)
	case u.Host == "" || u.User != nil || u.Fragment != "" || strings.Contains(id, "#"):
		return nil, fmt.Errorf("%w: client_id URL must have a host and no user information or fragment", errCIMD)
	case u.Path == "" || u.Path == "/":
		return nil, fmt.Errorf("%w: client_id URL must have a path", errCIMD)
	}
	for _, seg := range strings.Split(u.Path, "/") {
		if seg == "." || seg == ".." {
			return nil, fmt.Errorf("%w: client_id URL must not have dot segments", errCIMD)
		}
	}
	return u, nil
}

// get returns the client a metadata document describes, from the cache or fetched.
func (f *cimdFetcher) get(ctx context.Context, id string) (*client, error) {
	u, err := f.checkURL(id)
	if err != nil {
		return nil, err
	}
	now := f.now()
	f.mu.Lock()
	e, ok := f.cache[id]
	f.mu.Unlock()
	if ok && now.Before(e.expires) {
		return e.c, nil
	}
	// One fetch per URL at a time, shared by the requests that need it; it runs on its own time bound, not on
	// the first request's context, and each request waits for it only as long as its own context allows.
	ch := f.flight.DoChan(id, func() (any, error) {
		c, ttl, err := f.fetch(context.WithoutCancel(ctx), u, id)
		if err == nil && ttl > 0 {
			f.store(id, c, f.now().Add(ttl))
		}
		return c, err
	})
	select {
	case r := <-ch:
		if r.Err != nil {
			return nil, r.Err
		}
		return r.Val.(*client), nil
	case <-ctx.Done():
		return nil, fmt.Errorf("%w: %v", errCIMD, ctx.Err())
	}
}

// store caches c until expires, evicting expired entries (then any) when the cache is full.
func (f *cimdFetcher) store(id string, c *client, expires time.Time) {
	now := f.now()
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.cache) >= cimdMaxEntries {
		for k, e := range f.cache {
			if !now.Before(e.expires) || len(f.cache) >= cimdMaxEntries {
				delete(f.cache, k)
			}
		}
	}
	f.cache[id] = cimdEntry{c: c, expires: expires}
}

// cimdDocument is the part of a Client ID Metadata Document the bridge reads.
type cimdDocument struct {
	ClientID                string   `json:"client_id"`
	ClientName              string   `json:"client_name"`
	RedirectURIs            []string `json:"redirect_uris"`
	TokenEndpointAuthMethod string   `json:"token_endpoint_auth_method"`
}

func (f *cimdFetcher) fetch(ctx context.Context, u *url.URL, id string) (*client, time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, time.Duration(f.cfg.Timeout))
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, 0, fmt.Errorf("%w: %v", errCIMD, err)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := f.client.Do(req)
	if err != nil {
		if ctx.Err() != nil || isTimeout(err) {
			return nil, 0, fmt.Errorf("%w: not fetched within %v", errCIMD, time.Duration(f.cfg.Timeout))
		}
		return nil, 0, fmt.Errorf("%w: fetch: %w", errCIMD, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, 0, fmt.Errorf("%w: fetch answered status %d (redirects are not followed)", errCIMD, resp.StatusCode)
	}
	if mt, _, err := mime.ParseMediaType(resp.Header.Get("Content-Type")); err != nil || (mt != "application/json" && !strings.HasSuffix(mt, "+json")) {
		return nil, 0, fmt.Errorf("%w: content type %q is not JSON", errCIMD, shorten(resp.Header.Get("Content-Type")))
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, int64(f.cfg.MaxBytes)+1))
	if err != nil {
		if ctx.Err() != nil || isTimeout(err) {
			return nil, 0, fmt.Errorf("%w: not fetched within %v", errCIMD, time.Duration(f.cfg.Timeout))
		}
		return nil, 0, fmt.Errorf("%w: read: %w", errCIMD, err)
	}
	if len(body) > f.cfg.MaxBytes {
		return nil, 0, fmt.Errorf("%w: larger than %d bytes", errCIMD, f.cfg.MaxBytes)
	}
	var doc cimdDocument
	if err := json.Unmarshal(body, &doc); err != nil {
		return nil, 0, fmt.Errorf("%w: not a JSON client metadata object: %v", errCIMD, err)
	}
	if doc.ClientID != id {
		return nil, 0, fmt.Errorf("%w: its client_id %q is not the URL it was fetched from", errCIMD, shorten(doc.ClientID))
	}
	if m := doc.TokenEndpointAuthMethod; m != "" && m != "none" {
		return nil, 0, fmt.Errorf("%w: token_endpoint_auth_method %q: the bridge serves public clients only (none)", errCIMD, shorten(m))
	}
	if len(doc.RedirectURIs) == 0 || len(doc.RedirectURIs) > maxRedirectURIs {
		return nil, 0, fmt.Errorf("%w: redirect_uris must list 1 to %d URIs", errCIMD, maxRedirectURIs)
	}
	name := cleanName(doc.ClientName)
	if name == "" {
		name = u.Host
	}
	return &client{id: id, name: name, redirectURIs: doc.RedirectURIs, cimd: true}, cacheTTL(resp.Header.Get("Cache-Control")), nil
}

// cacheTTL is how long a document may be cached: Cache-Control max-age within [cimdMinTTL, cimdMaxTTL],
// cimdDefaultTTL without one, and 0 (not cached) for no-store or no-cache.
func cacheTTL(cc string) time.Duration {
	ttl := cimdDefaultTTL
	for _, d := range strings.Split(cc, ",") {
		d = strings.ToLower(strings.TrimSpace(d))
		switch {
		case d == "no-store" || d == "no-cache":
			return 0
		case strings.HasPrefix(d, "max-age="):
			if n, err := strconv.Atoi(strings.TrimPrefix(d, "max-age=")); err == nil {
				ttl = min(max(time.Duration(n)*time.Second, cimdMinTTL), cimdMaxTTL)
			}
		}
	}
	return ttl
}

var errPrivateAddress = errors.New("address is not public")

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// dialContext resolves the host itself and dials only the addresses allowed, one after the other.
func (f *cimdFetcher) dialContext(d *net.Dialer) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		host, port, err := net.SplitHostPort(addr)
		if err != nil {
			return nil, err
		}
		var addrs []netip.Addr
		if a, err := netip.ParseAddr(host); err == nil {
			addrs = []netip.Addr{a}
		} else if addrs, err = f.lookup(ctx, host); err != nil {
			return nil, err
		}
		var lastErr error = fmt.Errorf("%s: no address", host)
		for _, a := range addrs {
			if err := f.allowed(a); err != nil {
				lastErr = fmt.Errorf("%s: %w", host, err) // not the address: the error reaches the browser's page
				continue
			}
			c, err := d.DialContext(ctx, network, net.JoinHostPort(a.Unmap().String(), port))
			if err == nil {
				return c, nil
			}
			lastErr = err
		}
		return nil, lastErr
	}
}

// control checks, once more, the address a socket is about to connect to.
func (f *cimdFetcher) control(_, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return fmt.Errorf("dial %s: %w", address, err)
	}
	return f.allowed(ap.Addr())
}

// allowed refuses every address that is not public unicast, unless private networks are allowed.
func (f *cimdFetcher) allowed(a netip.Addr) error {
	if f.cfg.AllowPrivateNetworks {
		return nil
	}
	a = a.Unmap()
	if !a.IsGlobalUnicast() || a.IsPrivate() || a.IsLoopback() || a.IsLinkLocalUnicast() || a.IsMulticast() || a.IsUnspecified() {
		return errPrivateAddress
	}
	for _, p := range nonPublic {
		if p.Contains(a) {
			return errPrivateAddress
		}
	}
	return nil
}

// nonPublic are ranges IsGlobalUnicast accepts that are not the public internet.
var nonPublic = []netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/8"),
	netip.MustParsePrefix("100.64.0.0/10"), // carrier-grade NAT
	netip.MustParsePrefix("192.0.0.0/24"),
	netip.MustParsePrefix("192.0.2.0/24"),
	netip.MustParsePrefix("198.18.0.0/15"),
	netip.MustParsePrefix("198.51.100.0/24"),
	netip.MustParsePrefix("203.0.113.0/24"),
	netip.MustParsePrefix("240.0.0.0/4"),
	netip.MustParsePrefix("64:ff9b::/96"),   // NAT64: may embed a private IPv4 address
	netip.MustParsePrefix("64:ff9b:1::/48"), // local-use NAT64
	netip.MustParsePrefix("2001:db8::/32"),
	netip.MustParsePrefix("2002::/16"), // 6to4: may embed a private IPv4 address
	netip.MustParsePrefix("fec0::/10"), // deprecated site-local
}
