package horizon_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vrelay/vrelay/producers"
	"github.com/vrelay/vrelay/producers/horizon"
	"github.com/vrelay/vrelay/producers/horizon/horizontest"
	"github.com/vrelay/vrelay/streams"
)

func TestEvents(t *testing.T) {
	tests := []struct {
		name   string
		format horizon.Format
		prefix string
	}{
		{"tanzu", horizon.FormatTanzu, "com.vmware.horizon."},
		{"router", horizon.FormatRouter, "com.vmware.event.router/horizon."},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			cfg := e.config(t)
			cfg.Format = tt.format
			src := e.source(t, cfg)
			cancel, done := running(t, src, e.publisher(src), e.logs)

			evs := e.hz.Add(
				horizontest.Event{Type: "VLSI_USERLOGGEDIN_REST", Severity: "AUDIT_SUCCESS", Module: "Vlsi",
					MachineDNSName: "horizon-01.corp.local", UserID: "S-1-5-21-1", Message: `User corp\alice has logged in`},
				horizontest.Event{Type: "BROKER_DESKTOP_POOL_UPDATED", Severity: "INFO", Module: "Broker", DesktopPoolName: "pool-a"},
			)
			e.awaitAll(t, evs)
			e.checkExactlyOnce(t, evs)
			byID := map[string]horizontest.Event{}
			for _, ev := range evs {
				byID[strconv.FormatInt(ev.ID, 10)] = ev
			}
			for _, m := range e.w.all(t) {
				fake := byID[m.ev.ID()]
				if want := "vmware.horizon." + sourceName + "." + fake.Type; m.subject != want {
					t.Errorf("got subject %q, want %q", m.subject, want)
				}
				if want := tt.prefix + strings.ToLower(fake.Type) + ".v0"; m.ev.Type() != want {
					t.Errorf("got type %q, want %q", m.ev.Type(), want)
				}
				if m.ev.Source() != e.hz.URL() {
					t.Errorf("got source %q, want %q", m.ev.Source(), e.hz.URL())
				}
				if want := e.msgID(fake); m.msgID != want {
					t.Errorf("got Nats-Msg-Id %q, want %q", m.msgID, want)
				}
				// Milliseconds kept, not truncated to seconds.
				if got := m.ev.Time(); got.UnixMilli() != fake.Time || !got.Equal(time.UnixMilli(fake.Time)) {
					t.Errorf("got time %s, want %s", got, time.UnixMilli(fake.Time).UTC())
				}
				if m.ev.Subject() != "" || len(m.ev.Extensions()) != 0 {
					t.Errorf("got subject %q and extensions %v, want neither", m.ev.Subject(), m.ev.Extensions())
				}
				// Data: the record as Horizon returned it.
				want, _ := json.Marshal(fake)
				if m.ev.DataContentType() != "application/json" || string(m.ev.Data()) != string(want) {
					t.Errorf("got data %s (%s), want %s", m.ev.Data(), m.ev.DataContentType(), want)
				}
			}

			var cp map[string]any
			last := evs[len(evs)-1]
			eventually(t, "the checkpoint to cover the last event", func() bool {
				var ok bool
				cp, ok = e.checkpoint(t)
				return ok && int64(cp["lastEventTime"].(float64)) >= last.Time
			})
			for _, f := range []string{"horizon", "host", "lastEventTime", "lastEventTimestamp", "lastEventIds", "lastEventType", "createdTimestamp"} {
				if _, ok := cp[f]; !ok {
					t.Errorf("checkpoint %v has no field %s", cp, f)
				}
			}
			if cp["host"] != e.hz.Host() || cp["horizon"] != e.hz.URL() {
				t.Errorf("got checkpoint %v, want host %s and horizon %s", cp, e.hz.Host(), e.hz.URL())
			}
			if err := stop(t, cancel, done); !errors.Is(err, context.Canceled) {
				t.Errorf("got Run() error %v, want context.Canceled", err)
			}
			if c := e.hz.Counts(); c.Logins != 1 || c.Logouts != 1 {
				t.Errorf("got %d logins and %d logouts, want 1 each: the token is reused until shutdown", c.Logins, c.Logouts)
			}
		})
	}
}

