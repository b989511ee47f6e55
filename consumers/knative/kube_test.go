package knative_test

import (
	"errors"
	"fmt"
	"net/http"
	"path/filepath"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"

	"github.com/vrelay/vrelay/consumers"
	"github.com/vrelay/vrelay/consumers/knative"
	"github.com/vrelay/vrelay/internal/k8stest"
)

var (
	brokers    = schema.GroupVersionResource{Group: "eventing.knative.dev", Version: "v1", Resource: "brokers"}
	ksvcs      = schema.GroupVersionResource{Group: "serving.knative.dev", Version: "v1", Resource: "services"}
	services   = schema.GroupVersionResource{Version: "v1", Resource: "services"}
	secrets    = schema.GroupVersionResource{Version: "v1", Resource: "secrets"}
	configmaps = schema.GroupVersionResource{Version: "v1", Resource: "configmaps"}
)

func brokerRef(ns, name string) knative.Ref {
	return knative.Ref{APIVersion: "eventing.knative.dev/v1", Kind: "Broker", Name: name, Namespace: ns}
}

// TestKubernetes resolves refs against a real kube-apiserver and etcd with
// the real Knative CRDs. One cluster serves every subtest; each works in a
// namespace of its own. It skips without VRELAY_K8S_BIN (see k8stest).
func TestKubernetes(t *testing.T) {
	c := k8stest.Start(t)
	c.ApplyFiles(t, c.KnativeCRDs(t)...)
	dyn := c.Dynamic(t)

	t.Run("Resolve", func(t *testing.T) {
		ns := c.Namespace(t, "resolve")
		r, err := knative.NewKubeResolver(c.REST())
		if err != nil {
			t.Fatal(err)
		}
		resolve := func(ref knative.Ref) (string, error) {
			u, err := r.Resolve(t.Context(), ref)
			if err != nil {
				return "", err
			}
			return u.String(), nil
		}

		// A Broker, from absent to addressable.
		ref := brokerRef(ns, "default")
		if _, err := resolve(ref); !errors.Is(err, knative.ErrNotFound) {
			t.Errorf("Resolve(missing Broker): got %v, want ErrNotFound", err)
		} else {
			t.Logf("missing Broker: %v", err)
		}
		create(t, dyn, brokers, ns, "Broker", "eventing.knative.dev/v1", "default", map[string]any{})
		if _, err := resolve(ref); !errors.Is(err, knative.ErrNotReady) {
			t.Errorf("Resolve(Broker without status): got %v, want ErrNotReady", err)
		} else {
			t.Logf("Broker without status: %v", err)
		}
		const brokerURL = "http://broker-ingress.knative-eventing.svc.cluster.local/" + "ns/default"
		setAddress(t, dyn, brokers, ns, "default", brokerURL)
		if got, err := resolve(ref); err != nil || got != brokerURL {
			t.Errorf("Resolve(ready Broker): got %q, %v; want %q", got, err, brokerURL)
		}

		// A Knative Service.
		create(t, dyn, ksvcs, ns, "Service", "serving.knative.dev/v1", "hello", map[string]any{
			"template": map[string]any{"spec": map[string]any{"containers": []any{map[string]any{"image": "example.com/hello"}}}},
		})
		ksvc := knative.Ref{APIVersion: "serving.knative.dev/v1", Kind: "Service", Name: "hello", Namespace: ns}
		if _, err := resolve(ksvc); !errors.Is(err, knative.ErrNotReady) {
			t.Errorf("Resolve(Knative Service without status): got %v, want ErrNotReady", err)
		}
		ksvcURL := fmt.Sprintf("http://hello.%s.svc.cluster.local", ns)
		setAddress(t, dyn, ksvcs, ns, "hello", ksvcURL)
		if got, err := resolve(ksvc); err != nil || got != ksvcURL {
			t.Errorf("Resolve(Knative Service): got %q, %v; want %q", got, err, ksvcURL)
		}

		// A plain Service: its cluster DNS name, once it exists.
		svc := knative.Ref{APIVersion: "v1", Kind: "Service", Name: "receiver", Namespace: ns}
		if _, err := resolve(svc); !errors.Is(err, knative.ErrNotFound) {
			t.Errorf("Resolve(missing v1 Service): got %v, want ErrNotFound", err)
		}
		create(t, dyn, services, ns, "Service", "v1", "receiver", map[string]any{
			"ports": []any{map[string]any{"port": int64(80)}},
		})
		wantSvc := fmt.Sprintf("http://receiver.%s.svc.cluster.local/", ns)
		if got, err := resolve(svc); err != nil || got != wantSvc {
			t.Errorf("Resolve(v1 Service): got %q, %v; want %q", got, err, wantSvc)
		}

		// A kind the API does not serve.
		widget := knative.Ref{APIVersion: "example.com/v1", Kind: "Widget", Name: "w", Namespace: ns}
		if _, err := resolve(widget); !errors.Is(err, knative.ErrNotFound) {
			t.Errorf("Resolve(unknown kind): got %v, want ErrNotFound", err)
		}
	})

	t.Run("Sink", func(t *testing.T) {
		ns := c.Namespace(t, "sink")
		a, b := newReceiver(t), newReceiver(t)
		s, err := knative.New(knative.Config{
			Ref: &knative.Ref{APIVersion: "eventing.knative.dev/v1", Kind: "Broker", Name: "default", Namespace: ns},
			URI: "/hello?filter=test",
		}, knative.WithRESTConfig(c.REST()), knative.WithResolveInterval(0))
		if err != nil {
			t.Fatal(err)
		}
		ev := newEvent()

		if err := s.Send(t.Context(), ev); !errors.Is(err, knative.ErrNotFound) || consumers.IsPermanent(err) {
			t.Fatalf("Send() before the Broker exists: got %v, want a retryable not-found error", err)
		}
		create(t, dyn, brokers, ns, "Broker", "eventing.knative.dev/v1", "default", map[string]any{})
		if err := s.Send(t.Context(), ev); !errors.Is(err, knative.ErrNotReady) || consumers.IsPermanent(err) {
			t.Fatalf("Send() before the Broker has an address: got %v, want a retryable not-ready error", err)
		}
		setAddress(t, dyn, brokers, ns, "default", a.URL+"/"+ns+"/default")
		if err := s.Send(t.Context(), ev); err != nil {
			t.Fatalf("Send() to a ready Broker: got %v, want nil", err)
		}
		if got := a.got(); len(got) != 1 || got[0] != "/hello?filter=test" {
			t.Errorf("receiver got %q, want one request to /hello?filter=test (uri relative to the address)", got)
		}

		// The address changes; the old one now answers 404 (retryable), and
		// the send after it goes to the new address.
		setAddress(t, dyn, brokers, ns, "default", b.URL)
		a.answer(http.StatusNotFound)
		if err := s.Send(t.Context(), ev); err == nil || consumers.IsPermanent(err) {
			t.Fatalf("Send() to the old address answering 404: got %v, want a retryable error", err)
		}
		if err := s.Send(t.Context(), ev); err != nil {
			t.Fatalf("Send() after the address changed: got %v, want nil", err)
		}
		if got := b.got(); len(got) != 1 {
			t.Errorf("new receiver got %d requests, want 1", len(got))
		}

		// The Broker is deleted: once a send fails, the sink finds it gone.
		if err := dyn.Resource(brokers).Namespace(ns).Delete(t.Context(), "default", metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		b.answer(http.StatusServiceUnavailable)
		if err := s.Send(t.Context(), ev); err == nil || consumers.IsPermanent(err) {
			t.Fatalf("Send() to a failing receiver: got %v, want a retryable error", err)
		}
		err = s.Send(t.Context(), ev)
		if !errors.Is(err, knative.ErrNotFound) || consumers.IsPermanent(err) {
			t.Fatalf("Send() after the Broker was deleted: got %v, want a retryable not-found error", err)
		}
		t.Logf("deleted Broker: %v", err)
	})

	t.Run("Kubeconfig", func(t *testing.T) {
		// The kubeconfig path of the config, its context's namespace as the
		// ref's default.
		s, err := knative.New(knative.Config{
			Ref:        &knative.Ref{APIVersion: "v1", Kind: "Service", Name: "kubernetes"},
			Kubeconfig: c.Kubeconfig,
		})
		if err != nil {
			t.Fatal(err)
		}
		if got := s.Ref().Namespace; got != "default" {
			t.Errorf("ref namespace from the kubeconfig: got %q, want \"default\"", got)
		}
	})

	t.Run("RBAC", func(t *testing.T) { testRBAC(t, c, dyn) })
}

// testRBAC applies deploy/kubernetes/rbac.yaml and checks, with a real
// token of its ServiceAccount, that resolution works and nothing else does.
func testRBAC(t *testing.T, c *k8stest.Cluster, dyn dynamic.Interface) {
	if _, err := c.KubectlErr(t, "create", "namespace", "vrelay"); err != nil {
		t.Logf("namespace vrelay: %v", err)
	}
	c.ApplyFiles(t, filepath.Join("..", "..", "deploy", "kubernetes", "rbac.yaml"))
	token := c.ServiceAccountToken(t, "vrelay", "vrelay")

	ns := c.Namespace(t, "rbac")
	create(t, dyn, brokers, ns, "Broker", "eventing.knative.dev/v1", "default", map[string]any{})
	setAddress(t, dyn, brokers, ns, "default", "http://broker-ingress.knative-eventing.svc.cluster.local/"+ns+"/default")
	create(t, dyn, ksvcs, ns, "Service", "serving.knative.dev/v1", "hello", map[string]any{
		"template": map[string]any{"spec": map[string]any{"containers": []any{map[string]any{"image": "example.com/hello"}}}},
	})
	setAddress(t, dyn, ksvcs, ns, "hello", "http://hello."+ns+".svc.cluster.local")
	create(t, dyn, services, ns, "Service", "v1", "receiver", map[string]any{
		"ports": []any{map[string]any{"port": int64(80)}},
	})
	create(t, dyn, secrets, ns, "Secret", "v1", "credentials", nil)

	r, err := knative.NewKubeResolver(c.RESTWithToken(token))
	if err != nil {
		t.Fatal(err)
	}
	for _, ref := range []knative.Ref{
		brokerRef(ns, "default"),
		{APIVersion: "serving.knative.dev/v1", Kind: "Service", Name: "hello", Namespace: ns},
		{APIVersion: "v1", Kind: "Service", Name: "receiver", Namespace: ns},
	} {
		if _, err := r.Resolve(t.Context(), ref); err != nil {
			t.Errorf("Resolve(%s) with the service account's token: got %v, want an address", ref, err)
		}
	}

	sa, err := dynamic.NewForConfig(c.RESTWithToken(token))
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	patch := []byte(`{"metadata":{"labels":{"touched":"yes"}}}`)
	forbidden := []struct {
		name string
		do   func() error
	}{
		{"list brokers", func() error { _, err := sa.Resource(brokers).Namespace(ns).List(ctx, metav1.ListOptions{}); return err }},
		{"watch brokers", func() error {
			_, err := sa.Resource(brokers).Namespace(ns).Watch(ctx, metav1.ListOptions{})
			return err
		}},
		{"patch a broker", func() error {
			_, err := sa.Resource(brokers).Namespace(ns).Patch(ctx, "default", types.MergePatchType, patch, metav1.PatchOptions{})
			return err
		}},
		{"patch a broker's status", func() error {
			_, err := sa.Resource(brokers).Namespace(ns).Patch(ctx, "default", types.MergePatchType, patch, metav1.PatchOptions{}, "status")
			return err
		}},
		{"delete a knative service", func() error {
			return sa.Resource(ksvcs).Namespace(ns).Delete(ctx, "hello", metav1.DeleteOptions{})
		}},
		{"list services", func() error {
			_, err := sa.Resource(services).Namespace(ns).List(ctx, metav1.ListOptions{})
			return err
		}},
		{"create a service", func() error {
			obj := object("Service", "v1", "other", map[string]any{"ports": []any{map[string]any{"port": int64(80)}}})
			_, err := sa.Resource(services).Namespace(ns).Create(ctx, obj, metav1.CreateOptions{})
			return err
		}},
		{"get a secret", func() error {
			_, err := sa.Resource(secrets).Namespace(ns).Get(ctx, "credentials", metav1.GetOptions{})
			return err
		}},
		{"list secrets", func() error { _, err := sa.Resource(secrets).Namespace(ns).List(ctx, metav1.ListOptions{}); return err }},
		{"get a configmap", func() error {
			_, err := sa.Resource(configmaps).Namespace("kube-system").Get(ctx, "extension-apiserver-authentication", metav1.GetOptions{})
			return err
		}},
	}
	for _, tt := range forbidden {
		if err := tt.do(); !apierrors.IsForbidden(err) {
			t.Errorf("%s with the service account's token: got %v, want forbidden", tt.name, err)
		}
	}
}

func object(kind, apiVersion, name string, spec map[string]any) *unstructured.Unstructured {
	obj := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": apiVersion,
		"kind":       kind,
		"metadata":   map[string]any{"name": name},
	}}
	if spec != nil {
		obj.Object["spec"] = spec
	}
	return obj
}

func create(t *testing.T, dyn dynamic.Interface, gvr schema.GroupVersionResource, ns, kind, apiVersion, name string, spec map[string]any) {
	t.Helper()
	if _, err := dyn.Resource(gvr).Namespace(ns).Create(t.Context(), object(kind, apiVersion, name, spec), metav1.CreateOptions{}); err != nil {
		t.Fatalf("create %s %s/%s: %v", kind, ns, name, err)
	}
}

// setAddress merge-patches status.address.url through the status
// subresource, as Knative's controllers do.
func setAddress(t *testing.T, dyn dynamic.Interface, gvr schema.GroupVersionResource, ns, name, url string) {
	t.Helper()
	patch := fmt.Appendf(nil, `{"status":{"address":{"url":%q}}}`, url)
	if _, err := dyn.Resource(gvr).Namespace(ns).Patch(t.Context(), name, types.MergePatchType, patch, metav1.PatchOptions{}, "status"); err != nil {
		t.Fatalf("set status.address.url of %s %s/%s: %v", gvr.Resource, ns, name, err)
	}
}
