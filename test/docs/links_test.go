// Package docs keeps the repository's documentation navigable: every relative link in README.md,
// CONTRIBUTING.md, docs/*.md and deploy/README.md must name a file that exists and, when it has a
// #fragment, a heading of that file, as GitHub renders them. External links (http, https, mailto) are not
// followed: the test must not depend on the network.
package docs

import (
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"unicode"
)

// repoRoot is the repository root, seen from this package's folder (go test runs in test/docs).
const repoRoot = "../.."

// requiredDocs are the files checked that must exist; docs/*.md are added to them.
var requiredDocs = []string{"README.md", "CONTRIBUTING.md", "deploy/README.md"}

// TestDocLinks checks every relative link of the documentation against the repository's files and headings.
func TestDocLinks(t *testing.T) {
	root, err := filepath.Abs(repoRoot)
	if err != nil {
		t.Fatalf("repository root: %v", err)
	}
	files, err := docFiles(root)
	if err != nil {
		t.Fatal(err)
	}
	c := newChecker(root)
	links := 0
	for _, f := range files {
		n, problems, err := c.checkFile(f)
		if err != nil {
			t.Fatal(err)
		}
		links += n
		for _, p := range problems {
			t.Error(p)
		}
	}
	if links == 0 {
		t.Fatalf("no relative link found in %d files: the link parser is broken", len(files))
	}
	t.Logf("%d relative links checked in %d files", links, len(files))
}

// docFiles lists the checked Markdown files, relative to root (slash-separated).
func docFiles(root string) ([]string, error) {
	files := slices.Clone(requiredDocs)
	for _, f := range files {
		if _, err := os.Stat(filepath.Join(root, filepath.FromSlash(f))); err != nil {
			return nil, fmt.Errorf("documentation file %s: %w", f, err)
		}
	}
	more, err := filepath.Glob(filepath.Join(root, "docs", "*.md"))
	if err != nil {
		return nil, fmt.Errorf("list docs/*.md: %w", err)
	}
	for _, m := range more {
		files = append(files, "docs/"+filepath.Base(m))
	}
	return files, nil
}

// checker resolves links against one repository, reading each Markdown file once.
type checker struct {
	root    string
	anchors map[string]map[string]bool // by absolute path: the file's heading anchors
}

func newChecker(root string) *checker {
	return &checker{root: root, anchors: map[string]map[string]bool{}}
}

// checkFile checks the links of the Markdown file rel (relative to the root, slash-separated). It returns
// how many relative links it checked and one problem per broken link, as "file:line: target: why".
func (c *checker) checkFile(rel string) (int, []string, error) {
	abs := filepath.Join(c.root, filepath.FromSlash(rel))
	src, err := os.ReadFile(abs)
	if err != nil {
		return 0, nil, fmt.Errorf("read %s: %w", rel, err)
	}
	doc := parse(string(src))
	c.anchors[abs] = doc.anchors
	checked := 0
	var problems []string
	for _, l := range doc.links {
		relative, why := c.check(abs, l.target)
		if relative {
			checked++
		}
		if why != "" {
			problems = append(problems, fmt.Sprintf("%s:%d: %s: %s", rel, l.line, l.target, why))
		}
	}
	return checked, problems, nil
}

