// Command bench is the load benchmark of mcp-authz (`make bench`).
//
// It starts on 127.0.0.1 a test OpenID provider (test/idp) and three ext_authz gRPC servers, each in a
// child process of its own so that their CPU, allocations and RSS are theirs alone:
//
//   - floor: a do-nothing server that allows everything with a prebuilt response (gRPC cost only);
//   - baseline: the same checks done the way an OPA-Envoy deployment does them, JWT verification in Rego
//     (io.jwt.decode_verify, JWKS as data), built from OPA core (see baseline.go);
//   - mcp-authz: the service as `mcp-authz serve` runs it (service.New), with the shipped policies;
//   - with -assertion, mcp-authz-assertion too: the same with the signed identity assertion on for the
//     resource (an ES256 key of its own), reported as a throughput ratio to mcp-authz.
//
// Every target gets the same corpus of CheckRequests (valid RS256 tokens calling allowed tools, and denies:
// the restricted tool without its scope, an expired token, a bad signature; or another corpus chosen with
// -corpus, corpus.go) from the same Go load generator in this process: a closed-loop run at fixed concurrency for -duration (saturation), then an open-loop run
// at half of that throughput for the p99 at half saturation. Every answer of the baseline and of mcp-authz
// is checked against the expected decision; a mismatch or an RPC error makes the exit status 1.
//
// Two other scenarios replace the comparison when their flag is given (docs/reliability.md):
//
//   - -overload 2,4 (overload.go): mcp-authz driven open-loop beyond its saturation throughput, with several
//     server.max_concurrent_checks, counting what is decided, shed and timed out;
//   - -endurance 10m (endurance.go, `make soak`): a long run of a mixed corpus with a signing key rotation
//     and policy reloads, checking every decision and sampling memory and goroutines.
//
// The rolling restart under load is a test: TestRollingRestart (restart_test.go).
//
// ghz (v0.120.0) is not used: its summary counts RPC status codes, and an ext_authz deny is an RPC that
// succeeds, so it cannot tell allows from denies, let alone check them.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"github.com/mcp-authz/mcp-authz/config"
	"github.com/mcp-authz/mcp-authz/test/benchenv"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

const resourceURL = benchenv.ResourceURL

func configYAML(issuer, policies, level string) string {
	return benchenv.ConfigYAML(issuer, policies, level)
}

// options are the command-line flags of a benchmark run.
type options struct {
	duration    time.Duration
	warmup      time.Duration
	concurrency int
	conns       int
	users       int
	rounds      int
	targets     []string
	policies    string
	authzLog    string
	cpuProfile  string
	memProfile  string
	pin         bool
	latencyAt   float64
	soak        time.Duration
	overload    overloadOptions
	endurance   enduranceOptions
	corpus      corpusOptions
	assertion   bool
}

