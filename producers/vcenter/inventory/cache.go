package inventory

import (
	"context"
	"fmt"
	"log/slog"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/vmware/govmomi/property"
	"github.com/vmware/govmomi/vapi/rest"
	"github.com/vmware/govmomi/vapi/tags"
	"github.com/vmware/govmomi/view"
	"github.com/vmware/govmomi/vim25"
	"github.com/vmware/govmomi/vim25/methods"
	"github.com/vmware/govmomi/vim25/types"
)

// DefaultTagRefresh is the tag refresh interval when [Config.TagRefresh]
// is zero.
const DefaultTagRefresh = 5 * time.Minute

// waitSeconds bounds one WaitForUpdatesEx call. A pending wait holds the
// collector (the simulator serves nothing else on it, CancelWaitForUpdates
// included), so it is short: an idle inventory costs one call a second.
const waitSeconds = 1

// cleanupTimeout bounds the calls that tidy up on vCenter when Run ends.
const cleanupTimeout = 5 * time.Second

// watched are the managed object types the cache follows. Subtypes come
// along: ClusterComputeResource with ComputeResource, StoragePod with
// Folder, DistributedVirtualPortgroup and OpaqueNetwork with Network,
// VmwareDistributedVirtualSwitch with DistributedVirtualSwitch.
var watched = []string{
	"Folder", "Datacenter", "VirtualMachine", "HostSystem", "ComputeResource",
	"Datastore", "Network", "DistributedVirtualSwitch",
}

// Config says what a [Cache] follows.
type Config struct {
	// Objects follows the inventory (names and parents, hence paths).
	Objects bool
	// Tags reads the tags attached to objects through the tagging API.
	Tags bool
	// TagRefresh is how often the tags are read again. Default
	// [DefaultTagRefresh].
	TagRefresh time.Duration
	// User logs in to the tagging API; required with Tags.
	User *url.Userinfo
	// Log receives warnings (tags that cannot be read). Default: discard.
	Log *slog.Logger
}

// Tag is one vSphere tag and the name of its category.
type Tag struct {
	Category string
	Name     string
}

// object is one inventory object: its name as vCenter reports it (a '/'
// in a name is "%2f", a '%' is "%25") and its parent.
type object struct {
	name   string
	parent string // moref value; "" for the root folder
	folder bool   // a Folder (or a subtype): it can be a VM's folder
}

// snapshot is one session's copy of the inventory, keyed by moref value
// (unique within a vCenter across types).
type snapshot struct {
	objs map[string]object
	root string
}

// Cache is the inventory copy. Create it with [New]; feed it with
// [Cache.Run]; read it with [Cache.Path] and [Cache.Tags].
type Cache struct {
	cfg Config

	running sync.Mutex // one Run at a time

	mu     sync.RWMutex
	inv    *snapshot        // nil: never synced
	tags   map[string][]Tag // moref value -> sorted tags; nil: never read
	synced bool             // inv is the current session's, complete
	notify chan struct{}    // closed and replaced on every change
}

