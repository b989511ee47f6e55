package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/vmware/govmomi/session"
	"github.com/vmware/govmomi/vim25"
	"github.com/vmware/govmomi/vim25/methods"
	"github.com/vmware/govmomi/vim25/soap"
	"github.com/vmware/govmomi/vim25/types"
)

// readerChildEnv, set in the environment of this program, makes it the
// minimal reader of the split vCenter run's ceiling (see serveReader).
const readerChildEnv = "VRELAY_BENCH_READER_CHILD"

// readerJob is the one line a reader child reads first: the simulator to
// read and how many of the posters' events to read.
type readerJob struct {
	simHello
	Events int `json:"events"`
}

// readerPause is the reader's pause after a page that was not full, as
// the vCenter source pauses between reads while events flow.
const readerPause = 20 * time.Millisecond

// serveReader runs in a child process: the least work a reader of vCenter
// events can do. It reads a readerJob line from in, logs in, makes an
// event collector that begins now, answers "ready", then reads pages of
// 1000 events with ReadNextEvents, and nothing else (no conversion, no
// store, no delivery), until it has read job.Events of the posters'
// events; then it answers "read N".
func serveReader(ctx context.Context, in io.Reader, out io.Writer) error {
	line, err := bufio.NewReader(in).ReadString('\n')
	if err != nil {
		return fmt.Errorf("read job: %w", err)
	}
	var job readerJob
	if err := json.Unmarshal([]byte(line), &job); err != nil {
		return fmt.Errorf("read job: %w", err)
	}
	u, err := url.Parse(job.URL)
	if err != nil {
		return err
	}
	sc := soap.NewClient(u, false)
	if err := sc.SetRootCAs(job.CAFile); err != nil {
		return err
	}
	c, err := vim25.NewClient(ctx, sc)
	if err != nil {
		return err
	}
	if err := session.NewManager(c).Login(ctx, url.UserPassword(simUser, job.Password)); err != nil {
		return err
	}
	coll, err := methods.CreateCollectorForEvents(ctx, c, &types.CreateCollectorForEvents{
		This:   *c.ServiceContent.EventManager,
		Filter: types.EventFilterSpec{Time: &types.EventFilterSpecByTime{BeginTime: types.NewTime(time.Now())}},
	})
	if err != nil {
		return err
	}
	fmt.Fprintln(out, "ready")
	read := 0
	for read < job.Events {
		res, err := methods.ReadNextEvents(ctx, c, &types.ReadNextEvents{This: coll.Returnval, MaxCount: 1000})
		if err != nil {
			return err
		}
		for _, be := range res.Returnval {
			if ex, ok := be.(*types.EventEx); ok && strings.HasPrefix(ex.Message, "vc-") {
				read++
			}
		}
		if len(res.Returnval) < 1000 {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(readerPause):
			}
		}
	}
	fmt.Fprintf(out, "read %d\n", read)
	return nil
}

// readCeiling is the rate at which the minimal reader (serveReader), in a
// child pinned to CPU 1, reads n events that workers post to a fresh
// simulator child pinned to CPU 0, from the first post to the last event
// read: what the simulator can post while it also serves a reader that
// keeps up, and so the most any reader can read from it on this machine.
func (b *bench) readCeiling(ctx context.Context, n, workers int) (float64, error) {
	s, err := startSimChild(ctx, 0)
	if err != nil {
		return 0, err
	}
	defer s.close()
	self, err := os.Executable()
	if err != nil {
		return 0, err
	}
	cmd, _ := pinnedCommand(ctx, 1, self)
	cmd.Env = append(os.Environ(), readerChildEnv+"=1")
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return 0, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return 0, err
	}
	if err := cmd.Start(); err != nil {
		return 0, err
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	job, err := json.Marshal(readerJob{simHello: s.simHello, Events: n})
	if err != nil {
		return 0, err
	}
	if _, err := fmt.Fprintf(stdin, "%s\n", job); err != nil {
		return 0, err
	}
	out := bufio.NewReader(stdout)
	if line, err := out.ReadString('\n'); err != nil || strings.TrimSpace(line) != "ready" {
		return 0, fmt.Errorf("reader child: %q, %v", line, err)
	}
	start := time.Now()
	posted := make(chan error, 1)
	go func() { _, err := s.post(0, n, workers); posted <- err }()
	line, err := out.ReadString('\n')
	took := time.Since(start)
	if err := <-posted; err != nil {
		return 0, fmt.Errorf("post: %w", err)
	}
	if err != nil {
		return 0, fmt.Errorf("reader child: %w", err)
	}
	if _, ok := strings.CutPrefix(strings.TrimSpace(line), "read "); !ok {
		return 0, errors.New("reader child: " + strings.TrimSpace(line))
	}
	return float64(n) / took.Seconds(), nil
}