func main() {
	var o options
	var so serveOptions
	var targets string
	flag.DurationVar(&o.duration, "duration", 5*time.Second, "length of each load run (saturation, then half rate)")
	flag.DurationVar(&o.warmup, "warmup", time.Second, "unmeasured load on each target before its first run")
	flag.IntVar(&o.concurrency, "concurrency", 32, "requests in flight during the saturation run")
	flag.IntVar(&o.conns, "conns", 2, "gRPC connections to each target, used in turn (Envoy opens one per worker thread; a 2-core Envoy has 2)")
	flag.IntVar(&o.users, "users", 4, "distinct valid tokens in the corpus (each calls 3 tools)")
	flag.IntVar(&o.rounds, "rounds", 1, "saturation runs per target, interleaved; throughput is their median")
	flag.StringVar(&targets, "targets", "floor,baseline,mcp-authz", "targets, of floor, baseline, baseline-jwtcache (OPA with its io_jwt cache on), mcp-authz, mcp-authz-claims (with dynamic_metadata.claims on)")
	flag.StringVar(&o.policies, "policies", "deploy/policies", "the shipped policy folder")
	flag.StringVar(&o.authzLog, "authz-log", "info", "mcp-authz decision log level (info logs every decision, to a file); off discards the log")
	flag.StringVar(&o.cpuProfile, "cpuprofile", "", "write a CPU profile of mcp-authz during its first saturation run to this file")
	flag.StringVar(&o.memProfile, "memprofile", "", "with -cpuprofile: write a heap profile of mcp-authz (allocations since it started, live objects) after its first saturation run to this file")
	flag.DurationVar(&o.soak, "soak", 0, "after the table, drive mcp-authz at half saturation this long, printing its RSS and heap every tenth of it")
	flag.Float64Var(&o.latencyAt, "latency-at", 0.5, "the open-loop latency run's rate, as a fraction of the saturation throughput")
	o.overload.flags()
	o.endurance.flags()
	o.corpus.flags()
	flag.BoolVar(&o.assertion, "assertion", false, "also run mcp-authz with the signed identity assertion on (target mcp-authz-assertion), and report its throughput as a ratio to mcp-authz's")
	flag.BoolVar(&o.pin, "pin", false, "pin the load generator to the first half of the CPUs and every target to the other half, so that they never compete for a core (GOMAXPROCS follows)")
	flag.StringVar(&so.cpus, "cpus", "", "internal: CPUs of the target (child process)")
	flag.StringVar(&so.kind, "serve", "", "internal: run one target server (child process)")
	flag.StringVar(&so.issuer, "issuer", "", "internal: issuer URL")
	flag.StringVar(&so.jwksFile, "jwks", "", "internal: JWKS file of the baseline")
	flag.StringVar(&so.dataFile, "data", "", "internal: policy data file of the baseline")
	flag.StringVar(&so.extra, "config-extra", "", "internal: YAML appended to mcp-authz's configuration")
	flag.Parse()
	if so.kind != "" {
		if err := pinTo(so.cpus); err != nil {
			fmt.Fprintln(os.Stderr, "bench child:", err)
			os.Exit(1)
		}
		so.policies, so.logLevel = o.policies, o.authzLog
		if err := serve(so); err != nil {
			fmt.Fprintln(os.Stderr, "bench child:", err)
			os.Exit(1)
		}
		return
	}
	o.targets = strings.Split(targets, ",")
	if o.assertion {
		if !slices.Contains(o.targets, "mcp-authz") {
			o.targets = append(o.targets, "mcp-authz")
		}
		if !slices.Contains(o.targets, assertionTarget) {
			o.targets = append(o.targets, assertionTarget)
		}
	}
	// The load generator's own collections delay the answers it times: collect less often (the targets,
	// child processes, run with the Go defaults).
	debug.SetGCPercent(400)
	var code int
	var err error
	switch {
	case o.overload.multiples != "":
		code, err = runOverload(o)
	case o.endurance.duration > 0:
		code, err = runEndurance(o)
	default:
		code, err = runCorpora(o)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(2)
	}
	os.Exit(code)
}

// child is one target server process and the client the load generator uses for it.
type child struct {
	kind   string
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	stats  string
	conns  []*grpc.ClientConn
	client authv3.AuthorizationClient
	log    string // the file the child's stderr goes to
}

func startChild(kind string, args []string, logFile *os.File, conns int) (*child, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(self, append([]string{"-serve", kind}, args...)...)
	cmd.Stderr = logFile
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	c := &child{kind: kind, cmd: cmd, stdin: stdin}
	line := make(chan string, 1)
	go func() {
		r := bufio.NewReader(stdout)
		s, _ := r.ReadString('\n')
		line <- s
		io.Copy(io.Discard, r)
	}()
	var grpcAddr string
	select {
	case s := <-line:
		if _, err := fmt.Sscanf(s, "LISTEN %s %s", &grpcAddr, &c.stats); err != nil {
			c.stop()
			return nil, fmt.Errorf("%s did not start (see %s): %q", kind, logFile.Name(), s)
		}
	case <-time.After(60 * time.Second):
		c.stop()
		return nil, fmt.Errorf("%s did not start within 60s", kind)
	}
	clients := &roundRobin{clients: make([]authv3.AuthorizationClient, conns)}
	for i := range clients.clients {
		conn, err := grpc.NewClient(grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			c.stop()
			return nil, err
		}
		c.conns = append(c.conns, conn)
		clients.clients[i] = authv3.NewAuthorizationClient(conn)
	}
	c.client = clients
	return c, nil
}

func (c *child) stop() {
	for _, conn := range c.conns {
		conn.Close()
	}
	c.stdin.Close()
	done := make(chan struct{})
	go func() { c.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		c.cmd.Process.Kill()
		<-done
	}
}

