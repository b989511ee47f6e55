package main

import (
	"bytes"
	"crypto/tls"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats-server/v2/server"
	natsserver "github.com/nats-io/nats-server/v2/test"
	"github.com/vmware/govmomi/simulator"

	"github.com/vrelay/vrelay/consumers/eventbridge/ebtest"
	"github.com/vrelay/vrelay/producers/horizon/horizontest"
)

// secretValues are the distinctive values of every secret the test sets,
// by the environment variable that holds each. No output may contain any.
var secretValues = map[string]string{
	"VRELAY_T_NATS_PASSWORD":     "s3cr3t-natsconn-41b8",
	"VRELAY_T_WEBHOOK_TOKEN":     "s3cr3t-webhook-7f1c",
	"VRELAY_T_WEBHOOK_PASSWORD":  "s3cr3t-webhookbasic-9e2a",
	"VRELAY_T_VCENTER_PASSWORD":  "s3cr3t-vcenter-c3d0",
	"VRELAY_T_VCENTER_WRONG":     "s3cr3t-vcwrong-55a1",
	"VRELAY_T_HORIZON_PASSWORD":  "s3cr3t-horizon-0b7e",
	"VRELAY_T_HORIZON_WRONG":     "s3cr3t-hzwrong-a6f3",
	"VRELAY_T_SINK_TOKEN":        "s3cr3t-sinktoken-2a9d",
	"VRELAY_T_SINK_PASSWORD":     "s3cr3t-sinkbasic-e4c7",
	"VRELAY_T_SINK_DOWN_TOKEN":   "s3cr3t-sinkdown-1d3f",
	"VRELAY_T_NATSSINK_PASSWORD": "s3cr3t-natssink-8c21",
	"VRELAY_T_NATSSINK_DOWN":     "s3cr3t-natsdown-77e9",
	"VRELAY_T_AWS_KEY_ID":        "s3cr3t-awskeyid-3f0a",
	"VRELAY_T_AWS_SECRET":        "s3cr3t-awssecret-b912",
	"VRELAY_T_AWS_SESSION":       "s3cr3t-awssession-6e4d",
}

// leaks names every secret that out contains, and the secrets written
// into URLs of the validate test.
func leaks(out string, extra ...string) []string {
	var found []string
	for _, v := range secretValues {
		if strings.Contains(out, v) {
			found = append(found, v)
		}
	}
	for _, v := range extra {
		if strings.Contains(out, v) {
			found = append(found, v)
		}
	}
	sort.Strings(found)
	return found
}

func secretEnv() []string {
	env := os.Environ()
	for k, v := range secretValues {
		env = append(env, k+"="+v)
	}
	return env
}

