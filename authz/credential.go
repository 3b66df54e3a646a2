package authz

import (
	"context"
	"slices"
)

// Credential makes what an allow hands the MCP server besides the identity headers: a signed statement of
// who is calling, or a token for the APIs the server calls next. The Authorizer asks each configured
// Credential, in order, once the policy has allowed a request; a Credential that has nothing for the
// resource returns no headers. An *Error refuses the request (the upstream must not be reached without
// the credential it was configured to get). The Authorizer only reads the headers returned, so a
// Credential may hand out the same slice to many requests.
type Credential interface {
	Credential(ctx context.Context, g Grant) ([]Header, *Error)
}

// Grant is one allowed request, as a Credential sees it.
type Grant struct {
	// Resource is the URL of the resource the request targets.
	Resource string
	// Token is the client's access token, as received. It must never be logged or sent upstream as is.
	Token string
	// Identity is the verified caller.
	Identity *Identity
	// RequestID is the request's x-request-id, cut and scrubbed as in the decision log.
	RequestID string
	// PolicyRevision is the revision of the policy generation that allowed the request (empty when the
	// policy reports none).
	PolicyRevision string
	// AssertionClaims are the claims the policy's decision adds to a signed identity assertion
	// (`assertion_claims`); the map is this request's copy, its values are shared with the policy's decision
	// cache, so never modified.
	AssertionClaims map[string]any
}

// WithCredentials adds credentials for the MCP server to every allow, in the order given.
func WithCredentials(cs ...Credential) Option {
	return func(a *Authorizer) { a.credentials = append(a.credentials, cs...) }
}

// addCredentials asks every Credential for the allow d and adds their headers to it. A header a Credential
// sets is no longer removed (Authorization carrying an exchanged token replaces the client's).
func (a *Authorizer) addCredentials(ctx context.Context, g Grant, d *Decision) *Error {
	for _, c := range a.credentials {
		hs, e := c.Credential(ctx, g)
		if e != nil {
			return e
		}
		for _, h := range hs {
			d.RemoveHeaders = slices.DeleteFunc(d.RemoveHeaders, func(name string) bool { return name == h.Name })
			d.Headers = slices.DeleteFunc(d.Headers, func(s Header) bool { return s.Name == h.Name })
			d.Headers = append(d.Headers, h)
		}
	}
	return nil
}
