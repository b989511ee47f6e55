package vcenter

import (
	"context"
	"net/url"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/vmware/govmomi/vim25/types"

	"github.com/vrelay/vrelay/internal/backoff"
	"github.com/vrelay/vrelay/producers/vcenter/inventory"
)

// enrichSyncWait bounds how long a new session waits for the inventory
// copy (and the first tag read) before it reads events: events read
// before the copy is complete are published without what it misses.
const enrichSyncWait = 15 * time.Second

// The objects an event names, each with the prefix of its extensions
// (<prefix>path, <prefix>tags) and the "entity" label of the miss metric.
const (
	entVM         = "vm"
	entHost       = "host"
	entCluster    = "cluster"
	entDatacenter = "dc"
	entDatastore  = "ds"
	entNetwork    = "net"
	entDVS        = "dvs"
)

// extVMFolder is the extension holding the path of a VM's folder.
const extVMFolder = "vmfolder"

// enricher adds inventory paths and tags to the events of one source.
type enricher struct {
	s         *Source
	cache     *inventory.Cache
	inventory bool
	tags      bool
	misses    *prometheus.CounterVec // curried with source; label entity
}

// newEnricher returns nil when enrich is off.
func newEnricher(s *Source, reg prometheus.Registerer) (*enricher, error) {
	cfg := s.cfg.Enrich
	if !cfg.Inventory && !cfg.Tags {
		return nil, nil
	}
	misses, err := register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "vrelay_vcenter_enrich_misses_total",
		Help: "Objects named by a vCenter event that the inventory cache did not know (not there yet, deleted, or the cache not synced): the event goes out without their extensions.",
	}, []string{"source", "entity"}))
	if err != nil {
		return nil, err
	}
	e := &enricher{
		s:         s,
		inventory: cfg.Inventory,
		tags:      cfg.Tags,
		cache: inventory.New(inventory.Config{
			Objects:    cfg.Inventory,
			Tags:       cfg.Tags,
			TagRefresh: cfg.TagRefresh,
			User:       url.UserPassword(s.cfg.Username, s.password.Reveal()),
			Log:        s.log,
		}),
	}
	if e.misses, err = misses.CurryWith(prometheus.Labels{"source": s.name}); err != nil {
		return nil, err
	}
	for _, ent := range []string{entVM, entHost, entCluster, entDatacenter, entDatastore, entNetwork, entDVS} {
		e.misses.WithLabelValues(ent) // show zeros rather than gaps
	}
	return e, nil
}

// start follows the session of c with the cache, waits (at most
// enrichSyncWait) until the cache is synced, and returns the function that
// stops it, which the session calls before it closes c.
func (e *enricher) start(ctx context.Context, c *conn) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for failures := 1; ; failures++ {
			err := e.cache.Run(ctx, c.vc)
			if ctx.Err() != nil {
				return
			}
			// The event reader notices a lost session on its own; until
			// then, or until the watch works again, the last copy serves.
			wait := e.s.backoff(failures)
			e.s.log.Warn("inventory cache stopped following vcenter; enrichment uses the last copy. Retrying",
				"retry_in", wait, "err", err)
			if !backoff.Sleep(ctx, wait) {
				return
			}
		}
	}()
	wctx, wcancel := context.WithTimeout(ctx, enrichSyncWait)
	defer wcancel()
	if e.cache.WaitSynced(wctx) {
		e.s.log.Info("inventory cache synced", "inventory", e.inventory, "tags", e.tags)
	} else if ctx.Err() == nil {
		e.s.log.Warn("inventory cache not synced in time; reading events anyway, they may lack inventory extensions",
			"waited", enrichSyncWait)
	}
	return func() {
		cancel()
		<-done
	}
}

// enrich adds the extensions of every object be names. It reads memory
// only and never blocks on vCenter.
func (e *enricher) enrich(be types.BaseEvent, ev *event.Event) {
	base := be.GetEvent()
	if base.Vm != nil {
		e.add(ev, entVM, base.Vm.Vm)
	}
	if base.Host != nil {
		e.add(ev, entHost, base.Host.Host)
	}
	if base.ComputeResource != nil {
		e.add(ev, entCluster, base.ComputeResource.ComputeResource)
	}
	if base.Datacenter != nil {
		e.add(ev, entDatacenter, base.Datacenter.Datacenter)
	}
	if base.Ds != nil {
		e.add(ev, entDatastore, base.Ds.Datastore)
	}
	if base.Net != nil {
		e.add(ev, entNetwork, base.Net.Network)
	}
	if base.Dvs != nil {
		e.add(ev, entDVS, base.Dvs.Dvs)
	}
}

// add sets <prefix>path (and vmfolder for a VM) and <prefix>tags. An
// object with no tags gets no tags extension; a miss is counted once.
func (e *enricher) add(ev *event.Event, prefix string, ref types.ManagedObjectReference) {
	if ref.Value == "" {
		return
	}
	miss := false
	if e.inventory {
		if path, folder, ok := e.cache.Path(ref); ok {
			ev.SetExtension(prefix+"path", path)
			if prefix == entVM && folder != "" {
				ev.SetExtension(extVMFolder, folder)
			}
		} else {
			miss = true
		}
	}
	if e.tags {
		if ts, ok := e.cache.Tags(ref); !ok {
			miss = true
		} else if len(ts) > 0 {
			ev.SetExtension(prefix+"tags", inventory.EncodeTags(ts))
		}
	}
	if miss {
		e.misses.WithLabelValues(prefix).Inc()
	}
}