// TestRestartMidStream stops a source in the middle of a batch, with part
// of it stored and the checkpoint behind, and starts another: the stream
// ends up with every event once.
func TestRestartMidStream(t *testing.T) {
	e := newEnv(t)
	cfg := e.config(t)
	cfg.PageSize = 50
	evs := e.hz.Backlog(1500, 3, "VLSI_USERLOGGEDIN")
	e.putCheckpoint(t, evs[0].Time-1)

	// Ten batches go through; the eleventh stores half and hangs.
	src := e.source(t, cfg)
	cancel, done := start(t, src, &stalling{Publisher: e.publisher(src), after: 10})
	eventually(t, "the first run to store half of its eleventh batch", func() bool { return len(e.w.all(t)) >= 525 })
	if err := stop(t, cancel, done); !errors.Is(err, context.Canceled) {
		t.Fatalf("first Run() = %v, want context.Canceled", err)
	}
	first := e.w.all(t)
	if len(first) != 525 {
		t.Fatalf("the first run stored %d events, want 525", len(first))
	}
	cp, _ := e.checkpoint(t)
	if got, want := int64(cp["lastEventTime"].(float64)), evs[499].Time; got != want {
		t.Errorf("checkpoint at %d, want %d: the last event of the tenth batch", got, want)
	}

	// More events while no source runs.
	evs = append(evs, e.hz.AddN(300, 2, "VLSI_USERLOGGEDOUT")...)
	src2 := e.source(t, cfg)
	pub := &counting{Publisher: e.publisher(src2)}
	running(t, src2, pub, e.logs)
	e.awaitAll(t, evs)
	e.checkExactlyOnce(t, evs)
	if e.logs.count("resuming after the last event of this source in the stream") != 1 {
		t.Error("the restarted source did not resume after the stream's last event")
	}

	// The second run handed on again at most the other events of the
	// millisecond it resumed at.
	handed := pub.handed()
	republished := 0
	for _, m := range first {
		republished += handed[m.msgID]
	}
	if republished > 2 {
		t.Errorf("the second run handed %d events of the first run to the publisher again, want at most the other 2 of one millisecond", republished)
	}
}

// stalling publishes through a real publisher until after calls; the next
// call stores half its records and then hangs until ctx is done, as a
// process does that dies in the middle of a batch.
type stalling struct {
	producers.Publisher
	after int
	mu    sync.Mutex
	calls int
}

func (p *stalling) Publish(ctx context.Context, recs ...producers.Record) error {
	p.mu.Lock()
	p.calls++
	n := p.calls
	p.mu.Unlock()
	if n <= p.after {
		return p.Publisher.Publish(ctx, recs...)
	}
	if n == p.after+1 {
		if err := p.Publisher.Publish(ctx, recs[:len(recs)/2]...); err != nil {
			return err
		}
	}
	<-ctx.Done()
	return ctx.Err()
}

// TestThreePages reads 2,500 events in one read: three pages of 1,000,
// published in three batches.
func TestThreePages(t *testing.T) {
	e := newEnv(t)
	evs := e.hz.Backlog(2500, 4, "BROKER_USERLOGGEDIN")
	e.putCheckpoint(t, evs[0].Time-1)
	src := e.source(t, e.config(t))
	pub := &counting{Publisher: e.publisher(src)}
	running(t, src, pub, e.logs)
	e.awaitAll(t, evs)
	e.checkExactlyOnce(t, evs)
	if c := e.hz.Counts(); c.MaxPage != 3 {
		t.Errorf("got pages up to %d, want 3 of 1000", c.MaxPage)
	}
	if n := pub.callCount(); n != 3 {
		t.Errorf("got %d Publish calls, want 3 batches of at most 1000", n)
	}
}

