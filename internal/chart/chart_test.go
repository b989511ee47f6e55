// Package chart_test checks the Helm chart in deploy/helm/vrelay the way
// `helm install` would: `helm lint` and `helm template` for the default
// values and every documented values set (deploy/helm/examples), the
// rendered objects' shape (probes, security context, disruption budget,
// spread, resources), the rendered vrelay.yaml against vrelay's own
// validation, and a server-side apply of every rendered object to a real
// kube-apiserver (internal/k8stest), so a wrong field, value or apiVersion
// fails here as it would fail in a cluster.
//
// helm comes from `make helm` (the nested module tools/helm), found through
// VRELAY_HELM; the API server from `make k8s-tools`, through VRELAY_K8S_BIN.
// `make test` sets both; without them the tests skip.
package chart_test

import (
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"

	"github.com/vrelay/vrelay/internal/config"
	"github.com/vrelay/vrelay/internal/k8stest"
)

// EnvHelm names the environment variable holding the path of the helm
// binary that `make helm` builds.
const EnvHelm = "VRELAY_HELM"

var (
	chartDir    = filepath.Join("..", "..", "deploy", "helm", "vrelay")
	examplesDir = filepath.Join("..", "..", "deploy", "helm", "examples")
)

// valueSets returns the documented values sets by name: the chart's
// defaults ("default", no file) and each file in deploy/helm/examples.
func valueSets(t *testing.T) map[string]string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(examplesDir, "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no values sets in %s (%v)", examplesDir, err)
	}
	sets := map[string]string{"default": ""}
	for _, f := range files {
		sets[strings.TrimSuffix(filepath.Base(f), ".yaml")] = f
	}
	return sets
}

func helmBin(t *testing.T) string {
	t.Helper()
	p := os.Getenv(EnvHelm)
	if p == "" {
		t.Skipf("%s is not set: run `make helm` and set it to the binary it prints, or run `make test`", EnvHelm)
	}
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("%s=%s: %v (run `make helm`)", EnvHelm, p, err)
	}
	return p
}

// helm runs helm offline with HOME in a temporary folder and returns its
// standard output, or its error output in the error.
func helm(t *testing.T, args ...string) (string, error) {
	t.Helper()
	cmd := exec.CommandContext(t.Context(), helmBin(t), args...)
	home := t.TempDir()
	cmd.Env = append(os.Environ(), "HOME="+home, "XDG_CACHE_HOME="+home, "XDG_CONFIG_HOME="+home, "XDG_DATA_HOME="+home)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return string(out), errors.New(strings.TrimSpace(stderr.String()))
	}
	return string(out), nil
}

// render runs `helm template` for release rel in namespace ns with the
// values files given.
func render(t *testing.T, ns string, values ...string) (string, error) {
	t.Helper()
	args := []string{"template", "vrelay", chartDir, "--namespace", ns}
	for _, v := range values {
		if v != "" {
			args = append(args, "-f", v)
		}
	}
	return helm(t, args...)
}

// object is one rendered manifest.
type object struct {
	Kind string
	Name string
	Raw  map[string]any
}

func parse(t *testing.T, manifests string) []object {
	t.Helper()
	var objs []object
	dec := yaml.NewDecoder(strings.NewReader(manifests))
	for {
		var m map[string]any
		err := dec.Decode(&m)
		if errors.Is(err, io.EOF) {
			return objs
		}
		if err != nil {
			t.Fatalf("rendered manifests are not YAML: %v", err)
		}
		if m == nil {
			continue
		}
		kind, _ := m["kind"].(string)
		md, _ := m["metadata"].(map[string]any)
		name, _ := md["name"].(string)
		objs = append(objs, object{Kind: kind, Name: name, Raw: m})
	}
}

// into converts a rendered object into a typed API object.
func into(t *testing.T, o object, v any) {
	t.Helper()
	b, err := json.Marshal(o.Raw)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("%s %s: %v", o.Kind, o.Name, err)
	}
}

func find(t *testing.T, objs []object, kind string) object {
	t.Helper()
	for _, o := range objs {
		if o.Kind == kind {
			return o
		}
	}
	t.Fatalf("no %s rendered", kind)
	return object{}
}

