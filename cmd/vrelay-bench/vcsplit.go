package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"
)

// simChildEnv, set in the environment of this program, makes it serve a
// simulator for the split vCenter run instead of measuring (see serveSim).
const simChildEnv = "VRELAY_BENCH_SIM_CHILD"

// simHello is what a simulator child says first: where to reach it.
type simHello struct {
	URL      string `json:"url"`
	Password string `json:"password"`
	CAFile   string `json:"ca_file"`
}

// serveSim runs in a child process: it starts a simulator, writes a
// simHello line to out, then for each line of in answers one line, until
// in is closed:
//
//	post FROM TO WORKERS  posts those events; answers "done SECONDS"
//	calls                 answers "calls {JSON}": the reader's SOAP calls
//	                      so far, by method (see readerMethods)
//
// A failed command answers "error MESSAGE".
func serveSim(ctx context.Context, in io.Reader, out io.Writer) error {
	s, err := startSim(ctx)
	if err != nil {
		return err
	}
	defer s.close()
	s.countCalls(readerMethods...)
	hello, err := json.Marshal(simHello{URL: s.url, Password: s.password, CAFile: s.caFile})
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "%s\n", hello)
	sc := bufio.NewScanner(in)
	for sc.Scan() {
		if sc.Text() == "calls" {
			b, _ := json.Marshal(s.callCounts())
			fmt.Fprintf(out, "calls %s\n", b)
			continue
		}
		var from, to, workers int
		if _, err := fmt.Sscanf(sc.Text(), "post %d %d %d", &from, &to, &workers); err != nil {
			fmt.Fprintf(out, "error %v\n", err)
			continue
		}
		start := time.Now()
		if err := s.postAll(ctx, from, to, workers, nil); err != nil {
			fmt.Fprintf(out, "error %s\n", strings.ReplaceAll(err.Error(), "\n", " "))
			continue
		}
		fmt.Fprintf(out, "done %f\n", time.Since(start).Seconds())
	}
	return sc.Err()
}

// simChild is a simulator served by a child process of this program.
type simChild struct {
	simHello
	cmd    *exec.Cmd
	in     io.WriteCloser
	out    *bufio.Reader
	pinned bool
}

// startSimChild starts a simulator child, pinned to cpu with taskset when
// cpu is not negative and taskset is there.
func startSimChild(ctx context.Context, cpu int) (*simChild, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	c := &simChild{}
	c.cmd, c.pinned = pinnedCommand(ctx, cpu, self)
	c.cmd.Env = append(os.Environ(), simChildEnv+"=1")
	c.cmd.Stderr = os.Stderr
	if c.in, err = c.cmd.StdinPipe(); err != nil {
		return nil, err
	}
	stdout, err := c.cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	c.out = bufio.NewReader(stdout)
	if err := c.cmd.Start(); err != nil {
		return nil, err
	}
	line, err := c.out.ReadString('\n')
	if err == nil {
		err = json.Unmarshal([]byte(line), &c.simHello)
	}
	if err != nil {
		c.close()
		return nil, fmt.Errorf("simulator child: %w", err)
	}
	return c, nil
}

// post has the child post events [from, to) and returns how long it took.
func (c *simChild) post(from, to, workers int) (time.Duration, error) {
	if _, err := fmt.Fprintf(c.in, "post %d %d %d\n", from, to, workers); err != nil {
		return 0, err
	}
	line, err := c.out.ReadString('\n')
	if err != nil {
		return 0, err
	}
	if s, ok := strings.CutPrefix(strings.TrimSpace(line), "done "); ok {
		sec, err := strconv.ParseFloat(s, 64)
		return time.Duration(sec * float64(time.Second)), err
	}
	return 0, errors.New(strings.TrimSpace(line))
}

// calls returns the reader's SOAP calls so far, by method.
func (c *simChild) calls() (map[string]int64, error) {
	if _, err := fmt.Fprintln(c.in, "calls"); err != nil {
		return nil, err
	}
	line, err := c.out.ReadString('\n')
	if err != nil {
		return nil, err
	}
	s, ok := strings.CutPrefix(strings.TrimSpace(line), "calls ")
	if !ok {
		return nil, errors.New(strings.TrimSpace(line))
	}
	var m map[string]int64
	return m, json.Unmarshal([]byte(s), &m)
}

func (c *simChild) close() {
	_ = c.in.Close()
	done := make(chan struct{})
	go func() { _ = c.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(15 * time.Second):
		_ = c.cmd.Process.Kill()
		<-done
	}
}

