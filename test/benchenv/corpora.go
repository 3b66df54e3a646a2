package benchenv

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"

	"github.com/mcp-authz/mcp-authz/test/idp"
)

// corpusTools are the allowed tools the corpora below call, in turn.
var corpusTools = []string{"echo", "list_files", "search"}

// ZipfCorpus is `requests` allowed tools/calls by users drawn among `users` with Zipf popularity (exponent
// s > 1, seeded), as traffic from many callers of unequal activity: a few call often, most rarely. A token
// is minted only for the users drawn, and the requests of a user share its token and its three requests
// (one per tool), so memory grows with the users drawn, not with requests. It also returns how many users
// were drawn.
func ZipfCorpus(p *idp.Provider, users, requests int, s float64, seed uint64) ([]Case, int, error) {
	if users < 2 || requests < 1 || s <= 1 {
		return nil, 0, errors.New("zipf corpus: need at least two users, one request and an exponent above 1")
	}
	z := rand.NewZipf(rand.New(rand.NewPCG(seed, seed)), s, 1, uint64(users-1))
	byUser := map[uint64][]Case{}
	cs := make([]Case, 0, requests)
	for i := range requests {
		u := z.Uint64()
		calls, ok := byUser[u]
		if !ok {
			tok, err := p.Mint(userClaims(fmt.Sprintf("zipf-%d", u), nil))
			if err != nil {
				return nil, 0, fmt.Errorf("zipf corpus: mint: %w", err)
			}
			for n, tool := range corpusTools {
				calls = append(calls, Case{Name: "allow " + tool, Request: CheckRequest(tok, CallTool(tool, n+1)), Token: tok, Allow: true, Status: 200})
			}
			byUser[u] = calls
		}
		cs = append(cs, calls[i%len(calls)])
	}
	return cs, len(byUser), nil
}

// FreshCorpus is n allowed tools/calls, each with a token of its own: with n above the token caches' sizes,
// every request pays a full verification, as the first request of each token does.
func FreshCorpus(p *idp.Provider, n int) ([]Case, error) {
	if n < 1 {
		return nil, errors.New("fresh corpus: need at least one request")
	}
	cs := make([]Case, 0, n)
	for i := range n {
		tok, err := p.Mint(userClaims(fmt.Sprintf("fresh-%d", i), nil))
		if err != nil {
			return nil, fmt.Errorf("fresh corpus: mint: %w", err)
		}
		tool := corpusTools[i%len(corpusTools)]
		cs = append(cs, Case{Name: "allow " + tool, Request: CheckRequest(tok, CallTool(tool, i+1)), Token: tok, Allow: true, Status: 200})
	}
	return cs, nil
}

// badSignatureVariants is how many distinct bad-signature tokens BadSignatureCorpus derives from one minted
// token: one base64url character changed, at one of 300 positions of the signature, to one of 63 others.
const badSignatureVariants = 300 * 63

// BadSignatureCorpus is n tools/calls, each with a distinct token whose signature does not verify (401), as
// a flood of forged tokens: with n above the refused-token cache's size, every request pays a signature
// check. The tokens are derived from few minted ones by changing one character inside the signature
// (never the last ones, whose spare bits a decoder may ignore).
func BadSignatureCorpus(p *idp.Provider, n int) ([]Case, error) {
	if n < 1 {
		return nil, errors.New("bad signature corpus: need at least one request")
	}
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	cs := make([]Case, 0, n)
	var tok string
	for i := range n {
		if i%badSignatureVariants == 0 {
			var err error
			if tok, err = p.Mint(userClaims(fmt.Sprintf("forged-%d", i/badSignatureVariants), nil)); err != nil {
				return nil, fmt.Errorf("bad signature corpus: mint: %w", err)
			}
		}
		v := i % badSignatureVariants
		pos := strings.LastIndexByte(tok, '.') + 10 + v%300
		orig := strings.IndexByte(alphabet, tok[pos])
		repl := alphabet[(orig+1+v/300)%len(alphabet)]
		bad := tok[:pos] + string(repl) + tok[pos+1:]
		cs = append(cs, Case{Name: "deny bad signature", Request: CheckRequest(bad, CallTool("echo", i+1)), Token: bad, Status: 401})
	}
	return cs, nil
}
