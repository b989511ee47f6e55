package main

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/nats-io/nats.go/jetstream"
)

// TestRetryableEnsure checks which failures to set up the streams vrelay
// waits out: a cluster that is forming or restarting a node, a timeout;
// not a configuration the cluster cannot place.
func TestRetryableEnsure(t *testing.T) {
	api := func(code jetstream.ErrorCode, desc string) error {
		return fmt.Errorf("create stream VMWARE_EVENTS: %w", &jetstream.APIError{Code: 400, ErrorCode: code, Description: desc})
	}
	for _, tt := range []struct {
		name string
		err  error
		want bool
	}{
		{"peer offline", api(10005, "no suitable peers for placement, peer offline"), true},
		{"temporarily unavailable", api(10008, "JetStream system temporarily unavailable"), true},
		{"timeout", fmt.Errorf("x: %w", context.DeadlineExceeded), true},
		{"too few servers", api(10005, "insufficient resources"), false},
		{"bad request", api(10003, "bad request"), false},
		{"other", errors.New("boom"), false},
	} {
		if got := retryableEnsure(tt.err); got != tt.want {
			t.Errorf("%s: got %v, want %v", tt.name, got, tt.want)
		}
	}
}
