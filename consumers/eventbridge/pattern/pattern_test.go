package pattern_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/vrelay/vrelay/consumers/eventbridge/pattern"
)

// vmEvent is an entry as the EventBridge sink matches it: the Event
// Router shape of a vCenter event, with the CloudEvent as detail.
const vmEvent = `{
  "version": "0",
  "source": "https://vc01.example.com/sdk",
  "detail-type": "com.vmware.event.router/event",
  "time": "2026-01-02T03:04:05Z",
  "region": "eu-west-1",
  "resources": [],
  "detail": {
    "specversion": "1.0",
    "id": "4f5c1a5e-1234-4c1e-8f2e-000000000001",
    "source": "https://vc01.example.com/sdk",
    "type": "com.vmware.event.router/event",
    "subject": "VmPoweredOnEvent",
    "datacontenttype": "application/json",
    "data": {
      "Key": 4242,
      "CreatedTime": "2026-01-02T03:04:05Z",
      "UserName": "VSPHERE.LOCAL\\Administrator",
      "Vm": {"Name": "prod-web-01", "Vm": {"Type": "VirtualMachine", "Value": "vm-42"}},
      "Host": {"Name": "esx-01.example.com"},
      "Tags": ["gold", "web"],
      "Disks": [{"Label": "Hard disk 1", "SizeGB": 40}, {"Label": "Hard disk 2", "SizeGB": 500}],
      "Ip": "10.0.3.17",
      "Template": false,
      "Annotation": null
    }
  }
}`

