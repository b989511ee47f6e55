package main

import (
	"fmt"
	"strings"
	"testing"

	"github.com/vrelay/vrelay/internal/natstest"
	"github.com/vrelay/vrelay/streams"
)

// TestDLQListTotal lists 5 of 60 dead letters: the listing says how many
// there are, not how many it printed.
func TestDLQListTotal(t *testing.T) {
	srv := natstest.Start(t, t.TempDir(), "127.0.0.1:0")
	url := srv.ClientURL()
	_, js := natstest.Connect(t, url)
	var cfg streams.Config
	cfg.SetDefaults()
	if err := streams.Ensure(t.Context(), js, cfg, nil); err != nil {
		t.Fatal(err)
	}
	for i := range 60 {
		route := "r1"
		if i%3 == 0 {
			route = "r2" // 20 on r2, 40 on r1
		}
		if _, err := js.Publish(t.Context(), streams.DLQSubject(route), fmt.Appendf(nil, `{"n":%d}`, i)); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"-n", "5"}, "showing 5 of 60 dead letters"},
		{[]string{"-n", "5", "-route", "r2"}, "showing 5 of 20 dead letters"},
		{[]string{"-n", "60"}, "\n60 dead letters"},
		{[]string{"-n", "0", "-route", "r1"}, "\n40 dead letters"},
		{[]string{"-n", "5", "2", "3"}, "\n2 dead letters"},
	} {
		args := append([]string{"dlq", "list", "-server", url}, tc.args...)
		code, out, errOut := runCLI(args...)
		if code != 0 || !strings.Contains(out, tc.want) {
			t.Errorf("vrelay %s: code %d, stdout\n%s\nstderr %q; want %q", strings.Join(args, " "), code, out, errOut, tc.want)
		}
	}
}
