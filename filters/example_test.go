package filters_test

import (
	"errors"
	"fmt"

	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/vrelay/vrelay/filters"
)

func ExampleCompile() {
	_, err := filters.Compile(`subject == "VmPoweredOnEvent" && type == 1`)
	var ce *filters.CompileError
	if errors.As(err, &ce) {
		fmt.Println(ce)
		fmt.Println(ce.Snippet)
	}
	// Output:
	// line 1, column 39: invalid operation: == (mismatched types string and int)
	//
	//  | subject == "VmPoweredOnEvent" && type == 1
	//  | ......................................^
}

func ExampleFilter_Match() {
	f, err := filters.Compile(`type endsWith "VmPoweredOnEvent.v0" && data.Vm.Name startsWith "prod-"`)
	if err != nil {
		fmt.Println(err)
		return
	}

	ev := event.New()
	ev.SetID("16957152")
	ev.SetSource("https://vcsa.example.com/sdk")
	ev.SetType("com.vmware.vsphere.DrsVmPoweredOnEvent.v0")
	ev.SetExtension("eventclass", "event")
	_ = ev.SetData(event.ApplicationJSON, map[string]any{
		"Key": 16957152,
		"Vm":  map[string]any{"Name": "prod-web-01"},
	})

	ok, err := f.Match(ev)
	fmt.Println(ok, err)
	// Output: true <nil>
}

func ExampleFilter_Match_runtimeError() {
	f, err := filters.Compile(`data.Ds.Name == "datastore1"`)
	if err != nil {
		fmt.Println(err)
		return
	}
	ev := event.New()
	ev.SetID("1")
	ev.SetSource("https://vcsa.example.com/sdk")
	ev.SetType("com.vmware.vsphere.VmPoweredOnEvent.v0")
	_ = ev.SetData(event.ApplicationJSON, map[string]any{"Ds": nil})

	ok, err := f.Match(ev)
	var re *filters.RuntimeError
	fmt.Println(ok, errors.As(err, &re), err)
	// Output: false true line 1, column 9: cannot fetch Name from <nil>
}

func ExampleFilter_UsesData() {
	for _, src := range []string{
		`subject == "VmPoweredOnEvent"`,
		`type == "data"`,
		`data.UserName not in ["vpxd-extension"]`,
	} {
		f, err := filters.Compile(src)
		if err != nil {
			fmt.Println(err)
			return
		}
		fmt.Printf("%-42s %v\n", f, f.UsesData())
	}
	// Output:
	// subject == "VmPoweredOnEvent"              false
	// type == "data"                             false
	// data.UserName not in ["vpxd-extension"]    true
}

func ExampleValue_Eval() {
	key, err := filters.CompileValue(`data.Vm?.Vm?.Value`)
	if err != nil {
		fmt.Println(err)
		return
	}
	vm := event.New()
	vm.SetType("com.vmware.vsphere.VmPoweredOffEvent.v0")
	_ = vm.SetData(event.ApplicationJSON, map[string]any{
		"Vm": map[string]any{"Name": "prod-web-01", "Vm": map[string]any{"Type": "VirtualMachine", "Value": "vm-81"}},
	})
	host := event.New()
	host.SetType("com.vmware.vsphere.HostConnectionLostEvent.v0")
	_ = host.SetData(event.ApplicationJSON, map[string]any{"Host": map[string]any{"Name": "esx-01"}})
	for _, ev := range []event.Event{vm, host} {
		v, err := key.Eval(ev)
		fmt.Println(v, err)
	}
	// Output:
	// vm-81 <nil>
	// <nil> <nil>
}
