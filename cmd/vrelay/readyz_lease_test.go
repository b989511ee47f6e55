package main

import (
	"testing"

	"github.com/vrelay/vrelay/producers"
)

type fixedStatus []producers.SourceStatus

func (f fixedStatus) Status() []producers.SourceStatus { return f }

func TestSourceLinesStandby(t *testing.T) {
	r := &readiness{started: make(chan struct{}), sources: fixedStatus{
		{Provider: "vcenter", Name: "vc01", State: producers.StateStandby, Holder: "vrelay-1-5f3a9c01"},
		{Provider: "webhook", Name: "hooks", State: producers.StateRunning},
	}}
	r.set()
	got := r.sourceLines()
	want := "source vcenter/vc01: standby (lease held by vrelay-1-5f3a9c01)\nsource webhook/hooks: running\n"
	if got != want {
		t.Errorf("sourceLines:\ngot  %q\nwant %q", got, want)
	}
}

func TestSourceLinesDetail(t *testing.T) {
	r := &readiness{started: make(chan struct{}), sources: fixedStatus{
		{Provider: "vcenter", Name: "vc02", State: producers.StateRunning,
			Detail: "vcenter unreachable since 02:31:05: dial tcp 127.0.0.1:1: connect: connection refused (failed attempts: 12)"},
		{Provider: "vcenter", Name: "vc03", State: producers.StateRunning,
			Detail: "stalled: vCenter at key 5120, published up to 4020, sweeping"},
	}}
	r.set()
	got := r.sourceLines()
	want := "source vcenter/vc02: running, vcenter unreachable since 02:31:05: dial tcp 127.0.0.1:1: connect: connection refused (failed attempts: 12)\n" +
		"source vcenter/vc03: running, stalled: vCenter at key 5120, published up to 4020, sweeping\n"
	if got != want {
		t.Errorf("sourceLines:\ngot  %q\nwant %q", got, want)
	}
}
