package vcenter

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"

	"github.com/vmware/govmomi/fault"
	"github.com/vmware/govmomi/property"
	"github.com/vmware/govmomi/session"
	"github.com/vmware/govmomi/session/keepalive"
	"github.com/vmware/govmomi/vim25"
	"github.com/vmware/govmomi/vim25/methods"
	"github.com/vmware/govmomi/vim25/mo"
	"github.com/vmware/govmomi/vim25/soap"
	"github.com/vmware/govmomi/vim25/types"
)

const (
	// keepAliveIdle is how long a session may sit without a call before the
	// keep-alive calls CurrentTime. The reader calls vCenter at least every
	// poll interval, so this matters only while a publish is being retried
	// (NATS down), which may outlast vCenter's session timeout (30 minutes
	// by default).
	keepAliveIdle    = 5 * time.Minute
	keepAliveTimeout = 30 * time.Second
	// requestTimeout bounds one SOAP call, on top of the poll wait.
	requestTimeout = 60 * time.Second
	// cleanupTimeout bounds the calls that tidy up a session: destroying
	// the collectors and logging out.
	cleanupTimeout = 5 * time.Second
)

// conn is one logged-in vCenter session with its event history collector
// and the property collector that watches the collector's latest page.
type conn struct {
	vc       *vim25.Client
	sessions *session.Manager
	about    types.AboutInfo
	now      time.Time // vCenter's clock at login

	events   types.ManagedObjectReference // EventHistoryCollector
	props    types.ManagedObjectReference // PropertyCollector
	version  string                       // of the last WaitForUpdatesEx
	maxWait  int32                        // seconds
	pageSize int32
}

// dial connects and logs in. Errors name what failed; they never hold the
// password.
func (s *Source) dial(ctx context.Context) (*conn, error) {
	sc := soap.NewClient(s.sdk, s.cfg.SkipTLSVerify)
	if s.roots != nil {
		sc.DefaultTransport().TLSClientConfig.RootCAs = s.roots
	}
	sc.Client.Transport = drainingTransport{sc.Client.Transport}
	useEventTypes(sc)
	maxWait := int32(max(1, (s.cfg.PollInterval+time.Second-1)/time.Second))
	sc.Timeout = requestTimeout + time.Duration(maxWait)*time.Second
	sc.UserAgent = "vrelay"
	// Speak the vCenter's own API version, as govc does, so that it sends
	// every event type it knows. Without the version file the client's
	// default stays, which vCenter accepts too.
	_ = sc.UseServiceVersion()

	vc, err := vim25.NewClient(ctx, sc)
	if err != nil {
		sc.CloseIdleConnections()
		return nil, fmt.Errorf("connect to %s: %w", s.sdk, err)
	}
	rt := vc.RoundTripper
	vc.RoundTripper = keepalive.NewHandlerSOAP(rt, keepAliveIdle, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), keepAliveTimeout)
		defer cancel()
		_, err := methods.GetCurrentTime(ctx, rt)
		return err
	})
	c := &conn{
		vc:       vc,
		sessions: session.NewManager(vc),
		about:    vc.ServiceContent.About,
		maxWait:  maxWait,
		pageSize: int32(s.cfg.PageSize),
	}
	if err := c.sessions.Login(ctx, url.UserPassword(s.cfg.Username, s.password.Reveal())); err != nil {
		sc.CloseIdleConnections()
		return nil, fmt.Errorf("log in to %s as %s: %w", s.sdk, s.cfg.Username, err)
	}
	now, err := methods.GetCurrentTime(ctx, vc)
	if err != nil {
		c.close()
		return nil, fmt.Errorf("read the time of %s: %w", s.sdk, err)
	}
	c.now = *now
	return c, nil
}

// follow creates the event history collector, beginning at begin, and
// watches its latest page (see watch).
//
// The latest page holds one event: it only has to change when an event
// arrives, and a small page keeps each change notification small. Reading
// uses ReadNextEvents, whose page size is independent of it.
func (c *conn) follow(ctx context.Context, begin time.Time) error {
	res, err := methods.CreateCollectorForEvents(ctx, c.vc, &types.CreateCollectorForEvents{
		This: *c.vc.ServiceContent.EventManager,
		Filter: types.EventFilterSpec{
			Time:     &types.EventFilterSpecByTime{BeginTime: types.NewTime(begin)},
			MaxCount: 1,
		},
	})
	if err != nil {
		return fmt.Errorf("create event collector: %w", err)
	}
	c.events = res.Returnval
	_, err = c.watch(ctx)
	return err
}