// memStats asks the child for its runtime statistics, after a collection when gc is set.
func (c *child) memStats(gc bool) (memStats, error) {
	url := "http://" + c.stats + "/stats"
	if gc {
		url += "?gc=1"
	}
	resp, err := http.Get(url)
	if err != nil {
		return memStats{}, err
	}
	defer resp.Body.Close()
	var m memStats
	return m, json.NewDecoder(resp.Body).Decode(&m)
}

// logSize is the size of the child's log file so far.
func (c *child) logSize() int64 {
	fi, err := os.Stat(c.log)
	if err != nil {
		return 0
	}
	return fi.Size()
}

// decisionTimeP99 is the p99 of the duration_ms of the decision lines the child logged after offset from.
func (c *child) decisionTimeP99(from int64) (time.Duration, error) {
	f, err := os.Open(c.log)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	if _, err := f.Seek(from, io.SeekStart); err != nil {
		return 0, err
	}
	var ds []time.Duration
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		var line struct {
			Msg        string  `json:"msg"`
			DurationMS float64 `json:"duration_ms"`
		}
		if json.Unmarshal(sc.Bytes(), &line) == nil && line.Msg == "decision" {
			ds = append(ds, time.Duration(line.DurationMS*float64(time.Millisecond)))
		}
	}
	if err := sc.Err(); err != nil {
		return 0, err
	}
	if len(ds) == 0 {
		return 0, fmt.Errorf("%s: no decision line", c.log)
	}
	slices.Sort(ds)
	return ds[int(0.99*float64(len(ds)-1))], nil
}

// rssKiB reads the child's resident set size from /proc/<pid>/status.
func (c *child) rssKiB() int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", c.cmd.Process.Pid))
	if err != nil {
		return 0
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			var kib int64
			fmt.Sscanf(strings.TrimSpace(v), "%d", &kib)
			return kib
		}
	}
	return 0
}

// profile fetches a CPU profile of the child over d into file.
func (c *child) profile(d time.Duration, file string) error {
	return c.fetchProfile(fmt.Sprintf("profile?seconds=%d", max(1, int(d.Seconds()))), file)
}

// fetchProfile fetches the child's /debug/pprof/{name} into file.
func (c *child) fetchProfile(name, file string) error {
	resp, err := http.Get(fmt.Sprintf("http://%s/debug/pprof/%s", c.stats, name))
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("profile: status %d", resp.StatusCode)
	}
	f, err := os.Create(file)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// cpuPerCheck is the target's CPU time per Check over its saturation runs, in µs; 0 when unknown.
func (t *targetResult) cpuPerCheck() float64 {
	if t.checks == 0 {
		return 0
	}
	return float64(t.cpu.Microseconds()) / float64(t.checks)
}

// targetResult accumulates one target's measurements over the rounds.
type targetResult struct {
	kind            string
	rates           []float64
	sat, half       runResult
	decideP99       time.Duration // mcp-authz's own decision time, p99 over the half-rate run (decision log)
	halfRate        float64
	mallocs, bytes  uint64
	checks          int64
	cpu             time.Duration // the target process's CPU time (user and system) over its saturation runs
	rssStart        int64         // KiB, one second into the first saturation run
	rssEnd          int64         // KiB, at the end of the last run
	heapStart       uint64
	heapEnd         uint64
	rpcErrors       int64
	mismatches      int64
	verified        bool
	firstErr        string
	profileWarnings []string
}

func (t *targetResult) medianRate() float64 {
	r := slices.Clone(t.rates)
	slices.Sort(r)
	return r[len(r)/2]
}

// runCorpora runs the comparison once per corpus of -corpus, and sums them up in one table when there are
// several.
func runCorpora(o options) (int, error) {
	kinds := o.corpus.kinds
	if len(kinds) == 0 {
		kinds = []string{"small"}
	}
	code := 0
	var sums []corpusSummary
	for i, k := range kinds {
		oc := o
		oc.corpus.kind = k
		if len(kinds) > 1 {
			if i > 0 {
				fmt.Println()
			}
			fmt.Printf("=== corpus %s\n", k)
			oc.cpuProfile, oc.memProfile = perCorpus(o.cpuProfile, k), perCorpus(o.memProfile, k)
		}
		c, sum, err := run(oc)
		if err != nil {
			return 0, err
		}
		code = max(code, c)
		sums = append(sums, sum)
	}
	if len(kinds) > 1 {
		fmt.Println()
		printSummary(os.Stdout, sums)
	}
	return code, nil
}

