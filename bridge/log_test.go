package bridge

import (
	"log/slog"
	"strings"
	"testing"
)

func TestLogDecision(t *testing.T) {
	buf := &syncBuffer{}
	b := &Bridge{log: slog.New(slog.NewJSONHandler(buf, nil))}
	is := &issuer{id: "okta"}
	b.logDecision(t.Context(), is, decision{event: "token", outcome: "deny", reason: strings.Repeat("r", 500), client: "Claude (abc)", redirect: "claude.ai", idpError: "invalid_grant"})
	b.logDecision(t.Context(), is, decision{event: "token", outcome: "error"})
	b.logDecision(t.Context(), is, decision{event: "register", outcome: "allow"})
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 3 {
		t.Fatalf("%d lines", len(lines))
	}
	for i, want := range []string{`"level":"WARN"`, `"level":"ERROR"`, `"level":"INFO"`} {
		if !strings.Contains(lines[i], want) || !strings.Contains(lines[i], `"msg":"bridge decision"`) || !strings.Contains(lines[i], `"bridge":"okta"`) {
			t.Errorf("line %d: %s", i, lines[i])
		}
	}
	for _, want := range []string{`"client":"Claude (abc)"`, `"redirect_host":"claude.ai"`, `"idp_error":"invalid_grant"`, strings.Repeat("r", 200) + `..."`} {
		if !strings.Contains(lines[0], want) {
			t.Errorf("line lacks %s: %s", want, lines[0])
		}
	}
	if strings.Contains(lines[2], "reason") {
		t.Errorf("empty fields logged: %s", lines[2])
	}
}

func TestErrorText(t *testing.T) {
	for in, want := range map[string]string{
		"plain description":            "plain description",
		"quote\" back\\slash\nnewline": "quote backslashnewline",
		"caf\u00e9":                    "caf",
		strings.Repeat("a", 300):       strings.Repeat("a", 200),
	} {
		if got := errorText(in); got != want {
			t.Errorf("errorText(%q) = %q, want %q", in, got, want)
		}
	}
}
