package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"

	"github.com/kilnhealth/kiln/internal/loader"
)

// runLoad is `kiln load`: bulk load of Bundle and NDJSON files through the
// FHIR API.
func runLoad(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("kiln load", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, `Usage: kiln load [flags] PATH...

Loads FHIR data through the HTTP API of any FHIR server. Each PATH is a file,
a directory (searched recursively) or a glob:
  *.json, *.json.gz       Bundles: batch/transaction as they are; other Bundles
                          and single resources as transactions
  *.ndjson, *.ndjson.gz   one resource per line, sent in transactions of
                          --batch-size PUTs (POST for lines without id)

Flags:
`)
		fs.PrintDefaults()
	}
	base := fs.String("base", envOr("KILN_FHIR_BASE", "http://127.0.0.1:8080/fhir/default"), "FHIR base URL (env KILN_FHIR_BASE)")
	conc := fs.Int("concurrency", loader.DefaultConcurrency, "Bundles in flight")
	batchSize := fs.Int("batch-size", loader.DefaultBatchSize, "NDJSON resources per Bundle")
	batch := fs.Bool("batch", false, "send NDJSON groups as batch Bundles (per-resource outcomes) instead of transactions")
	retries := fs.Int("retries", loader.DefaultRetries, "retries of a Bundle after a connection error, 429 or 5xx (0: none)")
	token := fs.String("token", "", "bearer token sent as Authorization (env KILN_TOKEN)")
	quiet := fs.Bool("quiet", false, "no progress line")
	seed := fs.Uint64("seed", 1, "seed of the retry jitter")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() == 0 {
		fs.Usage()
		return errors.New("load: give at least one file, directory or glob")
	}
	files, err := loader.Expand(fs.Args())
	if err != nil {
		return err
	}
	if *retries == 0 {
		*retries = -1
	}
	cfg := loader.Config{Base: *base, Concurrency: *conc, BatchSize: *batchSize, Batch: *batch, Retries: *retries, Seed: *seed}
	if t := firstNonEmpty(*token, envOr("KILN_TOKEN", "")); t != "" {
		cfg.Header = http.Header{"Authorization": {"Bearer " + t}}
	}
	if !*quiet {
		cfg.Progress = stderr
	}
	fmt.Fprintf(stderr, "loading %d files into %s with %d workers\n", len(files), *base, cfg.Concurrency)
	s, err := loader.Load(ctx, cfg, files)
	fmt.Fprintln(stdout, s.String())
	for _, e := range s.Errors {
		fmt.Fprintln(stderr, "  failed:", e)
	}
	if err != nil {
		return err
	}
	if !s.OK() || len(s.Errors) > 0 {
		return fmt.Errorf("load: %d resources failed, %d files unreadable", s.Failed, s.FailedFiles)
	}
	return nil
}

func firstNonEmpty(xs ...string) string {
	for _, x := range xs {
		if x != "" {
			return x
		}
	}
	return ""
}
