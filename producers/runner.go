package producers

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/vrelay/vrelay/internal/backoff"
	"github.com/vrelay/vrelay/streams"
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
	// StateStandby: a polling source whose lease another replica holds
	// (SourceStatus.Holder); it is not running, and runs as soon as this
	// replica takes the lease.
	StateStandby SourceState = "standby"
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
	// Holder is who holds the lease of a source in StateStandby: another
	// replica's identity (see [Identity]); "" in other states.
	Holder string
	// Detail is what a running source says of its upstream (see
	// [HealthReporter]): "" when it is fine or does not say.
	Detail string
}

// HealthReporter is an optional capability of a [Source]: Health says
// whether it reaches its upstream and reads what it should, and if not,
// why, on one line ("vcenter unreachable since 02:31:05: ..."). The runner
// asks it in [Runner.Status], so it must be cheap and safe for concurrent
// use. A source that is not ok is still running: readiness does not
// depend on it.
type HealthReporter interface {
	Health() (ok bool, detail string)
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
// [Runner.Run] once. [WithLogger], [WithMetrics], [WithRestartBackoff] and
// [WithLeases] apply; the other options are ignored.
type Runner struct {
	log     *slog.Logger
	metrics *Metrics
	minWait time.Duration
	maxWait time.Duration
	leases  *Leases

	mu      sync.Mutex
	started bool
	units   []*unit
}

// unit is one source and its publisher; status is guarded by Runner.mu.
type unit struct {
	provider, name string
	src            Source
	pub            Publisher
	polling        bool
	status         SourceStatus
}

// NewRunner returns a runner without sources. A source that fails is run
// again after 1s, doubling up to 1m (see [WithRestartBackoff]); the pause
// starts again at 1s once a run lasted at least the maximum, so a source
// that fails once a day is not held back a minute.
func NewRunner(opts ...Option) *Runner {
	o := newOptions(opts)
	return &Runner{log: o.log, metrics: o.metrics, minWait: o.restartMin, maxWait: o.restartMax, leases: o.leases}
}

// Add registers src, which publishes through pub, under provider and name
// (the labels of its logs, metrics and status; use the provider and source
// of pub's [Scope]). It must be called before [Runner.Run]; it fails after
// Run began, or when provider and name are taken.
func (r *Runner) Add(provider, name string, src Source, pub Publisher) error {
	return r.add(provider, name, src, pub, false)
}

// AddPolling is [Runner.Add] for a source that polls an upstream system
// (vCenter, Horizon): with [WithLeases], it runs only while this replica
// holds the lease `<provider>.<name>`, and shows as [StateStandby] while
// another replica does. Its context is cancelled as soon as the lease is
// lost; the source's checkpoint compare-and-set fences whatever it still
// writes. When the runner stops, the lease is released once the source
// returned (so after its last checkpoint), and another replica takes over
// at once.
func (r *Runner) AddPolling(provider, name string, src Source, pub Publisher) error {
	return r.add(provider, name, src, pub, true)
}

func (r *Runner) add(provider, name string, src Source, pub Publisher, polling bool) error {
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
	r.units = append(r.units, &unit{provider: provider, name: name, src: src, pub: pub, polling: polling, status: SourceStatus{
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
		if hr, ok := u.src.(HealthReporter); ok && u.status.State == StateRunning {
			if fine, detail := hr.Health(); !fine {
				out[i].Detail = detail
			}
		}
	}
	return out
}

// supervise runs one source until ctx is done, again after each failure.
func (r *Runner) supervise(ctx context.Context, u *unit) {
	provider, name := u.provider, u.name
	log := r.log.With("provider", provider, "source", name)
	failures := 0
	for {
		var lease *Lease
		if u.polling && r.leases != nil {
			if lease = r.acquire(ctx, u, log); lease == nil {
				r.update(u, func(s *SourceStatus) {
					s.State, s.Since, s.NextStart, s.Holder = StateStopped, time.Now(), time.Time{}, ""
				})
				return
			}
		}
		began := time.Now()
		r.update(u, func(s *SourceStatus) {
			s.State, s.Since, s.NextStart, s.Holder = StateRunning, began, time.Time{}, ""
		})
		r.metrics.sourceUp(provider, name, true)
		err := r.runOnce(ctx, u, lease)
		r.metrics.sourceUp(provider, name, false)
		if errors.Is(err, ErrLeaseLost) && ctx.Err() == nil {
			// Not a failure: another replica runs it now.
			log.Warn("lease lost; source stopped, waiting for the lease again", "err", err)
			continue
		}
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

// runOnce runs the source once, on a context of its own. With a lease,
// it renews the lease while the source runs, cancels the source as soon
// as the lease is lost (and then returns an error wrapping
// [ErrLeaseLost]), and releases the lease once the source returned.
func (r *Runner) runOnce(ctx context.Context, u *unit, lease *Lease) error {
	if lease == nil {
		rctx, cancel := context.WithCancel(ctx)
		defer cancel()
		return u.src.Run(rctx, u.pub)
	}
	rctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	held := make(chan error, 1)
	go func() {
		err := lease.Hold(rctx)
		if errors.Is(err, ErrLeaseLost) {
			cancel(err)
		}
		held <- err
	}()
	err := u.src.Run(rctx, u.pub)
	cancel(nil)
	holdErr := <-held
	if errors.Is(holdErr, ErrLeaseLost) {
		return holdErr
	}
	// The source returned, after its last checkpoint: hand over at once.
	relCtx, relCancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
	defer relCancel()
	if rerr := lease.Release(relCtx); rerr != nil {
		r.log.Warn("could not release lease; another replica takes over when it expires",
			"provider", u.provider, "source", u.name, "err", rerr, "expires", lease.Expires())
	}
	return err
}

// acquire blocks until this replica holds u's lease, showing u as standby
// meanwhile. It returns nil when ctx is done first.
func (r *Runner) acquire(ctx context.Context, u *unit, log *slog.Logger) *Lease {
	key := streams.Token(u.provider) + "." + streams.Token(u.name)
	// Poll often enough that a lease that expired is taken within about a
	// tenth of its TTL; a Get per second per standby source costs nothing.
	every := min(r.leases.TTL()/10, time.Second)
	lastHolder := ""
	for {
		lease, cur, err := r.leases.TryAcquire(ctx, key)
		switch {
		case lease != nil:
			log.Info("lease acquired; running the source", "lease", key, "holder", r.leases.Holder())
			r.metrics.sourceStandby(u.provider, u.name, false)
			return lease
		case err != nil:
			if ctx.Err() == nil {
				log.Warn("cannot read the lease; retrying", "lease", key, "err", err)
			}
		case cur.Holder != lastHolder:
			lastHolder = cur.Holder
			log.Info("standby: another replica holds the lease", "lease", key, "holder", cur.Holder)
			r.metrics.sourceStandby(u.provider, u.name, true)
			r.update(u, func(s *SourceStatus) {
				if s.State != StateStandby {
					s.Since = time.Now()
				}
				s.State, s.NextStart, s.Holder = StateStandby, time.Time{}, cur.Holder
			})
		}
		if !backoff.Sleep(ctx, every) {
			r.metrics.sourceStandby(u.provider, u.name, false)
			return nil
		}
	}
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
