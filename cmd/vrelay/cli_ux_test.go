package main

import (
	"bytes"
	"flag"
	"io"
	"net"
	"os"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/vrelay/vrelay/internal/natstest"
	"github.com/vrelay/vrelay/streams"
)

func TestParseArgsInterleaved(t *testing.T) {
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	cfg := fs.String("config", "", "")
	all := fs.Bool("all", false, "")
	pos, err := parseArgs(fs, []string{"7", "-config", "f.yaml", "8", "-all", "--", "-9"})
	if err != nil {
		t.Fatal(err)
	}
	if *cfg != "f.yaml" || !*all || !slices.Equal(pos, []string{"7", "8", "-9"}) {
		t.Fatalf("config %q all %v args %q; want f.yaml true [7 8 -9]", *cfg, *all, pos)
	}
}

func TestHelpAndVersion(t *testing.T) {
	for _, args := range [][]string{{"dlq", "-h"}, {"dlq", "help"}, {"checkpoint", "--help"}} {
		code, out, errOut := runCLI(args...)
		if code != 0 || !strings.Contains(out, "Usage:") {
			t.Errorf("%v: code %d, out %q, err %q; want 0 and the usage", args, code, out, errOut)
		}
	}
	for _, args := range [][]string{{"version"}, {"--version"}, {"-version"}} {
		if code, out, _ := runCLI(args...); code != 0 || !strings.HasPrefix(out, "vrelay ") {
			t.Errorf("%v: code %d, out %q", args, code, out)
		}
	}
	_, out, _ := runCLI("help")
	for _, want := range []string{"-server URL", "-n MAX", "-all", "-yes", "migrate", "--version"} {
		if !strings.Contains(out, want) {
			t.Errorf("top-level help lacks %q:\n%s", want, out)
		}
	}
	bi := &debug.BuildInfo{GoVersion: "go1.25.1", Main: debug.Module{Version: "v0.3.0"}, Settings: []debug.BuildSetting{
		{Key: "vcs.revision", Value: "0123456789abcdef0123"}, {Key: "vcs.time", Value: "2026-11-27T10:00:00Z"}, {Key: "vcs.modified", Value: "true"},
	}}
	if got, want := formatVersion("", bi), "v0.3.0 (go1.25.1, revision 0123456789ab, 2026-11-27T10:00:00Z, modified)"; got != want {
		t.Errorf("formatVersion = %q, want %q", got, want)
	}
	if got := formatVersion("v1.0.0", nil); got != "v1.0.0" {
		t.Errorf("formatVersion with ldflags = %q", got)
	}
}

func TestProgressDisplay(t *testing.T) {
	var plain bytes.Buffer
	p := newProgress(&plain, "replayed", "dead letters")
	for i := 1; i <= 1000; i++ {
		p.update(i, 1000, "")
	}
	p.done()
	lines := strings.Split(strings.TrimSpace(plain.String()), "\n")
	if len(lines) != 10 || lines[9] != "replayed 1000/1000 dead letters" || strings.Contains(plain.String(), "\r") {
		t.Errorf("plain progress: %d lines, %q; want 10 plain lines ending in 1000/1000", len(lines), plain.String())
	}

	defer func(f func(any) bool) { isTerminal = f }(isTerminal)
	isTerminal = func(any) bool { return true }
	var tty bytes.Buffer
	p = newProgress(&tty, "replayed", "dead letters")
	p.update(5, 10, "")
	p.done()
	if want := "\r[###############---------------] replayed 5/10 dead letters\x1b[K\n"; tty.String() != want {
		t.Errorf("terminal progress %q, want %q", tty.String(), want)
	}
}

const routerConfig = `apiVersion: event-router.vmware.com/v1alpha1
kind: RouterConfig
metadata:
  name: router-config-knative
eventProvider:
  type: vcenter
  name: vc-01
  vcenter:
    address: https://vcenter.corp.local/sdk
    insecureSSL: false
    checkpoint: true
    auth:
      type: basic_auth
      basicAuth:
        username: administrator@vsphere.local
        password: NotThisOne1
eventProcessor:
  type: knative
  name: broker
  knative:
    encoding: binary
    insecureSSL: false
    destination:
      ref:
        apiVersion: eventing.knative.dev/v1
        kind: Broker
        name: default
        namespace: vmware-functions
`

