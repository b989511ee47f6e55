package webhook_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/vrelay/vrelay/producers"
	"github.com/vrelay/vrelay/producers/webhook"
)

// discard is a ResponseWriter that keeps only the status, so the benchmark
// measures the handler rather than a recorder.
type discard struct {
	h    http.Header
	code int
}

func (d *discard) Header() http.Header         { return d.h }
func (d *discard) Write(b []byte) (int, error) { return len(b), nil }
func (d *discard) WriteHeader(code int)        { d.code = code }

// BenchmarkHandler posts one structured-mode event (a vCenter-sized payload,
// about 1 KB) through Handler to a publisher that does nothing.
func BenchmarkHandler(b *testing.B) {
	body := []byte(`{"specversion":"1.0","id":"7c5a1b9e-3f1d-4a51-8f0e-1d2c3b4a5f60","source":"https://vc01.example.com/sdk",` +
		`"type":"com.vmware.vsphere.VmPoweredOnEvent.v0","subject":"VmPoweredOnEvent","time":"2026-01-02T03:04:05.123Z",` +
		`"datacontenttype":"application/json","eventclass":"event","vsphereapiversion":"8.0.3.0","data":{"Key":7351,` +
		`"ChainId":7351,"CreatedTime":"2026-01-02T03:04:05.123Z","UserName":"VSPHERE.LOCAL\\Administrator",` +
		`"Datacenter":{"Name":"dc-01","Datacenter":{"Type":"Datacenter","Value":"datacenter-3"}},` +
		`"ComputeResource":{"Name":"cluster-01","ComputeResource":{"Type":"ClusterComputeResource","Value":"domain-c8"}},` +
		`"Host":{"Name":"esx-01.example.com","Host":{"Type":"HostSystem","Value":"host-12"}},` +
		`"Vm":{"Name":"prod-web-01","Vm":{"Type":"VirtualMachine","Value":"vm-101"}},` +
		`"FullFormattedMessage":"prod-web-01 on esx-01.example.com in dc-01 is powered on","ChangeTag":"",` +
		`"Template":false,"Ds":null,"Net":null,"Dvs":null}}`)
	src, err := webhook.New(webhook.Config{})
	if err != nil {
		b.Fatal(err)
	}
	h := src.Handler(publisherFunc(func(context.Context, ...producers.Record) error { return nil }))
	req := httptest.NewRequest(http.MethodPost, "/", nil)
	req.Header.Set("Content-Type", "application/cloudevents+json")
	req.ContentLength = int64(len(body))
	w := &discard{h: http.Header{}}

	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		req.Body = io.NopCloser(bytes.NewReader(body))
		h.ServeHTTP(w, req)
		if w.code != http.StatusOK {
			b.Fatalf("got status %d, want 200", w.code)
		}
	}
}
