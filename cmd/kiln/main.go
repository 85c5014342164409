// Command kiln is the Kiln FHIR R4 server and its tools.
//
//	kiln serve            FHIR API, management API and embedded key vault
//	kiln vault serve      the built-in key vault alone
//	kiln key …            client of a key vault's keys API
//	kiln vault policy …   manage vault access policies
//	kiln account …        client of the management API
//	kiln load PATH…       bulk load of Bundles and NDJSON through the FHIR API
//	kiln bench …          benchmark driver against any FHIR base URL
//	kiln version          print the version
//
// This package only parses flags and wires values together; every
// behaviour lives in internal/….
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

// version is the software version reported in the CapabilityStatement.
const version = "0.1.0"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "kiln:", err)
		}
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		usage(stderr)
		return errors.New("no command given")
	}
	switch args[0] {
	case "serve":
		return runServe(ctx, args[1:], stdout, stderr)
	case "vault":
		return runVault(ctx, args[1:], stdout, stderr)
	case "key":
		return runKey(ctx, args[1:], stdout, stderr)
	case "account":
		return runAccount(ctx, args[1:], stdout, stderr)
	case "load":
		return runLoad(ctx, args[1:], stdout, stderr)
	case "bench":
		return runBench(ctx, args[1:], stdout, stderr)
	case "version":
		fmt.Fprintln(stdout, "kiln", version)
		return nil
	case "help", "-h", "--help":
		usage(stdout)
		return nil
	}
	usage(stderr)
	return fmt.Errorf("unknown command %q", args[0])
}

func usage(w io.Writer) {
	fmt.Fprint(w, `Usage: kiln <command> [flags]

Commands:
  serve     run the FHIR server (embedded SQLite store and key vault by default)
  vault     run the built-in key vault alone (vault serve), manage policies and tokens
  key       create, rotate, list, disable, enable, delete, recover, purge vault keys
  account   create, list, get, re-key, check and delete accounts (management API client)
  load      bulk-load Bundle and NDJSON files through the FHIR API
  bench     run a reproducible load scenario against a FHIR base URL
  version   print the version

Run 'kiln <command> -h' for the flags of a command.
`)
}
