package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

var benchLine = regexp.MustCompile(`^bench: ([A-Za-z0-9_]+) (\S+) (\S+)$`)

// parseLines returns the figures of the `bench:` lines in out, and fails
// the test on a line that starts like one but does not parse.
func parseLines(t *testing.T, out string) map[string]float64 {
	t.Helper()
	got := map[string]float64{}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		if !strings.HasPrefix(line, "bench: ") {
			continue
		}
		m := benchLine.FindStringSubmatch(line)
		if m == nil {
			t.Errorf("line %q: want `bench: <name> <value> <unit>`", line)
			continue
		}
		v, err := strconv.ParseFloat(m[2], 64)
		if err != nil {
			t.Errorf("line %q: value: %v", line, err)
		}
		got[m[1]] = v
	}
	return got
}

// TestMain lets the test binary serve the children of the split vCenter
// run (the simulator and the minimal reader), which start this executable.
func TestMain(m *testing.M) {
	serveChild(context.Background())
	os.Exit(m.Run())
}

// TestUpdateHistory adds a run to the history table: a new commit's row
// goes first, a commit measured again replaces its row, and text outside
// the markers stays.
func TestUpdateHistory(t *testing.T) {
	md := "# B\n\n" + histBegin + "\n| Date | Commit |\n|---|---|\n" +
		"| 2026-11-01 | `aaa` | old | 0.7 | – | – | – | – | – |\n" +
		"| 2026-11-02 | `bbb` | older run of bbb | 0.8 | – | – | – | – | – |\n" + histEnd + "\n\nafter\n"
	res := results{Date: "2026-11-28T01:00:00Z", Commit: "bbb", Figures: []figure{
		{Name: "pipeline_vs_relay", Value: 1.02}, {Name: "webhook_vs_baseline", Value: 0.93},
	}}
	got := updateHistory(md, res)
	rows := []string{}
	for _, line := range strings.Split(got, "\n") {
		if strings.HasPrefix(line, "| 2") {
			rows = append(rows, line)
		}
	}
	if len(rows) != 2 || !strings.Contains(rows[0], "`bbb`") || !strings.Contains(rows[0], "1.02") ||
		!strings.Contains(rows[0], "0.93") || !strings.Contains(rows[1], "`aaa`") || strings.Contains(got, "older run of bbb") {
		t.Errorf("history rows:\n%s", strings.Join(rows, "\n"))
	}
	if !strings.HasPrefix(got, "# B\n\n"+histBegin) || !strings.HasSuffix(got, histEnd+"\n\nafter\n") {
		t.Errorf("text outside the markers changed:\n%s", got)
	}
	if got := updateHistory("no markers\n", res); got != "no markers\n" {
		t.Errorf("without markers: got %q", got)
	}
}