// New returns an empty cache.
func New(cfg Config) *Cache {
	if cfg.TagRefresh <= 0 {
		cfg.TagRefresh = DefaultTagRefresh
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	return &Cache{cfg: cfg, notify: make(chan struct{})}
}

// Run follows the vCenter session of vc until ctx is done or the
// PropertyCollector fails (the session was lost); it returns ctx.Err() or
// that error. Tag read errors are logged and retried at the next refresh;
// they do not end Run. Run tidies up what it created on vCenter before it
// returns.
func (c *Cache) Run(ctx context.Context, vc *vim25.Client) error {
	c.running.Lock()
	defer c.running.Unlock()
	unsync := func() {
		c.mu.Lock()
		c.synced = false
		c.mu.Unlock()
	}
	unsync()
	defer unsync()

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	if c.cfg.Tags {
		wg.Go(func() { c.tagLoop(ctx, vc) })
	}
	var err error
	if c.cfg.Objects {
		err = c.watch(ctx, vc)
	} else {
		c.mu.Lock()
		c.synced = true
		c.mu.Unlock()
		<-ctx.Done()
		err = ctx.Err()
	}
	cancel()
	wg.Wait()
	return err
}

// Synced reports whether a Run is going on and its session's inventory
// copy is complete (with Objects off: whether a Run is going on).
func (c *Cache) Synced() bool {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.synced
}

// WaitSynced blocks until the copy is complete and, with tags on, the tags
// were read once, or ctx is done. It reports whether both happened.
func (c *Cache) WaitSynced(ctx context.Context) bool {
	for {
		c.mu.RLock()
		ok := c.synced && (!c.cfg.Tags || c.tags != nil)
		ch := c.notify
		c.mu.RUnlock()
		if ok {
			return true
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return false
		}
	}
}

// Changed returns a channel closed at the next change of the cache: an
// inventory update or a tag read. Tests use it to wait without polling.
func (c *Cache) Changed() <-chan struct{} {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.notify
}

// changed wakes the waiters; c.mu is held for writing.
func (c *Cache) changed() {
	close(c.notify)
	c.notify = make(chan struct{})
}

// Path returns the inventory path of the object ref names, such as
// "/DC0/vm/web/vm1", and the path of its folder ("/DC0/vm/web") when its
// parent is a folder. ok is false when the object, or one of its
// ancestors, is not in the cache.
func (c *Cache) Path(ref types.ManagedObjectReference) (path, folder string, ok bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if c.inv == nil {
		return "", "", false
	}
	o, ok := c.inv.objs[ref.Value]
	if !ok {
		return "", "", false
	}
	parent, ok := c.inv.path(o.parent)
	if !ok {
		return "", "", false
	}
	if p, found := c.inv.objs[o.parent]; found && p.folder {
		folder = parent
	}
	if parent == "/" {
		return "/" + o.name, folder, true
	}
	return parent + "/" + o.name, folder, true
}

// path is the path of the object with moref value v; the root folder is "/".
func (s *snapshot) path(v string) (string, bool) {
	var names []string
	for depth := 0; v != s.root; depth++ {
		o, ok := s.objs[v]
		if !ok || depth > 64 { // not known, or a loop: no path
			return "", false
		}
		names = append(names, o.name)
		v = o.parent
	}
	if len(names) == 0 {
		return "/", true
	}
	slices.Reverse(names)
	return "/" + strings.Join(names, "/"), true
}

// Tags returns the tags attached to the object ref names, sorted by
// category and name. ok is false when the tags were never read, or when
// the cache follows objects and does not know this one.
func (c *Cache) Tags(ref types.ManagedObjectReference) (t []Tag, ok bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if c.tags == nil {
		return nil, false
	}
	if c.cfg.Objects {
		if c.inv == nil {
			return nil, false
		}
		if _, known := c.inv.objs[ref.Value]; !known {
			return nil, false
		}
	}
	return c.tags[ref.Value], true
}

// watch builds a fresh snapshot from a PropertyCollector on a
// ContainerView and keeps it current until ctx is done or a wait fails.
func (c *Cache) watch(ctx context.Context, vc *vim25.Client) error {
	root := vc.ServiceContent.RootFolder
	v, err := view.NewManager(vc).CreateContainerView(ctx, root, watched, true)
	if err != nil {
		return fmt.Errorf("create inventory view: %w", err)
	}
	pc, err := property.DefaultCollector(vc).Create(ctx)
	if err != nil {
		c.destroy(vc, v, nil)
		return fmt.Errorf("create inventory property collector: %w", err)
	}
	defer c.destroy(vc, v, pc)

	spec := types.CreateFilter{Spec: types.PropertyFilterSpec{
		ObjectSet: []types.ObjectSpec{{
			Obj:       v.Reference(),
			Skip:      types.NewBool(true),
			SelectSet: []types.BaseSelectionSpec{&types.TraversalSpec{Type: "ContainerView", Path: "view"}},
		}},
	}}
	for _, t := range watched {
		spec.Spec.PropSet = append(spec.Spec.PropSet, types.PropertySpec{Type: t, PathSet: []string{"name", "parent"}})
	}
	if _, err := pc.CreateFilter(ctx, spec); err != nil {
		return fmt.Errorf("watch inventory: %w", err)
	}

	// The first answers carry the whole inventory, in several parts when
	// vCenter truncates them; the copy is swapped in once it is whole.
	building := &snapshot{objs: make(map[string]object), root: root.Value}
	maxWait := int32(waitSeconds)
	req := types.WaitForUpdatesEx{This: pc.Reference(), Options: &types.WaitOptions{MaxWaitSeconds: &maxWait}}
	for {
		// The call is not cancelled with ctx but left to end on its own
		// (within waitSeconds): destroying a collector while a wait on it
		// is still being served breaks the simulator.
		wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), waitSeconds*time.Second+cleanupTimeout)
		res, err := methods.WaitForUpdatesEx(wctx, vc, &req)
		cancel()
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if err != nil {
			return fmt.Errorf("wait for inventory updates: %w", err)
		}
		set := res.Returnval
		if set == nil { // the wait timed out: nothing changed
			continue
		}
		req.Version = set.Version
		truncated := set.Truncated != nil && *set.Truncated
		var updates []types.ObjectUpdate
		for _, fs := range set.FilterSet {
			updates = append(updates, fs.ObjectSet...)
		}
		if building != nil {
			apply(building, updates)
			if !truncated {
				c.mu.Lock()
				c.inv, c.synced = building, true
				c.changed()
				c.mu.Unlock()
				building = nil
			}
			continue
		}
		if len(updates) > 0 {
			c.mu.Lock()
			apply(c.inv, updates)
			c.changed()
			c.mu.Unlock()
		}
	}
}

