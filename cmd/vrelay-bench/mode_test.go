package main

import (
	"io"
	"testing"

	"github.com/vrelay/vrelay/consumers/httpsink"
)

// TestModeFlag checks that the pipeline's route posts what the relay
// posts unless told otherwise, and that -mode takes only the two modes.
func TestModeFlag(t *testing.T) {
	o, err := parseFlags(nil, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if o.mode != httpsink.ModeStructured {
		t.Errorf("default -mode: got %q, want %q (what the relay posts)", o.mode, httpsink.ModeStructured)
	}
	if o, err := parseFlags([]string{"-mode", "binary"}, io.Discard); err != nil || o.mode != httpsink.ModeBinary {
		t.Errorf("-mode binary: got %q, %v", o.mode, err)
	}
	if _, err := parseFlags([]string{"-mode", "bogus"}, io.Discard); err == nil {
		t.Error("-mode bogus: got nil error")
	}
}