func TestMigrateCommand(t *testing.T) {
	dir := t.TempDir()
	in := filepath.Join(dir, "router.yaml")
	out := filepath.Join(dir, "vrelay.yaml")
	if err := os.WriteFile(in, []byte(routerConfig), 0o600); err != nil {
		t.Fatal(err)
	}
	// Given to validate or run, a RouterConfig gets one pointer to migrate.
	for _, cmd := range []string{"validate", "run"} {
		code, _, errOut := runCLI(cmd, "-config", in)
		if code != 1 || !strings.Contains(errOut, "VMware Event Router RouterConfig") ||
			!strings.Contains(errOut, "vrelay migrate") || strings.Contains(errOut, "unknown field") {
			t.Errorf("%s of a RouterConfig: code %d, stderr %q; want 1 and a pointer to vrelay migrate", cmd, code, errOut)
		}
	}
	code, stdout, errOut := runCLI("migrate", "-from", in, "-o", out)
	if code != 0 || stdout != "" || !strings.Contains(errOut, "wrote 1 source and 1 route") ||
		!strings.Contains(errOut, "environment variable VC_01_PASSWORD") {
		t.Fatalf("migrate: code %d, stdout %q, stderr %q", code, stdout, errOut)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(b)+errOut, "NotThisOne1") {
		t.Fatalf("the password reached the output:\n%s", b)
	}
	if code, vout, verr := runCLI("validate", "-config", out); code != 0 {
		t.Fatalf("validate of the migrated config: code %d, %s%s\n%s", code, vout, verr, b)
	}
	// To stdout, with the file after the flags.
	if code, stdout, _ := runCLI("migrate", in); code != 0 || !strings.Contains(stdout, "format: router") {
		t.Errorf("migrate to stdout: code %d, out %q", code, stdout)
	}
	if code, _, _ := runCLI("migrate"); code != 2 {
		t.Errorf("migrate without -from: code %d, want 2", code)
	}
}

// putDeadLetter stores a dead letter of route as the dispatcher would.
func putDeadLetter(t *testing.T, js jetstream.JetStream, route, id string) {
	t.Helper()
	d := streams.DeadLetter{Route: route, Reason: "status 400", Failure: streams.FailurePermanent, Attempts: 1,
		FailedAt: time.Now(), Origin: streams.Origin{Subject: "vmware.webhook.x.t", Stream: streams.EventStream, Sequence: 1}}
	m := d.Msg([]byte(`{"specversion":"1.0","id":"`+id+`","source":"s","type":"t"}`), nil, streams.EventStream, uint64(len(id)))
	m.Header.Set("Ce-Id", id)
	if _, err := js.PublishMsg(t.Context(), m); err != nil {
		t.Fatal(err)
	}
}

func TestDLQRoughEdges(t *testing.T) {
	_, js := natstest.Run(t)
	url := js.Conn().ConnectedUrl()
	putDeadLetter(t, js, "r1", "a")
	putDeadLetter(t, js, "r1", "bb")
	putDeadLetter(t, js, "r2", "ccc")

	// Flags after the arguments.
	if code, out, errOut := runCLI("dlq", "show", "1", "-server", url); code != 0 || !strings.Contains(out, "Vrelay-Route: r1") {
		t.Errorf("dlq show 1 -server: code %d, out %q, err %q", code, out, errOut)
	}
	if code, _, errOut := runCLI("dlq", "show", "9999", "-server", url); code != 1 || !strings.Contains(errOut, "no dead letter 9999") {
		t.Errorf("dlq show 9999: code %d, stderr %q; want no dead letter 9999", code, errOut)
	}
	code, out, errOut := runCLI("dlq", "list", "-route", "nosuch", "-server", url)
	if code != 0 || !strings.Contains(out, "0 dead letters") || !strings.Contains(errOut, `route "nosuch" has no dead letters`) ||
		!strings.Contains(errOut, "r1 (2), r2 (1)") {
		t.Errorf("dlq list -route nosuch: code %d, out %q, stderr %q", code, out, errOut)
	}

	// On a terminal, purge asks; "n" keeps everything, "y" purges.
	defer func(f func(any) bool, r io.Reader) { isTerminal, stdin = f, r }(isTerminal, stdin)
	isTerminal = func(f any) bool { return f == stdinFile }
	stdin = strings.NewReader("n\n")
	code, out, _ = runCLI("dlq", "purge", "-route", "r2", "-server", url)
	if code != 1 || !strings.Contains(out, "purge 1 dead letter? [y/N]") || !strings.Contains(out, "nothing purged") {
		t.Errorf("purge answered n: code %d, out %q", code, out)
	}
	if n := natstest.Count(t, js, streams.DLQStream); n != 3 {
		t.Fatalf("%d dead letters after a refused purge, want 3", n)
	}
	stdin = strings.NewReader("y\n")
	if code, out, _ = runCLI("dlq", "purge", "-route", "r2", "-server", url); code != 0 || !strings.Contains(out, "purged 1 dead letter\n") {
		t.Errorf("purge answered y: code %d, out %q", code, out)
	}
	stdin = strings.NewReader("")
	// -yes asks nothing. Replay reports in the singular, with progress.
	code, out, errOut = runCLI("dlq", "replay", "-route", "r1", "1", "-server", url)
	if code != 0 || !strings.Contains(out, "replayed 1 dead letter into") || !strings.Contains(errOut, "replayed 1/1 dead letters") {
		t.Errorf("dlq replay: code %d, out %q, stderr %q", code, out, errOut)
	}
	if code, out, _ = runCLI("dlq", "purge", "-all", "-yes", "-server", url); code != 0 || strings.Contains(out, "[y/N]") || !strings.Contains(out, "purged 1 dead letter") {
		t.Errorf("purge -all -yes: code %d, out %q", code, out)
	}
}