// TestQuickRun runs every scenario but the footprint with tiny counts and
// checks the output, the JSON file and the markdown table. The figures
// mean nothing at this size.
func TestQuickRun(t *testing.T) {
	dir := t.TempDir()
	md := filepath.Join(dir, "BENCHMARKS.md")
	if err := os.WriteFile(md, []byte("# Benchmarks\n\n"+mdBegin+"\nold figures\n"+mdEnd+"\n\nafter\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	goBench := filepath.Join(dir, "go-bench.txt")
	if err := os.WriteFile(goBench, []byte(`goos: linux
pkg: github.com/vrelay/vrelay/streams
BenchmarkEncode-2   	  110998	      9426 ns/op	 164.13 MB/s	    4817 B/op	      18 allocs/op
pkg: github.com/vrelay/vrelay/internal/flowtest
BenchmarkStreamToSink-2    	   23343	     48846 ns/op	     20472 events/s	   28340 B/op	     239 allocs/op
PASS
`), 0o600); err != nil {
		t.Fatal(err)
	}
	jsonPath := filepath.Join(dir, "bench-results.json")
	var stdout, stderr bytes.Buffer
	err := run(t.Context(), []string{
		"-quick", "-skip", "footprint",
		"-events", "300", "-paced", "100ms",
		"-webhook-events", "100", "-webhook-clients", "4",
		"-vcenter-events", "40", "-vcenter-idle", "2",
		"-slow-delay", "10ms", "-slow-for", "50ms",
		"-json", jsonPath, "-md", md, "-gobench", goBench, "-since", strconv.FormatInt(time.Now().Unix(), 10),
	}, &stdout, &stderr)
	if err != nil {
		t.Fatalf("run: %v\n%s", err, stderr.String())
	}
	got := parseLines(t, stdout.String())
	for _, name := range []string{
		"pipeline_events_per_s", "relay_events_per_s", "pipeline_vs_relay", "pipeline_p99_ms",
		"webhook_events_per_s", "webhook_vs_baseline", "webhook_batch_events_per_s",
		"vcenter_events_per_s", "vcenter_lost", "vcenter_idle_p50_ms", "vcenter_cpu_us_per_event",
		"vcenter_vs_ceiling", "vcenter_split_lost", "vcenter_ingest_cpu_us_per_event", "vcenter_route_cpu_us_per_event",
		"vcenter_split_ceiling_events_per_s", "vcenter_split_post_only_events_per_s", "vcenter_ingest_one_core_events_per_s",
		"pipeline_vs_relay_cpu", "pipeline_vs_relay_p99", "filter_data_key_ns_per_event", "filter_data_arguments_ns_per_event",
		"vcenter_idle_p99_ms", "slowsink16_events_per_s", "slowsink256_events_per_s",
		"filter_ns_per_event", "go_streams_Encode", "go_flowtest_StreamToSink_events_s", "make_bench_wall_s",
	} {
		if _, ok := got[name]; !ok {
			t.Errorf("no `bench: %s` line in the output:\n%s", name, stdout.String())
		}
	}
	if v := got["vcenter_lost"]; v != 0 {
		t.Errorf("vcenter_lost: got %v, want 0", v)
	}
	if v := got["make_bench_wall_s"]; v < 0 || v > 600 {
		t.Errorf("make_bench_wall_s: got %v, want the seconds since -since", v)
	}

	var res results
	b, err := os.ReadFile(jsonPath)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &res); err != nil {
		t.Fatalf("JSON file: %v", err)
	}
	if len(res.Figures) == 0 || res.Machine.Cores == 0 || res.Machine.Go == "" {
		t.Errorf("JSON file lacks figures or machine facts: %+v", res)
	}
	b, err = os.ReadFile(md)
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	if strings.Contains(s, "old figures") || !strings.Contains(s, "| `pipeline_vs_relay` |") || !strings.HasSuffix(s, mdEnd+"\n\nafter\n") {
		t.Errorf("markdown not rewritten between the markers:\n%s", s)
	}
}

// TestVCenterSplitOnly runs the split part of the vcenter scenario alone,
// with vrelay profiled: the figures of both runs (with and without the
// route), the reader's SOAP calls counted by the simulator child, and the
// two CPU profiles.
func TestVCenterSplitOnly(t *testing.T) {
	if testing.Short() {
		t.Skip("builds vrelay")
	}
	dir := t.TempDir()
	jsonPath, prof := filepath.Join(dir, "bench-results.json"), filepath.Join(dir, "vrelay.prof")
	var stdout, stderr bytes.Buffer
	err := run(t.Context(), []string{
		"-quick", "-only", "vcenter", "-vcenter-split-only", "-vcenter-events", "60",
		"-vcenter-cpuprofile", prof, "-json", jsonPath,
	}, &stdout, &stderr)
	if err != nil {
		t.Fatalf("run: %v\n%s", err, stderr.String())
	}
	got := parseLines(t, stdout.String())
	for _, name := range []string{"vcenter_cpu_us_per_event", "vcenter_ingest_cpu_us_per_event", "vcenter_split_lost"} {
		if _, ok := got[name]; !ok {
			t.Errorf("no `bench: %s` line in the output:\n%s", name, stdout.String())
		}
	}
	if _, ok := got["vcenter_idle_p50_ms"]; ok {
		t.Errorf("-vcenter-split-only ran the idle latency too:\n%s", stdout.String())
	}
	b, err := os.ReadFile(jsonPath)
	if err != nil {
		t.Fatal(err)
	}
	var res struct {
		Details map[string]struct {
			Calls       map[string]int64 `json:"soap_calls"`
			IngestCalls map[string]int64 `json:"ingest_soap_calls"`
		} `json:"details"`
	}
	if err := json.Unmarshal(b, &res); err != nil {
		t.Fatalf("JSON file: %v", err)
	}
	split := res.Details["vcenter_split"]
	if split.Calls["ReadNextEvents"] < 1 || split.IngestCalls["ReadNextEvents"] < 1 {
		t.Errorf("SOAP calls of the split runs: %v and %v, want ReadNextEvents counted", split.Calls, split.IngestCalls)
	}
	for _, p := range []string{prof, prof + ".ingest"} {
		b, err := os.ReadFile(p)
		if err != nil || len(b) < 2 || b[0] != 0x1f || b[1] != 0x8b { // a profile is gzipped
			t.Errorf("profile %s: %d bytes, %v", filepath.Base(p), len(b), err)
		}
	}
}

// TestFootprint starts the vrelay binary and reads its resident set.
func TestFootprint(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and starts the vrelay binary")
	}
	// Built as cmd/vrelay's own tests build it, which shares their build
	// cache; the harness itself builds with make build's flags.
	bin := filepath.Join(t.TempDir(), "vrelay")
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/vrelay/vrelay/cmd/vrelay").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	var stdout, stderr bytes.Buffer
	if err := run(t.Context(), []string{"-only", "footprint", "-idle-wait", "200ms", "-vrelay", bin}, &stdout, &stderr); err != nil {
		t.Fatalf("run: %v\n%s", err, stderr.String())
	}
	got := parseLines(t, stdout.String())
	if v, ok := got["idle_rss_mib"]; !ok || v <= 0 {
		t.Errorf("idle_rss_mib: got %v (present %t), want a positive figure", v, ok)
	}
}

