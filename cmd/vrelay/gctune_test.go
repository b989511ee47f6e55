package main

import (
	"testing"
	"testing/fstest"
)

// TestGCSettings checks the collector settings vrelay takes: GOGC 200
// unless GOGC is set, and 90% of the cgroup memory limit as the soft
// memory limit unless GOMEMLIMIT is set or there is no limit.
func TestGCSettings(t *testing.T) {
	env := func(kv ...string) func(string) string {
		m := map[string]string{}
		for i := 0; i+1 < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return func(k string) string { return m[k] }
	}
	v2 := func(s string) fstest.MapFS {
		return fstest.MapFS{"sys/fs/cgroup/memory.max": {Data: []byte(s)}}
	}
	v1 := func(s string) fstest.MapFS {
		return fstest.MapFS{"sys/fs/cgroup/memory/memory.limit_in_bytes": {Data: []byte(s)}}
	}
	for _, tt := range []struct {
		name        string
		getenv      func(string) string
		root        fstest.MapFS
		wantPercent int
		wantLimit   int64
	}{
		{"cgroup v2 limit", env(), v2("1073741824\n"), 200, 966367641},
		{"cgroup v2 without a limit", env(), v2("max\n"), 200, 0},
		{"cgroup v1 limit", env(), v1("536870912\n"), 200, 483183820},
		{"cgroup v1 without a limit", env(), v1("9223372036854771712\n"), 200, 0},
		{"no cgroup", env(), fstest.MapFS{}, 200, 0},
		{"GOGC set", env("GOGC", "50"), v2("1073741824"), 0, 966367641},
		{"GOMEMLIMIT set", env("GOMEMLIMIT", "512MiB"), v2("1073741824"), 200, 0},
		{"both set", env("GOGC", "off", "GOMEMLIMIT", "1GiB"), v2("1073741824"), 0, 0},
		{"garbage in the file", env(), v2("lots"), 200, 0},
	} {
		percent, limit, reason := gcSettings(tt.getenv, tt.root)
		if percent != tt.wantPercent || limit != tt.wantLimit {
			t.Errorf("%s: got (%d, %d, %q), want (%d, %d)", tt.name, percent, limit, reason, tt.wantPercent, tt.wantLimit)
		}
	}
}
