package knative

import (
	"context"
	"errors"
	"fmt"
	"net/url"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"
)

// Resolver finds the address of an addressable object. Resolve blocks until
// it has an answer or ctx is done, and is safe for concurrent use. An error
// it returns is retryable unless wrapped with consumers.Permanent: an
// object that does not exist yet, or has no address yet, may have one soon.
type Resolver interface {
	Resolve(ctx context.Context, ref Ref) (*url.URL, error)
}

// ClusterDomain is the DNS domain of the cluster's Services, used for the
// address of a plain v1 Service as Knative builds it.
const ClusterDomain = "cluster.local"

// ErrNotFound is wrapped by the error of a ref whose object does not exist
// (or whose kind the API server does not know).
var ErrNotFound = errors.New("not found")

// ErrNotReady is wrapped by the error of a ref whose object exists but has
// no usable status.address.url yet.
var ErrNotReady = errors.New("not ready: no status.address.url")

// KubeResolver resolves refs through the Kubernetes API with a dynamic
// client: status.address.url of the object, or for a plain v1 Service its
// cluster DNS name, http://<name>.<namespace>.svc.cluster.local/ (Knative's
// rule; the Service must exist). A kind is mapped to its resource the way
// Knative's own resolver does it (apis.KindToResource): the lower-cased,
// pluralised kind, as every CRD of an addressable kind names it. It needs
// no discovery, whose client would link in every built-in API type and
// double vrelay's idle memory.
type KubeResolver struct {
	client dynamic.Interface
}

// NewKubeResolver returns a resolver using cfg. It makes no call yet.
func NewKubeResolver(cfg *rest.Config) (*KubeResolver, error) {
	client, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("kubernetes client: %w", err)
	}
	return &KubeResolver{client: client}, nil
}

// Resolve returns the address of ref. Errors name the object and wrap
// [ErrNotFound] or [ErrNotReady] where that is the reason.
func (r *KubeResolver) Resolve(ctx context.Context, ref Ref) (*url.URL, error) {
	gv, err := schema.ParseGroupVersion(ref.APIVersion)
	if err != nil {
		return nil, fmt.Errorf("resolve %s: %w", ref, err)
	}
	gvk := gv.WithKind(ref.Kind)
	resource, _ := meta.UnsafeGuessKindToResource(gvk)
	obj, err := r.client.Resource(resource).Namespace(ref.Namespace).Get(ctx, ref.Name, metav1.GetOptions{})
	if err != nil {
		if apierrors.IsNotFound(err) {
			// The object, or its kind (CRDs not installed): the API
			// server answers 404 to both.
			return nil, fmt.Errorf("resolve %s: object or kind %w (are its CRDs installed?)", ref, ErrNotFound)
		}
		return nil, fmt.Errorf("resolve %s: %w", ref, err)
	}
	if gvk.Group == "" && gvk.Kind == "Service" {
		return &url.URL{Scheme: "http", Host: ServiceHost(ref.Name, ref.Namespace), Path: "/"}, nil
	}
	return addressOf(obj, ref)
}

// ServiceHost is the cluster DNS name of a Service.
func ServiceHost(name, namespace string) string {
	return name + "." + namespace + ".svc." + ClusterDomain
}

func addressOf(obj *unstructured.Unstructured, ref Ref) (*url.URL, error) {
	raw, found, err := unstructured.NestedString(obj.Object, "status", "address", "url")
	if err != nil {
		return nil, fmt.Errorf("resolve %s: status.address.url: %w", ref, err)
	}
	if !found || raw == "" {
		return nil, fmt.Errorf("resolve %s: %w", ref, ErrNotReady)
	}
	u, err := url.Parse(raw)
	if err != nil || !u.IsAbs() || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return nil, fmt.Errorf("resolve %s: %w (status.address.url %q is not an absolute http or https URL)", ref, ErrNotReady, raw)
	}
	return u, nil
}
