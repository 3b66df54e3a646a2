package authz

import (
	"sync/atomic"

	"github.com/mcp-authz/mcp-authz/policy"
	"github.com/open-policy-agent/opa/v1/ast"
)

// tokenTerm is the `token` member of the policy input for a generation's claim set: subject, issuer,
// client_id (when set), scopes and the claims the generation reads (claims; nil: all of them). The members
// the decision cache of the shipped policy keys on (scopes, claims, client_id) are built at once; the
// object holding them all only when a policy evaluation needs the document (a decision cache miss) or a
// policy reads the subject or issuer, which most requests of a new token never do. OPA only reads the
// terms, so one tokenTerm may serve concurrent requests.
type tokenTerm struct {
	claims                    *policy.Claims
	scopes, claimsObject, cid *ast.Term // cid nil: no client id
	subject, issuer           string
	object                    atomic.Pointer[ast.Term]
}

// newTokenTerm builds the members of id's `token` member for the claim set claims.
func newTokenTerm(id *Identity, claims *policy.Claims) (*tokenTerm, error) {
	claimsValue, err := claimsObject(id.Claims, claims)
	if err != nil {
		return nil, err
	}
	scopes := make([]*ast.Term, len(id.Scopes))
	for i, s := range id.Scopes {
		scopes[i] = ast.StringTerm(s)
	}
	return &tokenTerm{claims: claims, scopes: ast.ArrayTerm(scopes...), claimsObject: ast.NewTerm(claimsValue),
		cid: optionalString(id.ClientID), subject: id.Subject, issuer: id.Issuer}, nil
}

// whole is the `token` object, built on first use; concurrent first uses build equal objects and keep one.
func (t *tokenTerm) whole() *ast.Term {
	if o := t.object.Load(); o != nil {
		return o
	}
	obj := ast.NewObjectWithCapacity(5)
	for _, m := range [...]struct{ key, value *ast.Term }{{tokenMember.scopes, t.scopes}, {tokenMember.claims, t.claimsObject},
		{tokenMember.subject, optionalString(t.subject)}, {tokenMember.issuer, optionalString(t.issuer)}, {tokenMember.clientID, t.cid}} {
		if m.value != nil {
			obj.Insert(m.key, m.value)
		}
	}
	o := ast.NewTerm(obj)
	if !t.object.CompareAndSwap(nil, o) {
		return t.object.Load()
	}
	return o
}

// lookup is policy.Descend on the whole object at path (under `token`), without building the object for
// scopes, claims and client_id.
func (t *tokenTerm) lookup(path ast.Ref) (*ast.Term, bool) {
	if len(path) > 0 {
		switch path[0].Value {
		case tokenMember.scopes.Value:
			return policy.Descend(t.scopes, path[1:])
		case tokenMember.claims.Value:
			return policy.Descend(t.claimsObject, path[1:])
		case tokenMember.clientID.Value:
			if t.cid == nil {
				return nil, true
			}
			return policy.Descend(t.cid, path[1:])
		}
	}
	return policy.Descend(t.whole(), path)
}

// claimsObject is input.token.claims: the members of claims the set names (every one for the nil set).
func claimsObject(claims map[string]any, set *policy.Claims) (ast.Value, error) {
	if set == nil {
		return ast.InterfaceToValue(claims)
	}
	obj := ast.NewObjectWithCapacity(len(set.Names()))
	for _, name := range set.Names() {
		v, ok := claims[name]
		if !ok {
			continue
		}
		value, err := ast.InterfaceToValue(v)
		if err != nil {
			return nil, err
		}
		obj.Insert(ast.StringTerm(name), ast.NewTerm(value))
	}
	return obj, nil
}

// tokenMember holds the member names of the `token` member as terms, built once (see inputKey). Never
// modified.
var tokenMember = struct{ scopes, claims, subject, issuer, clientID *ast.Term }{
	ast.StringTerm("scopes"), ast.StringTerm("claims"), ast.StringTerm("subject"), ast.StringTerm("issuer"), ast.StringTerm("client_id"),
}