// pinnedCommand returns the command running name with args, under
// `taskset -c cpu` when cpu is not negative, the machine has more than
// one CPU and taskset is installed; it reports whether it pinned.
func pinnedCommand(ctx context.Context, cpu int, name string, args ...string) (*exec.Cmd, bool) {
	if cpu >= 0 && runtime.NumCPU() > 1 {
		if ts, err := exec.LookPath("taskset"); err == nil {
			return exec.CommandContext(ctx, ts, append([]string{"-c", strconv.Itoa(cpu), name}, args...)...), true
		}
	}
	return exec.CommandContext(ctx, name, args...), false
}

// procCPU is the CPU time (user + system) process pid used so far, from
// /proc/<pid>/stat, which counts in clock ticks (USER_HZ, 100 on Linux).
func procCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, err
	}
	// The command name, in parentheses, may hold spaces: count from after it.
	_, rest, ok := strings.Cut(string(b), ") ")
	if !ok {
		return 0, errors.New("unexpected /proc/<pid>/stat")
	}
	f := strings.Fields(rest)
	if len(f) < 13 {
		return 0, errors.New("unexpected /proc/<pid>/stat")
	}
	// Fields 14 and 15 of stat (utime, stime) are 12 and 13 after the name.
	ut, err1 := strconv.ParseUint(f[11], 10, 64)
	st, err2 := strconv.ParseUint(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, err
	}
	const userHZ = 100
	return time.Duration(ut+st) * time.Second / userHZ, nil
}

// runVCenterSplit measures the vCenter path with vrelay in a process of
// its own: `vrelay run` (embedded NATS, the vCenter source, a route with
// the typical filter to the receiver), and the simulator with its posters
// in a child of this program. Where the machine has two CPUs and taskset,
// the simulator runs on CPU 0 and vrelay on CPU 1. The ceiling is what a
// reader that does nothing but read (readCeiling, on CPU 1) gets from the
// simulator while the posters post as fast as they can: a simulator that
// is read also encodes every event for its reader, on the same CPU as its
// posters, so it posts less than alone (that rate, with nobody reading, is
// reported too). Then a fresh simulator is read by vrelay while the
// posters post as fast as they can. vrelay's CPU time per event
// comes from /proc/<pid>/stat, the simulator excluded. A second run, with
// no route, gives the CPU time of the ingest alone (vCenter to JetStream).
func (b *bench) runVCenterSplit(ctx context.Context, bin string) error {
	n, workers := b.opt.vcEvents, b.opt.vcWorkers
	ceil, err := startSimChild(ctx, 0)
	if err != nil {
		return err
	}
	b.logf("vcenter split: posting alone, %d events, %d posters, simulator pinned: %v", n, workers, ceil.pinned)
	took, err := ceil.post(0, n, workers)
	ceil.close()
	if err != nil {
		return fmt.Errorf("ceiling: %w", err)
	}
	postOnly := float64(n) / took.Seconds()
	b.logf("vcenter split: ceiling, a minimal reader on CPU 1")
	ceiling, err := b.readCeiling(ctx, n, workers)
	if err != nil {
		return fmt.Errorf("ceiling: %w", err)
	}

	full, err := b.vcSplitRun(ctx, bin, true)
	if err != nil {
		return err
	}
	ingest, err := b.vcSplitRun(ctx, bin, false)
	if err != nil {
		return fmt.Errorf("ingest only: %w", err)
	}
	us := full.usPerEvent()
	b.rep.add("vcenter_split_post_only_events_per_s", postOnly, "ev/s")
	b.rep.add("vcenter_split_ceiling_events_per_s", ceiling, "ev/s")
	b.rep.add("vcenter_split_events_per_s", full.rate, "ev/s")
	b.rep.addTarget("vcenter_vs_ceiling", full.rate/ceiling, "ratio", "keep pace: ≥ 0.95", atLeast(0.95))
	b.rep.addTarget("vcenter_split_vs_posted", full.rate/full.posting, "ratio", "≥ 0.95", atLeast(0.95))
	b.rep.addTarget("vcenter_split_lost", float64(int64(n)-full.delivered), "events", "0", func(v float64) bool { return v == 0 })
	b.rep.addTarget("vcenter_cpu_us_per_event", us, "µs", "≤ 50 (≥ 20k events/s per core)", atMost(50))
	// The source's own share (vCenter to JetStream) and, by difference,
	// the route's (JetStream to the receiver).
	b.rep.addTarget("vcenter_ingest_cpu_us_per_event", ingest.usPerEvent(), "µs", "≤ 50 (the source's own share)", atMost(50))
	b.rep.add("vcenter_route_cpu_us_per_event", us-ingest.usPerEvent(), "µs")
	if us > 0 {
		b.rep.add("vcenter_one_core_events_per_s", 1e6/us, "ev/s")
	}
	if in := ingest.usPerEvent(); in > 0 {
		b.rep.addTarget("vcenter_ingest_one_core_events_per_s", 1e6/in, "ev/s", "≥ 20,000", atLeast(20000))
	}
	b.rep.detail("vcenter_split", map[string]any{
		"simulator_pinned":               full.simPinned,
		"vrelay_pinned":                  full.pinned,
		"posting_rate_while_read":        full.posting,
		"delivered":                      full.delivered,
		"vrelay_cpu_s":                   full.cpu.Seconds(),
		"soap_calls":                     full.calls,
		"soap_calls_per_event":           full.callsPerEvent(),
		"ingest_stored":                  ingest.delivered,
		"ingest_vrelay_cpu_s":            ingest.cpu.Seconds(),
		"ingest_soap_calls":              ingest.calls,
		"ingest_rate":                    ingest.rate,
		"ingest_posting_rate_while_read": ingest.posting,
	})
	return nil
}

