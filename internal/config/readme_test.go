package config_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vrelay/vrelay/internal/config"
	"github.com/vrelay/vrelay/streams"
)

// TestREADMECompactExample keeps README.md's compact example valid, and its
// first route matching the event of the README's curl.
func TestREADMECompactExample(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(b), "A compact example")
	if !ok {
		t.Fatal(`README.md: no "A compact example"`)
	}
	_, rest, ok = strings.Cut(rest, "```yaml\n")
	doc, _, ok2 := strings.Cut(rest, "```")
	if !ok || !ok2 {
		t.Fatal("README.md: no yaml block after the compact example")
	}
	cfg, err := config.Parse([]byte(doc))
	if err != nil {
		t.Fatalf("README.md compact example: %v", err)
	}
	// The curl of the quick start: source hooks, type com.vmware.vsphere.VmPoweredOnEvent.v0.
	curl := streams.Subject(streams.DefaultRoot, "webhook", "hooks", "com.vmware.vsphere.VmPoweredOnEvent.v0")
	matched := false
	for _, s := range cfg.Routes[0].Subjects {
		matched = matched || subjectMatches(s, curl)
	}
	if !matched {
		t.Errorf("route %q subjects %v do not match the curl's subject %s", cfg.Routes[0].Name, cfg.Routes[0].Subjects, curl)
	}
	if !subjectMatches("vmware.webhook.hooks.>", curl) || subjectMatches("vmware.*.*.VmPoweredOnEvent", curl) {
		t.Errorf("README's nats sub lines: subject %s", curl)
	}
}

// subjectMatches reports whether a NATS subject filter matches subject.
func subjectMatches(filter, subject string) bool {
	ft, st := strings.Split(filter, "."), strings.Split(subject, ".")
	for i, f := range ft {
		switch {
		case f == ">":
			return len(st) > i
		case i >= len(st):
			return false
		case f != "*" && f != st[i]:
			return false
		}
	}
	return len(ft) == len(st)
}
