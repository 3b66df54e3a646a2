package authz

import (
	"testing"

	"github.com/lestrrat-go/jwx/v2/jwk"
)

// installSet makes the keys of set the snapshot ks uses, as a fetch would, without a server.
func installSet(ks *KeySet, set jwk.Set) {
	keys := make([]jwk.Key, 0, set.Len())
	for i := range set.Len() {
		key, _ := set.Key(i)
		keys = append(keys, key)
	}
	ks.install(keys)
}

// TestInsecureHTTP checks which key URLs get the plain-http warning: http to anything but a loopback host.
func TestInsecureHTTP(t *testing.T) {
	tests := []struct {
		url  string
		want bool
	}{
		{"http://idp.example.com/.well-known/openid-configuration", true},
		{"HTTP://idp.example.com/jwks", true},
		{"http://10.0.0.7:8080/jwks", true},
		{"http://[2001:db8::1]/jwks", true},
		{"http://keycloak.auth.svc.cluster.local/realms/x/protocol/openid-connect/certs", true},
		{"http://127.0.0.1:8080/jwks", false},
		{"http://127.5.6.7/jwks", false},
		{"http://[::1]:9000/jwks", false},
		{"http://localhost:8080/jwks", false},
		{"http://LocalHost/jwks", false},
		{"https://idp.example.com/jwks", false},
		{"https://10.0.0.7/jwks", false},
		{"://bad", false},
	}
	for _, tc := range tests {
		if got := insecureHTTP(tc.url); got != tc.want {
			t.Errorf("insecureHTTP(%q) = %v, want %v", tc.url, got, tc.want)
		}
	}
}
