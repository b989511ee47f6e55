package streams

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/vrelay/vrelay/internal/backoff"
)

// ErrStorageFailing is wrapped by [StorageHealth.Err] while JetStream
// cannot store what vrelay publishes (a full disk, a latched write error,
// JetStream disabled).
var ErrStorageFailing = errors.New("jetstream storage failing")

// StorageHealth is whether JetStream can store events right now, as a
// [StorageWatch] last found it. Publishers consult it to fail fast instead
// of waiting for acks that will not come; /readyz reports it. A nil
// *StorageHealth is always healthy.
type StorageHealth struct {
	mu      sync.Mutex
	reason  error
	failing chan struct{} // closed while reason != nil
}

// NewStorageHealth returns a healthy StorageHealth.
func NewStorageHealth() *StorageHealth {
	return &StorageHealth{failing: make(chan struct{})}
}

// Err returns nil while storage works, else an error wrapping
// [ErrStorageFailing] with the reason.
func (h *StorageHealth) Err() error {
	if h == nil {
		return nil
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.reason == nil {
		return nil
	}
	return fmt.Errorf("%w: %w", ErrStorageFailing, h.reason)
}

// OK reports whether storage works.
func (h *StorageHealth) OK() bool { return h.Err() == nil }

// Failing returns a channel that is closed once storage fails: a publisher
// waiting for acks selects on it to give up at once. After a recovery it
// returns a new, open channel. A nil *StorageHealth returns nil (never
// ready).
func (h *StorageHealth) Failing() <-chan struct{} {
	if h == nil {
		return nil
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.failing
}

// set records the outcome of a check; it reports whether the state
// changed between healthy and failing.
func (h *StorageHealth) set(reason error) (changed bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	wasFailing := h.reason != nil
	h.reason = reason
	switch {
	case reason != nil && !wasFailing:
		close(h.failing)
		return true
	case reason == nil && wasFailing:
		h.failing = make(chan struct{})
		return true
	}
	return false
}

// StorageWatch checks JetStream's storage on an interval, keeps a
// [StorageHealth] up to date, and on the embedded server repairs it once
// the data directory takes writes again. It logs once at warn level when
// storage starts failing, with the reason, and once at info level when it
// recovered.
type StorageWatch struct {
	// Health is kept up to date; it must not be nil.
	Health *StorageHealth
	// Check returns nil while JetStream can store, else the reason.
	Check func(ctx context.Context) error
	// Repair, when set, is called while Check fails. It returns nil once
	// it did something that may have fixed storage (restarted the
	// embedded server), else why it cannot yet (the disk is still full).
	Repair func(ctx context.Context) error
	// Interval between checks. Default 1s.
	Interval time.Duration
	// Log receives the state changes. Default: discard.
	Log *slog.Logger
}

// Run checks until ctx is done.
func (w *StorageWatch) Run(ctx context.Context) {
	interval := w.Interval
	if interval <= 0 {
		interval = time.Second
	}
	log := w.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	// A repair that did not help is not tried again at once: a server
	// restart every second would only disturb the routes.
	wait := backoff.Policy{Initial: 5 * time.Second, Max: time.Minute}
	var (
		repairs    int
		nextRepair time.Time
		lastRepair error
		restarted  bool
	)
	for {
		err := w.Check(ctx)
		if ctx.Err() != nil {
			return
		}
		if err != nil && w.Health.set(err) {
			log.Warn("jetstream storage failing; publishes fail fast until it recovers", "reason", err)
		}
		if err != nil && w.Repair != nil && !time.Now().Before(nextRepair) {
			rerr := w.Repair(ctx)
			if rerr == nil {
				repairs++
				nextRepair = time.Now().Add(wait.Delay(repairs))
				restarted = true
				log.Info("embedded nats-server restarted", "reason", err)
				err = w.Check(ctx)
			} else if lastRepair == nil || rerr.Error() != lastRepair.Error() {
				log.Debug("jetstream storage cannot be repaired yet", "err", rerr)
			}
			lastRepair = rerr
			if err != nil {
				w.Health.set(err) // the latest reason
			}
		}
		if err == nil && w.Health.set(nil) {
			log.Info("jetstream storage recovered", "embedded_restarted", restarted)
			repairs, nextRepair, lastRepair, restarted = 0, time.Time{}, nil, false
		}
		if !backoff.Sleep(ctx, interval) {
			return
		}
	}
}

// CheckJetStream is a [StorageWatch.Check] for a NATS that is not ours.
// It fails when the account info says JetStream is disabled (a server
// that runs out of resources disables it) or the account's store is at
// its limit. A NATS that does not answer is not a storage failure: the
// connection state reports that, and publishes wait out an election.
func CheckJetStream(js jetstream.JetStream) func(ctx context.Context) error {
	return func(ctx context.Context) error {
		ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		info, err := js.AccountInfo(ctx)
		if errors.Is(err, jetstream.ErrJetStreamNotEnabled) || errors.Is(err, jetstream.ErrJetStreamNotEnabledForAccount) {
			return fmt.Errorf("account info: %w", err)
		}
		if err != nil {
			return nil
		}
		if max := info.Limits.MaxStore; max > 0 && info.Store >= uint64(max) {
			return fmt.Errorf("account store limit reached (%d of %d bytes used)", info.Store, max)
		}
		return nil
	}
}
