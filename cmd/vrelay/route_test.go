package main

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/google/go-cmp/cmp"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/vrelay/vrelay/internal/natstest"
	"github.com/vrelay/vrelay/producers"
	"github.com/vrelay/vrelay/streams"
)

var updateGolden = flag.Bool("update", false, "rewrite the golden files under testdata/")

// routeTestConfig has the Direktiv example route behind a filter, on the
// vCenter events only.
const routeTestConfig = `nats:
  embedded:
    dataDir: %DIR%
    listen: "off"
routes:
  - name: sessions
    subjects: ["vmware.vcenter.>"]
    filter: 'type endsWith "SessionEvent.v0" || data.Vm?.Name startsWith "prod-"'
    transform:
      - drop: 'type == "com.vmware.vsphere.UserLoginSessionEvent.v0"'
      - when: 'type == "com.vmware.vsphere.UserLogoutSessionEvent.v0"'
        set:
          type: '"vmware-logout"'
          data.reason: '"logout"'
        remove: [data.SessionId]
    sink: {type: log}
`

// storeRouteTestEvents stores a fixed set of events: six on the route's
// subjects (one of them not even a CloudEvent) and one outside them.
func storeRouteTestEvents(t *testing.T, js jetstream.JetStream) {
	t.Helper()
	at := time.Date(2026, 11, 27, 9, 0, 0, 0, time.UTC)
	vc := func(id, eventType, data string) event.Event {
		ev := event.New()
		ev.SetID(id)
		ev.SetSource("https://vc01.example.com/sdk")
		ev.SetType("com.vmware.vsphere." + eventType + ".v0")
		ev.SetTime(at)
		at = at.Add(time.Minute)
		ev.SetExtension("eventclass", "event")
		_ = ev.SetData(event.ApplicationJSON, []byte(data))
		ev.DataBase64 = false
		return ev
	}
	pub := producers.NewPublisher(js, producers.Scope{Provider: "vcenter", Source: "vc01"})
	evs := []event.Event{
		vc("100", "UserLoginSessionEvent", `{"Key":100,"UserName":"VSPHERE.LOCAL\\alice","SessionId":"52a1"}`),
		vc("101", "UserLogoutSessionEvent", `{"Key":101,"UserName":"VSPHERE.LOCAL\\alice","SessionId":"52a1"}`),
		vc("102", "VmPoweredOnEvent", `{"Key":102,"Vm":{"Name":"prod-web-01"}}`),
		vc("103", "VmPoweredOnEvent", `{"Key":103,"Vm":{"Name":"test-web-01"}}`),
		vc("104", "UserLogoutSessionEvent", `["not","an","object"]`),
	}
	recs := producers.Records(evs...)
	for i := range recs {
		// As the vCenter source does: the vSphere event type.
		recs[i].Token = strings.TrimSuffix(strings.TrimPrefix(recs[i].Event.Type(), "com.vmware.vsphere."), ".v0")
	}
	if err := pub.Publish(t.Context(), recs...); err != nil {
		t.Fatal(err)
	}
	if _, err := js.Publish(t.Context(), "vmware.vcenter.vc01.Garbage", []byte("not a cloudevent")); err != nil {
		t.Fatal(err)
	}
	hz := event.New()
	hz.SetID("7")
	hz.SetSource("https://horizon.example.com")
	hz.SetType("com.vmware.horizon.vlsi_userloggedin.v0")
	if err := producers.NewPublisher(js, producers.Scope{Provider: "horizon", Source: "hz01"}).
		Publish(t.Context(), producers.Records(hz)...); err != nil {
		t.Fatal(err)
	}
}

func TestRouteTestCommand(t *testing.T) {
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "vrelay.yaml")
	dataDir := filepath.Join(dir, "data")
	if err := os.WriteFile(cfgPath, []byte(strings.ReplaceAll(routeTestConfig, "%DIR%", dataDir)), 0o600); err != nil {
		t.Fatal(err)
	}
	srv := natstest.Start(t, dataDir, "127.0.0.1:0")
	_, js := natstest.Connect(t, srv.ClientURL())
	var scfg streams.Config
	scfg.SetDefaults()
	if err := streams.Ensure(t.Context(), js, scfg, nil); err != nil {
		t.Fatal(err)
	}
	storeRouteTestEvents(t, js)

	// Through a server: every event, then the last two.
	code, all, errOut := runCLI("route", "test", "sessions", "-config", cfgPath, "-server", srv.ClientURL())
	if code != 0 {
		t.Fatalf("route test: code %d, stderr %q", code, errOut)
	}
	code, lastTwo, errOut := runCLI("route", "test", "-config", cfgPath, "-server", srv.ClientURL(), "sessions", "-last", "2")
	if code != 0 {
		t.Fatalf("route test -last 2: code %d, stderr %q", code, errOut)
	}
	golden(t, "route_test.golden", all+"\n-last 2:\n"+lastTwo)

	code, recent, _ := runCLI("route", "test", "sessions", "-config", cfgPath, "-server", srv.ClientURL(), "-since", "1h")
	if code != 0 || recent != all {
		t.Errorf("route test -since 1h: code %d, output\n%s\nwant what -last 20 gave", code, recent)
	}

	// Nothing durable was created, and nothing was acked or delivered.
	stream, err := js.Stream(t.Context(), streams.EventStream)
	if err != nil {
		t.Fatal(err)
	}
	for name := range stream.ListConsumers(t.Context()).Info() {
		if name.Config.Durable != "" {
			t.Errorf("route test left durable consumer %s", name.Config.Durable)
		}
	}
	if n := natstest.Count(t, js, streams.DLQStream); n != 0 {
		t.Errorf("dead-letter stream holds %d messages, want 0: route test must not dead-letter", n)
	}

	// On the data directory of a stopped vrelay: the same answer.
	srv.Shutdown()
	code, offline, errOut := runCLI("route", "test", "sessions", "-config", cfgPath)
	if code != 0 || offline != all {
		t.Errorf("route test on the data dir: code %d, stderr %q, output\n%s\nwant\n%s", code, errOut, offline, all)
	}

	for _, tt := range []struct {
		args     []string
		code     int
		inStderr string
	}{
		{[]string{"route", "test", "nosuch", "-config", cfgPath}, 1, `has no route "nosuch" (routes: sessions)`},
		{[]string{"route", "test", "-config", cfgPath}, 2, "Usage:"},
		{[]string{"route", "frob"}, 2, `unknown command "frob"`},
		{[]string{"route"}, 2, "route test ROUTE"},
	} {
		code, _, errOut := runCLI(tt.args...)
		if code != tt.code || !strings.Contains(errOut, tt.inStderr) {
			t.Errorf("%v: code %d, stderr %q; want %d and %q", tt.args, code, errOut, tt.code, tt.inStderr)
		}
	}
}

// golden compares got with testdata/name, or rewrites it with -update.
func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *updateGolden {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if d := cmp.Diff(string(want), got); d != "" {
		t.Errorf("%s differs (-want +got):\n%s", path, d)
	}
}
