package httpsink_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"

	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/vrelay/vrelay/consumers"
	"github.com/vrelay/vrelay/consumers/httpsink"
)

func Example() {
	// A receiver that accepts VM events and rejects the rest.
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		fmt.Printf("received ce-id=%s ce-type=%s body=%s\n", r.Header.Get("Ce-Id"), r.Header.Get("Ce-Type"), body)
		if r.Header.Get("Ce-Subject") != "VmPoweredOnEvent" {
			http.Error(w, "unsupported subject", http.StatusUnprocessableEntity)
			return
		}
		w.WriteHeader(http.StatusAccepted)
	}))
	defer srv.Close()

	sink, err := httpsink.New(httpsink.Config{URL: srv.URL})
	if err != nil {
		fmt.Println(err)
		return
	}

	ev := event.New()
	ev.SetID("8201")
	ev.SetSource("https://vc01.lab/sdk")
	ev.SetType("com.vmware.vsphere.VmPoweredOnEvent.v0")
	ev.SetSubject("VmPoweredOnEvent")
	if err := ev.SetData(event.ApplicationJSON, map[string]any{"Key": 8201, "Vm": map[string]string{"Name": "prod-web-01"}}); err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("send:", sink.Send(context.Background(), ev))

	ev.SetID("8202")
	ev.SetSubject("AlarmStatusChangedEvent")
	err = sink.Send(context.Background(), ev)
	fmt.Println("send:", err)
	fmt.Println("permanent:", consumers.IsPermanent(err))

	// Output:
	// received ce-id=8201 ce-type=com.vmware.vsphere.VmPoweredOnEvent.v0 body={"Key":8201,"Vm":{"Name":"prod-web-01"}}
	// send: <nil>
	// received ce-id=8202 ce-type=com.vmware.vsphere.VmPoweredOnEvent.v0 body={"Key":8201,"Vm":{"Name":"prod-web-01"}}
	// send: permanent: http status 422 Unprocessable Entity: unsupported subject
	// permanent: true
}