// TestTokenExpiry expires the access token, then the refresh token, while
// a backlog is read page by page.
func TestTokenExpiry(t *testing.T) {
	tests := []struct {
		name       string
		access     time.Duration
		refresh    time.Duration
		revoke     func(*horizontest.Server)
		check      func(t *testing.T, c horizontest.Counts)
		pageDelays int
	}{
		{
			name: "access token lifetime", access: 100 * time.Millisecond, pageDelays: 6,
			check: func(t *testing.T, c horizontest.Counts) {
				if c.Logins != 1 || c.Refreshes < 2 {
					t.Errorf("got %d logins and %d refreshes, want 1 login and refreshes as tokens expire", c.Logins, c.Refreshes)
				}
			},
		},
		{
			name: "access token revoked", revoke: (*horizontest.Server).ExpireAccessTokens,
			check: func(t *testing.T, c horizontest.Counts) {
				if c.Logins != 1 || c.Unauthorized < 1 || c.Refreshes < 1 {
					t.Errorf("got %+v, want a 401 answered by a refresh, and 1 login", c)
				}
			},
		},
		{
			name: "refresh token lifetime", access: 100 * time.Millisecond, refresh: 250 * time.Millisecond, pageDelays: 6,
			check: func(t *testing.T, c horizontest.Counts) {
				if c.Logins < 2 || c.FailedRefreshes < 1 {
					t.Errorf("got %+v, want a refused refresh followed by a new login", c)
				}
			},
		},
		{
			name: "refresh token revoked", revoke: (*horizontest.Server).ExpireRefreshTokens,
			check: func(t *testing.T, c horizontest.Counts) {
				if c.Logins != 2 || c.FailedRefreshes != 1 {
					t.Errorf("got %+v, want 1 refused refresh and a second login", c)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, horizontest.WithTokenTTLs(tt.access, tt.refresh))
			cfg := e.config(t)
			cfg.PageSize = 250
			src := e.source(t, cfg)
			running(t, src, e.publisher(src), e.logs)
			evs := e.hz.AddN(100, 2, "VLSI_USERLOGGEDIN")
			e.awaitAll(t, evs)
			if tt.revoke != nil {
				tt.revoke(e.hz)
			}
			// Each page outlives an access token.
			e.hz.SlowNext(tt.pageDelays, 150*time.Millisecond)
			more := e.hz.AddN(1400, 2, "VLSI_USERLOGGEDOUT")
			evs = append(evs, more...)
			e.awaitAll(t, evs)
			e.checkExactlyOnce(t, evs)
			t.Logf("counts: %+v", e.hz.Counts())
			tt.check(t, e.hz.Counts())
		})
	}
}

// TestSameMillisecond: events sharing a millisecond are published once,
// however often the read starts at that millisecond again, and those that
// arrive later at it are published too.
func TestSameMillisecond(t *testing.T) {
	e := newEnv(t)
	src := e.source(t, e.config(t))
	pub := &counting{Publisher: e.publisher(src)}
	cancel, done := running(t, src, pub, e.logs)

	evs := e.hz.AddN(5, 5, "BROKER_DAILY_MAX_CCU_USERS")
	ms := evs[0].Time
	e.awaitAll(t, evs)
	// No newer event arrives; the source reads the same millisecond again
	// and again.
	reads := e.hz.Counts().AuditRequests
	eventually(t, "ten more reads", func() bool { return e.hz.Counts().AuditRequests >= reads+10 })
	// Two more at the same millisecond, as a second Connection Server
	// might log them.
	late := e.hz.Add(horizontest.Event{Time: ms, Type: "BROKER_DAILY_MAX_NU_USERS"}, horizontest.Event{Time: ms, Type: "BROKER_DAILY_MAX_APP_USERS"})
	evs = append(evs, late...)
	e.awaitAll(t, evs)
	reads = e.hz.Counts().AuditRequests
	eventually(t, "ten more reads", func() bool { return e.hz.Counts().AuditRequests >= reads+10 })
	if err := stop(t, cancel, done); !errors.Is(err, context.Canceled) {
		t.Fatalf("Run() = %v, want context.Canceled", err)
	}
	for _, ev := range evs {
		if n := pub.handed()[e.msgID(ev)]; n != 1 {
			t.Errorf("event %d was handed to the publisher %d times, want 1", ev.ID, n)
		}
	}
	cp, ok := e.checkpoint(t)
	if !ok {
		t.Fatal("no checkpoint")
	}
	var got []int64
	for _, v := range cp["lastEventIds"].([]any) {
		got = append(got, int64(v.(float64)))
	}
	var want []int64
	for _, ev := range evs {
		want = append(want, ev.ID)
	}
	slices.Sort(want)
	if int64(cp["lastEventTime"].(float64)) != ms || !slices.Equal(got, want) {
		t.Errorf("got checkpoint %v, want lastEventTime %d and lastEventIds %v", cp, ms, want)
	}

	// After a restart, still nothing new: nothing is handed on.
	src2 := e.source(t, e.config(t))
	pub2 := &counting{Publisher: e.publisher(src2)}
	running(t, src2, pub2, e.logs)
	reads = e.hz.Counts().AuditRequests
	eventually(t, "ten reads of the restarted source", func() bool { return e.hz.Counts().AuditRequests >= reads+10 })
	if h := pub2.handed(); len(h) != 0 {
		t.Errorf("the restarted source handed %v to the publisher, want nothing", h)
	}
	e.checkExactlyOnce(t, evs)
}

