package vcenter

import (
	"context"
	"encoding/json"
	"log/slog"
	"math"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/google/go-cmp/cmp"
	"github.com/vmware/govmomi/vim25/types"

	"github.com/vrelay/vrelay/producers"
)

func TestKeyAfter(t *testing.T) {
	tests := []struct {
		name string
		a, b int32
		want bool
	}{
		{"next", 8, 7, true},
		{"same", 7, 7, false},
		{"previous", 6, 7, false},
		{"far ahead", 1_000_000, 7, true},
		{"wrap to negative", math.MinInt32, math.MaxInt32, true},
		{"past the wrap", math.MinInt32 + 5, math.MaxInt32 - 5, true},
		{"before the wrap", math.MaxInt32 - 5, math.MinInt32 + 5, false},
		{"negative keys count up", -5, -6, true},
		{"through zero", 3, -3, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := keyAfter(tt.a, tt.b); got != tt.want {
				t.Errorf("keyAfter(%d, %d) = %v, want %v", tt.a, tt.b, got, tt.want)
			}
		})
	}
}

// TestCoversAcrossWrap is what a restart does at the wrap: the checkpoint
// holds a key just below MaxInt32, and vCenter returns the events around
// it; only those after it, negative keys included, are new.
func TestCoversAcrossWrap(t *testing.T) {
	pos := position{key: math.MaxInt32 - 1, hasKey: true}
	page := []int32{math.MaxInt32 - 2, math.MaxInt32 - 1, math.MaxInt32, math.MinInt32, math.MinInt32 + 1}
	var fresh []int32
	for _, k := range page {
		if !pos.covers(k) {
			fresh = append(fresh, k)
		}
	}
	if diff := cmp.Diff([]int32{math.MaxInt32, math.MinInt32, math.MinInt32 + 1}, fresh); diff != "" {
		t.Errorf("new keys differ (-want +got):\n%s", diff)
	}
	if (position{}).covers(math.MinInt32) {
		t.Error("a position without a key covers an event")
	}
}

func TestCheckpointJSON(t *testing.T) {
	at := time.Date(2024, 5, 1, 10, 0, 8, 715999000, time.UTC)
	pos := position{instance: "7a4e0ad6-0e63-4ab8-9f0e-0c3c44f3e7a1", begin: at, key: -16957152, typ: "VmPoweredOnEvent", hasKey: true}
	b, err := json.Marshal(pos.checkpoint("https://vc01/sdk", at.Add(time.Second)))
	if err != nil {
		t.Fatal(err)
	}
	const want = `{"vCenter":"https://vc01/sdk","lastEventKey":-16957152,"lastEventType":"VmPoweredOnEvent",` +
		`"lastEventKeyTimestamp":"2024-05-01T10:00:08.715999Z","createdTimestamp":"2024-05-01T10:00:09.715999Z",` +
		`"instanceUuid":"7a4e0ad6-0e63-4ab8-9f0e-0c3c44f3e7a1"}`
	if string(b) != want {
		t.Errorf("got %s\nwant %s", b, want)
	}
	cp, err := parseCheckpoint(b)
	if err != nil {
		t.Fatalf("parse what was saved: %v", err)
	}
	if cp.LastEventKey != pos.key || !cp.LastEventKeyTimestamp.Equal(at) || cp.InstanceUUID != pos.instance {
		t.Errorf("got %+v back", cp)
	}

	// A Tanzu Sources checkpoint has no instanceUuid; it is accepted.
	tanzu := `{"vCenter":"https://vc/sdk","lastEventKey":42,"lastEventType":"UserLoginSessionEvent",` +
		`"lastEventKeyTimestamp":"2023-11-27T10:00:08.715999Z","createdTimestamp":"2023-11-27T10:00:12Z"}`
	if cp, err := parseCheckpoint([]byte(tanzu)); err != nil || cp.LastEventKey != 42 || cp.InstanceUUID != "" {
		t.Errorf("got %+v, %v for a Tanzu checkpoint", cp, err)
	}
}

