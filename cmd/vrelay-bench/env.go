package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/vmware/govmomi/vim25/types"

	"github.com/vrelay/vrelay/producers"
	"github.com/vrelay/vrelay/producers/vcenter"
	"github.com/vrelay/vrelay/streams"
)

// env is one embedded nats-server with the production settings (file
// store, fsync every second) and a connection to it, set up as `vrelay
// run` does: in-process, with the same JetStream options.
type env struct {
	dir string
	srv *streams.Server
	nc  *nats.Conn
	js  jetstream.JetStream
}

func newEnv(ctx context.Context) (*env, error) {
	dir, err := os.MkdirTemp("", "vrelay-bench-")
	if err != nil {
		return nil, err
	}
	srv, err := streams.StartEmbedded(streams.EmbeddedConfig{
		DataDir:      dir,
		Listen:       "127.0.0.1:0",
		SyncInterval: "1s",
		ServerName:   "vrelay-bench",
	}, nil)
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	e := &env{dir: dir, srv: srv}
	if e.nc, err = srv.Connect(streams.ConnOptions(nil, "vrelay-bench")...); err != nil {
		e.close()
		return nil, err
	}
	if e.js, err = jetstream.New(e.nc,
		jetstream.WithPublishAsyncTimeout(10*time.Second),
		jetstream.WithPublishAsyncMaxPending(4096)); err != nil {
		e.close()
		return nil, err
	}
	var cfg streams.Config
	cfg.SetDefaults()
	if err := streams.Ensure(ctx, e.js, cfg, nil); err != nil {
		e.close()
		return nil, err
	}
	return e, nil
}

func (e *env) close() {
	if e.nc != nil {
		e.nc.Close()
	}
	e.srv.Shutdown()
	os.RemoveAll(e.dir)
}

// purge deletes and recreates the event stream, so that every run starts
// alike: empty, and with an empty duplicate window (a purge keeps the
// window's message ids, which grow the server's memory and GC work by the
// run).
func (e *env) purge(ctx context.Context) error {
	if err := e.js.DeleteStream(ctx, streams.EventStream); err != nil && !errors.Is(err, jetstream.ErrStreamNotFound) {
		return err
	}
	var cfg streams.Config
	cfg.SetDefaults()
	return streams.Ensure(ctx, e.js, cfg, nil)
}

// storedCount returns how many events the stream holds on subject filter.
func (e *env) storedCount(ctx context.Context, filter string) (uint64, error) {
	s, err := e.js.Stream(ctx, streams.EventStream)
	if err != nil {
		return 0, err
	}
	info, err := s.Info(ctx, jetstream.WithSubjectFilter(filter))
	if err != nil {
		return 0, err
	}
	var n uint64
	for _, c := range info.State.Subjects {
		n += c
	}
	return n, nil
}

// deleteConsumer removes a route's durable consumer after its run.
func (e *env) deleteConsumer(ctx context.Context, name string) {
	_ = e.js.DeleteConsumer(ctx, streams.EventStream, name)
}

// The events of the pipeline, relay, slow-sink and webhook scenarios are
// the CloudEvent a vCenter source makes (tanzu format, JSON data) of an HA
// EventEx with arguments: about 1.5 KB stored, the size of a typical
// vCenter 8 event. Each has its own key and id.
const (
	benchSource = "https://vc01.frankfurt.example.com/sdk"
	benchType   = "com.vmware.vsphere.com.vmware.vc.HA.ClusterFailoverActionInitiatedEvent.v0"
	// typicalFilter is a route filter as operators write them: on the type,
	// which needs no payload decoding.
	typicalFilter = `type endsWith "ClusterFailoverActionInitiatedEvent.v0"`
	// dataFilter reads the payload, which Match then decodes.
	dataFilter = `type endsWith "ClusterFailoverActionInitiatedEvent.v0" && data.Vm?.Name startsWith "prod-"`
	// stampExt carries "<index>.<unix nanos at publish>" to the sink.
	stampExt = "benchstamp"
)

