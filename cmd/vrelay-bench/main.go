// Command vrelay-bench measures vrelay end to end on this machine and
// prints one line per figure, `bench: <name> <value> <unit>`. `make bench`
// runs it after the Go benchmarks; BENCHMARKS.md explains each scenario.
//
// Every scenario runs in this process with the real packages: the embedded
// nats-server on a temporary directory with the production settings (file
// store, fsync every second), routes through consumers.Dispatcher and
// httpsink, and an HTTP receiver on 127.0.0.1. The bare relay it compares
// against runs on the same server, receiver, events and concurrency. The
// footprint scenario builds and starts the vrelay binary.
//
//	go run ./cmd/vrelay-bench                  # everything, about 1½ minutes
//	go run ./cmd/vrelay-bench -quick           # a smoke run of every scenario
//	go run ./cmd/vrelay-bench -only pipeline -cpuprofile cpu.prof
//	go run ./cmd/vrelay-bench -json bench-results.json -md BENCHMARKS.md -gobench go-bench.txt
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"os"
	"os/signal"
	"runtime/pprof"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/vrelay/vrelay/consumers"
	"github.com/vrelay/vrelay/consumers/httpsink"
	"github.com/vrelay/vrelay/producers"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if serveChild(ctx) {
		return
	}
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(2)
		}
		fmt.Fprintln(os.Stderr, "vrelay-bench:", err)
		os.Exit(1)
	}
}

// serveChild serves as one of the split vCenter run's children, the
// simulator or the minimal reader, when the environment says so, and then
// exits; it returns false when this process is not a child. The test
// binary calls it too, as the split run starts its own executable.
func serveChild(ctx context.Context) bool {
	serve, name := serveSim, "simulator"
	switch {
	case os.Getenv(simChildEnv) != "":
	case os.Getenv(readerChildEnv) != "":
		serve, name = serveReader, "reader"
	default:
		return false
	}
	if err := serve(ctx, os.Stdin, os.Stdout); err != nil {
		fmt.Fprintf(os.Stderr, "vrelay-bench %s: %v\n", name, err)
		os.Exit(1)
	}
	os.Exit(0)
	return true
}

// scenarios in the order they run.
var scenarios = []string{"filter", "pipeline", "webhook", "slowsink", "vcenter", "footprint"}

type options struct {
	quick      bool
	only, skip string

	events   int
	rounds   int
	inFlight int
	filter   string
	mode     string // the pipeline route's CloudEvents HTTP mode
	pacedFor time.Duration

	webhookEvents  int
	webhookClients int

	vcEvents  int
	vcWorkers int
	vcIdle    int
	// vcSplitOnly runs only the split part of the vcenter scenario.
	vcSplitOnly bool
	// vcProfile is where the split run writes a CPU profile of vrelay.
	vcProfile string

	slowDelay time.Duration
	slowFor   time.Duration

	filterFor time.Duration
	idleWait  time.Duration
	vrelayBin string

	jsonPath, mdPath, goBench string
	since                     int64
	cpuProfile, memProfile    string
	profile                   string
}

