package vcenter

import (
	"crypto/tls"
	"testing"
	"time"

	"github.com/vmware/govmomi/find"
	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25/types"

	_ "github.com/vmware/govmomi/vapi/simulator" // the tagging API

	"github.com/vrelay/vrelay/internal/secret"
)

// BenchmarkConvertEnrich measures what enrichment adds to the ingest path
// itself: Convert of an event naming a VM, host, cluster, datacenter and
// datastore, with enrichment off and on (five path and tag lookups from a
// synced cache). BenchmarkEnrichThroughput measures the whole ingest, but
// on a simulator that serves the cache's PropertyCollector on the same
// CPUs.
func BenchmarkConvertEnrich(b *testing.B) {
	m := simulator.VPX()
	if err := m.Create(); err != nil {
		b.Fatal(err)
	}
	m.Service.TLS = new(tls.Config)
	m.Service.RegisterEndpoints = true
	srv := m.Service.NewServer()
	b.Cleanup(func() {
		srv.Close()
		m.Remove()
	})
	b.Setenv("VRELAY_BENCH_VC_PASSWORD", "pass")
	for _, on := range []bool{false, true} {
		name := "off"
		if on {
			name = "on"
		}
		b.Run(name, func(b *testing.B) {
			ctx := b.Context()
			cfg := Config{Address: srv.URL.Host, Username: "user", SkipTLSVerify: true,
				Password: secret.Ref{FromEnv: "VRELAY_BENCH_VC_PASSWORD"}}
			if on {
				cfg.Enrich = EnrichConfig{Inventory: true, Tags: true, TagRefresh: time.Minute}
			}
			s, err := New(cfg)
			if err != nil {
				b.Fatal(err)
			}
			c, err := s.dial(ctx)
			if err != nil {
				b.Fatal(err)
			}
			defer c.close()
			conv := &Converter{Source: s.URL()}
			if on {
				defer s.enricher.start(ctx, c)()
				conv.Enrich = s.enricher.enrich
			}
			fd := find.NewFinder(c.vc)
			ref := func(path string) types.ManagedObjectReference {
				o, err := fd.ManagedObjectList(ctx, path)
				if err != nil || len(o) == 0 {
					b.Fatalf("find %s: %v", path, err)
				}
				return o[0].Object.Reference()
			}
			be := &types.VmPoweredOnEvent{VmEvent: types.VmEvent{Event: types.Event{
				Key:             7,
				CreatedTime:     time.Now(),
				Vm:              &types.VmEventArgument{Vm: ref("/DC0/vm/DC0_C0_RP0_VM0")},
				Host:            &types.HostEventArgument{Host: ref("/DC0/host/DC0_C0/DC0_C0_H0")},
				ComputeResource: &types.ComputeResourceEventArgument{ComputeResource: ref("/DC0/host/DC0_C0")},
				Datacenter:      &types.DatacenterEventArgument{Datacenter: ref("/DC0")},
				Ds:              &types.DatastoreEventArgument{Datastore: ref("/DC0/datastore/LocalDS_0")},
			}}}
			ev, err := conv.Convert(be)
			if err != nil {
				b.Fatal(err)
			}
			if _, ok := ev.Extensions()["vmpath"]; ok != on {
				b.Fatalf("vmpath present = %v, want %v", ok, on)
			}
			start := time.Now()
			for b.Loop() {
				if _, err := conv.Convert(be); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "events/s")
		})
	}
}