// schemeRE matches a URI scheme at the start of a link target.
var schemeRE = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9+.-]*:`)

// check resolves one link target found in the file from (absolute path). relative is false for the
// external links it skips; why is empty when the link resolves.
func (c *checker) check(from, target string) (relative bool, why string) {
	if m := schemeRE.FindString(target); m != "" {
		switch strings.ToLower(m) {
		case "http:", "https:", "mailto:":
			return false, ""
		}
		return true, "unsupported link scheme " + m
	}
	if strings.HasPrefix(target, "//") {
		return true, "protocol-relative link"
	}
	pathPart, anchor, hasAnchor := strings.Cut(target, "#")
	p, err := url.PathUnescape(pathPart)
	if err != nil {
		return true, fmt.Sprintf("bad escape in path: %v", err)
	}
	dest := from
	if p != "" {
		base := filepath.Dir(from)
		if strings.HasPrefix(p, "/") { // GitHub resolves a rooted link against the repository root
			base = c.root
		}
		dest = filepath.Join(base, filepath.FromSlash(p))
		if r, err := filepath.Rel(c.root, dest); err != nil || r == ".." || strings.HasPrefix(r, ".."+string(filepath.Separator)) {
			return true, "points outside the repository"
		}
		info, err := os.Stat(dest)
		if errors.Is(err, fs.ErrNotExist) {
			return true, "no such file or folder"
		}
		if err != nil {
			return true, err.Error()
		}
		if hasAnchor && info.IsDir() {
			return true, "anchor on a folder"
		}
	}
	if !hasAnchor {
		return true, ""
	}
	a, err := url.PathUnescape(anchor)
	if err != nil {
		return true, fmt.Sprintf("bad escape in anchor: %v", err)
	}
	if a == "" {
		return true, "empty anchor"
	}
	if !strings.EqualFold(filepath.Ext(dest), ".md") {
		return true, "anchor into a file that is not Markdown"
	}
	anchors, err := c.anchorsOf(dest)
	if err != nil {
		return true, err.Error()
	}
	if !anchors[a] {
		return true, fmt.Sprintf("no heading with anchor #%s in %s", a, c.shown(dest))
	}
	return true, ""
}

// anchorsOf returns the heading anchors of the Markdown file at abs.
func (c *checker) anchorsOf(abs string) (map[string]bool, error) {
	if a, ok := c.anchors[abs]; ok {
		return a, nil
	}
	src, err := os.ReadFile(abs)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", c.shown(abs), err)
	}
	a := parse(string(src)).anchors
	c.anchors[abs] = a
	return a, nil
}

// shown is abs relative to the root, for messages.
func (c *checker) shown(abs string) string {
	if r, err := filepath.Rel(c.root, abs); err == nil {
		return filepath.ToSlash(r)
	}
	return abs
}

// document is what the check needs of one Markdown file.
type document struct {
	anchors map[string]bool
	links   []link
}

// link is one link target and the line it is on (1-based).
type link struct {
	target string
	line   int
}

var (
	fenceRE   = regexp.MustCompile("^ {0,3}(`{3,}|~{3,})")
	headingRE = regexp.MustCompile(`^ {0,3}#{1,6}(?:[ \t]+(.*?))?[ \t]*$`)
	closingRE = regexp.MustCompile(`(?:^|[ \t]+)#+[ \t]*$`)
	// inlineLinkRE matches the destination of an inline link or image: ](target) or ](target "title").
	inlineLinkRE = regexp.MustCompile(`\]\(\s*(<[^>]*>|[^)\s]+)(?:\s+(?:"[^"]*"|'[^']*'|\([^)]*\)))?\s*\)`)
	// refDefRE matches a link reference definition, [label]: target, but not a footnote ([^1]: text).
	refDefRE = regexp.MustCompile(`^ {0,3}\[[^\]^][^\]]*\]:\s*(<[^>]*>|\S+)`)
	// htmlAnchorRE matches an explicit anchor: <a name="x"> or <a id="x">.
	htmlAnchorRE = regexp.MustCompile(`<a\s+(?:name|id)="([^"]+)"`)
	// headingLinkRE matches a link inside a heading, whose text alone makes the anchor.
	headingLinkRE = regexp.MustCompile(`\[([^\]]*)\]\([^)]*\)`)
)

