package main

import (
	"bufio"
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Ctrl-C on `make run` stops vrelay cleanly, and make says nothing about
// it: a terminal sends SIGINT to the whole foreground process group (make,
// its shell, vrelay), which the test does by hand.
func TestMakeRunInterrupt(t *testing.T) {
	if testing.Short() {
		t.Skip("builds vrelay through make")
	}
	makeBin, err := exec.LookPath("make")
	if err != nil {
		t.Skip("no make on PATH")
	}
	dir := t.TempDir()
	cfg := filepath.Join(dir, "vrelay.yaml")
	doc := "nats:\n  embedded:\n    dataDir: " + filepath.Join(dir, "data") + "\n    listen: off\nhttp:\n  listen: 127.0.0.1:0\nroutes:\n  - {name: a, sink: {type: log}}\n"
	if err := os.WriteFile(cfg, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(makeBin, "-C", filepath.Join("..", ".."), "run", "CONFIG="+cfg, "RUNBIN="+filepath.Join(dir, "vrelay"))
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	var out syncBuffer
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = pw, pw
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pw.Close()
	running := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(pr)
		once := sync.OnceFunc(func() { close(running) })
		for sc.Scan() {
			out.write(sc.Text() + "\n")
			if strings.Contains(sc.Text(), "vrelay running") {
				once()
			}
		}
	}()
	select {
	case <-running:
	case <-time.After(3 * time.Minute):
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		t.Fatalf("vrelay never started under make:\n%s", out.String())
	}
	if err := syscall.Kill(-cmd.Process.Pid, syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	// make itself got the SIGINT too: GNU make then ends by that signal
	// (status 130 in a shell, which prints nothing), the way any program
	// stopped with Ctrl-C does. What must not happen is "make: *** [run]
	// Error 1" for a vrelay that stopped cleanly.
	err = cmd.Wait()
	var ee *exec.ExitError
	bySIGINT := errors.As(err, &ee) && ee.Sys().(syscall.WaitStatus).Signal() == syscall.SIGINT
	if (err != nil && !bySIGINT) || strings.Contains(out.String(), "make: ***") || !strings.Contains(out.String(), "vrelay stopped") {
		t.Fatalf("make run after SIGINT: %v, output:\n%s\nwant vrelay stopped and no make error", err, out.String())
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) write(v string) { s.mu.Lock(); s.b.WriteString(v); s.mu.Unlock() }
func (s *syncBuffer) String() string { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }
