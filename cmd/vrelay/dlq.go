package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"golang.org/x/term"

	"github.com/vrelay/vrelay/consumers/deadletter"
	"github.com/vrelay/vrelay/filters"
	"github.com/vrelay/vrelay/internal/config"
	"github.com/vrelay/vrelay/internal/eventline"
	"github.com/vrelay/vrelay/streams"
)

const dlqUsage = `Usage:
  vrelay dlq list    [-config FILE | -server URL] [-route R] [-n MAX]
  vrelay dlq show    [-config FILE | -server URL] SEQ
  vrelay dlq replay  [-config FILE | -server URL] (-route R | -all) [SEQ...]
  vrelay dlq purge   [-config FILE | -server URL] (-route R | -all) [-yes] [SEQ...]

Flags may come before or after the arguments. On a terminal, purge asks
before it deletes anything; -yes skips the question.

replay sends each dead letter back to the route it failed on, and to no
other: it stores the event in the replay stream VRELAY_REPLAY (subject
vrelay.replay.<route>), which only that route reads, and then deletes the
dead letter. The event stream gets no second copy. Running the same replay
twice stores it once. Messages without vrelay's dead-letter headers are
refused: purge them.
`

// cliConn connects a CLI command to the JetStream that vrelay uses: the
// server named by -server, else the config's external NATS, else the
// embedded server's listener, else (vrelay stopped) the data directory itself.
type cliConn struct {
	js    jetstream.JetStream
	close func()
	// root is the configuration's subject root (the default with -server).
	root string
	// cfg is the configuration, nil with -server.
	cfg *config.Config
	// live says why vrelay is known to be running on this NATS ("its
	// embedded NATS listener on 127.0.0.1:4222 answered"), or "".
	live string
}

func addConnFlags(fs *flag.FlagSet) (configPath, server *string) {
	configPath = fs.String("config", "vrelay.yaml", "configuration `file` naming the NATS to use")
	server = fs.String("server", "", "NATS `URL` to use instead of the configuration's")
	return configPath, server
}

func connectCLI(configPath, server string) (*cliConn, error) {
	log := slog.New(slog.DiscardHandler)
	open := func(nc *nats.Conn, closer func()) (*cliConn, error) {
		js, err := jetstream.New(nc)
		if err != nil {
			closer()
			return nil, err
		}
		return &cliConn{js: js, close: closer, root: streams.DefaultRoot}, nil
	}
	if server != "" {
		nc, err := nats.Connect(server, nats.Name("vrelay-cli"))
		if err != nil {
			return nil, fmt.Errorf("connect to %s: %w", server, err)
		}
		return open(nc, nc.Close)
	}
	cfg, err := config.Load(configPath)
	if err != nil {
		return nil, err
	}
	withRoot := func(c *cliConn, err error) (*cliConn, error) {
		if c != nil {
			c.root = cfg.Streams.SubjectRoot
			c.cfg = cfg
		}
		return c, err
	}
	if ext := cfg.NATS.External; ext != nil {
		nc, err := ext.Connect(log, "vrelay-cli")
		if err != nil {
			return nil, fmt.Errorf("connect to NATS at %s (nats.external.url): %w", ext.URL, err)
		}
		// The connection retries in the background: wait for it here, so
		// that an unreachable server is named, not a later timeout.
		timeout := ext.ConnectTimeout
		if timeout <= 0 {
			timeout = 5 * time.Second
		}
		if err := nc.FlushTimeout(timeout); err != nil {
			nc.Close()
			return nil, fmt.Errorf("cannot reach NATS at %s (nats.external.url) within %s: is it running and reachable from here? (%w)", ext.URL, timeout, err)
		}
		return withRoot(open(nc, nc.Close))
	}
	emb := *cfg.NATS.Embedded
	if emb.Listen != streams.ListenOff && !strings.HasSuffix(emb.Listen, ":0") {
		opts := []nats.Option{nats.Name("vrelay-cli"), nats.Timeout(2 * time.Second)}
		if emb.Auth != nil {
			creds, err := emb.Auth.Resolve()
			if err != nil {
				return nil, fmt.Errorf("nats.embedded.auth.%w", err)
			}
			opts = append(opts, creds.NATSOption())
		}
		nc, err := nats.Connect("nats://"+emb.Listen, opts...)
		if err == nil {
			c, err := withRoot(open(nc, nc.Close))
			if c != nil {
				c.live = "its embedded NATS listener on " + emb.Listen + " answered"
			}
			return c, err
		}
		// vrelay runs and refused the credentials: opening its data
		// directory would only fail on the lock.
		if errors.Is(err, nats.ErrAuthorization) {
			return nil, fmt.Errorf("connect to the embedded nats-server on %s with nats.embedded.auth: %w", emb.Listen, err)
		}
	}
	// vrelay is not running (or not listening): open its data directory.
	srv, err := streams.StartEmbedded(streams.EmbeddedConfig{DataDir: emb.DataDir, Listen: streams.ListenOff}, log)
	if err != nil {
		return nil, fmt.Errorf("vrelay is running without a NATS listener, and its data dir cannot be opened: %w", err)
	}
	nc, err := srv.Connect()
	if err != nil {
		srv.Shutdown()
		return nil, err
	}
	return withRoot(open(nc, func() { nc.Close(); srv.Shutdown() }))
}