// TestFailureBursts injects 409s, 500s and 429s while a backlog is read.
func TestFailureBursts(t *testing.T) {
	e := newEnv(t)
	cfg := e.config(t)
	cfg.PageSize = 100
	evs := e.hz.Backlog(2500, 3, "VLSI_USERLOGGEDIN")
	e.putCheckpoint(t, evs[0].Time-1)
	// Log every failed attempt, to count them.
	src := e.source(t, cfg, horizon.WithOutageInterval(time.Nanosecond))
	running(t, src, e.publisher(src), e.logs)
	// Mid-read: the first pages were read.
	eventually(t, "the read to begin", func() bool { return e.hz.Counts().AuditRequests >= 3 })
	e.hz.FailNext(3, http.StatusConflict, nil)
	e.hz.FailNext(3, http.StatusInternalServerError, nil)
	e.hz.Throttle(2, 1)
	e.hz.FailNext(2, http.StatusServiceUnavailable, nil)
	more := e.hz.AddN(200, 2, "VLSI_USERLOGGEDOUT")
	evs = append(evs, more...)
	e.awaitAll(t, evs)
	e.checkExactlyOnce(t, evs)

	if c := e.hz.Counts(); c.Injected != 10 || c.Logins != 1 {
		t.Errorf("got %+v, want the 10 failures answered and 1 login: tokens survive failures", c)
	}
	throttled := e.logs.matching("horizon is throttling")
	if len(throttled) != 2 {
		t.Fatalf("got %d throttling logs, want 2", len(throttled))
	}
	for _, r := range throttled {
		if r.attrs["retry_in"] != "1s" {
			t.Errorf("throttled: got %v, want retry_in=1s as X-Rate-Limit-Retry-After-Seconds asks", r)
		}
	}
	if n := e.logs.count("is an event database configured?"); n != 3 {
		t.Errorf("got %d 409 logs, want 3", n)
	}
	if n := e.logs.count("horizon server error"); n != 5 {
		t.Errorf("got %d server error logs, want 5", n)
	}
	// The recovery is logged once the poll that succeeded returns, which
	// may be after its events were stored.
	eventually(t, "a log of the recovery", func() bool { return e.logs.count("horizon answers again") >= 1 })
}

// TestWrongPassword: a rejected login is logged clearly and retried with a
// growing pause, without ever logging the password; once the password is
// right, events flow.
func TestWrongPassword(t *testing.T) {
	e := newEnv(t)
	const wrong = "not-the-password-42"
	cfg := configFor(t, e.hz, wrong)
	src := e.source(t, cfg, horizon.WithOutageInterval(time.Nanosecond)) // a line per attempt
	start(t, src, e.publisher(src))
	eventually(t, "three rejected logins", func() bool { return e.logs.count("horizon rejected the login") >= 3 })
	recs := e.logs.matching("horizon rejected the login")
	for i, want := range []string{"10ms", "20ms", "40ms"} {
		r := recs[i]
		if r.level.String() != "ERROR" || r.attrs["retry_in"] != want || r.attrs["attempt"] != strconv.Itoa(i+1) ||
			r.attrs["domain"] != horizontest.Domain || r.attrs["username"] != horizontest.Username ||
			!strings.Contains(r.attrs["err"], "HTTP 401") {
			t.Errorf("rejection %d: got %v, want an error with attempt %d, retry_in %s, the domain, the user and HTTP 401", i+1, r, i+1, want)
		}
	}
	if c := e.hz.Counts(); c.FailedLogins < 3 || c.AuditRequests != 0 {
		t.Errorf("got %+v, want failed logins and no reads", c)
	}

	e.hz.SetPassword(wrong)
	eventually(t, "the source to read", func() bool { return e.logs.count("reading horizon events") > 0 })
	evs := e.hz.AddN(3, 1, "VLSI_USERLOGGEDIN")
	e.awaitAll(t, evs)
	if e.logs.contains(wrong) {
		t.Error("the password appears in the logs")
	}
}

