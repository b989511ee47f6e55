package main

import (
	"fmt"
	"io"

	"github.com/vrelay/vrelay/internal/config"
)

const configUsage = `Usage:
  vrelay config schema

schema prints the JSON Schema (draft 2020-12) of the config file, for
editors and CI:

  vrelay config schema > vrelay.schema.json

and, as the first line of a config file, for the YAML language server:

  # yaml-language-server: $schema=./vrelay.schema.json
`

// cmdConfig answers questions about the config file itself.
func cmdConfig(args []string, stdout, stderr io.Writer) int {
	if len(args) != 1 || args[0] != "schema" {
		if len(args) == 1 && (args[0] == "-h" || args[0] == "-help" || args[0] == "--help") {
			fmt.Fprint(stdout, configUsage)
			return 0
		}
		fmt.Fprint(stderr, configUsage)
		return 2
	}
	s, err := config.Schema()
	if err != nil {
		fmt.Fprintln(stderr, "vrelay config schema:", err)
		return 1
	}
	fmt.Fprintln(stdout, string(s))
	return 0
}
