package authz

import (
	"net/url"
	"path"
	"strings"
	"testing"
)

func TestCheckPath(t *testing.T) {
	tests := []struct {
		path string
		want string // substring of the refusal; "" = accepted
	}{
		{"/mcp", ""},
		{"/public/mcp", ""},
		{"/public/mcp/", ""},
		{"/", ""},
		{"/mcp?x=../../y&z=%2e%2e", ""}, // the query is never used to choose a resource
		{"/mcp/a.b/.well-known/x..y", ""},
		{"", "does not start with /"},
		{"mcp", "does not start with /"},
		{"*", "does not start with /"},
		{"http://h/mcp", "does not start with /"},
		{"/public/mcp/../../mcp", "dot segment"},
		{"/public/mcp/./../../mcp", "dot segment"},
		{"/public/mcp/..", "dot segment"},
		{"/public/mcp/.", "dot segment"},
		{"/public/mcp/%2e%2e/%2e%2e/mcp", "percent-encoded"},
		{"/public/mcp/%2E%2E/%2E%2E/mcp", "percent-encoded"},
		{"/public/mcp/..%2f..%2fmcp", "percent-encoded"},
		{"/public/mcp/..%2F..%2Fmcp", "percent-encoded"},
		{"/public/mcp/..%5c..%5cmcp", "percent-encoded"},
		{"/%6dcp", "percent-encoded"},
		{"/mcp%00", "percent-encoded"},
		{"/public/mcp/..\\..\\mcp", `'\\'`},
		{"/public/mcp;/../../mcp", "';'"},
		{"/mcp;jsessionid=1", "';'"},
		{"/mcp#frag", "'#'"},
		{"//mcp", "empty segment"},
		{"/public//mcp", "empty segment"},
		{"/mcp\x00", "control"},
		{"/mcp\r\nX: y", "control"},
		{"/mcp x", "control, space"},
		{"/mcp\x7f", "non-ASCII"},
		{"/mcp\xc3\xa9", "non-ASCII"},
	}
	for _, tc := range tests {
		err := checkPath(tc.path)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%q refused: %v", tc.path, err)
		case tc.want != "" && err == nil:
			t.Errorf("%q accepted, want a refusal with %q", tc.path, tc.want)
		case tc.want != "" && !strings.Contains(err.Error(), tc.want):
			t.Errorf("%q: %v, want %q", tc.path, err, tc.want)
		}
	}
	long := "/" + strings.Repeat("a", 5000) + "/.."
	if err := checkPath(long); err == nil || len(err.Error()) > 300 {
		t.Errorf("long path: %v", err)
	}
}

// normalized is a reference reading of a request path, as the readers downstream may act on it: the path
// before the query, percent-decoded, backslashes read as slashes (as some servers do), dot segments
// removed (RFC 3986 section 5.2.4), empty segments merged (nginx merge_slashes), path parameters dropped.
func normalized(p string) string {
	p, _, _ = strings.Cut(p, "?")
	p, _, _ = strings.Cut(p, "#")
	if d, err := url.PathUnescape(p); err == nil {
		p = d
	}
	p = strings.ReplaceAll(p, "\\", "/")
	segs := strings.Split(p, "/")
	for i, s := range segs {
		segs[i], _, _ = strings.Cut(s, ";")
	}
	p = path.Clean("/" + strings.Join(segs, "/"))
	return p
}

// FuzzResourceSelection checks that every path checkPath accepts selects the same resource as its
// normalized reading, so no hop that normalizes can land on another resource than the one decided.
func FuzzResourceSelection(f *testing.F) {
	for _, s := range []string{"/mcp", "/public/mcp/../../mcp", "/public/mcp/%2e%2e/%2e%2e/mcp", "/public/mcp/..%2f..%2fmcp",
		"/public/mcp/./../../mcp", "//mcp", "/public//mcp", "/mcp;x", "/public/mcp\\..\\..\\mcp", "/mcp/", "/public/mcp/x?y=/../"} {
		f.Add(s)
	}
	rs, err := newResources(nil)
	if err != nil {
		f.Fatal(err)
	}
	for _, u := range []string{"https://h/", "https://h/mcp", "https://h/public/mcp", "https://h/public/mcp/admin"} {
		r, err := newResource(resourceConfig(u))
		if err != nil {
			f.Fatal(err)
		}
		rs.list = append(rs.list, r)
	}
	pick := func(p string) string {
		r, err := rs.forRequest(&Request{Host: "h", Scheme: "https", Path: p})
		if err != nil {
			return ""
		}
		return r.cfg.URL
	}
	f.Fuzz(func(t *testing.T, p string) {
		if checkPath(p) != nil {
			return
		}
		if got, want := pick(p), pick(normalized(p)); got != want {
			t.Fatalf("%q accepted and selects %q, but its normalized reading %q selects %q", p, got, normalized(p), want)
		}
	})
}
