package authz

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"strings"

	"github.com/lestrrat-go/jwx/v2/jws"
)

// compactToken is a JWS in the compact serialization, split and decoded, not yet verified.
type compactToken struct {
	header    jws.Headers // the protected header, parsed by jwx (its members' types and the `jwk` and `x5c` it holds)
	b64       bool        // the payload is base64url-encoded (RFC 7797: the `b64` header, true unless set otherwise)
	payload   []byte
	signature []byte
	// signingInput is what the signature covers, as jwx computes it: the header's JSON value and the payload,
	// each base64url-encoded again. For a token in the canonical encoding this is the token up to its
	// second dot.
	signingInput []byte
}

// parseCompact splits raw (two dots, base64url characters only: checked by the caller) and decodes its
// parts as jws.Parse does; any failure is the refusal "malformed token".
func parseCompact(raw string) (*compactToken, *Error) {
	malformed := errInvalidToken("malformed token")
	h64, rest, _ := strings.Cut(raw, ".")
	p64, s64, _ := strings.Cut(rest, ".")
	headerBytes, canonical, ok := decodeSegment(h64)
	if !ok {
		return nil, malformed
	}
	// The header is one JSON value: jwx reads the first one (what follows it is ignored) and signs over it.
	var value json.RawMessage
	if err := json.NewDecoder(bytes.NewReader(headerBytes)).Decode(&value); err != nil {
		return nil, malformed
	}
	t := &compactToken{header: jws.NewHeaders()}
	if err := t.header.UnmarshalJSON(value); err != nil {
		return nil, malformed
	}
	t.b64 = true
	if v, ok := t.header.Get("b64"); ok {
		t.b64, _ = v.(bool)
	}
	payloadCanonical := true
	if t.b64 {
		if t.payload, payloadCanonical, ok = decodeSegment(p64); !ok {
			return nil, malformed
		}
	} else {
		t.payload = []byte(p64)
	}
	if t.signature, _, ok = decodeSegment(s64); !ok {
		return nil, malformed
	}
	if canonical && payloadCanonical && len(value) == len(headerBytes) {
		t.signingInput = []byte(raw[:len(h64)+1+len(p64)])
		return t, nil
	}
	enc := base64.RawURLEncoding
	in := make([]byte, 0, enc.EncodedLen(len(value))+1+len(p64))
	in = enc.AppendEncode(in, value)
	in = append(in, '.')
	if t.b64 {
		in = enc.AppendEncode(in, t.payload)
	} else {
		in = append(in, p64...)
	}
	t.signingInput = in
	return t, nil
}

// decodeSegment decodes one base64url part (no padding, as jwx decodes it: bits past the last byte may be
// set); canonical is false when they are, so that encoding the bytes again gives another text.
func decodeSegment(s string) (b []byte, canonical, ok bool) {
	b, err := base64.RawURLEncoding.Strict().DecodeString(s)
	if err == nil {
		return b, true, true
	}
	b, err = base64.RawURLEncoding.DecodeString(s)
	return b, false, err == nil
}

// decodeClaims decodes the payload as a JSON object, numbers kept as json.Number; nil when it is not one.
// Like jwx, it reads the first JSON value and ignores what follows.
func decodeClaims(payload []byte) map[string]any {
	var claims map[string]any
	dec := json.NewDecoder(bytes.NewReader(payload))
	dec.UseNumber()
	if err := dec.Decode(&claims); err != nil {
		return nil
	}
	return claims
}