// sampleEvent is the vSphere event every bench event is a copy of.
func sampleEvent(key int32) *types.EventEx {
	ts := time.Date(2026, 1, 2, 3, 4, 5, 123456000, time.UTC)
	entity := func(name string) types.EntityEventArgument { return types.EntityEventArgument{Name: name} }
	mor := func(typ, v string) types.ManagedObjectReference {
		return types.ManagedObjectReference{Type: typ, Value: v}
	}
	return &types.EventEx{
		Event: types.Event{
			Key:             key,
			ChainId:         key,
			CreatedTime:     ts,
			UserName:        `VSPHERE.LOCAL\svc-automation`,
			Datacenter:      &types.DatacenterEventArgument{EntityEventArgument: entity("dc-frankfurt-01"), Datacenter: mor("Datacenter", "datacenter-3")},
			ComputeResource: &types.ComputeResourceEventArgument{EntityEventArgument: entity("cluster-prod-01"), ComputeResource: mor("ClusterComputeResource", "domain-c8")},
			Host:            &types.HostEventArgument{EntityEventArgument: entity("esx-prod-01-14.frankfurt.example.com"), Host: mor("HostSystem", "host-1042")},
			Vm:              &types.VmEventArgument{EntityEventArgument: entity("prod-web-01"), Vm: mor("VirtualMachine", "vm-81")},
			FullFormattedMessage: "vSphere HA initiated a failover action on 1 virtual machines in cluster cluster-prod-01 " +
				"in datacenter dc-frankfurt-01",
		},
		EventTypeId: "com.vmware.vc.HA.ClusterFailoverActionInitiatedEvent",
		Severity:    "warning",
		Arguments: []types.KeyAnyValue{
			{Key: "computeResource.name", Value: "cluster-prod-01"},
			{Key: "datacenter.name", Value: "dc-frankfurt-01"},
			{Key: "vm.name", Value: "prod-web-01"},
			{Key: "host.name", Value: "esx-prod-01-14.frankfurt.example.com"},
			{Key: "reason", Value: "host failure detected by the master agent after the heartbeat timeout"},
		},
		ObjectId:   "domain-c8",
		ObjectType: "ClusterComputeResource",
		ObjectName: "cluster-prod-01",
	}
}

// eventFactory makes bench events cheaply: the data of the sample is
// rendered once and only the key differs between events.
type eventFactory struct {
	prefix, suffix []byte // the data before and after the key
	template       event.Event
}

func newEventFactory() (*eventFactory, error) {
	const marker = 1234567890
	conv := vcenter.Converter{Source: benchSource, APIVersion: "8.0.3.0"}
	ev, err := conv.Convert(sampleEvent(marker))
	if err != nil {
		return nil, err
	}
	data := ev.Data()
	m := []byte(strconv.Itoa(marker))
	i := bytes.Index(data, m)
	if i < 0 {
		return nil, errors.New("sample data has no key")
	}
	j := i + len(m)
	// ChainId repeats the key; keep it as in the sample.
	return &eventFactory{prefix: data[:i], suffix: data[j:], template: ev}, nil
}

// make returns event i of a run: id "<run>-<i>", key i.
func (f *eventFactory) make(run string, i int) event.Event {
	key := strconv.Itoa(i)
	data := make([]byte, 0, len(f.prefix)+len(key)+len(f.suffix))
	data = append(append(append(data, f.prefix...), key...), f.suffix...)
	ev := event.Event{Context: f.template.Context.Clone(), DataEncoded: data}
	ev.SetID(run + "-" + key)
	return ev
}

// stamp marks ev as event i published now.
func stamp(ev *event.Event, i int, now time.Time) {
	ev.SetExtension(stampExt, strconv.Itoa(i)+"."+strconv.FormatInt(now.UnixNano(), 10))
}

// benchScope publishes like a vCenter source named "bench"; its records
// carry benchToken.
func benchScope() producers.Scope {
	return producers.Scope{Provider: vcenter.Provider, Source: "bench"}
}

// benchToken is the subject token of every benchmark record: an EventEx
// type, which the subject sanitises as a vCenter source's would.
const benchToken = "com.vmware.vc.HA.ClusterFailoverActionInitiatedEvent"

// waitUntil polls cond until it holds. It gives up when cond's progress,
// as reported by progress, has not moved for stall, or ctx ends.
func waitUntil(ctx context.Context, stall time.Duration, cond func() bool, progress func() int64) error {
	last, moved := progress(), time.Now()
	t := time.NewTicker(2 * time.Millisecond)
	defer t.Stop()
	for !cond() {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
		if p := progress(); p != last {
			last, moved = p, time.Now()
		} else if time.Since(moved) > stall {
			return fmt.Errorf("no progress for %s (at %d)", stall, p)
		}
	}
	return nil
}
