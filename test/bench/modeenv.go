package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/mcp-authz/mcp-authz/test/benchenv"
)

// modeEnv is what the overload and endurance runs share: a test OpenID provider, a scratch folder, and the
// arguments to start mcp-authz children against that provider.
type modeEnv struct {
	idp  *benchenv.IdP
	tmp  string
	args []string
	logs []*os.File
}

// newModeEnv starts the provider and, with o.pin, pins this process to half the CPUs (children get the
// other half). Children read their policies from policies.
func newModeEnv(o options, policies string) (*modeEnv, error) {
	p, err := benchenv.StartIdP()
	if err != nil {
		return nil, fmt.Errorf("start IdP: %w", err)
	}
	tmp, err := os.MkdirTemp("", "mcp-authz-bench-")
	if err != nil {
		p.Close()
		return nil, fmt.Errorf("scratch folder: %w", err)
	}
	e := &modeEnv{idp: p, tmp: tmp}
	abs, err := filepath.Abs(policies)
	if err != nil {
		e.close()
		return nil, fmt.Errorf("policies: %w", err)
	}
	e.args = []string{"-issuer", p.Issuer(), "-policies", abs, "-authz-log", o.authzLog}
	if o.pin {
		generator, targets, err := splitCPUs()
		if err == nil {
			err = pinTo(generator)
		}
		if err != nil {
			e.close()
			return nil, err
		}
		e.args = append(e.args, "-cpus", targets)
	}
	return e, nil
}

// startAuthz starts an mcp-authz child named name (its log file's name) with extra appended to its
// configuration, connected over conns gRPC connections.
func (e *modeEnv) startAuthz(name, extra string, conns int) (*child, error) {
	logFile, err := os.Create(filepath.Join(e.tmp, name+".log"))
	if err != nil {
		return nil, fmt.Errorf("log file: %w", err)
	}
	e.logs = append(e.logs, logFile)
	args := append(append([]string{}, e.args...), "-config-extra", extra)
	c, err := startChild("mcp-authz", args, logFile, conns)
	if err != nil {
		return nil, err
	}
	c.log = logFile.Name()
	return c, nil
}

// startFloor starts a floor child: a server that allows every Check with a prebuilt answer.
func (e *modeEnv) startFloor(conns int) (*child, error) {
	logFile, err := os.Create(filepath.Join(e.tmp, "floor.log"))
	if err != nil {
		return nil, fmt.Errorf("log file: %w", err)
	}
	e.logs = append(e.logs, logFile)
	c, err := startChild("floor", e.args, logFile, conns)
	if err != nil {
		return nil, err
	}
	c.log = logFile.Name()
	return c, nil
}

func (e *modeEnv) close() {
	for _, f := range e.logs {
		f.Close()
	}
	os.RemoveAll(e.tmp)
	e.idp.Close()
}

// policyStats asks an mcp-authz child for the status of its live policy.
func (c *child) policyStats() (policyStats, error) {
	client := http.Client{Timeout: 5 * time.Second}
	resp, err := client.Get("http://" + c.stats + "/policy")
	if err != nil {
		return policyStats{}, err
	}
	defer resp.Body.Close()
	var s policyStats
	return s, json.NewDecoder(resp.Body).Decode(&s)
}

// cpuTime is the CPU time (user and system) the child has used so far, from /proc/<pid>/stat; 0 when it
// cannot be read.
func (c *child) cpuTime() time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", c.cmd.Process.Pid))
	if err != nil {
		return 0
	}
	return statCPU(string(b))
}

// clockTicks is the unit of the CPU times in /proc/<pid>/stat (USER_HZ, 100 on Linux).
const clockTicks = 100

// statCPU reads utime + stime from a /proc/<pid>/stat line: fields 14 and 15, counted after the command
// name in parentheses (which may hold spaces).
func statCPU(stat string) time.Duration {
	i := strings.LastIndexByte(stat, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(stat[i+1:]) // f[0] is field 3 (state)
	if len(f) < 13 {
		return 0
	}
	u, err1 := strconv.ParseInt(f[11], 10, 64)
	s, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0
	}
	return time.Duration(u+s) * time.Second / clockTicks
}

// selfCPU is the CPU time (user and system) this process has used so far.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// parseFloats reads a comma-separated list of positive numbers such as "2,4".
func parseFloats(list string) ([]float64, error) {
	var out []float64
	for f := range strings.SplitSeq(list, ",") {
		v, err := strconv.ParseFloat(strings.TrimSpace(f), 64)
		if err != nil || v <= 0 {
			return nil, fmt.Errorf("%q: want positive numbers separated by commas", list)
		}
		out = append(out, v)
	}
	return out, nil
}
