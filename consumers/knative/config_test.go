package knative_test

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/vrelay/vrelay/consumers/httpsink"
	"github.com/vrelay/vrelay/consumers/knative"
	"github.com/vrelay/vrelay/internal/cfgerr"
)

func TestValidate(t *testing.T) {
	broker := &knative.Ref{APIVersion: "eventing.knative.dev/v1", Kind: "Broker", Name: "default"}
	tests := []struct {
		name string
		cfg  knative.Config
		want []string // "path: reason" prefixes, in order
	}{
		{name: "uri alone", cfg: knative.Config{URI: "http://broker-ingress.knative-eventing.svc.cluster.local/ns/default"}},
		{name: "ref alone", cfg: knative.Config{Ref: broker}},
		{name: "ref and relative uri (Direktiv)", cfg: knative.Config{
			Ref: &knative.Ref{APIVersion: "serving.knative.dev/v1", Kind: "Service", Name: "hello"},
			URI: "/hello?filter=test",
		}},
		{name: "ref with kubeconfig", cfg: knative.Config{Ref: broker, Kubeconfig: "kubeconfig.yaml"}},
		{
			// The Event Router's destination.uri {scheme, host, path} is
			// written as one absolute uri.
			name: "event router destination uri",
			cfg:  knative.Config{URI: "http://default-broker.vmware-functions.svc.cluster.local:80/events"},
		},
		{name: "neither", cfg: knative.Config{}, want: []string{"set ref, uri or both"}},
		{name: "relative uri alone", cfg: knative.Config{URI: "/hello"}, want: []string{"uri: without ref it must be an absolute URL"}},
		{name: "uri alone of another scheme", cfg: knative.Config{URI: "ftp://host/x"}, want: []string{`uri: scheme "ftp" is not http or https`}},
		{name: "uri with credentials", cfg: knative.Config{URI: "http://u:p@host/x"}, want: []string{"uri: must not hold credentials"}},
		{name: "absolute uri with ref", cfg: knative.Config{Ref: broker, URI: "http://host/x"}, want: []string{"uri: with ref it must be relative"}},
		{name: "incomplete ref", cfg: knative.Config{Ref: &knative.Ref{}}, want: []string{
			"ref.apiVersion: is required", "ref.kind: is required", "ref.name: is required",
		}},
		{name: "kubeconfig without ref", cfg: knative.Config{URI: "http://host/", Kubeconfig: "k"}, want: []string{"kubeconfig: is only used to resolve ref"}},
		{name: "http settings checked", cfg: knative.Config{
			Ref:     broker,
			Mode:    "batched",
			Headers: map[string]string{"Ce-Id": "x"},
			TLS:     httpsink.TLS{CAFile: "ca.pem", SkipTLSVerify: true},
			Timeout: -1,
		}, want: []string{"mode: ", `headers["Ce-Id"]: `, "tls.skipTLSVerify: ", "timeout: "}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []string
			for _, e := range cfgerr.Flatten(tt.cfg.Validate()) {
				got = append(got, e.Error())
			}
			if len(got) != len(tt.want) {
				t.Fatalf("Validate(): got %q, want errors starting with %q", got, tt.want)
			}
			for i := range got {
				if !strings.HasPrefix(got[i], tt.want[i]) {
					t.Errorf("Validate() error %d: got %q, want it to start with %q", i, got[i], tt.want[i])
				}
			}
		})
	}
}

func TestSetDefaults(t *testing.T) {
	var c knative.Config
	c.SetDefaults()
	want := knative.Config{Mode: httpsink.ModeBinary, Timeout: httpsink.DefaultTimeout}
	if diff := cmp.Diff(want, c); diff != "" {
		t.Errorf("SetDefaults() (-want +got):\n%s", diff)
	}
}