func TestCorruptCheckpoint(t *testing.T) {
	e := newEnv(t)
	if _, err := e.kv.Put(t.Context(), cpKey, []byte("garbage")); err != nil {
		t.Fatal(err)
	}
	src := e.source(t, e.config(t))
	_, done := start(t, src, e.publisher(src))
	var err error
	select {
	case err = <-done:
	case <-time.After(waitTimeout):
		t.Fatal("Run did not return")
	}
	if !errors.Is(err, horizon.ErrCorruptCheckpoint) {
		t.Fatalf("got %v, want ErrCorruptCheckpoint", err)
	}
	for _, want := range []string{cpKey, "vrelay checkpoint delete", "nats kv del " + streams.CheckpointBucket + " " + cpKey} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %q", err, want)
		}
	}
	if c := e.hz.Counts(); c.Logins != 0 {
		t.Errorf("got %d logins, want none before the checkpoint is read", c.Logins)
	}
}

func TestMaxAge(t *testing.T) {
	t.Run("older checkpoint skips", func(t *testing.T) {
		e := newEnv(t)
		now := time.Now().UnixMilli()
		old := e.hz.Add(horizontest.Event{Time: now - 2*time.Hour.Milliseconds(), Type: "OLD"})
		recent := e.hz.Add(horizontest.Event{Time: now - time.Minute.Milliseconds(), Type: "RECENT"})
		e.putCheckpoint(t, old[0].Time-1)
		src := e.source(t, e.config(t))
		running(t, src, e.publisher(src), e.logs)
		e.awaitAll(t, recent)
		e.checkExactlyOnce(t, recent)
		w := e.logs.matching("checkpoint is older than maxAge")
		if len(w) != 1 || w[0].attrs["max_age"] != "5m0s" || w[0].attrs["skipped_from"] == "" || w[0].attrs["skipped"] == "" {
			t.Errorf("got %v, want one warning naming the span skipped", w)
		}
	})
	t.Run("0s does not replay", func(t *testing.T) {
		e := newEnv(t)
		missed := e.hz.AddN(3, 1, "MISSED")
		e.putCheckpoint(t, missed[0].Time-1)
		cfg := e.config(t)
		zero := time.Duration(0)
		cfg.MaxAge = &zero
		src := e.source(t, cfg)
		running(t, src, e.publisher(src), e.logs)
		if e.logs.count("maxAge is 0s: not replaying") != 1 {
			t.Error("no log that maxAge 0s does not replay")
		}
		fresh := e.hz.AddN(2, 1, "FRESH")
		e.awaitAll(t, fresh)
		e.checkExactlyOnce(t, fresh)
	})
}