func cmdDLQ(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, dlqUsage)
		return 2
	}
	if isHelp(args[0]) {
		fmt.Fprint(stdout, dlqUsage)
		return 0
	}
	sub := args[0]
	fs := flag.NewFlagSet("dlq "+sub, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, dlqUsage) }
	configPath, server := addConnFlags(fs)
	route := fs.String("route", "", "only the dead letters of this `route`")
	all := fs.Bool("all", false, "every route (replay and purge need -route or -all)")
	limit := fs.Int("n", 100, "list at most `N` dead letters (0: all)")
	yes := fs.Bool("yes", false, "purge without asking, also on a terminal")
	rest, err := parseArgs(fs, args[1:])
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	var seqs []uint64
	for _, a := range rest {
		n, err := strconv.ParseUint(a, 10, 64)
		if err != nil {
			fmt.Fprintf(stderr, "vrelay dlq %s: %q is not a dead-letter sequence number\n", sub, a)
			return 2
		}
		seqs = append(seqs, n)
	}
	switch sub {
	case "list", "show", "replay", "purge":
	default:
		fmt.Fprintf(stderr, "vrelay dlq: unknown command %q\n\n%s", sub, dlqUsage)
		return 2
	}
	if (sub == "replay" || sub == "purge") && *route == "" && !*all {
		fmt.Fprintf(stderr, "vrelay dlq %s: name a -route, or pass -all\n", sub)
		return 2
	}
	if sub == "show" && len(seqs) != 1 {
		fmt.Fprintln(stderr, "vrelay dlq show: give one sequence number")
		return 2
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	conn, err := connectCLI(*configPath, *server)
	if err != nil {
		fmt.Fprintln(stderr, "vrelay dlq:", err)
		return 1
	}
	defer conn.close()
	sel := deadletter.Selector{Route: *route, Sequences: seqs}
	switch sub {
	case "list":
		letters, err := deadletter.List(ctx, conn.js, sel, *limit)
		if err != nil {
			fmt.Fprintln(stderr, "vrelay dlq list:", err)
			return 1
		}
		total := len(letters)
		if *limit > 0 && total == *limit {
			// The listing stopped at -n: say how many there are.
			if total, err = deadletter.Count(ctx, conn.js, sel); err != nil {
				fmt.Fprintln(stderr, "vrelay dlq list:", err)
				return 1
			}
		}
		printLetters(stdout, letters, total)
		if total == 0 && *route != "" {
			fmt.Fprintln(stderr, noLettersFor(ctx, conn, *route, *configPath))
		}
	case "show":
		l, err := deadletter.Get(ctx, conn.js, seqs[0])
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			fmt.Fprintf(stderr, "vrelay dlq show: no dead letter %d (vrelay dlq list shows those there are)\n", seqs[0])
			return 1
		}
		if err != nil {
			fmt.Fprintln(stderr, "vrelay dlq show:", err)
			return 1
		}
		printLetter(stdout, l)
	case "replay":
		total, err := deadletter.Count(ctx, conn.js, sel)
		if err != nil {
			fmt.Fprintln(stderr, "vrelay dlq replay:", err)
			return 1
		}
		prog := newProgress(stderr, "replayed", "dead letters")
		done, err := deadletter.Replay(ctx, conn.js, sel, deadletter.WithProgress(func(n int) { prog.update(n, total, "") }))
		prog.done()
		printReplayed(stdout, done)
		if err != nil {
			fmt.Fprintln(stderr, "vrelay dlq replay:", err)
			return 1
		}
		if len(done) == 0 && *route != "" {
			fmt.Fprintln(stderr, noLettersFor(ctx, conn, *route, *configPath))
		}
	case "purge":
		total, err := deadletter.Count(ctx, conn.js, sel)
		if err != nil {
			fmt.Fprintln(stderr, "vrelay dlq purge:", err)
			return 1
		}
		if total == 0 {
			fmt.Fprintln(stdout, "purged 0 dead letters")
			if *route != "" {
				fmt.Fprintln(stderr, noLettersFor(ctx, conn, *route, *configPath))
			}
			return 0
		}
		if !*yes && isTerminal(stdinFile) {
			if !confirm(stdin, stdout, fmt.Sprintf("purge %s? [y/N] ", plural(total, "dead letter", "dead letters"))) {
				fmt.Fprintln(stdout, "nothing purged")
				return 1
			}
		}
		n, err := deadletter.Purge(ctx, conn.js, sel)
		fmt.Fprintf(stdout, "purged %s\n", plural(n, "dead letter", "dead letters"))
		if err != nil {
			fmt.Fprintln(stderr, "vrelay dlq purge:", err)
			return 1
		}
	}
	return 0
}

