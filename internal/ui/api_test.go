package ui_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/vrelay/vrelay/consumers"
	"github.com/vrelay/vrelay/consumers/deadletter"
	"github.com/vrelay/vrelay/internal/auth"
	"github.com/vrelay/vrelay/internal/natstest"
	"github.com/vrelay/vrelay/internal/secret"
	"github.com/vrelay/vrelay/internal/ui"
	"github.com/vrelay/vrelay/streams"
)

// rejectBad is a sink that refuses, for good, every VM named bad-*.
type rejectBad struct{}

func (rejectBad) Send(_ context.Context, ev event.Event) error {
	if strings.Contains(string(ev.Data()), `"bad-`) {
		return consumers.Permanent(errors.New("422 unprocessable: bad VM"))
	}
	return nil
}

// runRoute runs a real route named name on js until the test ends.
func runRoute(t *testing.T, js jetstream.JetStream, name string, reg prometheus.Registerer) {
	t.Helper()
	d, err := consumers.NewDispatcher(js, consumers.Route{Name: name, Subjects: []string{"vmware.>"},
		Delivery: consumers.Delivery{MaxAttempts: 1}}, rejectBad{}, consumers.WithMetrics(consumers.NewMetrics(reg)))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.Ensure(t.Context()); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = d.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
}

// waitFor polls cond until it holds or 10s passed.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	timeout := time.After(10 * time.Second)
	for !cond() {
		select {
		case <-tick.C:
		case <-timeout:
			t.Fatalf("%s: not within 10s", what)
		}
	}
}

type routeJSON struct {
	Name        string             `json:"name"`
	Pending     *uint64            `json:"pending"`
	Counts      map[string]float64 `json:"counts"`
	DeadLetters int                `json:"deadLetters"`
}

type letterJSON struct {
	Seq        uint64 `json:"seq"`
	Route      string `json:"route"`
	Reason     string `json:"reason"`
	Failure    string `json:"failure"`
	Attempts   int    `json:"attempts"`
	EventType  string `json:"eventType"`
	Replayable bool   `json:"replayable"`
}