// TestNoSecretInAnyOutput runs the binary at debug level with every
// secret the configuration supports set (all but knative's, which needs a
// cluster), makes each of them fail in the ways that log (wrong webhook
// credentials, a credential sent without its scheme, sinks answering 401
// and 500 and quoting the Authorization header, unreachable hosts, wrong
// upstream passwords), and checks that no secret appears in stdout,
// stderr or any HTTP response.
func TestNoSecretInAnyOutput(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	bin := vrelayBinary(t)
	dir := t.TempDir()
	var bodies bytes.Buffer // every HTTP response body the test got from vrelay

	// vrelay's own NATS needs a password.
	ns := natsserver.RunServer(&server.Options{
		Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: t.TempDir(), NoLog: true, NoSigs: true,
		Username: "vrelay", Password: secretValues["VRELAY_T_NATS_PASSWORD"],
	})
	t.Cleanup(ns.Shutdown)
	// The NATS sink's own server, with another password.
	sinkNS := natsserver.RunServer(&server.Options{
		Host: "127.0.0.1", Port: -1, NoLog: true, NoSigs: true,
		Username: "sink", Password: secretValues["VRELAY_T_NATSSINK_PASSWORD"],
	})
	t.Cleanup(sinkNS.Shutdown)

	// A vCenter whose password is a secret; one source has it right, one wrong.
	m := simulator.VPX()
	m.ServiceContent.About.InstanceUuid = uuid.NewString()
	if err := m.Create(); err != nil {
		t.Fatal(err)
	}
	m.Service.TLS = new(tls.Config)
	m.Service.Listen = &url.URL{Host: "127.0.0.1:0", User: url.UserPassword("vrelay", secretValues["VRELAY_T_VCENTER_PASSWORD"])}
	vcs := m.Service.NewServer()
	t.Cleanup(func() { vcs.Close(); m.Remove() })
	vcCA, err := vcs.CertificateFile()
	if err != nil {
		t.Fatal(err)
	}
	vcAddr := *vcs.URL
	vcAddr.User = nil

	// A Horizon likewise, which also fails some requests.
	hz := horizontest.New(t, horizontest.WithCredentials(horizontest.Domain, horizontest.Username, secretValues["VRELAY_T_HORIZON_PASSWORD"]))
	hz.FailNext(3, http.StatusInternalServerError, nil)

	// Sinks that refuse and quote the Authorization header back.
	echo := func(status int) *httptest.Server {
		s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(status)
			fmt.Fprintf(w, "rejected Authorization: %s", r.Header.Get("Authorization"))
		}))
		t.Cleanup(s.Close)
		return s
	}
	sink401, sink500 := echo(http.StatusUnauthorized), echo(http.StatusInternalServerError)
	eb := ebtest.NewServer(t)
	eb.Call = func(int) *ebtest.CallError { return ebtest.Throttle() }
	closed := freePort(t) // nothing listens there

	hookBearer, hookBasic, opsAddr := freePort(t), freePort(t), freePort(t)
	delivery := `delivery: {startAt: all, maxAttempts: 3, backoff: {initial: 10ms, max: 50ms}, sendTimeout: 15s}`
	cfg := fmt.Sprintf(`
nats:
  external:
    url: %[1]q
    user: vrelay
    password: {fromEnv: VRELAY_T_NATS_PASSWORD}
http: {listen: %[2]q}
sources:
  - name: hook-bearer
    type: webhook
    webhook:
      listen: %[3]q
      auth: {bearer: {token: {fromEnv: VRELAY_T_WEBHOOK_TOKEN}}}
  - name: hook-basic
    type: webhook
    webhook:
      listen: %[4]q
      auth: {basic: {username: hooks, password: {fromEnv: VRELAY_T_WEBHOOK_PASSWORD}}}
  - name: vc-ok
    type: vcenter
    vcenter: {address: %[5]q, username: vrelay, password: {fromEnv: VRELAY_T_VCENTER_PASSWORD}, caFile: %[6]q}
  - name: vc-wrong
    type: vcenter
    vcenter: {address: %[5]q, username: vrelay, password: {fromEnv: VRELAY_T_VCENTER_WRONG}, caFile: %[6]q}
  - name: hz-ok
    type: horizon
    horizon: {address: %[7]q, domain: %[8]s, username: %[9]s, password: {fromEnv: VRELAY_T_HORIZON_PASSWORD}, caFile: %[10]q, pollInterval: 50ms}
  - name: hz-wrong
    type: horizon
    horizon: {address: %[7]q, domain: %[8]s, username: %[9]s, password: {fromEnv: VRELAY_T_HORIZON_WRONG}, caFile: %[10]q, pollInterval: 50ms}
routes:
  - name: http-401
    %[11]s
    sink: {type: http, http: {url: %[12]q, auth: {bearer: {token: {fromEnv: VRELAY_T_SINK_TOKEN}}}}}
  - name: http-500
    %[11]s
    sink: {type: http, http: {url: %[13]q, auth: {basic: {username: relay, password: {fromEnv: VRELAY_T_SINK_PASSWORD}}}}}
  - name: http-down
    %[11]s
    sink: {type: http, http: {url: "http://%[14]s/events", auth: {bearer: {token: {fromEnv: VRELAY_T_SINK_DOWN_TOKEN}}}}}
  - name: nats-ok
    %[11]s
    sink: {type: nats, nats: {subject: "republished.{type}", url: %[15]q, user: sink, password: {fromEnv: VRELAY_T_NATSSINK_PASSWORD}}}
  - name: nats-down
    %[11]s
    sink: {type: nats, nats: {subject: "republished.{type}", url: "nats://%[14]s", user: sink, password: {fromEnv: VRELAY_T_NATSSINK_DOWN}}}
  - name: eb
    %[11]s
    sink:
      type: eventbridge
      eventbridge:
        region: eu-west-1
        endpoint: %[16]q
        credentials:
          accessKeyId: {fromEnv: VRELAY_T_AWS_KEY_ID}
          secretAccessKey: {fromEnv: VRELAY_T_AWS_SECRET}
          sessionToken: {fromEnv: VRELAY_T_AWS_SESSION}
`, ns.ClientURL(), opsAddr, hookBearer, hookBasic, vcAddr.String(), vcCA,
		hz.URL(), horizontest.Domain, horizontest.Username, hz.CAFile(),
		delivery, sink401.URL, sink500.URL, closed, sinkNS.ClientURL(), eb.URL)
	config := filepath.Join(dir, "vrelay.yaml")
	writeFile(t, config, cfg)

	var out lockedBuffer
	cmd := exec.Command(bin, "run", "-config", config, "-log-level", "debug")
	cmd.Env = secretEnv()
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			<-done
		}
	})

	post := func(addr, authz string) int {
		req, err := http.NewRequest(http.MethodPost, "http://"+addr+"/", strings.NewReader(`{"n":1}`))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Ce-Specversion", "1.0")
		req.Header.Set("Ce-Id", uuid.NewString())
		req.Header.Set("Ce-Source", "/secrets-test")
		req.Header.Set("Ce-Type", "test.secret")
		if authz != "" {
			req.Header.Set("Authorization", authz)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return 0
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		bodies.WriteString(resp.Header.Get("WWW-Authenticate") + "\n")
		bodies.Write(b)
		return resp.StatusCode
	}
	token, password := secretValues["VRELAY_T_WEBHOOK_TOKEN"], secretValues["VRELAY_T_WEBHOOK_PASSWORD"]
	basic := func(user, pw string) string { return "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+pw)) }

	// Wait for both webhooks, then deliver one event through each.
	deadline := time.Now().Add(60 * time.Second)
	for post(hookBearer, "Bearer "+token) != http.StatusOK || post(hookBasic, basic("hooks", password)) != http.StatusOK {
		select {
		case err := <-done:
			t.Fatalf("vrelay exited: %v\n%s", err, out.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("webhooks did not accept events within 60s\n%s", out.String())
		}
		time.Sleep(50 * time.Millisecond)
	}

	// Wrong credentials, and right ones sent the wrong way.
	for _, authz := range []string{
		"Bearer:" + token, token, "Bearer\t" + token, token + " trailing", "Bearer " + token + "x",
		"Basic " + token, basic("hooks", token), password, basic(password, password),
	} {
		if code := post(hookBearer, authz); code != http.StatusUnauthorized {
			t.Errorf("bearer webhook answered %d to a wrong Authorization, want 401", code)
		}
		if code := post(hookBasic, authz); code != http.StatusUnauthorized {
			t.Errorf("basic webhook answered %d to a wrong Authorization, want 401", code)
		}
	}
	// The operations endpoint answers too.
	for _, path := range []string{"/readyz", "/healthz", "/metrics"} {
		if resp, err := http.Get("http://" + opsAddr + path); err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			bodies.Write(b)
		}
	}

	// Let every failure log: each failing route says it fails, the
	// wrong logins are rejected, and the refused events are dead-lettered.
	want := []string{
		"route is failing|route=http-401", "route is failing|route=http-500", "route is failing|route=http-down",
		"route is failing|route=nats-down", "route is failing|route=eb",
		"event dead-lettered|route=http-401",
		"vcenter rejected the username or password|source=vc-wrong",
		"horizon rejected the login|source=hz-wrong",
	}
	for {
		log := out.String()
		missing := ""
		for _, w := range want {
			msg, attr, _ := strings.Cut(w, "|")
			found := false
			for _, l := range strings.Split(log, "\n") {
				if strings.Contains(l, msg) && strings.Contains(l, attr) {
					found = true
					break
				}
			}
			if !found {
				missing = w
				break
			}
		}
		if missing == "" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no log line with %s within 60s\n%s", missing, log)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	<-done

	if found := leaks(out.String()); len(found) > 0 {
		t.Errorf("output of vrelay run holds secrets %q:\n%s", found, out.String())
	}
	if found := leaks(bodies.String()); len(found) > 0 {
		t.Errorf("HTTP responses hold secrets %q:\n%s", found, bodies.String())
	}

	// validate, on a configuration with errors around its secrets.
	inURL := []string{"s3cr3t-inurl-natsext-1111", "s3cr3t-inurl-http-2222", "s3cr3t-inurl-natssink-3333",
		"s3cr3t-inurl-vcenter-4444", "s3cr3t-inurl-horizon-5555", "s3cr3t-inurl-knative-6666", "s3cr3t-inurl-eb-7777",
		"s3cr3t-inurl-noscheme-8888"}
	bad := fmt.Sprintf(`
nats:
  external:
    url: "nats://vrelay:%[1]s@127.0.0.1:x"
    user: vrelay
    password: {fromEnv: VRELAY_T_NATS_PASSWORD, fromFile: /nonexistent}
sources:
  - name: hook
    type: webhook
    webhook:
      auth: {bearer: {token: {fromEnv: VRELAY_T_WEBHOOK_TOKEN}}, basic: {password: {fromEnv: VRELAY_T_WEBHOOK_PASSWORD}}}
  - name: vc
    type: vcenter
    vcenter: {address: "https://vrelay:%[4]s@vc.example", password: {fromEnv: VRELAY_T_VCENTER_PASSWORD}}
  - name: hz
    type: horizon
    horizon: {address: "https://vrelay:%[5]s@hz.example:bad", password: {fromEnv: VRELAY_T_HORIZON_PASSWORD}}
routes:
  - name: a
    sink: {type: http, http: {url: "https://relay:%[2]s@example.com:x/", auth: {bearer: {token: {fromEnv: VRELAY_T_SINK_TOKEN}}}}}
  - name: b
    sink: {type: nats, nats: {subject: "republished.x", url: "nats://sink:%[3]s@127.0.0.1:x", password: {fromEnv: VRELAY_T_NATSSINK_PASSWORD}}}
  - name: c
    sink: {type: knative, knative: {uri: "http://k:%[6]s@example.com:x/"}}
  - name: d
    sink: {type: eventbridge, eventbridge: {region: eu-west-1, endpoint: "https://k:%[7]s@example.com", credentials: {secretAccessKey: {fromEnv: VRELAY_T_AWS_SECRET}}}}
  - name: e
    sink: {type: nats, nats: {subject: "republished.y", url: "sink:%[8]s@127.0.0.1"}}
  - name: f
    sink: {type: http, http: {url: "https://relay:%[2]s%%zz@example.com/"}}
`, inURL[0], inURL[1], inURL[2], inURL[3], inURL[4], inURL[5], inURL[6], inURL[7])
	badPath := filepath.Join(dir, "bad.yaml")
	writeFile(t, badPath, bad)
	vcmd := exec.Command(bin, "validate", "-config", badPath)
	vcmd.Env = secretEnv()
	vout, err := vcmd.CombinedOutput()
	if err == nil {
		t.Errorf("validate accepted a bad configuration:\n%s", vout)
	}
	for _, field := range []string{"nats.external.url", "routes[0].sink.http.url", "routes[1].sink.nats.url", "routes[4].sink.nats.url"} {
		if !bytes.Contains(vout, []byte(field)) {
			t.Errorf("validate output does not name %s:\n%s", field, vout)
		}
	}
	if found := leaks(string(vout), inURL...); len(found) > 0 {
		t.Errorf("output of vrelay validate holds secrets %q:\n%s", found, vout)
	}
}
