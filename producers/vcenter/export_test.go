package vcenter

import "github.com/vmware/govmomi/vim25/types"

// SetReadHook makes s pass every page its collector returns through f
// before anything else sees it: a test plays a vCenter whose collector
// loses events. Sweeps are not passed through f.
func SetReadHook(s *Source, f func([]types.BaseEvent) []types.BaseEvent) { s.readHook = f }

// SetWaitHook makes s pass the newest event each change of its collector's
// latest page reports through f: a test plays a collector whose latest
// page does not show events.
func SetWaitHook(s *Source, f func(types.BaseEvent) types.BaseEvent) { s.waitHook = f }
