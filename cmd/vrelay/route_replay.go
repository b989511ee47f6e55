package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/vrelay/vrelay/consumers"
	"github.com/vrelay/vrelay/filters"
	"github.com/vrelay/vrelay/internal/config"
)

const routeReplayUsage = `Usage:
  vrelay route replay ROUTE -since WHEN [-until WHEN] [-filter EXPR] [-config FILE | -server URL]

Delivers the events stored from -since to -until (default: now) again, to
ROUTE only: through the route's subjects, its filter and then -filter (both
must match), to its sink, with its retries; an event that fails for good is
dead-lettered to vrelay.dlq.ROUTE as the route would. WHEN is an RFC 3339
time (2026-11-27T08:00:00Z) or a duration ago (90m, 2h, 7d).

It reads through an ephemeral consumer that it deletes when done: nothing is
copied into the event stream, and the route's own position does not move.
It works while vrelay runs (through its NATS) and while it is stopped (on
its data directory). Events stored after the replay starts are not part of
it.
`

// cmdRouteReplay is `vrelay route replay`.
func cmdRouteReplay(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("route replay", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, routeReplayUsage) }
	configPath, server := addConnFlags(fs)
	sinceFlag := fs.String("since", "", "replay events stored from this `time` on: RFC 3339, or a duration ago such as 2h (required)")
	untilFlag := fs.String("until", "", "replay events stored up to this `time`: RFC 3339, or a duration ago (default: now)")
	extra := fs.String("filter", "", "an expr `expression` events must match too, besides the route's filter")
	level := fs.String("log-level", "error", "log `level` of the delivery: debug, info, warn, error")
	// The route may come before the flags or after them.
	rest, err := parseArgs(fs, args)
	if err != nil {
		return 2
	}
	if len(rest) != 1 {
		fmt.Fprint(stderr, routeReplayUsage)
		return 2
	}
	route := rest[0]
	if *sinceFlag == "" {
		fmt.Fprintln(stderr, "vrelay route replay: -since is required")
		return 2
	}
	now := time.Now()
	since, err := parseWhen(*sinceFlag, now)
	if err != nil {
		fmt.Fprintf(stderr, "vrelay route replay: -since: %v\n", err)
		return 2
	}
	var until time.Time
	if *untilFlag != "" {
		if until, err = parseWhen(*untilFlag, now); err != nil {
			fmt.Fprintf(stderr, "vrelay route replay: -until: %v\n", err)
			return 2
		}
		if !until.After(since) {
			fmt.Fprintln(stderr, "vrelay route replay: -until must come after -since")
			return 2
		}
	}
	log, err := newLogger(stderr, *level, false)
	if err != nil {
		fmt.Fprintln(stderr, "vrelay route replay:", err)
		return 2
	}

	cfg, err := config.Load(*configPath)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	i := slices.IndexFunc(cfg.Routes, func(r config.Route) bool { return r.Name == route })
	if i < 0 {
		var names []string
		for _, r := range cfg.Routes {
			names = append(names, r.Name)
		}
		fmt.Fprintf(stderr, "vrelay route replay: %s has no route %q (routes: %s)\n", *configPath, route, strings.Join(names, ", "))
		return 2
	}
	r := cfg.Routes[i]
	filter, err := replayFilter(r.Filter, *extra)
	if err != nil {
		fmt.Fprintf(stderr, "vrelay route replay: %v\n", err)
		return 2
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	conn, err := connectCLI(*configPath, *server)
	if err != nil {
		fmt.Fprintln(stderr, "vrelay route replay:", err)
		return 1
	}
	defer conn.close()
	sink, err := r.Sink.New(config.SinkDeps{Log: log.With("route", r.Name), NATS: conn.js.Conn(),
		SubjectRoot: cfg.Streams.SubjectRoot})
	if err != nil {
		fmt.Fprintf(stderr, "vrelay route replay: routes[%d].sink.%s: %v\n", i, r.Sink.Type, err)
		return 1
	}
	if c, ok := sink.(io.Closer); ok {
		defer c.Close()
	}
	transform, err := r.CompileTransform()
	if err != nil {
		fmt.Fprintln(stderr, "vrelay route replay:", err)
		return 1
	}
	prog := newReplayProgress(stderr)
	d, err := consumers.NewDispatcher(conn.js, consumers.Route{
		Name:      r.Name,
		Subjects:  r.Subjects,
		Filter:    filter,
		Transform: transform,
		Delivery:  r.Delivery,
	}, sink, consumers.WithLogger(log), consumers.WithSubjectRoot(cfg.Streams.SubjectRoot),
		consumers.WithEphemeral(consumers.ReplayWindow{Since: since, Until: until, Progress: prog.update}))
	if err != nil {
		fmt.Fprintln(stderr, "vrelay route replay:", err)
		return 1
	}
	stats, err := d.Replay(ctx)
	prog.done()
	to := "now"
	if !until.IsZero() {
		to = until.Format(time.RFC3339)
	}
	fmt.Fprintf(stdout, "replayed %d events of route %s stored from %s to %s: %d delivered, %d filtered out, %d dead-lettered\n",
		stats.Settled(), r.Name, since.Format(time.RFC3339), to, stats.Delivered, stats.Filtered, stats.DeadLettered)
	if stats.DeadLettered > 0 {
		fmt.Fprintf(stdout, "see them with: vrelay dlq list -route %s\n", r.Name)
	}
	if err != nil {
		if errors.Is(err, context.Canceled) {
			fmt.Fprintf(stderr, "vrelay route replay: interrupted with %d of %d events settled; the rest was not replayed\n",
				stats.Settled(), stats.Total)
			return 1
		}
		fmt.Fprintln(stderr, "vrelay route replay:", err)
		return 1
	}
	return 0
}

// parseWhen reads an RFC 3339 time or a duration before now.
func parseWhen(s string, now time.Time) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	d, err := consumers.ParseAgo(s)
	if err != nil {
		return time.Time{}, fmt.Errorf("%q is neither an RFC 3339 time (2026-11-27T08:00:00Z) nor a duration ago (90m, 2h, 7d)", s)
	}
	return now.Add(-d), nil
}

// replayFilter is the route's filter and then extra: an event is replayed
// when both match. Each compiles on its own first, for errors that point
// into the expression as written.
func replayFilter(route, extra string) (*filters.Filter, error) {
	route, extra = strings.TrimSpace(route), strings.TrimSpace(extra)
	if extra == "" {
		if route == "" {
			return nil, nil
		}
		return filters.Compile(route)
	}
	if _, err := filters.Compile(extra); err != nil {
		return nil, fmt.Errorf("-filter: %w", err)
	}
	if route == "" {
		return filters.Compile(extra)
	}
	return filters.Compile("(" + route + ") && (" + extra + ")")
}

// replayProgress shows a replay's progress on stderr (see progress).
type replayProgress struct{ *progress }

func newReplayProgress(w io.Writer) *replayProgress {
	return &replayProgress{newProgress(w, "replayed", "events")}
}

// update is called from one goroutine while the replay runs.
func (p *replayProgress) update(s consumers.ReplayStats) {
	p.progress.update(s.Settled(), s.Total, fmt.Sprintf("%d filtered out, %d dead-lettered", s.Filtered, s.DeadLettered))
}
