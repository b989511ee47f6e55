package ui

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/vrelay/vrelay/consumers/deadletter"
	"github.com/vrelay/vrelay/streams"
)

// apiTimeout bounds the JetStream requests of one API call.
const apiTimeout = 10 * time.Second

// sourceInfo is one source of GET /ui/api/sources.
type sourceInfo struct {
	Provider string `json:"provider"`
	Source   string `json:"source"`
	// Events is how many events of it the stream holds.
	Events uint64 `json:"events"`
}

// sourceCounts returns the stored events per "<provider>.<source>", read
// from the stream's per-subject counts.
func (v *Viewer) sourceCounts(ctx context.Context) (map[string]uint64, error) {
	s, err := v.js.Stream(ctx, streams.EventStream)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", streams.EventStream, err)
	}
	info, err := s.Info(ctx, jetstream.WithSubjectFilter(v.o.root+".>"))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", streams.EventStream, err)
	}
	out := map[string]uint64{}
	for subj, n := range info.State.Subjects {
		rest, ok := strings.CutPrefix(subj, v.o.root+".")
		if !ok {
			continue
		}
		parts := strings.SplitN(rest, ".", 3)
		if len(parts) < 3 {
			continue
		}
		out[parts[0]+"."+parts[1]] += n
	}
	return out, nil
}

func (v *Viewer) listSources(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), apiTimeout)
	defer cancel()
	counts, err := v.sourceCounts(ctx)
	if err != nil {
		writeError(w, http.StatusServiceUnavailable, err.Error())
		return
	}
	for _, s := range v.o.sources {
		key := streams.Token(s.Provider) + "." + streams.Token(s.Name)
		if _, ok := counts[key]; !ok {
			counts[key] = 0
		}
	}
	out := make([]sourceInfo, 0, len(counts))
	for k, n := range counts {
		p, s, _ := strings.Cut(k, ".")
		out = append(out, sourceInfo{Provider: p, Source: s, Events: n})
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Provider != out[j].Provider {
			return out[i].Provider < out[j].Provider
		}
		return out[i].Source < out[j].Source
	})
	writeJSON(w, http.StatusOK, out)
}

// routeInfo is one route of GET /ui/api/routes.
type routeInfo struct {
	Route
	// Pending is how many events of the stream the route has not received
	// yet, and AckPending how many it received and has not finished (in
	// flight or waiting for a retry); both nil when its consumer does not
	// exist (yet).
	Pending    *uint64 `json:"pending"`
	AckPending *int    `json:"ackPending"`
	// Counts are this process's delivery outcomes (delivered, filtered,
	// filter_error, retry, dead_lettered) since it started.
	Counts map[string]float64 `json:"counts"`
	// DeadLetters is how many dead letters of the route the DLQ holds.
	DeadLetters int    `json:"deadLetters"`
	Error       string `json:"error,omitempty"`
}

func (v *Viewer) listRoutes(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), apiTimeout)
	defer cancel()
	counts := v.routeCounts()
	out := make([]routeInfo, 0, len(v.o.routes))
	for _, rt := range v.o.routes {
		ri := routeInfo{Route: rt, Counts: counts[rt.Name]}
		if ri.Counts == nil {
			ri.Counts = map[string]float64{}
		}
		c, err := v.js.Consumer(ctx, streams.EventStream, rt.Name)
		switch {
		case err == nil:
			info := c.CachedInfo()
			pending, ack := info.NumPending, info.NumAckPending
			ri.Pending, ri.AckPending = &pending, &ack
		case !errors.Is(err, jetstream.ErrConsumerNotFound):
			ri.Error = err.Error()
		}
		n, err := deadletter.Count(ctx, v.js, deadletter.Selector{Route: rt.Name})
		if err != nil {
			ri.Error = err.Error()
		}
		ri.DeadLetters = n
		out = append(out, ri)
	}
	writeJSON(w, http.StatusOK, out)
}

// routeCounts reads vrelay_deliveries_total from the gatherer: route ->
// outcome -> count.
func (v *Viewer) routeCounts() map[string]map[string]float64 {
	out := map[string]map[string]float64{}
	if v.o.gatherer == nil {
		return out
	}
	mfs, err := v.o.gatherer.Gather()
	if err != nil {
		v.o.log.Debug("gather metrics", "err", err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "vrelay_deliveries_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			var route, outcome string
			for _, l := range m.GetLabel() {
				switch l.GetName() {
				case "route":
					route = l.GetValue()
				case "outcome":
					outcome = l.GetValue()
				}
			}
			if out[route] == nil {
				out[route] = map[string]float64{}
			}
			out[route][outcome] = m.GetCounter().GetValue()
		}
	}
	return out
}

