package main

import (
	"context"
	"errors"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// TestRetryable checks which failed Checks the failover client sends again: only those refused without a
// decision.
func TestRetryable(t *testing.T) {
	tests := []struct {
		err  error
		want bool
	}{
		{status.Error(codes.Unavailable, "mcp-authz overloaded: check refused without a decision"), true},
		{status.Error(codes.Unavailable, "connection refused"), true},
		{status.Error(codes.DeadlineExceeded, "deadline"), false},
		{status.Error(codes.PermissionDenied, "denied"), false},
		{status.Error(codes.Internal, "bug"), false},
		{context.Canceled, false},
		{errors.New("other"), false},
	}
	for _, tc := range tests {
		if got := retryable(tc.err); got != tc.want {
			t.Errorf("retryable(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
}

// TestPick checks how the failover client chooses a replica: a serving one other than the one that just
// refused, else any other one, else none.
func TestPick(t *testing.T) {
	ep := func(addr string, serving bool) *endpoint {
		e := &endpoint{addr: addr}
		e.serving.Store(serving)
		return e
	}
	a, b, c, d := ep("a", true), ep("b", false), ep("c", true), ep("d", false)
	tests := []struct {
		name string
		eps  []*endpoint
		not  *endpoint
		want map[string]bool // the addresses pick may return; "" for none
	}{
		{"skips the one not serving", []*endpoint{a, b, c}, nil, map[string]bool{"a": true, "c": true}},
		{"skips the one that refused", []*endpoint{a, b, c}, a, map[string]bool{"c": true}},
		{"none serving: another one", []*endpoint{b, d}, b, map[string]bool{"d": true}},
		{"only the one that refused", []*endpoint{a}, a, map[string]bool{"": true}},
		{"none", nil, nil, map[string]bool{"": true}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFailover(true, 1)
			f.endpoints.Store(&tc.eps)
			for range 2*len(tc.eps) + 1 {
				got := ""
				if e := f.pick(tc.not); e != nil {
					got = e.addr
				}
				if !tc.want[got] {
					t.Fatalf("pick = %q, want one of %v", got, tc.want)
				}
			}
		})
	}
}