func TestRoutesAndDeadLetters(t *testing.T) {
	_, js := natstest.Run(t)
	reg := prometheus.NewRegistry()
	runRoute(t, js, "to-cmdb", reg)
	_, srv := startViewer(t, js, ui.WithGatherer(reg),
		ui.WithRoutes([]ui.Route{{Name: "to-cmdb", Subjects: []string{"vmware.>"}}, {Name: "not-started"}}))
	c := srv.Client()
	publish(t, js, "vc01", "VmPoweredOnEvent", "good-1")
	publish(t, js, "vc01", "VmPoweredOnEvent", "bad-1")
	publish(t, js, "vc02", "VmPoweredOnEvent", "bad-2")

	var routes []routeJSON
	waitFor(t, "route counters", func() bool {
		getJSON(t, c, srv.URL+"/ui/api/routes", &routes)
		return len(routes) == 2 && routes[0].Counts["delivered"] == 1 && routes[0].Counts["dead_lettered"] == 2 && routes[0].DeadLetters == 2
	})
	if r := routes[0]; r.Name != "to-cmdb" || r.Pending == nil || *r.Pending != 0 {
		t.Errorf("got %+v, want to-cmdb with nothing pending", r)
	}
	if r := routes[1]; r.Name != "not-started" || r.Pending != nil || r.DeadLetters != 0 {
		t.Errorf("got %+v, want not-started without a consumer", r)
	}

	// list
	var list struct {
		Letters []letterJSON `json:"letters"`
		Total   int          `json:"total"`
	}
	if code := getJSON(t, c, srv.URL+"/ui/api/dlq?route=to-cmdb", &list); code != 200 || list.Total != 2 || len(list.Letters) != 2 {
		t.Fatalf("list: got %d %+v, want 2 letters", code, list)
	}
	l := list.Letters[0]
	if l.Route != "to-cmdb" || l.Failure != streams.FailurePermanent || !strings.Contains(l.Reason, "bad VM") || !l.Replayable ||
		l.EventType != "com.vmware.vsphere.VmPoweredOnEvent.v0" || l.Attempts != 1 {
		t.Errorf("got %+v, want a replayable permanent failure of to-cmdb", l)
	}
	if getJSON(t, c, srv.URL+"/ui/api/dlq?limit=1", &list); list.Total != 2 || len(list.Letters) != 1 {
		t.Errorf("limit 1: got %d of %d, want 1 of 2", len(list.Letters), list.Total)
	}

	// show
	var shown struct {
		letterJSON
		Headers map[string][]string `json:"headers"`
		Event   struct {
			Data struct{ Vm struct{ Name string } } `json:"data"`
		} `json:"event"`
	}
	if code := getJSON(t, c, srv.URL+"/ui/api/dlq/"+itoa(l.Seq), &shown); code != 200 || shown.Seq != l.Seq || !strings.HasPrefix(shown.Event.Data.Vm.Name, "bad-") ||
		shown.Headers[streams.HeaderRoute][0] != "to-cmdb" {
		t.Errorf("show: got %d %+v, want letter %d with its event and headers", code, shown, l.Seq)
	}
	if code := getJSON(t, c, srv.URL+"/ui/api/dlq/9999", nil); code != http.StatusNotFound {
		t.Errorf("show a missing letter: got %d, want 404", code)
	}

	// replay: the route gets the event again (and fails it again, a new letter)
	resp, err := c.Post(srv.URL+"/ui/api/dlq/"+itoa(l.Seq)+"/replay", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(b), `"route":"to-cmdb"`) || !strings.Contains(string(b), `"subject":"vrelay.replay.to-cmdb"`) {
		t.Fatalf("replay: got %d %s, want the replay to to-cmdb", resp.StatusCode, b)
	}
	waitFor(t, "the replayed event failing again", func() bool {
		getJSON(t, c, srv.URL+"/ui/api/routes", &routes)
		return routes[0].Counts["dead_lettered"] == 3
	})
	if _, err := deadletter.Get(t.Context(), js, l.Seq); !errors.Is(err, jetstream.ErrMsgNotFound) {
		t.Errorf("the replayed letter: got %v, want it deleted", err)
	}
	resp, err = c.Post(srv.URL+"/ui/api/dlq/"+itoa(l.Seq)+"/replay", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("replay of a replayed letter: got %d, want 404", resp.StatusCode)
	}

	// a message that is no dead letter of vrelay cannot be replayed
	ack, err := js.PublishMsg(t.Context(), &nats.Msg{Subject: streams.DLQSubject("to-cmdb"), Data: []byte("{}")})
	if err != nil {
		t.Fatal(err)
	}
	resp, err = c.Post(srv.URL+"/ui/api/dlq/"+itoa(ack.Sequence)+"/replay", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusConflict {
		t.Errorf("replay of a foreign message: got %d, want 409", resp.StatusCode)
	}
}

func itoa(n uint64) string { return strconv.FormatUint(n, 10) }

func TestSourcesAndChart(t *testing.T) {
	_, js := natstest.Run(t)
	_, srv := startViewer(t, js, ui.WithSources([]ui.Source{{Provider: "horizon", Name: "hz01"}}))
	c := srv.Client()
	publish(t, js, "vc01", "VmPoweredOnEvent", "a")
	publish(t, js, "vc01", "VmPoweredOffEvent", "a")
	publish(t, js, "vc02", "VmPoweredOnEvent", "b")
	var sources []struct {
		Provider string `json:"provider"`
		Source   string `json:"source"`
		Events   uint64 `json:"events"`
	}
	getJSON(t, c, srv.URL+"/ui/api/sources", &sources)
	var got []string
	for _, s := range sources {
		got = append(got, s.Provider+"."+s.Source+"="+itoa(s.Events))
	}
	if want := "horizon.hz01=0 vcenter.vc01=2 vcenter.vc02=1"; strings.Join(got, " ") != want {
		t.Errorf("got %q, want %q", strings.Join(got, " "), want)
	}

	var chart struct {
		Samples []struct {
			Sources map[string]float64 `json:"sources"`
		} `json:"samples"`
	}
	// The sampler runs every 100ms here: events published now show as a rate.
	waitFor(t, "a rate for vc02", func() bool {
		publish(t, js, "vc02", "VmPoweredOnEvent", "c")
		getJSON(t, c, srv.URL+"/ui/api/chart", &chart)
		for _, s := range chart.Samples {
			if s.Sources["vcenter.vc02"] > 0 {
				return true
			}
		}
		return false
	})
}

func TestAuthAndCrossOrigin(t *testing.T) {
	_, js := natstest.Run(t)
	t.Setenv("VRELAY_TEST_UI_PW", "s3cret-pw")
	creds, err := auth.Config{User: "admin", Password: secret.Ref{FromEnv: "VRELAY_TEST_UI_PW"}}.Resolve()
	if err != nil {
		t.Fatal(err)
	}
	v, _ := startViewer(t, js)
	srv := newServer(t, v.Handler(creds))
	paths := []string{"/ui", "/ui/", "/ui/app.js", "/ui/api/events", "/ui/api/filter?filter=true", "/ui/api/sources",
		"/ui/api/routes", "/ui/api/chart", "/ui/api/dlq", "/ui/api/dlq/1"}
	for _, p := range paths {
		resp, err := srv.Client().Get(srv.URL + p)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized || !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Basic") {
			t.Errorf("GET %s without credentials: got %d, want 401 with a basic challenge", p, resp.StatusCode)
		}
	}
	resp, err := srv.Client().Post(srv.URL+"/ui/api/dlq/1/replay", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("replay without credentials: got %d, want 401", resp.StatusCode)
	}

	get := func(p string, mod func(*http.Request)) *http.Response {
		req, _ := http.NewRequest(http.MethodGet, srv.URL+p, nil)
		req.SetBasicAuth("admin", "s3cret-pw")
		if mod != nil {
			mod(req)
		}
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	if resp := get("/ui/", nil); resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
		t.Errorf("GET /ui/ with credentials: got %d %s, want the page", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	if resp := get("/ui/api/sources", func(r *http.Request) { r.SetBasicAuth("admin", "wrong") }); resp.StatusCode != 401 {
		t.Errorf("wrong password: got %d, want 401", resp.StatusCode)
	}
	// A page of another site may not make the browser replay dead
	// letters with the credentials it has cached.
	req, _ := http.NewRequest(http.MethodPost, srv.URL+"/ui/api/dlq/1/replay", nil)
	req.SetBasicAuth("admin", "s3cret-pw")
	req.Header.Set("Sec-Fetch-Site", "cross-site")
	req.Header.Set("Origin", "https://evil.example")
	resp, err = srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("cross-site replay: got %d, want 403", resp.StatusCode)
	}

	// A token works as a bearer header, for API clients.
	t.Setenv("VRELAY_TEST_UI_TOKEN", "tok-123")
	tcreds, err := auth.Config{Token: secret.Ref{FromEnv: "VRELAY_TEST_UI_TOKEN"}}.Resolve()
	if err != nil {
		t.Fatal(err)
	}
	tsrv := newServer(t, v.Handler(tcreds))
	req, _ = http.NewRequest(http.MethodGet, tsrv.URL+"/ui/api/chart", nil)
	req.Header.Set("Authorization", "Bearer tok-123")
	resp, err = tsrv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("bearer token: got %d, want 200", resp.StatusCode)
	}
}
