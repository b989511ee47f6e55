package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/vrelay/vrelay/producers"
	"github.com/vrelay/vrelay/producers/webhook"
)

// runWebhook measures ingest: clients POST single structured CloudEvents
// to a webhook source, which answers 200 once JetStream stored each one.
// No route runs. Events/s count from the first request to the last answer;
// the latency is that of each request, storage included.
func (b *bench) runWebhook(ctx context.Context) error {
	e := b.env
	if err := e.purge(ctx); err != nil {
		return err
	}
	src, err := webhook.New(webhook.Config{Listen: "127.0.0.1:0", Path: "/events"},
		webhook.WithName("bench"), webhook.WithRegisterer(prometheus.NewRegistry()))
	if err != nil {
		return err
	}
	if err := src.Listen(); err != nil {
		return err
	}
	url := "http://" + src.Addr().String() + "/events"
	pub := producers.NewPublisher(e.js, producers.Scope{Provider: "webhook", Source: "bench"},
		producers.WithMetrics(b.producerMetrics))
	sctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- src.Run(sctx, pub) }()
	defer func() {
		cancel()
		<-done
	}()

	// The body of event i is the bench event as JSON with its id replaced.
	tmpl := b.events.make("webhook", 0)
	tmpl.SetID("@ID@")
	body, err := json.Marshal(tmpl)
	if err != nil {
		return err
	}
	at := bytes.Index(body, []byte("@ID@"))
	before, after := body[:at], body[at+len("@ID@"):]

	n, clients := b.opt.webhookEvents, b.opt.webhookClients
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
			buf := make([]byte, 0, len(body)+16)
			for {
				i := int(next.Add(1) - 1)
				if i >= n || ctx.Err() != nil {
					return
				}
				buf = append(append(append(buf[:0], before...), "wh-"+strconv.Itoa(i)...), after...)
				t := time.Now()
				err := post(ctx, client, url, buf)
				lat[i] = time.Since(t)
				if err != nil {
					errOnce.Do(func() { postErr = fmt.Errorf("event %d: %w", i, err) })
					return
				}
			}
		})
	}
	wg.Wait()
	el := time.Since(start)
	if postErr != nil {
		return postErr
	}
	stored, err := e.storedCount(ctx, "vmware.webhook.bench.>")
	if err != nil {
		return err
	}
	if stored != uint64(n) {
		return fmt.Errorf("stream holds %d of %d posted events", stored, n)
	}
	b.rep.add("webhook_events_per_s", float64(n)/el.Seconds(), "ev/s")
	b.rep.add("webhook_p50_ms", ms(percentile(lat, 50)), "ms")
	b.rep.add("webhook_p99_ms", ms(percentile(lat, 99)), "ms")
	return nil
}

func post(ctx context.Context, c *http.Client, url string, body []byte) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/cloudevents+json")
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