// perCorpus is a profile file name for one corpus of several: cpu.prof -> cpu-fresh.prof.
func perCorpus(file, kind string) string {
	if file == "" {
		return ""
	}
	ext := filepath.Ext(file)
	return strings.TrimSuffix(file, ext) + "-" + kind + ext
}

func run(o options) (int, corpusSummary, error) {
	ctx := context.Background()
	p, err := benchenv.StartIdP()
	if err != nil {
		return 0, corpusSummary{}, err
	}
	defer p.Close()
	corpus, corpusLine, err := buildCorpus(p.Provider, o)
	if err != nil {
		return 0, corpusSummary{}, err
	}
	tmp, err := os.MkdirTemp("", "mcp-authz-bench-")
	if err != nil {
		return 0, corpusSummary{}, err
	}
	defer os.RemoveAll(tmp)
	jwks, err := json.Marshal(p.PublicJWKS())
	if err != nil {
		return 0, corpusSummary{}, err
	}
	jwksFile := filepath.Join(tmp, "jwks.json")
	if err := os.WriteFile(jwksFile, jwks, 0o600); err != nil {
		return 0, corpusSummary{}, err
	}
	policies, err := filepath.Abs(o.policies)
	if err != nil {
		return 0, corpusSummary{}, err
	}
	args := []string{"-issuer", p.Issuer(), "-jwks", jwksFile, "-data", filepath.Join(policies, "data.yaml"), "-policies", policies, "-authz-log", o.authzLog}
	if o.pin {
		generator, targets, err := splitCPUs()
		if err != nil {
			return 0, corpusSummary{}, err
		}
		if err := pinTo(generator); err != nil {
			return 0, corpusSummary{}, err
		}
		args = append(args, "-cpus", targets)
	}

	fmt.Println(corpusLine)
	fmt.Printf("load: concurrency %d, %v per run, %d round(s), warm-up %v; GOMAXPROCS of every process = %d cores; mcp-authz decision log: %s\n",
		o.concurrency, o.duration, o.rounds, o.warmup, numCPU(), o.authzLog)

	children := map[string]*child{}
	results := map[string]*targetResult{}
	defer func() {
		for _, c := range children {
			c.stop()
		}
	}()
	for _, kind := range o.targets {
		logFile, err := os.Create(filepath.Join(tmp, kind+".log"))
		if err != nil {
			return 0, corpusSummary{}, err
		}
		defer logFile.Close()
		c, err := startChild(kind, args, logFile, o.conns)
		if c != nil {
			c.log = logFile.Name()
		}
		if err != nil {
			return 0, corpusSummary{}, err
		}
		children[kind] = c
		results[kind] = &targetResult{kind: kind, verified: kind != "floor"}
		// Warm-up: connections, OPA's and mcp-authz's caches, the Go runtime; not measured.
		saturate(ctx, c.client, corpus, false, o.concurrency, o.warmup)
		if kind == assertionTarget {
			if err := checkAssertion(ctx, c.client, corpus); err != nil {
				return 0, corpusSummary{}, err
			}
		}
	}

	profiled := false
	for round := range o.rounds {
		order := slices.Clone(o.targets)
		for range round % len(order) {
			order = append(order[1:], order[0])
		}
		for _, kind := range order {
			c, t := children[kind], results[kind]
			before, err := c.memStats(true)
			if err != nil {
				return 0, corpusSummary{}, err
			}
			if round == 0 {
				t.heapStart = before.HeapInuse
			}
			var profErr chan error
			if kind == "mcp-authz" && o.cpuProfile != "" && !profiled {
				profiled = true
				profErr = make(chan error, 1)
				go func() { profErr <- c.profile(o.duration, o.cpuProfile) }()
			}
			rssAt1s := make(chan int64, 1)
			go func() { time.Sleep(time.Second); rssAt1s <- c.rssKiB() }()
			cpuBefore := c.cpuTime()
			r := saturate(ctx, c.client, corpus, t.verified, o.concurrency, o.duration)
			t.cpu += c.cpuTime() - cpuBefore
			after, err := c.memStats(false)
			if err != nil {
				return 0, corpusSummary{}, err
			}
			if round == 0 {
				t.rssStart = <-rssAt1s
			}
			if profErr != nil {
				if err := <-profErr; err != nil {
					t.profileWarnings = append(t.profileWarnings, err.Error())
				}
				if o.memProfile != "" {
					if err := c.fetchProfile("heap", o.memProfile); err != nil {
						t.profileWarnings = append(t.profileWarnings, err.Error())
					}
				}
			}
			t.rates = append(t.rates, r.rate())
			t.sat.latencies = append(t.sat.latencies, r.latencies...)
			t.sent(r)
			t.mallocs += after.Mallocs - before.Mallocs
			t.bytes += after.TotalAlloc - before.TotalAlloc
			t.checks += r.sent
			fmt.Fprintf(os.Stderr, "round %d %-18s %9.0f checks/s  p99 %v\n", round+1, kind, r.rate(), r.percentile(0.99).Round(time.Microsecond))
		}
	}
	for _, kind := range o.targets {
		c, t := children[kind], results[kind]
		slices.Sort(t.sat.latencies)
		t.halfRate = t.medianRate() * o.latencyAt
		from := c.logSize()
		t.half = fixedRate(ctx, c.client, corpus, t.verified, max(o.concurrency, 64), t.halfRate, o.duration)
		t.sent(t.half)
		if strings.HasPrefix(kind, "mcp-authz") && o.authzLog != "off" {
			time.Sleep(config.DefaultLogFlushInterval + 100*time.Millisecond) // the decision log's batch
			if t.decideP99, err = c.decisionTimeP99(from); err != nil {
				return 0, corpusSummary{}, err
			}
		}
		t.rssEnd = c.rssKiB()
		if m, err := c.memStats(true); err == nil {
			t.heapEnd = m.HeapInuse
		}
		fmt.Fprintf(os.Stderr, "at %.2f of saturation %-18s %9.0f checks/s  p50 %v p90 %v p99 %v p99.9 %v max %v (pacer woke late by up to %v, p99)\n", o.latencyAt, kind, t.half.rate(),
			t.half.percentile(0.50).Round(time.Microsecond), t.half.percentile(0.90).Round(time.Microsecond), t.half.percentile(0.99).Round(time.Microsecond),
			t.half.percentile(0.999).Round(time.Microsecond), t.half.percentile(1).Round(time.Microsecond), t.half.pacerLate.Round(time.Microsecond))
	}
	status := report(os.Stdout, o, results)
	sum := summarize(o.corpus.kind, results)
	if c, ok := children["mcp-authz"]; ok && o.soak > 0 {
		if soakStatus := soak(ctx, c, corpus, o, results["mcp-authz"].halfRate); soakStatus != 0 {
			status = soakStatus
		}
	}
	return status, sum, nil
}