// printLetters prints letters, then how many there are: total, which is
// more when the listing was cut at -n.
func printLetters(w io.Writer, letters []deadletter.Letter, total int) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SEQ\tROUTE\tFAILED AT\tFAILURE\tATTEMPTS\tEVENT ID\tTYPE\tREASON")
	for _, l := range letters {
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%d\t%s\t%s\t%s\n", l.Sequence, l.Route,
			l.FailedAt.Format(time.RFC3339), l.Failure, l.Attempts, l.EventID, l.EventType, oneLine(l.Reason, 80))
	}
	tw.Flush()
	if total > len(letters) {
		fmt.Fprintf(w, "showing %d of %d dead letters (-n 0 lists all)\n", len(letters), total)
		return
	}
	fmt.Fprintln(w, plural(len(letters), "dead letter", "dead letters"))
}

// stdin and stdinFile are what purge reads its confirmation from; tests
// replace them.
var (
	stdin     io.Reader = os.Stdin
	stdinFile any       = os.Stdin
)

// confirm asks question on w and reports whether the answer is yes.
func confirm(r io.Reader, w io.Writer, question string) bool {
	fmt.Fprint(w, question)
	line, _ := bufio.NewReader(r).ReadString('\n')
	switch strings.ToLower(strings.TrimSpace(line)) {
	case "y", "yes":
		return true
	}
	return false
}

