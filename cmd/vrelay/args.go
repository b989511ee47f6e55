package main

import (
	"flag"
	"strconv"
	"strings"
)

// parseArgs parses flags and positional arguments in any order, so that
// `vrelay dlq show 7 -config f` works like `vrelay dlq show -config f 7`
// (the flag package alone stops at the first argument). It returns the
// positional arguments in order. After "--", everything is positional.
func parseArgs(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		// "--" ends the flags: keep what follows as it is.
		cut := -1
		for i, a := range args {
			if a == "--" {
				cut = i
				break
			}
		}
		head, tail := args, []string(nil)
		if cut >= 0 {
			head, tail = args[:cut], args[cut+1:]
		}
		if err := fs.Parse(head); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return append(pos, tail...), nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
		if cut >= 0 {
			args = append(append(args, "--"), tail...)
		}
	}
}

// isHelp reports whether a is a request for help in place of a subcommand.
func isHelp(a string) bool {
	switch strings.TrimLeft(a, "-") {
	case "h", "help":
		return true
	}
	return false
}

// plural returns "1 dead letter" or "2 dead letters".
func plural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return strconv.Itoa(n) + " " + many
}
