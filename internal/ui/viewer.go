package ui

import (
	"context"
	"embed"
	"encoding/json"
	"io/fs"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/vrelay/vrelay/internal/auth"
	"github.com/vrelay/vrelay/streams"
)

//go:embed assets
var assets embed.FS

// Route is a configured route, as the viewer shows it.
type Route struct {
	Name     string   `json:"name"`
	Subjects []string `json:"subjects"`
	Filter   string   `json:"filter,omitempty"`
}

// Source is a configured source: it is listed even before it published.
type Source struct {
	Provider string `json:"provider"`
	Name     string `json:"source"`
}

// Viewer serves the event viewer. Create it with [New], serve
// [Viewer.Handler] and run [Viewer.Run]. It is safe for concurrent use.
type Viewer struct {
	js       jetstream.JetStream
	o        options
	chart    *chart
	done     chan struct{}
	doneOnce sync.Once
}

type options struct {
	root     string
	routes   []Route
	sources  []Source
	gatherer prometheus.Gatherer
	log      *slog.Logger
	interval time.Duration
	history  int
}

// Option configures a [Viewer].
type Option func(*options)

// WithSubjectRoot sets the subject root of the event stream. Default
// streams.DefaultRoot.
func WithSubjectRoot(root string) Option { return func(o *options) { o.root = root } }

// WithRoutes lists the configured routes.
func WithRoutes(r []Route) Option { return func(o *options) { o.routes = r } }

// WithSources lists the configured sources.
func WithSources(s []Source) Option { return func(o *options) { o.sources = s } }

// WithGatherer is where the route counters are read: the registry that
// consumers.NewMetrics registered with. Without it the counters are absent.
func WithGatherer(g prometheus.Gatherer) Option { return func(o *options) { o.gatherer = g } }

// WithLogger sets the logger. Default: none.
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.log = l } }

// WithSampling sets how often [Viewer.Run] samples the chart and how many
// samples it keeps. Default every 2s, 150 samples (5 minutes).
func WithSampling(every time.Duration, keep int) Option {
	return func(o *options) { o.interval, o.history = every, keep }
}

// New returns a viewer of the streams of js.
func New(js jetstream.JetStream, opts ...Option) *Viewer {
	o := options{root: streams.DefaultRoot, log: slog.New(slog.DiscardHandler), interval: 2 * time.Second, history: 150}
	for _, opt := range opts {
		opt(&o)
	}
	v := &Viewer{js: js, o: o, done: make(chan struct{})}
	v.chart = newChart(o.history)
	return v
}

// Run samples the chart until ctx is done, then ends the open event
// streams and returns ctx.Err().
func (v *Viewer) Run(ctx context.Context) error {
	defer v.doneOnce.Do(func() { close(v.done) })
	t := time.NewTicker(v.o.interval)
	defer t.Stop()
	v.sample(ctx)
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
			v.sample(ctx)
		}
	}
}

// Handler serves /ui and everything under it. With creds, every path
// needs them; nil creds leave the viewer open (the configuration allows
// that on a loopback address only).
func (v *Viewer) Handler(creds *auth.Credentials) http.Handler {
	mux := http.NewServeMux()
	static, _ := fs.Sub(assets, "assets")
	files := http.StripPrefix("/ui/", http.FileServerFS(static))
	mux.Handle("GET /ui/", noCache(files))
	mux.HandleFunc("GET /ui", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/ui/", http.StatusFound)
	})
	mux.HandleFunc("GET /ui/api/events", v.events)
	mux.HandleFunc("GET /ui/api/filter", v.checkFilter)
	mux.HandleFunc("GET /ui/api/sources", v.listSources)
	mux.HandleFunc("GET /ui/api/routes", v.listRoutes)
	mux.HandleFunc("GET /ui/api/chart", v.chartData)
	mux.HandleFunc("GET /ui/api/dlq", v.listDLQ)
	mux.HandleFunc("GET /ui/api/dlq/{seq}", v.showDLQ)
	mux.HandleFunc("POST /ui/api/dlq/{seq}/replay", v.replayDLQ)
	var h http.Handler = http.NewCrossOriginProtection().Handler(mux)
	h = secureHeaders(h)
	if creds != nil {
		h = creds.Require(h)
	}
	return h
}

// secureHeaders keeps the page from being framed or sniffed, and its
// scripts to its own origin.
func secureHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'")
		next.ServeHTTP(w, r)
	})
}

// noCache makes a browser revalidate the assets, so a new binary's page
// is used at once.
func noCache(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-cache")
		next.ServeHTTP(w, r)
	})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]string{"error": msg})
}
