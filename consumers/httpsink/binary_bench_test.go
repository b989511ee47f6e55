package httpsink

import (
	"context"
	"net/http"
	"testing"

	"github.com/cloudevents/sdk-go/v2/binding"
	"github.com/cloudevents/sdk-go/v2/event"
	cehttp "github.com/cloudevents/sdk-go/v2/protocol/http"
)

// BenchmarkWriteRequest compares building a binary-mode request with the
// SDK and with writeBinary, for a vCenter-shaped event.
func BenchmarkWriteRequest(b *testing.B) {
	// As the vCenter source makes them: six attributes, two extensions.
	ev := binaryEvents(b)["full"]
	ev.SetSubject("")
	ev.SetDataSchema("")
	ec := ev.Context.(*event.EventContextV1)
	ec.Extensions = map[string]any{"eventclass": "event", "vsphereapiversion": "8.0.3.0"}
	b.Run("sdk", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			req, _ := http.NewRequest(http.MethodPost, "http://127.0.0.1/", nil)
			if err := cehttp.WriteRequest(context.Background(), binding.ToMessage(&ev), req); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("writeBinary", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			req, _ := http.NewRequest(http.MethodPost, "http://127.0.0.1/", nil)
			if err := writeBinary(context.Background(), req, &ev); err != nil {
				b.Fatal(err)
			}
		}
	})
}
