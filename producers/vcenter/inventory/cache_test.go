package inventory_test

import (
	"context"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/vmware/govmomi/find"
	"github.com/vmware/govmomi/object"
	"github.com/vmware/govmomi/session"
	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vapi/rest"
	"github.com/vmware/govmomi/vapi/tags"
	"github.com/vmware/govmomi/vim25"
	"github.com/vmware/govmomi/vim25/soap"
	"github.com/vmware/govmomi/vim25/types"

	_ "github.com/vmware/govmomi/vapi/simulator" // the tagging API

	"github.com/vrelay/vrelay/producers/vcenter/inventory"
)

// waitTimeout bounds every wait; no test asserts a duration.
const waitTimeout = 60 * time.Second

// vcsim starts the VPX model and returns an admin session and a function
// that opens another session (a reconnect).
func vcsim(t *testing.T) (admin *vim25.Client, connect func() *vim25.Client) {
	t.Helper()
	m := simulator.VPX()
	if err := m.Create(); err != nil {
		t.Fatal(err)
	}
	m.Service.RegisterEndpoints = true
	srv := m.Service.NewServer()
	t.Cleanup(func() {
		srv.Close()
		m.Remove()
	})
	connect = func() *vim25.Client {
		vc, err := vim25.NewClient(t.Context(), soap.NewClient(srv.URL, true))
		if err != nil {
			t.Fatal(err)
		}
		if err := session.NewManager(vc).Login(t.Context(), srv.URL.User); err != nil {
			t.Fatal(err)
		}
		return vc
	}
	return connect(), connect
}

// tagger creates a category and tags in vcsim through the tagging API.
type tagger struct {
	t   *testing.T
	m   *tags.Manager
	cat map[string]string // name -> id
}

func newTagger(t *testing.T, vc *vim25.Client) *tagger {
	rc := rest.NewClient(vc)
	if err := rc.Login(t.Context(), simulator.DefaultLogin); err != nil {
		t.Fatal(err)
	}
	return &tagger{t: t, m: tags.NewManager(rc), cat: map[string]string{}}
}

// attach attaches tag category:name to ref, creating both as needed.
func (g *tagger) attach(category, name string, ref types.ManagedObjectReference) {
	g.t.Helper()
	ctx := g.t.Context()
	cid, ok := g.cat[category]
	if !ok {
		var err error
		cid, err = g.m.CreateCategory(ctx, &tags.Category{Name: category, Cardinality: "MULTIPLE"})
		if err != nil {
			g.t.Fatal(err)
		}
		g.cat[category] = cid
	}
	tid, err := g.m.CreateTag(ctx, &tags.Tag{Name: name, CategoryID: cid})
	if err != nil {
		g.t.Fatal(err)
	}
	if err := g.m.AttachTag(ctx, tid, ref); err != nil {
		g.t.Fatal(err)
	}
}

// run runs the cache on vc until the test ends or the returned stop is
// called, and waits until it is synced.
func run(t *testing.T, c *inventory.Cache, vc *vim25.Client) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx, vc) }()
	stop = func() {
		cancel()
		if err := <-done; err != context.Canceled {
			t.Errorf("Run() = %v, want context.Canceled", err)
		}
	}
	t.Cleanup(func() {
		if ctx.Err() == nil {
			stop()
		}
	})
	wctx, wcancel := context.WithTimeout(t.Context(), waitTimeout)
	defer wcancel()
	if !c.WaitSynced(wctx) {
		t.Fatal("cache did not sync")
	}
	return stop
}