// letterInfo is a dead letter as the API shows it.
type letterInfo struct {
	Seq        uint64    `json:"seq"`
	Route      string    `json:"route"`
	Reason     string    `json:"reason"`
	Failure    string    `json:"failure"`
	Attempts   int       `json:"attempts"`
	FailedAt   time.Time `json:"failedAt"`
	EventID    string    `json:"eventId"`
	EventType  string    `json:"eventType"`
	Origin     string    `json:"origin"`
	Replayable bool      `json:"replayable"`
	// Why it is not replayable.
	Problem string `json:"problem,omitempty"`
}

func toLetterInfo(l deadletter.Letter) letterInfo {
	li := letterInfo{Seq: l.Sequence, Route: l.Route, Reason: l.Reason, Failure: l.Failure,
		Attempts: l.Attempts, FailedAt: l.FailedAt, EventID: l.EventID, EventType: l.EventType, Replayable: true}
	if l.Origin.Stream != "" {
		li.Origin = l.Origin.String()
	}
	if err := l.Check(); err != nil {
		li.Replayable, li.Problem = false, err.Error()
	}
	return li
}

func (v *Viewer) listDLQ(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), apiTimeout)
	defer cancel()
	q := r.URL.Query()
	sel := deadletter.Selector{Route: q.Get("route")}
	if sel.Route != "" && !validToken(sel.Route) {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("route: %q is not a route name", sel.Route))
		return
	}
	limit := 100
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > 1000 {
			writeError(w, http.StatusBadRequest, "limit: want a number from 1 to 1000")
			return
		}
		limit = n
	}
	letters, err := deadletter.List(ctx, v.js, sel, limit)
	if err != nil {
		writeError(w, http.StatusServiceUnavailable, err.Error())
		return
	}
	total := len(letters)
	if total == limit {
		if total, err = deadletter.Count(ctx, v.js, sel); err != nil {
			writeError(w, http.StatusServiceUnavailable, err.Error())
			return
		}
	}
	out := struct {
		Letters []letterInfo `json:"letters"`
		Total   int          `json:"total"`
	}{Letters: make([]letterInfo, 0, len(letters)), Total: total}
	for _, l := range letters {
		out.Letters = append(out.Letters, toLetterInfo(l))
	}
	writeJSON(w, http.StatusOK, out)
}

func parseSeq(w http.ResponseWriter, r *http.Request) (uint64, bool) {
	seq, err := strconv.ParseUint(r.PathValue("seq"), 10, 64)
	if err != nil || seq == 0 {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("%q is not a dead-letter sequence", r.PathValue("seq")))
		return 0, false
	}
	return seq, true
}

func (v *Viewer) showDLQ(w http.ResponseWriter, r *http.Request) {
	seq, ok := parseSeq(w, r)
	if !ok {
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), apiTimeout)
	defer cancel()
	l, err := deadletter.Get(ctx, v.js, seq)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		writeError(w, http.StatusNotFound, fmt.Sprintf("no dead letter %d", seq))
		return
	}
	if err != nil {
		writeError(w, http.StatusServiceUnavailable, err.Error())
		return
	}
	out := struct {
		letterInfo
		Headers map[string][]string `json:"headers"`
		Event   json.RawMessage     `json:"event,omitempty"`
		Raw     string              `json:"raw,omitempty"`
	}{letterInfo: toLetterInfo(l), Headers: l.Header}
	if json.Valid(l.Data) {
		out.Event = l.Data
	} else {
		out.Raw = string(l.Data)
	}
	writeJSON(w, http.StatusOK, out)
}

func (v *Viewer) replayDLQ(w http.ResponseWriter, r *http.Request) {
	seq, ok := parseSeq(w, r)
	if !ok {
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), apiTimeout)
	defer cancel()
	done, err := deadletter.Replay(ctx, v.js, deadletter.Selector{Sequences: []uint64{seq}})
	if err != nil {
		status := http.StatusServiceUnavailable
		if errors.Is(err, streams.ErrNotDeadLetter) {
			status = http.StatusConflict
		}
		writeError(w, status, err.Error())
		return
	}
	if len(done) == 0 {
		writeError(w, http.StatusNotFound, fmt.Sprintf("no dead letter %d", seq))
		return
	}
	v.o.log.Info("dead letter replayed from the viewer", "seq", seq, "route", done[0].Route,
		"replay_seq", done[0].ReplaySequence, "remote", r.RemoteAddr)
	d := done[0]
	writeJSON(w, http.StatusOK, replayed{Seq: d.Sequence, Route: d.Route, Subject: d.Subject,
		ReplaySeq: d.ReplaySequence, Duplicate: d.Duplicate})
}

// replayed answers a replay: see deadletter.Replayed.
type replayed struct {
	Seq       uint64 `json:"seq"`
	Route     string `json:"route"`
	Subject   string `json:"subject"`
	ReplaySeq uint64 `json:"replaySeq"`
	Duplicate bool   `json:"duplicate"`
}