// watching reports whether a property collector watches the latest page.
func (c *conn) watching() bool { return c.props.Value != "" }

// watch creates the property collector that reports changes of the event
// collector's latest page, and returns the newest event of that page now
// (nil when it is empty). Later waits report only what changed after it,
// so an event newer than the last one read must be read before waiting.
func (c *conn) watch(ctx context.Context) (types.BaseEvent, error) {
	pc, err := methods.CreatePropertyCollector(ctx, c.vc, &types.CreatePropertyCollector{
		This: c.vc.ServiceContent.PropertyCollector,
	})
	if err != nil {
		return nil, fmt.Errorf("create property collector: %w", err)
	}
	c.props, c.version = pc.Returnval, ""
	_, err = methods.CreateFilter(ctx, c.vc, &types.CreateFilter{
		This: c.props,
		Spec: types.PropertyFilterSpec{
			ObjectSet: []types.ObjectSpec{{Obj: c.events}},
			PropSet:   []types.PropertySpec{{Type: c.events.Type, PathSet: []string{"latestPage"}}},
		},
		PartialUpdates: false,
	})
	if err != nil {
		return nil, fmt.Errorf("watch event collector: %w", err)
	}
	// The first wait returns the current state at once and a version that
	// later waits start from, so no change between it and a read is missed.
	return c.wait(ctx)
}

// unwatch destroys the property collector, while events flow and the
// reader reads without waiting: a property collector keeps the changes
// for its next wait, and the simulator keeps every one of them (a whole
// event each), which a wait would then return and decode for nothing.
func (c *conn) unwatch(ctx context.Context) error {
	if !c.watching() {
		return nil
	}
	_, err := methods.DestroyPropertyCollector(ctx, c.vc, &types.DestroyPropertyCollector{This: c.props})
	c.props, c.version = types.ManagedObjectReference{}, ""
	if err != nil {
		return fmt.Errorf("destroy property collector: %w", err)
	}
	return nil
}

// read returns the next page of events, oldest first.
func (c *conn) read(ctx context.Context) ([]types.BaseEvent, error) {
	return c.readFrom(ctx, c.events)
}

func (c *conn) readFrom(ctx context.Context, coll types.ManagedObjectReference) ([]types.BaseEvent, error) {
	res, err := methods.ReadNextEvents(ctx, c.vc, &types.ReadNextEvents{This: coll, MaxCount: c.pageSize})
	if err != nil {
		return nil, fmt.Errorf("read events: %w", err)
	}
	return res.Returnval, nil
}

// latest returns vCenter's newest event: EventManager.latestEvent, or,
// where that is not set (the simulator), the one event QueryEvents returns
// for a page of one. nil means vCenter has none.
func (c *conn) latest(ctx context.Context) (*types.Event, error) {
	em := *c.vc.ServiceContent.EventManager
	var m mo.EventManager
	if err := property.DefaultCollector(c.vc).RetrieveOne(ctx, em, []string{"latestEvent"}, &m); err != nil {
		return nil, fmt.Errorf("read the latest event: %w", err)
	}
	if m.LatestEvent != nil && m.LatestEvent.GetEvent() != nil {
		return m.LatestEvent.GetEvent(), nil
	}
	res, err := methods.QueryEvents(ctx, c.vc, &types.QueryEvents{This: em, Filter: types.EventFilterSpec{MaxCount: 1}})
	if err != nil {
		return nil, fmt.Errorf("query the latest event: %w", err)
	}
	var newest *types.Event
	for _, be := range res.Returnval {
		if be == nil || be.GetEvent() == nil {
			continue
		}
		if e := be.GetEvent(); newest == nil || keyAfter(e.Key, newest.Key) {
			newest = e
		}
	}
	return newest, nil
}

// sweepCollector creates a collector of the events created from begin to
// end, both included.
func (c *conn) sweepCollector(ctx context.Context, begin, end time.Time) (types.ManagedObjectReference, error) {
	res, err := methods.CreateCollectorForEvents(ctx, c.vc, &types.CreateCollectorForEvents{
		This: *c.vc.ServiceContent.EventManager,
		Filter: types.EventFilterSpec{
			Time: &types.EventFilterSpecByTime{BeginTime: types.NewTime(begin), EndTime: types.NewTime(end)},
		},
	})
	if err != nil {
		return types.ManagedObjectReference{}, fmt.Errorf("create sweep collector: %w", err)
	}
	return res.Returnval, nil
}