// noLettersFor explains an empty result for -route: the route is not in
// the configuration, or it has no dead letters; with the routes that do.
func noLettersFor(ctx context.Context, conn *cliConn, route, configPath string) string {
	var b strings.Builder
	if conn.cfg != nil && !slices.ContainsFunc(conn.cfg.Routes, func(r config.Route) bool { return r.Name == route }) {
		names := make([]string, len(conn.cfg.Routes))
		for i, r := range conn.cfg.Routes {
			names[i] = r.Name
		}
		fmt.Fprintf(&b, "route %q is not in %s (its routes: %s)", route, configPath, strings.Join(names, ", "))
	} else {
		fmt.Fprintf(&b, "route %q has no dead letters", route)
	}
	counts := map[string]int{}
	letters, err := deadletter.List(ctx, conn.js, deadletter.Selector{}, 10000)
	if err == nil {
		for _, l := range letters {
			counts[l.Route]++
		}
	}
	if len(counts) > 0 {
		var with []string
		for r, n := range counts {
			with = append(with, fmt.Sprintf("%s (%d)", r, n))
		}
		sort.Strings(with)
		fmt.Fprintf(&b, "; routes with dead letters: %s", strings.Join(with, ", "))
	} else if err == nil {
		b.WriteString("; no route has any")
	}
	return b.String()
}

func printLetter(w io.Writer, l deadletter.Letter) {
	fmt.Fprintf(w, "Sequence: %d\n", l.Sequence)
	keys := make([]string, 0, len(l.Header))
	for k := range l.Header {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Fprintf(w, "%s: %s\n", k, strings.Join(l.Header[k], ", "))
	}
	fmt.Fprintln(w)
	var pretty any
	if json.Unmarshal(l.Data, &pretty) == nil {
		b, _ := json.MarshalIndent(pretty, "", "  ")
		fmt.Fprintln(w, string(b))
		return
	}
	fmt.Fprintln(w, string(l.Data))
}

// printReplayed says how many dead letters went where: per route, the
// replay subject that only that route reads.
func printReplayed(w io.Writer, done []deadletter.Replayed) {
	fmt.Fprintf(w, "replayed %s", plural(len(done), "dead letter", "dead letters"))
	if len(done) == 0 {
		fmt.Fprintln(w)
		return
	}
	fmt.Fprintf(w, " into stream %s, each for its failed route only (no copy in %s):\n", streams.ReplayStream, streams.EventStream)
	type dest struct {
		subject    string
		n, already int
	}
	var routes []string
	by := map[string]*dest{}
	for _, r := range done {
		d := by[r.Route]
		if d == nil {
			d = &dest{subject: r.Subject}
			by[r.Route] = d
			routes = append(routes, r.Route)
		}
		d.n++
		if r.Duplicate {
			d.already++
		}
	}
	for _, route := range routes {
		d := by[route]
		fmt.Fprintf(w, "  route %s: %d on %s", route, d.n, d.subject)
		if d.already > 0 {
			fmt.Fprintf(w, " (%d stored there already by an earlier replay, kept once)", d.already)
		}
		fmt.Fprintln(w)
	}
}

func oneLine(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > n {
		return s[:n-1] + "…"
	}
	return s
}

const tailUsage = `Usage:
  vrelay tail [-config FILE | -server URL] [-since DURATION] [-n N]
              [-filter EXPR] [-json] [-color auto|always|never] [SUBJECT]

Prints the events stored on SUBJECT (default: every event) as they arrive,
one line each: time, type, source, what the event concerns (vm=, host=,
user=, machine=) and its message. -json prints each event's CloudEvent JSON
as stored instead. -filter keeps the events a route filter expression
matches (see docs/routes.md). -color auto colours lines on a terminal
unless NO_COLOR is set. -since starts that far back; -n stops after N
printed events.
`

