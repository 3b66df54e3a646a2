package forwardauth

import (
	"errors"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// FuzzRequest checks the forward-auth translation against what it must mean: whatever the headers, a
// request that is translated is described by the configured family alone, the other family is absent or
// says the same, and two disagreeing families are always refused with 400.
func FuzzRequest(f *testing.F) {
	f.Add("/authz", false, "/mcp", "POST", "", "", "mcp.example.com")
	f.Add("/authz", true, "/mcp", "POST", "/public/mcp", "GET", "h")
	f.Add("/authz", false, "/mcp", "POST", "/mcp", "POST", "a, b")
	f.Add("/authz/mcp", false, "", "", "/public/mcp", "GET", "h")
	f.Add("/authz?x", true, "", "POST", "/mcp", "", "")
	f.Fuzz(func(t *testing.T, target string, original bool, fwdURI, fwdMethod, origURI, origMethod, host string) {
		u, err := url.ParseRequestURI(target)
		if err != nil {
			return
		}
		h := http.Header{}
		for name, v := range map[string]string{hdrForwardedURI: fwdURI, hdrForwardedMethod: fwdMethod, hdrOriginalURI: origURI, hdrOriginalMethod: origMethod, hdrForwardedHost: host} {
			if v != "" {
				h.Set(name, v)
			}
		}
		r := &http.Request{Method: "GET", RequestURI: target, URL: u, Header: h, Host: "authz:8080"}
		family, uri, method, otherURI, otherMethod := Forwarded, fwdURI, fwdMethod, origURI, origMethod
		if original {
			family, uri, method, otherURI, otherMethod = Original, origURI, origMethod, fwdURI, fwdMethod
		}
		got, err := Request(r, Options{Prefix: Prefix, MaxBody: 16, Family: family})
		disagree := fwdURI != "" && origURI != "" && fwdURI != origURI || fwdMethod != "" && origMethod != "" && fwdMethod != origMethod
		if disagree {
			var re *RequestError
			if !errors.As(err, &re) || re.Status != http.StatusBadRequest {
				t.Fatalf("disagreeing families translated: %+v, %v", got, err)
			}
			return
		}
		if err != nil {
			return
		}
		rest := strings.TrimPrefix(target, Prefix)
		if rest == "" || rest[0] == '?' { // forward-auth shape
			if got.Path != strings.TrimSpace(uri) || got.Method != strings.TrimSpace(method) {
				t.Fatalf("described as %s %s, configured family says %s %s", got.Method, got.Path, method, uri)
			}
			if otherURI != "" && otherURI != uri || otherMethod != "" && otherMethod != method {
				t.Fatalf("translated although the other family says %s %s", otherMethod, otherURI)
			}
			if strings.Contains(got.Host, ",") {
				t.Fatalf("host %q is a list", got.Host)
			}
		} else if got.Path != rest || got.Method != "GET" {
			t.Fatalf("envoy shape: %s %s, want GET %s", got.Method, got.Path, rest)
		}
	})
}
