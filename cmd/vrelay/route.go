package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os/signal"
	"slices"
	"sort"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/vrelay/vrelay/filters"
	"github.com/vrelay/vrelay/internal/config"
	"github.com/vrelay/vrelay/streams"
)

const routeUsage = `Usage:
  vrelay route test ROUTE [-config FILE] [-server URL] [-last N] [-since DURATION]
  vrelay route replay ROUTE -since TIME [-until TIME] [-filter EXPR] [-config FILE] [-server URL]

test runs the route's filter and transform over events the event stream
already holds, on the route's subjects, and prints for each one line: its
stream sequence, its time, subject and type, and MATCH (with what the
transform changed, or "dropped"), "no match" or ERROR (why). Nothing is
delivered, acked or dead-lettered, and no durable consumer is created: the
route's own position does not move. -last N takes the N most recent events
(default 20, 0: all); -since DURATION only events stored that recently.

replay delivers the events stored between -since (a duration ago, such as
2h, or an RFC 3339 time) and -until (default: now) again, to this route
only, through its filter (and -filter, if given), transform, sink, retries
and dead letters, with an ephemeral consumer: nothing is copied into the
event stream, and the route's own position does not move.
`

// cmdRoute groups the commands about one route of the configuration.
func cmdRoute(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, routeUsage)
		return 2
	}
	switch args[0] {
	case "test":
		return cmdRouteTest(args[1:], stdout, stderr)
	case "replay":
		return cmdRouteReplay(args[1:], stdout, stderr)
	case "-h", "-help", "--help", "help":
		fmt.Fprint(stdout, routeUsage)
		return 0
	default:
		fmt.Fprintf(stderr, "vrelay route: unknown command %q\n\n%s", args[0], routeUsage)
		return 2
	}
}

func cmdRouteTest(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("route test", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, routeUsage) }
	configPath, server := addConnFlags(fs)
	last := fs.Int("last", 20, "the `N` most recent events (0: all)")
	since := fs.Duration("since", 0, "only events stored within this `duration`, such as 1h")
	// The route name may come before or after the flags.
	names, err := parseArgs(fs, args)
	if err != nil {
		return 2
	}
	if len(names) != 1 || *last < 0 || *since < 0 {
		fmt.Fprint(stderr, routeUsage)
		return 2
	}
	cfg, err := config.Load(*configPath)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	i := slices.IndexFunc(cfg.Routes, func(r config.Route) bool { return r.Name == names[0] })
	if i < 0 {
		var known []string
		for _, r := range cfg.Routes {
			known = append(known, r.Name)
		}
		fmt.Fprintf(stderr, "vrelay route test: %s has no route %q (routes: %s)\n", *configPath, names[0], strings.Join(known, ", "))
		return 1
	}
	route := cfg.Routes[i]
	filter, err := route.CompileFilter()
	if err != nil {
		fmt.Fprintln(stderr, "vrelay route test:", err)
		return 1
	}
	transform, err := route.CompileTransform()
	if err != nil {
		fmt.Fprintln(stderr, "vrelay route test:", err)
		return 1
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	conn, err := connectCLI(*configPath, *server)
	if err != nil {
		fmt.Fprintln(stderr, "vrelay route test:", err)
		return 1
	}
	defer conn.close()
	t := &routeTester{filter: filter, transform: transform}
	if err := t.run(ctx, conn.js, route.Subjects, *last, *since, stdout); err != nil {
		fmt.Fprintln(stderr, "vrelay route test:", err)
		return 1
	}
	return 0
}

// routeTester evaluates a route's filter and transform on stored events.
type routeTester struct {
	filter    *filters.Filter
	transform *filters.Transform

	matched, dropped, unmatched, failed int
}

