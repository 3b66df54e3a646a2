package authz

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwt"
)

// registered are the registered claims verify checks against the clock and the resource: read once from the
// claims decoded for the Identity, with the types and conversions of jwx's jwt.Token (the library this
// service verified tokens with first, and whose answers verify keeps), so that a token it would refuse as
// malformed is refused here too.
type registered struct {
	iat, nbf, exp time.Time // zero when absent
	hasExp        bool      // exp present (with any value that reads as a NumericDate, 0 included)
	aud           []string  // nil when absent
}

var errMalformedClaims = errors.New("malformed claims")

// typedClaims are the claims jwt.Token decodes into typed fields (refusing a value of another type); all
// other claims may hold any JSON.
var typedClaims = [...]string{"aud", "exp", "iat", "nbf", "iss", "sub", "jti"}

// readRegistered reads the registered claims of a verified token from claims (payload decoded with
// UseNumber). jwt.Token decodes the payload member by member, so a name given twice is checked in each
// of its values, where the map holds only the last one: a payload in which a typed claim's name may occur
// twice (it is found twice, or written with a \u escape) is therefore decoded by jwt.Token itself.
func readRegistered(payload []byte, claims map[string]any) (registered, error) {
	if !knownFormat(claims) {
		return registered{}, errMalformedClaims
	}
	if mayRepeatTypedClaim(payload) {
		return readRegisteredByJWT(payload)
	}
	if !numbersFitFloat64(claims) {
		return registered{}, errMalformedClaims
	}
	var r registered
	for _, name := range [...]string{"iss", "sub", "jti"} {
		if v, ok := claims[name]; ok && v != nil {
			if _, ok := v.(string); !ok {
				return registered{}, errMalformedClaims
			}
		}
	}
	if v, ok := claims["aud"]; ok {
		aud, err := stringList(v)
		if err != nil {
			return registered{}, err
		}
		r.aud = aud
	}
	for _, c := range [...]struct {
		name string
		dst  *time.Time
	}{{"exp", &r.exp}, {"iat", &r.iat}, {"nbf", &r.nbf}} {
		v, ok := claims[c.name]
		if !ok {
			continue
		}
		t, err := numericDate(v)
		if err != nil {
			return registered{}, err
		}
		*c.dst = t
	}
	_, r.hasExp = claims["exp"]
	return r, nil
}

// readRegisteredByJWT reads the registered claims with jwt.Token's own decoder, as jwx reads them after
// verifying a signature (one JSON value, what follows it ignored).
func readRegisteredByJWT(payload []byte) (registered, error) {
	tok := jwt.New()
	if err := json.NewDecoder(bytes.NewReader(payload)).Decode(tok); err != nil {
		return registered{}, fmt.Errorf("%w: %w", errMalformedClaims, err)
	}
	_, hasExp := tok.Get(jwt.ExpirationKey)
	return registered{iat: tok.IssuedAt(), nbf: tok.NotBefore(), exp: tok.Expiration(), hasExp: hasExp, aud: tok.Audience()}, nil
}

// mayRepeatTypedClaim reports whether a typed claim's name may be a member name more than once in payload:
// it occurs twice as a JSON string, or the payload holds a \u escape (which could spell it). It looks at
// every '"' once: the typed claims' names all have three letters.
func mayRepeatTypedClaim(payload []byte) bool {
	if bytes.Contains(payload, []byte(`\u`)) {
		return true
	}
	var seen [len(typedClaims)]bool
	for i := 0; ; {
		j := bytes.IndexByte(payload[i:], '"')
		if j < 0 {
			return false
		}
		i += j + 1
		if i+4 > len(payload) || payload[i+3] != '"' {
			continue
		}
		for k, name := range typedClaims {
			if string(payload[i:i+3]) == name {
				if seen[k] {
					return true
				}
				seen[k] = true
			}
		}
	}
}