// TestRender lints and renders the chart for every values set and checks
// the objects a production Deployment needs.
func TestRender(t *testing.T) {
	for name, values := range valueSets(t) {
		t.Run(name, func(t *testing.T) {
			lintArgs := []string{"lint", "--strict", chartDir}
			if values != "" {
				lintArgs = append(lintArgs, "-f", values)
			}
			if out, err := helm(t, lintArgs...); err != nil {
				t.Fatalf("helm lint: %v\n%s", err, out)
			}
			out, err := render(t, "vrelay", values)
			if err != nil {
				t.Fatalf("helm template: %v", err)
			}
			objs := parse(t, out)
			checkObjects(t, objs)
			if name != "default" {
				checkExampleAuth(t, objs)
			}
		})
	}
}

// checkExampleAuth holds the documented values sets to what the README
// asks of every example: a listener open to the network has credentials.
// In a cluster every listener binds every interface, so each needs auth,
// and a ServiceMonitor then sends the metrics token.
func checkExampleAuth(t *testing.T, objs []object) {
	t.Helper()
	var cm corev1.ConfigMap
	into(t, find(t, objs, "ConfigMap"), &cm)
	cfg, err := config.Parse([]byte(cm.Data["vrelay.yaml"]))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.HTTP.Auth == nil {
		t.Errorf("http.listen %s has no http.auth", cfg.HTTP.Listen)
	}
	for i, s := range cfg.Sources {
		if w := s.Webhook; w != nil && w.Auth.Bearer.Token.IsZero() && w.Auth.Basic.Password.IsZero() {
			t.Errorf("sources[%d].webhook.listen %s has no auth", i, w.Listen)
		}
	}
	for _, o := range objs {
		if o.Kind != "ServiceMonitor" {
			continue
		}
		eps, _ := o.Raw["spec"].(map[string]any)["endpoints"].([]any)
		for _, ep := range eps {
			if _, ok := ep.(map[string]any)["authorization"]; !ok {
				t.Errorf("ServiceMonitor endpoint %v sends no credentials, but /metrics wants them", ep)
			}
		}
	}
}

func checkObjects(t *testing.T, objs []object) {
	t.Helper()
	// The ConfigMap's vrelay.yaml must pass vrelay's own validation.
	var cm corev1.ConfigMap
	into(t, find(t, objs, "ConfigMap"), &cm)
	cfg, err := config.Parse([]byte(cm.Data["vrelay.yaml"]))
	if err != nil {
		t.Fatalf("rendered vrelay.yaml is refused by vrelay: %v\n%s", err, cm.Data["vrelay.yaml"])
	}

	var d appsv1.Deployment
	into(t, find(t, objs, "Deployment"), &d)
	pod := d.Spec.Template.Spec
	if len(pod.Containers) != 1 {
		t.Fatalf("containers: %d, want 1", len(pod.Containers))
	}
	c := pod.Containers[0]
	for probe, path := range map[*corev1.Probe]string{c.LivenessProbe: "/healthz", c.ReadinessProbe: "/readyz"} {
		if probe == nil || probe.HTTPGet == nil || probe.HTTPGet.Path != path || probe.HTTPGet.Port.String() != "metrics" {
			t.Errorf("want an httpGet probe on %s, port metrics; got %+v", path, probe)
		}
	}
	if !slices.Contains(c.Args, "/etc/vrelay/vrelay.yaml") {
		t.Errorf("args %q do not name /etc/vrelay/vrelay.yaml", c.Args)
	}
	psc, sc := pod.SecurityContext, c.SecurityContext
	switch {
	case psc == nil || psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot:
		t.Errorf("pod securityContext: runAsNonRoot not set: %+v", psc)
	case psc.SeccompProfile == nil || psc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault:
		t.Errorf("pod securityContext: seccomp not RuntimeDefault: %+v", psc.SeccompProfile)
	case sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem:
		t.Errorf("container securityContext: readOnlyRootFilesystem not set: %+v", sc)
	case sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation:
		t.Errorf("container securityContext: allowPrivilegeEscalation not false")
	case sc.Capabilities == nil || !slices.Contains(sc.Capabilities.Drop, "ALL"):
		t.Errorf("container securityContext: capabilities ALL not dropped: %+v", sc.Capabilities)
	}
	if c.Resources.Requests.Cpu().IsZero() || c.Resources.Requests.Memory().IsZero() || c.Resources.Limits.Memory().IsZero() {
		t.Errorf("resources: want cpu and memory requests and a memory limit, got %+v", c.Resources)
	}
	if len(pod.TopologySpreadConstraints) == 0 || pod.TopologySpreadConstraints[0].TopologyKey != "kubernetes.io/hostname" {
		t.Errorf("topologySpreadConstraints: want one by kubernetes.io/hostname, got %+v", pod.TopologySpreadConstraints)
	}
	if g := pod.TerminationGracePeriodSeconds; g == nil || time.Duration(*g)*time.Second <= time.Duration(cfg.ShutdownTimeout) {
		t.Errorf("terminationGracePeriodSeconds %v is not above shutdownTimeout %v", g, cfg.ShutdownTimeout)
	}

	// Every fromFile of the config lies in a mounted Secret or ConfigMap.
	var mounts []string
	for _, m := range c.VolumeMounts {
		mounts = append(mounts, m.MountPath+"/")
	}
	for _, f := range fromFiles(cm.Data["vrelay.yaml"]) {
		if !slices.ContainsFunc(mounts, func(m string) bool { return strings.HasPrefix(f, m) }) {
			t.Errorf("config reads %s, which no volume mount (%q) provides", f, mounts)
		}
	}

	var pdb policyv1.PodDisruptionBudget
	into(t, find(t, objs, "PodDisruptionBudget"), &pdb)
	if pdb.Spec.MinAvailable == nil || pdb.Spec.MinAvailable.IntValue() < 1 {
		t.Errorf("PodDisruptionBudget minAvailable: %v", pdb.Spec.MinAvailable)
	}

	// The Service exposes metrics and every webhook source's port.
	var svc corev1.Service
	into(t, find(t, objs, "Service"), &svc)
	want := 1
	for _, s := range cfg.Sources {
		if s.Type == "webhook" {
			want++
		}
	}
	if len(svc.Spec.Ports) != want || svc.Spec.Ports[0].Name != "metrics" {
		t.Errorf("Service ports %+v: want metrics and %d webhook ports", svc.Spec.Ports, want-1)
	}
}