// run reads the events to test with an ephemeral ordered consumer (no
// acks, no durable state) and prints one line per event and a summary.
func (rt *routeTester) run(ctx context.Context, js jetstream.JetStream, subjects []string, last int, since time.Duration, w io.Writer) error {
	stream, err := js.Stream(ctx, streams.EventStream)
	if err != nil {
		return fmt.Errorf("stream %s: %w", streams.EventStream, err)
	}
	occ := jetstream.OrderedConsumerConfig{FilterSubjects: subjects, DeliverPolicy: jetstream.DeliverAllPolicy}
	if since > 0 {
		start := time.Now().Add(-since)
		occ.DeliverPolicy, occ.OptStartTime = jetstream.DeliverByStartTimePolicy, &start
	}
	total, err := countFrom(ctx, stream, subjects, occ)
	if err != nil {
		return err
	}
	if last > 0 && total > uint64(last) {
		seq, err := startOfLast(ctx, stream, subjects, uint64(last))
		if err != nil {
			return err
		}
		occ.DeliverPolicy, occ.OptStartTime, occ.OptStartSeq = jetstream.DeliverByStartSequencePolicy, nil, seq
		total = uint64(last)
	}

	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SEQ\tTIME\tSUBJECT\tTYPE\tRESULT")
	if total > 0 {
		c, err := js.OrderedConsumer(ctx, streams.EventStream, occ)
		if err != nil {
			return fmt.Errorf("read %s: %w", streams.EventStream, err)
		}
		for n := uint64(0); n < total; n++ {
			// Events counted may have aged out of the stream meanwhile.
			msg, err := c.Next(jetstream.FetchMaxWait(5 * time.Second))
			if errors.Is(err, nats.ErrTimeout) || errors.Is(err, context.DeadlineExceeded) {
				total = n
				break
			}
			if err != nil {
				return fmt.Errorf("read %s: %w", streams.EventStream, err)
			}
			rt.line(tw, msg)
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "%d events: %d matched, %d dropped by transform, %d did not match, %d errors\n",
		total, rt.matched, rt.dropped, rt.unmatched, rt.failed)
	return err
}

// line evaluates one stored message and prints its line.
func (rt *routeTester) line(w io.Writer, msg jetstream.Msg) {
	var seq uint64
	if meta, err := msg.Metadata(); err == nil {
		seq = meta.Sequence.Stream
	}
	ev, err := streams.Decode(msg.Data())
	if err != nil {
		rt.failed++
		fmt.Fprintf(w, "%d\t-\t%s\t-\tERROR (undecodable, would be dead-lettered: %s)\n", seq, msg.Subject(), oneLine(err.Error(), 120))
		return
	}
	when := "-"
	if !ev.Time().IsZero() {
		when = ev.Time().UTC().Format(time.RFC3339)
	}
	fmt.Fprintf(w, "%d\t%s\t%s\t%s\t%s\n", seq, when, msg.Subject(), ev.Type(), rt.evaluate(ev))
}

// evaluate says what the route would do with ev, as the dispatcher
// decides it.
func (rt *routeTester) evaluate(ev event.Event) string {
	if rt.filter != nil {
		ok, err := rt.filter.Match(ev)
		var dataErr *filters.DataError
		switch {
		case errors.As(err, &dataErr):
			rt.failed++
			return fmt.Sprintf("ERROR (undecodable, would be dead-lettered: %s)", oneLine(err.Error(), 120))
		case err != nil:
			rt.failed++
			return fmt.Sprintf("ERROR (filter: %s; counted as no match)", oneLine(err.Error(), 120))
		case !ok:
			rt.unmatched++
			return "no match"
		}
	}
	res, err := rt.transform.Apply(ev)
	switch {
	case err != nil:
		rt.failed++
		return fmt.Sprintf("ERROR (%s; would be dead-lettered)", oneLine(err.Error(), 120))
	case res.Dropped:
		rt.dropped++
		return fmt.Sprintf("MATCH, dropped by transform[%d]", res.Step)
	}
	rt.matched++
	if !res.Changed {
		return "MATCH"
	}
	if d := describeChanges(ev, res.Event); d != "" {
		return "MATCH, " + d
	}
	return "MATCH"
}

// countFrom is how many events on subjects an ephemeral consumer at occ's
// start position would deliver.
func countFrom(ctx context.Context, stream jetstream.Stream, subjects []string, occ jetstream.OrderedConsumerConfig) (uint64, error) {
	return pendingFrom(ctx, stream, jetstream.ConsumerConfig{
		FilterSubjects: subjects,
		DeliverPolicy:  occ.DeliverPolicy,
		OptStartTime:   occ.OptStartTime,
		OptStartSeq:    occ.OptStartSeq,
	})
}

// pendingFrom creates an ephemeral consumer with no acks to learn how many
// events it would deliver, and deletes it at once.
func pendingFrom(ctx context.Context, stream jetstream.Stream, cc jetstream.ConsumerConfig) (uint64, error) {
	cc.AckPolicy = jetstream.AckNonePolicy
	cc.InactiveThreshold = 30 * time.Second // gone soon, even if the delete below fails
	cc.MemoryStorage = true
	c, err := stream.CreateConsumer(ctx, cc)
	if err != nil {
		return 0, fmt.Errorf("count events: %w", err)
	}
	info := c.CachedInfo()
	_ = stream.DeleteConsumer(ctx, info.Name)
	return info.NumPending, nil
}

// startOfLast finds the stream sequence from which exactly n events on
// subjects remain, by bisecting on the count from a start sequence: a
// few dozen small requests rather than reading a week of events.
func startOfLast(ctx context.Context, stream jetstream.Stream, subjects []string, n uint64) (uint64, error) {
	info, err := stream.Info(ctx)
	if err != nil {
		return 0, fmt.Errorf("stream %s: %w", streams.EventStream, err)
	}
	count := func(seq uint64) (uint64, error) {
		return pendingFrom(ctx, stream, jetstream.ConsumerConfig{
			FilterSubjects: subjects,
			DeliverPolicy:  jetstream.DeliverByStartSequencePolicy,
			OptStartSeq:    seq,
		})
	}
	// The largest lo with count(lo) >= n: count falls as the sequence grows.
	lo, hi := max(info.State.FirstSeq, 1), info.State.LastSeq
	for lo < hi {
		mid := lo + (hi-lo+1)/2
		c, err := count(mid)
		if err != nil {
			return 0, err
		}
		if c >= n {
			lo = mid
		} else {
			hi = mid - 1
		}
	}
	return lo, nil
}

// describeChanges lists what differs between the event as stored and as
// the transform left it: name=value for what is set, -name for what is
// gone.
func describeChanges(before, after event.Event) string {
	var out []string
	attr := func(name, a, b string) {
		switch {
		case a == b:
		case b == "":
			out = append(out, "-"+name)
		default:
			out = append(out, name+"="+quote(b))
		}
	}
	attr("id", before.ID(), after.ID())
	attr("source", before.Source(), after.Source())
	attr("type", before.Type(), after.Type())
	attr("subject", before.Subject(), after.Subject())
	attr("datacontenttype", before.DataContentType(), after.DataContentType())
	attr("dataschema", before.DataSchema(), after.DataSchema())
	attr("time", timeString(before.Time()), timeString(after.Time()))

	be, ae := before.Extensions(), after.Extensions()
	names := make([]string, 0, len(be)+len(ae))
	for k := range be {
		names = append(names, k)
	}
	for k := range ae {
		if _, ok := be[k]; !ok {
			names = append(names, k)
		}
	}
	sort.Strings(names)
	for _, k := range names {
		a, b := fmt.Sprint(be[k]), fmt.Sprint(ae[k])
		if _, ok := ae[k]; !ok {
			b = ""
		}
		attr(k, a, b)
	}

	if !bytes.Equal(before.Data(), after.Data()) {
		out = append(out, dataChanges(before.Data(), after.Data())...)
	}
	return strings.Join(out, " ")
}

// dataChanges compares two JSON data as flat dotted paths; data that is
// not JSON is reported as a whole.
func dataChanges(before, after []byte) []string {
	var a, b map[string]string
	var errA, errB error
	if len(before) > 0 {
		a, errA = flatJSON(before)
	}
	if len(after) == 0 {
		return []string{"-data"}
	}
	b, errB = flatJSON(after)
	if errA != nil || errB != nil {
		return []string{"data changed"}
	}
	var out []string
	keys := make([]string, 0, len(a)+len(b))
	for k := range a {
		keys = append(keys, k)
	}
	for k := range b {
		if _, ok := a[k]; !ok {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	for _, k := range keys {
		va, okA := a[k]
		vb, okB := b[k]
		switch {
		case !okB:
			out = append(out, "-"+k)
		case !okA || va != vb:
			out = append(out, k+"="+oneLine(vb, 60))
		}
	}
	return out
}

// flatJSON maps each leaf of JSON data to its compact JSON, by its dotted
// path under "data". Arrays are leaves.
func flatJSON(b []byte) (map[string]string, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	out := map[string]string{}
	var walk func(path string, v any)
	walk = func(path string, v any) {
		if m, ok := v.(map[string]any); ok && len(m) > 0 {
			for k, e := range m {
				walk(path+"."+k, e)
			}
			return
		}
		enc, _ := json.Marshal(v)
		out[path] = string(enc)
	}
	walk("data", v)
	return out, nil
}

func quote(s string) string {
	b, _ := json.Marshal(s)
	return oneLine(string(b), 60)
}

func timeString(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339Nano)
}