// knownFormat reports whether jwx takes the payload for the claims of a JWT rather than for another JOSE
// object (jwx.GuessFormat, which matches member names as encoding/json does, ignoring case): a payload with
// no `aud` but with `kty`, `keys`, `ciphertext`, or `signatures` and `payload`, is not one.
func knownFormat(claims map[string]any) bool {
	if _, ok := claims["aud"]; ok {
		return true
	}
	var other, signatures, payload bool
	for name := range claims {
		switch {
		case strings.EqualFold(name, "aud"):
			return true
		case strings.EqualFold(name, "kty"), strings.EqualFold(name, "keys"), strings.EqualFold(name, "ciphertext"):
			other = true
		case strings.EqualFold(name, "signatures"):
			signatures = true
		case strings.EqualFold(name, "payload"):
			payload = true
		}
	}
	return !other && !(signatures && payload)
}

// numbersFitFloat64 reports whether every number in v is within the range of a float64, as jwt.Token needs
// to decode its claims (encoding/json refuses a larger one).
func numbersFitFloat64(v any) bool {
	switch v := v.(type) {
	case json.Number:
		if len(v) <= 15 && !strings.ContainsAny(string(v), "eE") {
			return true
		}
		_, err := strconv.ParseFloat(string(v), 64)
		return err == nil
	case map[string]any:
		for _, e := range v {
			if !numbersFitFloat64(e) {
				return false
			}
		}
	case []any:
		for _, e := range v {
			if !numbersFitFloat64(e) {
				return false
			}
		}
	}
	return true
}

// stringList reads `aud` as jwt.Token does: a string, or an array of strings.
func stringList(v any) ([]string, error) {
	switch v := v.(type) {
	case string:
		return []string{v}, nil
	case []any:
		out := make([]string, len(v))
		for i, e := range v {
			s, ok := e.(string)
			if !ok {
				return nil, errMalformedClaims
			}
			out[i] = s
		}
		return out, nil
	default:
		return nil, errMalformedClaims
	}
}

// numericDate reads a NumericDate claim as jwt.Token does: a JSON number (as a float64, to the second, not
// negative) or a string holding one, or an RFC 3339 timestamp.
func numericDate(v any) (time.Time, error) {
	switch v := v.(type) {
	case json.Number:
		f, err := strconv.ParseFloat(string(v), 64)
		if err != nil {
			return time.Time{}, errMalformedClaims
		}
		return parseNumericString(strconv.FormatFloat(f, 'f', 9, 64))
	case string:
		return parseNumericString(v)
	default:
		return time.Time{}, errMalformedClaims
	}
}

// parseNumericString is jwx's reading of a NumericDate's text: digits and dots are seconds since the epoch
// (the fraction dropped), anything else must be an RFC 3339 timestamp.
func parseNumericString(s string) (time.Time, error) {
	for _, r := range s {
		if '0' <= r && r <= '9' || r == '.' {
			continue
		}
		t, err := time.Parse(time.RFC3339, s)
		if err != nil {
			return time.Time{}, errMalformedClaims
		}
		return t.UTC(), nil
	}
	whole := s
	if i := strings.IndexByte(s, '.'); i > 0 {
		whole = s[:i]
	}
	n, err := strconv.ParseInt(whole, 10, 64)
	if err != nil {
		return time.Time{}, errMalformedClaims
	}
	return time.Unix(n, 0).UTC(), nil
}

// validate checks the time-based claims against the clock, with the leeway, in jwt.Validate's order: iat,
// exp, nbf (each ignored when absent or 0, all truncated to the second), then that exp is present.
func (v *Verifier) validate(r *registered) *Error {
	now := v.now().Truncate(time.Second)
	if set(r.iat) && now.Before(r.iat.Truncate(time.Second).Add(-v.leeway)) {
		return errInvalidToken("token issued in the future")
	}
	if set(r.exp) && !now.Before(r.exp.Truncate(time.Second).Add(v.leeway)) {
		return errInvalidToken("token expired")
	}
	if set(r.nbf) && now.Before(r.nbf.Truncate(time.Second).Add(-v.leeway)) {
		return errInvalidToken("token not yet valid")
	}
	if !r.hasExp {
		return errInvalidToken("token has no exp claim")
	}
	return nil
}

// set reports whether a NumericDate counts for validation: jwt.Validate ignores a zero time and the epoch.
func set(t time.Time) bool { return !t.IsZero() && t.Unix() != 0 }
