package authz

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"math/big"
	"testing"

	"github.com/lestrrat-go/jwx/v2/jwa"
)

// rsaTestKey is a private key with the raw RSA private operation, to sign any encoded message (valid or
// not) as an attacker holding a key could, or as a buggy IdP would.
type rsaTestKey struct {
	pub  *rsa.PublicKey
	p, q *big.Int // the primes, for the Chinese remainder theorem
	d    *big.Int
}

// rawSign returns em^d mod n as a signature of the modulus' length, computed modulo p and q and recombined
// (about four times faster than modulo n, which the fuzz target needs).
func (k rsaTestKey) rawSign(em []byte) []byte {
	one := big.NewInt(1)
	c := new(big.Int).SetBytes(em)
	m1 := new(big.Int).Exp(c, new(big.Int).Mod(k.d, new(big.Int).Sub(k.p, one)), k.p)
	m2 := new(big.Int).Exp(c, new(big.Int).Mod(k.d, new(big.Int).Sub(k.q, one)), k.q)
	h := new(big.Int).Sub(m1, m2)
	h.Mul(h, new(big.Int).ModInverse(k.q, k.p)).Mod(h, k.p)
	s := h.Mul(h, k.q).Add(h, m2)
	return s.FillBytes(make([]byte, (k.pub.N.BitLen()+7)/8))
}

// newRSATestKey makes a key of bits with public exponent e (3 or 65537).
func newRSATestKey(t testing.TB, bits, e int) rsaTestKey {
	t.Helper()
	if e == 65537 {
		priv, err := rsa.GenerateKey(rand.Reader, bits)
		if err != nil {
			t.Fatal(err)
		}
		return rsaTestKey{pub: &priv.PublicKey, p: priv.Primes[0], q: priv.Primes[1], d: priv.D}
	}
	E := big.NewInt(int64(e))
	one := big.NewInt(1)
	for {
		p, err := rand.Prime(rand.Reader, bits/2)
		if err != nil {
			t.Fatal(err)
		}
		q, err := rand.Prime(rand.Reader, bits-bits/2)
		if err != nil {
			t.Fatal(err)
		}
		n := new(big.Int).Mul(p, q)
		phi := new(big.Int).Mul(new(big.Int).Sub(p, one), new(big.Int).Sub(q, one))
		d := new(big.Int).ModInverse(E, phi)
		if d == nil || n.BitLen() != bits || p.Cmp(q) == 0 {
			continue
		}
		return rsaTestKey{pub: &rsa.PublicKey{N: n, E: e}, p: p, q: q, d: d}
	}
}

// pkcs1v15EM is the encoding RSASSA-PKCS1-v1_5 signs for alg and input, with its parts given: a caller
// varies them to build hostile encodings.
func pkcs1v15EM(size int, first, second byte, psLen int, ps, sep byte, prefix, digest []byte) []byte {
	em := []byte{first, second}
	for range psLen {
		em = append(em, ps)
	}
	em = append(append(append(em, sep), prefix...), digest...)
	if len(em) < size {
		em = append(make([]byte, size-len(em)), em...) // shorter: zeros in front
	}
	return em
}

