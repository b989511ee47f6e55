package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
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
// simHello line to out, then for each line "post FROM TO WORKERS" of in
// posts those events and answers "done SECONDS" (or "error MESSAGE"),
// until in is closed.
func serveSim(ctx context.Context, in io.Reader, out io.Writer) error {
	s, err := startSim(ctx)
	if err != nil {
		return err
	}
	defer s.close()
	hello, err := json.Marshal(simHello{URL: s.url, Password: s.password, CAFile: s.caFile})
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "%s\n", hello)
	sc := bufio.NewScanner(in)
	for sc.Scan() {
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
// the simulator runs on CPU 0 and vrelay on CPU 1. The ceiling is the
// simulator alone on its CPU; then a fresh simulator is read by vrelay
// while the posters post as fast as they can. vrelay's CPU time per event
// comes from /proc/<pid>/stat, the simulator excluded.
func (b *bench) runVCenterSplit(ctx context.Context, bin string) error {
	n, workers := b.opt.vcEvents, b.opt.vcWorkers
	ceil, err := startSimChild(ctx, 0)
	if err != nil {
		return err
	}
	b.logf("vcenter split: ceiling, %d events, %d posters, simulator pinned: %v", n, workers, ceil.pinned)
	took, err := ceil.post(0, n, workers)
	ceil.close()
	if err != nil {
		return fmt.Errorf("ceiling: %w", err)
	}
	ceiling := float64(n) / took.Seconds()

	s, err := startSimChild(ctx, 0)
	if err != nil {
		return err
	}
	defer s.close()
	dir, err := os.MkdirTemp("", "vrelay-bench-vcsplit-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	pw := filepath.Join(dir, "password")
	if err := os.WriteFile(pw, []byte(s.Password), 0o600); err != nil {
		return err
	}
	ops, err := freePort()
	if err != nil {
		return err
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
routes:
  - name: bench-vcenter
    subjects: ["vmware.vcenter.>"]
    filter: %q
    delivery: {maxInFlight: %d}
    sink:
      type: http
      http: {url: %q}
`, filepath.Join(dir, "data"), ops, s.URL, simUser, pw, s.CAFile, typicalFilter, b.opt.inFlight, b.recv.url)
	if err := os.WriteFile(config, []byte(cfg), 0o600); err != nil {
		return err
	}
	logf, err := os.Create(filepath.Join(dir, "vrelay.log"))
	if err != nil {
		return err
	}
	defer logf.Close()
	cmd, pinned := pinnedCommand(ctx, 1, bin, "run", "-config", config)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		return err
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
		return fmt.Errorf("vrelay did not start reading vCenter: %w\n%s", err, readLog())
	}

	at := make([]atomic.Int64, n) // post times: unused here
	t := b.recv.start(n, vcKey(at))
	cpu0, err := procCPU(cmd.Process.Pid)
	if err != nil {
		return err
	}
	b.logf("vcenter split: %d events, %d posters, vrelay pinned: %v", n, workers, pinned)
	start := time.Now()
	took, err = s.post(0, n, workers)
	if err != nil {
		return err
	}
	posting := float64(n) / took.Seconds()
	_ = waitUntil(ctx, 15*time.Second, func() bool { return t.count() >= int64(n) }, t.count)
	delivered := t.count()
	// Let the last acks and the source's checkpoint settle into the count.
	if err := sleep(ctx, 200*time.Millisecond); err != nil {
		return err
	}
	cpu1, err := procCPU(cmd.Process.Pid)
	if err != nil {
		return err
	}
	if delivered == 0 {
		return fmt.Errorf("vrelay delivered nothing\n%s", readLog())
	}
	rate := float64(delivered) / t.lastAt().Sub(start).Seconds()
	perEvent := (cpu1 - cpu0) / time.Duration(delivered)
	us := float64(perEvent) / float64(time.Microsecond)
	b.rep.add("vcenter_split_ceiling_events_per_s", ceiling, "ev/s")
	b.rep.add("vcenter_split_events_per_s", rate, "ev/s")
	b.rep.addTarget("vcenter_vs_ceiling", rate/ceiling, "ratio", "keep pace: ≥ 0.95", atLeast(0.95))
	b.rep.addTarget("vcenter_split_vs_posted", rate/posting, "ratio", "≥ 0.95", atLeast(0.95))
	b.rep.addTarget("vcenter_split_lost", float64(int64(n)-delivered), "events", "0", func(v float64) bool { return v == 0 })
	b.rep.addTarget("vcenter_cpu_us_per_event", us, "µs", "≤ 50", atMost(50))
	if us > 0 {
		b.rep.add("vcenter_one_core_events_per_s", 1e6/us, "ev/s")
	}
	b.rep.detail("vcenter_split", map[string]any{
		"simulator_pinned": s.pinned, "vrelay_pinned": pinned, "posting_rate_while_read": posting,
		"delivered": delivered, "vrelay_cpu_s": (cpu1 - cpu0).Seconds(),
	})
	return nil
}