// until waits, without polling, until cond holds after a change.
func until(t *testing.T, c *inventory.Cache, what string, cond func() bool) {
	t.Helper()
	deadline := time.After(waitTimeout)
	for {
		ch := c.Changed()
		if cond() {
			return
		}
		select {
		case <-ch:
		case <-deadline:
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

func firstVM(t *testing.T, vc *vim25.Client) *object.VirtualMachine {
	t.Helper()
	vm, err := find.NewFinder(vc).VirtualMachine(t.Context(), "/DC0/vm/DC0_H0_VM0")
	if err != nil {
		t.Fatal(err)
	}
	return vm
}

func TestPathsAndTags(t *testing.T) {
	admin, _ := vcsim(t)
	vm := firstVM(t, admin)
	g := newTagger(t, admin)
	g.attach("env", "prod", vm.Reference())
	g.attach("tier", "web", vm.Reference())

	c := inventory.New(inventory.Config{Objects: true, Tags: true, User: simulator.DefaultLogin})
	run(t, c, admin)

	path, folder, ok := c.Path(vm.Reference())
	if !ok || path != "/DC0/vm/DC0_H0_VM0" || folder != "/DC0/vm" {
		t.Errorf("Path(vm) = %q, %q, %v; want /DC0/vm/DC0_H0_VM0, /DC0/vm, true", path, folder, ok)
	}
	ts, ok := c.Tags(vm.Reference())
	want := []inventory.Tag{{Category: "env", Name: "prod"}, {Category: "tier", Name: "web"}}
	if diff := cmp.Diff(want, ts); !ok || diff != "" {
		t.Errorf("Tags(vm) ok=%v, differ (-want +got):\n%s", ok, diff)
	}

	host, err := find.NewFinder(admin).HostSystem(t.Context(), "/DC0/host/DC0_C0/DC0_C0_H0")
	if err != nil {
		t.Fatal(err)
	}
	if path, folder, ok := c.Path(host.Reference()); !ok || path != "/DC0/host/DC0_C0/DC0_C0_H0" || folder != "" {
		t.Errorf("Path(host) = %q, %q, %v; want /DC0/host/DC0_C0/DC0_C0_H0, no folder (its parent is a cluster)", path, folder, ok)
	}
	if ts, ok := c.Tags(host.Reference()); !ok || ts != nil {
		t.Errorf("Tags(untagged host) = %v, %v; want nil, true", ts, ok)
	}
	missing := types.ManagedObjectReference{Type: "VirtualMachine", Value: "vm-none"}
	if _, _, ok := c.Path(missing); ok {
		t.Error("Path(unknown vm) ok, want a miss")
	}
	if _, ok := c.Tags(missing); ok {
		t.Error("Tags(unknown vm) ok, want a miss")
	}
}

func TestMoveRenameDelete(t *testing.T) {
	admin, _ := vcsim(t)
	ctx := t.Context()
	vm := firstVM(t, admin)
	c := inventory.New(inventory.Config{Objects: true})
	run(t, c, admin)

	vmFolder, err := find.NewFinder(admin).Folder(ctx, "/DC0/vm")
	if err != nil {
		t.Fatal(err)
	}
	web, err := vmFolder.CreateFolder(ctx, "web")
	if err != nil {
		t.Fatal(err)
	}
	task, err := web.MoveInto(ctx, []types.ManagedObjectReference{vm.Reference()})
	if err == nil {
		err = task.Wait(ctx)
	}
	if err != nil {
		t.Fatalf("move vm: %v", err)
	}
	until(t, c, "the moved path", func() bool {
		p, f, _ := c.Path(vm.Reference())
		return p == "/DC0/vm/web/DC0_H0_VM0" && f == "/DC0/vm/web"
	})

	task, err = web.Rename(ctx, "frontend")
	if err == nil {
		err = task.Wait(ctx)
	}
	if err != nil {
		t.Fatalf("rename folder: %v", err)
	}
	until(t, c, "the renamed folder in the path", func() bool {
		p, _, _ := c.Path(vm.Reference())
		return p == "/DC0/vm/frontend/DC0_H0_VM0"
	})

	task, err = vm.PowerOff(ctx)
	if err == nil {
		_ = task.Wait(ctx)
	}
	if task, err = vm.Destroy(ctx); err == nil {
		err = task.Wait(ctx)
	}
	if err != nil {
		t.Fatalf("destroy vm: %v", err)
	}
	until(t, c, "the deleted vm to miss", func() bool {
		_, _, ok := c.Path(vm.Reference())
		return !ok
	})
}

func TestTagRefresh(t *testing.T) {
	admin, _ := vcsim(t)
	vm := firstVM(t, admin)
	g := newTagger(t, admin)
	g.attach("env", "test", vm.Reference())
	c := inventory.New(inventory.Config{Tags: true, TagRefresh: 20 * time.Millisecond, User: simulator.DefaultLogin})
	run(t, c, admin)
	if ts, _ := c.Tags(vm.Reference()); len(ts) != 1 || ts[0].Name != "test" {
		t.Fatalf("Tags(vm) = %v, want env:test", ts)
	}

	g.attach("env", "prod", vm.Reference())
	until(t, c, "the new tag", func() bool {
		ts, _ := c.Tags(vm.Reference())
		return inventory.EncodeTags(ts) == "env:prod,env:test"
	})
}

// TestRunAgainRebuilds follows one session, then another after the
// inventory changed in between: the second Run starts from scratch and
// swaps its copy in once complete, while lookups answer from the old copy
// until then.
func TestRunAgainRebuilds(t *testing.T) {
	admin, connect := vcsim(t)
	ctx := t.Context()
	vm := firstVM(t, admin)
	c := inventory.New(inventory.Config{Objects: true})
	stop := run(t, c, connect())
	stop()
	if c.Synced() {
		t.Error("Synced() = true after Run returned, want false")
	}

	task, err := vm.Rename(ctx, "renamed-while-away")
	if err == nil {
		err = task.Wait(ctx)
	}
	if err != nil {
		t.Fatal(err)
	}
	if p, _, ok := c.Path(vm.Reference()); !ok || p != "/DC0/vm/DC0_H0_VM0" {
		t.Errorf("between sessions Path(vm) = %q, %v; want the last copy's /DC0/vm/DC0_H0_VM0", p, ok)
	}
	run(t, c, connect())
	if p, _, ok := c.Path(vm.Reference()); !ok || p != "/DC0/vm/renamed-while-away" {
		t.Errorf("after the new session synced Path(vm) = %q, %v; want /DC0/vm/renamed-while-away", p, ok)
	}
}

func TestEncodeTags(t *testing.T) {
	tests := []struct {
		name string
		in   []inventory.Tag
		want string
	}{
		{"none", nil, ""},
		{"one", []inventory.Tag{{"env", "prod"}}, "env:prod"},
		{"several", []inventory.Tag{{"env", "prod"}, {"tier", "web"}}, "env:prod,tier:web"},
		{"separators in names", []inventory.Tag{{"a:b", "c,d%"}}, "a%3Ab:c%2Cd%25"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := inventory.EncodeTags(tt.in); got != tt.want {
				t.Errorf("EncodeTags(%v) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}
