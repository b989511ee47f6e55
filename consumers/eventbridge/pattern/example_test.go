package pattern_test

import (
	"fmt"

	"github.com/vrelay/vrelay/consumers/eventbridge/pattern"
)

func Example() {
	p, err := pattern.Compile([]byte(`{"detail": {"subject": [{"shellstyle": "Vm*"}], "data": {"Vm": {"Name": [{"prefix": "prod-"}]}}}}`))
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, ev := range []string{
		`{"detail": {"subject": "VmPoweredOnEvent", "data": {"Vm": {"Name": "prod-web-01"}}}}`,
		`{"detail": {"subject": "VmPoweredOnEvent", "data": {"Vm": {"Name": "dev-web-01"}}}}`,
		`{"detail": {"subject": "HostConnectedEvent", "data": {"Vm": {"Name": "prod-web-01"}}}}`,
	} {
		ok, _ := p.Match([]byte(ev))
		fmt.Println(ok)
	}
	_, err = pattern.Compile([]byte(`{"detail": {"data": {"Vm": {"Name": [{"prefx": "prod-"}]}}}}`))
	fmt.Println(err)
	// Output:
	// true
	// false
	// false
	// detail.data.Vm.Name[0]: unknown operator "prefx"
}