// splitResult is one split run.
type splitResult struct {
	simPinned, pinned bool
	posting, rate     float64 // events per second posted, and delivered (or stored)
	delivered         int64
	cpu               time.Duration // vrelay's, from the first post to the last delivery
	calls             map[string]int64
}

func (r splitResult) usPerEvent() float64 {
	if r.delivered == 0 {
		return 0
	}
	return float64(r.cpu) / float64(r.delivered) / float64(time.Microsecond)
}

// callsPerEvent is the reader's SOAP calls per event, by method.
func (r splitResult) callsPerEvent() map[string]float64 {
	out := map[string]float64{}
	for m, c := range r.calls {
		if r.delivered > 0 {
			out[m] = float64(c) / float64(r.delivered)
		}
	}
	return out
}

// vcSplitRun runs vrelay on a fresh simulator child while the posters post
// the events. With route, a route delivers them to the receiver and an
// event counts when it arrives; without, an event counts when vrelay
// stored it (its vrelay_vcenter_events_total).
func (b *bench) vcSplitRun(ctx context.Context, bin string, route bool) (res splitResult, err error) {
	n, workers := b.opt.vcEvents, b.opt.vcWorkers
	s, err := startSimChild(ctx, 0)
	if err != nil {
		return res, err
	}
	defer s.close()
	res.simPinned = s.pinned
	dir, err := os.MkdirTemp("", "vrelay-bench-vcsplit-")
	if err != nil {
		return res, err
	}
	defer os.RemoveAll(dir)
	pw := filepath.Join(dir, "password")
	if err := os.WriteFile(pw, []byte(s.Password), 0o600); err != nil {
		return res, err
	}
	ops, err := freePort()
	if err != nil {
		return res, err
	}
	config := filepath.Join(dir, "vrelay.yaml")
	cfg := fmt.Sprintf(`nats:
  embedded: {dataDir: %q, listen: "127.0.0.1:0"}
http: {listen: %q}
sources:
  - name: benchvc
    type: vcenter
    vcenter:
      address: %q
      username: %q
      password: {fromFile: %q}
      caFile: %q
`, filepath.Join(dir, "data"), ops, s.URL, simUser, pw, s.CAFile)
	if route {
		cfg += fmt.Sprintf(`routes:
  - name: bench-vcenter
    subjects: ["vmware.vcenter.>"]
    filter: %q
    delivery: {maxInFlight: %d}
    sink:
      type: http
      http: {url: %q}
`, typicalFilter, b.opt.inFlight, b.recv.url)
	}
	if err := os.WriteFile(config, []byte(cfg), 0o600); err != nil {
		return res, err
	}
	logf, err := os.Create(filepath.Join(dir, "vrelay.log"))
	if err != nil {
		return res, err
	}
	defer logf.Close()
	profile, profPath := b.opt.vcProfile != "", b.opt.vcProfile
	if !route {
		profPath += ".ingest"
	}
	cmd, pinned := pinnedCommand(ctx, 1, bin, "run", "-config", config)
	res.pinned = pinned
	cmd.Stdout, cmd.Stderr = logf, logf
	if profile {
		cmd.Env = append(os.Environ(), profileEnv+"="+profPath)
	}
	if err := cmd.Start(); err != nil {
		return res, err
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(15 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
	}()
	readLog := func() string { l, _ := os.ReadFile(logf.Name()); return string(l) }
	if err := waitUntil(ctx, time.Minute, func() bool {
		return get(ctx, "http://"+ops+"/readyz") && strings.Contains(readLog(), "reading vcenter events")
	}, func() int64 { return 0 }); err != nil {
		return res, fmt.Errorf("vrelay did not start reading vCenter: %w\n%s", err, readLog())
	}

	var (
		count  func() int64
		lastAt func() time.Time
	)
	if route {
		at := make([]atomic.Int64, n) // post times: unused here
		t := b.recv.start(n, vcKey(at))
		count, lastAt = t.count, t.lastAt
	} else {
		// Scrape at most every 20ms: a scrape costs vrelay CPU too.
		var stored int64
		var last, scraped time.Time
		count = func() int64 {
			if time.Since(scraped) < 20*time.Millisecond {
				return stored
			}
			scraped = time.Now()
			if v, ok := storedEvents(ctx, ops); ok && v != stored {
				stored, last = v, scraped
			}
			return stored
		}
		lastAt = func() time.Time { return last }
	}
	calls0, err := s.calls()
	if err != nil {
		return res, err
	}
	cpu0, err := procCPU(cmd.Process.Pid)
	if err != nil {
		return res, err
	}
	if profile {
		_ = cmd.Process.Signal(syscall.SIGUSR1)
	}
	b.logf("vcenter split: %d events, %d posters, vrelay pinned: %v, route: %v", n, workers, pinned, route)
	start := time.Now()
	took, err := s.post(0, n, workers)
	if err != nil {
		return res, err
	}
	res.posting = float64(n) / took.Seconds()
	_ = waitUntil(ctx, 15*time.Second, func() bool { return count() >= int64(n) }, count)
	res.delivered = count()
	// Let the last acks and the source's checkpoint settle into the count.
	if err := sleep(ctx, 200*time.Millisecond); err != nil {
		return res, err
	}
	cpu1, err := procCPU(cmd.Process.Pid)
	if err != nil {
		return res, err
	}
	if profile {
		_ = cmd.Process.Signal(syscall.SIGUSR2)
		_ = waitUntil(ctx, 10*time.Second, func() bool { _, err := os.Stat(profPath); return err == nil },
			func() int64 { return 0 })
	}
	calls1, err := s.calls()
	if err != nil {
		return res, err
	}
	if res.delivered == 0 {
		return res, fmt.Errorf("vrelay delivered nothing\n%s", readLog())
	}
	res.rate = float64(res.delivered) / lastAt().Sub(start).Seconds()
	res.cpu = cpu1 - cpu0
	res.calls = map[string]int64{}
	for m, c := range calls1 {
		res.calls[m] = c - calls0[m]
	}
	return res, nil
}

// storedEvents reads vrelay_vcenter_events_total from vrelay's metrics.
func storedEvents(ctx context.Context, ops string) (int64, bool) {
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+ops+"/metrics", nil)
	if err != nil {
		return 0, false
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, false
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		name, v, ok := strings.Cut(sc.Text(), " ")
		if ok && strings.HasPrefix(name, "vrelay_vcenter_events_total") {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			return int64(f), err == nil
		}
	}
	return 0, false
}