// cmdTail follows the event stream. Unlike `nats sub`, it reads what
// JetStream stored, so replays it dropped as duplicates do not show.
func cmdTail(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("tail", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, tailUsage) }
	configPath, server := addConnFlags(fs)
	since := fs.Duration("since", 0, "start this far back, such as 10m (default: new events only)")
	maxN := fs.Int("n", 0, "stop after `N` events (0: follow until interrupted)")
	filterSrc := fs.String("filter", "", "print only the events this filter `EXPR`ession matches")
	asJSON := fs.Bool("json", false, "print each event's stored CloudEvent JSON")
	colorMode := fs.String("color", "auto", "colour lines: auto (on a terminal without NO_COLOR), always or never")
	rest, err := parseArgs(fs, args)
	if err != nil {
		return 2
	}
	if len(rest) > 1 {
		fmt.Fprint(stderr, tailUsage)
		return 2
	}
	var color bool
	switch *colorMode {
	case "auto":
		f, ok := stdout.(*os.File)
		color = ok && term.IsTerminal(int(f.Fd())) && os.Getenv("NO_COLOR") == ""
	case "always":
		color = true
	case "never":
	default:
		fmt.Fprintf(stderr, "vrelay tail: -color: got %q, want auto, always or never\n", *colorMode)
		return 2
	}
	var filter *filters.Filter
	if *filterSrc != "" {
		f, err := filters.Compile(*filterSrc)
		if err != nil {
			fmt.Fprintln(stderr, "vrelay tail: -filter:", err)
			return 2
		}
		filter = f
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	conn, err := connectCLI(*configPath, *server)
	if err != nil {
		fmt.Fprintln(stderr, "vrelay tail:", err)
		return 1
	}
	defer conn.close()
	subject := conn.root + ".>"
	if len(rest) == 1 {
		subject = rest[0]
	}
	occ := jetstream.OrderedConsumerConfig{FilterSubjects: []string{subject}, DeliverPolicy: jetstream.DeliverNewPolicy}
	if *since > 0 {
		start := time.Now().Add(-*since)
		occ.DeliverPolicy, occ.OptStartTime = jetstream.DeliverByStartTimePolicy, &start
	}
	c, err := conn.js.OrderedConsumer(ctx, streams.EventStream, occ)
	if err != nil {
		fmt.Fprintln(stderr, "vrelay tail:", err)
		return 1
	}
	style := eventline.Style{Color: color}
	var line []byte
	for n := 0; *maxN == 0 || n < *maxN; {
		msg, err := c.Next(jetstream.FetchContext(ctx))
		if err != nil {
			if errors.Is(err, context.Canceled) || ctx.Err() != nil {
				return 0
			}
			fmt.Fprintln(stderr, "vrelay tail:", err)
			return 1
		}
		if *asJSON && filter == nil {
			fmt.Fprintln(stdout, string(msg.Data()))
			n++
			continue
		}
		ev, err := streams.Decode(msg.Data())
		if err != nil {
			// Not a CloudEvent vrelay stored (a stray `nats pub`): show it
			// as it is rather than hide it, unless a filter asks for events.
			if filter == nil {
				fmt.Fprintf(stdout, "%s: undecodable: %s\n", msg.Subject(), msg.Data())
				n++
			}
			continue
		}
		if filter != nil {
			// A filter that fails at run time is no match, as on a route.
			if ok, err := filter.Match(ev); err != nil || !ok {
				continue
			}
		}
		n++
		if *asJSON {
			fmt.Fprintln(stdout, string(msg.Data()))
			continue
		}
		line = append(style.Append(line[:0], &ev, msg.Subject()), '\n')
		if _, err := stdout.Write(line); err != nil {
			fmt.Fprintln(stderr, "vrelay tail:", err)
			return 1
		}
	}
	return 0
}

const checkpointUsage = `Usage:
  vrelay checkpoint list   [-config FILE | -server URL]
  vrelay checkpoint show   [-config FILE | -server URL] KEY
  vrelay checkpoint delete [-config FILE | -server URL] [-force] KEY

Keys read <provider>.<source>, such as vcenter.vc01. After delete, the source
resumes after its last event in the stream, or at its system's current time
if the stream holds none. Works on a stopped vrelay's data directory too.

delete refuses while vrelay runs the source (its embedded NATS listener
answers, or a replica holds the source's lease): the running source would
write its position again at once. Stop vrelay first, or pass -force.
`

