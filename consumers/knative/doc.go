// Package knative delivers events to a Knative Destination: an absolute
// uri, a ref to an addressable Kubernetes object, or a ref plus a relative
// uri resolved against the object's address, exactly as Knative resolves a
// Destination (the Direktiv example: a Service ref plus uri
// "/hello?filter=test"). HTTP delivery is the http sink's
// ([github.com/vrelay/vrelay/consumers/httpsink]): the same binary and
// structured modes, headers, auth, TLS and timeout.
//
// A ref is resolved through the Kubernetes API with a dynamic client, to
// the object's status.address.url (a Broker, a Knative Service, any
// addressable), or for a plain v1 Service to
// http://<name>.<namespace>.svc.cluster.local/. It needs get on that one
// resource (deploy/kubernetes/rbac.yaml); the kind is mapped to its
// resource as Knative does it (lower-cased and pluralised), without
// discovery. The
// address is resolved by the first send and cached; after a retryable
// delivery failure or a failed resolution the next send resolves again, at
// most once per second. A uri alone needs no Kubernetes at all.
//
// Contract: [Sink.Send] makes one POST and never retries. It returns nil on
// a 2xx; a retryable error on transport failures, 404, 408, 409, 429 and
// 5xx, as Knative's delivery spec retries them (a revision may not be ready
// yet), carrying a Retry-After delay through [consumers.RetryAfter]; a
// retryable error wrapping [ErrNotFound] or [ErrNotReady] while the ref
// does not resolve; and [consumers.Permanent] on any other status.
//
//	s, err := knative.New(knative.Config{
//		Ref: &knative.Ref{APIVersion: "eventing.knative.dev/v1", Kind: "Broker", Name: "default"},
//	}, knative.WithLogger(log))
//	if err != nil {
//		return cfgerr.Prefix("routes[0].sink.knative", err)
//	}
package knative
