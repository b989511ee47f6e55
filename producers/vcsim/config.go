package vcsim

import (
	"errors"

	"github.com/google/uuid"

	"github.com/vrelay/vrelay/internal/cfgerr"
	"github.com/vrelay/vrelay/producers/vcenter"
)

// Defaults and limits of [Config].
const (
	DefaultRate = 5.0
	MaxRate     = 1000.0
)

// Config is the simulator as an operator writes it (`type: simulator`).
//
//	rate: 5
//	instanceUuid: 0d7c9a4e-5b5a-4f52-9c4b-6f0a1d3e2b11   # optional
//	format: router                                       # optional
type Config struct {
	// Rate is how many events per second the workload makes, at most 1000.
	// Fractions such as `0.5` are allowed; `0` means the default. The
	// workload powers virtual machines off and on, reconfigures them, and
	// posts an EventEx (com.vmware.vc.HA.HostStateChangedEvent) and a
	// GeneralUserEvent, in a cycle of seven events. Default `5`.
	Rate float64 `yaml:"rate"`
	// InstanceUUID is the simulated vCenter's about.instanceUuid. Default:
	// the uuid of the last run, read from the source's checkpoint (or its
	// last event in the stream), so that a restart on the same data is the
	// same vCenter again: its event keys go on after the last run's and
	// the source resumes after its checkpoint. A new random uuid when there
	// is neither.
	InstanceUUID string `yaml:"instanceUuid"`
	// Format is the CloudEvent shape, as for a vCenter source: "tanzu"
	// (Tanzu Sources for Knative, the default) or "router" (VMware Event
	// Router).
	Format vcenter.Format `yaml:"format"`
}

// SetDefaults fills unset fields with their defaults. [New] calls it.
func (c *Config) SetDefaults() {
	if c.Rate == 0 {
		c.Rate = DefaultRate
	}
}

// Validate reports every problem at once, each a [cfgerr.FieldError] whose
// path is relative to the Config.
func (c Config) Validate() error {
	var errs []error
	if c.Rate < 0 || c.Rate > MaxRate {
		errs = append(errs, cfgerr.Newf("rate", "must be between 0 (the default, 5) and %g events per second, got %g", MaxRate, c.Rate))
	}
	switch c.Format {
	case "", vcenter.FormatTanzu, vcenter.FormatRouter:
	default:
		errs = append(errs, cfgerr.Newf("format", "%q is not tanzu or router", c.Format))
	}
	if c.InstanceUUID != "" {
		if _, err := uuid.Parse(c.InstanceUUID); err != nil {
			errs = append(errs, cfgerr.Newf("instanceUuid", "not a uuid: %q", c.InstanceUUID))
		}
	}
	return errors.Join(errs...)
}
