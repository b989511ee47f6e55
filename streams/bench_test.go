package streams_test

import (
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/vrelay/vrelay/streams"
)

// benchData is the data of a vCenter EventEx as the vCenter source renders
// it (PascalCase, nulls kept): with the envelope about 1.5 KB.
const benchData = `{"Key":16957152,"ChainId":16957152,"CreatedTime":"2026-01-02T03:04:05.123456Z",` +
	`"UserName":"VSPHERE.LOCAL\\svc-automation","Datacenter":{"Name":"dc-frankfurt-01","Datacenter":{"Type":"Datacenter","Value":"datacenter-3"}},` +
	`"ComputeResource":{"Name":"cluster-prod-01","ComputeResource":{"Type":"ClusterComputeResource","Value":"domain-c8"}},` +
	`"Host":{"Name":"esx-prod-01-14.frankfurt.example.com","Host":{"Type":"HostSystem","Value":"host-1042"}},` +
	`"Vm":{"Name":"prod-web-01","Vm":{"Type":"VirtualMachine","Value":"vm-81"}},"Ds":null,"Net":null,"Dvs":null,` +
	`"FullFormattedMessage":"vSphere HA initiated a failover action on 1 virtual machines in cluster cluster-prod-01 in datacenter dc-frankfurt-01",` +
	`"ChangeTag":"","EventTypeId":"com.vmware.vc.HA.ClusterFailoverActionInitiatedEvent","Severity":"warning","Message":"",` +
	`"Arguments":[{"Key":"computeResource.name","Value":"cluster-prod-01"},{"Key":"datacenter.name","Value":"dc-frankfurt-01"},` +
	`{"Key":"vm.name","Value":"prod-web-01"},{"Key":"host.name","Value":"esx-prod-01-14.frankfurt.example.com"},` +
	`{"Key":"reason","Value":"host failure detected by the master agent after the heartbeat timeout"}],` +
	`"ObjectId":"domain-c8","ObjectType":"ClusterComputeResource","ObjectName":"cluster-prod-01","Fault":null}`

func benchEvent() event.Event {
	ev := event.New()
	ev.SetID("16957152")
	ev.SetSource("https://vc01.frankfurt.example.com/sdk")
	ev.SetType("com.vmware.vsphere.com.vmware.vc.HA.ClusterFailoverActionInitiatedEvent.v0")
	ev.SetTime(time.Date(2026, 1, 2, 3, 4, 5, 123456000, time.UTC))
	ev.SetExtension("eventclass", "eventex")
	ev.SetExtension("vsphereapiversion", "8.0.3.0")
	ev.SetDataContentType(event.ApplicationJSON)
	ev.DataEncoded = []byte(benchData)
	return ev
}

const benchSubject = "vmware.vcenter.vc01.com_vmware_vc_HA_ClusterFailoverActionInitiatedEvent"

func BenchmarkEncode(b *testing.B) {
	ev := benchEvent()
	msg, err := streams.Encode(benchSubject, &ev, "")
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(msg.Data)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := streams.Encode(benchSubject, &ev, ""); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecode(b *testing.B) {
	ev := benchEvent()
	msg, err := streams.Encode(benchSubject, &ev, "")
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(msg.Data)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := streams.Decode(msg.Data); err != nil {
			b.Fatal(err)
		}
	}
}
