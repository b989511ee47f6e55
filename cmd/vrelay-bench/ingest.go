package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/vrelay/vrelay/producers"
	"github.com/vrelay/vrelay/producers/webhook"
)

// runWebhook measures ingest: clients POST single structured CloudEvents
// to a webhook source, which answers 200 once JetStream stored each one.
// No route runs. Events/s count from the first request to the last answer;
// the latency is that of each request, storage included.
//
// The baseline is a minimal HTTP handler on the same server and stream that
// publishes each request body as it is (with a message id, so that the
// server's duplicate window works as hard) and answers 200 on the PubAck:
// no decoding, checking or re-encoding. The two run in the order webhook,
// baseline, baseline, webhook; the best of each counts. Last, batch mode:
// the same clients POST application/cloudevents-batch+json, 100 events a
// request.
func (b *bench) runWebhook(ctx context.Context) error {
	e := b.env
	src, err := webhook.New(webhook.Config{Listen: "127.0.0.1:0", Path: "/events"},
		webhook.WithName("bench"), webhook.WithRegisterer(prometheus.NewRegistry()))
	if err != nil {
		return err
	}
	if err := src.Listen(); err != nil {
		return err
	}
	whURL := "http://" + src.Addr().String() + "/events"
	pub := producers.NewPublisher(e.js, producers.Scope{Provider: "webhook", Source: "bench"},
		producers.WithMetrics(b.producerMetrics))
	sctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- src.Run(sctx, pub) }()
	defer func() {
		cancel()
		<-done
	}()

	base, err := startBaseline(e.js)
	if err != nil {
		return err
	}
	defer base.close()

	// The body of event i is the bench event as JSON with its id replaced.
	tmpl := b.events.make("webhook", 0)
	tmpl.SetID("@ID@")
	body, err := json.Marshal(tmpl)
	if err != nil {
		return err
	}
	at := bytes.Index(body, []byte("@ID@"))
	before, after := body[:at], body[at+len("@ID@"):]
	single := func(buf []byte, i int) []byte {
		return append(append(append(buf, before...), "wh-"+strconv.Itoa(i)...), after...)
	}

	n := b.opt.webhookEvents
	// Warm both up (connections, buffers, the heap), unmeasured.
	for k, url := range []string{whURL, base.url} {
		if _, _, err := b.postAll(ctx, url, "application/cloudevents+json", max(n/10, 1), 1, func(buf []byte, i int) []byte {
			return single(buf, 20*n+k*n+i)
		}); err != nil {
			return fmt.Errorf("warm-up: %w", err)
		}
	}
	type result struct {
		rate float64
		lat  []time.Duration
	}
	best := map[string]result{}
	for round, kind := range []string{"webhook", "baseline", "baseline", "webhook"} {
		url, filter := whURL, "vmware.webhook.bench.>"
		if kind == "baseline" {
			url, filter = base.url, baselineSubject
		}
		if err := e.purge(ctx); err != nil {
			return err
		}
		rate, lat, err := b.postAll(ctx, url, "application/cloudevents+json", n, 1, func(buf []byte, i int) []byte {
			return single(buf, round*n+i)
		})
		if err != nil {
			return fmt.Errorf("%s: %w", kind, err)
		}
		if err := checkStored(ctx, e, filter, n); err != nil {
			return fmt.Errorf("%s: %w", kind, err)
		}
		b.logf("%s ingest: %.0f ev/s", kind, rate)
		if rate > best[kind].rate {
			best[kind] = result{rate, lat}
		}
	}
	wh, bl := best["webhook"], best["baseline"]
	b.rep.add("webhook_events_per_s", wh.rate, "ev/s")
	b.rep.add("webhook_p50_ms", ms(percentile(wh.lat, 50)), "ms")
	b.rep.add("webhook_p99_ms", ms(percentile(wh.lat, 99)), "ms")
	b.rep.add("webhook_baseline_events_per_s", bl.rate, "ev/s")
	b.rep.add("webhook_baseline_p99_ms", ms(percentile(bl.lat, 99)), "ms")
	b.rep.addTarget("webhook_vs_baseline", wh.rate/bl.rate, "ratio", "≥ 0.9", atLeast(0.9))

	// Batch mode: 100 events a request.
	const perBatch = 100
	if err := e.purge(ctx); err != nil {
		return err
	}
	batches := max(n/perBatch, 1)
	rate, lat, err := b.postAll(ctx, whURL, "application/cloudevents-batch+json", batches, perBatch, func(buf []byte, r int) []byte {
		buf = append(buf, '[')
		for j := range perBatch {
			if j > 0 {
				buf = append(buf, ',')
			}
			buf = single(buf, 10*n+r*perBatch+j)
		}
		return append(buf, ']')
	})
	if err != nil {
		return fmt.Errorf("batch: %w", err)
	}
	if err := checkStored(ctx, e, "vmware.webhook.bench.>", batches*perBatch); err != nil {
		return fmt.Errorf("batch: %w", err)
	}
	b.rep.add("webhook_batch_events_per_s", rate, "ev/s")
	b.rep.add("webhook_batch_p99_ms", ms(percentile(lat, 99)), "ms")
	return nil
}

