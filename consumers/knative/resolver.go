package knative

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"sync"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/restmapper"
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
// rule; the Service must exist). Kinds are mapped to resources through
// discovery, cached, and refreshed when a kind is not found.
type KubeResolver struct {
	client dynamic.Interface
	mapper *restmapper.DeferredDiscoveryRESTMapper
	mu     sync.Mutex // serialises refreshes of mapper
}

// NewKubeResolver returns a resolver using cfg. It makes no call yet.
func NewKubeResolver(cfg *rest.Config) (*KubeResolver, error) {
	client, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("kubernetes client: %w", err)
	}
	dc, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("kubernetes discovery client: %w", err)
	}
	return &KubeResolver{
		client: client,
		mapper: restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(dc)),
	}, nil
}

// Resolve returns the address of ref. Errors name the object and wrap
// [ErrNotFound] or [ErrNotReady] where that is the reason.
func (r *KubeResolver) Resolve(ctx context.Context, ref Ref) (*url.URL, error) {
	gv, err := schema.ParseGroupVersion(ref.APIVersion)
	if err != nil {
		return nil, fmt.Errorf("resolve %s: %w", ref, err)
	}
	gvk := gv.WithKind(ref.Kind)
	mapping, err := r.mapping(gvk)
	if err != nil {
		if meta.IsNoMatchError(err) {
			return nil, fmt.Errorf("resolve %s: kind %w in the API (are its CRDs installed?)", ref, ErrNotFound)
		}
		return nil, fmt.Errorf("resolve %s: map kind to resource: %w", ref, err)
	}
	obj, err := r.client.Resource(mapping.Resource).Namespace(ref.Namespace).Get(ctx, ref.Name, metav1.GetOptions{})
	if err != nil {
		if apierrors.IsNotFound(err) {
			return nil, fmt.Errorf("resolve %s: object %w", ref, ErrNotFound)
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

// mapping maps gvk to its resource from the cached discovery, refreshing
// the cache once when the kind is unknown (a CRD installed since).
func (r *KubeResolver) mapping(gvk schema.GroupVersionKind) (*meta.RESTMapping, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	m, err := r.mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
	if meta.IsNoMatchError(err) {
		r.mapper.Reset()
		m, err = r.mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
	}
	return m, err
}
