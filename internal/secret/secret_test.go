package secret

import (
	"bytes"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestResolve(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "pw")
	if err := os.WriteFile(file, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	empty := filepath.Join(dir, "empty")
	if err := os.WriteFile(empty, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("VRELAY_TEST_SECRET", "from-env")
	t.Setenv("VRELAY_TEST_EMPTY", "")

	tests := []struct {
		name    string
		ref     Ref
		want    string
		wantErr string
	}{
		{name: "env", ref: Ref{FromEnv: "VRELAY_TEST_SECRET"}, want: "from-env"},
		{name: "file trims newline", ref: Ref{FromFile: file}, want: "s3cret"},
		{name: "unset env", ref: Ref{FromEnv: "VRELAY_TEST_UNSET_XYZ"}, wantErr: "is not set"},
		{name: "empty env", ref: Ref{FromEnv: "VRELAY_TEST_EMPTY"}, wantErr: "is empty"},
		{name: "empty file", ref: Ref{FromFile: empty}, wantErr: "is empty"},
		{name: "missing file", ref: Ref{FromFile: filepath.Join(dir, "nope")}, wantErr: "read secret file"},
		{name: "nothing", ref: Ref{}, wantErr: "no secret configured"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.ref.Resolve()
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Resolve() error = %v, want containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("Resolve() = %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}

func TestValueNeverPrints(t *testing.T) {
	v := Value("hunter2")
	var buf bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&buf, nil))
	log.Info("login", "password", v)
	out := buf.String() + fmt.Sprint(v) + fmt.Sprintf("%v %s %#v", v, v, v)
	if strings.Contains(out, "hunter2") {
		t.Fatalf("secret leaked: %s", out)
	}
	if v.Reveal() != "hunter2" {
		t.Fatalf("Reveal() = %q, want hunter2", v.Reveal())
	}
}
