package filters_test

import (
	"errors"
	"fmt"

	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/vrelay/vrelay/filters"
)

func ExampleCompileTransform() {
	tr, err := filters.CompileTransform([]filters.Step{
		{Drop: `type == "com.vmware.vsphere.UserLoginSessionEvent.v0"`},
		{
			When:   `type == "com.vmware.vsphere.UserLogoutSessionEvent.v0"`,
			Set:    map[string]string{"type": `"vmware-logout"`, "data.reason": `"logout"`},
			Remove: []string{"data.SessionId"},
		},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, typ := range []string{"UserLoginSessionEvent", "UserLogoutSessionEvent", "VmPoweredOnEvent"} {
		ev := event.New()
		ev.SetID("101")
		ev.SetSource("https://vcsa.example.com/sdk")
		ev.SetType("com.vmware.vsphere." + typ + ".v0")
		_ = ev.SetData(event.ApplicationJSON, []byte(`{"Key": 101, "UserName": "alice", "SessionId": "52a1"}`))
		res, err := tr.Apply(ev)
		switch {
		case err != nil:
			fmt.Println("dead-letter:", err)
		case res.Dropped:
			fmt.Printf("%s: dropped by step %d\n", typ, res.Step)
		default:
			fmt.Printf("%s: deliver %s %s (changed %v)\n", typ, res.Event.Type(), res.Event.Data(), res.Changed)
		}
	}
	// Output:
	// UserLoginSessionEvent: dropped by step 0
	// UserLogoutSessionEvent: deliver vmware-logout {"Key":101,"UserName":"alice","reason":"logout"} (changed true)
	// VmPoweredOnEvent: deliver com.vmware.vsphere.VmPoweredOnEvent.v0 {"Key": 101, "UserName": "alice", "SessionId": "52a1"} (changed false)
}

func ExampleStepError() {
	_, err := filters.CompileTransform([]filters.Step{
		{Drop: `subject == "UserLoginSessionEvent"`},
		{Set: map[string]string{"type": `"vmware-" +`}},
	})
	var se *filters.StepError
	if errors.As(err, &se) {
		fmt.Println(se.Path())
		fmt.Println(se)
	}
	// Output:
	// transform[1].set.type
	// transform[1].set.type: line 1, column 11: unexpected token EOF
}
