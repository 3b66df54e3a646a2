package authz

import (
	"bytes"
	"crypto"
	"crypto/fips140"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/sha512"
	"math"

	"filippo.io/bigmod"
	"github.com/lestrrat-go/jwx/v2/jwa"
)

// rsaKey is an RSA public key made ready, once per key set, to verify RS256, RS384 and RS512 signatures.
// crypto/rsa takes an *rsa.PublicKey and converts its modulus into Montgomery form (bigmod.NewModulus) on
// every verification: about a third of the cost of one, paid by every token verified afresh. rsaKey keeps
// the converted modulus and runs the rest of RSASSA-PKCS1-v1_5 verification (RFC 8017 §8.2.2) as
// crypto/rsa does, with filippo.io/bigmod, the standalone copy of the arithmetic crypto/rsa itself uses.
// TestRSAVerifyDifferential compares the two on valid, altered and hostile signatures.
type rsaKey struct {
	n    *bigmod.Modulus
	e    uint
	size int // bytes of the modulus: the length of every signature
}

// newRSAKey returns pub made ready for verification, or nil when the verifier should leave it to
// crypto/rsa: in FIPS 140 mode (verification stays inside the validated module), and for a key crypto/rsa
// refuses to verify with or may treat differently (a modulus under 1024 bits or even, an exponent under
// 2, even, or above 2^31-1), so that such keys keep crypto/rsa's own answer.
func newRSAKey(pub *rsa.PublicKey) *rsaKey {
	if fips140.Enabled() || pub == nil || pub.N == nil || pub.N.BitLen() < 1024 || pub.N.Bit(0) == 0 ||
		pub.E < 2 || pub.E&1 == 0 || pub.E > math.MaxInt32 {
		return nil
	}
	n, err := bigmod.NewModulus(pub.N.Bytes())
	if err != nil {
		return nil
	}
	return &rsaKey{n: n, e: uint(pub.E), size: n.Size()}
}

// pkcs1v15Hashes are the hashes of the RSASSA-PKCS1-v1_5 algorithms of JWS (RFC 7518 §3.3), with the DER
// prefix of their DigestInfo (RFC 8017 §9.2, note 1).
var pkcs1v15Hashes = map[jwa.SignatureAlgorithm]struct {
	hash   crypto.Hash         // the hash function, as crypto/rsa names it (TestRSAVerifyDifferential's oracle)
	sum    func([]byte) []byte // its sum of a message, without a hash.Hash on the heap
	prefix []byte
}{
	jwa.RS256: {crypto.SHA256, func(b []byte) []byte { s := sha256.Sum256(b); return s[:] }, []byte{0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01, 0x05, 0x00, 0x04, 0x20}},
	jwa.RS384: {crypto.SHA384, func(b []byte) []byte { s := sha512.Sum384(b); return s[:] }, []byte{0x30, 0x41, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x02, 0x05, 0x00, 0x04, 0x30}},
	jwa.RS512: {crypto.SHA512, func(b []byte) []byte { s := sha512.Sum512(b); return s[:] }, []byte{0x30, 0x51, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x03, 0x05, 0x00, 0x04, 0x40}},
}

// isPKCS1v15 reports whether alg is one of the RSASSA-PKCS1-v1_5 algorithms rsaKey verifies.
func isPKCS1v15(alg jwa.SignatureAlgorithm) bool {
	_, ok := pkcs1v15Hashes[alg]
	return ok
}

// verify reports whether sig is a valid RSASSA-PKCS1-v1_5 signature of signingInput for alg (RS256, RS384
// or RS512; any other algorithm is refused), as crypto/rsa's VerifyPKCS1v15 decides: the signature must be
// as long as the modulus and below it, and s^e mod n must be exactly the encoding of the hash of
// signingInput. Everything it handles is public: it need not run in constant time.
func (k *rsaKey) verify(alg jwa.SignatureAlgorithm, signingInput, sig []byte) bool {
	h, ok := pkcs1v15Hashes[alg]
	if !ok || len(sig) != k.size {
		return false
	}
	s, err := bigmod.NewNat().SetBytes(sig, k.n)
	if err != nil {
		return false // s >= n
	}
	em := bigmod.NewNat().ExpShortVarTime(s, k.e, k.n).Bytes(k.n)
	digest := h.sum(signingInput)
	// EM = 0x00 || 0x01 || PS (0xff, at least 8 bytes) || 0x00 || DigestInfo prefix || digest
	tLen := len(h.prefix) + len(digest)
	if k.size < tLen+11 {
		return false
	}
	want := make([]byte, k.size)
	want[1] = 1
	for i := 2; i < k.size-tLen-1; i++ {
		want[i] = 0xff
	}
	copy(want[k.size-tLen:], h.prefix)
	copy(want[k.size-len(digest):], digest)
	return bytes.Equal(em, want)
}
