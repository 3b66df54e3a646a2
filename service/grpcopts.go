package service

import (
	"runtime"

	"google.golang.org/grpc"
)

// grpcOptions are the options of the gRPC server. Its streams are served by a pool of worker goroutines
// (8 per core, at least 64, more than the Checks a proxy usually has in flight) instead of a new goroutine
// per RPC: a policy evaluation needs a deep stack, and a fresh goroutine grows its stack by copying on every
// Check (runtime.copystack was 14-17% of the CPU profile under load). Workers keep their grown stacks; when
// every worker is busy, gRPC starts a goroutine per RPC as before. What stack copying remains (about 6% under
// load) is the garbage collector shrinking idle workers' stacks; GODEBUG=gcshrinkstackoff=1 removes it.
func grpcOptions() []grpc.ServerOption {
	return []grpc.ServerOption{grpc.NumStreamWorkers(uint32(max(64, 8*runtime.GOMAXPROCS(0))))}
}
