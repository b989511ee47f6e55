package logsink_test

import (
	"context"
	"fmt"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/vrelay/vrelay/consumers/logsink"
)

func Example() {
	sink, err := logsink.New(logsink.Config{}) // stdout
	if err != nil {
		fmt.Println(err)
		return
	}
	ev := event.New()
	ev.SetID("8201")
	ev.SetSource("https://vc01.lab/sdk")
	ev.SetType("com.vmware.vsphere.VmPoweredOnEvent.v0")
	ev.SetSubject("VmPoweredOnEvent")
	ev.SetTime(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
	if err := ev.SetData(event.ApplicationJSON, map[string]any{"Key": 8201}); err != nil {
		fmt.Println(err)
		return
	}
	if err := sink.Send(context.Background(), ev); err != nil {
		fmt.Println(err)
	}
	// Output:
	// {"specversion":"1.0","id":"8201","source":"https://vc01.lab/sdk","type":"com.vmware.vsphere.VmPoweredOnEvent.v0","subject":"VmPoweredOnEvent","datacontenttype":"application/json","time":"2026-01-02T03:04:05Z","data":{"Key":8201}}
}

func Example_line() {
	sink, err := logsink.New(logsink.Config{Format: logsink.FormatLine})
	if err != nil {
		fmt.Println(err)
		return
	}
	ev := event.New()
	ev.SetID("8201")
	ev.SetSource("https://vc01.lab/sdk")
	ev.SetType("com.vmware.vsphere.VmPoweredOnEvent.v0")
	ev.SetTime(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
	if err := ev.SetData(event.ApplicationJSON, map[string]any{
		"Vm":                   map[string]any{"Name": "web-01"},
		"FullFormattedMessage": "web-01 on esx01 in DC1 is powered on",
	}); err != nil {
		fmt.Println(err)
		return
	}
	if err := sink.Send(context.Background(), ev); err != nil {
		fmt.Println(err)
	}
	// Output:
	// 2026-01-02T03:04:05Z VmPoweredOnEvent vc01.lab vm=web-01 web-01 on esx01 in DC1 is powered on
}
