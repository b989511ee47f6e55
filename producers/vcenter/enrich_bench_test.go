package vcenter_test

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/vmware/govmomi/find"
	"github.com/vmware/govmomi/vim25/types"

	"github.com/vrelay/vrelay/producers/vcenter"
)

// BenchmarkEnrichThroughput is BenchmarkSimulatorThroughput with events
// that name a VM, its host, cluster, datacenter and datastore, with
// enrichment off and on (paths and tags, the VM tagged): the difference
// is what enrichment costs ingest.
func BenchmarkEnrichThroughput(b *testing.B) {
	for _, on := range []bool{false, true} {
		name := "off"
		if on {
			name = "on"
		}
		b.Run(name, func(b *testing.B) { benchEnrich(b, on) })
	}
}

func benchEnrich(b *testing.B, on bool) {
	const workers = 4
	e := benchEnv(b)
	ctx := b.Context()
	fd := find.NewFinder(e.sim.admin)
	vm := e.sim.vm(b)
	host, err := fd.HostSystem(ctx, "/DC0/host/DC0_C0/DC0_C0_H0")
	if err != nil {
		b.Fatal(err)
	}
	cluster, err := fd.ClusterComputeResource(ctx, "/DC0/host/DC0_C0")
	if err != nil {
		b.Fatal(err)
	}
	dc, err := fd.Datacenter(ctx, "/DC0")
	if err != nil {
		b.Fatal(err)
	}
	ds, err := fd.Datastore(ctx, "/DC0/datastore/LocalDS_0")
	if err != nil {
		b.Fatal(err)
	}
	cfg := e.sim.config(b)
	if on {
		tagVM(b, e.sim, "env", "prod", vm)
		cfg.Enrich = vcenter.EnrichConfig{Inventory: true, Tags: true, TagRefresh: time.Minute}
	}
	src := e.source(b, cfg)
	running(b, src, e.publisher(src), e.logs)
	if on {
		eventually(b, "the inventory cache to sync", func() bool { return e.logs.count("inventory cache synced") > 0 })
	}
	base := storedCount(b, e)
	event := func(i int) *types.EventEx {
		ev := e.sim.eventEx(fmt.Sprint("e-", i))
		ev.Vm = &types.VmEventArgument{Vm: vm.Reference()}
		ev.Host = &types.HostEventArgument{Host: host.Reference()}
		ev.ComputeResource = &types.ComputeResourceEventArgument{ComputeResource: cluster.Reference()}
		ev.Datacenter = &types.DatacenterEventArgument{Datacenter: dc.Reference()}
		ev.Ds = &types.DatastoreEventArgument{Datastore: ds.Reference()}
		return ev
	}

	b.ResetTimer()
	start := time.Now()
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := w; i < b.N; i += workers {
				e.sim.post(b, event(i))
			}
		})
	}
	wg.Wait()
	deadline := time.Now().Add(waitTimeout)
	for storedCount(b, e) < base+uint64(b.N) {
		if time.Now().After(deadline) {
			b.Fatalf("stream holds %d of %d events", storedCount(b, e)-base, b.N)
		}
		time.Sleep(time.Millisecond)
	}
	elapsed := time.Since(start)
	b.StopTimer()
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "events/s")
}
