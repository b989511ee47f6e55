package main

import (
	"html/template"
	"log/slog"
	"net/http"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/vrelay/vrelay/internal/config"
	"github.com/vrelay/vrelay/internal/ui"
)

// newViewer is the event viewer of http.ui: every configured route and
// source, whatever the role, so a producers-only process shows the routes'
// pending events and dead letters too.
func newViewer(cfg *config.Config, js jetstream.JetStream, reg prometheus.Gatherer, log *slog.Logger) *ui.Viewer {
	routes := make([]ui.Route, 0, len(cfg.Routes))
	for _, r := range cfg.Routes {
		routes = append(routes, ui.Route{Name: r.Name, Subjects: r.Subjects, Filter: r.Filter})
	}
	sources := make([]ui.Source, 0, len(cfg.Sources))
	for _, s := range cfg.Sources {
		sources = append(sources, ui.Source{Provider: s.Provider(), Name: s.Name})
	}
	return ui.New(js, ui.WithSubjectRoot(cfg.Streams.SubjectRoot), ui.WithRoutes(routes),
		ui.WithSources(sources), ui.WithGatherer(reg), ui.WithLogger(log.With("component", "ui")))
}

var opsIndexPage = template.Must(template.New("index").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>vrelay</title></head>
<body><h1>vrelay</h1><ul>
{{if .}}<li><a href="/ui/">/ui</a>: event viewer</li>
{{end}}<li><a href="/metrics">/metrics</a>: Prometheus metrics</li>
<li><a href="/healthz">/healthz</a>: liveness</li>
<li><a href="/readyz">/readyz</a>: readiness, with each source's state</li>
</ul></body></html>
`))

// opsIndex answers GET / with links to what the listener serves. It says
// nothing that is not in the documentation, so it needs no credentials.
func opsIndex(withUI bool) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		_ = opsIndexPage.Execute(w, withUI)
	})
}