func TestMatch(t *testing.T) {
	tests := []struct {
		name    string
		pattern string
		want    bool
	}{
		// The VMware Event Router's documented rule pattern.
		{"router subject list", `{"detail": {"subject": ["VmPoweredOnEvent", "VmPoweredOffEvent", "DrsVmPoweredOnEvent"]}}`, true},
		{"router subject list, other events", `{"detail": {"subject": ["VmPoweredOffEvent", "DrsVmPoweredOnEvent"]}}`, false},
		{"shellstyle subject", `{"detail": {"subject": [{"shellstyle": "Vm*"}]}}`, true},
		{"shellstyle no match", `{"detail": {"subject": [{"shellstyle": "Host*"}]}}`, false},
		{"vm name prefix", `{"detail": {"data": {"Vm": {"Name": [{"prefix": "prod-"}]}}}}`, true},
		{"vm name prefix no match", `{"detail": {"data": {"Vm": {"Name": [{"prefix": "dev-"}]}}}}`, false},
		// EventBridge content filtering, as documented by AWS.
		{"source exact", `{"source": ["https://vc01.example.com/sdk"]}`, true},
		{"detail-type and source", `{"source": ["https://vc01.example.com/sdk"], "detail-type": ["other"]}`, false},
		{"region", `{"region": ["eu-west-1", "us-east-1"]}`, true},
		{"number exact", `{"detail": {"data": {"Key": [4242]}}}`, true},
		{"number exact as float", `{"detail": {"data": {"Key": [4242.0]}}}`, true},
		{"string does not match number", `{"detail": {"data": {"Key": ["4242"]}}}`, false},
		{"boolean", `{"detail": {"data": {"Template": [false]}}}`, true},
		{"null", `{"detail": {"data": {"Annotation": [null]}}}`, true},
		{"null absent", `{"detail": {"data": {"Nothing": [null]}}}`, false},
		{"prefix ignore case", `{"detail": {"data": {"Vm": {"Name": [{"prefix": {"equals-ignore-case": "PROD-"}}]}}}}`, true},
		{"suffix", `{"detail": {"data": {"Host": {"Name": [{"suffix": ".example.com"}]}}}}`, true},
		{"suffix ignore case", `{"detail": {"data": {"Host": {"Name": [{"suffix": {"equals-ignore-case": ".EXAMPLE.COM"}}]}}}}`, true},
		{"suffix no match", `{"detail": {"data": {"Host": {"Name": [{"suffix": ".local"}]}}}}`, false},
		{"equals-ignore-case", `{"detail": {"subject": [{"equals-ignore-case": "vmpoweredonevent"}]}}`, true},
		{"anything-but string", `{"detail": {"data": {"UserName": [{"anything-but": "vpxd-extension"}]}}}`, true},
		{"anything-but list hit", `{"detail": {"subject": [{"anything-but": ["VmPoweredOnEvent", "VmCreatedEvent"]}]}}`, false},
		{"anything-but number", `{"detail": {"data": {"Key": [{"anything-but": 4242}]}}}`, false},
		{"anything-but prefix", `{"detail": {"data": {"Vm": {"Name": [{"anything-but": {"prefix": "dev-"}}]}}}}`, true},
		{"anything-but prefix hit", `{"detail": {"data": {"Vm": {"Name": [{"anything-but": {"prefix": "prod-"}}]}}}}`, false},
		{"anything-but suffix", `{"detail": {"data": {"Host": {"Name": [{"anything-but": {"suffix": ".com"}}]}}}}`, false},
		{"anything-but ignore case list", `{"detail": {"subject": [{"anything-but": {"equals-ignore-case": ["vmpoweredonevent"]}}]}}`, false},
		{"anything-but wildcard", `{"detail": {"subject": [{"anything-but": {"wildcard": "Host*"}}]}}`, true},
		{"anything-but absent field", `{"detail": {"data": {"Nothing": [{"anything-but": "x"}]}}}`, false},
		{"numeric range", `{"detail": {"data": {"Key": [{"numeric": [">", 0, "<=", 5000]}]}}}`, true},
		{"numeric range miss", `{"detail": {"data": {"Key": [{"numeric": [">=", 5000]}]}}}`, false},
		{"numeric equal", `{"detail": {"data": {"Key": [{"numeric": ["=", 4242]}]}}}`, true},
		{"numeric on string", `{"detail": {"subject": [{"numeric": [">", 0]}]}}`, false},
		{"exists true", `{"detail": {"data": {"Host": {"Name": [{"exists": true}]}}}}`, true},
		{"exists true absent", `{"detail": {"data": {"Datastore": {"Name": [{"exists": true}]}}}}`, false},
		{"exists false absent", `{"detail": {"data": {"Datastore": [{"exists": false}]}}}`, true},
		{"exists false present", `{"detail": {"data": {"Key": [{"exists": false}]}}}`, false},
		{"exists on an object is not a leaf", `{"detail": {"data": {"Vm": [{"exists": true}]}}}`, false},
		{"wildcard middle", `{"detail": {"data": {"Vm": {"Name": [{"wildcard": "prod-*-01"}]}}}}`, true},
		{"wildcard miss", `{"detail": {"data": {"Vm": {"Name": [{"wildcard": "prod-*-02"}]}}}}`, false},
		{"wildcard escaped star", `{"detail": {"subject": [{"wildcard": "Vm\\*"}]}}`, false},
		{"cidr", `{"detail": {"data": {"Ip": [{"cidr": "10.0.0.0/16"}]}}}`, true},
		{"cidr miss", `{"detail": {"data": {"Ip": [{"cidr": "192.168.0.0/16"}]}}}`, false},
		{"array element matches", `{"detail": {"data": {"Tags": ["web"]}}}`, true},
		{"array element misses", `{"detail": {"data": {"Tags": ["silver"]}}}`, false},
		{"array of objects", `{"detail": {"data": {"Disks": {"SizeGB": [{"numeric": [">", 100]}]}}}}`, true},
		{"or matches second", `{"detail": {"$or": [{"subject": ["VmCreatedEvent"]}, {"data": {"Key": [4242]}}]}}`, true},
		{"or matches none", `{"detail": {"$or": [{"subject": ["VmCreatedEvent"]}, {"data": {"Key": [1]}}]}}`, false},
		{"or and sibling", `{"source": ["other"], "$or": [{"region": ["eu-west-1"]}, {"detail-type": ["x"]}]}`, false},
		{"top-level or", `{"$or": [{"source": ["other"]}, {"detail": {"data": {"Vm": {"Name": [{"prefix": "prod"}]}}}}]}`, true},
		{"absent field", `{"detail": {"data": {"Nothing": ["x"]}}}`, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := pattern.Compile([]byte(tt.pattern))
			if err != nil {
				t.Fatalf("Compile(%s): %v", tt.pattern, err)
			}
			got, err := p.Match([]byte(vmEvent))
			if err != nil {
				t.Fatalf("Match(): %v", err)
			}
			if got != tt.want {
				t.Errorf("Match() of %s: got %v, want %v", tt.pattern, got, tt.want)
			}
		})
	}
}

