package envoy

import (
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"github.com/mcp-authz/mcp-authz/authz"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"
)

// structpbIdentityEntries is the oracle of identityEntries: the same fields built as a structpb map, which
// proto.Marshal encodes. Nil when a string is not valid UTF-8.
func structpbIdentityEntries(id *authz.Identity, withClaims bool) *structpb.Struct {
	for _, s := range append([]string{id.Subject, id.ClientID, id.Issuer}, id.Scopes...) {
		if !utf8.ValidString(s) {
			return nil
		}
	}
	scopes := make([]*structpb.Value, len(id.Scopes))
	for i, s := range id.Scopes {
		scopes[i] = structpb.NewStringValue(s)
	}
	fields := map[string]*structpb.Value{
		"sub":       structpb.NewStringValue(id.Subject),
		"client_id": structpb.NewStringValue(id.ClientID),
		"iss":       structpb.NewStringValue(id.Issuer),
		"scopes":    structpb.NewListValue(&structpb.ListValue{Values: scopes}),
	}
	if withClaims {
		if claims, err := claimsValue(id.Claims); err == nil {
			fields["claims"] = claims
		}
	}
	return &structpb.Struct{Fields: fields}
}

// checkIdentityEntries compares identityEntries with its oracle, the bytes read as Envoy reads them: as the
// dynamic_metadata of a CheckResponse off the wire.
func checkIdentityEntries(t *testing.T, id *authz.Identity, withClaims bool) {
	t.Helper()
	got := identityEntries(id, withClaims)
	want := structpbIdentityEntries(id, withClaims)
	if want == nil || got == nil {
		if (got == nil) != (want == nil) {
			t.Fatalf("claims %v: identityEntries = %x, want nil %v", withClaims, got, want == nil)
		}
		return
	}
	if len(got) != cap(got) {
		t.Errorf("claims %v: %d bytes in a buffer of %d: the size computed is not the size written", withClaims, len(got), cap(got))
	}
	if size := proto.Size(want); len(got) != size {
		t.Errorf("claims %v: %d bytes, proto.Marshal writes %d", withClaims, len(got), size)
	}
	b := protowire.AppendTag(nil, metadataField, protowire.BytesType)
	b = protowire.AppendBytes(b, got)
	var resp authv3.CheckResponse
	if err := proto.Unmarshal(b, &resp); err != nil {
		t.Fatalf("claims %v: %x does not decode: %v", withClaims, got, err)
	}
	if md := resp.GetDynamicMetadata(); !proto.Equal(md, want) {
		t.Errorf("claims %v: identity entries decode to\n%v\nwant\n%v", withClaims, md, want)
	}
}