// TestRSAVerifyDifferential checks that rsaKey decides every signature exactly as crypto/rsa's
// VerifyPKCS1v15 does (jwx's verifier calls it), for keys of every common size and both usual exponents:
// valid signatures; signatures altered, cut, extended, out of range; signatures for another algorithm or
// key; and encodings signed with the private key that break the padding in each way a lax parser accepts.
func TestRSAVerifyDifferential(t *testing.T) {
	keys := []rsaTestKey{newRSATestKey(t, 1024, 65537), newRSATestKey(t, 2048, 65537), newRSATestKey(t, 2048, 3), newRSATestKey(t, 3072, 65537), newRSATestKey(t, 4096, 65537)}
	other := newRSATestKey(t, 2048, 65537)
	input := []byte("eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9")
	checked, valid := 0, 0
	for _, key := range keys {
		rk := newRSAKey(key.pub)
		if rk == nil {
			t.Fatalf("%d-bit key, e=%d: not made ready", key.pub.N.BitLen(), key.pub.E)
		}
		size := rk.size
		for alg, h := range pkcs1v15Hashes {
			hasher := h.hash.New()
			hasher.Write(input)
			digest := hasher.Sum(nil)
			good := key.rawSign(pkcs1v15EM(size, 0, 1, size-3-len(h.prefix)-len(digest), 0xff, 0, h.prefix, digest))
			sigs := map[string][]byte{"valid": good}
			for _, i := range []int{0, 1, size / 2, size - 2, size - 1} {
				s := append([]byte{}, good...)
				s[i] ^= 0x01
				sigs["bit flipped"+string(rune('a'+i%26))] = s
			}
			sigs["cut"] = good[:size-1]
			sigs["leading zero added"] = append([]byte{0}, good...)
			sigs["empty"] = nil
			sigs["zero"] = make([]byte, size)
			sigs["one"] = new(big.Int).SetInt64(1).FillBytes(make([]byte, size))
			sigs["n"] = key.pub.N.FillBytes(make([]byte, size))
			sigs["n-1"] = new(big.Int).Sub(key.pub.N, big.NewInt(1)).FillBytes(make([]byte, size))
			sigs["good+n"] = new(big.Int).Add(new(big.Int).SetBytes(good), key.pub.N).Bytes()
			sigs["other key"] = other.rawSign(pkcs1v15EM(other.pub.Size(), 0, 1, other.pub.Size()-3-len(h.prefix)-len(digest), 0xff, 0, h.prefix, digest))
			for name, em := range map[string][]byte{
				"first byte 1":       pkcs1v15EM(size, 1, 1, size-3-len(h.prefix)-len(digest), 0xff, 0, h.prefix, digest),
				"block type 2":       pkcs1v15EM(size, 0, 2, size-3-len(h.prefix)-len(digest), 0xff, 0, h.prefix, digest),
				"padding not 0xff":   pkcs1v15EM(size, 0, 1, size-3-len(h.prefix)-len(digest), 0xfe, 0, h.prefix, digest),
				"no separator":       pkcs1v15EM(size, 0, 1, size-3-len(h.prefix)-len(digest), 0xff, 0xff, h.prefix, digest),
				"short padding":      pkcs1v15EM(size, 0, 1, 7, 0xff, 0, h.prefix, digest),
				"padding then junk":  pkcs1v15EM(size, 0, 1, 8, 0xff, 0, h.prefix, append(append([]byte{}, digest...), make([]byte, size-11-len(h.prefix)-len(digest))...)),
				"no DigestInfo":      pkcs1v15EM(size, 0, 1, size-3-len(digest), 0xff, 0, nil, digest),
				"other DigestInfo":   pkcs1v15EM(size, 0, 1, size-3-len(h.prefix)-len(digest), 0xff, 0, pkcs1v15Hashes[otherAlg(alg)].prefix, digest),
				"digest of another":  pkcs1v15EM(size, 0, 1, size-3-len(h.prefix)-len(digest), 0xff, 0, h.prefix, make([]byte, len(digest))),
				"digest cut":         pkcs1v15EM(size, 0, 1, size-2-len(h.prefix)-len(digest), 0xff, 0, h.prefix, digest[:len(digest)-1]),
				"other algorithm EM": pkcs1v15EM(size, 0, 1, size-3-len(pkcs1v15Hashes[otherAlg(alg)].prefix)-pkcs1v15Hashes[otherAlg(alg)].hash.Size(), 0xff, 0, pkcs1v15Hashes[otherAlg(alg)].prefix, make([]byte, pkcs1v15Hashes[otherAlg(alg)].hash.Size())),
				"valid, re-encoded":  pkcs1v15EM(size, 0, 1, size-3-len(h.prefix)-len(digest), 0xff, 0, h.prefix, digest),
			} {
				if len(em) > size {
					continue
				}
				sigs[name] = key.rawSign(em)
			}
			for name, sig := range sigs {
				want := rsa.VerifyPKCS1v15(key.pub, h.hash, digest, sig) == nil
				if got := rk.verify(alg, input, sig); got != want {
					t.Errorf("%d-bit key, e=%d, %s, %s: rsaKey %v, crypto/rsa %v", key.pub.N.BitLen(), key.pub.E, alg, name, got, want)
				}
				checked++
				if want {
					valid++
				}
			}
			// The same signature under the other algorithms.
			for otherAlg := range pkcs1v15Hashes {
				if otherAlg == alg {
					continue
				}
				oh := pkcs1v15Hashes[otherAlg].hash.New()
				oh.Write(input)
				want := rsa.VerifyPKCS1v15(key.pub, pkcs1v15Hashes[otherAlg].hash, oh.Sum(nil), good) == nil
				if got := rk.verify(otherAlg, input, good); got != want {
					t.Errorf("%s signature verified as %s: rsaKey %v, crypto/rsa %v", alg, otherAlg, got, want)
				}
			}
			if rk.verify(jwa.PS256, input, good) || rk.verify(jwa.ES256, input, good) {
				t.Errorf("%s signature accepted for another family", alg)
			}
		}
	}
	if valid != 2*len(keys)*len(pkcs1v15Hashes) { // "valid" and "valid, re-encoded"
		t.Errorf("%d valid signatures of %d checked, want %d", valid, checked, 2*len(keys)*len(pkcs1v15Hashes))
	}
	t.Logf("%d signatures decided alike", checked)
}

