package main

import (
	"context"
	"errors"
	"net"
	"sync/atomic"
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"github.com/mcp-authz/mcp-authz/test/benchenv"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
)

var (
	okAnswer       = &authv3.CheckResponse{HttpResponse: &authv3.CheckResponse_OkResponse{OkResponse: &authv3.OkHttpResponse{}}}
	denied401      = &authv3.CheckResponse{HttpResponse: &authv3.CheckResponse_DeniedResponse{DeniedResponse: &authv3.DeniedHttpResponse{Status: &typev3.HttpStatus{Code: 401}}}}
	errOverload    = status.Error(codes.Unavailable, "mcp-authz overloaded: check refused without a decision")
	allowCase      = &benchenv.Case{Allow: true, Status: 200}
	deny401Case    = &benchenv.Case{Status: 401}
	errConnRefused = status.Error(codes.Unavailable, "connection refused")
)

// TestClassify checks how the overload generator counts an answer: a shed is only mcp-authz's overload
// refusal, and an allow for a deny is a wrong decision.
func TestClassify(t *testing.T) {
	tests := []struct {
		name   string
		c      *benchenv.Case
		verify bool
		resp   *authv3.CheckResponse
		err    error
		want   outcome
	}{
		{"allow as expected", allowCase, true, okAnswer, nil, outDecided},
		{"deny as expected", deny401Case, true, denied401, nil, outDecided},
		{"allow for a deny", deny401Case, true, okAnswer, nil, outWrong},
		{"deny for an allow", allowCase, true, denied401, nil, outWrong},
		{"not verified", deny401Case, false, okAnswer, nil, outDecided},
		{"overloaded", allowCase, true, nil, errOverload, outShed},
		{"connection refused", allowCase, true, nil, errConnRefused, outFailed},
		{"deadline", allowCase, true, nil, status.Error(codes.DeadlineExceeded, "late"), outTimedOut},
		{"other error", allowCase, true, nil, errors.New("boom"), outFailed},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := classify(tc.c, tc.verify, tc.resp, tc.err); got != tc.want {
				t.Errorf("classify = %v, want %v", got, tc.want)
			}
		})
	}
}

// fakeAuthz answers Checks as answer says, for the flood tests.
type fakeAuthz struct {
	authv3.UnimplementedAuthorizationServer
	n      atomic.Int64
	answer func(n int64) (*authv3.CheckResponse, time.Duration, error)
}

func (f *fakeAuthz) Check(ctx context.Context, _ *authv3.CheckRequest) (*authv3.CheckResponse, error) {
	resp, wait, err := f.answer(f.n.Add(1))
	select {
	case <-time.After(wait):
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	return resp, err
}

// TestFlood drives fake servers open-loop and checks that every request due is counted once, as what
// became of it.
func TestFlood(t *testing.T) {
	tests := []struct {
		name     string
		answer   func(n int64) (*authv3.CheckResponse, time.Duration, error)
		inflight int
		check    func(t *testing.T, r floodResult)
	}{
		{"every other shed", func(n int64) (*authv3.CheckResponse, time.Duration, error) {
			if n%2 == 0 {
				return nil, 0, errOverload
			}
			return okAnswer, 0, nil
		}, 64, func(t *testing.T, r floodResult) {
			if r.shed == 0 || r.decided == 0 || r.wrong != 0 || r.timedOut != 0 || r.failed != 0 {
				t.Errorf("want decided and shed only: %+v", r)
			}
			if d := r.decided - r.shed; d < -1 || d > 1 {
				t.Errorf("decided %d, shed %d: want half each", r.decided, r.shed)
			}
		}},
		{"too slow", func(int64) (*authv3.CheckResponse, time.Duration, error) {
			return okAnswer, time.Second, nil
		}, 1000, func(t *testing.T, r floodResult) {
			if r.timedOut != r.sent || r.decided != 0 {
				t.Errorf("want every Check timed out: %+v", r)
			}
		}},
		{"generator bound", func(int64) (*authv3.CheckResponse, time.Duration, error) {
			return okAnswer, 50 * time.Millisecond, nil
		}, 2, func(t *testing.T, r floodResult) {
			if r.skipped == 0 || r.decided == 0 {
				t.Errorf("want Checks skipped at the bound of 2 in flight: %+v", r)
			}
		}},
		{"wrong answers", func(int64) (*authv3.CheckResponse, time.Duration, error) {
			return denied401, 0, nil
		}, 64, func(t *testing.T, r floodResult) {
			if r.wrong != r.sent || r.decided != r.sent {
				t.Errorf("want every answer a wrong decision: %+v", r)
			}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			l, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			s := grpc.NewServer()
			authv3.RegisterAuthorizationServer(s, &fakeAuthz{answer: tc.answer})
			go s.Serve(l)
			defer s.Stop()
			conn, err := grpc.NewClient(l.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			r := flood(context.Background(), authv3.NewAuthorizationClient(conn), []benchenv.Case{{Allow: true, Status: 200, Request: &authv3.CheckRequest{}}},
				true, 500, 400*time.Millisecond, tc.inflight, 100*time.Millisecond)
			if r.due != 200 || r.sent+r.skipped != r.due || r.decided+r.shed+r.timedOut+r.failed != r.sent {
				t.Errorf("counts do not add up: %+v", r)
			}
			if int64(len(r.decidedLat)) != r.decided || int64(len(r.shedLat)) != r.shed {
				t.Errorf("%d decided latencies for %d decided, %d shed latencies for %d shed", len(r.decidedLat), r.decided, len(r.shedLat), r.shed)
			}
			tc.check(t, r)
		})
	}
}
