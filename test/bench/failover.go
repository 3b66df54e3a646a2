package main

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
)

// endpoint is one mcp-authz replica as a failover client knows it.
type endpoint struct {
	addr    string
	conn    *grpc.ClientConn
	client  authv3.AuthorizationClient
	serving atomic.Bool // the replica's gRPC health status for ext_authz is SERVING
	stop    context.CancelFunc
	watched sync.WaitGroup
}

// failover is a Check client over several replicas that behaves as Envoy does with an ext_authz cluster:
// it sends each Check to the next replica in turn, skipping those whose gRPC health is not SERVING (when it
// watches health, as Envoy's health checker does), and retries a Check refused without a decision
// (UNAVAILABLE: a replica overloaded, gone, or refusing connections) on another replica, up to maxRetries
// times, as Envoy's retry policy does. Replicas come and go with add and remove, as endpoint discovery
// tells Envoy.
type failover struct {
	watchHealth bool
	maxRetries  int
	endpoints   atomic.Pointer[[]*endpoint]
	next        atomic.Uint64
	mu          sync.Mutex // serializes add and remove
}

func newFailover(watchHealth bool, maxRetries int) *failover {
	f := &failover{watchHealth: watchHealth, maxRetries: maxRetries}
	f.endpoints.Store(&[]*endpoint{})
	return f
}

// add connects to the replica at addr and starts watching its health.
func (f *failover) add(addr string) (*endpoint, error) {
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return nil, fmt.Errorf("connect %s: %w", addr, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ep := &endpoint{addr: addr, conn: conn, client: authv3.NewAuthorizationClient(conn), stop: cancel}
	if f.watchHealth {
		ep.watched.Go(func() { ep.watchHealth(ctx) })
	} else {
		ep.serving.Store(true)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	eps := append(append([]*endpoint{}, *f.endpoints.Load()...), ep)
	f.endpoints.Store(&eps)
	return ep, nil
}

// remove forgets ep and closes its connection.
func (f *failover) remove(ep *endpoint) {
	f.mu.Lock()
	var eps []*endpoint
	for _, e := range *f.endpoints.Load() {
		if e != ep {
			eps = append(eps, e)
		}
	}
	f.endpoints.Store(&eps)
	f.mu.Unlock()
	ep.close()
}

// close stops everything: the health watches and the connections.
func (f *failover) close() {
	for _, ep := range *f.endpoints.Load() {
		f.remove(ep)
	}
}

func (ep *endpoint) close() {
	ep.stop()
	ep.watched.Wait()
	ep.conn.Close()
}

// watchHealth follows the replica's health status for the ext_authz service until ctx ends; a broken watch
// (the replica gone) counts as not serving and is re-established.
func (ep *endpoint) watchHealth(ctx context.Context) {
	health := healthpb.NewHealthClient(ep.conn)
	for ctx.Err() == nil {
		stream, err := health.Watch(ctx, &healthpb.HealthCheckRequest{Service: authv3.Authorization_ServiceDesc.ServiceName})
		if err == nil {
			for {
				resp, err := stream.Recv()
				if err != nil {
					break
				}
				ep.serving.Store(resp.GetStatus() == healthpb.HealthCheckResponse_SERVING)
			}
		}
		ep.serving.Store(false)
		select {
		case <-ctx.Done():
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// waitServing waits until ep's health is SERVING, for at most d.
func (ep *endpoint) waitServing(d time.Duration) error {
	deadline := time.Now().Add(d)
	for !ep.serving.Load() {
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not SERVING after %v", ep.addr, d)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return nil
}

// pick returns the next serving endpoint other than not; when none is serving, the next other endpoint
// (Envoy's panic routing: better a refusal than no attempt); nil when there is no other endpoint.
func (f *failover) pick(not *endpoint) *endpoint {
	eps := *f.endpoints.Load()
	start := f.next.Add(1)
	var fallback *endpoint
	for i := range uint64(len(eps)) {
		ep := eps[(start+i)%uint64(len(eps))]
		if ep == not {
			continue
		}
		if ep.serving.Load() {
			return ep
		}
		if fallback == nil {
			fallback = ep
		}
	}
	return fallback
}

var errNoEndpoint = errors.New("no endpoint to send the Check to")

// Check sends req to a replica, retrying on another one when it is refused without a decision. It returns
// the answer, or the last error, and how many retries it took.
func (f *failover) Check(ctx context.Context, req *authv3.CheckRequest) (*authv3.CheckResponse, int, error) {
	var last *endpoint
	for attempt := 0; ; attempt++ {
		ep := f.pick(last)
		if ep == nil {
			if last == nil {
				return nil, attempt, errNoEndpoint
			}
			ep = last // a single replica: retry it
		}
		resp, err := ep.client.Check(ctx, req)
		if err == nil || attempt == f.maxRetries || !retryable(err) {
			return resp, attempt, err
		}
		last = ep
	}
}

// retryable reports whether a Check that failed with err had no decision made and may be sent again:
// UNAVAILABLE, which gRPC answers for a refused or broken connection and mcp-authz for a Check it sheds.
// (Envoy's retry_on: unavailable, connect-failure, refused-stream, reset.) A deadline exceeded is not
// retried: the decision may be under way, and the proxy's own timeout has run out.
func retryable(err error) bool { return status.Code(err) == codes.Unavailable }
