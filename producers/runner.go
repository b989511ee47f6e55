package producers

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/vrelay/vrelay/internal/backoff"
)

// SourceState is where a source stands in its [Runner].
type SourceState string

const (
	// StateStarting: added, not run yet.
	StateStarting SourceState = "starting"
	// StateRunning: its Run has been called and has not returned. Whether it
	// reaches its upstream system is the source's own business (a vCenter
	// source that cannot log in is running, and says so in its log and
	// metrics).
	StateRunning SourceState = "running"
	// StateFailed: its Run returned before the runner's context was done;
	// it is run again at SourceStatus.NextStart.
	StateFailed SourceState = "failed"
	// StateStopped: the runner's context is done and its Run returned.
	StateStopped SourceState = "stopped"
)

// SourceStatus is a snapshot of one source of a [Runner].
type SourceStatus struct {
	Provider string
	Name     string
	State    SourceState
	// LastError is why the source last failed, nil if it never did. It is
	// kept after a successful restart, so it says what happened last.
	LastError error
	// Restarts counts how often the source was run again after a failure.
	Restarts int
	// Since is when the source entered State.
	Since time.Time
	// NextStart is when a failed source is run again; zero in other states.
	NextStart time.Time
}

// errReturnedEarly is the failure of a source whose Run returned nil while
// its context was not done: the [Source] contract says it blocks.
var errReturnedEarly = errors.New("source stopped by itself without an error")

// errRunnerStarted is returned by Add after Run began, and by a second Run.
var errRunnerStarted = errors.New("producers: runner already started")

// Runner owns the sources of a process: it starts each one, runs it again
// with a backoff when its Run returns, and stops them all when its context
// is done. A source that fails (a vCenter source with a corrupt
// checkpoint, a webhook that cannot bind its address) is logged, counted
// and shown by [Runner.Status], and never takes the other sources down.
//
// Create it with [NewRunner], [Runner.Add] every source, then call
// [Runner.Run] once. [WithLogger], [WithMetrics] and [WithRestartBackoff]
// apply; the other options are ignored.
type Runner struct {
	log     *slog.Logger
	metrics *Metrics
	minWait time.Duration
	maxWait time.Duration

	mu      sync.Mutex
	started bool
	units   []*unit
}

// unit is one source and its publisher; status is guarded by Runner.mu.
type unit struct {
	provider, name string
	src            Source
	pub            Publisher
	status         SourceStatus
}

// NewRunner returns a runner without sources. A source that fails is run
// again after 1s, doubling up to 1m (see [WithRestartBackoff]); the pause
// starts again at 1s once a run lasted at least the maximum, so a source
// that fails once a day is not held back a minute.
func NewRunner(opts ...Option) *Runner {
	o := newOptions(opts)
	return &Runner{log: o.log, metrics: o.metrics, minWait: o.restartMin, maxWait: o.restartMax}
}

// Add registers src, which publishes through pub, under provider and name
// (the labels of its logs, metrics and status; use the provider and source
// of pub's [Scope]). It must be called before [Runner.Run]; it fails after
// Run began, or when provider and name are taken.
func (r *Runner) Add(provider, name string, src Source, pub Publisher) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.started {
		return fmt.Errorf("add source %s/%s: %w", provider, name, errRunnerStarted)
	}
	for _, u := range r.units {
		if u.provider == provider && u.name == name {
			return fmt.Errorf("add source %s/%s: a source of that name was added already", provider, name)
		}
	}
	r.units = append(r.units, &unit{provider: provider, name: name, src: src, pub: pub, status: SourceStatus{
		Provider: provider, Name: name, State: StateStarting, Since: time.Now(),
	}})
	r.metrics.sourceAdded(provider, name)
	return nil
}

// Run runs every source, each in a goroutine of its own, until ctx is
// done. It blocks until then and until every source's Run returned, and
// returns ctx.Err(): never a source's error, which it logs, counts and
// shows in [Runner.Status] before running the source again. It returns
// another error only when called a second time.
func (r *Runner) Run(ctx context.Context) error {
	r.mu.Lock()
	if r.started {
		r.mu.Unlock()
		return errRunnerStarted
	}
	r.started = true
	units := r.units
	r.mu.Unlock()

	var wg sync.WaitGroup
	for _, u := range units {
		wg.Go(func() { r.supervise(ctx, u) })
	}
	wg.Wait() // each returns only once ctx is done
	<-ctx.Done()
	return ctx.Err()
}

// Status returns a snapshot of every source, in the order they were added.
// It is safe for concurrent use, also while Run runs.
func (r *Runner) Status() []SourceStatus {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]SourceStatus, len(r.units))
	for i, u := range r.units {
		out[i] = u.status
	}
	return out
}

// supervise runs one source until ctx is done, again after each failure.
func (r *Runner) supervise(ctx context.Context, u *unit) {
	provider, name := u.provider, u.name
	log := r.log.With("provider", provider, "source", name)
	failures := 0
	for {
		began := time.Now()
		r.update(u, func(s *SourceStatus) {
			s.State, s.Since, s.NextStart = StateRunning, began, time.Time{}
		})
		r.metrics.sourceUp(provider, name, true)
		err := r.runOnce(ctx, u)
		r.metrics.sourceUp(provider, name, false)
		if ctx.Err() != nil {
			if err != nil && !errors.Is(err, ctx.Err()) {
				log.Warn("source stopped with an error", "err", err)
			}
			r.update(u, func(s *SourceStatus) { s.State, s.Since = StateStopped, time.Now() })
			return
		}
		if err == nil {
			err = errReturnedEarly
		}
		if time.Since(began) >= r.maxWait {
			failures = 0 // it ran healthily for a while: start the backoff again
		}
		failures++
		wait := r.backoff(failures)
		now := time.Now()
		r.update(u, func(s *SourceStatus) {
			s.State, s.Since, s.NextStart, s.LastError = StateFailed, now, now.Add(wait), err
		})
		log.Error("source failed; the other sources go on, and this one is run again after the pause",
			"err", err, "retry_in", wait, "failures", failures)
		if !backoff.Sleep(ctx, wait) {
			r.update(u, func(s *SourceStatus) {
				s.State, s.Since, s.NextStart = StateStopped, time.Now(), time.Time{}
			})
			return
		}
		r.update(u, func(s *SourceStatus) { s.Restarts++ })
		r.metrics.sourceRestarted(provider, name)
		log.Info("restarting source", "failures", failures)
	}
}

// runOnce runs the source once, on a context of its own.
func (r *Runner) runOnce(ctx context.Context, u *unit) error {
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// TODO(#10): in clustered mode, wrap a polling source (vCenter,
	// Horizon) in its lease here: wait until this replica holds
	// `<provider>.<source>` in vrelay_leases, renew it while the source
	// runs, and cancel rctx when the lease is lost. A source whose run
	// ended because its lease was lost is not failed: it waits for the
	// lease again without counting a restart.
	return u.src.Run(rctx, u.pub)
}

func (r *Runner) update(u *unit, f func(*SourceStatus)) {
	r.mu.Lock()
	f(&u.status)
	r.mu.Unlock()
}

// backoff is the pause after n failures in a row: minWait doubling, capped
// at maxWait.
func (r *Runner) backoff(n int) time.Duration {
	return backoff.Policy{Initial: r.minWait, Max: r.maxWait}.Delay(n)
}