// parse finds the heading anchors and the link targets of a Markdown document, outside fenced code blocks
// and code spans.
func parse(src string) document {
	doc := document{anchors: map[string]bool{}}
	seen := map[string]int{}
	fence := ""
	for i, line := range strings.Split(src, "\n") {
		line = strings.TrimRight(line, "\r")
		if m := fenceRE.FindStringSubmatch(line); m != nil {
			switch {
			case fence == "":
				fence = m[1]
				continue
			case m[1][0] == fence[0] && len(m[1]) >= len(fence) && strings.TrimSpace(line[len(m[0]):]) == "":
				fence = ""
				continue
			}
		}
		if fence != "" {
			continue
		}
		text := stripCodeSpans(line)
		if m := headingRE.FindStringSubmatch(line); m != nil {
			title := closingRE.ReplaceAllString(m[1], "")
			title = headingLinkRE.ReplaceAllString(title, "$1")
			s := slug(title)
			if n := seen[s]; n > 0 {
				doc.anchors[s+"-"+strconv.Itoa(n)] = true
			} else {
				doc.anchors[s] = true
			}
			seen[s]++
		}
		for _, m := range htmlAnchorRE.FindAllStringSubmatch(text, -1) {
			doc.anchors[m[1]] = true
		}
		for _, m := range inlineLinkRE.FindAllStringSubmatch(text, -1) {
			doc.links = append(doc.links, link{strings.Trim(m[1], "<>"), i + 1})
		}
		if m := refDefRE.FindStringSubmatch(text); m != nil {
			doc.links = append(doc.links, link{strings.Trim(m[1], "<>"), i + 1})
		}
	}
	return doc
}

// stripCodeSpans removes the code spans of one line (a run of backticks up to the next run of the same
// length), so that link-like text inside them is not taken for a link. An unclosed run is kept as text.
func stripCodeSpans(line string) string {
	var b strings.Builder
	for i := 0; i < len(line); {
		if line[i] != '`' {
			b.WriteByte(line[i])
			i++
			continue
		}
		n := runLength(line, i)
		end := -1
		for j := i + n; j < len(line); {
			if line[j] != '`' {
				j++
				continue
			}
			m := runLength(line, j)
			if m == n {
				end = j + m
				break
			}
			j += m
		}
		if end < 0 {
			b.WriteString(line[i : i+n])
			i += n
			continue
		}
		i = end
	}
	return b.String()
}

// runLength is the number of backticks starting at line[i].
func runLength(line string, i int) int {
	n := 0
	for i+n < len(line) && line[i+n] == '`' {
		n++
	}
	return n
}

// slug is the anchor GitHub gives a heading: lower-case, each space a '-', letters, digits, '-' and '_'
// kept, every other character (punctuation, symbols, backticks) dropped.
func slug(heading string) string {
	var b strings.Builder
	for _, r := range strings.TrimSpace(heading) {
		switch {
		case r == ' ':
			b.WriteByte('-')
		case r == '-' || r == '_' || unicode.IsLetter(r) || unicode.IsDigit(r) || unicode.IsMark(r):
			b.WriteRune(unicode.ToLower(r))
		}
	}
	return b.String()
}

// TestSlug checks heading anchors against GitHub's, for the kinds of headings the documentation has.
func TestSlug(t *testing.T) {
	for _, tc := range []struct {
		heading, want string
	}{
		{"Configuration", "configuration"},
		{"Decision log", "decision-log"},
		{"HTTP authorization mode (nginx, Traefik, Caddy, Envoy `http_service`)", "http-authorization-mode-nginx-traefik-caddy-envoy-http_service"},
		{"Deploy with Envoy", "deploy-with-envoy"},
		{"docker-compose", "docker-compose"},
		{"Decision cache and the input built", "decision-cache-and-the-input-built"},
		{"What's new?", "whats-new"},
		{"A: b / c", "a-b--c"},
		{"  padded  ", "padded"},
		{"v1.2 & v2.0", "v12--v20"},
		{"Überblick", "überblick"},
		{"snake_case and kebab-case", "snake_case-and-kebab-case"},
		{"**Bold** title", "bold-title"},
		{"", ""},
	} {
		t.Run(tc.heading, func(t *testing.T) {
			if got := slug(tc.heading); got != tc.want {
				t.Errorf("slug(%q) = %q, want %q", tc.heading, got, tc.want)
			}
		})
	}
}