// profileEnv names, in the environment of a vrelay built by
// vrelayProfiledBinary, the file of its CPU profile.
const profileEnv = "VRELAY_BENCH_CPUPROFILE"

// profileHook is added to the vrelay of a profiled split run (only there,
// through go build -overlay): SIGUSR1 starts the CPU profile, SIGUSR2
// writes it to the file $VRELAY_BENCH_CPUPROFILE names.
const profileHook = `package main

import (
	"os"
	"os/signal"
	"runtime/pprof"
	"syscall"
)

func init() {
	path := os.Getenv("` + profileEnv + `")
	if path == "" {
		return
	}
	sig := make(chan os.Signal, 2)
	signal.Notify(sig, syscall.SIGUSR1, syscall.SIGUSR2)
	go func() {
		var f *os.File
		for s := range sig {
			switch {
			case s == syscall.SIGUSR1 && f == nil:
				f, _ = os.Create(path + ".part")
				_ = pprof.StartCPUProfile(f)
			case s == syscall.SIGUSR2 && f != nil:
				pprof.StopCPUProfile()
				_ = f.Close()
				f = nil
				_ = os.Rename(path+".part", path)
			}
		}
	}()
}
`

// vrelayProfiledBinary builds vrelay with profileHook into dir.
func (b *bench) vrelayProfiledBinary(ctx context.Context, dir string) (string, error) {
	out, err := exec.CommandContext(ctx, "go", "list", "-f", "{{.Dir}}", "github.com/vrelay/vrelay/cmd/vrelay").Output()
	if err != nil {
		return "", fmt.Errorf("find cmd/vrelay: %w", err)
	}
	hook := filepath.Join(dir, "benchprofile.go")
	if err := os.WriteFile(hook, []byte(profileHook), 0o600); err != nil {
		return "", err
	}
	overlay, err := json.Marshal(map[string]any{"Replace": map[string]string{
		filepath.Join(strings.TrimSpace(string(out)), "zz_benchprofile.go"): hook,
	}})
	if err != nil {
		return "", err
	}
	ov := filepath.Join(dir, "overlay.json")
	if err := os.WriteFile(ov, overlay, 0o600); err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "vrelay")
	b.logf("building vrelay with a profiling hook")
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-overlay", ov, "-o", bin, "github.com/vrelay/vrelay/cmd/vrelay")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("build vrelay: %w\n%s", err, out)
	}
	return bin, nil
}
