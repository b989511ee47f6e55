package ui_test

import (
	"context"
	"errors"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/vrelay/vrelay/consumers/deadletter"
	"github.com/vrelay/vrelay/internal/auth"
	"github.com/vrelay/vrelay/internal/natstest"
	"github.com/vrelay/vrelay/internal/secret"
	"github.com/vrelay/vrelay/internal/ui"
	"github.com/vrelay/vrelay/streams"
)

// browser starts headless Chromium from VRELAY_CHROMIUM (make test sets
// it; `make chromium` installs it) with a fresh profile and nothing that
// reaches out to the network, and returns a context for chromedp.
func browser(t *testing.T) context.Context {
	t.Helper()
	path := os.Getenv("VRELAY_CHROMIUM")
	if path == "" {
		t.Skip("VRELAY_CHROMIUM is not set: run `make chromium` and set it to the chromium binary (make test does both)")
	}
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(path),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.Flag("headless", true),
		chromedp.Flag("no-sandbox", true),
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("no-first-run", true),
		chromedp.Flag("no-default-browser-check", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-extensions", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.WindowSize(1400, 900),
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelCtx := chromedp.NewContext(actx)
	t.Cleanup(func() { cancelCtx(); cancelAlloc() })
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	t.Cleanup(cancel)
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start chromium %s: %v", path, err)
	}
	return ctx
}

// screenshot writes the page to name.png in VRELAY_SCREENSHOTS, or in the
// test's temporary directory, and logs where.
func screenshot(t *testing.T, ctx context.Context, dir, name string) {
	t.Helper()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot %s: %v", name, err)
	}
	p := filepath.Join(dir, name+".png")
	if err := os.WriteFile(p, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s", p)
}

