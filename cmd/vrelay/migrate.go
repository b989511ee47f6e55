package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/vrelay/vrelay/internal/migrate"
)

const migrateUsage = `Usage:
  vrelay migrate -from FILE [-from FILE ...] [-o OUT]

Converts a VMware Event Router RouterConfig, or Tanzu Sources for Knative
VSphereSource and HorizonSource manifests (one or several YAML documents a
file), into one vrelay configuration, written to OUT (default: stdout).
Give OpenFaaS stack files (stack.yml) as further -from files: each function
with a topic annotation becomes an http route.

No secret value is copied: passwords and keys become fromEnv references
(fromFile into the mounted secret for a Tanzu secretRef), and the comment at
the top of the output lists what to provide. What has no vrelay equivalent
is noted there too. Check the result with vrelay validate.
`

// fromFlags collects repeated -from flags.
type fromFlags []string

func (f *fromFlags) String() string     { return strings.Join(*f, ",") }
func (f *fromFlags) Set(v string) error { *f = append(*f, v); return nil }

// cmdMigrate is `vrelay migrate`.
func cmdMigrate(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("migrate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, migrateUsage) }
	var from fromFlags
	fs.Var(&from, "from", "a RouterConfig, Tanzu source or OpenFaaS stack `file` (repeat for several)")
	out := fs.String("o", "", "write the configuration to this `file` (default: stdout)")
	rest, err := parseArgs(fs, args)
	if err != nil {
		return 2
	}
	from = append(from, rest...) // files may also follow as arguments
	if len(from) == 0 {
		fmt.Fprint(stderr, migrateUsage)
		return 2
	}
	var ins []migrate.Input
	for _, f := range from {
		b, err := os.ReadFile(f)
		if err != nil {
			fmt.Fprintln(stderr, "vrelay migrate:", err)
			return 1
		}
		ins = append(ins, migrate.Input{Name: f, Data: b})
	}
	prog := newProgress(stderr, "converted", "documents")
	res, err := migrate.Convert(ins, migrate.WithProgress(func(done, total int) { prog.update(done, total, "") }))
	prog.done()
	if err != nil {
		fmt.Fprintln(stderr, "vrelay migrate:", err)
		return 1
	}
	if *out == "" {
		if _, err := stdout.Write(res.YAML); err != nil {
			fmt.Fprintln(stderr, "vrelay migrate:", err)
			return 1
		}
	} else if err := os.WriteFile(*out, res.YAML, 0o644); err != nil {
		fmt.Fprintln(stderr, "vrelay migrate:", err)
		return 1
	}
	dest := *out
	if dest == "" {
		dest = "stdout"
	}
	fmt.Fprintf(stderr, "vrelay migrate: wrote %s and %s to %s\n", plural(res.Sources, "source", "sources"), plural(res.Routes, "route", "routes"), dest)
	if len(res.Secrets) > 0 {
		fmt.Fprintln(stderr, "Before vrelay run, provide:")
		for _, s := range res.Secrets {
			fmt.Fprintln(stderr, "  "+s)
		}
	}
	return 0
}
