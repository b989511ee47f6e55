package consumers_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/vrelay/vrelay/consumers"
	"github.com/vrelay/vrelay/consumers/httpsink"
	"github.com/vrelay/vrelay/filters"
	"github.com/vrelay/vrelay/internal/natstest"
	"github.com/vrelay/vrelay/producers"
	"github.com/vrelay/vrelay/streams"
)

// TestTransformDirektivSessions runs the documented Direktiv example
// (docs/transforms.md) through a route to a structured-mode HTTP sink:
// the logout arrives renamed, with its data field set; the login is
// dropped (acked, counted as filtered, never sent); another event passes
// byte for byte; a logout whose data is not an object is dead-lettered as
// permanent with a reason naming the route and the step.
func TestTransformDirektivSessions(t *testing.T) {
	_, js := natstest.Run(t)

	var mu sync.Mutex
	bodies := map[string][]byte{} // by CloudEvent id
	got := make(chan string, 10)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		var ce struct {
			ID string `json:"id"`
		}
		if err := json.Unmarshal(b, &ce); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		mu.Lock()
		bodies[ce.ID] = b
		mu.Unlock()
		got <- ce.ID
	}))
	t.Cleanup(srv.Close)
	sink, err := httpsink.New(httpsink.Config{URL: srv.URL, Mode: "structured"})
	if err != nil {
		t.Fatal(err)
	}

	tr, err := filters.CompileTransform([]filters.Step{
		{Drop: `type == "com.vmware.vsphere.UserLoginSessionEvent.v0"`},
		{
			When: `type == "com.vmware.vsphere.UserLogoutSessionEvent.v0"`,
			Set:  map[string]string{"type": `"vmware-logout"`, "data.reason": `"logout"`},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	d, err := consumers.NewDispatcher(js, consumers.Route{Name: "sessions", Transform: tr, Delivery: fastDelivery()},
		sink, consumers.WithMetrics(consumers.NewMetrics(reg)))
	if err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- d.Run(runCtx) }()
	t.Cleanup(func() { stop(); <-done })

	session := func(id, eventType, data string) event.Event {
		ev := event.New()
		ev.SetID(id)
		ev.SetSource("https://vc01.example.com/sdk")
		ev.SetType("com.vmware.vsphere." + eventType + ".v0")
		ev.SetExtension("eventclass", "event")
		_ = ev.SetData(event.ApplicationJSON, []byte(data))
		ev.DataBase64 = false
		return ev
	}
	pub := producers.NewPublisher(js, producers.Scope{Provider: "vcenter", Source: "vc01"})
	evs := []event.Event{
		session("out", "UserLogoutSessionEvent", `{"Key": 101, "UserName": "VSPHERE.LOCAL\\alice", "SessionId": "52a1"}`),
		session("in", "UserLoginSessionEvent", `{"Key": 100, "UserName": "VSPHERE.LOCAL\\alice"}`),
		session("other", "VmPoweredOnEvent", `{"Key": 102,  "Vm": {"Name": "prod-1"}}`),
		session("bad", "UserLogoutSessionEvent", `[1, 2]`),
	}
	if err := pub.Publish(t.Context(), producers.Records(evs...)...); err != nil {
		t.Fatal(err)
	}

	delivered := map[string]bool{}
	timeout := time.After(30 * time.Second)
	for len(delivered) < 2 {
		select {
		case id := <-got:
			delivered[id] = true
		case <-timeout:
			t.Fatalf("delivered %v, want out and other", delivered)
		}
	}
	dl := readDLQ(t, js, "sessions", 1)
	if dl[0].id != "bad" || dl[0].headers[streams.HeaderFailure] != streams.FailurePermanent ||
		!strings.Contains(dl[0].headers[streams.HeaderReason], `route "sessions": transform[1].set.data.reason: the data is an array, not an object`) {
		t.Errorf("dead letter %s, headers %v; want bad, permanent, a reason naming route and step", dl[0].id, dl[0].headers)
	}

	c, err := js.Consumer(t.Context(), streams.EventStream, "sessions")
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		info, err := c.Info(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if info.NumAckPending == 0 && info.NumPending == 0 && info.AckFloor.Stream == 4 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("consumer pending=%d ack_pending=%d ack_floor=%d, want all 4 settled",
				info.NumPending, info.NumAckPending, info.AckFloor.Stream)
		}
		time.Sleep(20 * time.Millisecond)
	}

	mu.Lock()
	defer mu.Unlock()
	if _, ok := bodies["in"]; ok || delivered["in"] {
		t.Error("the login was delivered, want it dropped")
	}
	var out struct {
		Type string         `json:"type"`
		Data map[string]any `json:"data"`
	}
	if err := json.Unmarshal(bodies["out"], &out); err != nil {
		t.Fatal(err)
	}
	if out.Type != "vmware-logout" || out.Data["reason"] != "logout" || out.Data["UserName"] != `VSPHERE.LOCAL\alice` {
		t.Errorf("logout delivered as %s, want type vmware-logout and data with reason and UserName", bodies["out"])
	}
	stored, err := streams.MarshalEvent(&evs[2])
	if err != nil {
		t.Fatal(err)
	}
	if string(bodies["other"]) != string(stored) {
		t.Errorf("other delivered as\n%s\nwant the stored body\n%s", bodies["other"], stored)
	}
	for outcome, want := range map[string]float64{"delivered": 2, "filtered": 1, "dead_lettered": 1} {
		if n := deliveries(t, reg, "sessions", outcome); n != want {
			t.Errorf("vrelay_deliveries_total{outcome=%q} = %v, want %v", outcome, n, want)
		}
	}
}

// deliveries reads vrelay_deliveries_total of a route and outcome.
func deliveries(t *testing.T, reg *prometheus.Registry, route, outcome string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "vrelay_deliveries_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["route"] == route && labels["outcome"] == outcome {
				return m.GetCounter().GetValue()
			}
		}
	}
	return 0
}
