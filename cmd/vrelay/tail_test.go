package main

import (
	"bufio"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/vrelay/vrelay/internal/natstest"
	"github.com/vrelay/vrelay/streams"
)

// storeTailEvents stores the events of the eventline package's fixed set
// (both vCenter shapes, both Horizon shapes, webhook events) on their
// subjects, and returns the JSON the stream holds, in order.
func storeTailEvents(t *testing.T, js jetstream.JetStream) []string {
	t.Helper()
	f, err := os.Open(filepath.Join("..", "..", "internal", "eventline", "testdata", "stored.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var stored []string
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var s struct {
			Subject string          `json:"subject"`
			Event   json.RawMessage `json:"event"`
		}
		if err := json.Unmarshal(sc.Bytes(), &s); err != nil {
			t.Fatal(err)
		}
		ev, err := streams.Decode(s.Event)
		if err != nil {
			t.Fatal(err)
		}
		msg, err := streams.Encode(s.Subject, &ev, streams.MsgID(&ev))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := js.PublishMsg(t.Context(), msg); err != nil {
			t.Fatal(err)
		}
		stored = append(stored, string(msg.Data))
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return stored
}

func TestTailLines(t *testing.T) {
	_, js := natstest.Run(t)
	url := js.Conn().ConnectedUrl()
	stored := storeTailEvents(t, js)
	n := "7"
	if len(stored) != 7 {
		t.Fatalf("stored %d events, want the 7 of stored.jsonl", len(stored))
	}
	// The golden files are those of internal/eventline: tail prints
	// exactly the lines that package renders, one per event.
	golden := func(name string) string {
		b, err := os.ReadFile(filepath.Join("..", "..", "internal", "eventline", "testdata", name))
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	tests := []struct {
		name string
		args []string
		env  string // NO_COLOR
		want string
	}{
		{name: "not a terminal", args: nil, want: golden("lines.golden")},
		{name: "color never", args: []string{"-color", "never"}, want: golden("lines.golden")},
		{name: "color always", args: []string{"-color", "always"}, want: golden("lines-color.golden")},
		{name: "color always beats NO_COLOR", args: []string{"-color", "always"}, env: "1", want: golden("lines-color.golden")},
		{name: "json", args: []string{"-json"}, want: strings.Join(stored, "\n") + "\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.env != "" {
				t.Setenv("NO_COLOR", tt.env)
			}
			args := append([]string{"tail", "-server", url, "-since", "1h", "-n", n}, tt.args...)
			code, out, errOut := runCLI(args...)
			if code != 0 {
				t.Fatalf("tail: code %d, stderr %q; want 0", code, errOut)
			}
			if diff := cmp.Diff(tt.want, out); diff != "" {
				t.Errorf("tail output (-want +got):\n%s", diff)
			}
		})
	}
}

func TestTailFilter(t *testing.T) {
	_, js := natstest.Run(t)
	url := js.Conn().ConnectedUrl()
	stored := storeTailEvents(t, js)

	// Only the Horizon events match; -n counts printed events, so tail
	// stops after both instead of waiting for a third.
	code, out, errOut := runCLI("tail", "-server", url, "-since", "1h", "-n", "2",
		"-filter", `type startsWith "com.vmware.horizon." || type startsWith "com.vmware.event.router/horizon."`)
	want := "2023-12-06T13:48:05Z VLSI_USERLOGGEDIN_REST hz01 user=S-1-5-21-2404106297-684390199-568881881-4197 machine=horizon.server.example.com User example.com\\horizonedge has logged in to Horizon REST API\n" +
		"2021-07-27T06:56:21Z BROKER_SMALL_MEMORY hz01 machine=Horizon-02.corp.local Broker Horizon-02.corp.local has been detected as being configured with a small amount of physical memory. Please refer to the View Installation Guide.\n"
	if code != 0 || out != want {
		t.Errorf("tail -filter: code %d, stderr %q, output\n%s\nwant 0 and\n%s", code, errOut, out, want)
	}

	// The subject may come before the flags, as with the other commands.
	code, out, errOut = runCLI("tail", "vmware.horizon.>", "-server", url, "-since", "1h", "-n", "2")
	if code != 0 || out != want {
		t.Errorf("tail SUBJECT -flags: code %d, stderr %q, output\n%s\nwant 0 and\n%s", code, errOut, out, want)
	}

	// -json with a filter prints the matching events as stored.
	code, out, _ = runCLI("tail", "-server", url, "-since", "1h", "-n", "1", "-json", "-filter", `data.Vm.Name == "test-01"`)
	if code != 0 || out != stored[1]+"\n" {
		t.Errorf("tail -json -filter: code %d, output %q; want 0 and %q", code, out, stored[1])
	}
}

func TestTailBadFlags(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want []string
	}{
		{name: "filter does not compile", args: []string{"-filter", "type == "}, want: []string{"-filter:", "line 1, column"}},
		{name: "filter not boolean", args: []string{"-filter", "id"}, want: []string{"-filter:"}},
		{name: "bad color", args: []string{"-color", "sometimes"}, want: []string{"-color", "auto, always or never"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// No server: the flags are checked before connecting.
			code, _, errOut := runCLI(append([]string{"tail", "-server", "nats://127.0.0.1:1"}, tt.args...)...)
			if code != 2 {
				t.Errorf("code %d, want 2", code)
			}
			for _, w := range tt.want {
				if !strings.Contains(errOut, w) {
					t.Errorf("stderr %q, want %q in it", errOut, w)
				}
			}
		})
	}
}
