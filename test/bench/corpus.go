package main

import (
	"flag"
	"fmt"
	"slices"
	"strings"

	"github.com/mcp-authz/mcp-authz/test/benchenv"
	"github.com/mcp-authz/mcp-authz/test/idp"
)

// corpusKinds are the corpora of `-corpus all`, in the order they run.
var corpusKinds = []string{"small", "zipf", "fresh", "badsig"}

// corpusOptions choose the requests of the comparison run (-corpus).
type corpusOptions struct {
	kinds []string // the corpora to run in turn, each a whole comparison
	kind  string   // the corpus of the current comparison: small, zipf, fresh or badsig
	users int      // zipf: users to draw from
	size  int      // zipf: requests; fresh, badsig: distinct tokens
	zipfS float64  // zipf: exponent
}

func (o *corpusOptions) flags() {
	flag.Func("corpus", "requests of the comparison, or several comparisons in turn (comma-separated; all: small,zipf,fresh,badsig), summed up in one table at the end: small (-users tokens, each calling 3 tools 4 times, and 3 denies), zipf (users of unequal activity, Zipf -corpus-s over -corpus-users, -corpus-size requests), fresh (-corpus-size allowed requests, each with a token of its own), badsig (-corpus-size requests, each with a distinct token whose signature does not verify) (default small)", func(v string) error {
		o.kinds = nil
		for _, k := range strings.Split(v, ",") {
			switch {
			case k == "all":
				o.kinds = append(o.kinds, corpusKinds...)
			case slices.Contains(corpusKinds, k):
				o.kinds = append(o.kinds, k)
			default:
				return fmt.Errorf("%q: want small, zipf, fresh, badsig or all", k)
			}
		}
		return nil
	})
	flag.IntVar(&o.users, "corpus-users", 50_000, "zipf corpus: users drawn from (a token is minted for each user drawn)")
	flag.IntVar(&o.size, "corpus-size", 20_000, "zipf corpus: requests; fresh and badsig corpora: distinct tokens (above the token caches' 4096 and 1024, so that they do not hit)")
	flag.Float64Var(&o.zipfS, "corpus-s", 1.1, "zipf corpus: exponent of the popularity of users (above 1)")
}

// buildCorpus mints the corpus chosen and says what it is, in one line.
func buildCorpus(p *idp.Provider, o options) ([]benchenv.Case, string, error) {
	c := o.corpus
	switch c.kind {
	case "small":
		corpus, err := benchenv.Corpus(p, o.users)
		if err != nil {
			return nil, "", err
		}
		denies := 0
		for _, c := range corpus {
			if !c.Allow {
				denies++
			}
		}
		return corpus, fmt.Sprintf("corpus: %d CheckRequests (%d allows with %d valid RS256 tokens calling tools/call, %d denies: restricted tool without scope, expired token, bad signature)", len(corpus), len(corpus)-denies, o.users, denies), nil
	case "zipf":
		corpus, drawn, err := benchenv.ZipfCorpus(p, c.users, c.size, c.zipfS, 1)
		if err != nil {
			return nil, "", err
		}
		return corpus, fmt.Sprintf("corpus zipf: %d allowed tools/calls by %d users drawn with Zipf popularity (s=%.2f) among %d, one RS256 token each", len(corpus), drawn, c.zipfS, c.users), nil
	case "fresh":
		corpus, err := benchenv.FreshCorpus(p, c.size)
		if err != nil {
			return nil, "", err
		}
		return corpus, fmt.Sprintf("corpus fresh: %d allowed tools/calls, each with an RS256 token of its own (used again only after all the others)", len(corpus)), nil
	case "badsig":
		corpus, err := benchenv.BadSignatureCorpus(p, c.size)
		if err != nil {
			return nil, "", err
		}
		return corpus, fmt.Sprintf("corpus badsig: %d tools/calls, each with a distinct token whose signature does not verify (401)", len(corpus)), nil
	default:
		return nil, "", fmt.Errorf("-corpus %q: want small, zipf, fresh or badsig", c.kind)
	}
}
