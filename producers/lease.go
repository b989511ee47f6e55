package producers

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/vrelay/vrelay/streams"
)

// ErrLeaseLost is the cause of a polling source's context when its
// replica lost the lease: a renewal found the key changed or gone, or no
// renewal succeeded before the lease ran out.
var ErrLeaseLost = errors.New("lease lost")

// LeaseValue is what a lease key holds, as JSON: who holds it and since
// when. `nats kv get vrelay_leases vcenter.vc01` shows it.
type LeaseValue struct {
	Holder     string    `json:"holder"`
	AcquiredAt time.Time `json:"acquiredAt"`
}

// Leases hands out leases on the bucket streams.LeaseBucket, whose
// bucket-level TTL is the lease's time to live. Every lease of one
// Leases is held under one identity. It is safe for concurrent use.
type Leases struct {
	kv     jetstream.KeyValue
	holder string
	ttl    time.Duration
}

// Identity returns a holder identity for this process: the host name (a
// pod's name in Kubernetes) and a random instance id, so that a restarted
// pod of the same name is not taken for its predecessor.
func Identity() string {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "vrelay"
	}
	var b [4]byte
	_, _ = rand.Read(b[:])
	return host + "-" + hex.EncodeToString(b[:])
}

// NewLeases opens the lease bucket, which streams.Ensure creates, and
// reads its TTL. holder names this replica in every lease it takes
// (see [Identity]).
func NewLeases(ctx context.Context, js jetstream.JetStream, holder string) (*Leases, error) {
	kv, err := js.KeyValue(ctx, streams.LeaseBucket)
	if err != nil {
		return nil, fmt.Errorf("open lease bucket %s: %w", streams.LeaseBucket, err)
	}
	st, err := kv.Status(ctx)
	if err != nil {
		return nil, fmt.Errorf("lease bucket %s: %w", streams.LeaseBucket, err)
	}
	if st.TTL() <= 0 {
		return nil, fmt.Errorf("lease bucket %s has no TTL: a dead holder would keep its leases for ever; recreate it with streams.Ensure", streams.LeaseBucket)
	}
	return &Leases{kv: kv, holder: holder, ttl: st.TTL()}, nil
}

// Holder returns the identity this Leases holds leases under.
func (l *Leases) Holder() string { return l.holder }

// TTL returns the lease's time to live, the bucket's TTL.
func (l *Leases) TTL() time.Duration { return l.ttl }

// Lease is one held lease. It is not safe for concurrent use: its
// holder renews and releases it from one goroutine.
type Lease struct {
	l     *Leases
	key   string
	value []byte
	rev   uint64
	// renewed is when the last successful write was sent: the lease
	// runs out no earlier than renewed + TTL.
	renewed time.Time
}

// TryAcquire takes the lease on key if nobody holds it. It returns the
// lease, or nil and the current holder's value when another replica
// holds it. An error means neither (NATS unreachable).
func (l *Leases) TryAcquire(ctx context.Context, key string) (*Lease, LeaseValue, error) {
	now := time.Now()
	val, _ := json.Marshal(LeaseValue{Holder: l.holder, AcquiredAt: now.UTC()})
	rev, err := l.kv.Create(ctx, key, val)
	if err == nil {
		return &Lease{l: l, key: key, value: val, rev: rev, renewed: now}, LeaseValue{}, nil
	}
	if !errors.Is(err, jetstream.ErrKeyExists) {
		return nil, LeaseValue{}, fmt.Errorf("acquire lease %s: %w", key, err)
	}
	var cur LeaseValue
	e, gerr := l.kv.Get(ctx, key)
	switch {
	case errors.Is(gerr, jetstream.ErrKeyNotFound):
		// It expired in between: the next try takes it.
	case gerr != nil:
		return nil, LeaseValue{}, fmt.Errorf("read lease %s: %w", key, gerr)
	default:
		if jerr := json.Unmarshal(e.Value(), &cur); jerr != nil {
			cur.Holder = "unknown"
		}
		if cur.Holder == l.holder {
			// Ours: an earlier Create or renewal was stored but its
			// answer lost (a leader election). Identities are unique per
			// process and a process asks for a key from one goroutine,
			// so nobody else can be using it: take it back at once
			// rather than wait out the TTL.
			rev, uerr := l.kv.Update(ctx, key, val, e.Revision())
			if uerr == nil {
				return &Lease{l: l, key: key, value: val, rev: rev, renewed: now}, LeaseValue{}, nil
			}
		}
	}
	return nil, cur, nil
}

