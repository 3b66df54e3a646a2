package authz

import (
	"strings"
	"testing"

	"github.com/lestrrat-go/jwx/v2/jwa"
)

// TestSimpleHeader checks which headers simpleHeader reads itself (the common ones) and which it leaves to
// jwx's parser; TestVerifyDifferential checks that both readings decide alike.
func TestSimpleHeader(t *testing.T) {
	tests := []struct {
		header string
		want   *joseHeader // nil: left to jwx
	}{
		{`{"alg":"RS256","kid":"k1","typ":"at+jwt"}`, &joseHeader{alg: jwa.RS256, kid: "k1", typ: "at+jwt", b64: true}},
		{`{"typ":"JWT","alg":"ES256"}`, &joseHeader{alg: jwa.ES256, typ: "JWT", b64: true}},
		{"{ \"alg\" : \"EdDSA\",\n\t\"kid\": \"\" }", &joseHeader{alg: jwa.EdDSA, b64: true}},
		{`{"alg":"PS512"}`, &joseHeader{alg: jwa.PS512, b64: true}},
		{`{}`, nil},
		{`{"kid":"k1"}`, nil},
		{`{"alg":"none"}`, nil},
		{`{"alg":"HS256"}`, nil},
		{`{"alg":"RS256","alg":"RS256"}`, nil},
		{`{"alg":"RS256","ALG":"none"}`, nil},
		{`{"alg":"RS256","crit":["b64"]}`, nil},
		{`{"alg":"RS256","b64":false}`, nil},
		{`{"alg":"RS256","kid":"k\u0031"}`, nil},
		{"{\"alg\":\"RS256\",\"kid\":\"k\xc3\xa9\"}", nil},
		{`{"alg":"RS256","kid":7}`, nil},
		{`{"alg":"RS256",}`, nil},
		{`{"alg":"RS256"} `, nil},
		{` {"alg":"RS256"}`, nil},
		{`{"alg":"RS256"}{}`, nil},
		{`{"alg":"RS256"`, nil},
		{`{"alg":"RS256}`, nil},
		{`{"alg" "RS256"}`, nil},
	}
	for _, tc := range tests {
		got, ok := simpleHeader([]byte(tc.header))
		switch {
		case tc.want == nil && ok:
			t.Errorf("%q: read as %+v, want it left to jwx", tc.header, got)
		case tc.want != nil && (!ok || got != *tc.want):
			t.Errorf("%q: %+v, %v; want %+v", tc.header, got, ok, *tc.want)
		}
	}
}

// TestIsCompactJWSBytes checks every byte value: only the base64url alphabet (RFC 4648 §5) and the dot pass.
func TestIsCompactJWSBytes(t *testing.T) {
	const allowed = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_."
	for c := range 256 {
		raw := "ab" + string([]byte{byte(c)}) + "cd"
		if got, want := isCompactJWS(raw), strings.IndexByte(allowed, byte(c)) >= 0; got != want {
			t.Errorf("byte %#x: isCompactJWS %v, want %v", c, got, want)
		}
	}
}
