package logsink

import (
	"io"
	"os"
	"testing"
)

func TestNewPicksOutput(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		opts []Option
		want io.Writer
	}{
		{name: "default is stdout", want: os.Stdout},
		{name: "stdout", cfg: Config{Output: OutputStdout}, want: os.Stdout},
		{name: "stderr", cfg: Config{Output: OutputStderr}, want: os.Stderr},
		{name: "WithWriter wins", cfg: Config{Output: OutputStderr}, opts: []Option{WithWriter(io.Discard)}, want: io.Discard},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := New(tt.cfg, tt.opts...)
			if err != nil {
				t.Fatalf("New(): got error %v, want nil", err)
			}
			if s.w != tt.want {
				t.Errorf("writer: got %v, want %v", s.w, tt.want)
			}
		})
	}
}
