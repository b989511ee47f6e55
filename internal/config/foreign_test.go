package config

import (
	"strings"
	"testing"
)

// A RouterConfig or a Tanzu source given to vrelay gets one line pointing
// to `vrelay migrate`, not a list of unknown fields.
func TestParseForeignConfig(t *testing.T) {
	cases := map[string]struct{ doc, want string }{
		"router": {`apiVersion: event-router.vmware.com/v1alpha1
kind: RouterConfig
metadata: {name: x}
eventProvider: {type: vcenter, name: vc}
`, "VMware Event Router RouterConfig"},
		"vsphere": {`apiVersion: sources.tanzu.vmware.com/v1alpha1
kind: VSphereSource
spec: {address: https://vc}
`, "Tanzu Sources for Knative VSphereSource"},
		"second document": {"routes: []\n---\napiVersion: sources.tanzu.vmware.com/v1alpha1\nkind: HorizonSource\n", "HorizonSource"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := Parse([]byte(tc.doc))
			if err == nil {
				t.Fatal("Parse accepted a foreign configuration")
			}
			msg := err.Error()
			if !strings.Contains(msg, tc.want) || !strings.Contains(msg, "vrelay migrate") || strings.Contains(msg, "unknown field") {
				t.Fatalf("err = %q, want it to name %q and vrelay migrate, and no unknown fields", msg, tc.want)
			}
		})
	}
}