// Renew extends the lease by one TTL, compare-and-set on the revision it
// last wrote. It fails with [ErrLeaseLost] when the key changed or
// expired since; any other error (a NATS leader election) may pass, and
// the lease still holds until [Lease.Expires].
func (ls *Lease) Renew(ctx context.Context) error {
	now := time.Now()
	rev, err := ls.l.kv.Update(ctx, ls.key, ls.value, ls.rev)
	if isConflict(err) {
		// A renewal whose answer was lost may have been stored: the key
		// then still holds exactly this lease's value (its acquired-at
		// time makes it unique) under a later revision.
		if e, gerr := ls.l.kv.Get(ctx, ls.key); gerr == nil && bytes.Equal(e.Value(), ls.value) && e.Revision() > ls.rev {
			ls.rev = e.Revision()
			rev, err = ls.l.kv.Update(ctx, ls.key, ls.value, ls.rev)
		}
	}
	if err != nil {
		if isConflict(err) || errors.Is(err, jetstream.ErrKeyNotFound) {
			return fmt.Errorf("renew lease %s: %w: %w", ls.key, ErrLeaseLost, err)
		}
		return fmt.Errorf("renew lease %s: %w", ls.key, err)
	}
	ls.rev, ls.renewed = rev, now
	return nil
}

// isConflict reports a compare-and-set that found another revision.
func isConflict(err error) bool {
	var apiErr *jetstream.APIError
	return err != nil && (errors.Is(err, jetstream.ErrKeyExists) ||
		(errors.As(err, &apiErr) && apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence))
}

// Expires returns when the lease runs out unless renewed.
func (ls *Lease) Expires() time.Time { return ls.renewed.Add(ls.l.ttl) }

// Release gives the lease up at once (a Delete compare-and-set on the
// last revision), so another replica need not wait out the TTL. Releasing
// a lease that was lost already changes nothing.
func (ls *Lease) Release(ctx context.Context) error {
	err := ls.l.kv.Delete(ctx, ls.key, jetstream.LastRevision(ls.rev))
	if err != nil {
		return fmt.Errorf("release lease %s: %w", ls.key, err)
	}
	return nil
}

// Key returns the lease's key.
func (ls *Lease) Key() string { return ls.key }

// Hold renews the lease every TTL/3 until ctx is done, and returns
// [ErrLeaseLost] (wrapped) as soon as the lease is lost: a renewal found
// it changed, or renewals failed until it ran out. It returns ctx.Err()
// when ctx is done first.
func (ls *Lease) Hold(ctx context.Context) error {
	every := ls.l.ttl / 3
	t := time.NewTimer(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
		// A renewal may not outlast the lease.
		rctx, cancel := context.WithDeadline(ctx, ls.Expires())
		err := ls.Renew(rctx)
		cancel()
		switch {
		case err == nil:
			t.Reset(every)
		case errors.Is(err, ErrLeaseLost):
			return err
		case ctx.Err() != nil:
			return ctx.Err()
		case !time.Now().Before(ls.Expires()):
			return fmt.Errorf("%w: no renewal succeeded within its TTL: %w", ErrLeaseLost, err)
		default:
			// A NATS leader election or a reconnect: try again soon.
			t.Reset(min(every, max(time.Until(ls.Expires())/4, 50*time.Millisecond)))
		}
	}
}
