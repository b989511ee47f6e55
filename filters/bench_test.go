package filters

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
)

// vcenterPayload is an EventEx as vCenter sends it, in the PascalCase shape
// with nulls, about 1.5 KB.
const vcenterPayload = `{
  "Key": 16957152,
  "ChainId": 16957145,
  "CreatedTime": "2023-11-27T10:00:08.715999Z",
  "UserName": "mydomain.com\\Administrator",
  "Datacenter": {"Name": "DC1", "Datacenter": {"Type": "Datacenter", "Value": "datacenter-1"}},
  "ComputeResource": {"Name": "Cluster1", "ComputeResource": {"Type": "ClusterComputeResource", "Value": "domain-c8"}},
  "Host": {"Name": "esx01.mydomain.com", "Host": {"Type": "HostSystem", "Value": "host-15"}},
  "Vm": {"Name": "prod-web-01", "Vm": {"Type": "VirtualMachine", "Value": "vm-81"}},
  "Ds": null,
  "Net": null,
  "Dvs": null,
  "FullFormattedMessage": "vSphere HA initiated a failover action on 1 virtual machines in cluster Cluster1 in datacenter DC1",
  "ChangeTag": "",
  "EventTypeId": "com.vmware.vc.HA.ClusterFailoverActionInitiatedEvent",
  "Severity": "warning",
  "Message": "",
  "Arguments": [
    {"Key": "computeResource.name", "Value": "Cluster1"},
    {"Key": "datacenter.name", "Value": "DC1"},
    {"Key": "vm.name", "Value": "prod-web-01"},
    {"Key": "host.name", "Value": "esx01.mydomain.com"},
    {"Key": "reason", "Value": "host failure detected by the master agent after the heartbeat timeout"},
    {"Key": "restartPriority", "Value": "high"},
    {"Key": "isolationResponse", "Value": "powerOff"}
  ],
  "ChangeTagDetails": {"Tag": "", "Source": "vpxd", "Comment": "failover initiated by the HA master on esx02.mydomain.com"},
  "ObjectId": "domain-c8",
  "ObjectType": "ClusterComputeResource",
  "ObjectName": "Cluster1",
  "Fault": null,
  "Template": false
}`

func benchEvent(b *testing.B) event.Event {
	b.Helper()
	ev := event.New()
	ev.SetID("16957152")
	ev.SetSource("https://vcsa.mydomain.com/sdk")
	ev.SetType("com.vmware.vsphere.com.vmware.vc.HA.ClusterFailoverActionInitiatedEvent.v0")
	ev.SetSubject("VmPoweredOnEvent")
	ev.SetTime(time.Date(2023, 11, 27, 10, 0, 8, 0, time.UTC))
	ev.SetExtension("eventclass", "eventex")
	ev.SetExtension("vsphereapiversion", "8.0.2.0")
	if err := ev.SetData(event.ApplicationJSON, []byte(vcenterPayload)); err != nil {
		b.Fatal(err)
	}
	return ev
}

func benchMatch(b *testing.B, src string, want bool) {
	ev := benchEvent(b)
	f := mustCompile(b, src)
	if f.UsesData() {
		b.SetBytes(int64(len(ev.Data())))
	}
	b.ReportAllocs()
	for b.Loop() {
		got, err := f.Match(ev)
		if err != nil || got != want {
			b.Fatalf("Match(%q): got (%v, %v), want (%v, nil)", src, got, err, want)
		}
	}
}

func BenchmarkMatchHeader(b *testing.B) {
	tests := []struct {
		name string
		src  string
	}{
		{"subject", `subject == "VmPoweredOnEvent"`},
		{"endsWith", `type endsWith "ClusterFailoverActionInitiatedEvent.v0"`},
		{"extension", `eventclass == "eventex"`},
		{"three attributes", `type startsWith "com.vmware.vsphere." && eventclass in ["event", "eventex"] && subject != ""`},
	}
	for _, tt := range tests {
		b.Run(tt.name, func(b *testing.B) { benchMatch(b, tt.src, true) })
	}
}

// BenchmarkMatchHeaderParallel shows that the pooled state does not serialise callers.
func BenchmarkMatchHeaderParallel(b *testing.B) {
	ev := benchEvent(b)
	f := mustCompile(b, `type endsWith "ClusterFailoverActionInitiatedEvent.v0"`)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if ok, err := f.Match(ev); !ok || err != nil {
				b.Errorf("Match: got (%v, %v), want (true, nil)", ok, err)
				return
			}
		}
	})
}

func BenchmarkMatchData(b *testing.B) {
	tests := []struct {
		name string
		src  string
	}{
		{"vm name", `type endsWith "ClusterFailoverActionInitiatedEvent.v0" && data.Vm.Name startsWith "prod-"`},
		{"key", `data.Key > 5`},
		{"arguments", `any(data.Arguments, {.Key == "vm.name" && .Value startsWith "prod-"})`},
	}
	for _, tt := range tests {
		b.Run(tt.name, func(b *testing.B) { benchMatch(b, tt.src, true) })
	}
}

// BenchmarkMatchDataCompact runs the BenchmarkMatchData filters on the same
// payload without white space, as vrelay stores vCenter data.
func BenchmarkMatchDataCompact(b *testing.B) {
	var buf bytes.Buffer
	if err := json.Compact(&buf, []byte(vcenterPayload)); err != nil {
		b.Fatal(err)
	}
	for _, tt := range []struct{ name, src string }{
		{"vm name", `type endsWith "ClusterFailoverActionInitiatedEvent.v0" && data.Vm.Name startsWith "prod-"`},
		{"key", `data.Key > 5`},
		{"arguments", `any(data.Arguments, {.Key == "vm.name" && .Value startsWith "prod-"})`},
	} {
		b.Run(tt.name, func(b *testing.B) {
			ev := benchEvent(b)
			if err := ev.SetData(event.ApplicationJSON, buf.Bytes()); err != nil {
				b.Fatal(err)
			}
			f := mustCompile(b, tt.src)
			b.SetBytes(int64(len(ev.Data())))
			b.ReportAllocs()
			for b.Loop() {
				if ok, err := f.Match(ev); !ok || err != nil {
					b.Fatalf("Match(%q): got (%v, %v), want (true, nil)", tt.src, ok, err)
				}
			}
		})
	}
}
