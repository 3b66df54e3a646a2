package authz

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"strings"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jws"
)

// compactToken is a JWS in the compact serialization, split and decoded, not yet verified.
type compactToken struct {
	header    joseHeader
	payload   []byte
	signature []byte
	// signingInput is what the signature covers, as jwx computes it: the header's JSON value and the payload,
	// each base64url-encoded again. For a token in the canonical encoding this is the token up to its
	// second dot.
	signingInput []byte
}

// joseHeader is what verify reads of the protected header.
type joseHeader struct {
	alg      jwa.SignatureAlgorithm
	kid, typ string
	critical bool // a non-empty `crit`
	b64      bool // the payload is base64url-encoded (RFC 7797: the `b64` header, true unless set otherwise)
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
	t := &compactToken{}
	// The header is one JSON value: jwx reads the first one (what follows it is ignored) and signs over it.
	value := headerBytes
	if t.header, ok = simpleHeader(headerBytes); !ok {
		value = nil
		if err := json.NewDecoder(bytes.NewReader(headerBytes)).Decode((*json.RawMessage)(&value)); err != nil {
			return nil, malformed
		}
		h := jws.NewHeaders()
		if err := h.UnmarshalJSON(value); err != nil {
			return nil, malformed
		}
		t.header = joseHeader{alg: h.Algorithm(), kid: h.KeyID(), typ: h.Type(), critical: len(h.Critical()) > 0, b64: true}
		if v, ok := h.Get("b64"); ok {
			t.header.b64, _ = v.(bool)
		}
	}
	payloadCanonical := true
	if t.header.b64 {
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
	if t.header.b64 {
		in = enc.AppendEncode(in, t.payload)
	} else {
		in = append(in, p64...)
	}
	t.signingInput = in
	return t, nil
}

// simpleHeader reads the protected header IdPs send: a JSON object of alg (an asymmetric algorithm) and at
// most kid and typ, each once, with string values that need no unescaping (printable ASCII, no
// backslash), nothing before or after the object. Such a header means to jwx exactly what it says; ok is
// false for any other, which parseCompact leaves to jwx's own parser (jws.Headers).
func simpleHeader(b []byte) (h joseHeader, ok bool) {
	if len(b) < 2 || b[0] != '{' || b[len(b)-1] != '}' {
		return h, false
	}
	i := 1
	space := func() {
		for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
			i++
		}
	}
	str := func() (string, bool) {
		if i >= len(b) || b[i] != '"' {
			return "", false
		}
		i++
		start := i
		for ; i < len(b) && b[i] != '"'; i++ {
			if b[i] < 0x20 || b[i] >= 0x7f || b[i] == '\\' {
				return "", false
			}
		}
		if i >= len(b) {
			return "", false
		}
		i++
		return string(b[start : i-1]), true
	}
	var alg, kid, typ bool
	for {
		space()
		name, ok := str()
		if !ok {
			return h, false
		}
		space()
		if i >= len(b) || b[i] != ':' {
			return h, false
		}
		i++
		space()
		value, ok := str()
		if !ok {
			return h, false
		}
		switch {
		case name == "alg" && !alg:
			alg, h.alg = true, jwa.SignatureAlgorithm(value)
		case name == "kid" && !kid:
			kid, h.kid = true, value
		case name == "typ" && !typ:
			typ, h.typ = true, value
		default:
			return h, false
		}
		space()
		if i < len(b)-1 && b[i] == ',' {
			i++
			continue
		}
		if i != len(b)-1 { // the closing brace
			return h, false
		}
		break
	}
	switch h.alg {
	case jwa.RS256, jwa.RS384, jwa.RS512, jwa.PS256, jwa.PS384, jwa.PS512, jwa.ES256, jwa.ES384, jwa.ES512, jwa.EdDSA:
		h.b64 = true
		return h, true
	}
	return h, false
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
// Like jwx, it reads the first JSON value and ignores what follows. It decodes into an interface value,
// which encoding/json builds without reflection (a map target costs a reflect.New and an assignment by
// reflection per member), and gives the same map.
func decodeClaims(payload []byte) map[string]any {
	var v any
	dec := json.NewDecoder(bytes.NewReader(payload))
	dec.UseNumber()
	if err := dec.Decode(&v); err != nil {
		return nil
	}
	claims, _ := v.(map[string]any)
	return claims
}