// soak drives mcp-authz at rate for o.soak in ten steps and prints its RSS and heap (after a collection)
// after each step: sustained load must leave memory flat. Decisions are checked as in the runs.
func soak(ctx context.Context, c *child, corpus []benchenv.Case, o options, rate float64) int {
	step := o.soak / 10
	var rss, heap []string
	status := 0
	for range 10 {
		r := fixedRate(ctx, c.client, corpus, true, max(o.concurrency, 64), rate, step)
		if r.mismatches > 0 || r.rpcErrors > 0 {
			status = 1
		}
		rss = append(rss, fmt.Sprintf("%.1f", float64(c.rssKiB())/1024))
		if m, err := c.memStats(true); err == nil {
			heap = append(heap, fmt.Sprintf("%.1f", float64(m.HeapInuse)/(1<<20)))
		}
	}
	fmt.Printf("soak: mcp-authz at %.0f checks/s for %v; every %v: RSS MiB %s; heap in use after GC MiB %s\n",
		rate, o.soak, step, strings.Join(rss, " "), strings.Join(heap, " "))
	return status
}

// sent adds the errors and mismatches of one run.
func (t *targetResult) sent(r runResult) {
	t.rpcErrors += r.rpcErrors
	t.mismatches += r.mismatches
	if t.firstErr == "" {
		t.firstErr = r.firstErr
	}
}

func numCPU() int { return runtime.GOMAXPROCS(0) }