// fromFiles returns every fromFile path and caFile of a config document.
func fromFiles(doc string) []string {
	var n yaml.Node
	if yaml.Unmarshal([]byte(doc), &n) != nil {
		return nil
	}
	var out []string
	var walk func(*yaml.Node)
	walk = func(n *yaml.Node) {
		for i, c := range n.Content {
			if n.Kind == yaml.MappingNode && i%2 == 0 && i+1 < len(n.Content) &&
				(c.Value == "fromFile" || strings.HasSuffix(c.Value, "File")) && n.Content[i+1].Kind == yaml.ScalarNode {
				out = append(out, n.Content[i+1].Value)
			}
			walk(c)
		}
	}
	walk(&n)
	return out
}

// serviceMonitorCRD is a minimal stand-in for the Prometheus Operator's
// ServiceMonitor CRD (which cannot be fetched here): it checks the group,
// version, kind and the fields the chart sets, and lets the rest through.
const serviceMonitorCRD = `apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: servicemonitors.monitoring.coreos.com
spec:
  group: monitoring.coreos.com
  names: {kind: ServiceMonitor, listKind: ServiceMonitorList, plural: servicemonitors, singular: servicemonitor}
  scope: Namespaced
  versions:
    - name: v1
      served: true
      storage: true
      schema:
        openAPIV3Schema:
          type: object
          required: [spec]
          properties:
            spec:
              type: object
              required: [selector, endpoints]
              properties:
                selector:
                  type: object
                  x-kubernetes-preserve-unknown-fields: true
                endpoints:
                  type: array
                  items:
                    type: object
                    properties:
                      port: {type: string}
                      path: {type: string}
                      interval: {type: string, pattern: '^(0|(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?)$'}
                      authorization:
                        type: object
                        properties:
                          type: {type: string}
                          credentials:
                            type: object
                            required: [key]
                            properties:
                              name: {type: string}
                              key: {type: string}
                              optional: {type: boolean}
`

