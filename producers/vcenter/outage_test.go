package vcenter_test

import (
	"io"
	"net"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/vrelay/vrelay/producers/vcenter"
)

// counterValue sums the series of the counter called name.
func counterValue(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var v float64
	for _, mf := range mfs {
		if mf.GetName() == name {
			for _, m := range mf.GetMetric() {
				v += m.GetCounter().GetValue()
			}
		}
	}
	return v
}

// cutter forwards TCP connections to a target until it is cut: then it
// closes every connection and refuses new ones, as a vCenter that went
// away, until it is mended.
type cutter struct {
	ln      net.Listener
	target  string
	refused atomic.Int32

	mu    sync.Mutex
	cut   bool
	conns map[net.Conn]struct{}
	wg    sync.WaitGroup
}

func newCutter(t *testing.T, target string) *cutter {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	c := &cutter{ln: ln, target: target, conns: map[net.Conn]struct{}{}}
	c.wg.Add(1)
	go c.serve()
	t.Cleanup(func() {
		ln.Close()
		c.set(true)
		c.wg.Wait()
	})
	return c
}

func (c *cutter) serve() {
	defer c.wg.Done()
	for {
		in, err := c.ln.Accept()
		if err != nil {
			return
		}
		c.mu.Lock()
		if c.cut {
			c.mu.Unlock()
			c.refused.Add(1)
			in.Close()
			continue
		}
		out, err := net.Dial("tcp", c.target)
		if err != nil {
			c.mu.Unlock()
			in.Close()
			continue
		}
		c.conns[in], c.conns[out] = struct{}{}, struct{}{}
		c.wg.Add(2)
		c.mu.Unlock()
		pipe := func(dst, src net.Conn) {
			defer c.wg.Done()
			_, _ = io.Copy(dst, src)
			dst.Close()
			src.Close()
		}
		go pipe(in, out)
		go pipe(out, in)
	}
}

// set cuts (true) or mends (false) the line.
func (c *cutter) set(cut bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.cut = cut
	if cut {
		for conn := range c.conns {
			conn.Close()
		}
		clear(c.conns)
	}
}

// TestOutageLogs cuts the line to vCenter while the source reads: the
// source warns once when the failures begin and, at the default interval,
// not again for each reconnect; a shortened interval adds lines that count
// the failures since the last one; when vCenter answers again, one info
// line counts all the failed attempts.
func TestOutageLogs(t *testing.T) {
	tests := []struct {
		name         string
		opts         []vcenter.Option
		wantPeriodic bool
	}{
		{name: "default interval"},
		{name: "short interval", opts: []vcenter.Option{vcenter.WithOutageInterval(time.Nanosecond)}, wantPeriodic: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, "")
			sdk, err := url.Parse(e.sim.url)
			if err != nil {
				t.Fatal(err)
			}
			line := newCutter(t, sdk.Host)
			sdk.Host = line.ln.Addr().String()
			cfg := e.sim.config(t)
			cfg.Address = sdk.String()
			reg := prometheus.NewRegistry()
			src := e.source(t, cfg, append(tt.opts, vcenter.WithRegisterer(reg))...)
			running(t, src, e.publisher(src), e.logs)

			line.set(true)
			// The lost session and two reconnects that failed.
			eventually(t, "three failed attempts", func() bool {
				return counterValue(t, reg, "vrelay_vcenter_connection_failures_total") >= 3
			})
			line.set(false)
			eventually(t, "the recovery", func() bool { return e.logs.count("vcenter answers again") >= 1 })

			var failures []logRecord
			for _, r := range e.logs.records() {
				if _, ok := r.attrs["failed_attempts_total"]; ok {
					failures = append(failures, r)
				}
			}
			if len(failures) == 0 {
				t.Fatal("no log of the failures")
			}
			if got := failures[0].attrs["failed_attempts"]; got != "1" {
				t.Errorf("first failure line %v: got failed_attempts %s, want 1", failures[0], got)
			}
			sum := 0
			for _, r := range failures {
				n, err := strconv.Atoi(r.attrs["failed_attempts"])
				if err != nil {
					t.Fatalf("failure line %v: %v", r, err)
				}
				sum += n
			}
			switch {
			case !tt.wantPeriodic && len(failures) != 1:
				t.Errorf("got %d failure lines within the default interval, want 1: %v", len(failures), failures)
			case tt.wantPeriodic && len(failures) < 2:
				t.Errorf("got %d failure lines with a short interval, want more than 1: %v", len(failures), failures)
			}
			rec := e.logs.matching("vcenter answers again")
			if len(rec) != 1 || rec[0].level.String() != "INFO" {
				t.Fatalf("got recovery lines %v, want one INFO", rec)
			}
			total, err := strconv.Atoi(rec[0].attrs["failed_attempts"])
			if err != nil || total < 3 {
				t.Errorf("recovery line %v: got failed_attempts %q, want at least the 3 failed attempts", rec[0], rec[0].attrs["failed_attempts"])
			}
			if tt.wantPeriodic && sum != total {
				t.Errorf("failure lines count %d attempts, the recovery line %d; want the same", sum, total)
			}
		})
	}
}
