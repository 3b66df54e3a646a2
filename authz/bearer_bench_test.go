package authz

import "testing"

// BenchmarkBearerToken measures extracting the bearer token from a request as Envoy reports it.
func BenchmarkBearerToken(b *testing.B) {
	tok := "eyJhbGciOiJSUzI1NiIsImtpZCI6ImsxIiwidHlwIjoiYXQrand0In0." +
		"eyJhdWQiOiJodHRwczovL21jcC5leGFtcGxlLmNvbS9tY3AiLCJleHAiOjE5MDAwMDAwMDAsInN1YiI6ImFsaWNlIn0." +
		"c2lnbmF0dXJlLXNpZ25hdHVyZS1zaWduYXR1cmUtc2lnbmF0dXJlLXNpZ25hdHVyZS1zaWduYXR1cmU"
	req := &Request{Method: "POST", Path: "/mcp", Headers: map[string]string{
		"authorization": "Bearer " + tok, "content-type": "application/json", ":path": "/mcp",
	}}
	b.ReportAllocs()
	for b.Loop() {
		got, err := bearerToken(req)
		if err != nil || got != tok {
			b.Fatalf("bearerToken = %q, %v", got, err)
		}
	}
}