func startCluster(t *testing.T) *k8stest.Cluster {
	t.Helper()
	helmBin(t)
	c := k8stest.Start(t)
	crd := filepath.Join(t.TempDir(), "servicemonitor-crd.yaml")
	if err := os.WriteFile(crd, []byte(serviceMonitorCRD), 0o644); err != nil {
		t.Fatal(err)
	}
	c.ApplyFiles(t, crd)
	return c
}

// apply renders the chart into a fresh namespace and applies every object
// server-side, as `helm install` would create them.
func apply(t *testing.T, c *k8stest.Cluster, prefix string, values ...string) (string, error) {
	t.Helper()
	ns := c.Namespace(t, prefix)
	out, err := render(t, ns, values...)
	if err != nil {
		t.Fatalf("helm template: %v", err)
	}
	f := filepath.Join(t.TempDir(), "rendered.yaml")
	if err := os.WriteFile(f, []byte(out), 0o644); err != nil {
		t.Fatal(err)
	}
	return c.KubectlErr(t, "apply", "--server-side", "--namespace", ns, "-f", f)
}

// TestApply applies every values set's objects to a real API server.
func TestApply(t *testing.T) {
	c := startCluster(t)
	for name, values := range valueSets(t) {
		t.Run(name, func(t *testing.T) {
			out, err := apply(t, c, "chart", values)
			if err != nil {
				t.Fatalf("server-side apply: %v", err)
			}
			for _, kind := range []string{"deployment.apps/", "poddisruptionbudget.policy/", "service/", "configmap/"} {
				if !strings.Contains(out, kind) {
					t.Errorf("apply created no %s…:\n%s", kind, out)
				}
			}
		})
	}
}

// TestChecksBite proves that the checks fail on a broken chart or values:
// the API server rejects a wrong field or value, and a config that vrelay
// refuses or a loopback listener fails before anything is applied.
func TestChecksBite(t *testing.T) {
	writeValues := func(t *testing.T, doc string) string {
		f := filepath.Join(t.TempDir(), "values.yaml")
		if err := os.WriteFile(f, []byte(doc), 0o644); err != nil {
			t.Fatal(err)
		}
		return f
	}

	t.Run("render", func(t *testing.T) {
		for name, tt := range map[string]struct{ values, want string }{
			"loopback http.listen": {"config:\n  http:\n    listen: 127.0.0.1:8081\n", "must listen on every interface"},
			"embedded nats":        {"config:\n  nats:\n    external: null\n    embedded: {dataDir: /data}\n", "external NATS"},
		} {
			t.Run(name, func(t *testing.T) {
				_, err := render(t, "vrelay", writeValues(t, tt.values))
				if err == nil || !strings.Contains(err.Error(), tt.want) {
					t.Fatalf("helm template: err %v, want %q", err, tt.want)
				}
			})
		}
	})

	t.Run("config", func(t *testing.T) {
		// A misspelt field renders fine but vrelay refuses the file.
		out, err := render(t, "vrelay", writeValues(t, "config:\n  routes:\n    - name: log\n      subjects: [\"vmware.>\"]\n      sink: {tpye: log}\n"))
		if err != nil {
			t.Fatalf("helm template: %v", err)
		}
		var cm corev1.ConfigMap
		into(t, find(t, parse(t, out), "ConfigMap"), &cm)
		if _, err := config.Parse([]byte(cm.Data["vrelay.yaml"])); err == nil || !strings.Contains(err.Error(), "tpye") {
			t.Fatalf("config.Parse: err %v, want the unknown field tpye", err)
		}
	})

	t.Run("apply", func(t *testing.T) {
		c := startCluster(t)
		for name, tt := range map[string]struct{ values, want string }{
			"unknown field":  {"affinity:\n  nodeAfinity: {}\n", "affinity.nodeAfinity: field not declared in schema"},
			"bad quantity":   {"resources:\n  requests: {cpu: lots}\n", "quantities must match"},
			"bad enum value": {"topologySpread:\n  whenUnsatisfiable: Sometimes\n", "Unsupported value"},
		} {
			t.Run(name, func(t *testing.T) {
				_, err := apply(t, c, "bad", writeValues(t, tt.values))
				if err == nil || !strings.Contains(err.Error(), tt.want) {
					t.Fatalf("server-side apply: err %v, want %q", err, tt.want)
				}
			})
		}
	})
}
