package authz

import "strings"

// maxRequestIDBytes bounds the client-controlled `x-request-id` recorded in logs and spans.
const maxRequestIDBytes = 128

// requestID is the request's `x-request-id`, cut to maxRequestIDBytes and scrubbed of tokens.
func requestID(req *Request) string {
	id := req.Headers["x-request-id"]
	if len(id) > maxRequestIDBytes {
		id = id[:maxRequestIDBytes]
	}
	return redactTokens(id)
}

// redactTokens replaces anything shaped like a compact JWS/JWE (three or more dot-separated base64url
// segments, the first a JOSE header: base64url of `{"`, so starting "eyJ") in a free-text value. Reasons never carry a token
// by construction; this keeps a future mistake out of traces and logs.
func redactTokens(s string) string {
	if !mayHoldToken(s) {
		return s
	}
	out := make([]byte, 0, len(s))
	i := 0
	for i < len(s) {
		if !isB64URL(s[i]) {
			out = append(out, s[i])
			i++
			continue
		}
		j := i
		segs := 1
		for j < len(s) && (isB64URL(s[j]) || s[j] == '.') {
			if s[j] == '.' {
				segs++
			}
			j++
		}
		if segs >= 3 && strings.Contains(s[i:j], "eyJ") {
			out = append(out, "[redacted]"...)
		} else {
			out = append(out, s[i:j]...)
		}
		i = j
	}
	return string(out)
}

// mayHoldToken is the cheap test before redactTokens scans: two dots at least.
func mayHoldToken(s string) bool {
	n := 0
	for i := 0; i < len(s); i++ {
		if s[i] == '.' {
			if n++; n == 2 {
				return true
			}
		}
	}
	return false
}

func isB64URL(c byte) bool {
	return c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '='
}
