package migrate

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vrelay/vrelay/internal/config"
)

var update = flag.Bool("update", false, "rewrite the golden files")

// The secret values the inputs in testdata hold: none may reach the output.
var secretValues = []string{"ReplaceMe", "P@ssw0rd", "OpenFaaSSecret1", "MetricsSecret1",
	"VCSecret1", "ZYXWVUTSRQPO", "ABCDEFGHIJK", "HorizonSecret1", "WebhookSecret1"}

func TestGolden(t *testing.T) {
	cases := []struct {
		name  string
		files []string
		// want holds lines the output must contain.
		want []string
	}{
		{"router-knative", []string{"router-knative.yaml"}, []string{
			"type: vcenter", "format: router", "fromEnv: VEBA_DEMO_VC_01_PASSWORD",
			"kind: Broker", "mode: binary", "listen: 0.0.0.0:8082", `"vmware.vcenter.veba-demo-vc-01.>"`,
		}},
		{"router-openfaas", []string{"router-openfaas.yaml", "stack.yml"}, []string{
			"maxAge: 0s", "checkpointDir has no equivalent", "skipTLSVerify: true",
			`"vmware.vcenter.vc-01-PROD.VmPoweredOnEvent", "vmware.vcenter.vc-01-PROD.VmPoweredOffEvent"`,
			`"vmware.vcenter.vc-01-PROD.com_vmware_vc_HA_DasHostFailedEvent"`,
			"url: http://gateway.openfaas:8080/function/powercli-tag",
			"fromEnv: OPENFAAS_PROD_PASSWORD", "not-subscribed has no topic annotation",
			"user: admin", "fromEnv: VRELAY_METRICS_PASSWORD",
		}},
		{"router-openfaas-nostack", []string{"router-openfaas.yaml"}, []string{
			"Give the functions' stack.yml as another -from", "No route",
		}},
		{"router-eventbridge", []string{"router-eventbridge.yaml"}, []string{
			"type: eventbridge", "region: us-west-1", "detailType: subject",
			"fromEnv: VEBA_DEMO_AWS_AWS_SECRET_ACCESS_KEY", "vrelay does not read EventBridge rules",
		}},
		{"router-horizon", []string{"router-horizon.yaml"}, []string{
			"type: horizon", "domain: corp", "username: administrator",
			"uri: https://gateway-external.corp.local", "mode: structured",
			"type: webhook", "listen: 0.0.0.0:8080", "path: /webhook", "name: veba-demo-knative-2",
		}},
		{"tanzu-sources", []string{"tanzu-sources.yaml"}, []string{
			"maxAge: 5m0s", "period: 10s", "format: tanzu", "payloadEncoding: application/json",
			"fromFile: /var/run/secrets/vrelay/vsphere-credentials/password",
			"namespace: vmware-functions", "VSphereBinding binding has no vrelay equivalent",
			"serviceAccountName horizon-source-sa has no equivalent",
			"uri: http://event-display.default.svc.cluster.local",
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var ins []Input
			for _, f := range tc.files {
				b, err := os.ReadFile(filepath.Join("testdata", f))
				if err != nil {
					t.Fatal(err)
				}
				ins = append(ins, Input{Name: f, Data: b})
			}
			res, err := Convert(ins)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := config.Parse(res.YAML); err != nil {
				t.Fatalf("output does not validate: %v\n%s", err, res.YAML)
			}
			out := string(res.YAML)
			for _, w := range tc.want {
				if !strings.Contains(out, w) {
					t.Errorf("output lacks %q:\n%s", w, out)
				}
			}
			for _, s := range secretValues {
				if strings.Contains(out, s) || strings.Contains(strings.Join(res.Secrets, "\n"), s) {
					t.Errorf("output holds the secret value %q", s)
				}
			}
			golden := filepath.Join("testdata", tc.name+".golden.yaml")
			if *update {
				if err := os.WriteFile(golden, res.YAML, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(want, res.YAML) {
				t.Errorf("output differs from %s (go test -update to rewrite):\n%s", golden, res.YAML)
			}
		})
	}
}

func TestConvertProgress(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("testdata", "tanzu-sources.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var calls [][2]int
	if _, err := Convert([]Input{{Name: "t.yaml", Data: b}}, WithProgress(func(d, n int) {
		calls = append(calls, [2]int{d, n})
	})); err != nil {
		t.Fatal(err)
	}
	if len(calls) != 3 || calls[2] != [2]int{3, 3} {
		t.Fatalf("progress calls = %v, want 1/3 2/3 3/3", calls)
	}
}

func TestConvertNothing(t *testing.T) {
	_, err := Convert([]Input{{Name: "x.yaml", Data: []byte("sources: []\n")}})
	if err == nil || !strings.Contains(err.Error(), "found no RouterConfig") {
		t.Fatalf("err = %v, want found no RouterConfig", err)
	}
}
