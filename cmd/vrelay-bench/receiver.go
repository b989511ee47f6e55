package main

import (
	"bytes"
	"context"
	"errors"
	"net"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// receiver is the HTTP endpoint every scenario delivers to. It accepts
// every request, after a delay when one is set (the slow sink), and counts
// the events of the current tally: first arrivals, duplicates, and the
// latency from the time an event was stamped to its arrival.
type receiver struct {
	srv   *http.Server
	url   string
	delay atomic.Int64 // nanoseconds
	cur   atomic.Pointer[tally]
	bufs  sync.Pool
}

func newReceiver() (*receiver, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	r := &receiver{url: "http://" + ln.Addr().String() + "/"}
	r.bufs.New = func() any { return new(bytes.Buffer) }
	// No WriteTimeout: the slow sink's delay runs before the answer.
	r.srv = &http.Server{Handler: r, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second, IdleTimeout: 2 * time.Minute}
	go func() { _ = r.srv.Serve(ln) }()
	return r, nil
}

func (r *receiver) close() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := r.srv.Shutdown(ctx); err != nil {
		_ = r.srv.Close()
	}
}

func (r *receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	arrived := time.Now()
	buf := r.bufs.Get().(*bytes.Buffer)
	buf.Reset()
	_, _ = buf.ReadFrom(req.Body)
	if d := time.Duration(r.delay.Load()); d > 0 {
		time.Sleep(d)
	}
	if t := r.cur.Load(); t != nil {
		t.record(req.Header, buf.Bytes(), arrived, time.Now())
	}
	r.bufs.Put(buf)
	w.WriteHeader(http.StatusOK)
}

// start begins counting n events identified by key; it replaces the tally
// of the last run.
func (r *receiver) start(n int, key keyFunc) *tally {
	t := &tally{key: key, seen: make([]atomic.Bool, n), lat: make([]atomic.Int64, n)}
	r.cur.Store(t)
	return t
}

// keyFunc returns the index of the event in a request and the time it was
// stamped (unix nanoseconds).
type keyFunc func(h http.Header, body []byte) (i int, sent int64, ok bool)

// tally counts the events of one run at the receiver.
type tally struct {
	key      keyFunc
	seen     []atomic.Bool
	lat      []atomic.Int64 // ns from stamp to first arrival; 0 until then
	distinct atomic.Int64
	dups     atomic.Int64
	unknown  atomic.Int64
	last     atomic.Int64 // unix nanos when the latest first arrival was answered
	maxGap   atomic.Int64 // longest time without a first arrival, ns
}

func (t *tally) record(h http.Header, body []byte, arrived, answered time.Time) {
	i, sent, ok := t.key(h, body)
	if !ok || i < 0 || i >= len(t.seen) {
		t.unknown.Add(1)
		return
	}
	if !t.seen[i].CompareAndSwap(false, true) {
		t.dups.Add(1)
		return
	}
	t.lat[i].Store(max(1, arrived.UnixNano()-sent))
	for {
		last := t.last.Load()
		if answered.UnixNano() <= last {
			break
		}
		if t.last.CompareAndSwap(last, answered.UnixNano()) {
			if last > 0 {
				gap := answered.UnixNano() - last
				for g := t.maxGap.Load(); gap > g && !t.maxGap.CompareAndSwap(g, gap); g = t.maxGap.Load() {
				}
			}
			break
		}
	}
	t.distinct.Add(1)
}

// count is the number of distinct events that arrived.
func (t *tally) count() int64 { return t.distinct.Load() }

// lastAt is when the latest first arrival was answered.
func (t *tally) lastAt() time.Time { return time.Unix(0, t.last.Load()) }

// latencies returns the latencies of the events in [from, to) that arrived.
func (t *tally) latencies(from, to int) []time.Duration {
	out := make([]time.Duration, 0, to-from)
	for i := from; i < to && i < len(t.lat); i++ {
		if ns := t.lat[i].Load(); ns > 0 {
			out = append(out, time.Duration(ns))
		}
	}
	return out
}

// stampKey reads the benchstamp extension: the ce-benchstamp header in
// binary mode, or the attribute in a structured body (the bare relay).
func stampKey(h http.Header, body []byte) (int, int64, bool) {
	v := h.Get("Ce-" + stampExt)
	if v == "" {
		var ok bool
		if v, ok = jsonString(body, `"`+stampExt+`":"`); !ok {
			return 0, 0, false
		}
	}
	dot := bytes.IndexByte([]byte(v), '.')
	if dot < 0 {
		return 0, 0, false
	}
	i, err1 := strconv.Atoi(v[:dot])
	sent, err2 := strconv.ParseInt(v[dot+1:], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, 0, false
	}
	return i, sent, true
}

// jsonString returns the string value that follows prefix in body.
func jsonString(body []byte, prefix string) (string, bool) {
	i := bytes.Index(body, []byte(prefix))
	if i < 0 {
		return "", false
	}
	rest := body[i+len(prefix):]
	j := bytes.IndexByte(rest, '"')
	if j < 0 {
		return "", false
	}
	return string(rest[:j]), true
}

// percentile returns the p-th percentile (0-100) of ds, nearest rank.
func percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	k := int(p/100*float64(len(s))+0.5) - 1
	return s[min(max(k, 0), len(s)-1)]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
