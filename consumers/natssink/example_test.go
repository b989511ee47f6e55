package natssink_test

import (
	"context"
	"fmt"
	"os"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/vrelay/vrelay/consumers"
	"github.com/vrelay/vrelay/consumers/natssink"
	"github.com/vrelay/vrelay/streams"
)

func Example() {
	dir, _ := os.MkdirTemp("", "natssink-example")
	defer os.RemoveAll(dir)
	srv, err := streams.StartEmbedded(streams.EmbeddedConfig{DataDir: dir, Listen: streams.ListenOff}, nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer srv.Shutdown()
	nc, err := srv.Connect()
	if err != nil {
		fmt.Println(err)
		return
	}
	defer nc.Close()
	ctx := context.Background()

	// The reader's stream; the sink waits for its PubAck.
	js, _ := jetstream.New(nc)
	st, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "REPUBLISHED", Subjects: []string{"republished.>"}})
	if err != nil {
		fmt.Println(err)
		return
	}
	sink, err := natssink.New(natssink.Config{Subject: "republished.{type}", JetStream: true}, natssink.WithConn(nc))
	if err != nil {
		fmt.Println(err)
		return
	}

	ev := event.New()
	ev.SetID("8201")
	ev.SetSource("https://vc01.lab/sdk")
	ev.SetType("com.vmware.vsphere.VmPoweredOnEvent.v0")
	_ = ev.SetData(event.ApplicationJSON, []byte(`{"Key":8201}`))
	fmt.Println("send:", sink.Send(ctx, ev))
	fmt.Println("redelivery:", sink.Send(ctx, ev)) // dropped by the stream as a duplicate

	msg, _ := st.GetMsg(ctx, 1)
	fmt.Println(msg.Subject)
	fmt.Println(msg.Header.Get("Nats-Msg-Id"))
	fmt.Println(string(msg.Data))
	info, _ := st.Info(ctx)
	fmt.Println("stored:", info.State.Msgs)

	_, err = natssink.New(natssink.Config{Subject: "vmware.copy"}, natssink.WithConn(nc))
	fmt.Println(err != nil)

	huge := ev.Clone()
	_ = huge.SetData("text/plain", make([]byte, nc.MaxPayload()))
	fmt.Println("too large, permanent:", consumers.IsPermanent(sink.Send(ctx, huge)))

	// Output:
	// send: <nil>
	// redelivery: <nil>
	// republished.com_vmware_vsphere_VmPoweredOnEvent_v0
	// https://vc01.lab/sdk:8201
	// {"specversion":"1.0","id":"8201","source":"https://vc01.lab/sdk","type":"com.vmware.vsphere.VmPoweredOnEvent.v0","datacontenttype":"application/json","data":{"Key":8201}}
	// stored: 1
	// true
	// too large, permanent: true
}
