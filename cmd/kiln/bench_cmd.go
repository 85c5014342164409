package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/kilnhealth/kiln/internal/benchdriver"
)

// runBench is `kiln bench`: a reproducible load scenario against any FHIR
// base URL.
func runBench(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("kiln bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	base := fs.String("base", envOr("KILN_FHIR_BASE", "http://127.0.0.1:8080/fhir/default"), "FHIR base URL (env KILN_FHIR_BASE)")
	scenario := fs.String("scenario", "mixed", "one of "+strings.Join(benchdriver.Scenarios, ", "))
	conc := fs.Int("concurrency", 4, "concurrent clients")
	dur := fs.Duration("duration", 10*time.Second, "length of the measured run")
	seed := fs.Uint64("seed", 1, "seed of the synthetic data and request mix")
	patients := fs.Int("patients", 100, "synthetic patients created before read, update, search and mixed runs")
	token := fs.String("token", "", "bearer token sent as Authorization (env KILN_TOKEN)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	cfg := benchdriver.Config{Base: *base, Scenario: *scenario, Concurrency: *conc, Duration: *dur, Seed: *seed, Patients: *patients}
	if t := firstNonEmpty(*token, envOr("KILN_TOKEN", "")); t != "" {
		cfg.Header = http.Header{"Authorization": {"Bearer " + t}}
	}
	fmt.Fprintf(stderr, "kiln bench: %s against %s, %d clients for %s (seed %d)\n", *scenario, *base, *conc, *dur, *seed)
	res, err := benchdriver.Run(ctx, cfg)
	if err != nil {
		return err
	}
	res.Print(stdout)
	return nil
}
