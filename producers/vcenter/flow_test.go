package vcenter_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vmware/govmomi/vim25/methods"
	"github.com/vmware/govmomi/vim25/types"

	"github.com/vrelay/vrelay/producers/vcenter"
)

// While events flow, the source reads again after a short pause instead
// of waiting on the property collector after every drain, and nothing
// watches the latest page. The simulator's property collector keeps every
// change of the latest page for the next wait, a whole event each: a wait
// per drain decoded every event a second time.
func TestFlowReadsWithoutWaiting(t *testing.T) {
	e := newEnv(t, "")
	src := e.source(t, e.sim.config(t))
	running(t, src, e.publisher(src), e.logs)
	e.sim.post(t, e.sim.eventEx("warm-up"))
	e.w.await(t, "warm-up", byMessage("warm-up"))

	waits := e.sim.countCalls("WaitForUpdatesEx")
	reads := e.sim.countCalls("ReadNextEvents")
	dropped := e.sim.countCalls("DestroyPropertyCollector")
	made := e.sim.countCalls("CreatePropertyCollector")
	const n, workers = 600, 4
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := w; i < n; i += workers {
				e.sim.post(t, e.sim.eventEx(fmt.Sprint("flow-", i)))
			}
		})
	}
	wg.Wait()
	e.w.await(t, "the last event", byMessage(fmt.Sprint("flow-", n-1)))
	for i := range n {
		e.w.await(t, fmt.Sprint("flow-", i), byMessage(fmt.Sprint("flow-", i)))
	}
	r, w := reads.count(), waits.count()
	t.Logf("%d events: %d ReadNextEvents, %d WaitForUpdatesEx", n, r, w)
	// A wait only follows a drain that read nothing: when the posters
	// paused for longer than the source's pause, and at the end. Waiting
	// after every drain makes w about r.
	if w > r/4+3 {
		t.Errorf("%d WaitForUpdatesEx for %d ReadNextEvents while events flowed, want at most %d", w, r, r/4+3)
	}
	// Nothing kept the changes of the latest page while events flowed:
	// the property collector was dropped, and made anew once they stopped.
	if dropped.count() < 1 {
		t.Errorf("no DestroyPropertyCollector while events flowed")
	}
	eventually(t, "a new property collector", func() bool { return made.count() >= 1 })
	e.w.checkUnique(t)
}

// A change of the latest page that reports an event the source has read
// already (it arrived between the wait and the read) is no reason to read:
// the source waits again.
func TestChangeOfEventReadIsNotRead(t *testing.T) {
	e := newEnv(t, "")
	cfg := e.sim.config(t)
	cfg.PollInterval = time.Minute // no wait times out in this test
	src := e.source(t, cfg)
	reads := e.sim.countCalls("ReadNextEvents")
	waits := e.sim.countCalls("WaitForUpdatesEx")

	type report struct {
		key          int32
		reads, waits int64
	}
	var (
		mu      sync.Mutex
		reports []report
		armed   atomic.Bool
		postErr = make(chan error, 1)
	)
	find := func(match func(report) bool) (report, bool) {
		mu.Lock()
		defer mu.Unlock()
		for i := len(reports) - 1; i >= 0; i-- {
			if match(reports[i]) {
				return reports[i], true
			}
		}
		return report{}, false
	}
	var keyA atomic.Int32
	vcenter.SetWaitHook(src, func(be types.BaseEvent) types.BaseEvent {
		if be == nil {
			return nil
		}
		k := be.GetEvent().Key
		mu.Lock()
		reports = append(reports, report{key: k, reads: reads.count(), waits: waits.count()})
		mu.Unlock()
		if armed.CompareAndSwap(true, false) {
			// B arrives after the wait that reports A and before the read:
			// the read returns both, and the next wait reports B.
			keyA.Store(k)
			_, err := methods.PostEvent(context.Background(), e.sim.admin, &types.PostEvent{
				This: *e.sim.admin.ServiceContent.EventManager, EventToPost: e.sim.eventEx("B"),
			})
			postErr <- err
		}
		return be
	})
	running(t, src, e.publisher(src), e.logs)
	e.sim.post(t, e.sim.eventEx("warm-up"))
	warm := int32(e.w.await(t, "warm-up", byMessage("warm-up")).key())
	// Idle: the wait after the one that reported the warm-up event has
	// begun, and no read comes before it returns.
	eventually(t, "the source to wait", func() bool {
		r, ok := find(func(r report) bool { return r.key == warm })
		return ok && waits.count() >= r.waits+1
	})

	armed.Store(true)
	e.sim.post(t, e.sim.eventEx("A"))
	e.w.await(t, "A", byMessage("A"))
	e.w.await(t, "B", byMessage("B"))
	if err := <-postErr; err != nil {
		t.Fatalf("post B: %v", err)
	}
	keyB := keyA.Load() + 1
	var atB report
	eventually(t, "a wait to report B and the next wait to begin", func() bool {
		var ok bool
		atB, ok = find(func(r report) bool { return r.key == keyB })
		return ok && waits.count() >= atB.waits+1
	})
	if got := reads.count(); got != atB.reads {
		t.Errorf("%d ReadNextEvents after a wait reported B, which was read already; want none", got-atB.reads)
	}
}
