package vcenter_test

import (
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/vmware/govmomi/find"
	"github.com/vmware/govmomi/object"
	"github.com/vmware/govmomi/vapi/rest"
	"github.com/vmware/govmomi/vapi/tags"
	"github.com/vmware/govmomi/vim25/types"

	_ "github.com/vmware/govmomi/vapi/simulator" // the tagging API

	"github.com/vrelay/vrelay/filters"
	"github.com/vrelay/vrelay/producers/vcenter"
)

// tagVM attaches the tag category:name (created here) to vm.
func tagVM(t testing.TB, s *sim, category, name string, vm *object.VirtualMachine) {
	t.Helper()
	ctx := t.Context()
	rc := rest.NewClient(s.admin)
	if err := rc.Login(ctx, url.UserPassword(s.user, s.password)); err != nil {
		t.Fatalf("log in to the tagging api: %v", err)
	}
	m := tags.NewManager(rc)
	cid, err := m.CreateCategory(ctx, &tags.Category{Name: category, Cardinality: "MULTIPLE"})
	if err != nil {
		if c, gerr := m.GetCategory(ctx, category); gerr == nil {
			cid, err = c.ID, nil
		}
	}
	if err != nil {
		t.Fatalf("create category %s: %v", category, err)
	}
	tid, err := m.CreateTag(ctx, &tags.Tag{Name: name, CategoryID: cid})
	if err != nil {
		t.Fatalf("create tag %s: %v", name, err)
	}
	if err := m.AttachTag(ctx, tid, vm.Reference()); err != nil {
		t.Fatalf("attach tag %s: %v", name, err)
	}
}

// enriched runs a source with enrich on and waits until its cache synced.
func enriched(t *testing.T, e *env, opts ...vcenter.Option) {
	t.Helper()
	enrichedAt(t, e, e.sim.config(t), opts...)
}

func enrichedAt(t *testing.T, e *env, cfg vcenter.Config, opts ...vcenter.Option) {
	t.Helper()
	cfg.Enrich = vcenter.EnrichConfig{Inventory: true, Tags: true, TagRefresh: 20 * time.Millisecond}
	src := e.source(t, cfg, opts...)
	running(t, src, e.publisher(src), e.logs)
	eventually(t, "the inventory cache to sync", func() bool { return e.logs.count("inventory cache synced") > 0 })
}

// powerOn powers vm off and on and returns the VmPoweredOnEvent stored
// for it, the newest one.
func powerOn(t *testing.T, e *env, vm *object.VirtualMachine) stored {
	t.Helper()
	before := 0
	match := byType(vm.Name(), "VmPoweredOnEvent")
	for _, m := range e.w.all(t) {
		if match(m) {
			before++
		}
	}
	power(t, vm, false)
	power(t, vm, true)
	var got stored
	eventually(t, "a new VmPoweredOnEvent", func() bool {
		n := 0
		for _, m := range e.w.all(t) {
			if match(m) {
				n++
				got = m
			}
		}
		return n > before
	})
	return got
}

// poweredOnUntil powers vm on again until its event satisfies cond.
func poweredOnUntil(t *testing.T, e *env, vm *object.VirtualMachine, what string, cond func(stored) bool) stored {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for {
		got := powerOn(t, e, vm)
		if cond(got) {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s; last event has extensions %v", what, got.ev.Extensions())
		}
	}
}

func ext(m stored, name string) string {
	v, _ := m.ev.Extensions()[name].(string)
	return v
}

func TestEnrichVMEvent(t *testing.T) {
	e := newEnv(t, "")
	vm := e.sim.vm(t)
	tagVM(t, e.sim, "env", "prod", vm)
	enriched(t, e)

	got := powerOn(t, e, vm)
	want := map[string]string{
		"vmpath":   "/DC0/vm/" + vm.Name(),
		"vmfolder": "/DC0/vm",
		"vmtags":   "env:prod",
		"dcpath":   "/DC0",
	}
	for name, w := range want {
		if g := ext(got, name); g != w {
			t.Errorf("extension %s = %q, want %q", name, g, w)
		}
	}
	host, _ := got.data["Host"].(map[string]any)
	hostName, _ := host["Name"].(string)
	if hp := ext(got, "hostpath"); hostName == "" || !strings.HasPrefix(hp, "/DC0/host/") || !strings.HasSuffix(hp, "/"+hostName) {
		t.Errorf("hostpath = %q, want /DC0/host/.../%s", hp, hostName)
	}
	if _, ok := got.ev.Extensions()["hosttags"]; ok {
		t.Error("untagged host got a hosttags extension, want none")
	}

	for _, src := range []string{`vmtags contains "env:prod"`, `ext.vmtags contains "env:prod"`, `"env:prod" in split(vmtags, ",")`} {
		f, err := filters.Compile(src)
		if err != nil {
			t.Fatalf("compile %s: %v", src, err)
		}
		if ok, err := f.Match(got.ev); !ok || err != nil {
			t.Errorf("filter %s on the enriched event = %v, %v; want true, nil", src, ok, err)
		}
	}
}

