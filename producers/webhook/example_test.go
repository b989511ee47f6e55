package webhook_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"

	"github.com/vrelay/vrelay/producers"
	"github.com/vrelay/vrelay/producers/webhook"
)

// publisherFunc adapts a function to producers.Publisher.
type publisherFunc func(ctx context.Context, recs ...producers.Record) error

func (f publisherFunc) Publish(ctx context.Context, recs ...producers.Record) error {
	return f(ctx, recs...)
}

// A binary-mode event posted to the handler reaches the publisher unchanged,
// and the sender hears 200 once Publish returned nil.
func ExampleSource_Handler() {
	src, err := webhook.New(webhook.Config{Path: "/events"}, webhook.WithName("hooks"))
	if err != nil {
		fmt.Println(err)
		return
	}
	pub := publisherFunc(func(_ context.Context, recs ...producers.Record) error {
		for _, r := range recs {
			e := r.Event
			fmt.Printf("published id=%s source=%s type=%s subject=%s datacontenttype=%s data=%s\n",
				e.ID(), e.Source(), e.Type(), e.Subject(), e.DataContentType(), e.Data())
		}
		return nil
	})

	req := httptest.NewRequest(http.MethodPost, "/events", strings.NewReader(`{"Vm":{"Name":"prod-01"}}`))
	req.Header.Set("Ce-Specversion", "1.0")
	req.Header.Set("Ce-Id", "42")
	req.Header.Set("Ce-Source", "https://vc01.example.com/sdk")
	req.Header.Set("Ce-Type", "com.vmware.vsphere.VmPoweredOnEvent.v0")
	req.Header.Set("Ce-Subject", "VmPoweredOnEvent")
	req.Header.Set("Content-Type", "application/json")
	rec := httptest.NewRecorder()
	src.Handler(pub).ServeHTTP(rec, req)

	fmt.Print(rec.Code, " ", rec.Body.String())
	// Output:
	// published id=42 source=https://vc01.example.com/sdk type=com.vmware.vsphere.VmPoweredOnEvent.v0 subject=VmPoweredOnEvent datacontenttype=application/json data={"Vm":{"Name":"prod-01"}}
	// 200 {"accepted":1}
}