func parseFlags(args []string, stderr io.Writer) (options, error) {
	var o options
	fs := flag.NewFlagSet("vrelay-bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.BoolVar(&o.quick, "quick", false, "a smoke run: every scenario with small counts (figures are not meaningful)")
	fs.StringVar(&o.only, "only", "", "comma-separated scenarios to run: "+strings.Join(scenarios, ", "))
	fs.StringVar(&o.skip, "skip", "", "comma-separated scenarios to leave out")
	fs.IntVar(&o.events, "events", 100_000, "events per saturated pipeline and relay run")
	fs.IntVar(&o.rounds, "rounds", 3, "rounds of pipeline and relay runs (ABBA order); the best of each counts")
	fs.IntVar(&o.inFlight, "inflight", 64, "in-flight sends of the route and workers of the relay")
	fs.StringVar(&o.filter, "filter", typicalFilter, "the route's filter in the pipeline scenario")
	fs.StringVar(&o.mode, "mode", httpsink.ModeStructured,
		"the pipeline route's CloudEvents HTTP mode, structured (what the relay posts) or binary")
	fs.DurationVar(&o.pacedFor, "paced", 3*time.Second, "duration of the paced latency runs")
	fs.IntVar(&o.webhookEvents, "webhook-events", 30_000, "events posted to the webhook")
	fs.IntVar(&o.webhookClients, "webhook-clients", 32, "concurrent webhook clients")
	fs.IntVar(&o.vcEvents, "vcenter-events", 20_000, "events posted to the simulated vCenter")
	fs.IntVar(&o.vcWorkers, "vcenter-workers", 4, "concurrent posters to the simulated vCenter")
	fs.IntVar(&o.vcIdle, "vcenter-idle", 25, "single events for the idle latency")
	fs.BoolVar(&o.vcSplitOnly, "vcenter-split-only", false, "run only the split part of the vcenter scenario (vrelay and the simulator in processes of their own)")
	fs.StringVar(&o.vcProfile, "vcenter-cpuprofile", "", "write a CPU profile of the vrelay process of the split vcenter run, while events flow, to this file (and of the run without the route to this file plus .ingest); vrelay is built with a profiling hook for it")
	fs.DurationVar(&o.slowDelay, "slow-delay", 50*time.Millisecond, "time the slow sink takes per request")
	fs.DurationVar(&o.slowFor, "slow-for", 4*time.Second, "ideal duration of each slow-sink run (sets its event count)")
	fs.DurationVar(&o.filterFor, "filter-for", time.Second, "measuring time of each filter expression")
	fs.DurationVar(&o.idleWait, "idle-wait", 5*time.Second, "how long vrelay idles after /readyz before its RSS is read")
	fs.StringVar(&o.vrelayBin, "vrelay", "", "vrelay binary for the footprint scenario (default: build one)")
	fs.StringVar(&o.jsonPath, "json", "", "write the figures and machine facts to this JSON file")
	fs.StringVar(&o.mdPath, "md", "", "rewrite the figures between the markers of this markdown file (BENCHMARKS.md)")
	fs.StringVar(&o.goBench, "gobench", "", "a file of `go test -bench -benchmem` output to include")
	fs.Int64Var(&o.since, "since", 0, "unix time `make bench` started, to report its wall time")
	fs.StringVar(&o.cpuProfile, "cpuprofile", "", "write a CPU profile of the -profile scenario to this file")
	fs.StringVar(&o.memProfile, "memprofile", "", "write an allocations profile of the -profile scenario to this file")
	fs.StringVar(&o.profile, "profile", "pipeline", "what -cpuprofile and -memprofile cover: pipeline or relay (one extra saturated run, not counted), or another scenario (its whole run)")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if o.mode != httpsink.ModeStructured && o.mode != httpsink.ModeBinary {
		return o, fmt.Errorf("-mode %q: want %s or %s", o.mode, httpsink.ModeStructured, httpsink.ModeBinary)
	}
	for _, list := range []string{o.only, o.skip, o.profile} {
		for _, s := range splitList(list) {
			if !slices.Contains(scenarios, s) && (list != o.profile || s != kindRelay) {
				return o, fmt.Errorf("unknown scenario %q (have %s)", s, strings.Join(scenarios, ", "))
			}
		}
	}
	if o.quick {
		set := map[string]bool{}
		fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
		quick := func(name string, apply func()) {
			if !set[name] {
				apply()
			}
		}
		quick("events", func() { o.events = 2000 })
		quick("rounds", func() { o.rounds = 1 })
		quick("paced", func() { o.pacedFor = 300 * time.Millisecond })
		quick("webhook-events", func() { o.webhookEvents = 300 })
		quick("webhook-clients", func() { o.webhookClients = 8 })
		quick("vcenter-events", func() { o.vcEvents = 200 })
		quick("vcenter-idle", func() { o.vcIdle = 3 })
		quick("slow-delay", func() { o.slowDelay = 20 * time.Millisecond })
		quick("slow-for", func() { o.slowFor = 200 * time.Millisecond })
		quick("filter-for", func() { o.filterFor = 20 * time.Millisecond })
		quick("idle-wait", func() { o.idleWait = time.Second })
	}
	if o.events < 1 || o.rounds < 1 || o.inFlight < 1 || o.webhookEvents < 1 || o.webhookClients < 1 ||
		o.vcEvents < 1 || o.vcWorkers < 1 || o.vcIdle < 1 {
		return o, errors.New("counts must be positive")
	}
	return o, nil
}

func splitList(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

func (o options) enabled(s string) bool {
	if only := splitList(o.only); len(only) > 0 && !slices.Contains(only, s) {
		return false
	}
	return !slices.Contains(splitList(o.skip), s)
}

func (o options) settings() map[string]any {
	return map[string]any{
		"quick": o.quick, "events": o.events, "rounds": o.rounds, "in_flight": o.inFlight,
		"filter": o.filter, "mode": o.mode, "paced_s": o.pacedFor.Seconds(),
		"webhook_events": o.webhookEvents, "webhook_clients": o.webhookClients,
		"vcenter_events": o.vcEvents, "vcenter_workers": o.vcWorkers, "vcenter_idle_events": o.vcIdle,
		"slow_delay_ms": ms(o.slowDelay), "slow_run_s": o.slowFor.Seconds(),
		"idle_wait_s": o.idleWait.Seconds(),
	}
}

// bench is what the scenarios share.
type bench struct {
	opt    options
	rep    *report
	logw   io.Writer
	env    *env
	recv   *receiver
	events *eventFactory

	consumerMetrics *consumers.Metrics
	producerMetrics *producers.Metrics

	// binDir holds the vrelay binary built for the run, if one was.
	binDir, bin string
}

func (b *bench) logf(format string, args ...any) {
	fmt.Fprintf(b.logw, "vrelay-bench: "+format+"\n", args...)
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	start := time.Now()
	opt, err := parseFlags(args, stderr)
	if err != nil {
		return err
	}
	log.SetOutput(stderr)
	m := machineFacts()
	b := &bench{opt: opt, rep: newReport(stdout), logw: stderr}

	if opt.goBench != "" {
		f, err := os.Open(opt.goBench)
		if err != nil {
			return err
		}
		micro := parseGoBench(f)
		f.Close()
		if len(micro) == 0 {
			b.rep.note("no Go benchmark results in the go test output")
		}
		for _, fig := range micro {
			b.rep.addMicro(fig)
		}
	}

	if b.events, err = newEventFactory(); err != nil {
		return err
	}
	if b.env, err = newEnv(ctx); err != nil {
		return err
	}
	defer b.env.close()
	if b.recv, err = newReceiver(); err != nil {
		return err
	}
	defer b.recv.close()
	defer func() {
		if b.binDir != "" {
			os.RemoveAll(b.binDir)
		}
	}()
	reg := prometheus.NewRegistry()
	b.consumerMetrics = consumers.NewMetrics(reg)
	b.producerMetrics = producers.NewMetrics(reg)

	steps := map[string]func(context.Context) error{
		"filter":    b.runFilter,
		"pipeline":  b.runPipeline,
		"webhook":   b.runWebhook,
		"slowsink":  b.runSlowSink,
		"vcenter":   b.runVCenter,
		"footprint": b.runFootprint,
	}
	var failed []string
	for _, s := range scenarios {
		if !opt.enabled(s) {
			continue
		}
		t := time.Now()
		step := steps[s]
		if s == opt.profile && s != kindPipeline {
			step = b.profiled(step)
		}
		if err := step(ctx); err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			failed = append(failed, s)
			b.rep.note("scenario %s failed: %v", s, err)
			b.logf("scenario %s failed: %v", s, err)
			continue
		}
		b.logf("scenario %s took %s", s, time.Since(t).Round(100*time.Millisecond))
	}
	if opt.since > 0 {
		wall := time.Since(time.Unix(opt.since, 0)).Seconds()
		b.rep.addTarget("make_bench_wall_s", wall, "s", "< 600", func(v float64) bool { return v < 600 })
	}

	res := b.rep.results(start, m, opt.settings())
	if opt.jsonPath != "" {
		if err := writeJSON(opt.jsonPath, res); err != nil {
			return err
		}
	}
	if opt.mdPath != "" {
		if err := updateMarkdown(opt.mdPath, res); err != nil {
			return err
		}
	}
	if len(failed) > 0 {
		return fmt.Errorf("scenarios failed: %s", strings.Join(failed, ", "))
	}
	return nil
}

// profiled runs step under the CPU profiler and writes the allocations
// profile after it, as the flags ask.
func (b *bench) profiled(step func(context.Context) error) func(context.Context) error {
	return func(ctx context.Context) error {
		stop, err := startProfile(b.opt.cpuProfile)
		if err != nil {
			return err
		}
		err = step(ctx)
		stop()
		return errors.Join(err, writeAllocs(b.opt.memProfile))
	}
}

// startProfile starts the CPU profiler when path is set; stop ends it.
func startProfile(path string) (stop func(), err error) {
	if path == "" {
		return func() {}, nil
	}
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, err
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
	}, nil
}

// writeAllocs writes the allocations profile when path is set.
func writeAllocs(path string) error {
	if path == "" {
		return nil
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	return pprof.Lookup("allocs").WriteTo(f, 0)
}