func TestCorruptCheckpointError(t *testing.T) {
	_, cause := parseCheckpoint([]byte("{"))
	err := corruptCheckpoint("vcenter.vc01", cause)
	const want = "vcenter: checkpoint vcenter.vc01: corrupt checkpoint: not checkpoint JSON: unexpected EOF; " +
		"delete it (vrelay checkpoint delete -config <file> vcenter.vc01, or nats kv del vrelay_checkpoints vcenter.vc01) and the source resumes after its last event in the stream"
	if err.Error() != want {
		t.Errorf("got %q\nwant %q", err, want)
	}
}

// recordingPublisher keeps the records of every Publish call.
type recordingPublisher struct{ recs []producers.Record }

func (p *recordingPublisher) Publish(_ context.Context, recs ...producers.Record) error {
	p.recs = append(p.recs, recs...)
	return nil
}

// TestRecords checks what a page becomes: records whose Nats-Msg-Id is
// `<instance uuid>:<key>` and whose subject token is the vSphere type, in
// both formats (a router CloudEvent's id is a UUID, not the key).
func TestRecords(t *testing.T) {
	const uuid = "11111111-2222-3333-4444-555555555555"
	created := time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)
	page := []types.BaseEvent{
		&types.VmPoweredOnEvent{VmEvent: types.VmEvent{Event: types.Event{Key: 42, CreatedTime: created}}},
		&types.EventEx{Event: types.Event{Key: 43, CreatedTime: created}, EventTypeId: "com.vmware.vc.HA.DasHostFailedEvent"},
	}
	tests := []struct {
		format Format
	}{
		{FormatTanzu},
		{FormatRouter},
	}
	for _, tt := range tests {
		t.Run(string(tt.format), func(t *testing.T) {
			m, err := newMetrics(nil, "vc01")
			if err != nil {
				t.Fatal(err)
			}
			pub := &recordingPublisher{}
			s := &Source{name: "vc01", log: slog.New(slog.DiscardHandler), metrics: m}
			r := &reader{s: s, pub: pub, log: s.log}
			conv := &Converter{Source: "https://vc01/sdk", InstanceUUID: uuid, Format: tt.format, Encoding: EncodingJSON}
			if err := r.publish(t.Context(), conv, page, nil); err != nil {
				t.Fatal(err)
			}
			subjects := producers.NewPublisher(nil, s.Scope())
			var got []string
			for i := range pub.recs {
				got = append(got, pub.recs[i].MsgID+" "+pub.recs[i].Token+" "+subjects.Subject(&pub.recs[i]))
			}
			want := []string{
				uuid + ":42 VmPoweredOnEvent vmware.vcenter.vc01.VmPoweredOnEvent",
				uuid + ":43 com.vmware.vc.HA.DasHostFailedEvent vmware.vcenter.vc01.com_vmware_vc_HA_DasHostFailedEvent",
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("records differ (-want +got):\n%s", diff)
			}
			if pos := r.position(); pos.key != 43 || pos.instance != uuid {
				t.Errorf("got position key %d of %q, want 43 of %q", pos.key, pos.instance, uuid)
			}
		})
	}
}

// TestStoredType reads the vSphere type back from a stored CloudEvent.
func TestStoredType(t *testing.T) {
	tanzu := event.New()
	tanzu.SetID("42")
	tanzu.SetType("com.vmware.vsphere.com.vmware.vc.HA.DasHostFailedEvent.v0")
	router := event.New()
	router.SetID("5f0c5e8e-4c59-5d5b-9d5e-2d1f0f6d3a11")
	router.SetType("com.vmware.event.router/event")
	router.SetSubject("VmPoweredOffEvent")
	tests := []struct {
		name string
		ev   *event.Event
		want string
	}{
		{"tanzu", &tanzu, "com.vmware.vc.HA.DasHostFailedEvent"},
		{"router", &router, "VmPoweredOffEvent"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := storedType(tt.ev); got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestBackoff(t *testing.T) {
	s := &Source{minWait: time.Second, maxWait: time.Minute}
	var got []time.Duration
	for n := 1; n <= 9; n++ {
		got = append(got, s.backoff(n))
	}
	want := []time.Duration{1, 2, 4, 8, 16, 32, 60, 60, 60}
	for i := range want {
		want[i] *= time.Second
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("backoff differs (-want +got):\n%s", diff)
	}
	if d := s.backoff(1 << 20); d != time.Minute {
		t.Errorf("backoff after many failures = %s, want the cap", d)
	}
}