// report prints the one table and the ratios, and returns the exit status: 1 on any mismatch or RPC error.
func report(w io.Writer, o options, results map[string]*targetResult) int {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "target\tchecks/s\tp50\tp99\thalf rate/s\tp50@half\tp99@half\tCPU µs/check\tallocs/check\tB/check\tRSS MiB 1s→end\theap MiB start→end\tmismatches\terrors\t")
	status := 0
	for _, kind := range o.targets {
		t := results[kind]
		mism := "n/a (decides nothing)"
		if t.verified {
			mism = fmt.Sprint(t.mismatches)
			if t.mismatches > 0 {
				status = 1
			}
		}
		if t.rpcErrors > 0 {
			status = 1
		}
		fmt.Fprintf(tw, "%s\t%.0f\t%s\t%s\t%.0f\t%s\t%s\t%.0f\t%.0f\t%.0f\t%.1f→%.1f\t%.1f→%.1f\t%s\t%d\t\n",
			kind, t.medianRate(), ms(t.sat.percentile(0.50)), ms(t.sat.percentile(0.99)),
			t.half.rate(), ms(t.half.percentile(0.50)), ms(t.half.percentile(0.99)),
			t.cpuPerCheck(), float64(t.mallocs)/float64(t.checks), float64(t.bytes)/float64(t.checks),
			float64(t.rssStart)/1024, float64(t.rssEnd)/1024, float64(t.heapStart)/(1<<20), float64(t.heapEnd)/(1<<20),
			mism, t.rpcErrors)
	}
	tw.Flush()
	for _, kind := range o.targets {
		if t := results[kind]; t.firstErr != "" && (t.verified || t.rpcErrors > 0) {
			fmt.Fprintf(w, "%s: first failure: %.300s\n", kind, t.firstErr)
		}
	}
	a, okA := results["mcp-authz"]
	if f, ok := results["floor"]; ok && okA {
		r := a.medianRate() / f.medianRate()
		if target, ok := floorTargets[o.corpus.kind]; ok {
			fmt.Fprintf(w, "ratio mcp-authz/floor    = %.2f  (target for the %s corpus >= %.2f: %s)\n", r, o.corpus.kind, target, verdict(r >= target))
		} else {
			fmt.Fprintf(w, "ratio mcp-authz/floor    = %.2f  (no target for the %s corpus)\n", r, o.corpus.kind)
		}
		if a.cpuPerCheck() > 0 {
			fmt.Fprintf(w, "CPU per check, floor/mcp-authz = %.2f  (the ratio where the machine is not shared: less sensitive to other load than checks/s)\n", f.cpuPerCheck()/a.cpuPerCheck())
		}
	}
	if as, ok := results[assertionTarget]; ok && okA {
		r := as.medianRate() / a.medianRate()
		fmt.Fprintf(w, "ratio mcp-authz-assertion/mcp-authz = %.2f  (target >= 0.90: %s)\n", r, verdict(r >= 0.90))
	}
	for _, b := range []string{"baseline", "baseline-jwtcache"} {
		if bl, ok := results[b]; ok && okA {
			r := a.medianRate() / bl.medianRate()
			fmt.Fprintf(w, "ratio mcp-authz/%-9s= %.2f  (target >= %.0f: %s)\n", b, r, baselineTarget, verdict(r >= baselineTarget))
		}
	}
	if okA {
		p := a.half.percentile(0.99)
		at := "half saturation"
		if o.latencyAt != 0.5 {
			at = fmt.Sprintf("%.2f of saturation (-latency-at; the target is for 0.5)", o.latencyAt)
		}
		fmt.Fprintf(w, "mcp-authz p99 at %s = %s  (target < 1 ms: %s)\n", at, ms(p), verdict(p < time.Millisecond))
		if f, ok := results["floor"]; ok {
			fmt.Fprintf(w, "  for reference: the floor's p99 at the same fraction of its saturation = %s; mcp-authz's own decision time (its log's duration_ms) p99 = %s\n",
				ms(f.half.percentile(0.99)), ms(a.decideP99))
		}
		for _, warn := range a.profileWarnings {
			fmt.Fprintln(w, "cpu profile:", warn)
		}
	}
	if status != 0 {
		fmt.Fprintln(w, "FAIL: some answers were not the expected decision, or RPCs failed")
	}
	return status
}

func verdict(ok bool) string {
	if ok {
		return "met"
	}
	return "NOT met"
}

func ms(d time.Duration) string { return fmt.Sprintf("%.3fms", float64(d)/float64(time.Millisecond)) }