func TestCompileErrors(t *testing.T) {
	tests := []struct {
		name, pattern, wantPath, wantReason string
	}{
		{"not json", `{"detail":`, "", "not JSON"},
		{"not object", `["x"]`, "", "must be a JSON object"},
		{"empty", `{}`, "", "must not be empty"},
		{"leaf not array", `{"detail": {"subject": "VmPoweredOnEvent"}}`, "detail.subject", "must be an object or an array"},
		{"empty array", `{"source": []}`, "source", "must not be an empty array"},
		{"unknown operator", `{"detail": {"data": {"Vm": {"Name": [{"prefx": "prod-"}]}}}}`, "detail.data.Vm.Name[0]", `unknown operator "prefx"`},
		{"two operators", `{"source": [{"prefix": "a", "suffix": "b"}]}`, "source[0]", "exactly one key"},
		{"numeric odd", `{"detail": {"n": [{"numeric": [">", 0, "<"]}]}}`, "detail.n[0].numeric", "operator/number pairs"},
		{"numeric bad op", `{"detail": {"n": [{"numeric": ["!=", 0]}]}}`, "detail.n[0].numeric[0]", "unknown numeric operator"},
		{"numeric reversed", `{"detail": {"n": [{"numeric": ["<", 5, ">", 0]}]}}`, "detail.n[0].numeric", "lower bound"},
		{"exists not bool", `{"source": [{"exists": "yes"}]}`, "source[0].exists", "true or false"},
		{"double star", `{"source": [{"wildcard": "a**b"}]}`, "source[0].wildcard", "consecutive"},
		{"or too short", `{"$or": [{"source": ["a"]}]}`, "$or", "at least two"},
		{"or not object", `{"$or": [{"source": ["a"]}, "b"]}`, "$or[1]", "non-empty object"},
		{"anything-but numeric", `{"source": [{"anything-but": {"numeric": [">", 1]}}]}`, "source[0].anything-but.numeric", "not allowed"},
		{"bad cidr", `{"ip": [{"cidr": "10.0.0.0/33"}]}`, "ip[0].cidr", "not a CIDR"},
		{"nested array", `{"source": [["a"]]}`, "source[0]", "nested arrays"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := pattern.Compile([]byte(tt.pattern))
			var pe *pattern.Error
			if !errors.As(err, &pe) {
				t.Fatalf("Compile(%s): got %v, want a *pattern.Error", tt.pattern, err)
			}
			if pe.Path != tt.wantPath || !strings.Contains(pe.Reason, tt.wantReason) {
				t.Errorf("Compile(%s): got %q at %q, want %q at %q", tt.pattern, pe.Reason, pe.Path, tt.wantReason, tt.wantPath)
			}
		})
	}
}

func TestMatchNotObject(t *testing.T) {
	p := pattern.MustCompile(`{"source": ["a"]}`)
	if _, err := p.Match([]byte(`[1]`)); err == nil {
		t.Error("Match() of an array: got nil error, want one")
	}
}
