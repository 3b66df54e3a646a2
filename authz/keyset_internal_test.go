package authz

import (
	"github.com/lestrrat-go/jwx/v2/jwk"
)

// installSet makes the keys of set the snapshot ks uses, as a fetch would, without a server.
func installSet(ks *KeySet, set jwk.Set) {
	keys := make([]jwk.Key, 0, set.Len())
	for i := range set.Len() {
		key, _ := set.Key(i)
		keys = append(keys, key)
	}
	ks.install(keys, [32]byte{})
}
