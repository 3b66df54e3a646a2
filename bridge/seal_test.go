package bridge

import (
	"bytes"
	"encoding/base64"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func testKey(b byte) []byte { return bytes.Repeat([]byte{b}, KeySize) }

type payload struct {
	A string `json:"a"`
}

func TestSealOpen(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	clock := func() time.Time { return now }
	s, err := NewSealer([][]byte{testKey(1)}, clock)
	if err != nil {
		t.Fatal(err)
	}
	rotated, _ := NewSealer([][]byte{testKey(2), testKey(1)}, clock)
	other, _ := NewSealer([][]byte{testKey(3)}, clock)
	sealed, err := s.Seal(PurposeState, payload{"x"}, now.Add(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	tampered := []byte(sealed)
	tampered[len(tampered)-3] ^= 1
	expired, _ := s.Seal(PurposeState, payload{"x"}, now)
	never, _ := s.Seal(PurposeClient, payload{"x"}, time.Time{})
	tests := []struct {
		name    string
		s       *Sealer
		purpose Purpose
		value   string
		ok      bool
	}{
		{"same key and purpose", s, PurposeState, sealed, true},
		{"rotated: old key still opens", rotated, PurposeState, sealed, true},
		{"no expiry", s, PurposeClient, never, true},
		{"another key", other, PurposeState, sealed, false},
		{"state presented as a code", s, PurposeCode, sealed, false},
		{"state presented as a client id", s, PurposeClient, sealed, false},
		{"tampered", s, PurposeState, string(tampered), false},
		{"expired", s, PurposeState, expired, false},
		{"not base64url", s, PurposeState, "!!", false},
		{"empty", s, PurposeState, "", false},
		{"truncated", s, PurposeState, sealed[:10], false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got payload
			err := tt.s.Open(tt.purpose, tt.value, &got)
			if tt.ok {
				if err != nil || got.A != "x" {
					t.Fatalf("Open = %v, %+v", err, got)
				}
				return
			}
			if !errors.Is(err, ErrSealed) {
				t.Fatalf("Open = %v, want ErrSealed", err)
			}
		})
	}
}

func TestSealRotationSealsWithFirstKey(t *testing.T) {
	clock := time.Now
	rotated, _ := NewSealer([][]byte{testKey(2), testKey(1)}, clock)
	newOnly, _ := NewSealer([][]byte{testKey(2)}, clock)
	sealed, _ := rotated.Seal(PurposeCode, payload{"y"}, time.Time{})
	var got payload
	if err := newOnly.Open(PurposeCode, sealed, &got); err != nil || got.A != "y" {
		t.Fatalf("sealed with the first key: Open = %v", err)
	}
}

func TestLoadKeys(t *testing.T) {
	dir := t.TempDir()
	raw := testKey(7)
	files := map[string][]byte{
		"raw":   raw,
		"std":   []byte(base64.StdEncoding.EncodeToString(raw) + "\n"),
		"url":   []byte(base64.RawURLEncoding.EncodeToString(raw)),
		"short": []byte("c2hvcnQ="),
	}
	for name, b := range files {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	for _, name := range []string{"raw", "std", "url"} {
		keys, err := LoadKeys([]string{filepath.Join(dir, name)})
		if err != nil || !bytes.Equal(keys[0], raw) {
			t.Errorf("%s: %v", name, err)
		}
	}
	if _, err := LoadKeys([]string{filepath.Join(dir, "short")}); err == nil || !strings.Contains(err.Error(), "32 random bytes") {
		t.Errorf("short key: %v", err)
	}
	if _, err := LoadKeys([]string{filepath.Join(dir, "missing")}); err == nil {
		t.Error("missing file accepted")
	}
	if _, err := NewSealer(nil, time.Now); err == nil {
		t.Error("no keys accepted")
	}
}

// TestSealCanonicalText: a sealed value opens from its own text only, not from another encoding of the same
// bytes (a last character differing in its unused bits), so a replay cache keyed on the text cannot be
// sidestepped.
func TestSealCanonicalText(t *testing.T) {
	s, _ := NewSealer([][]byte{testKey(1)}, time.Now)
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	for _, v := range []string{"a", "ab", "abc"} { // vary the length, so the last character has unused bits
		sealed, _ := s.Seal(PurposeCode, payload{v}, time.Time{})
		if len(sealed)%4 == 0 {
			continue
		}
		opened := 0
		for _, c := range alphabet {
			var got payload
			if s.Open(PurposeCode, sealed[:len(sealed)-1]+string(c), &got) == nil {
				opened++
			}
		}
		if opened != 1 {
			t.Errorf("%d texts of one sealed value open, want 1", opened)
		}
	}
}
