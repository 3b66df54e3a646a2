package authz

import (
	"net/url"
	"strings"
)

// bearerToken extracts the RFC 6750 bearer token from the Authorization header. It returns "" and no error
// when there are no credentials at all, and an *Error of kind invalid_request when the request carries
// credentials in a way this resource refuses: a token in the query string, several credentials, or a
// malformed header.
func bearerToken(r *Request) (string, *Error) {
	if _, query, ok := strings.Cut(r.Path, "?"); ok && queryHasToken(query) {
		return "", errInvalidRequest("access token in the query string is not accepted")
	}
	h, ok := r.Headers["authorization"]
	if !ok {
		if r.Headers["content-type"] == "application/x-www-form-urlencoded" && len(r.Body) > 0 && queryHasToken(string(r.Body)) {
			return "", errInvalidRequest("access token in the request body is not accepted")
		}
		return "", nil
	}
	scheme, token, found := strings.Cut(strings.TrimSpace(h), " ")
	if !found || !strings.EqualFold(scheme, "Bearer") {
		if strings.EqualFold(scheme, "Bearer") {
			return "", errInvalidRequest("empty bearer token")
		}
		return "", errInvalidRequest("authorization scheme is not Bearer")
	}
	token = strings.TrimLeft(token, " ")
	if token == "" {
		return "", errInvalidRequest("empty bearer token")
	}
	if !isB64Token(token) {
		// A repeated Authorization header reaches us joined with ","; b64token has no "," nor whitespace.
		if strings.ContainsAny(token, ", \t") {
			return "", errInvalidRequest("more than one credential in the Authorization header")
		}
		return "", errInvalidRequest("bearer token has characters outside the b64token syntax")
	}
	return token, nil
}

func queryHasToken(query string) bool {
	for part := range strings.SplitSeq(query, "&") {
		key, _, _ := strings.Cut(part, "=")
		if k, err := url.QueryUnescape(key); err == nil && k == "access_token" || key == "access_token" {
			return true
		}
	}
	return false
}

// isB64Token reports whether s matches RFC 6750's b64token: 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"=".
func isB64Token(s string) bool {
	i := 0
	for ; i < len(s); i++ {
		c := s[i]
		set := b64TokenLow
		if c >= 64 {
			set = b64TokenHigh
		}
		if c >= 128 || set&(1<<(c&63)) == 0 {
			break
		}
	}
	if i == 0 {
		return false
	}
	for ; i < len(s); i++ {
		if s[i] != '=' {
			return false
		}
	}
	return true
}

// b64TokenLow and b64TokenHigh are the b64token characters before the "=" padding (ALPHA / DIGIT / "-" /
// "." / "_" / "~" / "+" / "/") as bit sets over ASCII: bit c&63 is set for each such character c below 64
// (b64TokenLow) and from 64 to 127 (b64TokenHigh).
const (
	b64TokenLow  uint64 = 1<<'+' | 1<<'-' | 1<<'.' | 1<<'/' | (1<<10-1)<<'0'
	b64TokenHigh uint64 = 1<<('_'-64) | 1<<('~'-64) | (1<<26-1)<<('A'-64) | (1<<26-1)<<('a'-64)
)
