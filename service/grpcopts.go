package service

import (
	"runtime"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/keepalive"
)

// grpcOptions are the options of the gRPC server. Its streams are served by a pool of worker goroutines
// (8 per core, at least 64, more than the Checks a proxy usually has in flight) instead of a new goroutine
// per RPC: a policy evaluation needs a deep stack, which a fresh goroutine would grow by copying on every
// Check, while a worker keeps its grown stack. When every worker is busy, gRPC starts a goroutine per RPC.
//
// The other options bound what one client may cost: streams per connection, how often it may ping, and how
// long a connection lives (maxAge; 0 is forever), after which it is closed gracefully so that the proxy
// reconnects and a Kubernetes Service spreads connections over replicas started since.
func grpcOptions(limit *checkLimit, maxAge time.Duration) []grpc.ServerOption {
	params := keepalive.ServerParameters{Time: 2 * time.Minute, Timeout: 20 * time.Second}
	if maxAge > 0 {
		params.MaxConnectionAge, params.MaxConnectionAgeGrace = maxAge, 30*time.Second
	}
	return []grpc.ServerOption{
		grpc.NumStreamWorkers(uint32(max(64, 8*runtime.GOMAXPROCS(0)))),
		grpc.MaxConcurrentStreams(uint32(max(1024, cap(limit.slots)))),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 10 * time.Second, PermitWithoutStream: true}),
		grpc.KeepaliveParams(params),
		grpc.InTapHandle(limit.tap),
	}
}
