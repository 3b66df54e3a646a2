package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"github.com/mcp-authz/mcp-authz/config"
	"github.com/mcp-authz/mcp-authz/test/benchenv"
)

// assertionTarget is mcp-authz with the signed identity assertion on for the benchmark's resource.
const assertionTarget = "mcp-authz-assertion"

// assertionConfig writes a new ES256 signing key to a temporary folder and returns the identity_assertion
// block that uses it, and a function that removes the folder.
func assertionConfig() (yaml string, cleanup func(), err error) {
	dir, err := os.MkdirTemp("", "mcp-authz-bench-assertion-")
	if err != nil {
		return "", nil, err
	}
	cleanup = func() { os.RemoveAll(dir) }
	yaml, err = writeAssertionKey(dir)
	if err != nil {
		cleanup()
		return "", nil, err
	}
	return yaml, cleanup, nil
}

func writeAssertionKey(dir string) (string, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return "", err
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return "", err
	}
	if err := os.WriteFile(filepath.Join(dir, "bench.pem"), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		return "", err
	}
	return fmt.Sprintf("identity_assertion: {signing_keys: [%q]}\n", dir), nil
}

// checkAssertion sends the corpus's first allowed request and checks that the allow carries the
// assertion: a target that skipped it would look fast for the wrong reason.
func checkAssertion(ctx context.Context, client authv3.AuthorizationClient, corpus []benchenv.Case) error {
	for _, c := range corpus {
		if !c.Allow {
			continue
		}
		resp, err := client.Check(ctx, c.Request)
		if err != nil {
			return fmt.Errorf("%s: %w", assertionTarget, err)
		}
		for _, h := range resp.GetOkResponse().GetHeaders() {
			if h.GetHeader().GetKey() == config.DefaultAssertionHeader && h.GetHeader().GetValue() != "" {
				return nil
			}
		}
		return fmt.Errorf("%s: the allow of %q carries no %s header", assertionTarget, c.Name, config.DefaultAssertionHeader)
	}
	return errors.New(assertionTarget + ": the corpus has no allowed request")
}