// destroy destroys a collector, ignoring errors: the session may be gone.
func (c *conn) destroy(coll types.ManagedObjectReference) {
	ctx, cancel := context.WithTimeout(context.Background(), cleanupTimeout)
	defer cancel()
	_, _ = methods.DestroyCollector(ctx, c.vc, &types.DestroyCollector{This: coll})
}

// refollow replaces the event collector and its property collector with
// new ones beginning at begin.
func (c *conn) refollow(ctx context.Context, begin time.Time) error {
	cctx, cancel := context.WithTimeout(ctx, cleanupTimeout)
	if c.props.Value != "" {
		_, _ = methods.DestroyPropertyCollector(cctx, c.vc, &types.DestroyPropertyCollector{This: c.props})
	}
	if c.events.Value != "" {
		_, _ = methods.DestroyCollector(cctx, c.vc, &types.DestroyCollector{This: c.events})
	}
	cancel()
	c.props, c.events, c.version = types.ManagedObjectReference{}, types.ManagedObjectReference{}, ""
	return c.follow(ctx, begin)
}

// wait blocks until the collector's latest page changed since the last
// wait, or for the poll interval. It returns the newest event the change
// reported, or nil when the wait timed out.
func (c *conn) wait(ctx context.Context) (types.BaseEvent, error) {
	res, err := methods.WaitForUpdatesEx(ctx, c.vc, &types.WaitForUpdatesEx{
		This:    c.props,
		Version: c.version,
		Options: &types.WaitOptions{MaxWaitSeconds: &c.maxWait},
	})
	if err != nil {
		return nil, fmt.Errorf("wait for events: %w", err)
	}
	set := res.Returnval
	if set == nil {
		return nil, nil
	}
	c.version = set.Version
	var newest types.BaseEvent
	for _, fs := range set.FilterSet {
		for _, ou := range fs.ObjectSet {
			for _, ch := range ou.ChangeSet {
				page, ok := ch.Val.(types.ArrayOfEvent)
				if !ok {
					continue
				}
				for _, be := range page.Event {
					if be == nil || be.GetEvent() == nil {
						continue
					}
					if newest == nil || keyAfter(be.GetEvent().Key, newest.GetEvent().Key) {
						newest = be
					}
				}
			}
		}
	}
	return newest, nil
}

// close tidies up on vCenter with a fresh context: it ends a pending wait,
// destroys the collectors (vCenter allows 32 event collectors per session)
// and logs out, which also stops the keep-alive. Errors are ignored: the
// session may be gone already.
func (c *conn) close() {
	ctx, cancel := context.WithTimeout(context.Background(), cleanupTimeout)
	defer cancel()
	if c.props.Value != "" {
		_, _ = methods.CancelWaitForUpdates(ctx, c.vc, &types.CancelWaitForUpdates{This: c.props})
		_, _ = methods.DestroyPropertyCollector(ctx, c.vc, &types.DestroyPropertyCollector{This: c.props})
	}
	if c.events.Value != "" {
		_, _ = methods.DestroyCollector(ctx, c.vc, &types.DestroyCollector{This: c.events})
	}
	_ = c.sessions.Logout(ctx)
	c.vc.CloseIdleConnections()
}

// drainingTransport reads what govmomi leaves of a response body before
// the body is closed. govmomi stops reading at the end of the SOAP
// envelope, and Go does not reuse a connection whose body was not read to
// the end: without this, most large pages cost a new TLS handshake.
type drainingTransport struct{ http.RoundTripper }

func (t drainingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	res, err := t.RoundTripper.RoundTrip(req)
	if err == nil && res.Body != nil {
		res.Body = drainOnClose{res.Body}
	}
	return res, err
}

type drainOnClose struct{ io.ReadCloser }

func (b drainOnClose) Close() error {
	_, _ = io.CopyN(io.Discard, b.ReadCloser, 64<<10)
	return b.ReadCloser.Close()
}

// Failure kinds, for the log message that tells an operator what to fix.
func isBadLogin(err error) bool { return fault.Is(err, &types.InvalidLogin{}) }

func isSessionLost(err error) bool { return fault.Is(err, &types.NotAuthenticated{}) }

func isUntrusted(err error) bool { return soap.IsCertificateUntrusted(err) }