// TestStreamWinsOverCheckpoint: on start, the stream's last event counts,
// whether the checkpoint is behind it (a crash) or ahead (stream writes
// lost).
func TestStreamWinsOverCheckpoint(t *testing.T) {
	e := newEnv(t)
	src := e.source(t, e.config(t))
	cancel, done := running(t, src, e.publisher(src), e.logs)
	first := e.hz.AddN(20, 2, "A")
	e.awaitAll(t, first)
	if err := stop(t, cancel, done); !errors.Is(err, context.Canceled) {
		t.Fatal(err)
	}

	// Behind: as if the process died before saving.
	e.putCheckpoint(t, first[0].Time)
	src2 := e.source(t, e.config(t))
	pub := &counting{Publisher: e.publisher(src2)}
	cancel, done = running(t, src2, pub, e.logs)
	if e.logs.count("resuming after the last event of this source in the stream") != 1 {
		t.Error("the stream did not win over an older checkpoint")
	}
	second := e.hz.AddN(4, 2, "B")
	e.awaitAll(t, second)
	if n := len(pub.handed()); n > len(second)+2 {
		t.Errorf("handed %d events to the publisher, want the %d new ones and at most the other of the last millisecond", n, len(second))
	}
	if err := stop(t, cancel, done); !errors.Is(err, context.Canceled) {
		t.Fatal(err)
	}

	// Ahead: events in between were lost from the stream (simulated by
	// events the stream never saw, written with older times).
	lost := e.hz.Add(horizontest.Event{Time: second[len(second)-1].Time + 1, Type: "LOST"})
	e.putCheckpoint(t, lost[0].Time+5)
	src3 := e.source(t, e.config(t))
	running(t, src3, e.publisher(src3), e.logs)
	if e.logs.count("checkpoint is ahead of the stream") != 1 {
		t.Error("no warning that the checkpoint is ahead of the stream")
	}
	all := append(append(first, second...), lost...)
	e.awaitAll(t, all)
	e.checkExactlyOnce(t, all)
}

func TestPlainHTTP(t *testing.T) {
	e := newEnv(t, horizontest.WithPlainHTTP())
	src := e.source(t, e.config(t))
	running(t, src, e.publisher(src), e.logs)
	if w := e.logs.matching("plain http"); len(w) != 1 || w[0].level.String() != "WARN" {
		t.Errorf("got %v, want one warning about plain http", w)
	}
	evs := e.hz.AddN(2, 1, "X")
	e.awaitAll(t, evs)
}

func TestUntrustedCertificate(t *testing.T) {
	e := newEnv(t)
	cfg := e.config(t)
	cfg.CAFile = ""
	src := e.source(t, cfg, horizon.WithOutageInterval(time.Nanosecond)) // a line per attempt
	start(t, src, e.publisher(src))
	eventually(t, "a certificate error", func() bool { return e.logs.count("horizon certificate is not trusted") >= 2 })
	if c := e.hz.Counts(); c.Logins != 0 {
		t.Errorf("got %d logins through an untrusted connection, want 0", c.Logins)
	}

	// skipTLSVerify reads anyway.
	e2 := newEnv(t)
	cfg = e2.config(t)
	cfg.CAFile, cfg.SkipTLSVerify = "", true
	src = e2.source(t, cfg)
	running(t, src, e2.publisher(src), e2.logs)
	evs := e2.hz.AddN(1, 1, "X")
	e2.awaitAll(t, evs)
}

// TestPublisherFailureKeepsTokens: while JetStream refuses events, the
// source retries them; meanwhile nothing is read and no login is repeated.
func TestPublisherFailure(t *testing.T) {
	e := newEnv(t)
	src := e.source(t, e.config(t))
	pub := &failing{Publisher: e.publisher(src), fails: 4}
	running(t, src, pub, e.logs)
	evs := e.hz.AddN(10, 2, "X")
	e.awaitAll(t, evs)
	e.checkExactlyOnce(t, evs)
	if n := e.logs.count("cannot publish horizon events"); n != 4 {
		t.Errorf("got %d publish retries logged, want 4", n)
	}
	if c := e.hz.Counts(); c.Logins != 1 {
		t.Errorf("got %d logins, want 1", c.Logins)
	}
}

type failing struct {
	producers.Publisher
	fails int
}

func (p *failing) Publish(ctx context.Context, recs ...producers.Record) error {
	if p.fails > 0 {
		p.fails--
		return fmt.Errorf("jetstream unavailable (injected)")
	}
	return p.Publisher.Publish(ctx, recs...)
}

func TestRunTwice(t *testing.T) {
	e := newEnv(t)
	src := e.source(t, e.config(t))
	running(t, src, e.publisher(src), e.logs)
	if err := src.Run(t.Context(), e.publisher(src)); err == nil || errors.Is(err, context.Canceled) {
		t.Errorf("second concurrent Run() = %v, want an error", err)
	}
}