// postAll has the webhook clients POST requests [0, n) to url, the body
// of request i made by body, each holding perReq events. It returns the
// events stored per second and the latency of each request.
func (b *bench) postAll(ctx context.Context, url, contentType string, n, perReq int,
	body func(buf []byte, i int) []byte) (float64, []time.Duration, error) {
	clients := b.opt.webhookClients
	client := &http.Client{Transport: &http.Transport{MaxIdleConns: clients, MaxIdleConnsPerHost: clients}}
	defer client.CloseIdleConnections()
	lat := make([]time.Duration, n)
	var next atomic.Int64
	var wg sync.WaitGroup
	var errOnce sync.Once
	var postErr error
	start := time.Now()
	for range clients {
		wg.Go(func() {
			var buf []byte
			for {
				i := int(next.Add(1) - 1)
				if i >= n || ctx.Err() != nil {
					return
				}
				buf = body(buf[:0], i)
				t := time.Now()
				err := post(ctx, client, url, contentType, buf)
				lat[i] = time.Since(t)
				if err != nil {
					errOnce.Do(func() { postErr = fmt.Errorf("request %d: %w", i, err) })
					return
				}
			}
		})
	}
	wg.Wait()
	el := time.Since(start)
	if postErr != nil {
		return 0, nil, postErr
	}
	return float64(n*perReq) / el.Seconds(), lat, nil
}

func checkStored(ctx context.Context, e *env, filter string, n int) error {
	stored, err := e.storedCount(ctx, filter)
	if err != nil {
		return err
	}
	if stored != uint64(n) {
		return fmt.Errorf("stream holds %d of %d posted events", stored, n)
	}
	return nil
}

// baselineSubject is where the baseline handler stores what it is sent.
const baselineSubject = "vmware.webhook.baseline.event"

// baseline is the webhook's baseline: an HTTP server whose handler
// publishes each request body to JetStream and answers 200 on the PubAck.
type baseline struct {
	url string
	srv *http.Server
	ln  net.Listener
}

func startBaseline(js jetstream.JetStream) (*baseline, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	var id atomic.Int64
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		msg := &nats.Msg{Subject: baselineSubject, Data: body, Header: nats.Header{}}
		msg.Header.Set(jetstream.MsgIDHeader, "b-"+strconv.FormatInt(id.Add(1), 10))
		if _, err := js.PublishMsg(r.Context(), msg); err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusOK)
	})
	bl := &baseline{url: "http://" + ln.Addr().String() + "/", ln: ln,
		srv: &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}}
	go func() { _ = bl.srv.Serve(ln) }()
	return bl, nil
}

func (bl *baseline) close() { _ = bl.srv.Close() }

func post(ctx context.Context, c *http.Client, url, contentType string, body []byte) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", contentType)
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return errors.New(resp.Status)
	}
	return nil
}
