package main

import (
	"errors"
	"io/fs"
	"log/slog"
	"math"
	"os"
	"runtime/debug"
	"strconv"
	"strings"
)

// gcPercent is vrelay's default GOGC. Every event vrelay relays allocates
// a little (a page of SOAP to decode, a message, a request), and the heap
// that is live between collections is small, so with Go's default of 100
// the collector runs often: at 200 it takes about 4 µs less CPU per
// vCenter event (BENCHMARKS.md) for a heap that may grow to three times
// what is live instead of two. The resident set of an idle vrelay does not
// change measurably.
const gcPercent = 200

// memLimitShare is the share of the container's memory limit that vrelay
// sets as the Go runtime's soft memory limit, so that the heap growth
// gcPercent allows never takes the container to its limit: near it, the
// collector runs as often as it must. The rest is for what the runtime
// does not count (thread stacks, the embedded server's file buffers).
const memLimitShare = 0.9

// gcSettings returns the collector settings vrelay applies: percent (0:
// leave it) unless GOGC is set, and a memory limit in bytes (0: leave it)
// unless GOMEMLIMIT is set, from the cgroup (v2, else v1) memory limit
// under root (the file system root in production), when there is one.
func gcSettings(getenv func(string) string, root fs.FS) (percent int, limit int64, reason string) {
	if getenv("GOGC") == "" {
		percent = gcPercent
	}
	if getenv("GOMEMLIMIT") != "" {
		return percent, 0, "GOMEMLIMIT is set"
	}
	for _, name := range []string{"sys/fs/cgroup/memory.max", "sys/fs/cgroup/memory/memory.limit_in_bytes"} {
		b, err := fs.ReadFile(root, name)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return percent, 0, "cannot read the cgroup memory limit: " + err.Error()
		}
		s := strings.TrimSpace(string(b))
		if s == "max" {
			return percent, 0, "no cgroup memory limit"
		}
		n, err := strconv.ParseInt(s, 10, 64)
		// cgroup v1 reports "no limit" as a number near the largest int64.
		if err != nil || n <= 0 || n >= math.MaxInt64/2 {
			return percent, 0, "no cgroup memory limit"
		}
		return percent, int64(float64(n) * memLimitShare), "90% of the cgroup memory limit"
	}
	return percent, 0, "no cgroup memory limit"
}

// tuneGC applies gcSettings to this process and says what it did.
func tuneGC(log *slog.Logger) {
	percent, limit, reason := gcSettings(os.Getenv, os.DirFS("/"))
	gogc := "from GOGC"
	if percent > 0 {
		debug.SetGCPercent(percent)
		gogc = strconv.Itoa(percent)
	}
	if limit > 0 {
		debug.SetMemoryLimit(limit)
	}
	log.Debug("garbage collector", "gogc", gogc, "memory_limit_bytes", limit, "memory_limit", reason)
}
