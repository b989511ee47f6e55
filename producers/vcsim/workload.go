package vcsim

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"time"

	"github.com/vmware/govmomi/find"
	"github.com/vmware/govmomi/object"
	"github.com/vmware/govmomi/session"
	"github.com/vmware/govmomi/vim25"
	"github.com/vmware/govmomi/vim25/methods"
	"github.com/vmware/govmomi/vim25/soap"
	"github.com/vmware/govmomi/vim25/types"
)

// workload drives the simulator through its SOAP API, as users and
// extensions of a real vCenter would, in a session of its own.
type workload struct {
	url      url.URL
	user     string
	password string
	caFile   string
	rate     float64 // events per second
	log      *slog.Logger

	vc    *vim25.Client
	vms   []*object.VirtualMachine
	hosts []*object.HostSystem
}

// step is one operation of the cycle and the number of events it causes
// in the simulator.
type step struct {
	name   string
	events int
	do     func(ctx context.Context, n int) error
}

// run repeats the cycle until ctx is done, pacing the steps so that events
// come at w.rate per second. A step that fails is logged and skipped.
func (w *workload) run(ctx context.Context) {
	if err := w.connect(ctx); err != nil {
		if ctx.Err() == nil {
			w.log.Error("simulator workload cannot start", "err", err)
		}
		return
	}
	defer w.close()
	steps := []step{
		{"power off", 2, w.powerOff}, // VmStoppingEvent, VmPoweredOffEvent
		{"power on", 2, w.powerOn},   // VmStartingEvent, VmPoweredOnEvent
		{"reconfigure", 1, w.reconfigure},
		{"post EventEx", 1, w.postEventEx},
		{"post GeneralUserEvent", 1, w.postUserEvent},
	}
	next := time.Now()
	for n := 0; ; n++ {
		s := steps[n%len(steps)]
		if err := w.do(ctx, s, n/len(steps)); err != nil {
			w.log.Warn("simulator workload step failed", "step", s.name, "err", err)
		}
		next = next.Add(time.Duration(float64(s.events) / w.rate * float64(time.Second)))
		if now := time.Now(); next.Before(now) {
			next = now // behind: carry on, do not burst
		}
		t := time.NewTimer(time.Until(next))
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

// do runs one step to its end, even when ctx ends meanwhile: the
// simulator does not stop serving a task's PropertyCollector wait when
// the client gives up, and destroying the filter under a running wait is a
// data race in the simulator. Its tasks finish at once.
func (w *workload) do(ctx context.Context, s step, n int) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), stepTimeout)
	defer cancel()
	return s.do(ctx, n)
}

// stepTimeout bounds one workload step.
const stepTimeout = 30 * time.Second

func (w *workload) connect(ctx context.Context) error {
	sc := soap.NewClient(&w.url, false)
	if err := sc.SetRootCAs(w.caFile); err != nil {
		return err
	}
	vc, err := vim25.NewClient(ctx, sc)
	if err != nil {
		return err
	}
	if err := session.NewManager(vc).Login(ctx, url.UserPassword(w.user, w.password)); err != nil {
		return err
	}
	w.vc = vc
	f := find.NewFinder(vc)
	if w.vms, err = f.VirtualMachineList(ctx, "*"); err != nil {
		return fmt.Errorf("find virtual machines: %w", err)
	}
	if w.hosts, err = f.HostSystemList(ctx, "*"); err != nil {
		return fmt.Errorf("find hosts: %w", err)
	}
	if len(w.vms) == 0 || len(w.hosts) == 0 {
		return errors.New("the model has no virtual machine or host")
	}
	return nil
}

func (w *workload) close() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = session.NewManager(w.vc).Logout(ctx)
	w.vc.CloseIdleConnections()
}

func (w *workload) vm(n int) *object.VirtualMachine { return w.vms[n%len(w.vms)] }

func (w *workload) powerOff(ctx context.Context, n int) error {
	return wait(ctx)(w.vm(n).PowerOff(ctx))
}

func (w *workload) powerOn(ctx context.Context, n int) error {
	return wait(ctx)(w.vm(n).PowerOn(ctx))
}

func (w *workload) reconfigure(ctx context.Context, n int) error {
	spec := types.VirtualMachineConfigSpec{Annotation: fmt.Sprintf("reconfigured by the vrelay simulator workload, cycle %d", n)}
	return wait(ctx)(w.vm(n).Reconfigure(ctx, spec))
}

func (w *workload) postEventEx(ctx context.Context, n int) error {
	h := w.hosts[n%len(w.hosts)]
	name, err := h.ObjectName(ctx)
	if err != nil {
		return err
	}
	return w.post(ctx, &types.EventEx{
		EventTypeId: "com.vmware.vc.HA.HostStateChangedEvent",
		Severity:    string(types.EventEventSeverityInfo),
		Message:     "The vSphere HA availability state of host " + name + " changed to Master",
		Arguments: []types.KeyAnyValue{
			{Key: "hostName", Value: name},
			{Key: "newState", Value: "Master"},
		},
		ObjectType: "HostSystem",
		ObjectId:   h.Reference().Value,
		ObjectName: name,
	})
}

func (w *workload) postUserEvent(ctx context.Context, n int) error {
	return w.post(ctx, &types.GeneralUserEvent{
		GeneralEvent: types.GeneralEvent{Message: fmt.Sprintf("vrelay simulator workload, cycle %d", n)},
	})
}

func (w *workload) post(ctx context.Context, ev types.BaseEvent) error {
	_, err := methods.PostEvent(ctx, w.vc, &types.PostEvent{This: *w.vc.ServiceContent.EventManager, EventToPost: ev})
	return err
}

// wait adapts a task-returning call: it waits for the task.
func wait(ctx context.Context) func(*object.Task, error) error {
	return func(t *object.Task, err error) error {
		if err != nil {
			return err
		}
		return t.Wait(ctx)
	}
}
