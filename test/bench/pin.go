package main

import (
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// splitCPUs divides the CPUs this process may run on into two halves, as lists such as "0" or "0,1": the
// first for the load generator, the second for the targets.
func splitCPUs() (generator, targets string, err error) {
	var set unix.CPUSet
	if err := unix.SchedGetaffinity(0, &set); err != nil {
		return "", "", fmt.Errorf("pin: %w", err)
	}
	var cpus []string
	for i := range 1024 {
		if set.IsSet(i) {
			cpus = append(cpus, strconv.Itoa(i))
		}
	}
	if len(cpus) < 2 {
		return "", "", fmt.Errorf("pin: %d CPU, need 2", len(cpus))
	}
	half := len(cpus) / 2
	return strings.Join(cpus[:half], ","), strings.Join(cpus[half:], ","), nil
}

// pinTo restricts this process to the CPUs of list (nothing when empty) and sets GOMAXPROCS to their
// number.
func pinTo(list string) error {
	if list == "" {
		return nil
	}
	var set unix.CPUSet
	for c := range strings.SplitSeq(list, ",") {
		n, err := strconv.Atoi(c)
		if err != nil {
			return fmt.Errorf("pin: CPU %q: %w", c, err)
		}
		set.Set(n)
	}
	// Every thread of the process: the runtime's threads inherit the mask of the thread that creates them,
	// so the threads started before this call are pinned one by one.
	tids, err := threads()
	if err != nil {
		return err
	}
	for _, tid := range tids {
		if err := unix.SchedSetaffinity(tid, &set); err != nil {
			return fmt.Errorf("pin thread %d: %w", tid, err)
		}
	}
	runtime.GOMAXPROCS(set.Count())
	return nil
}

// threads lists the thread ids of this process.
func threads() ([]int, error) {
	entries, err := os.ReadDir("/proc/self/task")
	if err != nil {
		return nil, fmt.Errorf("pin: %w", err)
	}
	var tids []int
	for _, e := range entries {
		if tid, err := strconv.Atoi(e.Name()); err == nil {
			tids = append(tids, tid)
		}
	}
	return tids, nil
}
