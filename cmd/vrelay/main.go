// Command vrelay relays VMware vCenter, Horizon and CloudEvents webhook
// events through NATS JetStream to Knative, HTTP and other sinks, durably.
//
//	vrelay run -config vrelay.yaml [-role all|producers|consumers] [-log-level info] [-log-json]
//	vrelay validate -config vrelay.yaml
//	vrelay dlq list|show|replay|purge -config vrelay.yaml ...
//	vrelay tail -config vrelay.yaml [SUBJECT]
//	vrelay route test ROUTE -config vrelay.yaml [-last 20] [-since 1h]
//	vrelay route replay ROUTE -config vrelay.yaml -since 2h [-until T] [-filter EXPR]
//	vrelay checkpoint list|show|delete -config vrelay.yaml [KEY]
//	vrelay migrate -from router-config.yaml [-o vrelay.yaml]
//	vrelay version
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

const usage = `vrelay relays VMware events through NATS JetStream to sinks.

Usage:
  vrelay run      -config FILE [-role all|producers|consumers] [-log-level LEVEL] [-log-json]
  vrelay validate -config FILE
  vrelay dlq      list   [-route R] [-n MAX]
  vrelay dlq      show   SEQ
  vrelay dlq      replay (-route R | -all) [SEQ...]
  vrelay dlq      purge  (-route R | -all) [-yes] [SEQ...]
  vrelay tail     [-since 10m] [-n N] [-filter EXPR] [-json] [-color auto|always|never] [SUBJECT]
  vrelay route    test ROUTE [-last N] [-since 1h]
  vrelay route    replay ROUTE -since 2h [-until T] [-filter EXPR]
  vrelay checkpoint list|show|delete [KEY] [-force]
  vrelay config   schema
  vrelay migrate  -from FILE [-from FILE ...] [-o OUT]
  vrelay version  (or --version)

Every command but migrate takes -config FILE (default vrelay.yaml) or
-server URL (a NATS to use in place of the configuration's). Flags may come
before or after the arguments. Run "vrelay COMMAND -h" for a command's flags.
`

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	switch args[0] {
	case "run":
		return cmdRun(args[1:], stdout, stderr)
	case "validate":
		return cmdValidate(args[1:], stdout, stderr)
	case "dlq":
		return cmdDLQ(args[1:], stdout, stderr)
	case "tail":
		return cmdTail(args[1:], stdout, stderr)
	case "checkpoint":
		return cmdCheckpoint(args[1:], stdout, stderr)
	case "config":
		return cmdConfig(args[1:], stdout, stderr)
	case "route":
		return cmdRoute(args[1:], stdout, stderr)
	case "migrate":
		return cmdMigrate(args[1:], stdout, stderr)
	case "version", "-version", "--version", "-v":
		fmt.Fprintln(stdout, "vrelay", versionString())
		return 0
	case "-h", "-help", "--help", "help":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		fmt.Fprintf(stderr, "vrelay: unknown command %q\n\n%s", args[0], usage)
		return 2
	}
}

func cmdRun(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	configPath := fs.String("config", "vrelay.yaml", "configuration `file`")
	role := fs.String("role", roleAll, "what to run: all, producers (sources only) or consumers (routes only)")
	level := fs.String("log-level", "info", "log `level`: debug, info, warn, error")
	asJSON := fs.Bool("log-json", false, "log JSON lines instead of text")
	if rest, err := parseArgs(fs, args); err != nil || len(rest) > 0 {
		if err == nil {
			fmt.Fprintf(stderr, "vrelay run: unexpected argument %q\n", rest[0])
		}
		return 2
	}
	log, err := newLogger(stderr, *level, *asJSON)
	if err != nil {
		fmt.Fprintln(stderr, "vrelay:", err)
		return 2
	}
	switch *role {
	case roleAll, roleProducers, roleConsumers:
	default:
		fmt.Fprintf(stderr, "vrelay: -role %q is not one of all, producers, consumers\n", *role)
		return 2
	}
	tuneGC(log)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := runVrelay(ctx, *configPath, *role, log); err != nil {
		if errors.Is(err, context.Canceled) {
			return 0
		}
		var fe interface{ Problems() []string }
		if errors.As(err, &fe) {
			fmt.Fprintln(stderr, err)
			return 1
		}
		log.Error("vrelay stopped", "err", err)
		return 1
	}
	return 0
}

func newLogger(w io.Writer, level string, asJSON bool) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("-log-level %q is not one of debug, info, warn, error", level)
	}
	opts := &slog.HandlerOptions{Level: l}
	if asJSON {
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return slog.New(slog.NewTextHandler(w, opts)), nil
}
