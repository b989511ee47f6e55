package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestNATSCLIWithEmbeddedAuth checks what the docs tell nats CLI users:
// with nats.embedded.auth the CLI is refused until it passes the token
// (--token or NATS_TOKEN) or the user and password (--user/--password or
// NATS_USER/NATS_PASSWORD).
func TestNATSCLIWithEmbeddedAuth(t *testing.T) {
	cli := os.Getenv(natsCLIEnv)
	if cli == "" {
		t.Skip(natsCLIEnv + " is unset: `make test` builds natscli v0.5.0 and sets it to the binary")
	}
	t.Setenv("VRELAY_TEST_NATS_TOKEN", "cli-s3cret-token")
	t.Setenv("VRELAY_TEST_NATS_PASSWORD", "cli-s3cret-password")
	for _, tt := range []struct {
		name  string
		auth  string
		flags []string
		env   []string
	}{
		{name: "token", auth: "{token: {fromEnv: VRELAY_TEST_NATS_TOKEN}}",
			flags: []string{"--token", "cli-s3cret-token"}, env: []string{"NATS_TOKEN=cli-s3cret-token"}},
		{name: "user", auth: "{user: cli, password: {fromEnv: VRELAY_TEST_NATS_PASSWORD}}",
			flags: []string{"--user", "cli", "--password", "cli-s3cret-password"},
			env:   []string{"NATS_USER=cli", "NATS_PASSWORD=cli-s3cret-password"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			natsAddr, opsAddr := freePort(t), freePort(t)
			path := filepath.Join(dir, "vrelay.yaml")
			writeFile(t, path, fmt.Sprintf(`nats:
  embedded: {dataDir: %q, listen: %q, auth: %s}
http: {listen: %q}
routes:
  - {name: r1, sink: {type: log}}
`, filepath.Join(dir, "data"), natsAddr, tt.auth, opsAddr))
			v := startInproc(t, path, opsAddr)
			deadline := time.Now().Add(30 * time.Second)
			for !strings.HasPrefix(v.readyz(), "ok") {
				if time.Now().After(deadline) {
					t.Fatalf("vrelay not ready after 30s: %q", v.readyz())
				}
				time.Sleep(20 * time.Millisecond)
			}

			n := &natsCLI{bin: cli, url: "nats://" + natsAddr, home: t.TempDir()}
			if out, err := n.run(t, "stream", "info", "VMWARE_EVENTS"); err == nil || !strings.Contains(strings.ToLower(out), "authorization violation") {
				t.Errorf("nats stream info without credentials: err %v, output %q; want an authorization violation", err, out)
			}
			if out, err := n.run(t, append(tt.flags, "stream", "info", "VMWARE_EVENTS")...); err != nil || !strings.Contains(out, "VMWARE_EVENTS") {
				t.Errorf("nats %s stream info: err %v, output %q; want the stream", strings.Join(tt.flags, " "), err, out)
			}
			cmd := n.command(t.Context(), "stream", "info", "VMWARE_EVENTS")
			cmd.Env = append(cmd.Env, tt.env...)
			if out, err := cmd.CombinedOutput(); err != nil || !strings.Contains(string(out), "VMWARE_EVENTS") {
				t.Errorf("%s nats stream info: err %v, output %q; want the stream", strings.Join(tt.env, " "), err, out)
			}
		})
	}
}