// destroy removes the collector and the view on vCenter, on a fresh
// context: ctx may be done. Errors are ignored, the session may be gone.
func (c *Cache) destroy(vc *vim25.Client, v *view.ContainerView, pc *property.Collector) {
	ctx, cancel := context.WithTimeout(context.Background(), cleanupTimeout)
	defer cancel()
	if pc != nil {
		_ = pc.Destroy(ctx)
	}
	_ = v.Destroy(ctx)
}

// apply merges one batch of updates into s.
func apply(s *snapshot, updates []types.ObjectUpdate) {
	for _, u := range updates {
		ref := u.Obj.Value
		if u.Kind == types.ObjectUpdateKindLeave {
			delete(s.objs, ref)
			continue
		}
		o := s.objs[ref]
		o.folder = isFolder(u.Obj.Type)
		for _, ch := range u.ChangeSet {
			switch ch.Name {
			case "name":
				if n, ok := ch.Val.(string); ok {
					o.name = n
				}
			case "parent":
				o.parent = ""
				if p, ok := ch.Val.(types.ManagedObjectReference); ok {
					o.parent = p.Value
				}
			}
		}
		s.objs[ref] = o
	}
}

func isFolder(typ string) bool { return typ == "Folder" || typ == "StoragePod" }

// tagLoop reads the tags now and then every TagRefresh until ctx is done,
// with one tagging API session. A failed read is logged and retried at the
// next refresh, with a new session.
func (c *Cache) tagLoop(ctx context.Context, vc *vim25.Client) {
	rc := rest.NewClient(vc)
	loggedIn := false
	defer func() {
		if loggedIn {
			lctx, cancel := context.WithTimeout(context.Background(), cleanupTimeout)
			defer cancel()
			_ = rc.Logout(lctx)
		}
	}()
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if !loggedIn {
			if err := rc.Login(ctx, c.cfg.User); err != nil {
				if ctx.Err() == nil {
					c.cfg.Log.Warn("cannot log in to the vcenter tagging api; tags are not added until it works",
						"retry_in", c.cfg.TagRefresh, "err", err)
				}
				t.Reset(c.cfg.TagRefresh)
				continue
			}
			loggedIn = true
		}
		m, err := readTags(ctx, tags.NewManager(rc))
		switch {
		case err == nil:
			c.mu.Lock()
			c.tags = m
			c.changed()
			c.mu.Unlock()
		case ctx.Err() == nil:
			c.cfg.Log.Warn("cannot read vcenter tags; keeping the previous ones", "retry_in", c.cfg.TagRefresh, "err", err)
			if rest.IsStatusError(err, 401) {
				loggedIn = false
			}
		}
		t.Reset(c.cfg.TagRefresh)
	}
}

// readTags reads every category, tag and association: two calls per tag
// and category plus one for all associations, whatever the number of
// objects.
func readTags(ctx context.Context, m *tags.Manager) (map[string][]Tag, error) {
	cats, err := m.GetCategories(ctx)
	if err != nil {
		return nil, fmt.Errorf("read tag categories: %w", err)
	}
	catName := make(map[string]string, len(cats))
	for _, ct := range cats {
		catName[ct.ID] = ct.Name
	}
	all, err := m.GetTags(ctx)
	if err != nil {
		return nil, fmt.Errorf("read tags: %w", err)
	}
	byID := make(map[string]Tag, len(all))
	ids := make([]string, 0, len(all))
	for _, t := range all {
		byID[t.ID] = Tag{Category: catName[t.CategoryID], Name: t.Name}
		ids = append(ids, t.ID)
	}
	out := make(map[string][]Tag)
	if len(ids) == 0 {
		return out, nil
	}
	att, err := m.ListAttachedObjectsOnTags(ctx, ids)
	if err != nil {
		return nil, fmt.Errorf("read tag associations: %w", err)
	}
	for _, a := range att {
		t, ok := byID[a.TagID]
		if !ok {
			continue
		}
		for _, o := range a.ObjectIDs {
			v := o.Reference().Value
			out[v] = append(out[v], t)
		}
	}
	for v, ts := range out {
		slices.SortFunc(ts, func(a, b Tag) int {
			if c := strings.Compare(a.Category, b.Category); c != 0 {
				return c
			}
			return strings.Compare(a.Name, b.Name)
		})
		out[v] = slices.Compact(ts)
	}
	return out, nil
}

// EncodeTags writes tags as the value of a tags extension: sorted
// "category:tag" pairs joined by ",", such as "env:prod,tier:web". In
// names, "%" is written "%25", "," "%2C" and ":" "%3A", so that a name
// holding them cannot be mistaken for a separator. No tags give "".
func EncodeTags(ts []Tag) string {
	var b strings.Builder
	for i, t := range ts {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(escape(t.Category))
		b.WriteByte(':')
		b.WriteString(escape(t.Name))
	}
	return b.String()
}

var escaper = strings.NewReplacer("%", "%25", ",", "%2C", ":", "%3A")

func escape(s string) string {
	if !strings.ContainsAny(s, "%,:") {
		return s
	}
	return escaper.Replace(s)
}
