package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

func TestRunServesAndShutsDown(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var stdout, stderr bytes.Buffer
	issuers := make(chan string, 1)
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"-listen", "127.0.0.1:0", "-shape", "okta", "-user", "bob"}, &stdout, &stderr,
			func(issuer string) { issuers <- issuer })
	}()
	var issuer string
	select {
	case issuer = <-issuers:
	case err := <-done:
		t.Fatalf("run returned early: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("provider did not start")
	}

	resp, err := http.Get(issuer + "/.well-known/openid-configuration")
	if err != nil {
		t.Fatalf("discovery: %v", err)
	}
	var doc map[string]any
	err = json.NewDecoder(resp.Body).Decode(&doc)
	resp.Body.Close()
	if err != nil || doc["issuer"] != issuer {
		t.Fatalf("discovery document %v (%v), want issuer %s", doc, err, issuer)
	}

	req, err := http.NewRequest(http.MethodPost, issuer+"/token",
		strings.NewReader(url.Values{"grant_type": {"client_credentials"}, "scope": {"tools:read"}}.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth("demo-service", "demo-secret")
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("token: %v", err)
	}
	var tok map[string]any
	err = json.NewDecoder(resp.Body).Decode(&tok)
	resp.Body.Close()
	access, _ := tok["access_token"].(string)
	if err != nil || resp.StatusCode != http.StatusOK || access == "" {
		t.Fatalf("token response %d %v (%v)", resp.StatusCode, tok, err)
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("run: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("run did not return after cancel")
	}

	for _, want := range []string{"issuer:    " + issuer, issuer + "/.well-known/openid-configuration", "curl -s -u demo-service:demo-secret", issuer + "/token"} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("banner lacks %q:\n%s", want, stdout.String())
		}
	}
	logs := stderr.String()
	for _, secret := range []string{access, "demo-secret", "ZGVtby"} {
		if strings.Contains(logs, secret) {
			t.Errorf("logs contain a secret %q:\n%s", secret, logs)
		}
	}
	var requests int
	for line := range strings.Lines(logs) {
		var entry map[string]any
		if err := json.Unmarshal([]byte(line), &entry); err != nil {
			t.Errorf("log line is not JSON: %q", line)
		}
		if entry["msg"] == "request" {
			requests++
		}
	}
	if requests != 2 {
		t.Errorf("%d request log lines, want 2:\n%s", requests, logs)
	}
}

func TestRunRejectsBadFlags(t *testing.T) {
	for _, args := range [][]string{
		{"-shape", "auth0"},
		{"-listen", "127.0.0.1:0", "-issuer", "not a url"},
		{"-listen", "127.0.0.1:0", "-ttl", "0s"},
		{"extra"},
		{"-nope"},
	} {
		var out bytes.Buffer
		if err := run(t.Context(), args, &out, &out, nil); err == nil {
			t.Errorf("run(%q) succeeded", args)
		}
	}
}