func TestCheckpointRoughEdges(t *testing.T) {
	_, js := natstest.Run(t)
	url := js.Conn().ConnectedUrl()
	kv, err := js.KeyValue(t.Context(), streams.CheckpointBucket)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Put(t.Context(), "vcenter.vc01", []byte(`{"lastEventKey":42}`)); err != nil {
		t.Fatal(err)
	}
	code, _, errOut := runCLI("checkpoint", "show", "lab", "-server", url)
	if code != 1 || !strings.Contains(errOut, "no checkpoint lab") || !strings.Contains(errOut, "vcenter.vc01") || strings.Contains(errOut, "nats:") {
		t.Errorf("checkpoint show lab: code %d, stderr %q; want the keys there are", code, errOut)
	}
	// A replica holds the source's lease: delete refuses, -force deletes.
	leases, err := js.KeyValue(t.Context(), streams.LeaseBucket)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := leases.Put(t.Context(), "vcenter.vc01", []byte(`{"holder":"host-1/123"}`)); err != nil {
		t.Fatal(err)
	}
	code, _, errOut = runCLI("checkpoint", "delete", "vcenter.vc01", "-server", url)
	if code != 1 || !strings.Contains(errOut, "host-1/123 holds the lease") || !strings.Contains(errOut, "-force") {
		t.Errorf("checkpoint delete while running: code %d, stderr %q", code, errOut)
	}
	if _, err := kv.Get(t.Context(), "vcenter.vc01"); err != nil {
		t.Fatalf("the refused delete deleted: %v", err)
	}
	if code, out, errOut := runCLI("checkpoint", "delete", "vcenter.vc01", "-force", "-server", url); code != 0 || !strings.Contains(out, "deleted") {
		t.Errorf("checkpoint delete -force: code %d, out %q, err %q", code, out, errOut)
	}
}

// While vrelay runs with its embedded NATS listener, checkpoint delete
// refuses: the running source would save its position again at once.
func TestCheckpointDeleteWhileEmbeddedRuns(t *testing.T) {
	srv := natstest.Start(t, t.TempDir(), "127.0.0.1:0")
	_, js := natstest.Connect(t, srv.ClientURL())
	var sc streams.Config
	sc.SetDefaults()
	if err := streams.Ensure(t.Context(), js, sc, nil); err != nil {
		t.Fatal(err)
	}
	kv, err := js.KeyValue(t.Context(), streams.CheckpointBucket)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Put(t.Context(), "vcenter.vc01", []byte(`{}`)); err != nil {
		t.Fatal(err)
	}
	listen := strings.TrimPrefix(srv.ClientURL(), "nats://")
	cfg := filepath.Join(t.TempDir(), "vrelay.yaml")
	doc := "nats:\n  embedded:\n    listen: " + listen + "\n    dataDir: " + filepath.Join(t.TempDir(), "data") + "\nroutes:\n  - {name: a, sink: {type: log}}\n"
	if err := os.WriteFile(cfg, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	code, _, errOut := runCLI("checkpoint", "delete", "vcenter.vc01", "-config", cfg)
	if code != 1 || !strings.Contains(errOut, "vrelay is running (its embedded NATS listener on "+listen+" answered)") ||
		!strings.Contains(errOut, "Stop vrelay") {
		t.Errorf("checkpoint delete on a running vrelay: code %d, stderr %q", code, errOut)
	}
	if _, err := kv.Get(t.Context(), "vcenter.vc01"); err != nil {
		t.Fatalf("the refused delete deleted: %v", err)
	}
	if code, _, errOut := runCLI("checkpoint", "delete", "-force", "vcenter.vc01", "-config", cfg); code != 0 {
		t.Errorf("checkpoint delete -force: code %d, stderr %q", code, errOut)
	}
}

// An external NATS that cannot be reached is named, not a bare timeout.
func TestExternalNATSUnreachable(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	cfg := filepath.Join(t.TempDir(), "vrelay.yaml")
	doc := "nats:\n  external:\n    url: nats://" + addr + "\n    connectTimeout: 1s\nroutes:\n  - {name: a, sink: {type: log}}\n"
	if err := os.WriteFile(cfg, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	code, _, errOut := runCLI("dlq", "list", "-config", cfg)
	if code != 1 || !strings.Contains(errOut, "cannot reach NATS at nats://"+addr) {
		t.Errorf("dlq list with NATS down: code %d, stderr %q; want the URL named", code, errOut)
	}
}