// cmdCheckpoint inspects and deletes source positions.
func cmdCheckpoint(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, checkpointUsage)
		return 2
	}
	if isHelp(args[0]) {
		fmt.Fprint(stdout, checkpointUsage)
		return 0
	}
	sub := args[0]
	fs := flag.NewFlagSet("checkpoint "+sub, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, checkpointUsage) }
	configPath, server := addConnFlags(fs)
	force := fs.Bool("force", false, "delete even while vrelay runs the source")
	rest, err := parseArgs(fs, args[1:])
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	switch {
	case sub == "list" && len(rest) == 0:
	case (sub == "show" || sub == "delete") && len(rest) == 1:
	default:
		fmt.Fprint(stderr, checkpointUsage)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	conn, err := connectCLI(*configPath, *server)
	if err != nil {
		fmt.Fprintln(stderr, "vrelay checkpoint:", err)
		return 1
	}
	defer conn.close()
	kv, err := conn.js.KeyValue(ctx, streams.CheckpointBucket)
	if err != nil {
		fmt.Fprintln(stderr, "vrelay checkpoint:", err)
		return 1
	}
	switch sub {
	case "list":
		keys, err := kv.ListKeys(ctx)
		if err != nil {
			fmt.Fprintln(stderr, "vrelay checkpoint list:", err)
			return 1
		}
		for k := range keys.Keys() {
			fmt.Fprintln(stdout, k)
		}
	case "show":
		e, err := kv.Get(ctx, rest[0])
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			fmt.Fprintf(stderr, "vrelay checkpoint show: no checkpoint %s; %s\n", rest[0], checkpointKeys(ctx, kv))
			return 1
		}
		if err != nil {
			fmt.Fprintf(stderr, "vrelay checkpoint show %s: %v\n", rest[0], err)
			return 1
		}
		fmt.Fprintf(stdout, "revision %d, saved %s\n%s\n", e.Revision(), e.Created().UTC().Format(time.RFC3339), e.Value())
	case "delete":
		if !*force {
			if why := sourceRunning(ctx, conn, rest[0]); why != "" {
				fmt.Fprintf(stderr, "vrelay checkpoint delete: vrelay is running (%s): the running source would save its position again at once. Stop vrelay and delete again, or pass -force\n", why)
				return 1
			}
		}
		if _, err := kv.Get(ctx, rest[0]); errors.Is(err, jetstream.ErrKeyNotFound) {
			fmt.Fprintf(stderr, "vrelay checkpoint delete: no checkpoint %s; %s\n", rest[0], checkpointKeys(ctx, kv))
			return 1
		}
		if err := kv.Delete(ctx, rest[0]); err != nil {
			fmt.Fprintf(stderr, "vrelay checkpoint delete %s: %v\n", rest[0], err)
			return 1
		}
		fmt.Fprintf(stdout, "deleted checkpoint %s\n", rest[0])
	}
	return 0
}

// checkpointKeys lists the keys of the checkpoint bucket, for messages.
func checkpointKeys(ctx context.Context, kv jetstream.KeyValue) string {
	keys, err := kv.ListKeys(ctx)
	if err != nil {
		return "the bucket cannot be listed: " + err.Error()
	}
	var names []string
	for k := range keys.Keys() {
		names = append(names, k)
	}
	if len(names) == 0 {
		return "there are none (a source saves one after its first events)"
	}
	return "the checkpoints are: " + strings.Join(names, ", ")
}

// sourceRunning says why the source of checkpoint key is known to run, or
// "": vrelay's embedded NATS listener answered, or a replica holds the
// source's lease (external NATS, where leases live as long as their
// holder renews them).
func sourceRunning(ctx context.Context, conn *cliConn, key string) string {
	if conn.live != "" {
		return conn.live
	}
	kv, err := conn.js.KeyValue(ctx, streams.LeaseBucket)
	if err != nil {
		return ""
	}
	e, err := kv.Get(ctx, key)
	if err != nil || len(e.Value()) == 0 {
		return ""
	}
	var v struct {
		Holder string `json:"holder"`
	}
	_ = json.Unmarshal(e.Value(), &v)
	return fmt.Sprintf("replica %s holds the lease of %s", v.Holder, key)
}