// otherAlg is another RSASSA-PKCS1-v1_5 algorithm than alg.
func otherAlg(alg jwa.SignatureAlgorithm) jwa.SignatureAlgorithm {
	if alg == jwa.RS256 {
		return jwa.RS512
	}
	return jwa.RS256
}

// TestNewRSAKeyLeavesToCryptoRSA checks that the keys crypto/rsa refuses to verify with, or that it
// treats apart, are left to it.
func TestNewRSAKeyLeavesToCryptoRSA(t *testing.T) {
	k2048 := newRSATestKey(t, 2048, 65537).pub
	small := newRSATestKey(t, 768, 3).pub
	tests := []struct {
		name string
		pub  *rsa.PublicKey
	}{
		{"768 bits", small},
		{"even modulus", &rsa.PublicKey{N: new(big.Int).Add(k2048.N, big.NewInt(1)), E: 65537}},
		{"exponent 1", &rsa.PublicKey{N: k2048.N, E: 1}},
		{"even exponent", &rsa.PublicKey{N: k2048.N, E: 65536}},
		{"exponent above 2^31-1", &rsa.PublicKey{N: k2048.N, E: 1<<31 + 1}},
		{"no modulus", &rsa.PublicKey{E: 65537}},
		{"nil", nil},
	}
	for _, tc := range tests {
		if newRSAKey(tc.pub) != nil {
			t.Errorf("%s: made ready, want left to crypto/rsa", tc.name)
		}
	}
	if newRSAKey(k2048) == nil {
		t.Error("a 2048-bit key was not made ready")
	}
}

// FuzzRSAVerify compares rsaKey with crypto/rsa on arbitrary signatures and on arbitrary encodings signed
// with the private key (which reach the padding checks). The key has 1024 bits, the smallest rsaKey takes,
// so that signing each input stays fast; the checks do not depend on the size.
func FuzzRSAVerify(f *testing.F) {
	key := newRSATestKey(f, 1024, 65537)
	rk := newRSAKey(key.pub)
	input := []byte("header.payload")
	digest := crypto.SHA256.New()
	digest.Write(input)
	sum := digest.Sum(nil)
	h := pkcs1v15Hashes[jwa.RS256]
	f.Add(pkcs1v15EM(rk.size, 0, 1, rk.size-3-len(h.prefix)-len(sum), 0xff, 0, h.prefix, sum), true)
	f.Add([]byte{0, 1, 0xff, 0}, false)
	f.Fuzz(func(t *testing.T, b []byte, signEM bool) {
		sig := b
		if signEM {
			if len(b) > rk.size || new(big.Int).SetBytes(b).Cmp(key.pub.N) >= 0 {
				return
			}
			sig = key.rawSign(b)
		}
		want := rsa.VerifyPKCS1v15(key.pub, crypto.SHA256, sum, sig) == nil
		if got := rk.verify(jwa.RS256, input, sig); got != want {
			t.Errorf("rsaKey %v, crypto/rsa %v", got, want)
		}
	})
}
