package service

import (
	"runtime/debug"
	"strconv"
)

// GCPercent is the garbage collector's target (GOGC) of `mcp-authz serve` when the GOGC environment variable
// sets none: the heap may grow to three times what is live before a collection, rather than Go's twice.
// Every Check allocates, and the live heap (mostly the token cache, bounded by token_cache.max_entries) is
// marked on every cycle, so halving the cycles takes about a tenth off the CPU of a Check verified afresh,
// for a peak heap about a third higher (docs/configuration.md, "Memory and the garbage collector"). GOGC and
// GOMEMLIMIT in the environment take precedence as usual.
const GCPercent = 200

// TuneGC sets the collector's target to GCPercent unless getenv("GOGC") is set, and returns the target in
// force (-1: off). It changes the whole process: the serve command calls it once, New never does.
func TuneGC(getenv func(string) string) int {
	if v := getenv("GOGC"); v != "" {
		if v == "off" {
			return -1
		}
		n, _ := strconv.Atoi(v)
		return n
	}
	debug.SetGCPercent(GCPercent)
	return GCPercent
}