// TestIdentityEntries checks the protowire encoding of the identity's metadata fields against the same
// fields built with structpb, with and without the claims.
func TestIdentityEntries(t *testing.T) {
	long := strings.Repeat("é", 100) // lengths over 127 bytes take a two-byte varint
	tests := []struct {
		name string
		id   authz.Identity
	}{
		{"no scopes", authz.Identity{Subject: "alice", ClientID: "mcp-client", Issuer: "https://idp.example.com"}},
		{"empty scope list", authz.Identity{Subject: "alice", ClientID: "c", Issuer: "i", Scopes: []string{}}},
		{"several scopes", authz.Identity{Subject: "alice", ClientID: "mcp-client", Issuer: "https://idp", Scopes: []string{"tools:read", "tools:call", "openid"}}},
		{"empty strings", authz.Identity{Scopes: []string{"", ""}}},
		{"unicode", authz.Identity{Subject: "zoë 🦊", ClientID: "客户端", Issuer: "https://idp.例え.jp", Scopes: []string{"読む", "✓"}}},
		{"long strings", authz.Identity{Subject: long, ClientID: long + long, Issuer: "i", Scopes: []string{long, strings.Repeat("s", 20000)}}},
		{"many scopes", authz.Identity{Subject: "s", Scopes: strings.Fields(strings.Repeat("scope:with:a:long:name ", 200))}},
		{"claims: nested, numbers, bools, null", authz.Identity{Subject: "alice", ClientID: "c", Issuer: "i", Scopes: []string{"x", "y"},
			Claims: decodeClaims(t, `{"sub":"alice","aud":["a","b"],"exp":1900000000,"f":-1.5e300,"big":12345678901234567890,
				"groups":["g",{"deep":{"deeper":[true,false,null,0]}}],"n":{"f":1.5,"t":true,"z":null,"s":"é"},"empty":{},"none":[]}`)}},
		{"no claims", authz.Identity{Subject: "alice", Claims: nil}},
		{"empty claims", authz.Identity{Subject: "alice", Claims: map[string]any{}}},
		{"claim value not UTF-8: claims left out", authz.Identity{Subject: "alice", Scopes: []string{"a"}, Claims: map[string]any{"sub": "alice", "bad": "\xff"}}},
		{"claim key not UTF-8: claims left out", authz.Identity{Subject: "alice", Claims: map[string]any{"\xff": "v"}}},
		{"subject not UTF-8: nil", authz.Identity{Subject: "\xff", Claims: map[string]any{"sub": "x"}}},
		{"client not UTF-8: nil", authz.Identity{ClientID: "a\xc3"}},
		{"issuer not UTF-8: nil", authz.Identity{Issuer: "\xed\xa0\x80"}},
		{"scope not UTF-8: nil", authz.Identity{Subject: "alice", Scopes: []string{"ok", "\xfe"}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for _, withClaims := range []bool{false, true} {
				checkIdentityEntries(t, &tc.id, withClaims)
			}
		})
	}
}

// FuzzIdentityEntries compares identityEntries with its oracle for any identity strings, scopes (scope
// split on spaces) and claims (claimsJSON decoded as a token's, with sub among them; none when empty).
func FuzzIdentityEntries(f *testing.F) {
	f.Add("alice", "mcp-client", "https://idp.example.com", "tools:read tools:call", `{"n":{"f":1.5,"t":true,"z":null}}`)
	f.Add("", "", "", "", "")
	f.Add("zoë", "客户端", "\xff", "  a  ", `{"a":["\u00e9",1,2e10]}`)
	f.Add(strings.Repeat("x", 200), "c", "i", "\xfe", `{"k":"\xff"}`)
	f.Fuzz(func(t *testing.T, sub, clientID, iss, scope, claimsJSON string) {
		id := &authz.Identity{Subject: sub, ClientID: clientID, Issuer: iss}
		if scope != "" {
			id.Scopes = strings.Split(scope, " ")
		}
		if claimsJSON != "" {
			// As a token's: decoded JSON, and its sub as it came (which may not be UTF-8, unlike what
			// encoding/json decodes).
			dec := json.NewDecoder(strings.NewReader(claimsJSON))
			dec.UseNumber()
			_ = dec.Decode(&id.Claims) // what it decoded, if anything
			if id.Claims == nil {
				id.Claims = map[string]any{}
			}
			id.Claims["sub"] = sub
		}
		for _, withClaims := range []bool{false, true} {
			checkIdentityEntries(t, id, withClaims)
		}
	})
}

// BenchmarkIdentityEntries measures the encoding of a typical identity's metadata fields, which a fresh
// token pays on its first allow: identityEntries, and for comparison its oracle marshalled.
func BenchmarkIdentityEntries(b *testing.B) {
	id := &authz.Identity{Subject: "user-000042", ClientID: "mcp-client", Issuer: "https://idp.example.com",
		Scopes: []string{"tools:read", "tools:call"}}
	b.Run("protowire", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if identityEntries(id, false) == nil {
				b.Fatal("no entries")
			}
		}
	})
	b.Run("structpb", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := proto.Marshal(structpbIdentityEntries(id, false)); err != nil {
				b.Fatal(err)
			}
		}
	})
}
