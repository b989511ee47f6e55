package main

import (
	"runtime/debug"
	"strings"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = ""

// versionString is the version, then what the build info records of the
// source: "v0.3.0 (go1.25.1, revision 1a2b3c4d5e6f, 2026-11-27T10:00:00Z,
// modified)".
func versionString() string {
	bi, _ := debug.ReadBuildInfo()
	return formatVersion(version, bi)
}

func formatVersion(v string, bi *debug.BuildInfo) string {
	if bi == nil {
		if v == "" {
			v = "dev"
		}
		return v
	}
	if v == "" && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		v = bi.Main.Version
	}
	if v == "" {
		v = "dev"
	}
	details := []string{bi.GoVersion}
	var rev, at string
	modified := false
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.time":
			at = s.Value
		case "vcs.modified":
			modified = s.Value == "true"
		}
	}
	if rev != "" {
		details = append(details, "revision "+rev[:min(12, len(rev))])
	}
	if at != "" {
		details = append(details, at)
	}
	if modified {
		details = append(details, "modified")
	}
	return v + " (" + strings.Join(details, ", ") + ")"
}
