package ui_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/vrelay/vrelay/streams"
)

// publish stores one vCenter-like event of source src with the given
// subject (the event type) and VM name, and returns its stream sequence.
func publish(t testing.TB, js jetstream.JetStream, src, typ, vm string) uint64 {
	t.Helper()
	ev := event.New()
	ev.SetID(fmt.Sprintf("%s-%s-%d", src, vm, time.Now().UnixNano()))
	ev.SetSource("https://" + src + "/sdk")
	ev.SetType("com.vmware.vsphere." + typ + ".v0")
	ev.SetSubject(typ)
	ev.SetTime(time.Now())
	if err := ev.SetData(event.ApplicationJSON, map[string]any{"Vm": map[string]any{"Name": vm}, "Key": 7}); err != nil {
		t.Fatal(err)
	}
	m, err := streams.Encode(streams.Subject(streams.DefaultRoot, "vcenter", src, typ), &ev, "")
	if err != nil {
		t.Fatal(err)
	}
	ack, err := js.PublishMsg(t.Context(), m)
	if err != nil {
		t.Fatal(err)
	}
	return ack.Sequence
}

// sseEvent is one Server-Sent Event.
type sseEvent struct {
	name, id, data string
}

// streamed is what an event stream carries as "event: event".
type streamed struct {
	Seq      uint64 `json:"seq"`
	Subject  string `json:"subject"`
	Provider string `json:"provider"`
	Source   string `json:"source"`
	Event    struct {
		ID      string `json:"id"`
		Subject string `json:"subject"`
		Data    struct {
			Vm struct{ Name string }
		} `json:"data"`
	} `json:"event"`
}

// openStream GETs url and returns its events as they come; the response
// ends when ctx is cancelled or the server ends it.
func openStream(t *testing.T, ctx context.Context, client *http.Client, url string) (*http.Response, <-chan sseEvent) {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	out := make(chan sseEvent, 1024)
	if resp.StatusCode != http.StatusOK {
		close(out)
		return resp, out
	}
	go func() {
		defer close(out)
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		var cur sseEvent
		for sc.Scan() {
			line := sc.Text()
			switch {
			case line == "":
				if cur.name != "" {
					out <- cur
				}
				cur = sseEvent{}
			case strings.HasPrefix(line, "event: "):
				cur.name = strings.TrimPrefix(line, "event: ")
			case strings.HasPrefix(line, "id: "):
				cur.id = strings.TrimPrefix(line, "id: ")
			case strings.HasPrefix(line, "data: "):
				cur.data = strings.TrimPrefix(line, "data: ")
			}
		}
	}()
	return resp, out
}

// next returns the next event named name, skipping others, or fails
// after a while.
func next(t *testing.T, ch <-chan sseEvent, name string) sseEvent {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case e, ok := <-ch:
			if !ok {
				t.Fatalf("stream ended, want an %q event", name)
			}
			if e.name == name {
				return e
			}
		case <-timeout:
			t.Fatalf("no %q event within 10s", name)
		}
	}
}

// collect reads "event" events until the "ready" event.
func collect(t *testing.T, ch <-chan sseEvent) []streamed {
	t.Helper()
	var out []streamed
	timeout := time.After(10 * time.Second)
	for {
		select {
		case e, ok := <-ch:
			if !ok {
				t.Fatal("stream ended before ready")
			}
			switch e.name {
			case "ready":
				return out
			case "event":
				out = append(out, decode(t, e))
			}
		case <-timeout:
			t.Fatal("no ready event within 10s")
		}
	}
}

func decode(t *testing.T, e sseEvent) streamed {
	t.Helper()
	var s streamed
	if err := json.Unmarshal([]byte(e.data), &s); err != nil {
		t.Fatalf("event data %q: %v", e.data, err)
	}
	return s
}

func vmNames(evs []streamed) string {
	var names []string
	for _, e := range evs {
		names = append(names, e.Source+"/"+e.Event.Data.Vm.Name)
	}
	return strings.Join(names, " ")
}

func getJSON(t *testing.T, client *http.Client, url string, v any) int {
	t.Helper()
	resp, err := client.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if v != nil {
		if err := json.Unmarshal(b, v); err != nil {
			t.Fatalf("GET %s: %d %q: %v", url, resp.StatusCode, b, err)
		}
	}
	return resp.StatusCode
}
