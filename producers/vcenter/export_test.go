package vcenter

import "github.com/vmware/govmomi/vim25/types"

// SetReadHook makes s pass every page its collector returns through f
// before anything else sees it: a test plays a vCenter whose collector
// loses events. Sweeps are not passed through f.
func SetReadHook(s *Source, f func([]types.BaseEvent) []types.BaseEvent) { s.readHook = f }