func TestParseGoBench(t *testing.T) {
	in := `pkg: github.com/vrelay/vrelay/filters
BenchmarkMatchHeader/three_attributes-2         	 4192508	       294.6 ns/op	      32 B/op	       2 allocs/op
BenchmarkIdleLatency-2      72	  21143020 ns/op	        21.14 p50-ms	        23.98 p99-ms
BenchmarkBroken-2 ten 5 ns/op
ok  	github.com/vrelay/vrelay/filters	10.193s
`
	got := map[string]float64{}
	for _, f := range parseGoBench(strings.NewReader(in)) {
		got[f.Name+" "+f.Unit] = f.Value
	}
	want := map[string]float64{
		"go_filters_MatchHeader_three_attributes ns/op":            294.6,
		"go_filters_MatchHeader_three_attributes_allocs allocs/op": 2,
		"go_filters_IdleLatency ns/op":                             21143020,
		"go_filters_IdleLatency_p50_ms p50-ms":                     21.14,
		"go_filters_IdleLatency_p99_ms p99-ms":                     23.98,
	}
	if len(got) != len(want) {
		t.Errorf("got %d figures %v, want %d", len(got), got, len(want))
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s: got %v, want %v", k, got[k], v)
		}
	}
}

func TestFormatValue(t *testing.T) {
	tests := []struct {
		in   float64
		want string
	}{
		{18234.4, "18234"}, {0.7912, "0.791"}, {3, "3"}, {2.345, "2.35"}, {14.25, "14.2"}, {0, "0"},
	}
	for _, tt := range tests {
		if got := formatValue(tt.in); got != tt.want {
			t.Errorf("formatValue(%v): got %q, want %q", tt.in, got, tt.want)
		}
	}
}