func TestEnrichTagChange(t *testing.T) {
	e := newEnv(t, "")
	vm := e.sim.vm(t)
	tagVM(t, e.sim, "env", "prod", vm)
	enriched(t, e)
	if got := powerOn(t, e, vm); ext(got, "vmtags") != "env:prod" {
		t.Fatalf("vmtags = %q, want env:prod", ext(got, "vmtags"))
	}

	tagVM(t, e.sim, "owner", "alice", vm)
	poweredOnUntil(t, e, vm, "the new tag on an event", func(m stored) bool {
		return ext(m, "vmtags") == "env:prod,owner:alice"
	})
}

// moveVM moves vm into a new folder of /DC0/vm called name.
func moveVM(t *testing.T, s *sim, vm *object.VirtualMachine, name string) {
	t.Helper()
	ctx := t.Context()
	parent, err := find.NewFinder(s.admin).Folder(ctx, "/DC0/vm")
	if err != nil {
		t.Fatal(err)
	}
	f, err := parent.CreateFolder(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	task, err := f.MoveInto(ctx, []types.ManagedObjectReference{vm.Reference()})
	if err == nil {
		err = task.Wait(ctx)
	}
	if err != nil {
		t.Fatalf("move vm into %s: %v", name, err)
	}
}

// TestEnrichReconnect cuts the line to vCenter and moves a VM while the
// source is away: the cache's collector died with the session, so only a
// cache rebuilt on the new session knows the new path.
//
// A move while the cache watches is tested in package inventory
// (TestMoveRenameDelete). It is not repeated here: the simulator can
// deadlock when an object moves in a ContainerView while a
// WaitForUpdatesEx on that view is being answered (a lock-order bug of the
// simulator, not of vCenter), and each test that does so adds to the odds.
func TestEnrichReconnect(t *testing.T) {
	e := newEnv(t, "")
	vm := e.sim.vm(t)
	sdk, _ := url.Parse(e.sim.url)
	line := newCutter(t, sdk.Host)
	sdk.Host = line.ln.Addr().String()
	cfg := e.sim.config(t)
	cfg.Address = sdk.String()
	reg := prometheus.NewRegistry()
	enrichedAt(t, e, cfg, vcenter.WithRegisterer(reg))

	line.set(true)
	eventually(t, "the lost session", func() bool {
		return counterValue(t, reg, "vrelay_vcenter_connection_failures_total") >= 1
	})
	moveVM(t, e.sim, vm, "while-away")
	line.set(false)
	eventually(t, "the cache to sync on the new session", func() bool { return e.logs.count("inventory cache synced") >= 2 })
	poweredOnUntil(t, e, vm, "the path the vm got while the source was away", func(m stored) bool {
		return ext(m, "vmpath") == "/DC0/vm/while-away/"+vm.Name()
	})
}

// TestEnrichMiss posts an event naming a VM vCenter does not have: it is
// stored without VM extensions, and the miss is counted.
func TestEnrichMiss(t *testing.T) {
	e := newEnv(t, "")
	reg := prometheus.NewRegistry()
	enriched(t, e, vcenter.WithRegisterer(reg))

	ev := e.sim.eventEx("miss-1")
	ev.Vm = &types.VmEventArgument{EntityEventArgument: types.EntityEventArgument{Name: "gone"},
		Vm: types.ManagedObjectReference{Type: "VirtualMachine", Value: "vm-gone"}}
	e.sim.post(t, ev)
	got := e.w.await(t, "the event naming a missing vm", byMessage("miss-1"))
	for _, name := range []string{"vmpath", "vmfolder", "vmtags"} {
		if v, ok := got.ev.Extensions()[name]; ok {
			t.Errorf("event has %s = %v, want none for a missing vm", name, v)
		}
	}
	if n := counterValue(t, reg, "vrelay_vcenter_enrich_misses_total"); n < 1 {
		t.Errorf("vrelay_vcenter_enrich_misses_total = %v, want at least 1", n)
	}
}