// TestCheckFile runs the checker on small repositories of its own: each broken link must be reported, each
// valid or external one must not.
func TestCheckFile(t *testing.T) {
	other := "# Other\n\n## Same\n\n## Same\n\n<a id=\"custom\"></a>\n"
	for _, tc := range []struct {
		name    string
		doc     string
		checked int
		broken  []string // substrings of the expected problems, in order
	}{
		{"existing file", "[o](other.md)", 1, nil},
		{"missing file", "[x](missing.md)", 1, []string{"missing.md: no such file"}},
		{"folder", "[d](sub)", 1, nil},
		{"escaped path", "[o](oth%65r.md)", 1, nil},
		{"rooted path", "[o](/other.md)", 1, nil},
		{"outside the repository", "[x](../outside.md)", 1, []string{"points outside the repository"}},
		{"heading anchor", "[o](other.md#other)", 1, nil},
		{"missing anchor", "[o](other.md#nowhere)", 1, []string{"no heading with anchor #nowhere in other.md"}},
		{"duplicate headings numbered", "[a](other.md#same) [b](other.md#same-1)", 2, nil},
		{"third duplicate missing", "[c](other.md#same-2)", 1, []string{"#same-2"}},
		{"html anchor", "[o](other.md#custom)", 1, nil},
		{"anchor in this file", "# Top\n[t](#top) [u](#bottom)", 2, []string{"#bottom"}},
		{"anchor into a non-Markdown file", "[c](code.go#L1)", 1, []string{"not Markdown"}},
		{"anchor on a folder", "[d](sub#x)", 1, []string{"anchor on a folder"}},
		{"empty anchor", "[o](other.md#)", 1, []string{"empty anchor"}},
		{"external links skipped", "[a](https://example.com/x) [b](http://example.com) [c](mailto:a@example.com)", 0, nil},
		{"other scheme", "[f](ftp://example.com/x)", 1, []string{"unsupported link scheme"}},
		{"image", "![i](missing.png)", 1, []string{"missing.png"}},
		{"title", `[o](other.md "Other")`, 1, nil},
		{"angle brackets", "[o](<other.md>)", 1, nil},
		{"reference definition", "[o][ref]\n\n[ref]: missing.md", 1, []string{"missing.md"}},
		{"footnote is not a link", "a[^1]\n\n[^1]: some note", 0, nil},
		{"code span ignored", "`[x](missing.md)` and ``a ` [y](missing.md)``", 0, nil},
		{"fenced code ignored", "```md\n[x](missing.md)\n# not a heading\n```\n[h](#not-a-heading)", 1, []string{"#not-a-heading"}},
		{"tilde fence ignored", "~~~\n[x](missing.md)\n~~~", 0, nil},
		{"line numbers", "one\n\n[x](missing.md)", 1, []string{"doc.md:3:"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			for name, body := range map[string]string{"doc.md": tc.doc, "other.md": other, "code.go": "package x\n", "sub/keep.md": "# Keep\n"} {
				p := filepath.Join(root, filepath.FromSlash(name))
				if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			checked, problems, err := newChecker(root).checkFile("doc.md")
			if err != nil {
				t.Fatal(err)
			}
			if checked != tc.checked {
				t.Errorf("checked %d links, want %d", checked, tc.checked)
			}
			if len(problems) != len(tc.broken) {
				t.Fatalf("problems %q, want %d matching %q", problems, len(tc.broken), tc.broken)
			}
			for i, want := range tc.broken {
				if !strings.Contains(problems[i], want) {
					t.Errorf("problem %q does not contain %q", problems[i], want)
				}
			}
		})
	}
}
