package bridge

import (
	"testing"
	"time"
)

// BenchmarkSealOpenCode seals and opens a code as the callback and the token endpoint do.
func BenchmarkSealOpenCode(b *testing.B) {
	s, _ := NewSealer([][]byte{testKey(1), testKey(2)}, time.Now)
	g := codeGrant{Bridge: "default", Client: digest("client"), Label: "Test client (0123456789ab)", RedirectURI: "http://127.0.0.1:5555/cb",
		Challenge: s256("verifier-verifier-verifier-verifier-verifier"), Scope: "tools:read openid", Resource: testResource,
		Verifier: "VERIFIERVERIFIERVERIFIERVERIFIERVERIFIERVERIFIERVE", IdPCode: "ory_ac_0123456789abcdefghijklmnopqrstuvwxyz.0123456789abcdefghijklmnopqrstuvwxyz"}
	b.ReportAllocs()
	for b.Loop() {
		sealed, err := s.Seal(PurposeCode, g, time.Now().Add(time.Minute))
		if err != nil {
			b.Fatal(err)
		}
		var got codeGrant
		if err := s.Open(PurposeCode, sealed, &got); err != nil {
			b.Fatal(err)
		}
	}
}