// waitJS polls a JavaScript expression until it is true.
func waitJS(t *testing.T, ctx context.Context, what, expr string) {
	t.Helper()
	if _, err := chromedp.Run(ctx, chromedp.Poll[chromedp.Void](expr, chromedp.WithPollingTimeout(20*time.Second))); err != nil {
		last, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.querySelector("main").innerText.slice(0, 2000)`))
		t.Fatalf("%s: %v\npage: %s", what, err, last)
	}
}

func evalStrings(t *testing.T, ctx context.Context, expr string) []string {
	t.Helper()
	out, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](expr))
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestBrowser drives the page in headless Chromium behind basic
// authentication: stored and live events appear, side by side from two
// vCenters; a filter narrows them; a bad filter shows its position; an
// event expands to its JSON; a dead letter is shown and replayed.
func TestBrowser(t *testing.T) {
	ctx := browser(t)
	shots := os.Getenv("VRELAY_SCREENSHOTS")
	if shots == "" {
		shots = t.TempDir()
	}

	_, js := natstest.Run(t)
	reg := prometheus.NewRegistry()
	runRoute(t, js, "to-cmdb", reg)
	t.Setenv("VRELAY_TEST_UI_PW", "browser-s3cret")
	creds, err := auth.Config{User: "admin", Password: secret.Ref{FromEnv: "VRELAY_TEST_UI_PW"}}.Resolve()
	if err != nil {
		t.Fatal(err)
	}
	v, _ := startViewer(t, js, ui.WithGatherer(reg), ui.WithRoutes([]ui.Route{{Name: "to-cmdb", Subjects: []string{"vmware.>"}}}))
	srv := newServer(t, v.Handler(creds))

	publish(t, js, "vc01", "VmPoweredOnEvent", "prod-web")
	publish(t, js, "vc02", "VmPoweredOffEvent", "test-db")
	publish(t, js, "vc02", "VmPoweredOnEvent", "bad-vm")

	u, _ := url.Parse(srv.URL + "/ui/")
	u.User = url.UserPassword("admin", "browser-s3cret")
	if err := chromedp.Do(ctx, chromedp.Navigate(u.String())); err != nil {
		t.Fatal(err)
	}
	waitJS(t, ctx, "the stored events", `document.querySelectorAll("#events li.ev").length === 3`)
	publish(t, js, "vc01", "VmCreatedEvent", "prod-live")
	waitJS(t, ctx, "a live event", `[...document.querySelectorAll("#events li.ev .id")].some(e => e.textContent.includes("prod-live"))`)
	waitJS(t, ctx, "both vCenters in the source list", `document.querySelectorAll("#sources input").length === 2`)
	waitJS(t, ctx, "the route's dead letter", `document.querySelector("#routes tr[data-route=to-cmdb] .dlq-count")?.textContent === "1"`)
	screenshot(t, ctx, shots, "1-events")

	// Filter: only the prod- VMs.
	if err := chromedp.Do(ctx,
		chromedp.SetValue(chromedp.ID("filter"), `data.Vm.Name startsWith "prod-"`),
		chromedp.Click(chromedp.ID("apply")),
	); err != nil {
		t.Fatal(err)
	}
	waitJS(t, ctx, "the filtered list", `document.querySelectorAll("#events li.ev").length === 2`)
	ids := evalStrings(t, ctx, `[...document.querySelectorAll("#events li.ev .id")].map(e => e.textContent)`)
	for _, id := range ids {
		if !strings.Contains(id, "prod-") {
			t.Errorf("filtered list: got %q, want prod- VMs only", ids)
		}
	}
	publish(t, js, "vc02", "VmPoweredOnEvent", "test-live")
	publish(t, js, "vc02", "VmPoweredOnEvent", "prod-vc02")
	waitJS(t, ctx, "a live match", `[...document.querySelectorAll("#events li.ev .id")].some(e => e.textContent.includes("prod-vc02"))`)
	if ids := evalStrings(t, ctx, `[...document.querySelectorAll("#events li.ev .id")].map(e => e.textContent)`); strings.Contains(strings.Join(ids, " "), "test-live") {
		t.Errorf("filtered list: got %q, want no test-live", ids)
	}

	// Expand the newest event: its pretty JSON with data.
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS("#events li.ev .row"))); err != nil {
		t.Fatal(err)
	}
	pre, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("#events li.ev pre")))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(pre, `"Name": "prod-vc02"`) || !strings.Contains(pre, `"type": "com.vmware.vsphere.VmPoweredOnEvent.v0"`) {
		t.Errorf("expanded event: got %q, want its pretty JSON with data", pre)
	}
	screenshot(t, ctx, shots, "2-filtered")

	// Pause: nothing new shows; resume: what came meanwhile shows.
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.ID("pause"))); err != nil {
		t.Fatal(err)
	}
	waitJS(t, ctx, "paused", `document.querySelector("#status").textContent === "paused"`)
	publish(t, js, "vc01", "VmPoweredOnEvent", "prod-while-paused")
	// The stream is closed while paused: give a stray event time to land.
	<-time.After(300 * time.Millisecond)
	if ids := evalStrings(t, ctx, `[...document.querySelectorAll("#events li.ev .id")].map(e => e.textContent)`); strings.Contains(strings.Join(ids, " "), "prod-while-paused") {
		t.Errorf("paused list: got %q, want no prod-while-paused", ids)
	}
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.ID("pause"))); err != nil {
		t.Fatal(err)
	}
	waitJS(t, ctx, "the event stored while paused", `[...document.querySelectorAll("#events li.ev .id")].some(e => e.textContent.includes("prod-while-paused"))`)

	// A filter that does not compile: its position, and the list stays.
	if err := chromedp.Do(ctx,
		chromedp.SetValue(chromedp.ID("filter"), `subject == "a" &&& x`),
		chromedp.Click(chromedp.ID("apply")),
	); err != nil {
		t.Fatal(err)
	}
	waitJS(t, ctx, "the filter error", `!document.querySelector("#filter-error").hidden`)
	msg, err := chromedp.Run(ctx, chromedp.Text(chromedp.ID("filter-error-text")))
	if err != nil {
		t.Fatal(err)
	}
	snippet, err := chromedp.Run(ctx, chromedp.TextContent(chromedp.ID("filter-error-snippet")))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(msg, "line 1, column 18: ") || !strings.Contains(snippet, "^") {
		t.Errorf("filter error: got %q %q, want line 1, column 18 with a caret", msg, snippet)
	}
	screenshot(t, ctx, shots, "3-bad-filter")

	// Dead letters: show one, then replay it.
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS("#routes tr[data-route=to-cmdb] .dlq-count a"))); err != nil {
		t.Fatal(err)
	}
	waitJS(t, ctx, "the dead letter", `document.querySelectorAll("#dlq tr.letter").length === 1`)
	attr, err := chromedp.Run(ctx, chromedp.AttributeValue(chromedp.CSS("#dlq tr.letter"), "data-seq"))
	if err != nil {
		t.Fatal(err)
	}
	seqText := attr.Value
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS("#dlq tr.letter button.show"))); err != nil {
		t.Fatal(err)
	}
	waitJS(t, ctx, "the letter's detail", `(document.querySelector("#dlq tr.letter-detail pre")?.textContent || "").includes("bad-vm")`)
	screenshot(t, ctx, shots, "4-dead-letter")
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS("#dlq tr.letter button.replay"))); err != nil {
		t.Fatal(err)
	}
	waitJS(t, ctx, "the replay message", `document.querySelector("#dlq-msg").textContent.startsWith("replayed dead letter `+seqText+` to route to-cmdb")`)
	seq, err := strconv.ParseUint(seqText, 10, 64)
	if err != nil {
		t.Fatalf("data-seq %q: %v", seqText, err)
	}
	if _, err := deadletter.Get(t.Context(), js, seq); !errors.Is(err, jetstream.ErrMsgNotFound) {
		t.Errorf("dead letter %d after the replay: got %v, want it gone", seq, err)
	}
	rs, err := js.Stream(t.Context(), streams.ReplayStream)
	if err != nil {
		t.Fatal(err)
	}
	// The route may have taken it already: count what was stored.
	if n := rs.CachedInfo().State.LastSeq; n != 1 {
		t.Errorf("replay stream: got %d stored, want 1", n)
	}
	// The route fails the replayed event again: a new dead letter.
	waitJS(t, ctx, "the replayed event's new dead letter", `[...document.querySelectorAll("#dlq tr.letter")].some(r => r.dataset.seq !== "`+seqText+`") || (document.querySelector("#dlq-refresh").click(), false)`)
	screenshot(t, ctx, shots, "5-replayed")
}
