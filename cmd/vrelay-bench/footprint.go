package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"time"
)

// runFootprint starts `vrelay run` as production would (embedded NATS, one
// webhook source, one log route), waits for /readyz, lets it idle, and
// reads its resident set from /proc.
func (b *bench) runFootprint(ctx context.Context) error {
	dir, err := os.MkdirTemp("", "vrelay-bench-rss-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	bin, err := b.vrelayBinary(ctx)
	if err != nil {
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
  - name: hooks
    type: webhook
    webhook: {listen: "127.0.0.1:0", path: /events}
routes:
  - name: print-all
    subjects: ["vmware.>"]
    sink: {type: log}
`, filepath.Join(dir, "data"), ops)
	if err := os.WriteFile(config, []byte(cfg), 0o600); err != nil {
		return err
	}
	logf, err := os.Create(filepath.Join(dir, "vrelay.log"))
	if err != nil {
		return err
	}
	defer logf.Close()
	cmd := exec.Command(bin, "run", "-config", config)
	cmd.Stdout, cmd.Stderr = logf, logf
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return err
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer func() {
		select {
		case <-exited:
			return
		default:
		}
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(15 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
	}()

	ready := "http://" + ops + "/readyz"
	for {
		if ok := get(ctx, ready); ok {
			break
		}
		select {
		case err := <-exited:
			log, _ := os.ReadFile(logf.Name())
			return fmt.Errorf("vrelay exited before it was ready: %v\n%s", err, log)
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
		if time.Since(start) > time.Minute {
			return errors.New("vrelay not ready after a minute")
		}
	}
	startup := time.Since(start)
	if err := sleep(ctx, b.opt.idleWait); err != nil {
		return err
	}
	pid := strconv.Itoa(cmd.Process.Pid)
	rss, err := procStatus(pid, "VmRSS")
	if err != nil {
		return err
	}
	hwm, err := procStatus(pid, "VmHWM")
	if err != nil {
		return err
	}
	b.rep.add("startup_ms", ms(startup), "ms")
	b.rep.addTarget("idle_rss_mib", mib(rss), "MiB", "≤ 60", atMost(60))
	b.rep.add("idle_peak_rss_mib", mib(hwm), "MiB")
	return nil
}

// vrelayBinary returns the vrelay binary of -vrelay, or builds one with
// `make build`'s flags, once per run.
func (b *bench) vrelayBinary(ctx context.Context) (string, error) {
	if b.opt.vrelayBin != "" {
		return b.opt.vrelayBin, nil
	}
	if b.bin != "" {
		return b.bin, nil
	}
	dir, err := os.MkdirTemp("", "vrelay-bench-bin-")
	if err != nil {
		return "", err
	}
	b.binDir = dir
	bin := filepath.Join(dir, "vrelay")
	b.logf("building vrelay")
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-o", bin, "github.com/vrelay/vrelay/cmd/vrelay")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("build vrelay: %w\n%s", err, out)
	}
	b.bin = bin
	return bin, nil
}

func get(ctx context.Context, url string) bool {
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return false
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// freePort returns a free port on 127.0.0.1 for the operations endpoint,
// whose address vrelay does not report back.
func freePort() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}
