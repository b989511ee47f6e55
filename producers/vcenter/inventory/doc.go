// Package inventory keeps an in-memory copy of the part of a vCenter
// inventory that events refer to — folders, datacenters, virtual machines,
// hosts, clusters (compute resources), datastores, networks and
// distributed switches — and, optionally, of the vSphere tags attached to
// them, so that a source can add inventory paths and tags to an event
// without a round trip to vCenter.
//
// # Contract
//
//   - [Cache.Run] follows one vCenter session. It creates a ContainerView
//     over the root folder and a PropertyCollector of its own that watches
//     the name and parent of every object in the view with
//     WaitForUpdatesEx, so the cache follows renames, moves, creations and
//     deletions as vCenter reports them, without polling. With tags on, it
//     also logs in to the vSphere Automation (tagging) API and reads every
//     tag, category and tag association at once, then again every tag
//     refresh interval: vCenter emits no event when a tag is attached or
//     detached, so a tag change is seen at the next refresh at the latest.
//   - Consistency: the cache is eventually consistent with vCenter. An
//     event read at the moment its VM was created, moved or deleted may be
//     looked up before the PropertyCollector reported the change; it then
//     sees the previous state, or nothing.
//   - Reconnects: the PropertyCollector, the view and the tagging session
//     die with the vCenter session. Each Run builds a fresh copy from
//     scratch and swaps it in whole once vCenter delivered the complete
//     initial state; until then, lookups answer from the previous copy
//     (which may be stale), or miss when there is none. [Cache.Synced]
//     reports whether the current session's copy is complete.
//   - [Cache.Lookup] never blocks on vCenter: it reads memory under a
//     read lock. A miss (an object not in the cache yet, or deleted) returns
//     ok false; the caller adds nothing.
//
// Lookups and Run are safe for concurrent use; one Run at a time.
//
// The govmomi simulator (vcsim) has a lock-order bug that this package
// can trigger: an object that moves into a folder while a WaitForUpdatesEx
// over the ContainerView is being answered may deadlock the simulator.
// vCenter is not affected; with the simulator, rare moves are safe enough,
// and each wait lasts at most a second so that Run never destroys a
// collector while the simulator still answers a wait on it (which breaks
// the simulator too).
//
//	c := inventory.New(inventory.Config{Tags: true, TagRefresh: 5 * time.Minute, User: url.UserPassword(user, pw)})
//	go c.Run(ctx, vc) // per vCenter session
//	if e, ok := c.Lookup(vmRef); ok {
//		fmt.Println(e.Path, e.Folder, inventory.EncodeTags(e.Tags))
//	}
package inventory
