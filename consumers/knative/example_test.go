package knative_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"

	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/vrelay/vrelay/consumers"
	"github.com/vrelay/vrelay/consumers/knative"
)

// staticResolver stands in for the Kubernetes API: the Service "hello"
// lives at base.
type staticResolver struct{ base string }

func (r staticResolver) Resolve(_ context.Context, ref knative.Ref) (*url.URL, error) {
	if ref.Name != "hello" {
		return nil, fmt.Errorf("resolve %s: object %w", ref, knative.ErrNotFound)
	}
	return url.Parse(r.base)
}

func Example() {
	// A function that is still starting: the first request gets a 404.
	starting := true
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Printf("received %s ce-id=%s\n", r.URL.RequestURI(), r.Header.Get("Ce-Id"))
		if starting {
			starting = false
			http.Error(w, "revision not ready", http.StatusNotFound)
			return
		}
		w.WriteHeader(http.StatusAccepted)
	}))
	defer srv.Close()

	// Direktiv's shape: a Knative Service ref plus a relative uri.
	sink, err := knative.New(knative.Config{
		Ref: &knative.Ref{APIVersion: "serving.knative.dev/v1", Kind: "Service", Name: "hello", Namespace: "functions"},
		URI: "/hello?filter=test",
	}, knative.WithResolver(staticResolver{base: srv.URL}))
	if err != nil {
		fmt.Println(err)
		return
	}

	ev := event.New()
	ev.SetID("8201")
	ev.SetSource("https://vc01.lab/sdk")
	ev.SetType("com.vmware.vsphere.VmPoweredOnEvent.v0")

	err = sink.Send(context.Background(), ev)
	fmt.Println("send:", err)
	fmt.Println("permanent:", consumers.IsPermanent(err))
	fmt.Println("send:", sink.Send(context.Background(), ev))

	// Output:
	// received /hello?filter=test ce-id=8201
	// send: http status 404 Not Found: revision not ready
	// permanent: false
	// received /hello?filter=test ce-id=8201
	// send: <nil>
}
