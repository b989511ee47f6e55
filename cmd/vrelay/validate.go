package main

import (
	"flag"
	"fmt"
	"io"

	"github.com/vrelay/vrelay/internal/config"
)

// cmdValidate checks a configuration file without connecting to anything:
// exit 0 when it is valid, 1 with one line per problem when it is not.
func cmdValidate(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("validate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", "vrelay.yaml", "configuration `file`")
	if rest, err := parseArgs(fs, args); err != nil || len(rest) > 0 {
		if err == nil {
			fmt.Fprintf(stderr, "vrelay validate: unexpected argument %q (the file goes after -config)\n", rest[0])
		}
		return 2
	}
	cfg, err := config.Load(*path)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	fmt.Fprintf(stdout, "%s: valid (%d sources, %d routes)\n", *path, len(cfg.Sources), len(cfg.Routes))
	return 0
}
