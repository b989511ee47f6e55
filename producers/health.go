package producers

import "time"

// DefaultOutageInterval is how often a source that still cannot reach its
// upstream says so again.
const DefaultOutageInterval = time.Minute

// Outage decides when a polling source logs that its upstream (a vCenter,
// a Horizon pod) is unreachable, so an outage shows at the default log
// level without a line per retry: log the first failure, then at most once
// per Every while failures go on, then once when the upstream answers
// again. The zero value is ready, with Every = [DefaultOutageInterval]. It
// is not safe for concurrent use: one source's read loop owns it.
type Outage struct {
	// Every is the least time between two lines of one outage. Zero means
	// DefaultOutageInterval.
	Every time.Duration
	// Now is the clock; nil means time.Now.
	Now func() time.Time

	failing  bool
	since    time.Time // first failure of this outage
	lastLine time.Time
	total    int // failed attempts in this outage
	unlogged int // failed attempts since the last line
}

// Failed records one failed attempt. It reports whether to log it now and,
// if so, how many attempts failed since the last line (this one included)
// and since the outage began.
func (o *Outage) Failed() (log bool, sinceLast, total int) {
	now := o.now()
	o.total++
	o.unlogged++
	every := o.Every
	if every <= 0 {
		every = DefaultOutageInterval
	}
	if o.failing && now.Sub(o.lastLine) < every {
		return false, 0, 0
	}
	if !o.failing {
		o.failing, o.since = true, now
	}
	n := o.unlogged
	o.lastLine, o.unlogged = now, 0
	return true, n, o.total
}

// Restored ends an outage. ok reports whether one was going on; then down
// is how long it lasted and failures how many attempts failed.
func (o *Outage) Restored() (down time.Duration, failures int, ok bool) {
	if !o.failing {
		return 0, 0, false
	}
	down, failures = o.now().Sub(o.since), o.total
	*o = Outage{Every: o.Every, Now: o.Now}
	return down, failures, true
}

func (o *Outage) now() time.Time {
	if o.Now != nil {
		return o.Now()
	}
	return time.Now()
}
